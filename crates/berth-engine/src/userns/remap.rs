//! `berth daemon --userns-remap default|USER[:GROUP]|UID[:GID]`, as dockerd reads it: the user
//! (by name or ID) whose subordinate IDs containers get, `default` being `dockremap`, which
//! is created (with `groupadd`/`useradd`) and given 65536 IDs of each kind where none are
//! taken when it is missing. The group only names the mapping, as in dockerd: both ranges
//! are the user's, the first line of each file that names them. `root` turns remapping off.

use std::path::Path;
use std::process::Command;

use berth_core::idmap::{IdMap, IdRange};

use berth_core::subid;

/// The user `default` stands for.
pub const DEFAULT_USER: &str = "dockremap";

/// The size of the ranges berth gives `dockremap` (dockerd's and useradd's).
const DEFAULT_RANGE: u32 = 65536;

/// The flag's value, as written (checked for its shape; users are looked up at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemapSpec {
    /// A name, a numeric ID, or `default`.
    pub user: String,
    pub group: Option<String>,
}

/// Why the daemon cannot remap.
#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    #[error("Invalid user/group specification in --userns-remap: {0:?}")]
    Syntax(String),
    #[error("Uid {0} has no entry in /etc/passwd")]
    NoUid(u32),
    #[error("Gid {0} has no entry in /etc/group")]
    NoGid(u32),
    #[error("Error during uid lookup for {0:?}: user: unknown user {0}")]
    NoUser(String),
    #[error("Error during gid lookup for {0:?}: group: unknown group {0}")]
    NoGroup(String),
    #[error("Can't create ID mappings: no {file} ranges found for user {user:?}")]
    NoRange { file: &'static str, user: String },
    #[error("Can't create ID mappings: {0}")]
    BadFile(std::io::Error),
    #[error("Error during {DEFAULT_USER:?} user creation: {0}")]
    Create(String),
    #[error("{0}")]
    Lookup(nix::Error),
}

impl std::str::FromStr for RemapSpec {
    type Err = RemapError;

