//! Reading a container's json-file log (written and rotated by its shim): whole, or from a
//! cursor for `logs -f`. A cursor is the log file's inode and an offset, so a rotation between
//! two reads is noticed and the rest of the rotated file is read before the new one.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_api::containers::{LogCursor, LogQuery, LogStream};
use berth_oci::shim::log::Record;

/// The log files of a container, oldest first: `<base>.N` … `<base>.1`, `<base>`.
pub fn files(base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..100).rev() {
        let mut p = base.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if p.exists() {
            out.push(p);
        }
    }
    out.push(base.to_path_buf());
    out
}

/// The records of `path` from `offset` on, and the offset after the last complete line (a
/// line still being written is left for the next read; a malformed line is skipped).
fn read_from(path: &Path, offset: u64) -> (Vec<Record>, u64) {
    match std::fs::File::open(path) {
        Ok(f) => read_file_from(&f, offset),
        Err(_) => (Vec::new(), offset),
    }
}

/// [`read_from`] of a file already open.
fn read_file_from(mut f: &std::fs::File, offset: u64) -> (Vec<Record>, u64) {
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (Vec::new(), offset);
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return (Vec::new(), offset);
    }
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let records = buf[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    (records, offset + complete as u64)
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Nanoseconds since the epoch of a record's time.
fn record_nanos(r: &Record) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&r.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

/// Reads the log from `cursor` (everything when `None`), filtered by `q`; returns the
/// records and the cursor for the next read.
pub fn read(
    base: &Path,
    q: &LogQuery,
    cursor: Option<LogCursor>,
) -> (Vec<(LogStream, Vec<u8>)>, LogCursor) {
    let files = files(base);
    let mut records = Vec::new();
    // The current file, held open for the next read (see `LogCursor::file`).
    let held = std::fs::File::open(base).ok();
    let current_inode = held
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.ino());
    let mut next = LogCursor {
        inode: current_inode,
        offset: 0,
        file: held.map(std::sync::Arc::new),
    };
    match cursor.clone() {
        // The log is gone (the container was removed): the rest of the file we hold.
        Some(LogCursor {
            inode,
            offset,
            file: Some(file),
        }) if current_inode == 0 => {
            let (r, end) = read_file_from(&file, offset);
            records.extend(r);
            next = LogCursor {
                inode,
                offset: end,
                file: Some(file),
            };
        }
        None => {
            for f in &files {
                let (r, end) = read_from(f, 0);
                records.extend(r);
                if f == base {
                    next.offset = end;
                }
            }
        }
        Some(c) if c.inode == current_inode => {
            let (r, end) = read_from(base, c.offset);
            records.extend(r);
            next.offset = end;
        }
        Some(c) => {
            // Rotated since the last read: finish the old file (now `.N`), then newer ones.
            let start = files.iter().position(|f| inode(f) == Some(c.inode));
            for (i, f) in files.iter().enumerate() {
                let from = match start {
                    Some(s) if i < s => continue,
                    Some(s) if i == s => c.offset,
                    _ => 0,
                };
                let (r, end) = read_from(f, from);
                records.extend(r);
                if f == base {
                    next.offset = end;
                }
            }
        }
    }
    let mut out: Vec<(LogStream, Vec<u8>)> = Vec::new();
    for r in records {
        let stream = if r.stream == "stderr" {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        };
        if (stream == LogStream::Stdout && !q.stdout) || (stream == LogStream::Stderr && !q.stderr)
        {
            continue;
        }
        if q.since.is_some() || q.until.is_some() {
            let t = record_nanos(&r);
            if q.since.is_some_and(|s| t < s) || q.until.is_some_and(|u| t > u) {
                continue;
            }
        }
        let data = if q.timestamps {
            format!("{} {}", r.time, r.log).into_bytes()
        } else {
            r.log.into_bytes()
        };
        out.push((stream, data));
    }
    if cursor.is_none() {
        if let Some(n) = q.tail {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(stream: &str, log: &str, time: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": log, "stream": stream, "time": time})
        )
    }

    fn all() -> LogQuery {
        LogQuery {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_follower_reads_the_last_lines_of_a_log_removed_under_it() {
        // docker-py's run(remove=True): the container writes, exits and is removed (its log
        // with it) between two looks of a follower, which must still get what it wrote.
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        std::fs::write(&base, line("stdout", "first\n", "2026-01-01T00:00:00Z")).unwrap();
        let (got, cur) = read(&base, &all(), None);
        assert_eq!(got, [(LogStream::Stdout, b"first\n".to_vec())]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&base)
            .unwrap();
        f.write_all(line("stdout", "last\n", "2026-01-01T00:00:01Z").as_bytes())
            .unwrap();
        drop(f);
        std::fs::remove_file(&base).unwrap();
        let (got, cur) = read(&base, &all(), Some(cur));
        assert_eq!(got, [(LogStream::Stdout, b"last\n".to_vec())]);
        let (got, _) = read(&base, &all(), Some(cur));
        assert!(got.is_empty());
    }

    #[test]
    fn follows_across_a_rotation_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        std::fs::write(&base, line("stdout", "a\n", "2026-01-01T00:00:00Z")).unwrap();
        let (got, cur) = read(&base, &all(), None);
        assert_eq!(got.len(), 1);
        // A line being written is not read yet.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&base)
            .unwrap();
        let b = line("stderr", "b\n", "2026-01-01T00:00:01Z");
        f.write_all(&b.as_bytes()[..10]).unwrap();
        let (got, cur) = read(&base, &all(), Some(cur));
        assert!(got.is_empty());
        f.write_all(&b.as_bytes()[10..]).unwrap();
        drop(f);
        // Rotation: the old file becomes .1 and a new one starts.
        let mut rotated = base.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(&base, &rotated).unwrap();
        std::fs::write(&base, line("stdout", "c\n", "2026-01-01T00:00:02Z")).unwrap();
        let (got, _) = read(&base, &all(), Some(cur));
        let texts: Vec<&[u8]> = got.iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(texts, vec![b"b\n".as_slice(), b"c\n".as_slice()]);
        assert_eq!(got[0].0, LogStream::Stderr);
    }

    #[test]
    fn since_until_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("c-json.log");
        let text: String = (0..5)
            .map(|i| {
                line(
                    "stdout",
                    &format!("{i}\n"),
                    &format!("2026-01-01T00:00:0{i}Z"),
                )
            })
            .collect();
        std::fs::write(&base, text).unwrap();
        let t = |s: u32| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-01-01T00:00:0{s}Z"))
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap()
        };
        let q = LogQuery {
            since: Some(t(1)),
            until: Some(t(3)),
            ..all()
        };
        assert_eq!(read(&base, &q, None).0.len(), 3);
        let q = LogQuery {
            tail: Some(2),
            ..all()
        };
        let (got, _) = read(&base, &q, None);
        assert_eq!(got[0].1, b"3\n");
    }
}
