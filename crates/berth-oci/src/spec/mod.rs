//! The OCI spec a Docker user gets: [`docker_default`] builds it from [`ContainerOptions`],
//! the runtime-level meaning of `docker run`'s flags.

pub mod caps;
pub mod devices;
pub mod seccomp;
pub mod user;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    LinuxSeccomp, Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use thiserror::Error;

use crate::host::{self, CgroupMode};

pub use devices::DeviceMapping;
pub use user::ResolvedUser;

/// The PATH Docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The annotation that makes berth's init the container's pid 1 (value `"true"`); the runtime
/// reads it (`berth-runtime`'s `init` module).
pub const INIT_ANNOTATION: &str = "org.berth.init";

/// Whether `spec` asks for berth's init.
pub fn wants_init(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(INIT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Paths hidden from the container (a null device or an empty read-only tmpfs over them).
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the container may read but not write.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, Error)]
pub enum SpecError {
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    #[error("invalid user {0:?}: expected user[:group]")]
    InvalidUser(String),
    #[error("{0}")]
    UnknownUser(String),
    #[error("invalid ulimit {0:?}: expected name=soft[:hard], e.g. nofile=1024:2048")]
    InvalidUlimit(String),
    #[error("invalid --cpus value {0}: must be a positive number")]
    InvalidCpus(f64),
    #[error("invalid memory limit {0}: minimum is 6MB")]
    InvalidMemory(i64),
    /// A resource setting Docker refuses, in Docker's words.
    #[error("{0}")]
    InvalidResource(String),
    #[error("invalid sysctl {0:?}: {1}")]
    InvalidSysctl(String, &'static str),
    #[error("error gathering device information while adding custom device {path:?}: {reason}")]
    Device { path: String, reason: String },
    #[error("invalid device mode: {0}")]
    InvalidDeviceMode(String),
    #[error("invalid device cgroup rule format: '{0}'")]
    InvalidDeviceCgroupRule(String),
    #[error("cannot list host devices for --privileged: {0}")]
    HostDevices(std::io::Error),
    #[error("cannot build the OCI spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}

impl berth_core::error::HasErrorKind for SpecError {
    fn kind(&self) -> berth_core::ErrorKind {
        match self {
            SpecError::HostDevices(_) | SpecError::Build(_) => berth_core::ErrorKind::Internal,
            _ => berth_core::ErrorKind::InvalidArgument,
        }
    }
}

/// A `--ulimit name=soft[:hard]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub kind: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

impl FromStr for Ulimit {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SpecError::InvalidUlimit(s.to_owned());
        let (name, values) = s.split_once('=').ok_or_else(bad)?;
        let kind = PosixRlimitType::from_str(&format!("RLIMIT_{}", name.to_ascii_uppercase()))
            .map_err(|_| bad())?;
        let parse = |v: &str| -> Result<u64, SpecError> {
            if v == "-1" || v.eq_ignore_ascii_case("unlimited") {
                Ok(u64::MAX)
            } else {
                v.parse().map_err(|_| bad())
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (parse(soft)?, parse(hard)?),
            None => {
                let v = parse(values)?;
                (v, v)
            }
        };
        if soft > hard {
            return Err(bad());
        }
        Ok(Ulimit { kind, soft, hard })
    }
}

/// Which seccomp filter the container runs under.
#[derive(Debug, Clone, Default)]
pub enum SeccompChoice {
    /// Docker's default profile for the container's capabilities.
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`.
    Unconfined,
    /// A custom profile (`--security-opt seccomp=profile.json`).
    Custom(Box<LinuxSeccomp>),
}

/// Where the container gets one of the namespaces Docker lets a user choose (`--pid`, `--ipc`,
/// `--uts`, `--cgroupns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new namespace of its own (Docker's default).
    #[default]
    Private,
    /// The host's: the namespace is left out of the spec (`host`).
    Host,
    /// An existing one, such as another container's `/proc/<pid>/ns/<kind>` (`container:NAME`).
    Join(PathBuf),
}

impl NamespaceMode {
    /// The namespace of `typ` as the spec lists it, or `None` for the host's.
    fn to_oci(&self, typ: LinuxNamespaceType) -> Result<Option<LinuxNamespace>, SpecError> {
        Ok(match self {
            NamespaceMode::Private => Some(namespace(typ)?),
            NamespaceMode::Host => None,
            NamespaceMode::Join(path) => {
                let mut ns = namespace(typ)?;
                ns.set_path(Some(path.clone()));
                Some(ns)
            }
        })
    }
}

/// A user namespace for the container (`berth daemon --userns-remap`): its IDs mapped by
/// `map`, in the namespace at `path` (made by the engine with that mapping, so that the
/// network namespace it made inside it can be joined) or, without one, a new namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNamespace {
    pub map: berth_core::idmap::IdMap,
    pub path: Option<PathBuf>,
}

fn id_mapping(range: &berth_core::idmap::IdRange) -> Result<LinuxIdMapping, SpecError> {
    Ok(LinuxIdMappingBuilder::default()
        .container_id(range.container)
        .host_id(range.host)
        .size(range.size)
        .build()?)
}

/// The container's /dev/shm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shm {
    /// A tmpfs of its own of [`ContainerOptions::shm_size`] bytes (`--ipc private`).
    #[default]
    Tmpfs,
    /// This directory bound there: the engine's tmpfs of a shareable container, the host's
    /// /dev/shm (`--ipc host`) or the one of the container whose IPC namespace it joins.
    Bind(PathBuf),
    /// None at all (`--ipc none`).
    None,
}

/// Docker's /dev/shm size when `--shm-size` is not given: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// What `docker run` lets a user change, at the runtime's level (the engine resolves images,
/// names and networks into these).
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The root filesystem (absolute, or relative to the bundle).
    pub rootfs: PathBuf,
    /// The command and its arguments (entrypoint and cmd already joined).
    pub args: Vec<String>,
    /// `KEY=value` pairs; they override the defaults (PATH, TERM, HOSTNAME) of the same key.
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    pub cwd: Option<String>,
    /// `--user user[:group]`; names are looked up in the rootfs's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// Extra groups (`--group-add`): numbers, or names looked up in the rootfs's /etc/group.
    pub group_add: Vec<String>,
    /// `--oom-score-adj` (-1000 to 1000) of the container's processes.
    pub oom_score_adj: Option<i64>,
    pub hostname: Option<String>,
    pub readonly_rootfs: bool,
    /// Memory limit in bytes (`--memory`).
    pub memory: Option<i64>,
    /// Memory+swap limit in bytes (`--memory-swap`), -1 for unlimited swap. When only
    /// `memory` is set, Docker allows as much swap as memory (memory+swap = 2×memory).
    pub memory_swap: Option<i64>,
    /// `--cpus`: CPU quota as a number of CPUs.
    pub cpus: Option<f64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--cpuset-cpus` (`0-2,4`): the CPUs the container may run on.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: the memory nodes it may use.
    pub cpuset_mems: Option<String>,
    /// `--cpu-quota` in microseconds per period; -1 for none. Not with `cpus`.
    pub cpu_quota: Option<i64>,
    /// `--cpu-period` in microseconds (1000 to 1000000). Not with `cpus`.
    pub cpu_period: Option<i64>,
    /// `--memory-reservation` in bytes: the soft limit.
    pub memory_reservation: Option<i64>,
    /// `--memory-swappiness` 0 to 100 (cgroup v1 only; -1 or absent: the host's).
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable` (cgroup v1 only, as in Docker).
    pub oom_kill_disable: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    pub seccomp: SeccompChoice,
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: Vec<Ulimit>,
    /// `-t`: give the process a pseudo-terminal.
    pub tty: bool,
    /// The cgroups path; the runtime picks `/berth/<id>` when absent.
    pub cgroups_path: Option<String>,
    /// Join no new network namespace (`--network host`).
    pub host_network: bool,
    /// Join this network namespace (an nsfs file the engine made and configured) instead of
    /// a new one; ignored with `host_network`.
    pub netns_path: Option<PathBuf>,
    /// `--pid`: host, or another container's.
    pub pid_ns: NamespaceMode,
    /// `--ipc`: host, none, private, shareable or another container's (the namespace; its
    /// /dev/shm is [`ContainerOptions::shm`]).
    pub ipc_ns: NamespaceMode,
    /// `--uts host`: the host's hostname, which the container cannot change (no hostname is
    /// set in the spec).
    pub uts_ns: NamespaceMode,
    /// `--cgroupns host|private`; `None` is Docker's default for the host: private on cgroup
    /// v2, the host's on v1.
    pub cgroup_ns: Option<NamespaceMode>,
    /// What /dev/shm is.
    pub shm: Shm,
    /// `--shm-size` in bytes: the size of a private /dev/shm ([`DEFAULT_SHM_SIZE`] when absent).
    pub shm_size: Option<i64>,
    /// `--init`: pid 1 is berth's own minimal init, which forwards signals to the command,
    /// reaps orphans and exits with the command's status. Recorded in the spec as the
    /// annotation [`INIT_ANNOTATION`] (`org.berth.init`) = `"true"`.
    pub init: bool,
    /// `--device`: host device nodes made in the container, their use allowed.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`: more devices allowed (`c 1:3 mr`); ignored with `privileged`,
    /// which allows every device.
    pub device_cgroup_rules: Vec<String>,
    /// The user's mounts (volumes, binds, tmpfs), after Docker's standard ones; one at the
    /// destination of a standard mount replaces it (e.g. a bigger /dev/shm).
    pub mounts: Vec<UserMount>,
    /// A user namespace of its own (`--userns-remap`); none: the host's.
    pub userns: Option<UserNamespace>,
}

