//! A build context as the tar `POST /build` takes: the directory's files minus what
//! `.dockerignore` excludes (the Dockerfile and `.dockerignore` kept), streamed by a thread
//! into a pipe so nothing is staged on disk. Used by `berth build` and `berth compose`.

use std::io::Write;
use std::path::Path;

/// Why a context could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ContextTarError {
    pub what: String,
    pub detail: String,
}

/// The context directory as a tar (what `.dockerignore` excludes left out, the Dockerfile
/// and `.dockerignore` kept), written by a thread into a pipe.
pub fn tar_stream(dir: &Path, dockerfile: Option<&str>) -> Result<std::fs::File, ContextTarError> {
    tar_stream_with(dir, dockerfile, None)
}

/// [`tar_stream`] with one more file added at the context's root (an inline Dockerfile:
/// name and content).
pub fn tar_stream_with(
    dir: &Path,
    dockerfile: Option<&str>,
    extra: Option<(String, Vec<u8>)>,
) -> Result<std::fs::File, ContextTarError> {
    let ctx = berth_build::Context::open_for(dir, dockerfile).map_err(|e| ContextTarError {
        what: format!("reading the .dockerignore of {}", dir.display()),
        detail: e.to_string(),
    })?;
    let entries = ctx.walk().map_err(|e| ContextTarError {
        what: format!("reading the context {}", dir.display()),
        detail: e.to_string(),
    })?;
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ContextTarError {
            what: "making a pipe".into(),
            detail: e.to_string(),
        })?;
    let (reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let root = dir.to_path_buf();
    std::thread::spawn(move || -> std::io::Result<()> {
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, writer));
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Deterministic);
        for e in entries {
            tar.append_path_with_name(root.join(&e.path), &e.path)?;
        }
        if let Some((name, content)) = extra {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, content.as_slice())?;
        }
        tar.into_inner()?.flush()
    });
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_tar_leaves_out_what_dockerignore_excludes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "secret\nDockerfile\n").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/app"), "y").unwrap();
        let bytes = {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut tar_stream(dir.path(), Some("Dockerfile")).unwrap(),
                &mut bytes,
            )
            .unwrap();
            bytes
        };
        let mut names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "src", "src/app"]);
    }

    #[test]
    fn an_extra_file_is_added_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut tar_stream_with(
                dir.path(),
                None,
                Some(("inline.Dockerfile".into(), b"FROM scratch\n".to_vec())),
            )
            .unwrap(),
            &mut bytes,
        )
        .unwrap();
        let mut names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "inline.Dockerfile"]);
    }
}
