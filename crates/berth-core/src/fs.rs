//! Files on disk written whole or not at all, and what directory trees hold.
//!
//! [`write_atomic`] is the one way berth replaces a metadata file (moby's
//! `pkg/ioutils/fswriters.go`): the bytes go to a temporary file with a name of its own in
//! the same directory, which is fsynced, renamed over the target, and then the directory is
//! fsynced so the rename itself survives a crash. Readers see the old file or the new one,
//! never a half-written one; two writers of the same path never share a temporary file; a
//! failure at any step removes the temporary file.
//!
//! Temporary files are named `.tmp-<name>.<pid>.<n>` (see [`is_temp_file`]): a store that
//! scans its directory skips them, and may delete the ones a crash left behind.
//!
//! A tree's size has two meanings, and each has its function: [`apparent_size`], the bytes
//! its files hold (what Docker reports as a container's `SizeRw` or a volume's size), and
//! [`allocated_size`], the disk space it takes (what removing it frees).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What every temporary file of [`write_atomic`] starts with.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `name` (a file name, not a path) is a temporary file of [`write_atomic`]: one
/// that a crash may have left behind and that no store should read.
pub fn is_temp_file(name: &OsStr) -> bool {
    name.as_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// Removes `path`, a file (or link) or a whole directory tree; one already gone is fine.
pub fn remove_path(path: &Path) -> io::Result<()> {
    let gone = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match gone {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Replaces `path` with `bytes` atomically and durably; the file gets mode `0o666` less the
/// umask, as `File::create` gives. The directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`] with the file's mode (before the umask), e.g. `0o600` for credentials.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let (tmp, mut file) = create_temp(dir, path, mode)?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Replaces `path` with `bytes` atomically but not durably: readers see the old file or the
/// new one, and a host crash may leave either, or (on filesystems that do not order a
/// rename after the data it names) an empty file. For files that nothing needs after a host
/// crash, because what they say dies with the host or is written again from elsewhere (a
/// running container's runtime state, its supervisor's PID): the two fsyncs of
/// [`write_atomic`] wait for the disk (0.3 ms here idle, up to 20 ms while it writes back)
/// on the path of every container start.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (tmp, mut file) = create_temp(parent_dir(path), path, 0o666)?;
    let result = file.write_all(bytes).and_then(|()| {
        drop(file);
        std::fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `value` as indented JSON (the form of berth's metadata files), through [`write_atomic`].
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Fsyncs directory `dir`, which makes a rename, a creation or a removal in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The bytes the files under `dir` hold, as Docker's `pkg/directory.Size` counts them: the
/// length of every file and symlink, not of directories, a hard-linked file once; symlinks
/// are not followed, and what cannot be read counts 0.
pub fn apparent_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// The disk space `path` and everything under it take, as `du` counts it: allocated
/// blocks (so sparse files count less and directories count too), a hard-linked file once;
/// symlinks are not followed.
pub fn allocated_size(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a temporary file beside `path` that no other writer, in this process or another,
/// has: the pid and a counter name it, and `O_EXCL` skips a name a crash left behind.
fn create_temp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name to write"))?
        .to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TEMP_PREFIX}{base}.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "berth-core-fs-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_swaps_the_whole_file_and_leaves_no_temp() {
        let d = scratch("replace-nosync");
        let p = d.join("state.json");
        replace(&p, b"one").unwrap();
        replace(&p, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two, longer");
        // A failing rename (a non-empty directory in the way) leaves no temporary file.
        std::fs::create_dir_all(d.join("target/x")).unwrap();
        assert!(replace(&d.join("target"), b"data").is_err());
        assert_eq!(names(&d), ["state.json", "target"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writes_and_replaces_leaving_no_temp() {
        let d = scratch("replace");
        let p = d.join("state.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two, longer");
        write_json_atomic(&d.join("x.json"), &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("x.json")).unwrap(),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(names(&d), ["state.json", "x.json"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failing_rename_leaves_no_temp_file() {
        let d = scratch("fail");
        // A non-empty directory at the target: the rename fails after the temp was written.
        let p = d.join("target");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"x").unwrap();
        assert!(write_atomic(&p, b"data").is_err());
        assert_eq!(names(&d), ["target"]);
        // A missing directory fails before anything is created.
        assert!(write_atomic(&d.join("nope/file"), b"data").is_err());
        assert_eq!(names(&d), ["target"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn concurrent_writers_never_share_a_temp_file() {
        let d = scratch("concurrent");
        let p = d.join("shared.json");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            let all = &contents;
            for c in all {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(p, c).unwrap();
                        // Whatever a reader sees is one writer's whole file.
                        let seen = std::fs::read(p).unwrap();
                        assert!(all.contains(&seen));
                    }
                });
            }
        });
        assert!(contents.contains(&std::fs::read(&p).unwrap()));
        assert_eq!(names(&d), ["shared.json"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn modes_apply_and_others_temp_files_stay() {
        let d = scratch("stale");
        let p = d.join("cred.json");
        // What a crashed process with our pid would have left behind.
        let n = 0;
        let stale = d.join(format!(".tmp-cred.json.{}.{n}", std::process::id()));
        std::fs::write(&stale, b"old").unwrap();
        write_atomic_mode(&p, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&stale).unwrap(), b"old");
        assert!(is_temp_file(stale.file_name().unwrap()));
        assert!(!is_temp_file(OsStr::new("cred.json")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn apparent_and_allocated_sizes_differ_as_they_should() {
        let d = scratch("sizes");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), vec![1u8; 5000]).unwrap();
        std::fs::write(d.join("sub/b"), b"hello").unwrap();
        std::fs::hard_link(d.join("a"), d.join("sub/a-again")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        // A sparse file: a megabyte long, nothing written.
        File::create(d.join("sparse"))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let link_len = "/etc/passwd".len() as u64;
        assert_eq!(apparent_size(&d), 5000 + 5 + link_len + (1 << 20));
        let allocated = allocated_size(&d);
        // Blocks of a, b and the directories; the sparse file adds (almost) none.
        assert!(allocated >= 8192, "{allocated}");
        assert!(allocated < 1 << 20, "{allocated}");
        assert_eq!(apparent_size(&d.join("missing")), 0);
        assert_eq!(allocated_size(&d.join("missing")), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("x.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/x.json")), Path::new("/a"));
    }
}
