//! A step's root filesystem: an overlay of the stage's snapshots so far (lower dirs) and a
//! fresh upper dir that collects what the step changes, mounted under `build/work/<id>`.
//! Dropping it unmounts and removes everything, whatever happened in between.

use std::io;
use std::path::{Path, PathBuf};

/// A mounted step root.
#[derive(Debug)]
pub(crate) struct StepRoot {
    dir: PathBuf,
    mounted: bool,
}

impl StepRoot {
    /// Mounts lowers (top first; none for `scratch`) with an empty upper dir at `dir`.
    /// `owner`: the upper dir's (the root filesystem's top directory), for a RUN step under
    /// `--userns-remap` (its lowers are then the mapping's view).
    pub(crate) fn mount(
        dir: PathBuf,
        lowers: &[PathBuf],
        owner: Option<(u32, u32)>,
    ) -> io::Result<StepRoot> {
        std::fs::create_dir_all(&dir)?;
        let mut root = StepRoot {
            dir,
            mounted: false,
        };
        for d in ["upper", "work", "merged", "empty"] {
            std::fs::create_dir_all(root.dir.join(d))?;
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(root.upper(), Some(uid), Some(gid))?;
        }
        crate::overlay::mount_overlay(
            &root.merged(),
            lowers,
            &root.dir.join("empty"),
            &root.upper(),
            &root.dir.join("work"),
        )
        .map_err(|e| io::Error::new(e.kind(), format!("mount the step's root filesystem: {e}")))?;
        root.mounted = true;
        Ok(root)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    pub(crate) fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Unmounts (the upper dir then holds the step's changes, ready to be read or moved).
    pub(crate) fn unmount(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.merged(), nix::mount::MntFlags::MNT_DETACH);
            self.mounted = false;
        }
    }
}

impl Drop for StepRoot {
    fn drop(&mut self) {
        self.unmount();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
