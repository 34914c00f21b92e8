//! `--device` and `--device-cgroup-rule`: host device nodes made in the container (with a
//! cgroup rule allowing their use) and extra device cgroup rules, as Docker reads them.

use berth_core::device::CgroupRule;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use super::SpecError;

/// A `--device PATH_ON_HOST[:PATH_IN_CONTAINER[:PERMISSIONS]]` (the API's `DeviceMapping`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    /// Empty: the same path as on the host.
    pub path_in_container: String,
    /// Any of `r`, `w`, `m` (read, write, mknod) once each; empty means `rwm`.
    pub permissions: String,
}

fn valid_access(access: &str) -> bool {
    !access.is_empty()
        && access.len() <= 3
        && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && access
            .chars()
            .enumerate()
            .all(|(i, c)| !access[i + 1..].contains(c))
}

/// The device at `path` (a character or block node, symlinks followed), as the spec lists it
/// at `target`; `Ok(None)` for something else.
fn device_at(path: &Path, target: &Path) -> std::io::Result<Option<LinuxDevice>> {
    let meta = std::fs::metadata(path)?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    Ok(LinuxDeviceBuilder::default()
        .path(target)
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .file_mode(meta.mode() & 0o777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .ok())
}

/// Every device node under `dir` (recursively), at `target` + its path below `dir`.
fn devices_under(dir: &Path, target: &Path, out: &mut Vec<LinuxDevice>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (path, below) = (entry.path(), target.join(entry.file_name()));
        match entry.file_type() {
            Ok(ft) if ft.is_dir() => devices_under(&path, &below, out),
            Ok(_) => {
                if let Ok(Some(dev)) = device_at(&path, &below) {
                    out.push(dev);
                }
            }
            Err(_) => {}
        }
    }
}

/// The cgroup rule that lets the container use `dev` with `access`.
pub(super) fn rule_for(dev: &LinuxDevice, access: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    Ok(LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(dev.typ())
        .major(dev.major())
        .minor(dev.minor())
        .access(access)
        .build()?)
}

impl DeviceMapping {
    /// The permissions Docker applies: `rwm` when none are given.
    pub fn access(&self) -> Result<&str, SpecError> {
        match self.permissions.as_str() {
            "" => Ok("rwm"),
            p if valid_access(p) => Ok(p),
            p => Err(SpecError::InvalidDeviceMode(p.to_owned())),
        }
    }

    /// The device nodes this mapping makes: the host's node, or every node under a host
    /// directory. Docker's error when there is none.
    pub fn resolve(&self) -> Result<Vec<LinuxDevice>, SpecError> {
        let host = Path::new(&self.path_on_host);
        let target = PathBuf::from(if self.path_in_container.is_empty() {
            &self.path_on_host
        } else {
            &self.path_in_container
        });
        let gathering = |reason: String| SpecError::Device {
            path: self.path_on_host.clone(),
            reason,
        };
        match std::fs::metadata(host) {
            Err(e) => Err(gathering(io_words(&e))),
            Ok(meta) if meta.is_dir() => {
                let mut out = Vec::new();
                devices_under(host, &target, &mut out);
                if out.is_empty() {
                    Err(gathering("not a device node".into()))
                } else {
                    Ok(out)
                }
            }
            Ok(_) => match device_at(host, &target) {
                Ok(Some(dev)) => Ok(vec![dev]),
                Ok(None) => Err(gathering("not a device node".into())),
                Err(e) => Err(gathering(io_words(&e))),
            },
        }
    }
}

/// An I/O error as Go prints its errno: "no such file or directory".
fn io_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// A `--device-cgroup-rule` (`TYPE MAJOR:MINOR ACCESS`: `c 1:3 mr`, `a *:* rwm`), read as
/// Docker reads it (berth-core's [`CgroupRule`]), in OCI's form.
pub fn parse_cgroup_rule(rule: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    let parsed: CgroupRule = rule
        .parse()
        .map_err(|()| SpecError::InvalidDeviceCgroupRule(rule.to_owned()))?;
    let typ = match parsed.typ {
        'a' => LinuxDeviceType::A,
        'b' => LinuxDeviceType::B,
        _ => LinuxDeviceType::C,
    };
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(parsed.access);
    if let Some(m) = parsed.major {
        b = b.major(m);
    }
    if let Some(m) = parsed.minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host: &str, container: &str, perms: &str) -> DeviceMapping {
        DeviceMapping {
            path_on_host: host.into(),
            path_in_container: container.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn a_host_node_is_made_where_asked() {
        let devs = mapping("/dev/null", "/dev/mynull", "").resolve().unwrap();
        assert_eq!(devs.len(), 1);
        let d = &devs[0];
        assert_eq!(d.path(), Path::new("/dev/mynull"));
        assert_eq!((d.typ(), d.major(), d.minor()), (LinuxDeviceType::C, 1, 3));
        assert_eq!(d.file_mode(), Some(0o666));
        let same = mapping("/dev/zero", "", "r").resolve().unwrap();
        assert_eq!(same[0].path(), Path::new("/dev/zero"));
        let rule = rule_for(d, "rwm").unwrap();
        assert_eq!(
            (
                rule.typ(),
                rule.major(),
                rule.minor(),
                rule.access().as_deref()
            ),
            (Some(LinuxDeviceType::C), Some(1), Some(3), Some("rwm"))
        );
    }

    #[test]
    fn a_directory_brings_its_nodes_and_nothing_else_is_a_device() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.path().join("sub/n")).unwrap();
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        let devs = mapping(dir.path().to_str().unwrap(), "/dev/mine", "")
            .resolve()
            .unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/mine/sub/n"));
        let e = mapping("/dev/nonexistent-device", "", "")
            .resolve()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "error gathering device information while adding custom device \"/dev/nonexistent-device\": no such file or directory"
        );
        let plain = dir.path().join("plain");
        let e = mapping(plain.to_str().unwrap(), "", "")
            .resolve()
            .unwrap_err();
        assert!(e.to_string().ends_with(": not a device node"), "{e}");
    }

    #[test]
    fn permissions_are_some_of_rwm_once_each() {
        assert_eq!(mapping("/dev/null", "", "").access().unwrap(), "rwm");
        assert_eq!(mapping("/dev/null", "", "mr").access().unwrap(), "mr");
        for bad in ["rr", "x", "rwmr"] {
            let e = mapping("/dev/null", "", bad).access().unwrap_err();
            assert_eq!(e.to_string(), format!("invalid device mode: {bad}"));
        }
    }

    #[test]
    fn cgroup_rules_read_as_docker_reads_them() {
        let r = parse_cgroup_rule("c 1:3 mr").unwrap();
        assert_eq!(
            (
                r.typ(),
                r.major(),
                r.minor(),
                r.access().as_deref(),
                r.allow()
            ),
            (Some(LinuxDeviceType::C), Some(1), Some(3), Some("mr"), true)
        );
        let r = parse_cgroup_rule("a *:* rwm").unwrap();
        assert_eq!(
            (r.typ(), r.major(), r.minor()),
            (Some(LinuxDeviceType::A), None, None)
        );
        let r = parse_cgroup_rule("b 8:* r").unwrap();
        assert_eq!((r.major(), r.minor()), (Some(8), None));
        for bad in [
            "",
            "c 1:3",
            "c 1:3  rw",
            "x 1:3 r",
            "c 1-3 r",
            "c a:3 r",
            "c 1:3 rwx",
            "c 1:3 rwmr",
        ] {
            let e = parse_cgroup_rule(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid device cgroup rule format: '{bad}'")
            );
        }
    }
}
