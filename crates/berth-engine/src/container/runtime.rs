//! A container's machinery: its state file brought up to date from what the shim recorded,
//! its rootfs (an overlay of the image's snapshots), its OCI bundle (Docker's default spec
//! from the record's HostConfig), and the `berth-runtime` calls that act on it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_core::idmap::IdMap;
use berth_core::timing::Step;
use berth_oci::shim;
use berth_oci::spec::{
    docker_default, ContainerOptions, DeviceMapping, NamespaceMode, SeccompChoice, Shm, Ulimit,
    UserNamespace,
};

use super::record::{now, Record, State, Status};
use crate::error::{EngineError, Result};
use crate::Engine;

fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// A `container:NAME` mode's NAME (empty names are invalid modes).
fn joined(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:").filter(|n| !n.is_empty())
}

/// The PID, IPC, UTS and cgroup namespaces and the /dev/shm a HostConfig asks for, as far as
/// they need no other container (`container:NAME` is resolved at start: [`Engine::join`]).
/// Docker's words for a mode it does not know.
fn namespace_options(rec: &Record, opts: &mut ContainerOptions) -> Result<()> {
    let hc = &rec.host_config;
    opts.pid_ns = match hc.pid_mode.as_deref().unwrap_or("") {
        "" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        m if joined(m).is_some() => NamespaceMode::Private,
        m => return Err(EngineError::invalid(format!("invalid PID mode: {m}"))),
    };
    // Docker's default IPC mode is `private`: a namespace and a /dev/shm of its own, which no
    // other container may join; `shareable` makes the engine's own tmpfs its /dev/shm.
    (opts.ipc_ns, opts.shm) = match ipc_mode(rec) {
        "private" | "shareable" => (NamespaceMode::Private, Shm::Tmpfs),
        "none" => (NamespaceMode::Private, Shm::None),
        "host" => (NamespaceMode::Host, Shm::Bind("/dev/shm".into())),
        m if joined(m).is_some() => (NamespaceMode::Private, Shm::Tmpfs),
        m => return Err(EngineError::invalid(format!("invalid IPC mode: {m}"))),
    };
    opts.uts_ns = match hc.uts_mode.as_deref().unwrap_or("") {
        "" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        m => return Err(EngineError::invalid(format!("invalid UTS mode: {m}"))),
    };
    opts.cgroup_ns = match hc.cgroupns_mode.map(|m| m.to_string()).as_deref() {
        None | Some("") => None,
        Some("private") => Some(NamespaceMode::Private),
        Some("host") => Some(NamespaceMode::Host),
        Some(m) => {
            return Err(EngineError::invalid(format!(
                "invalid cgroup namespace mode: {m}"
            )))
        }
    };
    opts.shm_size = hc.shm_size.filter(|s| *s > 0);
    Ok(())
}

/// The record's IPC mode, Docker's default (`private`) when it names none.
fn ipc_mode(rec: &Record) -> &str {
    match rec.host_config.ipc_mode.as_deref() {
        None | Some("") => "private",
        Some(m) => m,
    }
}

/// Whether this host enforces AppArmor (berth loads no profile of its own).
fn apparmor_on() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
}

/// The OCI runtimes a container may name (`--runtime`): berth's own, under its names and
/// runc's, whose CLI and behaviour it has; empty is the default, berth's.
const RUNTIMES: [&str; 4] = ["", "runc", "berth", "berth-runtime"];

/// `--runtime` and `--isolation` as Docker checks them at create.
fn check_runtime(rec: &Record) -> Result<()> {
    let hc = &rec.host_config;
    let runtime = hc.runtime.as_deref().unwrap_or("");
    if !RUNTIMES.contains(&runtime) {
        return Err(EngineError::invalid(format!(
            "unknown or invalid runtime name: {runtime}"
        )));
    }
    if let Some(isolation) = hc.isolation.map(|i| i.to_string()) {
        if !matches!(isolation.as_str(), "" | "default") {
            return Err(EngineError::invalid(format!(
                "Invalid isolation: \"{isolation}\" - linux only supports 'default'"
            )));
        }
    }
    Ok(())
}