impl ContainerOptions {
    /// Options that run `args` in `rootfs` with every default.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerOptions {
            rootfs: rootfs.into(),
            args,
            ..Default::default()
        }
    }
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// A mount the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMount {
    /// A host directory or file (a bind mount, or a volume's `_data`).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        /// `rprivate` (default), `private`, `rshared`, `shared`, `rslave`, `slave`.
        propagation: Option<String>,
    },
    /// A memory-backed filesystem; `options` as mount(8) takes them (`size=64m,mode=1777`).
    Tmpfs {
        target: String,
        options: Vec<String>,
        readonly: bool,
    },
}

impl UserMount {
    pub fn target(&self) -> &str {
        match self {
            UserMount::Bind { target, .. } | UserMount::Tmpfs { target, .. } => target,
        }
    }

    fn to_oci(&self) -> Result<Mount, SpecError> {
        match self {
            UserMount::Bind {
                source,
                target,
                readonly,
                propagation,
            } => {
                let mut options = vec!["rbind".to_owned()];
                if *readonly {
                    options.push("ro".into());
                }
                options.push(propagation.clone().unwrap_or_else(|| "rprivate".into()));
                Ok(MountBuilder::default()
                    .destination(target.as_str())
                    .typ("bind")
                    .source(source)
                    .options(options)
                    .build()?)
            }
            UserMount::Tmpfs {
                target,
                options,
                readonly,
            } => {
                // Docker's tmpfs defaults, then what the user gave (later ones win).
                let mut all: Vec<String> = ["nosuid", "nodev", "noexec"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                all.extend(options.iter().cloned());
                if *readonly {
                    all.push("ro".into());
                }
                Ok(MountBuilder::default()
                    .destination(target.as_str())
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(all)
                    .build()?)
            }
        }
    }
}

/// `size=` for a tmpfs of `bytes`: in KiB when it is a whole number of them (so Docker's
/// default stays `65536k`).
fn tmpfs_size(bytes: i64) -> String {
    if bytes % 1024 == 0 {
        format!("size={}k", bytes / 1024)
    } else {
        format!("size={bytes}")
    }
}

/// Docker's /dev/shm for `opts`: a tmpfs of its own, a bind, or none.
fn shm_mount(opts: &ContainerOptions) -> Result<Option<Mount>, SpecError> {
    Ok(match &opts.shm {
        Shm::Tmpfs => {
            let size = tmpfs_size(opts.shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE));
            Some(mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", &size],
            )?)
        }
        Shm::Bind(source) => Some(
            MountBuilder::default()
                .destination("/dev/shm")
                .typ("bind")
                .source(source)
                .options(vec!["rbind".to_owned(), "rprivate".to_owned()])
                .build()?,
        ),
        Shm::None => None,
    })
}

