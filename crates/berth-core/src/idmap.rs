//! A user namespace's ID mapping as `berth daemon --userns-remap` gives it to containers:
//! container IDs `0..size` are host IDs `host..host+size`, one range for users and one for
//! groups. Besides the kernel's `uid_map` lines it translates owners between the two views
//! the engine deals with: the host's (what the disk holds under a remapped container: its
//! upper dir, its volumes) and the container's (what images and archives hold), and file
//! capabilities (`security.capability`), whose version 3 names the root they belong to.

/// What an ID the namespace does not map looks like inside it (the kernel's overflow ID).
pub const OVERFLOW_ID: u32 = 65534;

/// One range: container IDs `container..container+size` are host IDs `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl IdRange {
    /// The host ID of container ID `id`, if the range maps it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.container)?;
        (offset < self.size).then(|| self.host + offset)
    }

    /// The container ID of host ID `id`, if the range maps it.
    pub fn to_container(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.host)?;
        (offset < self.size).then(|| self.container + offset)
    }

    /// The range as `/proc/<pid>/uid_map` takes it: `container host size`.
    pub fn proc_line(&self) -> String {
        format!("{} {} {}\n", self.container, self.host, self.size)
    }
}

/// The user and group ranges of a remapped container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdMap {
    pub uids: IdRange,
    pub gids: IdRange,
}

/// Why a container's owner cannot be written on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container ID {0} cannot be mapped to a host ID")]
pub struct Unmapped(pub u32);

impl IdMap {
    /// Container root (0:0) on the host.
    pub fn root(&self) -> (u32, u32) {
        (
            self.uids.to_host(0).unwrap_or(self.uids.host),
            self.gids.to_host(0).unwrap_or(self.gids.host),
        )
    }

    /// A container owner as the host stores it.
    pub fn owner_to_host(&self, uid: u32, gid: u32) -> Result<(u32, u32), Unmapped> {
        Ok((
            self.uids.to_host(uid).ok_or(Unmapped(uid))?,
            self.gids.to_host(gid).ok_or(Unmapped(gid))?,
        ))
    }

    /// A host owner as the container sees it: an ID outside the ranges is the overflow ID.
    pub fn owner_to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.uids.to_container(uid).unwrap_or(OVERFLOW_ID),
            self.gids.to_container(gid).unwrap_or(OVERFLOW_ID),
        )
    }

    /// `security.capability` of a file written from the container's view for the host's: a
    /// version 2 value (which the kernel ties to the host's root) becomes a version 3 one for
    /// the container's root, so the file keeps its capabilities in the container. Anything
    /// else stays as it is.
    pub fn fcaps_to_host(&self, value: &[u8]) -> Vec<u8> {
        match fcaps_revision(value) {
            Some(VFS_CAP_REVISION_2) if value.len() == VFS_CAP_V2_LEN => {
                let mut out = value.to_vec();
                set_revision(&mut out, VFS_CAP_REVISION_3);
                out.extend_from_slice(&self.root().0.to_le_bytes());
                out
            }
            _ => value.to_vec(),
        }
    }

    /// `security.capability` of a file in the host's view for an image (the container's
    /// view): a version 3 value for the container's root becomes version 2 (rootless), one
    /// for another root gets that root's container ID.
    pub fn fcaps_to_container(&self, value: &[u8]) -> Vec<u8> {
        if fcaps_revision(value) != Some(VFS_CAP_REVISION_3) || value.len() != VFS_CAP_V3_LEN {
            return value.to_vec();
        }
        let host_root = u32::from_le_bytes(value[VFS_CAP_V2_LEN..].try_into().unwrap_or([0; 4]));
        match self.uids.to_container(host_root) {
            Some(0) => {
                let mut out = value[..VFS_CAP_V2_LEN].to_vec();
                set_revision(&mut out, VFS_CAP_REVISION_2);
                out
            }
            Some(id) => {
                let mut out = value[..VFS_CAP_V2_LEN].to_vec();
                out.extend_from_slice(&id.to_le_bytes());
                out
            }
            None => value.to_vec(),
        }
    }
}