    fn from_str(text: &str) -> Result<RemapSpec, RemapError> {
        let bad = || RemapError::Syntax(text.to_owned());
        let mut parts = text.split(':');
        let user = parts.next().filter(|u| !u.is_empty()).ok_or_else(bad)?;
        let group = match parts.next() {
            None => None,
            Some("") => return Err(bad()),
            Some(g) => Some(g.to_owned()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(RemapSpec {
            user: user.to_owned(),
            group,
        })
    }
}

impl std::fmt::Display for RemapSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.group {
            Some(g) => write!(f, "{}:{g}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// What a [`RemapSpec`] resolved to on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user: String,
    pub group: String,
    pub map: IdMap,
}

fn numeric(text: &str) -> Option<u32> {
    text.parse().ok()
}

impl RemapSpec {
    /// Looks the user and group up (creating `dockremap` for `default` when missing) and
    /// reads their ranges from `/etc/subuid` and `/etc/subgid`. `None`: the user is root,
    /// whose remapping onto itself is none (dockerd turns user namespaces off then too).
    pub fn resolve(&self) -> Result<Option<Resolved>, RemapError> {
        self.resolve_with(Path::new("/etc/subuid"), Path::new("/etc/subgid"))
    }

    fn resolve_with(&self, subuid: &Path, subgid: &Path) -> Result<Option<Resolved>, RemapError> {
        use nix::unistd::{Gid, Group, Uid, User};
        let (user, group) = match numeric(&self.user) {
            Some(uid) => {
                let user = User::from_uid(Uid::from_raw(uid))
                    .map_err(RemapError::Lookup)?
                    .ok_or(RemapError::NoUid(uid))?;
                // A lone UID names the group with the same ID.
                let group = match &self.group {
                    Some(_) => None,
                    None => Some(
                        Group::from_gid(Gid::from_raw(uid))
                            .map_err(RemapError::Lookup)?
                            .ok_or(RemapError::NoGid(uid))?
                            .name,
                    ),
                };
                (user, group)
            }
            None => {
                let name = if self.user == "default" {
                    DEFAULT_USER
                } else {
                    self.user.as_str()
                };
                let user = match User::from_name(name).map_err(RemapError::Lookup)? {
                    Some(u) => u,
                    None if self.user == "default" => create_default(subuid, subgid)?,
                    None => return Err(RemapError::NoUser(name.to_owned())),
                };
                let group = match &self.group {
                    Some(_) => None,
                    None => Some(
                        Group::from_name(name)
                            .map_err(RemapError::Lookup)?
                            .ok_or_else(|| RemapError::NoGroup(name.to_owned()))?
                            .name,
                    ),
                };
                (user, group)
            }
        };
        let group = match (group, &self.group) {
            (Some(g), _) => g,
            (None, Some(g)) => match numeric(g) {
                Some(gid) => {
                    Group::from_gid(Gid::from_raw(gid))
                        .map_err(RemapError::Lookup)?
                        .ok_or(RemapError::NoGid(gid))?
                        .name
                }
                None => {
                    Group::from_name(g)
                        .map_err(RemapError::Lookup)?
                        .ok_or_else(|| RemapError::NoGroup(g.clone()))?
                        .name
                }
            },
            (None, None) => unreachable!("a group is looked up when none is given"),
        };
        if user.uid.is_root() {
            return Ok(None);
        }
        let range = |path: &Path, file: &'static str| -> Result<IdRange, RemapError> {
            let ranges = subid::read(path).map_err(RemapError::BadFile)?;
            let r = subid::first_of(&ranges, &user.name, user.uid.as_raw()).ok_or_else(|| {
                RemapError::NoRange {
                    file,
                    user: user.name.clone(),
                }
            })?;
            Ok(IdRange {
                container: 0,
                host: r.start,
                size: r.count,
            })
        };
        let map = IdMap {
            uids: range(subuid, "subuid")?,
            gids: range(subgid, "subgid")?,
        };
        Ok(Some(Resolved {
            user: user.name,
            group,
            map,
        }))
    }
}

/// Runs `cmd`; its stderr is the error.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the `dockremap` group and system user when missing and gives the user a
/// subordinate range of each kind when it has none (system users get none from useradd), as
/// dockerd does. Daemons starting together take turns (a lock in /run).
fn create_default(subuid: &Path, subgid: &Path) -> Result<nix::unistd::User, RemapError> {
    use nix::unistd::{Group, User};
    let create = |e: String| RemapError::Create(e);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/berth-dockremap.lock")
        .map_err(|e| create(format!("lock /run/berth-dockremap.lock: {e}")))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| create(format!("lock /run/berth-dockremap.lock: {e}")))?;
    if Group::from_name(DEFAULT_USER)
        .map_err(RemapError::Lookup)?
        .is_none()
    {
        run(Command::new("groupadd").args(["-r", DEFAULT_USER])).map_err(create)?;
    }
    let user = match User::from_name(DEFAULT_USER).map_err(RemapError::Lookup)? {
        Some(u) => u,
        None => {
            run(Command::new("useradd").args([
                "-r",
                "-g",
                DEFAULT_USER,
                "-s",
                "/bin/false",
                DEFAULT_USER,
            ]))
            .map_err(create)?;
            User::from_name(DEFAULT_USER)
                .map_err(RemapError::Lookup)?
                .ok_or_else(|| create("useradd made no user".into()))?
        }
    };
    for (path, flag) in [(subuid, "-v"), (subgid, "-w")] {
        let ranges = subid::read(path).map_err(RemapError::BadFile)?;
        if subid::first_of(&ranges, DEFAULT_USER, user.uid.as_raw()).is_some() {
            continue;
        }
        let start = subid::next_free(&ranges, DEFAULT_RANGE)
            .ok_or_else(|| create(format!("no free range left in {}", path.display())))?;
        let span = format!("{start}-{}", start + DEFAULT_RANGE - 1);
        run(Command::new("usermod").args([flag, &span, DEFAULT_USER])).map_err(create)?;
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_user_and_maybe_group() {
        let spec = |u: &str, g: Option<&str>| RemapSpec {
            user: u.into(),
            group: g.map(Into::into),
        };
        assert_eq!(
            "default".parse::<RemapSpec>().unwrap(),
            spec("default", None)
        );
        assert_eq!(
            "testuser:testgroup".parse::<RemapSpec>().unwrap(),
            spec("testuser", Some("testgroup"))
        );
        assert_eq!(
            "1001:1001".parse::<RemapSpec>().unwrap(),
            spec("1001", Some("1001"))
        );
        assert_eq!(
            "1001:staff".parse::<RemapSpec>().unwrap().to_string(),
            "1001:staff"
        );
        for bad in ["", ":", "a:", ":b", "a:b:c"] {
            assert_eq!(
                bad.parse::<RemapSpec>().unwrap_err().to_string(),
                format!("Invalid user/group specification in --userns-remap: {bad:?}")
            );
        }
    }

    /// Users every Debian system has: root (0), daemon (1), bin (2), nobody (65534).
    fn files(
        subuid: &str,
        subgid: &str,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, subuid).unwrap();
        std::fs::write(&g, subgid).unwrap();
        (dir, u, g)
    }

    #[test]
    fn users_and_ranges_are_looked_up() {
        let (_d, u, g) = files("daemon:100000:65536\n1:1:1\n", "1:300000:1000\n");
        let r = "daemon"
            .parse::<RemapSpec>()
            .unwrap()
            .resolve_with(&u, &g)
            .unwrap()
            .unwrap();
        assert_eq!((r.user.as_str(), r.group.as_str()), ("daemon", "daemon"));
        assert_eq!(r.map.uids.proc_line(), "0 100000 65536\n");
        // subgid is read for the user too (by its ID here), as dockerd does.
        assert_eq!(r.map.gids.proc_line(), "0 300000 1000\n");
        let r = "1:bin"
            .parse::<RemapSpec>()
            .unwrap()
            .resolve_with(&u, &g)
            .unwrap()
            .unwrap();
        assert_eq!((r.user.as_str(), r.group.as_str()), ("daemon", "bin"));
        // Root maps onto itself: no remapping.
        assert_eq!(
            "root"
                .parse::<RemapSpec>()
                .unwrap()
                .resolve_with(&u, &g)
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_users_and_missing_ranges_are_clear() {
        let (_d, u, g) = files("daemon:100000:65536\n", "");
        let err = |s: &str| {
            s.parse::<RemapSpec>()
                .unwrap()
                .resolve_with(&u, &g)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("no-such-user-x"),
            "Error during uid lookup for \"no-such-user-x\": user: unknown user no-such-user-x"
        );
        assert_eq!(err("4000000"), "Uid 4000000 has no entry in /etc/passwd");
        assert_eq!(
            err("daemon:no-such-group-x"),
            "Error during gid lookup for \"no-such-group-x\": group: unknown group no-such-group-x"
        );
        assert_eq!(
            err("bin"),
            "Can't create ID mappings: no subuid ranges found for user \"bin\""
        );
        assert_eq!(
            err("daemon"),
            "Can't create ID mappings: no subgid ranges found for user \"daemon\""
        );
    }
}