/// Docker's standard mounts; `privileged` makes sysfs and cgroupfs writable; /dev/shm as
/// `shm` has it.
fn standard_mounts(privileged: bool, shm: Option<Mount>) -> Result<Vec<Mount>, SpecError> {
    let ro_or_rw = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_or_rw],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro_or_rw],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    mounts.extend(shm);
    Ok(mounts)
}

/// The standard mounts with the /dev/mqueue `opts` can have: a container in a user namespace
/// of its own cannot mount the message queues of the host's IPC namespace (`--ipc host`),
/// which belongs to the host's user namespace, so it gets the host's /dev/mqueue bound where
/// the host has one mounted, and none otherwise (the queues work without the mount).
fn mqueue_of(opts: &ContainerOptions, mut mounts: Vec<Mount>) -> Result<Vec<Mount>, SpecError> {
    if opts.userns.is_none() || opts.ipc_ns != NamespaceMode::Host {
        return Ok(mounts);
    }
    let host_has_one = host::has_mqueue();
    let bound = mount(
        "/dev/mqueue",
        "bind",
        "/dev/mqueue",
        &["rbind", "nosuid", "noexec", "nodev"],
    )?;
    mounts.retain(|m| m.destination() != Path::new("/dev/mqueue"));
    if host_has_one {
        mounts.push(bound);
    }
    Ok(mounts)
}

/// The standard mounts, minus those the user's replace, then the user's in order.
fn with_user_mounts(standard: Vec<Mount>, user: &[UserMount]) -> Result<Vec<Mount>, SpecError> {
    let mut out: Vec<Mount> = standard
        .into_iter()
        .filter(|m| {
            !user
                .iter()
                .any(|u| Path::new(u.target()) == m.destination().as_path())
        })
        .collect();
    for u in user {
        out.push(u.to_oci()?);
    }
    Ok(out)
}

fn device_rule(
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .access(access);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// The device cgroup rules Docker uses: deny everything, then allow mknod of any device and
/// use of the standard character devices, ptys, and /dev/net/tun.
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    use LinuxDeviceType::{B, C};
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    Ok(vec![
        deny_all,
        device_rule(Some(C), None, None, "m")?,
        device_rule(Some(B), None, None, "m")?,
        device_rule(Some(C), Some(1), Some(3), "rwm")?, // null
        device_rule(Some(C), Some(1), Some(8), "rwm")?, // random
        device_rule(Some(C), Some(1), Some(7), "rwm")?, // full
        device_rule(Some(C), Some(5), Some(0), "rwm")?, // tty
        device_rule(Some(C), Some(1), Some(5), "rwm")?, // zero
        device_rule(Some(C), Some(1), Some(9), "rwm")?, // urandom
        device_rule(Some(C), Some(136), None, "rwm")?,  // /dev/pts/*
        device_rule(Some(C), Some(5), Some(2), "rwm")?, // ptmx
        device_rule(Some(C), Some(10), Some(200), "rwm")?, // net/tun
    ])
}

fn char_device(path: &str, major: i64, minor: i64) -> Result<LinuxDevice, SpecError> {
    Ok(LinuxDeviceBuilder::default()
        .path(path)
        .typ(LinuxDeviceType::C)
        .major(major)
        .minor(minor)
        .file_mode(0o666u32)
        .uid(0u32)
        .gid(0u32)
        .build()?)
}

fn default_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    Ok(vec![
        char_device("/dev/null", 1, 3)?,
        char_device("/dev/zero", 1, 5)?,
        char_device("/dev/full", 1, 7)?,
        char_device("/dev/random", 1, 8)?,
        char_device("/dev/urandom", 1, 9)?,
        char_device("/dev/tty", 5, 0)?,
    ])
}

/// Every device node under the host's /dev, for `--privileged` (as Docker gives it).
fn host_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    const SKIP: [&str; 4] = ["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.udev"];
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(SpecError::HostDevices)? {
            let entry = entry.map_err(SpecError::HostDevices)?;
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !SKIP.iter().any(|s| path == Path::new(s)) {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            // /dev/console is the container's own pty; /dev/ptmx comes from its devpts.
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue;
            }
            let rdev = meta.rdev();
            out.push(
                LinuxDeviceBuilder::default()
                    .path(&path)
                    .typ(typ)
                    .major(nix::sys::stat::major(rdev) as i64)
                    .minor(nix::sys::stat::minor(rdev) as i64)
                    .file_mode(meta.mode() & 0o7777)
                    .uid(meta.uid())
                    .gid(meta.gid())
                    .build()?,
            );
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

fn namespace(typ: LinuxNamespaceType) -> Result<LinuxNamespace, SpecError> {
    Ok(LinuxNamespaceBuilder::default().typ(typ).build()?)
}

/// Sysctls Docker accepts in a container: namespaced ones only (IPC and, without host
/// networking, `net.*`).
fn check_sysctl(key: &str, host_network: bool) -> Result<(), SpecError> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") || key == "kernel.shm_rmid_forced" {
        return Ok(());
    }
    if key.starts_with("net.") {
        return if host_network {
            Err(SpecError::InvalidSysctl(
                key.to_owned(),
                "net.* sysctls are not allowed with the host network",
            ))
        } else {
            Ok(())
        };
    }
    Err(SpecError::InvalidSysctl(
        key.to_owned(),
        "not a namespaced sysctl",
    ))
}