/// `struct vfs_cap_data` (linux/capability.h): a little-endian `magic_etc` (revision in the
/// top byte, the effective flag in bit 0), two permitted/inheritable pairs, and in revision 3
/// the root user's ID.
const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
const VFS_CAP_V2_LEN: usize = 20;
const VFS_CAP_V3_LEN: usize = 24;

fn fcaps_revision(value: &[u8]) -> Option<u32> {
    let magic = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    Some(magic & VFS_CAP_REVISION_MASK)
}

fn set_revision(value: &mut [u8], revision: u32) {
    let magic = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    let magic = (magic & !VFS_CAP_REVISION_MASK) | revision;
    value[..4].copy_from_slice(&magic.to_le_bytes());
}

/// Whether this process runs in a user namespace other than the host's (a rootless daemon
/// does): its `uid_map` is not the host's one identity range `0 0 4294967295`.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| !is_host_uid_map(&m))
            .unwrap_or(false)
    })
}

fn is_host_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_host_uid_map_is_one_identity_range() {
        assert!(is_host_uid_map("         0          0 4294967295\n"));
        assert!(!is_host_uid_map("0 1001 1\n1 100000 65536\n"));
        assert!(!is_host_uid_map("0 0 65536\n"));
    }
    use super::*;

    fn map() -> IdMap {
        IdMap {
            uids: IdRange {
                container: 0,
                host: 100_000,
                size: 65536,
            },
            gids: IdRange {
                container: 0,
                host: 200_000,
                size: 1000,
            },
        }
    }

    #[test]
    fn owners_cross_between_views() {
        let m = map();
        assert_eq!(m.root(), (100_000, 200_000));
        assert_eq!(m.owner_to_host(0, 0), Ok((100_000, 200_000)));
        assert_eq!(m.owner_to_host(65535, 999), Ok((165_535, 200_999)));
        assert_eq!(m.owner_to_host(65536, 0), Err(Unmapped(65536)));
        assert_eq!(m.owner_to_host(0, 1000), Err(Unmapped(1000)));
        assert_eq!(m.owner_to_container(100_000, 200_000), (0, 0));
        assert_eq!(m.owner_to_container(100_042, 200_007), (42, 7));
        // The host's root and IDs past the range are nobody inside.
        assert_eq!(m.owner_to_container(0, 0), (OVERFLOW_ID, OVERFLOW_ID));
        assert_eq!(
            m.owner_to_container(165_536, 201_000),
            (OVERFLOW_ID, OVERFLOW_ID)
        );
        assert_eq!(m.uids.proc_line(), "0 100000 65536\n");
    }

    #[test]
    fn file_capabilities_name_the_right_root() {
        let m = map();
        // cap_net_bind_service+ep as setcap writes it outside any namespace (revision 2).
        let mut v2 = vec![0u8; 20];
        v2[..4].copy_from_slice(&(VFS_CAP_REVISION_2 | 1).to_le_bytes());
        v2[4] = 1 << 2;
        let v3 = m.fcaps_to_host(&v2);
        assert_eq!(v3.len(), 24);
        assert_eq!(&v3[..4], &(VFS_CAP_REVISION_3 | 1).to_le_bytes());
        assert_eq!(&v3[4..20], &v2[4..20]);
        assert_eq!(&v3[20..], &100_000u32.to_le_bytes());
        assert_eq!(m.fcaps_to_container(&v3), v2);
        // Another user's root inside keeps revision 3 with its container ID.
        let mut other = v3.clone();
        other[20..].copy_from_slice(&100_007u32.to_le_bytes());
        assert_eq!(&m.fcaps_to_container(&other)[20..], &7u32.to_le_bytes());
        // Garbage passes through.
        assert_eq!(m.fcaps_to_host(b"xy"), b"xy");
        assert_eq!(m.fcaps_to_container(&v2), v2);
    }
}
