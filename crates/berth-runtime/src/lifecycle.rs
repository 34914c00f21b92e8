//! The runc-compatible operations on containers kept under one state root.
//!
//! Each container's state lives in `<root>/<id>/` (libcontainer's `state.json` and
//! `youki_config.json`). Every failure path leaves no state directory, cgroup or mount behind.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use oci_spec::runtime::{Arch, Spec};

use crate::bundle::Bundle;
use crate::confined_exec::ConfinedExecutor;
use crate::console::ConsoleSocket;
use crate::error::{Result, RuntimeError};
use crate::foreground;
use crate::host;
use crate::seccomp_bpf;
use crate::spec::seccomp;
use crate::state::ContainerState;

/// Beside a normalized bundle copy: the path of the bundle the user gave.
const ORIGIN_FILE: &str = "origin";

/// Where runc keeps state by default is /run/runc; ours is beside it.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// Options of `create` and `run`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// Standard streams for the container's init; inherited from us when absent.
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What a bundle's spec needs changed before libcontainer gets it. libcontainer reads
/// config.json from the bundle directory it is given, so any of these means handing it a
/// rewritten copy.
#[derive(Debug, Default)]
struct Normalization {
    /// The spec's own cgroups path; None means berth's default (`/berth/<id>`), never the one
    /// libcontainer would invent.
    cgroups_path: Option<String>,
    /// An explicit `noNewPrivileges: false`, which libcontainer 0.7 mishandles: it then loads
    /// seccomp after dropping CAP_SYS_ADMIN, and the load fails.
    drop_nnp_false: bool,
    /// The filter covers x32 but this kernel cannot run x32 code: building that part of the
    /// filter costs milliseconds and guards nothing.
    drop_x32: bool,
}

impl Normalization {
    fn needed(bundle: &Bundle) -> Normalization {
        let linux = bundle.spec.linux().as_ref();
        let has_x32 = linux
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|s| s.architectures().as_ref())
            .is_some_and(|a| a.contains(&Arch::ScmpArchX32));
        Normalization {
            cgroups_path: linux
                .and_then(|l| l.cgroups_path().clone())
                .map(|p| p.to_string_lossy().into_owned()),
            drop_nnp_false: bundle
                .spec
                .process()
                .as_ref()
                .and_then(|p| p.no_new_privileges())
                == Some(false),
            drop_x32: has_x32 && !host::kernel_runs_x32(),
        }
    }

    fn any(&self) -> bool {
        self.cgroups_path.is_none() || self.drop_nnp_false || self.drop_x32
    }
}

/// A state root and how cgroups are driven there.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    /// `--systemd-cgroup`: the caller insists on the systemd driver.
    systemd_cgroup: bool,
}

/// Checks an id the way runc does (and so that it is a safe single path component).
pub fn validate_id(id: &str) -> Result<()> {
    // Like runc, but no leading dot: names like `.bundles` are the runtime's own.
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_owned()))
    }
}

fn parse_signal(sig: &str) -> Result<Signal> {
    let s = sig.trim();
    let s = s
        .strip_prefix("SIG")
        .or_else(|| s.strip_prefix("sig"))
        .unwrap_or(s);
    Signal::try_from(s).map_err(|_| RuntimeError::UnknownSignal(sig.to_owned()))
}

/// The bundle's spec with an absolute rootfs and the fixes of `fixes` applied.
fn normalized_spec(bundle: &Bundle, fixes: &Normalization, cgroups_path: &str) -> Spec {
    let mut spec = bundle.spec.clone();
    if let Some(root) = spec.root_mut() {
        root.set_path(bundle.rootfs());
    }
    if fixes.drop_nnp_false {
        if let Some(process) = spec.process_mut() {
            process.set_no_new_privileges(None);
        }
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_cgroups_path(Some(PathBuf::from(cgroups_path)));
        if let Some(seccomp) = linux.seccomp_mut() {
            seccomp::drop_dead_arches(seccomp);
        }
    }
    spec
}