/// A CPU or memory-node list (`0-2,4`), as Docker reads it: its numbers, or `None`.
fn parse_cpuset(list: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    if list.is_empty() {
        return Some(out);
    }
    for item in list.split(',') {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo > hi {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// Docker's check of `--cpuset-cpus`/`--cpuset-mems` (`what`: "cpus" or "mems") against what
/// the host has (`available`, a list).
fn check_cpuset(list: &str, available: &str, what: &str) -> Result<(), SpecError> {
    let bad = |m: String| Err(SpecError::InvalidResource(m));
    let Some(asked) = parse_cpuset(list) else {
        return bad(format!(
            "Invalid value {list} for cpuset {what}: invalid format: {list}"
        ));
    };
    let have = parse_cpuset(available).unwrap_or_default();
    if asked.iter().all(|n| have.contains(n)) {
        return Ok(());
    }
    let noun = if what == "cpus" {
        "CPUs"
    } else {
        "memory nodes"
    };
    bad(format!(
        "Requested {noun} are not available - requested {list}, available: {available}"
    ))
}

/// Docker's checks of the CPU and memory settings it validates at create.
fn check_resources(opts: &ContainerOptions) -> Result<(), SpecError> {
    let bad = |m: &str| Err(SpecError::InvalidResource(m.to_owned()));
    if opts.cpus.is_some() && opts.cpu_period.is_some_and(|p| p > 0) {
        return bad("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if opts.cpus.is_some() && opts.cpu_quota.is_some_and(|q| q > 0) {
        return bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if opts
        .cpu_period
        .is_some_and(|p| p != 0 && !(1000..=1_000_000).contains(&p))
    {
        return bad(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        );
    }
    if opts.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    if let Some(s) = opts.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(SpecError::InvalidResource(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if let Some(r) = opts.memory_reservation.filter(|r| *r > 0) {
        if r < 6 * 1024 * 1024 {
            return bad("Minimum memory reservation allowed is 6MB");
        }
        if opts.memory.is_some_and(|m| m > 0 && m < r) {
            return bad(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            );
        }
    }
    if let Some(cpus) = opts.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        check_cpuset(cpus, &host::cpuset_cpus(), "cpus")?;
    }
    if let Some(mems) = opts.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        check_cpuset(mems, &host::cpuset_mems(), "mems")?;
    }
    Ok(())
}

/// Docker's warnings for settings of `opts` this host discards or that are risky (what
/// `docker create` prints): swappiness and the OOM killer on cgroup v2, an OOM killer
/// disabled without a memory limit.
pub fn warnings(opts: &ContainerOptions) -> Vec<String> {
    let mut out = Vec::new();
    let v2 = host::cgroup_mode() == CgroupMode::Unified;
    if v2 && opts.memory_swappiness.is_some_and(|s| s != -1) {
        out.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".to_owned());
    }
    if opts.oom_kill_disable {
        if v2 {
            out.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded.".to_owned(),
            );
        } else if opts.memory.is_none_or(|m| m <= 0) {
            out.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".to_owned());
        }
    }
    out
}

/// Merges `KEY=value` lists: later entries replace earlier ones with the same key, order kept.
fn merge_env(lists: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for item in list.iter() {
            let key = item.split_once('=').map_or(item.as_str(), |(k, _)| k);
            match out
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
            {
                Some(existing) => existing.clone_from(item),
                None => out.push(item.clone()),
            }
        }
    }
    out
}

/// The OCI spec for a container with Docker's defaults, changed by `opts`.
pub fn docker_default(opts: &ContainerOptions) -> Result<Spec, SpecError> {
    let caps = caps::resolve(opts.privileged, &opts.cap_add, &opts.cap_drop)?;
    let cap_set: HashSet<Capability> = caps.clone();

    let user = match &opts.user {
        Some(u) => user::resolve(u, Some(&opts.rootfs))?,
        None => ResolvedUser::default(),
    };
    let mut gids = user.additional_gids.clone();
    for g in user::group_ids(&opts.group_add, Some(&opts.rootfs))? {
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    let mut user_b = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !gids.is_empty() {
        user_b = user_b.additional_gids(gids);
    }

    let mut defaults = vec![format!("PATH={DEFAULT_PATH}")];
    if let Some(h) = &opts.hostname {
        defaults.push(format!("HOSTNAME={h}"));
    }
    if opts.tty {
        defaults.push("TERM=xterm".to_owned());
    }
    let env = merge_env(&[&defaults, &opts.env]);

    // Like Docker, no rlimit is set unless asked for: the container inherits the engine's.
    let mut rlimits: Vec<PosixRlimit> = Vec::new();
    for u in &opts.ulimits {
        rlimits.retain(|r| r.typ() != u.kind);
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(u.kind)
                .soft(u.soft)
                .hard(u.hard)
                .build()?,
        );
    }

    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;

    let mut process = ProcessBuilder::default()
        .terminal(opts.tty)
        .user(user_b.build()?)
        .args(opts.args.clone())
        .env(env)
        .cwd(
            opts.cwd
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
        )
        .capabilities(capabilities)
        .rlimits(rlimits)
        .build()?;
    if let Some(adj) = opts.oom_score_adj.filter(|a| *a != 0) {
        if !(-1000..=1000).contains(&adj) {
            return Err(SpecError::InvalidResource(format!(
                "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
            )));
        }
        process.set_oom_score_adj(Some(adj as i32));
    }
    // oci-spec's defaults (which the builders start from) set noNewPrivileges; Docker does
    // not. And only `true` is ever written: libcontainer 0.7 treats an explicit `false` like
    // `true` for the order of seccomp and capability dropping, and the filter then fails to load.
    process.set_no_new_privileges(opts.no_new_privileges.then_some(true));

    // Devices: Docker's, the host's with --privileged, then the user's (which replace one at
    // the same path), each allowed with its permissions, then the extra rules.
    let mut linux_devices = if opts.privileged {
        host_devices()?
    } else {
        default_devices()?
    };
    let mut device_rules = if opts.privileged {
        vec![device_rule(None, None, None, "rwm")?]
    } else {
        default_device_rules()?
    };
    for mapping in &opts.devices {
        let access = mapping.access()?;
        for dev in mapping.resolve()? {
            if opts.privileged && dev.path() == Path::new(&mapping.path_on_host) {
                // Already there, as every host device is (Docker skips it too).
                continue;
            }
            if !opts.privileged {
                device_rules.push(devices::rule_for(&dev, access)?);
            }
            linux_devices.retain(|d| d.path() != dev.path());
            linux_devices.push(dev);
        }
    }
    for rule in &opts.device_cgroup_rules {
        let rule = devices::parse_cgroup_rule(rule)?;
        if !opts.privileged {
            device_rules.push(rule);
        }
    }

    // Resources.
    check_resources(opts)?;
    let v1 = host::cgroup_mode() == CgroupMode::Legacy;
    let mut resources = LinuxResourcesBuilder::default().devices(device_rules);
    let reservation = opts.memory_reservation.filter(|r| *r > 0);
    // Swappiness and the OOM killer switch exist on cgroup v1 only; Docker drops them on v2.
    let swappiness = opts
        .memory_swappiness
        .filter(|s| *s != -1 && v1)
        .map(|s| s as u64);
    let oom_kill_disable = opts.oom_kill_disable && v1;
    if opts.memory.is_some() || reservation.is_some() || swappiness.is_some() || oom_kill_disable {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(mem) = opts.memory {
            if mem < 6 * 1024 * 1024 {
                return Err(SpecError::InvalidMemory(mem));
            }
            m = m.limit(mem);
            let swap = match opts.memory_swap {
                Some(s) => Some(s),
                None if host::swap_accounting() => Some(mem * 2),
                None => None,
            };
            if let Some(s) = swap {
                m = m.swap(s);
            }
        }
        if let Some(r) = reservation {
            m = m.reservation(r);
        }
        if let Some(s) = swappiness {
            m = m.swappiness(s);
        }
        if oom_kill_disable {
            m = m.disable_oom_killer(true);
        }
        resources = resources.memory(m.build()?);
    }
    let cpuset_cpus = opts.cpuset_cpus.clone().filter(|c| !c.is_empty());
    let cpuset_mems = opts.cpuset_mems.clone().filter(|m| !m.is_empty());
    let quota = opts.cpu_quota.filter(|q| *q != 0);
    let period = opts.cpu_period.filter(|p| *p > 0).map(|p| p as u64);
    if opts.cpus.is_some()
        || opts.cpu_shares.is_some()
        || cpuset_cpus.is_some()
        || cpuset_mems.is_some()
        || quota.is_some()
        || period.is_some()
    {
        let mut c = LinuxCpuBuilder::default();
        if let Some(q) = quota {
            c = c.quota(q);
        }
        if let Some(p) = period {
            c = c.period(p);
        }
        if let Some(cpus) = cpuset_cpus {
            c = c.cpus(cpus);
        }
        if let Some(mems) = cpuset_mems {
            c = c.mems(mems);
        }
        if let Some(cpus) = opts.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(SpecError::InvalidCpus(cpus));
            }
            const PERIOD: u64 = 100_000;
            c = c
                .period(PERIOD)
                .quota((cpus * PERIOD as f64).round() as i64);
        }
        if let Some(shares) = opts.cpu_shares {
            c = c.shares(shares);
        }
        resources = resources.cpu(c.build()?);
    }
    if let Some(limit) = opts.pids_limit {
        // Docker: 0 or -1 means unlimited.
        if limit > 0 {
            resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
        }
    }

    // In Docker's order; `host` leaves a namespace out, `container:NAME` joins its path.
    let mut namespaces: Vec<LinuxNamespace> = [
        opts.pid_ns.to_oci(LinuxNamespaceType::Pid)?,
        opts.ipc_ns.to_oci(LinuxNamespaceType::Ipc)?,
        opts.uts_ns.to_oci(LinuxNamespaceType::Uts)?,
        Some(namespace(LinuxNamespaceType::Mount)?),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !opts.host_network {
        let mut net = namespace(LinuxNamespaceType::Network)?;
        if let Some(path) = &opts.netns_path {
            net.set_path(Some(path.clone()));
        }
        namespaces.push(net);
    }
    // Docker gives each container its own cgroup namespace on v2 hosts, the host's on v1,
    // unless `--cgroupns` says otherwise.
    let cgroup_ns = opts.cgroup_ns.clone().unwrap_or_else(|| {
        if host::cgroup_mode() == CgroupMode::Unified {
            NamespaceMode::Private
        } else {
            NamespaceMode::Host
        }
    });
    namespaces.extend(cgroup_ns.to_oci(LinuxNamespaceType::Cgroup)?);

    let mut sysctls = HashMap::new();
    for (k, v) in &opts.sysctls {
        check_sysctl(k, opts.host_network)?;
        sysctls.insert(k.clone(), v.clone());
    }

    if let Some(userns) = &opts.userns {
        let mut ns = namespace(LinuxNamespaceType::User)?;
        ns.set_path(userns.path.clone());
        namespaces.insert(0, ns);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .devices(linux_devices);
    if let Some(userns) = &opts.userns {
        linux = linux
            .uid_mappings(vec![id_mapping(&userns.map.uids)?])
            .gid_mappings(vec![id_mapping(&userns.map.gids)?]);
    }
    if !sysctls.is_empty() {
        linux = linux.sysctl(sysctls);
    }
    if let Some(path) = &opts.cgroups_path {
        linux = linux.cgroups_path(PathBuf::from(path));
    }
    if opts.privileged {
        linux = linux.masked_paths(Vec::new()).readonly_paths(Vec::new());
    } else {
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            );
        match &opts.seccomp {
            SeccompChoice::Default => linux = linux.seccomp(seccomp::docker_default(&cap_set)),
            SeccompChoice::Custom(profile) => linux = linux.seccomp((**profile).clone()),
            SeccompChoice::Unconfined => {}
        }
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(opts.rootfs.clone())
                .readonly(opts.readonly_rootfs)
                .build()?,
        )
        .process(process)
        .mounts(with_user_mounts(
            mqueue_of(opts, standard_mounts(opts.privileged, shm_mount(opts)?)?)?,
            &opts.mounts,
        )?)
        .linux(linux.build()?)
        .build()?;
    // Not oci-spec's default ("youki"): the engine names the host, or it keeps the runtime's.
    // Without a UTS namespace of its own the container has the host's name and sets none.
    spec.set_hostname(
        opts.hostname
            .clone()
            .filter(|_| opts.uts_ns != NamespaceMode::Host),
    );
    spec.set_annotations(
        opts.init
            .then(|| [(INIT_ANNOTATION.to_owned(), "true".to_owned())].into()),
    );
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(opts: ContainerOptions) -> Spec {
        docker_default(&opts).unwrap()
    }

    fn base() -> ContainerOptions {
        ContainerOptions::new("rootfs", vec!["sh".into()])
    }

    #[test]
    fn defaults_match_docker() {
        let s = spec(base());
        assert!(s.annotations().is_none());
        assert!(!wants_init(&s));
        let process = s.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert_eq!(process.cwd(), &PathBuf::from("/"));
        assert_eq!(
            process.no_new_privileges(),
            None,
            "Docker leaves setuid working"
        );
        assert!(process.rlimits().as_ref().is_none_or(|r| r.is_empty()));
        assert_eq!(s.hostname(), &None);
        assert!(process
            .env()
            .as_ref()
            .unwrap()
            .contains(&format!("PATH={DEFAULT_PATH}")));
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 10);
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
        assert!(linux.seccomp().is_some());
        let mounts = s.mounts().as_ref().unwrap();
        let shm = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert!(shm
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=65536k".to_owned()));
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_owned()));
    }

    #[test]
    fn privileged_lifts_confinement() {
        let s = spec(ContainerOptions {
            privileged: true,
            ..base()
        });
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert!(linux.masked_paths().as_ref().is_none_or(|m| m.is_empty()));
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
    }

    #[test]
    fn limits_and_flags() {
        let s = spec(ContainerOptions {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpus: Some(1.5),
            pids_limit: Some(20),
            readonly_rootfs: true,
            tty: true,
            hostname: Some("box".into()),
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ulimits: vec!["nofile=10:20".parse().unwrap()],
            sysctls: [("net.ipv4.ip_forward".to_owned(), "1".to_owned())].into(),
            seccomp: SeccompChoice::Unconfined,
            no_new_privileges: true,
            init: true,
            ..base()
        });
        assert_eq!(
            s.annotations().as_ref().unwrap()["org.berth.init"],
            "true",
            "--init is recorded for the runtime"
        );
        assert!(wants_init(&s));
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(150_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 20);
        assert!(s.root().as_ref().unwrap().readonly().unwrap());
        assert_eq!(s.hostname().as_deref(), Some("box"));
        let p = s.process().as_ref().unwrap();
        assert!(p.terminal().unwrap());
        assert_eq!(p.no_new_privileges(), Some(true));
        let env = p.env().as_ref().unwrap();
        assert_eq!(env[0], "PATH=/bin");
        assert!(env.contains(&"TERM=xterm".to_owned()));
        assert!(env.contains(&"HOSTNAME=box".to_owned()));
        let nofile = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!((nofile.soft(), nofile.hard()), (10, 20));
        assert!(s.linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            docker_default(&ContainerOptions {
                cap_add: vec!["WIZARD".into()],
                ..base()
            }),
            Err(SpecError::UnknownCapability(_))
        ));
        assert!(matches!(
            docker_default(&ContainerOptions {
                memory: Some(1024),
                ..base()
            }),
            Err(SpecError::InvalidMemory(_))
        ));
        assert!(matches!(
            docker_default(&ContainerOptions {
                cpus: Some(-1.0),
                ..base()
            }),
            Err(SpecError::InvalidCpus(_))
        ));
        assert!(matches!(
            docker_default(&ContainerOptions {
                sysctls: [("kernel.panic".to_owned(), "1".to_owned())].into(),
                ..base()
            }),
            Err(SpecError::InvalidSysctl(..))
        ));
        for bad in ["nofile", "nofile=a", "bogus=1", "nofile=2:1"] {
            assert!(bad.parse::<Ulimit>().is_err(), "{bad} accepted");
        }
        assert_eq!("nproc=unlimited".parse::<Ulimit>().unwrap().soft, u64::MAX);
    }

    fn namespaces(s: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        s.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    }

    fn shm(s: &Spec) -> Option<Mount> {
        s.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .cloned()
    }

    #[test]
    fn user_devices_are_made_and_allowed() {
        let s = spec(ContainerOptions {
            devices: vec![DeviceMapping {
                path_on_host: "/dev/null".into(),
                path_in_container: "/dev/mynull".into(),
                permissions: "rw".into(),
            }],
            device_cgroup_rules: vec!["c 10:200 rwm".into(), "b *:* m".into()],
            ..base()
        });
        let linux = s.linux().as_ref().unwrap();
        let devs = linux.devices().as_ref().unwrap();
        assert_eq!(devs.len(), 7);
        let mine = devs
            .iter()
            .find(|d| d.path() == Path::new("/dev/mynull"))
            .unwrap();
        assert_eq!((mine.major(), mine.minor()), (1, 3));
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        let n = default_device_rules().unwrap().len();
        assert_eq!(rules.len(), n + 3);
        assert_eq!(rules[n].access().as_deref(), Some("rw"));
        assert_eq!(rules[n].major(), Some(1));
        assert_eq!(rules[n + 2].typ(), Some(LinuxDeviceType::B));
        assert_eq!(rules[n + 2].major(), None);
        // Without any, Docker's devices and rules only.
        let plain = spec(base());
        let linux = plain.linux().as_ref().unwrap();
        assert_eq!(linux.devices().as_ref().unwrap().len(), 6);
        assert_eq!(
            linux
                .resources()
                .as_ref()
                .unwrap()
                .devices()
                .as_ref()
                .unwrap()
                .len(),
            n
        );
        for (opts, words) in [
            (
                ContainerOptions {
                    devices: vec![DeviceMapping {
                        path_on_host: "/dev/nonexistent".into(),
                        path_in_container: String::new(),
                        permissions: String::new(),
                    }],
                    ..base()
                },
                "error gathering device information while adding custom device \"/dev/nonexistent\": no such file or directory",
            ),
            (
                ContainerOptions {
                    device_cgroup_rules: vec!["c 1:3".into()],
                    ..base()
                },
                "invalid device cgroup rule format: 'c 1:3'",
            ),
        ] {
            assert_eq!(docker_default(&opts).unwrap_err().to_string(), words);
        }
    }

    #[test]
    fn cpu_and_memory_settings_reach_the_resources() {
        let s = spec(ContainerOptions {
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            cpu_quota: Some(50_000),
            cpu_period: Some(200_000),
            memory: Some(64 << 20),
            memory_reservation: Some(32 << 20),
            memory_swappiness: Some(10),
            oom_kill_disable: true,
            ..base()
        });
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(cpu.mems().as_deref(), Some("0"));
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(200_000)));
        let mem = r.memory().as_ref().unwrap();
        assert_eq!(mem.reservation(), Some(32 << 20));
        let v1 = host::cgroup_mode() == CgroupMode::Legacy;
        // Cgroup v1 only, as Docker.
        assert_eq!(mem.swappiness(), v1.then_some(10));
        assert_eq!(mem.disable_oom_killer(), v1.then_some(true));
        // A reservation alone makes a memory section without a limit.
        let s = spec(ContainerOptions {
            memory_reservation: Some(32 << 20),
            ..base()
        });
        let mem = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let mem = mem.memory().as_ref().unwrap();
        assert_eq!((mem.limit(), mem.reservation()), (None, Some(32 << 20)));
        // None of them: no cpu or memory section at all.
        let plain = spec(base());
        let r = plain
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none());
        // -1 swappiness is "the host's".
        let s = spec(ContainerOptions {
            memory_swappiness: Some(-1),
            ..base()
        });
        assert!(s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .memory()
            .is_none());
    }

    #[test]
    fn cpu_and_memory_settings_are_checked_as_docker_does() {
        let cases: Vec<(ContainerOptions, &str)> = vec![
            (
                ContainerOptions { cpus: Some(1.0), cpu_quota: Some(50_000), ..base() },
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ),
            (
                ContainerOptions { cpus: Some(1.0), cpu_period: Some(50_000), ..base() },
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ),
            (
                ContainerOptions { cpu_period: Some(999), ..base() },
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ),
            (
                ContainerOptions { cpu_quota: Some(999), ..base() },
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ),
            (
                ContainerOptions { memory_swappiness: Some(101), ..base() },
                "Invalid value: 101, valid memory swappiness range is 0-100",
            ),
            (
                ContainerOptions { memory_swappiness: Some(-2), ..base() },
                "Invalid value: -2, valid memory swappiness range is 0-100",
            ),
            (
                ContainerOptions { memory_reservation: Some(1024), ..base() },
                "Minimum memory reservation allowed is 6MB",
            ),
            (
                ContainerOptions {
                    memory: Some(64 << 20),
                    memory_reservation: Some(128 << 20),
                    ..base()
                },
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ),
            (
                ContainerOptions { cpuset_cpus: Some("0-x".into()), ..base() },
                "Invalid value 0-x for cpuset cpus: invalid format: 0-x",
            ),
            (
                ContainerOptions { cpuset_mems: Some("1-0".into()), ..base() },
                "Invalid value 1-0 for cpuset mems: invalid format: 1-0",
            ),
        ];
        for (opts, words) in cases {
            assert_eq!(docker_default(&opts).unwrap_err().to_string(), words);
        }
        let e = docker_default(&ContainerOptions {
            cpuset_cpus: Some("4000".into()),
            ..base()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Requested CPUs are not available - requested 4000, available: {}",
                host::cpuset_cpus()
            )
        );
        // -1 quota (none) goes with --cpus; a quota alone is fine.
        assert!(docker_default(&ContainerOptions {
            cpus: Some(1.0),
            cpu_quota: Some(-1),
            ..base()
        })
        .is_ok());
    }

    #[test]
    fn cpuset_lists_read_as_docker_reads_them() {
        assert_eq!(
            parse_cpuset("0-2,5")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [0, 1, 2, 5]
        );
        assert!(parse_cpuset("").unwrap().is_empty());
        for bad in ["a", "1-", "-1", "2-1", "1,,2", " 1"] {
            assert!(parse_cpuset(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn groups_and_the_oom_score() {
        let s = spec(ContainerOptions {
            group_add: vec!["10".into(), "10".into(), "27".into()],
            oom_score_adj: Some(100),
            ..base()
        });
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[10, 27][..]));
        assert_eq!(p.oom_score_adj(), Some(100));
        let plain = spec(base());
        let p = plain.process().as_ref().unwrap();
        assert_eq!(p.oom_score_adj(), None);
        assert!(p.user().additional_gids().is_none());
        let e = docker_default(&ContainerOptions {
            oom_score_adj: Some(1001),
            ..base()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid value 1001, range for oom score adj is [-1000, 1000]"
        );
        let e = docker_default(&ContainerOptions {
            group_add: vec!["nosuchgroup".into()],
            ..base()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nosuchgroup: no matching entries in group file"
        );
    }

    #[test]
    fn default_namespaces_are_dockers() {
        let ns = namespaces(&spec(base()));
        let types: Vec<_> = ns.iter().map(|(t, _)| *t).collect();
        let mut expected = vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
        ];
        if host::cgroup_mode() == CgroupMode::Unified {
            expected.push(LinuxNamespaceType::Cgroup);
        }
        assert_eq!(types, expected);
        assert!(ns.iter().all(|(_, p)| p.is_none()));
    }

    #[test]
    fn host_modes_leave_namespaces_out_and_joins_name_paths() {
        let s = spec(ContainerOptions {
            pid_ns: NamespaceMode::Host,
            ipc_ns: NamespaceMode::Join("/proc/42/ns/ipc".into()),
            uts_ns: NamespaceMode::Host,
            cgroup_ns: Some(NamespaceMode::Private),
            hostname: Some("box".into()),
            ..base()
        });
        let ns = namespaces(&s);
        assert!(!ns.iter().any(|(t, _)| *t == LinuxNamespaceType::Pid));
        assert!(!ns.iter().any(|(t, _)| *t == LinuxNamespaceType::Uts));
        assert!(ns.contains(&(LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into()))));
        assert!(ns.contains(&(LinuxNamespaceType::Cgroup, None)));
        // The host's name: none is set, but HOSTNAME is still the one given.
        assert_eq!(s.hostname(), &None);
        let s = spec(ContainerOptions {
            pid_ns: NamespaceMode::Join("/proc/7/ns/pid".into()),
            cgroup_ns: Some(NamespaceMode::Host),
            ..base()
        });
        let ns = namespaces(&s);
        assert_eq!(
            ns[0],
            (LinuxNamespaceType::Pid, Some("/proc/7/ns/pid".into()))
        );
        assert!(!ns.iter().any(|(t, _)| *t == LinuxNamespaceType::Cgroup));
    }

    #[test]
    fn a_user_namespace_comes_first_with_its_mappings() {
        use berth_core::idmap::{IdMap, IdRange};
        let map = IdMap {
            uids: IdRange {
                container: 0,
                host: 100_000,
                size: 65536,
            },
            gids: IdRange {
                container: 0,
                host: 200_000,
                size: 65536,
            },
        };
        let s = spec(ContainerOptions {
            userns: Some(UserNamespace {
                map,
                path: Some("/var/lib/berth/containers/x/userns".into()),
            }),
            ..base()
        });
        assert_eq!(
            namespaces(&s)[0],
            (
                LinuxNamespaceType::User,
                Some("/var/lib/berth/containers/x/userns".into())
            )
        );
        let linux = s.linux().as_ref().unwrap();
        let line = |m: &Option<Vec<LinuxIdMapping>>| {
            let m = &m.as_ref().unwrap()[0];
            (m.container_id(), m.host_id(), m.size())
        };
        assert_eq!(line(linux.uid_mappings()), (0, 100_000, 65536));
        assert_eq!(line(linux.gid_mappings()), (0, 200_000, 65536));
        // With the host's IPC namespace, the host's message queues are bound.
        let mqueue = |s: &Spec| {
            s.mounts()
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.destination() == Path::new("/dev/mqueue"))
                .map(|m| m.typ().clone().unwrap())
                .unwrap()
        };
        assert_eq!(mqueue(&s), "mqueue");
        let host_ipc = spec(ContainerOptions {
            userns: Some(UserNamespace { map, path: None }),
            ipc_ns: NamespaceMode::Host,
            ..base()
        });
        assert_eq!(
            host_ipc
                .mounts()
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.destination() == Path::new("/dev/mqueue"))
                .map(|m| m.typ().clone().unwrap()),
            host::has_mqueue().then(|| "bind".to_owned())
        );
        // None by default: the host's, and no mappings.
        let s = spec(base());
        assert!(!namespaces(&s)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User));
        assert!(s.linux().as_ref().unwrap().uid_mappings().is_none());
    }

    #[test]
    fn shm_is_sized_bound_or_left_out() {
        let sized = shm(&spec(ContainerOptions {
            shm_size: Some(8 << 20),
            ..base()
        }))
        .unwrap();
        let options = sized.options().as_ref().unwrap();
        assert!(options.contains(&"size=8192k".to_owned()), "{options:?}");
        assert!(options.contains(&"mode=1777".to_owned()));
        let odd = shm(&spec(ContainerOptions {
            shm_size: Some(1000),
            ..base()
        }))
        .unwrap();
        assert!(odd
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1000".to_owned()));
        let bound = shm(&spec(ContainerOptions {
            shm: Shm::Bind("/var/lib/berth/containers/x/shm".into()),
            ..base()
        }))
        .unwrap();
        assert_eq!(bound.typ().as_deref(), Some("bind"));
        assert_eq!(
            bound.source().as_deref(),
            Some(Path::new("/var/lib/berth/containers/x/shm"))
        );
        assert!(shm(&spec(ContainerOptions {
            shm: Shm::None,
            ..base()
        }))
        .is_none());
    }
}