/// The spec options a record asks for (everything but what start resolves: rootfs, mounts,
/// network, other containers' namespaces, the path of its user namespace). `remap`: the
/// daemon's `--userns-remap` mapping, which the container runs under unless it opts out.
pub(crate) fn spec_options(rec: &Record, remap: Option<&IdMap>) -> Result<ContainerOptions> {
    check_runtime(rec)?;
    let mut opts = base_options(rec)?;
    namespace_options(rec, &mut opts)?;
    opts.userns = crate::userns::check(rec, remap)?.map(|map| UserNamespace { map, path: None });
    if opts.uts_ns == NamespaceMode::Host {
        // The host's name is the container's: HOSTNAME says so, as in Docker.
        opts.hostname = nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned());
    }
    Ok(opts)
}

fn base_options(rec: &Record) -> Result<ContainerOptions> {
    let hc = &rec.host_config;
    let mut seccomp = SeccompChoice::Default;
    let mut no_new_privileges = false;
    for opt in hc.security_opt.iter().flatten() {
        match opt.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => seccomp = SeccompChoice::Unconfined,
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                no_new_privileges = true
            }
            // SELinux labels: this host applies none, and Docker accepts them all then
            // (`label=disable` above all, which turns labeling off).
            "disable" => {}
            o if o.starts_with("label=") || o.starts_with("label:") => {}
            // AppArmor: unconfined is what berth gives anyway; a named profile is accepted
            // only where Docker would ignore it too, on a host without AppArmor.
            "apparmor=unconfined" | "apparmor:unconfined" => {}
            o if (o.starts_with("apparmor=") || o.starts_with("apparmor:")) && !apparmor_on() => {}
            other => {
                return Err(EngineError::invalid(format!(
                    "invalid --security-opt: {other:?}"
                )))
            }
        }
    }
    let ulimits = hc
        .ulimits
        .iter()
        .flatten()
        .map(|u| {
            format!(
                "{}={}:{}",
                u.name.as_deref().unwrap_or(""),
                u.soft.unwrap_or(0),
                u.hard.unwrap_or(0)
            )
            .parse::<Ulimit>()
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    let positive = |n: Option<i64>| n.filter(|n| *n != 0);
    Ok(ContainerOptions {
        args: std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect(),
        env: rec.env().to_vec(),
        cwd: Some(rec.cwd().to_owned()).filter(|c| !c.is_empty()),
        user: Some(rec.user().to_owned()).filter(|u| !u.is_empty()),
        hostname: Some(rec.hostname().to_owned()),
        readonly_rootfs: rec.readonly_rootfs(),
        memory: positive(hc.memory),
        memory_swap: positive(hc.memory_swap),
        cpus: positive(hc.nano_cpus).map(|n| n as f64 / 1e9),
        cpu_shares: positive(hc.cpu_shares).map(|n| n as u64),
        pids_limit: positive(hc.pids_limit),
        cpuset_cpus: hc.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        cpuset_mems: hc.cpuset_mems.clone().filter(|m| !m.is_empty()),
        cpu_quota: positive(hc.cpu_quota),
        cpu_period: positive(hc.cpu_period),
        memory_reservation: positive(hc.memory_reservation),
        memory_swappiness: hc.memory_swappiness,
        oom_kill_disable: hc.oom_kill_disable.unwrap_or(false),
        oom_score_adj: hc.oom_score_adj,
        group_add: hc.group_add.clone().unwrap_or_default(),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        privileged: hc.privileged.unwrap_or(false),
        no_new_privileges,
        seccomp,
        sysctls: hc
            .sysctls
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ulimits,
        tty: rec.tty(),
        init: hc.init.unwrap_or(false),
        devices: hc
            .devices
            .iter()
            .flatten()
            .map(|d| DeviceMapping {
                path_on_host: d.path_on_host.clone().unwrap_or_default(),
                path_in_container: d.path_in_container.clone().unwrap_or_default(),
                permissions: d.cgroup_permissions.clone().unwrap_or_default(),
            })
            .collect(),
        device_cgroup_rules: hc.device_cgroup_rules.clone().unwrap_or_default(),
        ..Default::default()
    })
}

impl Engine {
    pub(crate) fn state(&self, id: &str) -> State {
        read_json(&self.container_dir(id).join("state.json")).unwrap_or_default()
    }

    pub(crate) fn save_state(&self, id: &str, state: &State) -> Result<()> {
        if state.running() {
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_owned());
        }
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| EngineError::internal(format!("encode state: {e}")))?;
        berth_core::fs::write_atomic(&self.container_dir(id).join("state.json"), &bytes)
            .map_err(|e| EngineError::io(format!("write the state of {id}"), e))
    }

    /// Changes the state of `id` (read, change, write).
    pub(crate) fn change_state(&self, id: &str, change: impl FnOnce(&mut State)) {
        let mut st = self.state(id);
        change(&mut st);
        let _ = self.save_state(id, &st);
    }

    pub(crate) fn rootfs(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("rootfs")
    }

    /// Unmounts the container's rootfs, and the /dev/shm of a shareable one (they live and
    /// go together: mounted at start, gone when the container stops or is removed).
    pub(crate) fn unmount_rootfs(&self, id: &str) {
        let _ = nix::mount::umount2(&self.rootfs(id), nix::mount::MntFlags::MNT_DETACH);
        let shm = self.shm_dir(id);
        if shm.exists() {
            let _ = nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// How the shim says the container ended, when the recorded state still says it runs
    /// and it does not any more; reads only.
    pub(super) fn exit_seen(&self, id: &str) -> Option<shim::ExitInfo> {
        let dir = self.container_dir(id);
        // Looked at again when the shim is gone: it may have written its record and exited
        // between the two looks (a normal end).
        shim::read_exit(&dir).or_else(|| {
            if shim::shim_alive(&dir) {
                None
            } else {
                shim::read_exit(&dir).or(Some(shim::ExitInfo {
                    exit_code: 255,
                    finished_at: String::new(),
                }))
            }
        })
    }

    /// `st` as it is once the container ended as `exit` says.
    fn ended(&self, id: &str, st: &mut State, exit: shim::ExitInfo) {
        st.paused = false;
        st.status = Status::Exited;
        st.pid = 0;
        st.exit_code = exit.exit_code.into();
        if exit.finished_at.is_empty() {
            // The shim is gone without a record (killed with the host, say).
            st.finished_at = now();
            st.error = "the container's supervisor died".into();
        } else {
            st.finished_at = exit.finished_at;
        }
        st.killed_unhealthy = berth_oci::shim::health::read_health(&self.container_dir(id))
            .is_some_and(|h| h.killed_unhealthy);
    }

    /// The container's state as the shim says it is now, without acting on an exit: what
    /// `ps` shows. The exit's clean-up (and its `die` event) is [`Engine::refresh`]'s, done by
    /// the supervisor within a pass, or by the next operation on the container, so a listing
    /// never waits on an unmount, a network teardown or a synced write (and an offline
    /// `system check` changes nothing by looking).
    pub(crate) fn observe(&self, id: &str) -> State {
        let mut st = self.state(id);
        if st.running() {
            if let Some(exit) = self.exit_seen(id) {
                self.ended(id, &mut st, exit);
            }
        }
        st
    }

    /// Brings the recorded state up to date with what the shim recorded, and when the
    /// container has ended, takes down what it held (rootfs, network, user namespace),
    /// records the end and sends `die`.
    pub(crate) fn refresh(&self, id: &str) -> State {
        let mut st = self.state(id);
        if !st.running() {
            return st;
        }
        let Some(exit) = self.exit_seen(id) else {
            return st;
        };
        berth_core::timing::between("run", &st.started_at, &exit.finished_at);
        berth_core::timing::lag_since("exit.seen", &exit.finished_at);
        let t = Step::start("exit.cleanup");
        self.ended(id, &mut st, exit);
        self.unmount_rootfs(id);
        self.network_down(id);
        self.userns_down(id);
        let _ = self.save_state(id, &st);
        drop(t);
        if let Ok(rec) = self.find(id) {
            self.container_event(&rec, "die", &[("exitCode", st.exit_code.to_string())]);
        }
        st
    }

    pub(crate) fn mount_rootfs(&self, rec: &Record) -> Result<()> {
        let image: berth_core::Digest = rec
            .image_id
            .parse()
            .map_err(|_| EngineError::internal("bad image id in container record"))?;
        let config = self.images.config(&image)?;
        let lowers = self.images.lower_dirs(&config)?;
        let dir = self.container_dir(&rec.id);
        let (upper, work, target) = (dir.join("upper"), dir.join("work"), self.rootfs(&rec.id));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)
                .map_err(|e| EngineError::io(format!("create {}", d.display()), e))?;
        }
        self.unmount_rootfs(&rec.id);
        // An image without layers still needs one lower dir.
        let empty = dir.join("empty");
        if lowers.is_empty() {
            std::fs::create_dir_all(&empty)
                .map_err(|e| EngineError::io(format!("create {}", empty.display()), e))?;
        }
        // Under the remapping the layers are seen through its mapping, and the upper dir
        // (the rootfs's own top directory) belongs to the container's root.
        let mapped = match (self.remap(), self.idmap_of(rec)) {
            (Some(remap), Some(map)) => {
                crate::userns::give_to_root(&map, &upper)
                    .map_err(|e| EngineError::io("give the rootfs to the container's root", e))?;
                Some(
                    remap
                        .lowers(&lowers)
                        .map_err(|e| EngineError::io("map the image's layers", e))?,
                )
            }
            _ => None,
        };
        let lowers = mapped.as_ref().map_or(&lowers, |m| &m.paths);
        crate::overlay::mount_overlay(&target, lowers, &empty, &upper, &work)
            .map_err(|e| EngineError::io("mount the container's rootfs", e))
    }

    /// Writes the OCI bundle of `rec` (its rootfs is mounted): Docker's default spec with the
    /// record's settings, its mounts and its network namespace.
    pub(crate) fn write_bundle(&self, rec: &Record) -> Result<PathBuf> {
        let bundle = self.container_dir(&rec.id).join("bundle");
        std::fs::create_dir_all(&bundle)
            .map_err(|e| EngineError::io(format!("create {}", bundle.display()), e))?;
        let mut opts = spec_options(rec, self.remap().map(|r| r.map()))?;
        self.join(rec, &mut opts)?;
        // Before the container's own variables, which win (Docker's order).
        let links = self.link_setup(rec)?;
        opts.env = links.env.into_iter().chain(opts.env).collect();
        let userns = self.userns_up(rec)?;
        let net = self.network_up(rec, userns.as_deref())?;
        if let (Some(u), Some(path)) = (opts.userns.as_mut(), userns) {
            // The files the engine writes for it (hosts, hostname, resolv.conf) are its root's.
            for m in &net.mounts {
                if let berth_oci::spec::UserMount::Bind { source, .. } = m {
                    crate::userns::give_to_root(&u.map, source)
                        .map_err(|e| EngineError::io(format!("chown {}", source.display()), e))?;
                }
            }
            u.path = Some(path);
        }
        let mut mounts = self.user_mounts(rec)?;
        mounts.extend(net.mounts);
        opts.rootfs = self.rootfs(&rec.id);
        opts.mounts = mounts;
        opts.host_network = net.host_network;
        opts.netns_path = net.netns;
        opts.cgroups_path = Some(berth_oci::host::default_cgroups_path(
            &rec.id,
            berth_oci::host::systemd_is_init(),
        ));
        let spec = docker_default(&opts).map_err(|e| EngineError::from_kind(&e))?;
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| EngineError::internal(format!("encode the spec: {e}")))?;
        // Written anew at every start and read at once by the runtime: a crash can leave at
        // worst a bundle the next start replaces, so it needs no fsync (metadata does).
        std::fs::write(bundle.join("config.json"), &bytes)
            .map_err(|e| EngineError::io("write the bundle", e))?;
        Ok(bundle)
    }

    /// The namespaces `rec` shares with other containers (`--pid`/`--ipc container:NAME`, which
    /// must be running) and the /dev/shm of a shareable one (a tmpfs the engine mounts at
    /// `containers/<id>/shm`, so others can bind it; unmounted with the rootfs).
    fn join(&self, rec: &Record, opts: &mut ContainerOptions) -> Result<()> {
        if let Some(name) = rec.host_config.pid_mode.as_deref().and_then(joined) {
            let pid = self.running_pid(name, "PID")?;
            opts.pid_ns = NamespaceMode::Join(format!("/proc/{pid}/ns/pid").into());
        }
        let mode = ipc_mode(rec);
        if let Some(name) = joined(mode) {
            let pid = self.running_pid(name, "IPC")?;
            opts.ipc_ns = NamespaceMode::Join(format!("/proc/{pid}/ns/ipc").into());
            opts.shm = Shm::Bind(self.shareable_shm(name, 0)?);
        } else if mode == "shareable" {
            opts.shm = Shm::Bind(self.mount_shm(rec)?);
        }
        Ok(())
    }

    /// The init pid of running container `name`, whose `what` namespace another joins.
    fn running_pid(&self, name: &str, what: &str) -> Result<i64> {
        let other = self.find(name)?;
        let st = self.refresh(&other.id);
        if !st.running() || st.pid <= 0 {
            return Err(EngineError::conflict(format!(
                "cannot join {what} of a non running container: {name}"
            )));
        }
        Ok(st.pid)
    }

    /// The /dev/shm that joining container `name`'s IPC namespace brings: its own when it is
    /// shareable, the host's or the one it joined in turn. A private one is not for sharing.
    fn shareable_shm(&self, name: &str, depth: usize) -> Result<PathBuf> {
        let donor = self.find(name)?;
        match ipc_mode(&donor) {
            "shareable" => return Ok(self.shm_dir(&donor.id)),
            "host" => return Ok(PathBuf::from("/dev/shm")),
            m => {
                if let Some(next) = joined(m).filter(|_| depth < 8) {
                    return self.shareable_shm(next, depth + 1);
                }
            }
        }
        Err(EngineError::invalid(format!(
            "container {name}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        )))
    }

    pub(crate) fn shm_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("shm")
    }

    /// Mounts a shareable container's /dev/shm: a tmpfs of its `--shm-size` in its directory.
    fn mount_shm(&self, rec: &Record) -> Result<PathBuf> {
        let dir = self.shm_dir(&rec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::io(format!("create {}", dir.display()), e))?;
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        let size = rec
            .host_config
            .shm_size
            .filter(|s| *s > 0)
            .unwrap_or(berth_oci::spec::DEFAULT_SHM_SIZE);
        let mut options = format!("mode=1777,size={size}");
        if let Some(map) = self.idmap_of(rec) {
            // Its root's, as the container's own /dev/shm would be.
            let (uid, gid) = map.root();
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(options.as_str()),
        )
        .map_err(|e| EngineError::io("mount the container's /dev/shm", e.into()))?;
        Ok(dir)
    }

    /// Builds the spec once at create, so bad flag values are refused then, with nothing made.
    pub(crate) fn check_spec(&self, rec: &Record) -> Result<()> {
        crate::rootless::check_limits(self.rootless(), &rec.host_config)?;
        let mut opts = spec_options(rec, self.remap().map(|r| r.map()))?;
        opts.rootfs = PathBuf::from("/nonexistent");
        // Names are resolved against the rootfs at start.
        opts.user = None;
        opts.group_add.retain(|g| g.parse::<u32>().is_ok());
        docker_default(&opts)
            .map(|_| ())
            .map_err(|e| EngineError::from_kind(&e))
    }

    /// Waits (at most `limit`) until the container no longer runs. Woken by its init's end (a
    /// pidfd); the shim's record of the end follows within a millisecond or two, so from then
    /// on (and when the init is gone already, as after a kill, or no pidfd can be had) it
    /// looks again after 1, 2, 4 … up to 20 ms.
    pub(crate) fn wait_exited(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let init = init_pidfd(&self.container_dir(id), self.state(id).pid);
        let mut init_ended = false;
        let mut pause = Duration::from_millis(1);
        loop {
            if !self.refresh(id).running() {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            if let Some(fd) = init.as_ref().filter(|_| !init_ended) {
                init_ended = ended_within(fd, left.min(Duration::from_millis(250)));
                continue;
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    pub(crate) fn runtime_root(&self) -> PathBuf {
        self.root().join("runtime")
    }

    /// `berth-runtime`: $BERTH_RUNTIME, beside this binary, or on PATH.
    pub(crate) fn runtime_bin(&self) -> PathBuf {
        if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("berth-runtime")))
            .filter(|p| p.exists())
        {
            return p;
        }
        PathBuf::from("berth-runtime")
    }

    pub(crate) fn runtime(&self) -> Command {
        let mut c = Command::new(self.runtime_bin());
        c.arg("--root").arg(self.runtime_root());
        c
    }

    /// Runs `berth-runtime ARGS` and turns a failure into its one-line error.
    pub(crate) fn runtime_op(&self, args: &[&str]) -> Result<()> {
        let out = self
            .runtime()
            .args(args)
            .output()
            .map_err(|e| EngineError::io("run berth-runtime", e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EngineError::internal(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }

    /// Thaws a paused container (signals reach frozen processes only once they run again).
    pub(crate) fn thaw(&self, id: &str) {
        let st = self.state(id);
        if st.paused && self.runtime_op(&["resume", id]).is_ok() {
            self.change_state(id, |st| st.paused = false);
        }
    }

    pub(crate) fn signal(&self, id: &str, signal: &str) -> Result<()> {
        self.runtime_op(&["kill", id, signal])
    }

    /// Bytes in a container's writable layer.
    pub(crate) fn upper_size(&self, id: &str) -> i64 {
        berth_core::fs::apparent_size(&self.container_dir(id).join("upper")) as i64
    }

    /// Bytes of a container's image (its unpacked layers).
    pub(crate) fn image_size(&self, rec: &Record) -> i64 {
        rec.image_id
            .parse::<berth_core::Digest>()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .and_then(|c| self.images.lower_dirs(&c).ok())
            .map(|dirs| {
                dirs.iter()
                    .map(|d| berth_core::fs::apparent_size(d))
                    .sum::<u64>() as i64
            })
            .unwrap_or(0)
    }
}

/// A pidfd of the container's init `pid`, if it is still the process its shim (recorded in
/// `dir`) supervises: its parent is the shim. None otherwise, or where pidfds do not exist.
fn init_pidfd(dir: &std::path::Path, pid: i64) -> Option<std::os::fd::OwnedFd> {
    let pid = i32::try_from(pid).ok().filter(|p| *p > 0)?;
    let shim = shim::read_shim(dir)?;
    let fd = pidfd_open(pid)?;
    // With the pidfd held the pid names this process; it is the init if the shim is its parent.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
    (ppid == shim.shim_pid.to_string()).then_some(fd)
}

/// A pidfd of the shim recorded in `dir` for container `id`, while it runs: its command line
/// names the container (the pid was not reused). None otherwise.
pub(crate) fn shim_pidfd(dir: &std::path::Path, id: &str) -> Option<std::os::fd::OwnedFd> {
    let pid = shim::read_shim(dir)?.shim_pid;
    let fd = pidfd_open(pid)?;
    // With the pidfd held the pid names this process (or none, if it has ended since).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == id.as_bytes())
        .then_some(fd)
}

/// A pidfd of process `pid` (None where it is gone or pidfds do not exist).
pub(crate) fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just opened and is owned by nothing else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Whether the process of pidfd `fd` ended within `limit`.
pub(crate) fn ended_within(fd: &std::os::fd::OwnedFd, limit: Duration) -> bool {
    use std::os::fd::AsFd;
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::CreateRequest;
    use berth_image::oci::RunConfig;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn record(host_config: serde_json::Value) -> Record {
        let body = serde_json::json!({"Cmd": ["sh"], "HostConfig": host_config});
        let req = CreateRequest::decode(None, body.to_string().as_bytes()).unwrap();
        super::super::create::new_record(ID, "x", &req, "bb", "sha256:x", &RunConfig::default())
            .unwrap()
    }

    fn options(host_config: serde_json::Value) -> Result<ContainerOptions> {
        spec_options(&record(host_config), None)
    }

    #[test]
    fn namespace_modes_become_options() {
        let o = options(serde_json::json!({})).unwrap();
        // Create names the cgroup namespace Docker would give on this host.
        let cgroup_ns = if berth_oci::host::cgroup_mode() == berth_oci::host::CgroupMode::Unified {
            NamespaceMode::Private
        } else {
            NamespaceMode::Host
        };
        assert_eq!(
            (&o.pid_ns, &o.ipc_ns, &o.uts_ns, &o.cgroup_ns, &o.shm),
            (
                &NamespaceMode::Private,
                &NamespaceMode::Private,
                &NamespaceMode::Private,
                &Some(cgroup_ns),
                &Shm::Tmpfs
            )
        );
        let o = options(serde_json::json!({
            "PidMode": "host", "IpcMode": "host", "UTSMode": "host", "CgroupnsMode": "private",
            "ShmSize": 8388608
        }))
        .unwrap();
        assert_eq!(o.pid_ns, NamespaceMode::Host);
        assert_eq!(o.ipc_ns, NamespaceMode::Host);
        assert_eq!(o.shm, Shm::Bind("/dev/shm".into()));
        assert_eq!(o.uts_ns, NamespaceMode::Host);
        assert_eq!(o.cgroup_ns, Some(NamespaceMode::Private));
        assert_eq!(o.shm_size, Some(8 << 20));
        // The host's name for HOSTNAME.
        assert_eq!(
            o.hostname.as_deref(),
            nix::unistd::gethostname()
                .ok()
                .as_deref()
                .and_then(|h| h.to_str())
        );
        let o = options(serde_json::json!({"IpcMode": "none"})).unwrap();
        assert_eq!(o.shm, Shm::None);
        // Joins are resolved at start; at create the modes are only checked.
        let o = options(serde_json::json!({"PidMode": "container:a", "IpcMode": "container:b"}))
            .unwrap();
        assert_eq!(o.pid_ns, NamespaceMode::Private);
        for (hc, words) in [
            (
                serde_json::json!({"PidMode": "bogus"}),
                "invalid PID mode: bogus",
            ),
            (
                serde_json::json!({"PidMode": "container:"}),
                "invalid PID mode: container:",
            ),
            (
                serde_json::json!({"IpcMode": "bogus"}),
                "invalid IPC mode: bogus",
            ),
            (
                serde_json::json!({"UTSMode": "private"}),
                "invalid UTS mode: private",
            ),
        ] {
            assert_eq!(options(hc).unwrap_err().to_string(), words);
        }
    }

    #[test]
    fn runtime_isolation_and_security_options() {
        for runtime in ["", "runc", "berth", "berth-runtime"] {
            options(serde_json::json!({"Runtime": runtime})).unwrap();
        }
        assert_eq!(
            options(serde_json::json!({"Runtime": "kata"}))
                .unwrap_err()
                .to_string(),
            "unknown or invalid runtime name: kata"
        );
        options(serde_json::json!({"Isolation": "default"})).unwrap();
        let o = options(serde_json::json!({"SecurityOpt": [
            "label=disable", "label:disable", "label=type:svirt_apache_t", "disable",
            "apparmor=unconfined", "no-new-privileges", "seccomp=unconfined"
        ]}))
        .unwrap();
        assert!(o.no_new_privileges);
        assert!(matches!(o.seccomp, SeccompChoice::Unconfined));
        assert!(options(serde_json::json!({"SecurityOpt": ["wizardry=on"]})).is_err());
        assert_eq!(
            options(serde_json::json!({"SecurityOpt": ["apparmor=docker-default"]})).is_ok(),
            !apparmor_on()
        );
    }

    #[test]
    fn resources_devices_and_groups_become_options() {
        let o = options(serde_json::json!({
            "CpusetCpus": "0", "CpusetMems": "", "CpuQuota": 50000, "CpuPeriod": 0,
            "MemoryReservation": 33554432, "MemorySwappiness": -1, "OomKillDisable": true,
            "OomScoreAdj": 100, "GroupAdd": ["10", "wheel"],
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}],
            "DeviceCgroupRules": ["c 1:3 mr"]
        }))
        .unwrap();
        assert_eq!(o.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(o.cpuset_mems, None);
        assert_eq!((o.cpu_quota, o.cpu_period), (Some(50000), None));
        assert_eq!(o.memory_reservation, Some(32 << 20));
        // -1 is Docker's "unset": create stores none.
        assert_eq!(o.memory_swappiness, None);
        assert!(o.oom_kill_disable);
        assert_eq!(o.oom_score_adj, Some(100));
        assert_eq!(o.group_add, ["10", "wheel"]);
        assert_eq!(o.devices[0].path_in_container, "/dev/n");
        assert_eq!(o.devices[0].permissions, "rw");
        assert_eq!(o.device_cgroup_rules, ["c 1:3 mr"]);
    }
}
