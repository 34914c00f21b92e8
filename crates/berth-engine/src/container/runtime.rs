//! A container's machinery: its state file brought up to date from what the shim recorded,
//! its rootfs (an overlay of the image's snapshots), its OCI bundle (Docker's default spec
//! from the record's HostConfig), and the `berth-runtime` calls that act on it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_oci::shim;
use berth_oci::spec::{docker_default, ContainerOptions, SeccompChoice, Ulimit};

use super::record::{now, Record, State, Status};
use crate::error::{EngineError, Result};
use crate::Engine;

fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The spec options a record asks for (everything but what start resolves: rootfs, mounts,
/// network).
pub(crate) fn spec_options(rec: &Record) -> Result<ContainerOptions> {
    let hc = &rec.host_config;
    let mut seccomp = SeccompChoice::Default;
    let mut no_new_privileges = false;
    for opt in hc.security_opt.iter().flatten() {
        match opt.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => seccomp = SeccompChoice::Unconfined,
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                no_new_privileges = true
            }
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
        ..Default::default()
    })
}

impl Engine {
    pub(crate) fn state(&self, id: &str) -> State {
        read_json(&self.container_dir(id).join("state.json")).unwrap_or_default()
    }

    pub(crate) fn save_state(&self, id: &str, state: &State) -> Result<()> {
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

    pub(crate) fn unmount_rootfs(&self, id: &str) {
        let _ = nix::mount::umount2(&self.rootfs(id), nix::mount::MntFlags::MNT_DETACH);
    }

    /// Brings the recorded state up to date with what the shim recorded.
    pub(crate) fn refresh(&self, id: &str) -> State {
        let mut st = self.state(id);
        if !st.running() {
            return st;
        }
        let dir = self.container_dir(id);
        // Looked at again when the shim is gone: it may have written its record and exited
        // between the two looks (a normal end).
        let exit = shim::read_exit(&dir).or_else(|| {
            if shim::shim_alive(&dir) {
                None
            } else {
                shim::read_exit(&dir).or(Some(shim::ExitInfo {
                    exit_code: 255,
                    finished_at: String::new(),
                }))
            }
        });
        let Some(exit) = exit else {
            return st;
        };
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
        st.killed_unhealthy =
            berth_oci::shim::health::read_health(&dir).is_some_and(|h| h.killed_unhealthy);
        self.unmount_rootfs(id);
        self.network_down(id);
        let _ = self.save_state(id, &st);
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
        crate::overlay::mount_overlay(&target, &lowers, &empty, &upper, &work)
            .map_err(|e| EngineError::io("mount the container's rootfs", e))
    }

    /// Writes the OCI bundle of `rec` (its rootfs is mounted): Docker's default spec with the
    /// record's settings, its mounts and its network namespace.
    pub(crate) fn write_bundle(&self, rec: &Record) -> Result<PathBuf> {
        let bundle = self.container_dir(&rec.id).join("bundle");
        std::fs::create_dir_all(&bundle)
            .map_err(|e| EngineError::io(format!("create {}", bundle.display()), e))?;
        let mut opts = spec_options(rec)?;
        let net = self.network_up(rec)?;
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
        berth_core::fs::write_atomic(&bundle.join("config.json"), &bytes)
            .map_err(|e| EngineError::io("write the bundle", e))?;
        Ok(bundle)
    }

    /// Builds the spec once at create, so bad flag values are refused then, with nothing made.
    pub(crate) fn check_spec(&self, rec: &Record) -> Result<()> {
        let mut opts = spec_options(rec)?;
        opts.rootfs = PathBuf::from("/nonexistent");
        opts.user = None; // names are resolved against the rootfs at start
        docker_default(&opts)
            .map(|_| ())
            .map_err(|e| EngineError::from_kind(&e))
    }

    pub(crate) fn wait_exited(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.refresh(id).running() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
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
