//! `/etc/subuid` and `/etc/subgid`: lines `owner:start:count`, where owner is a user's name or
//! ID, giving that user the subordinate IDs `start..start+count`. berth reads the first range
//! of a user: the remap user of `--userns-remap` (and, for `dockremap`, where a new range
//! fits), and a rootless daemon's user.

use std::path::Path;

/// One line of a subordinate ID file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIdRange {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

/// A line that is not `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: invalid subordinate ID line {text:?} (expected owner:start:count)")]
pub struct BadLine {
    pub file: String,
    pub line: usize,
    pub text: String,
}

impl SubIdRange {
    /// One line; `None` for a line that says nothing (empty, a `#` comment).
    fn parse(text: &str) -> Option<Result<SubIdRange, ()>> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        let mut fields = text.split(':');
        let parsed = (|| {
            let owner = fields.next().filter(|o| !o.is_empty())?;
            let start: u32 = fields.next()?.parse().ok()?;
            let count: u32 = fields.next()?.parse().ok()?;
            if fields.next().is_some() || count == 0 || start.checked_add(count).is_none() {
                return None;
            }
            Some(SubIdRange {
                owner: owner.to_owned(),
                start,
                count,
            })
        })();
        Some(parsed.ok_or(()))
    }

    /// The first ID after the range.
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }
}

/// Every range of the text of a subordinate ID file (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Vec<SubIdRange>, BadLine> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l, SubIdRange::parse(l)?)))
        .map(|(i, l, r)| {
            r.map_err(|()| BadLine {
                file: file.to_owned(),
                line: i + 1,
                text: l.to_owned(),
            })
        })
        .collect()
}

/// The ranges in the file at `path` (a missing file has none).
pub fn read(path: &Path) -> std::io::Result<Vec<SubIdRange>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    parse(&path.display().to_string(), &text).map_err(std::io::Error::other)
}

/// The first range of the user named `name` with ID `uid` (a line may name either).
pub fn first_of<'a>(ranges: &'a [SubIdRange], name: &str, uid: u32) -> Option<&'a SubIdRange> {
    let uid = uid.to_string();
    ranges.iter().find(|r| r.owner == name || r.owner == uid)
}

/// Where a new range of `count` IDs fits: from 100000 (where useradd starts), after every
/// range it would overlap.
pub fn next_free(ranges: &[SubIdRange], count: u32) -> Option<u32> {
    let mut sorted: Vec<&SubIdRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.start);
    let mut start: u64 = 100_000;
    for r in sorted {
        let overlaps = start < r.end() && u64::from(r.start) < start + u64::from(count);
        if overlaps {
            start = r.end();
        }
    }
    u32::try_from(start + u64::from(count))
        .ok()
        .map(|_| start as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(owner: &str, start: u32, count: u32) -> SubIdRange {
        SubIdRange {
            owner: owner.into(),
            start,
            count,
        }
    }

    #[test]
    fn lines_are_owner_start_count() {
        let text =
            "# ranges\nberthtest:100000:65536\n\n1001:231072:65536\n  dockremap:296608:65536  \n";
        assert_eq!(
            parse("/etc/subuid", text).unwrap(),
            vec![
                range("berthtest", 100_000, 65536),
                range("1001", 231_072, 65536),
                range("dockremap", 296_608, 65536)
            ]
        );
        for bad in [
            "x",
            "x:1",
            "x:1:2:3",
            ":1:2",
            "x:a:2",
            "x:1:-2",
            "x:1:0",
            "x:4294967295:2",
        ] {
            let e = parse("/etc/subuid", &format!("ok:1:1\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
            assert!(e.to_string().starts_with("/etc/subuid:2: invalid"), "{e}");
        }
    }

    #[test]
    fn the_first_range_by_name_or_id() {
        let ranges = vec![
            range("other", 1, 10),
            range("1001", 500_000, 10),
            range("alice", 600_000, 10),
        ];
        assert_eq!(first_of(&ranges, "alice", 1001).unwrap().start, 500_000);
        assert_eq!(first_of(&ranges, "alice", 7).unwrap().start, 600_000);
        assert!(first_of(&ranges, "bob", 7).is_none());
    }

    #[test]
    fn a_new_range_goes_where_it_overlaps_nothing() {
        assert_eq!(next_free(&[], 65536), Some(100_000));
        let taken = vec![
            range("b", 165_536, 65536),
            range("a", 100_000, 65536),
            range("low", 1000, 10),
        ];
        assert_eq!(next_free(&taken, 65536), Some(231_072));
        // A gap big enough is used.
        let gap = vec![range("a", 100_000, 10), range("b", 300_000, 10)];
        assert_eq!(next_free(&gap, 65536), Some(100_010));
        assert_eq!(
            next_free(&[range("a", 100_000, u32::MAX - 100_000)], 10),
            None
        );
    }
}
