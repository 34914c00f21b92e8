//! Docker's json-file log format, with rotation on by default.
//!
//! One JSON object per line: `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanos"}`.
//! A line longer than [`MAX_LINE`] is split into pieces without the trailing newline, as Docker
//! does. When the file would grow past `max_size`, it is renamed to `.1` (older ones shift up,
//! the oldest beyond `max_files` is deleted) and a new file is started. Unlike Docker's
//! default, rotation is always on: logs do not fill disks.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest piece of one line kept in a single record (Docker's buffer size).
pub const MAX_LINE: usize = 16 * 1024;

/// Default rotation: 10 MiB per file, 3 files.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes a container's output as json-file records, rotating by size.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Bytes of an unfinished line, per stream.
    pending: [Vec<u8>; 2],
}

impl JsonLog {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<JsonLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Records `data` read from `stream`: whole lines now, a trailing partial line later.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let idx = stream as usize;
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[idx]);
            line.extend_from_slice(&rest[..=pos]);
            rest = &rest[pos + 1..];
            self.emit_line(stream, &line)?;
        }
        self.pending[idx].extend_from_slice(rest);
        while self.pending[idx].len() >= MAX_LINE {
            let piece: Vec<u8> = self.pending[idx].drain(..MAX_LINE).collect();
            self.record(stream, &piece)?;
        }
        Ok(())
    }

    /// Writes out unfinished lines (at the end of the container's life).
    pub fn flush_partial(&mut self) -> std::io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let piece = std::mem::take(&mut self.pending[stream as usize]);
            if !piece.is_empty() {
                self.record(stream, &piece)?;
            }
        }
        Ok(())
    }

    fn emit_line(&mut self, stream: Stream, line: &[u8]) -> std::io::Result<()> {
        let mut start = 0;
        while line.len() - start > MAX_LINE {
            self.record(stream, &line[start..start + MAX_LINE])?;
            start += MAX_LINE;
        }
        self.record(stream, &line[start..])
    }

    fn record(&mut self, stream: Stream, piece: &[u8]) -> std::io::Result<()> {
        // Formatted by hand: this runs in every shim for the container's whole life, and a
        // few small functions keep the shim's resident code small (see
        // berth_core::memory::shed_resident_memory).
        let mut bytes = Vec::with_capacity(piece.len() + 80);
        bytes.extend_from_slice(b"{\"log\":\"");
        escape_json(&String::from_utf8_lossy(piece), &mut bytes);
        bytes.extend_from_slice(b"\",\"stream\":\"");
        bytes.extend_from_slice(stream.name().as_bytes());
        bytes.extend_from_slice(b"\",\"time\":\"");
        now_rfc3339_nanos(&mut bytes);
        bytes.extend_from_slice(b"\"}\n");
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.rotated(self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Appends `text` as the inside of a JSON string.
fn escape_json(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

/// Appends the current UTC time as RFC 3339 with nanoseconds (`2026-11-24T18:42:26.123456789Z`).
fn now_rfc3339_nanos(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_nanos()
    );
}

/// One parsed record, for readers (tests, `logs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Reads the records of one log file.
pub fn read_records(path: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_with_rfc3339_times() {
        let mut out = Vec::new();
        escape_json("a\"b\\c\n\u{1}é", &mut out);
        let back: String = serde_json::from_slice(&[b"\"", &out[..], b"\""].concat()).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
        let mut t = Vec::new();
        now_rfc3339_nanos(&mut t);
        let t = String::from_utf8(t).unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).unwrap();
        let drift = (chrono::Utc::now().timestamp() - parsed.timestamp()).abs();
        assert!(drift < 5, "{t}");
        assert_eq!(t.len(), "2026-11-24T18:42:26.123456789Z".len());
    }

    #[test]
    fn lines_partials_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&path, DEFAULT_MAX_SIZE, 3).unwrap();
        log.write(Stream::Stdout, b"hel").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"lo\nwor").unwrap();
        log.flush_partial().unwrap();
        let r = read_records(&path).unwrap();
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.stream.as_str(), r.log.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stderr", "oops\n"),
                ("stdout", "hello\n"),
                ("stdout", "wor")
            ]
        );
        assert!(r[0].time.ends_with('Z'));
    }

    #[test]
    fn long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&path, DEFAULT_MAX_SIZE, 3).unwrap();
        let mut line = vec![b'x'; MAX_LINE + 10];
        line.push(b'\n');
        log.write(Stream::Stdout, &line).unwrap();
        let r = read_records(&path).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].log.len(), MAX_LINE);
        assert_eq!(r[1].log, format!("{}\n", "x".repeat(10)));
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&path, 1000, 3).unwrap();
        for i in 0..200 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["c-json.log", "c-json.log.1", "c-json.log.2"]);
        for n in &names {
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 1000);
        }
        // The newest lines are in the current file, in order.
        let r = read_records(&path).unwrap();
        assert_eq!(r.last().unwrap().log, "line 199\n");
        let older = read_records(&dir.path().join("c-json.log.1")).unwrap();
        let first_current: usize = r[0].log.trim().trim_start_matches("line ").parse().unwrap();
        let last_older: usize = older
            .last()
            .unwrap()
            .log
            .trim()
            .trim_start_matches("line ")
            .parse()
            .unwrap();
        assert_eq!(last_older + 1, first_current);
    }
}
