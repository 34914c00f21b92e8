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
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
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
    let current_inode = inode(base).unwrap_or(0);
    let mut next = LogCursor {
        inode: current_inode,
        offset: 0,
    };
    match cursor {
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
