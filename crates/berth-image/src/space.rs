//! The free-space reserve an unpack must leave (`berth daemon --min-free-space`, 5% of the
//! filesystem by default): a layer that inflates beyond it (an 18 MB gzip of 4 GiB of zeros)
//! stops with a clear error instead of filling the disk, and what it wrote goes with it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// How much of a filesystem an unpack must leave free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    /// A share of the filesystem's size, in percent.
    Percent(u32),
    /// Bytes (0: no reserve).
    Bytes(u64),
}

impl Default for MinFree {
    fn default() -> Self {
        MinFree::Percent(5)
    }
}

impl std::str::FromStr for MinFree {
    type Err = String;
    /// `5%`, `0`, `2G`, `512m`, `1048576`.
    fn from_str(s: &str) -> Result<MinFree, String> {
        let bad =
            || format!("invalid --min-free-space {s:?}: give a percentage (5%) or a size (2G)");
        if let Some(p) = s.strip_suffix('%') {
            return p
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= 100)
                .map(MinFree::Percent)
                .ok_or_else(bad);
        }
        berth_core::humanize::parse_ram_bytes(s)
            .filter(|n| *n >= 0)
            .map(|n| MinFree::Bytes(n as u64))
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Percent(p) => write!(f, "{p}%"),
            MinFree::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

impl MinFree {
    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            MinFree::Percent(p) => total / 100 * u64::from(p),
            MinFree::Bytes(b) => b,
        }
    }

    pub fn is_none(self) -> bool {
        matches!(self, MinFree::Percent(0) | MinFree::Bytes(0))
    }
}

/// (available to unprivileged users… as root: free, total) bytes of the filesystem of `path`.
fn free_and_total(path: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let unit = st.fragment_size();
    Ok((st.blocks_free() * unit, st.blocks() * unit))
}

/// Checks that the filesystem of `path` still has more than `min` free.
pub fn check(path: &Path, min: MinFree) -> Result<(), ImageError> {
    if min.is_none() {
        return Ok(());
    }
    let (free, total) = free_and_total(path).map_err(|e| ImageError::io("statvfs", path, e))?;
    let reserve = min.bytes_of(total);
    if free <= reserve {
        return Err(ImageError::NoSpace(format!(
            "unpacking would leave less than the reserve of free space on {} ({} free, {} kept free by --min-free-space {min})",
            path.display(),
            berth_core::humanize::size(free as f64),
            berth_core::humanize::size(reserve as f64)
        )));
    }
    Ok(())
}

/// A writer that looks at the free space every [`STEP`] bytes and stops before the reserve.
#[derive(Debug)]
pub struct ReserveWriter<W> {
    inner: W,
    path: PathBuf,
    min: MinFree,
    since_check: u64,
}

/// How often a writer checks (a lap costs one statvfs).
const STEP: u64 = 8 << 20;

impl<W: Write> ReserveWriter<W> {
    pub fn new(inner: W, path: &Path, min: MinFree) -> ReserveWriter<W> {
        ReserveWriter {
            inner,
            path: path.to_path_buf(),
            min,
            since_check: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for ReserveWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.since_check >= STEP && !self.min.is_none() {
            self.since_check = 0;
            check(&self.path, self.min).map_err(io::Error::other)?;
        }
        let n = self.inner.write(buf)?;
        self.since_check += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_read_as_the_flag_gives_them() {
        assert_eq!("5%".parse(), Ok(MinFree::Percent(5)));
        assert_eq!("0".parse(), Ok(MinFree::Bytes(0)));
        assert_eq!("2G".parse(), Ok(MinFree::Bytes(2 << 30)));
        assert!("101%".parse::<MinFree>().is_err());
        assert!("lots".parse::<MinFree>().is_err());
        assert_eq!(MinFree::Percent(5).bytes_of(1000), 50);
        assert!(MinFree::Bytes(0).is_none() && !MinFree::default().is_none());
    }

    #[test]
    fn a_reserve_above_the_free_space_stops_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (free, _) = free_and_total(dir.path()).unwrap();
        assert!(check(dir.path(), MinFree::Bytes(1)).is_ok());
        let e = check(dir.path(), MinFree::Bytes(free + (1 << 30))).unwrap_err();
        assert!(e.to_string().contains("--min-free-space"), "{e}");
        let mut w = ReserveWriter::new(Vec::new(), dir.path(), MinFree::Bytes(free + (1 << 30)));
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0;
        let err = loop {
            match w.write_all(&chunk) {
                Ok(()) => written += chunk.len(),
                Err(e) => break e,
            }
            assert!(written <= 64 << 20, "never stopped");
        };
        assert!(err.to_string().contains("--min-free-space"), "{err}");
    }
}
