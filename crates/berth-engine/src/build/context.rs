//! The build context as received: a directory on the daemon's host read in place, or the
//! request body — a tar (plain, gzip or zstd) unpacked into `build/contexts/<id>` (through
//! the same confined extraction as `docker cp`, so no entry lands outside), or a Dockerfile
//! alone (`docker build - < Dockerfile`). An unpacked context is removed when dropped.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use berth_api::build::BuildContext;

use crate::confined::extract::{extract, Options};
use crate::confined::{Root, View};
use crate::Engine;

pub(super) struct Received {
    root: PathBuf,
    /// Made by us (removed on drop) rather than the client's directory.
    owned: bool,
    upload: Option<PathBuf>,
}

/// Whether `block` (the first 512 bytes) is a tar header: its checksum adds up.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(sum) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let computed: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == computed
}

impl Received {
    pub(super) fn open(engine: &Engine, context: BuildContext) -> Result<Received, EngineError> {
        match context {
            BuildContext::Dir(dir) => Ok(Received {
                root: dir,
                owned: false,
                upload: None,
            }),
            BuildContext::Upload(file) => {
                let id = berth_core::ContainerId::generate()
                    .map_err(|e| EngineError::internal(e.to_string()))?;
                let root = engine
                    .root()
                    .join("build")
                    .join("contexts")
                    .join(id.as_str());
                let received = Received {
                    root,
                    owned: true,
                    upload: Some(file.clone()),
                };
                std::fs::create_dir_all(&received.root)
                    .map_err(|e| EngineError::internal(format!("context directory: {e}")))?;
                received.unpack(&file)?;
                Ok(received)
            }
        }
    }

    fn unpack(&self, file: &Path) -> Result<(), EngineError> {
        let bad = |e: std::io::Error| EngineError::invalid(format!("reading the context: {e}"));
        let f = std::fs::File::open(file).map_err(bad)?;
        let (_, stream) = berth_image::compression::decompressed(f).map_err(bad)?;
        let mut stream = std::io::BufReader::with_capacity(64 * 1024, stream);
        let head = stream.fill_buf().map_err(bad)?;
        let empty = head.is_empty();
        if !empty && !is_tar_header(head) {
            // Not a tar: a Dockerfile on its own.
            let mut text = Vec::new();
            stream.read_to_end(&mut text).map_err(bad)?;
            return std::fs::write(self.root.join("Dockerfile"), text)
                .map_err(|e| EngineError::internal(format!("context: {e}")));
        }
        if empty {
            return Ok(());
        }
        let root = Root::open(&self.root).map_err(|e| EngineError::internal(e.to_string()))?;
        extract(&View::new(root), &[], stream, Options::default())
            .map_err(|e| EngineError::invalid(format!("unpacking the build context: {e}")))?;
        Ok(())
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Read in place (the client's own directory).
    pub(super) fn in_place(&self) -> bool {
        !self.owned
    }

    /// The Dockerfile's text, and its path in the context when it is in it.
    pub(super) fn dockerfile(&self, name: &str) -> Result<(String, Option<String>), EngineError> {
        let name = if name.is_empty() { "Dockerfile" } else { name };
        let missing =
            || EngineError::invalid(format!("Cannot locate specified Dockerfile: {name}"));
        let (path, rel) = if Path::new(name).is_absolute() {
            if self.owned {
                return Err(missing());
            }
            let rel = Path::new(name)
                .strip_prefix(&self.root)
                .ok()
                .map(|r| r.to_string_lossy().into_owned());
            (PathBuf::from(name), rel)
        } else {
            let rel = berth_build::ignore::clean(name);
            if rel.starts_with("../") || rel == ".." {
                return Err(missing());
            }
            // Read through the context's root: a symlink cannot lead out of it.
            (self.root.join(&rel), Some(rel))
        };
        let mut text = String::new();
        let root = Root::open(&self.root).map_err(|_| missing())?;
        let opened = match &rel {
            Some(r) => root
                .open_at(r.as_bytes(), libc::O_RDONLY)
                .map(std::fs::File::from),
            None => std::fs::File::open(&path),
        };
        opened
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => missing(),
                _ => EngineError::invalid(format!("reading the Dockerfile {name}: {e}")),
            })?;
        Ok((text, rel))
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        if let Some(f) = &self.upload {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_told_from_dockerfiles() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", &b"abc"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        assert!(is_tar_header(&bytes[..512]));
        let mut text = b"FROM scratch\nCOPY . /\n".to_vec();
        text.resize(600, b'\n');
        assert!(!is_tar_header(&text));
    }
}