/// Writes `spec` as `dir/config.json` (atomically) and the user's bundle path beside it. Not
/// fsynced: the copy lives as long as the container, which a host crash ends; the next start
/// writes it again from the bundle.
fn write_bundle_copy(dir: &Path, spec: &Spec, origin: &Path) -> Result<()> {
    let io = |e| RuntimeError::io(format!("write bundle copy {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = serde_json::to_vec(spec).map_err(|e| RuntimeError::MalformedConfig {
        path: origin.to_path_buf(),
        reason: e.to_string(),
    })?;
    berth_core::fs::replace(&dir.join("config.json"), &text).map_err(io)?;
    std::fs::write(dir.join(ORIGIN_FILE), origin.as_os_str().as_encoded_bytes()).map_err(io)?;
    Ok(())
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, systemd_cgroup: bool) -> Result<Runtime> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| RuntimeError::io(format!("create state root {}", root.display()), e))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700));
        Ok(Runtime {
            root,
            systemd_cgroup,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Loads a container's state, refreshed against the live process.
    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        if !dir.join("state.json").exists() {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        let mut c = Container::load(dir).map_err(|e| RuntimeError::libcontainer(id, "load", e))?;
        c.refresh_status()
            .map_err(|e| RuntimeError::libcontainer(id, "load", e))?;
        Ok(c)
    }

    /// Whether the systemd driver drives this cgroups path: when asked for, or when systemd is
    /// init and the path has systemd's `slice:prefix:name` form.
    fn use_systemd(&self, cgroups_path: &str) -> bool {
        self.systemd_cgroup || (cgroups_path.matches(':').count() == 2 && host::systemd_is_init())
    }

    /// Creates the container: namespaces, mounts and cgroups are set up and its init waits for
    /// `start`. With `detach` false the caller means to wait for it in the foreground (`run`).
    pub fn create(
        &self,
        id: &str,
        bundle_dir: &Path,
        opts: CreateOptions,
        detach: bool,
    ) -> Result<Container> {
        self.create_loaded(id, Bundle::load(bundle_dir)?, opts, detach)
    }

    /// [`Runtime::create`] from a bundle already read (the shim reads it first to know whether
    /// the process wants a terminal).
    pub(crate) fn create_loaded(
        &self,
        id: &str,
        bundle: Bundle,
        opts: CreateOptions,
        detach: bool,
    ) -> Result<Container> {
        validate_id(id)?;
        if self.container_dir(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.to_owned()));
        }
        self.create_from(id, bundle, opts, detach)
    }

    fn create_from(
        &self,
        id: &str,
        bundle: Bundle,
        opts: CreateOptions,
        detach: bool,
    ) -> Result<Container> {
        // Only a seccomp filter asks whether the kernel runs x32: asked here, of the cache, so
        // that the checks below do not fork a probe (and a spec without one reads nothing).
        if bundle
            .spec
            .linux()
            .as_ref()
            .is_some_and(|l| l.seccomp().is_some())
        {
            host::kernel_runs_x32_remembered(&self.filter_cache());
        }
        let fixes = Normalization::needed(&bundle);
        let cgroups_path = fixes.cgroups_path.clone().unwrap_or_else(|| {
            host::default_cgroups_path(id, self.systemd_cgroup || host::systemd_is_init())
        });
        let filter = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone())
            .filter(|f| !seccomp_bpf::uses_notify(f));
        let systemd = self.use_systemd(&cgroups_path);

        // Our executor always runs the process: it checks the command the way Docker does and
        // runs berth's init when the spec asks for it.
        let mut executor = ConfinedExecutor::new().with_init(crate::init::wanted(&bundle.spec));
        // libcontainer reads config.json from the bundle directory it is given. When the spec
        // needs fixing, or has a seccomp filter (which our executor loads precompiled instead of
        // libcontainer building it at every start), it gets a copy in <root>/.bundles/<id>.
        // libcontainer mounts cgroup v1 hierarchies read-write whatever the spec says: the
        // executor remounts them read-only when the spec asks for that (v2's mount honours it).
        let readonly_cgroups = crate::confined_exec::wants_readonly_cgroups(&bundle.spec)
            && host::cgroup_mode() == host::CgroupMode::Legacy;
        let shadow = if fixes.any() || filter.is_some() || readonly_cgroups {
            let recorded = normalized_spec(&bundle, &fixes, &cgroups_path);
            let mut build_spec = recorded.clone();
            if readonly_cgroups {
                if let Some(process) = build_spec.process_mut() {
                    executor = executor.readonly_cgroups(process);
                }
            }
            if let Some(mut filter) = filter {
                seccomp::drop_dead_arches(&mut filter);
                let compiled = seccomp_bpf::cached(&self.filter_cache(), &filter).map_err(|e| {
                    RuntimeError::MalformedConfig {
                        path: bundle.dir.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if let Some(linux) = build_spec.linux_mut() {
                    linux.set_seccomp(None);
                }
                if let Some(process) = build_spec.process_mut() {
                    executor = executor.confined(process, compiled);
                }
            }
            let dir = self.shadow_dir(id);
            if let Err(e) = write_bundle_copy(&dir, &build_spec, &bundle.dir) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
            Some((dir, recorded))
        } else {
            None
        };
        let build_dir = shadow
            .as_ref()
            .map_or(bundle.dir.clone(), |(dir, _)| dir.clone());

        let result = (|| {
            let mut builder = ContainerBuilder::new(id.to_owned(), SyscallType::default())
                .with_root_path(&self.root)
                .map_err(|e| RuntimeError::libcontainer(id, "create", e))?
                .with_pid_file(opts.pid_file.as_ref())
                .map_err(|e| RuntimeError::libcontainer(id, "create", e))?
                .with_console_socket(opts.console_socket.as_ref())
                .with_preserved_fds(opts.preserve_fds)
                .with_executor(executor);
            if let Some(fd) = opts.stdin {
                builder = builder.with_stdin(fd);
            }
            if let Some(fd) = opts.stdout {
                builder = builder.with_stdout(fd);
            }
            if let Some(fd) = opts.stderr {
                builder = builder.with_stderr(fd);
            }
            let container = builder
                .as_init(&build_dir)
                .with_systemd(systemd)
                .with_detach(detach)
                .with_no_pivot(opts.no_pivot)
                .build()
                .map_err(|e| RuntimeError::libcontainer(id, "create", e))?;
            crate::update::disable_oom_killer(id, &container, &bundle.spec)?;
            // Before the user's process runs: on cgroup v2 the device rules are ours to apply.
            crate::devices_bpf::apply_for(&bundle.spec, &cgroups_path, systemd)?;
            // From now on the copy describes the container as it is (its filter and its own
            // capabilities): that is what exec reads.
            if let Some((dir, recorded)) = &shadow {
                write_bundle_copy(dir, recorded, &bundle.dir)?;
            }
            Ok(container)
        })();
        match result {
            Ok(container) => Ok(container),
            Err(err) => {
                // libcontainer cleans up after failures in the container process, but not
                // after those before it (e.g. a bad console socket): make sure nothing is left.
                if self.container_dir(id).join("state.json").exists() {
                    let _ = self.delete(id, true);
                }
                let _ = std::fs::remove_dir_all(self.container_dir(id));
                let _ = std::fs::remove_dir_all(self.shadow_dir(id));
                self.remove_cgroup(id, &cgroups_path, systemd);
                Err(err)
            }
        }
    }

    /// Where a container's bundle copy lives, for as long as the container does
    /// (libcontainer reads it again for every exec).
    fn shadow_dir(&self, id: &str) -> PathBuf {
        self.root.join(".bundles").join(id)
    }

    /// Compiled seccomp programs, by profile hash.
    pub fn filter_cache(&self) -> PathBuf {
        self.root.join(".seccomp")
    }

    /// The bundle the user gave for a container: its state names the copy when there is one,
    /// and the copy records where it came from.
    fn user_bundle(&self, container: &Container) -> PathBuf {
        let bundle = container.bundle();
        if bundle.starts_with(self.root.join(".bundles")) {
            if let Ok(origin) = std::fs::read(bundle.join(ORIGIN_FILE)) {
                use std::os::unix::ffi::OsStringExt;
                return PathBuf::from(std::ffi::OsString::from_vec(origin));
            }
        }
        bundle.clone()
    }

    fn remove_cgroup(&self, id: &str, path: &str, systemd: bool) {
        if let Ok(manager) = create_cgroup_manager(CgroupConfig {
            cgroup_path: PathBuf::from(path),
            systemd_cgroup: systemd,
            container_name: id.to_owned(),
        }) {
            let _ = manager.remove();
        }
    }

    /// Runs the user process of a created container.
    pub fn start(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        if c.status() != ContainerStatus::Created {
            return Err(RuntimeError::WrongState {
                id: id.to_owned(),
                status: crate::state::status_name(c.status()).to_owned(),
                action: "start",
            });
        }
        c.start()
            .map_err(|e| RuntimeError::libcontainer(id, "start", e))
    }

    /// `run`: create and start; in the foreground, wait for the container, then delete it and
    /// return its exit code (128+N when killed by signal N). Detached, return 0 at once.
    pub fn run(
        &self,
        id: &str,
        bundle: &Path,
        mut opts: CreateOptions,
        detach: bool,
    ) -> Result<i32> {
        validate_id(id)?;
        if self.container_dir(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.to_owned()));
        }
        let bundle = Bundle::load(bundle)?;
        // In the foreground a terminal container needs a pty we relay ourselves.
        let wants_terminal = !detach
            && opts.console_socket.is_none()
            && bundle
                .spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
        let console = if wants_terminal {
            let socket = ConsoleSocket::new()?;
            opts.console_socket = Some(socket.path().to_path_buf());
            Some(socket)
        } else {
            None
        };
        // libcontainer accepts a console socket only when it "detaches"; for it that word means
        // nothing else, and we wait for the container ourselves below.
        let container = self.create_from(id, bundle, opts, detach || console.is_some())?;
        let pty = match &console {
            Some(socket) => match socket.receive_master() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    let _ = self.delete(id, true);
                    return Err(e);
                }
            },
            None => None,
        };
        drop(console);
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let pid = container
            .pid()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        let code = foreground::wait(pid, pty);
        if let Err(e) = self.delete(id, true) {
            tracing::error!(id, error = %e, "cannot delete container after it ran");
        }
        code
    }

    /// runc's state JSON for one container.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let c = self.load(id)?;
        Ok(self.state_of(&c))
    }

    fn state_of(&self, c: &Container) -> ContainerState {
        let rootfs = Bundle::load(c.bundle())
            .map(|b| b.rootfs())
            .unwrap_or_default();
        let mut state = ContainerState::of(c, rootfs);
        state.bundle = self.user_bundle(c);
        state
    }

    /// Every container under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| RuntimeError::io(format!("read {}", self.root.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().join("state.json").exists() {
                continue;
            }
            if let Ok(c) = self.load(&name) {
                out.push(self.state_of(&c));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Sends `signal` (a name like `TERM`/`SIGTERM` or a number) to the init, or with `all`
    /// to every process in the container.
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let sig = parse_signal(signal)?;
        // libcontainer records the new status after signalling: a delete that came in between
        // (a foreground `run` whose container the signal ended) would take the directory from
        // under that record, and the kill failed although it had done its work.
        let _not_while_deleted = self.lock_container(id);
        let mut c = self.load(id)?;
        c.kill(sig, all)
            .map_err(|e| RuntimeError::libcontainer(id, "kill", e))
    }

    /// An exclusive flock on container `id`'s state directory (None when it does not exist),
    /// held by a delete, and by a kill while it signals and records: they take turns.
    fn lock_container(&self, id: &str) -> Option<nix::fcntl::Flock<std::fs::File>> {
        validate_id(id).ok()?;
        let dir = std::fs::File::open(self.container_dir(id)).ok()?;
        nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).ok()
    }

    /// Deletes a stopped (or created) container; `force` kills a running one first. With
    /// `force`, deleting a container that does not exist succeeds, as in runc.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        // One delete of a container at a time: the shim's (at the end) and the engine's (a
        // removal) can come together, and libcontainer's removal of the cgroups of v1, each
        // walking the hierarchies in its own order, stops at the first directory the other
        // removed, which can leave one hierarchy's directory to nobody. The second delete
        // waits here and then finds the container gone.
        let _one_at_a_time = self.lock_container(id);
        let mut c = match self.load(id) {
            Ok(c) => c,
            Err(RuntimeError::NotFound(_)) if force => {
                let _ = std::fs::remove_dir_all(self.container_dir(id));
                let _ = std::fs::remove_dir_all(self.shadow_dir(id));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        c.delete(force)
            .map_err(|e| RuntimeError::libcontainer(id, "delete", e))?;
        if c.bundle().starts_with(self.root.join(".bundles")) {
            let _ = std::fs::remove_dir_all(self.shadow_dir(id));
        }
        // libcontainer removes the directory unless it failed half-way.
        if self.container_dir(id).exists() {
            std::fs::remove_dir_all(self.container_dir(id))
                .map_err(|e| RuntimeError::io(format!("remove state of {id}"), e))?;
        }
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        c.pause()
            .map_err(|e| RuntimeError::libcontainer(id, "pause", e))
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        c.resume()
            .map_err(|e| RuntimeError::libcontainer(id, "resume", e))
    }

    /// The host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.load(id)?;
        let config = c
            .spec()
            .map_err(|e| RuntimeError::libcontainer(id, "read config of", e))?;
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: c.systemd(),
            container_name: id.to_owned(),
        })
        .map_err(|e| RuntimeError::Operation {
            id: id.to_owned(),
            action: "find the cgroup of",
            reason: crate::error::cause_chain(&e),
        })?;
        let mut pids: Vec<i32> = manager
            .get_all_pids()
            .map_err(|e| RuntimeError::Operation {
                id: id.to_owned(),
                action: "list processes of",
                reason: crate::error::cause_chain(&e),
            })?
            .into_iter()
            .map(Pid::as_raw)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Annotations of a container, for callers that keep their own metadata there.
    pub fn annotations(&self, id: &str) -> Result<HashMap<String, String>> {
        Ok(self.load(id)?.state.annotations.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        for ok in ["a", "web-1", "x_y.z+1", &"a".repeat(64)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".bundles", "a/b", "a b", "ü"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signals_by_name_and_number() {
        for s in ["TERM", "SIGTERM", "sigterm", "15", "KILL", "9", "USR1"] {
            assert!(parse_signal(s).is_ok(), "{s}");
        }
        assert!(matches!(
            parse_signal("NOPE"),
            Err(RuntimeError::UnknownSignal(_))
        ));
    }
}
