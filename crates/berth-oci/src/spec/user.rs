//! Resolving Docker's `--user` forms (`uid`, `uid:gid`, `name`, `name:group`) against the
//! container's own /etc/passwd and /etc/group, as Docker does.

use std::path::Path;

use super::SpecError;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_passwd(rootfs: Option<&Path>) -> Vec<PasswdEntry> {
    let Some(text) = rootfs.and_then(|r| std::fs::read_to_string(r.join("etc/passwd")).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

fn read_group(rootfs: Option<&Path>) -> Vec<GroupEntry> {
    let Some(text) = rootfs.and_then(|r| std::fs::read_to_string(r.join("etc/group")).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (`user[:group]`). A numeric uid that is not in /etc/passwd is accepted with
/// gid 0 unless a group is given, as in Docker; an unknown name is an error.
pub fn resolve(spec: &str, rootfs: Option<&Path>) -> Result<ResolvedUser, SpecError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(SpecError::InvalidUser(spec.to_owned()));
    }
    let passwd = read_passwd(rootfs);
    let (uid, mut gid, name) = match user.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => match passwd.iter().find(|e| e.name == user) {
            Some(e) => (e.uid, e.gid, Some(e.name.clone())),
            None => {
                return Err(SpecError::UnknownUser(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                )))
            }
        },
    };
    let groups = read_group(rootfs);
    if let Some(group) = group {
        if group.is_empty() {
            return Err(SpecError::InvalidUser(spec.to_owned()));
        }
        gid = match group.parse::<u32>() {
            Ok(g) => g,
            Err(_) => groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| g.gid)
                .ok_or_else(|| {
                    SpecError::UnknownUser(format!(
                        "unable to find group {group}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // Supplementary groups: those that list the user as a member (only when no group was forced,
    // as Docker does).
    let additional_gids = match (&name, group) {
        (Some(name), None) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name) && g.gid != gid)
            .map(|g| g.gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The gids of `--group-add` entries: numbers as they are, names looked up in the rootfs's
/// /etc/group (Docker's error when one is not there).
pub fn group_ids(groups: &[String], rootfs: Option<&Path>) -> Result<Vec<u32>, SpecError> {
    let mut table = None;
    groups
        .iter()
        .map(|g| {
            if let Ok(gid) = g.parse::<u32>() {
                return Ok(gid);
            }
            table
                .get_or_insert_with(|| read_group(rootfs))
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    SpecError::UnknownUser(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\nstaff:x:50:\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn numeric_forms_need_no_files() {
        assert_eq!(
            resolve("1000:1000", None).unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![]
            }
        );
        assert_eq!(resolve("42", None).unwrap().gid, 0);
    }

    #[test]
    fn added_groups_are_numbers_or_names() {
        let r = rootfs();
        let ids = group_ids(
            &["10".into(), "staff".into(), "4242".into()],
            Some(r.path()),
        );
        assert_eq!(ids.unwrap(), [10, 50, 4242]);
        let e = group_ids(&["ghosts".into()], Some(r.path())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert_eq!(group_ids(&["7".into()], None).unwrap(), [7]);
    }

    #[test]
    fn names_resolve_through_the_rootfs() {
        let r = rootfs();
        let app = resolve("app", Some(r.path())).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids),
            (1000, 1000, vec![10])
        );
        let forced = resolve("app:staff", Some(r.path())).unwrap();
        assert_eq!((forced.uid, forced.gid), (1000, 50));
        assert!(forced.additional_gids.is_empty());
        assert!(matches!(
            resolve("ghost", Some(r.path())),
            Err(SpecError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(":1", None),
            Err(SpecError::InvalidUser(_))
        ));
    }
}
