//! `--squash`: the layers a build's target stage added over its base, merged into one layer
//! (the base's layers kept as they are), as Docker's builder squashes. The stage's history is
//! kept whole; the entries whose layers were merged become empty but the last.

use berth_image::oci::{Descriptor, ImageConfig, MEDIA_LAYER_GZIP};

use super::stages::Built;
use super::{img_err, internal, Result};
use crate::archive::commit::StagedLayer;
use crate::Engine;

/// A squashed image: its config, its layers, and the new layer's blob in staging (none when
/// the stage's layers, merged, change nothing).
pub(super) struct Squashed {
    pub(super) config: ImageConfig,
    pub(super) layers: Vec<Descriptor>,
    pub(super) staged: Option<StagedLayer>,
}

impl Engine {
    /// The target's config and layers with its own layers squashed into one (`None`: the
    /// stage added at most one layer, nothing to merge).
    pub(super) fn squash(
        &self,
        built: &Built,
        mut config: ImageConfig,
    ) -> Result<Option<Squashed>> {
        let base = built.base_layers;
        let added = built.layers.len().saturating_sub(base);
        let Some(top) = built.chain.as_ref().filter(|_| added > 1) else {
            return Ok(None);
        };
        // The snapshot directories, top first: the stage's own are the first `added`.
        let mut dirs = self.images.snapshots.lower_dirs(top).map_err(img_err)?;
        dirs.truncate(added);
        dirs.reverse();
        let id = berth_core::ContainerId::generate().map_err(|e| internal("an ID", e))?;
        let work = self
            .build_dir()
            .join("work")
            .join(format!("squash-{}", id.as_str()));
        let merged = work.join("upper");
        let staged = (|| {
            std::fs::create_dir_all(&merged).map_err(|e| internal("the squash directory", e))?;
            for d in &dirs {
                berth_image::layer::squash::merge_into(d, &merged)
                    .map_err(|e| internal(&format!("squash {}", d.display()), e))?;
            }
            self.stage_layer_of(&merged, None)
        })();
        let _ = std::fs::remove_dir_all(&work);
        let staged = staged?;

        let mut layers = built.layers[..base].to_vec();
        config.rootfs.diff_ids.truncate(base);
        let keep = staged.entries > 0;
        if !keep {
            let _ = std::fs::remove_file(&staged.path);
        }
        if keep {
            layers.push(Descriptor::new(
                MEDIA_LAYER_GZIP,
                staged.digest.clone(),
                staged.size,
            ));
            config.rootfs.diff_ids.push(staged.diff_id.clone());
        }
        // History: the base's layered entries stay; of the stage's, only the last keeps a
        // layer (the squashed one).
        let layered: Vec<usize> = config
            .history
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.empty_layer)
            .map(|(i, _)| i)
            .collect();
        let last = layered.last().copied();
        for &i in layered.iter().skip(base) {
            if !(keep && Some(i) == last) {
                config.history[i].empty_layer = true;
            }
        }
        Ok(Some(Squashed {
            config,
            layers,
            staged: keep.then_some(staged),
        }))
    }
}
