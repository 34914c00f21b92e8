//! `ADD <url>`: the file is fetched at every build (its content, hashed, is part of the step's
//! cache key, as in Docker), kept in the build's directory until the build ends, never
//! unpacked, and lands with mode 0600 and the server's Last-Modified time. `--checksum`
//! verifies it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use sha2::Digest as _;

use super::Out;

/// A fetched file.
#[derive(Debug, Clone)]
pub(crate) struct Downloaded {
    pub(crate) path: PathBuf,
    /// The name it gets at the destination: the URL's last path segment.
    pub(crate) name: String,
    /// `sha256:<hex>` of its content.
    pub(crate) digest: String,
}

/// The file name a URL gives (`https://h/a/b.tar.gz?x=1` → `b.tar.gz`).
pub(crate) fn url_file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next()?.to_owned();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// Fetches `url` into `dir`; checks `checksum` (`sha256:<hex>`) when given.
pub(crate) fn fetch(
    url: &str,
    dir: &Path,
    checksum: Option<&str>,
    out: &Out,
) -> Result<Downloaded, EngineError> {
    let name = url_file_name(url).ok_or_else(|| {
        EngineError::invalid(format!(
            "cannot determine filename from url: {url}: add a file name to the URL"
        ))
    })?;
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| EngineError::internal("downloads need the daemon's runtime"))?;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::internal(format!("{e}")))?;
    let path = dir.join(format!(
        "download-{}",
        DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    out.text(&format!("Downloading {url}\n"));
    let fail = |e: String| EngineError::invalid(format!("ADD {url}: {e}"));
    let (digest, modified) = handle.block_on(http_fetch(url, &path)).map_err(fail)?;
    if let Some(want) = checksum {
        if want != digest {
            let _ = std::fs::remove_file(&path);
            return Err(fail(format!(
                "digest mismatch: expected {want}, got {digest}"
            )));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    if let Some(t) = modified {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(time);
        }
    }
    Ok(Downloaded { path, name, digest })
}

/// Fetches `url` (http or https) into the new file `path`: its `sha256:<hex>` and the
/// server's Last-Modified time (Unix seconds), or what went wrong. `ADD <url>` and
/// `import` from a URL share it.
pub(crate) async fn http_fetch(url: &str, path: &Path) -> Result<(String, Option<i64>), String> {
    let resp = reqwest::get(url).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the server answered {}", resp.status()));
    }
    let modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut hash = sha2::Sha256::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        hash.update(&chunk);
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("sha256:{hex}"), modified))
}

static DOWNLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_path_segment() {
        assert_eq!(
            url_file_name("https://example.com/a/b.tar.gz?x=1").as_deref(),
            Some("b.tar.gz")
        );
        assert_eq!(
            url_file_name("http://127.0.0.1:8080/file#frag").as_deref(),
            Some("file")
        );
        assert_eq!(url_file_name("http://example.com/"), None);
        assert_eq!(url_file_name("http://example.com"), None);
    }
}
