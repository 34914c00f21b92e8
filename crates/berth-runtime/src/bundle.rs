//! Reading a bundle's config.json, with errors that say what is wrong and where.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};

/// A bundle directory and its parsed spec.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Loads `dir/config.json`. A missing directory or file, invalid JSON, or a spec missing
    /// what every container needs (root, process with args) is refused before anything is made.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir =
            std::fs::canonicalize(dir).map_err(|_| RuntimeError::MissingConfig(dir.into()))?;
        let config = dir.join("config.json");
        let text = match std::fs::read(&config) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::MissingConfig(dir))
            }
            Err(e) => return Err(RuntimeError::io(format!("read {}", config.display()), e)),
        };
        let malformed = |reason: String| RuntimeError::MalformedConfig {
            path: dir.clone(),
            reason,
        };
        let spec: Spec = serde_json::from_slice(&text).map_err(|e| malformed(e.to_string()))?;
        if !spec.version().starts_with("1.") {
            return Err(malformed(format!(
                "ociVersion {:?} is not supported (need 1.x)",
                spec.version()
            )));
        }
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| malformed("no \"root\"".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        if !rootfs.is_dir() {
            return Err(malformed(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| malformed("no \"process\"".into()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(malformed("process.args is empty".into()));
        }
        if spec.linux().is_none() {
            return Err(malformed("no \"linux\" section".into()));
        }
        Ok(Bundle { dir, spec })
    }

    /// The rootfs as an absolute path.
    pub fn rootfs(&self) -> PathBuf {
        let root = self
            .spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        if root.is_absolute() {
            root
        } else {
            self.dir.join(root)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join("config.json"), text).unwrap();
    }

    #[test]
    fn refuses_bad_bundles_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Bundle::load(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, RuntimeError::MissingConfig(_)));
        let empty = Bundle::load(dir.path()).unwrap_err();
        assert!(matches!(empty, RuntimeError::MissingConfig(_)), "{empty}");

        write(dir.path(), "{ not json");
        let e = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("malformed config.json") && e.contains("line 1"),
            "{e}"
        );

        write(
            dir.path(),
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#,
        );
        let e = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("root.path"), "{e}");

        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let e = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no \"process\""), "{e}");
    }

    #[test]
    fn accepts_the_default_spec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let spec = crate::spec::docker_default(&crate::spec::ContainerOptions::new(
            "rootfs",
            vec!["true".into()],
        ))
        .unwrap();
        write(dir.path(), &serde_json::to_string(&spec).unwrap());
        let b = Bundle::load(dir.path()).unwrap();
        assert_eq!(
            b.rootfs(),
            dir.path().canonicalize().unwrap().join("rootfs")
        );
    }
}
