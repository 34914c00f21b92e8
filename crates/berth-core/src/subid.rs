//! Subordinate id ranges (`/etc/subuid`, `/etc/subgid`, shadow-utils' `NAME:START:COUNT`
//! lines): the host ids a user may map into a user namespace with `newuidmap`/`newgidmap`.

use std::path::Path;

/// One `START:COUNT` range of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// The first range in `text` that belongs to the user `name` or to the numeric `id` (shadow-utils
/// accept either in the first field). Malformed lines are skipped, as `newuidmap` skips them.
pub fn first_range(text: &str, name: &str, id: u32) -> Option<IdRange> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let mut fields = line.split(':');
        let owner = fields.next()?;
        let start = fields.next()?.trim().parse().ok()?;
        let count: u32 = fields.next()?.trim().parse().ok()?;
        if fields.next().is_some() || count == 0 {
            return None;
        }
        let mine = owner == name || owner.parse::<u32>().is_ok_and(|n| n == id);
        mine.then_some(IdRange { start, count })
    })
}

/// [`first_range`] of the file at `path`; None when it is missing or has no range for the user.
pub fn first_range_in(path: &Path, name: &str, id: u32) -> Option<IdRange> {
    first_range(&std::fs::read_to_string(path).ok()?, name, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_range_by_name_or_number() {
        let text =
            "# comment\nalice:100000:65536\nbob:165536:65536\nbob:300000:10\n1002:400000:5\n";
        assert_eq!(
            first_range(text, "bob", 1001),
            Some(IdRange {
                start: 165536,
                count: 65536
            })
        );
        assert_eq!(
            first_range(text, "carol", 1002),
            Some(IdRange {
                start: 400000,
                count: 5
            })
        );
        assert_eq!(first_range(text, "carol", 1003), None);
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "alice:x:65536\nalice:1:0\nalice:5\nalice:1:2:3\nalice:200000:100\n";
        assert_eq!(
            first_range(text, "alice", 1000),
            Some(IdRange {
                start: 200000,
                count: 100
            })
        );
    }
}
