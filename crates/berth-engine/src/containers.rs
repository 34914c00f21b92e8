//! Containers as objects: a record and a state under `<root>/containers/<id>/`, a rootfs that
//! is an overlay of the image's snapshots, and a `berth-runtime shim` that supervises the
//! process. The engine never holds a container's process: the shim does, so containers
//! outlive the engine; the engine reads what the shim records (`exit.json`, the log).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_api::containers::{ContainerBackend, ListQuery, LogCursor, LogQuery, Logs, WaitState};
use berth_api::ApiError;
use berth_core::ContainerId;
use berth_oci::shim;
use berth_oci::spec::{docker_default, ContainerOptions, SeccompChoice, Ulimit};
use bollard_stubs::models::{
    ContainerConfig, ContainerCreateResponse, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, HostConfig,
};
use serde::{Deserialize, Serialize};

use crate::{humanize, Engine};

/// What a container is: fixed at create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the user named it, and the image ID it resolved to.
    pub image: String,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub host: Host,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<crate::volumes::MountRecord>,
    /// The health check the shim runs.
    #[serde(default)]
    pub healthcheck: Option<berth_oci::shim::health::HealthConfig>,
    /// Network mode, networks, published ports, DNS and hosts settings.
    #[serde(default)]
    pub net: crate::networks::NetRecord,
}

/// The HostConfig settings berth honours so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Host {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Vec<String>,
    pub auto_remove: bool,
    pub sysctls: std::collections::BTreeMap<String, String>,
    pub ulimits: Vec<String>,
    /// `no`, `always`, `on-failure` or `unless-stopped`.
    #[serde(default)]
    pub restart: String,
    /// For `on-failure`: restart at most this many times (0: no limit).
    #[serde(default)]
    pub restart_max: i64,
    /// `--init`: berth's init is pid 1.
    #[serde(default)]
    pub init: bool,
    /// `--log-opt max-size` in bytes and `max-file` (the shim's defaults when absent).
    #[serde(default)]
    pub log_max_size: Option<u64>,
    #[serde(default)]
    pub log_max_files: Option<u32>,
}

/// The json-file options of a create request (`--log-opt max-size=10m --log-opt max-file=3`).
fn log_options(hc: &serde_json::Value) -> Result<(Option<u64>, Option<u32>), ApiError> {
    let driver = hc["LogConfig"]["Type"].as_str().unwrap_or("");
    if !matches!(driver, "" | "json-file") {
        return Err(ApiError::bad_request(format!(
            "logging driver {driver:?} is not supported: berth logs with json-file"
        )));
    }
    let mut size = None;
    let mut files = None;
    for (k, v) in string_map(&hc["LogConfig"]["Config"]) {
        match k.as_str() {
            "max-size" => {
                size = Some(
                    berth_core::humanize::parse_ram_bytes(&v)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ApiError::bad_request(format!("invalid max-size: {v}")))?
                        as u64,
                )
            }
            "max-file" => {
                files = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ApiError::bad_request(format!("invalid max-file: {v}")))?,
                )
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown log opt '{other}' for json-file log driver"
                )))
            }
        }
    }
    Ok((size, files))
}

/// What a container is doing: changes over its life.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// created, running, exited, dead.
    pub status: String,
    pub pid: i64,
    pub exit_code: i64,
    pub started_at: String,
    pub finished_at: String,
    pub error: String,
    /// Frozen by `pause` (status stays "running", as in Docker).
    #[serde(default)]
    pub paused: bool,
    /// Stopped or killed by a user: the restart policy leaves it alone (until `start`).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Restarts done by the policy.
    #[serde(default)]
    pub restart_count: i64,
    /// The shim killed it for turning unhealthy (`--restart on-unhealthy` brings it back).
    #[serde(default)]
    pub killed_unhealthy: bool,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's RestartPolicy of a container (berth's own `on-unhealthy` has no name in Docker's
/// models: it is left out).
fn restart_policy(host: &Host) -> Option<bollard_stubs::models::RestartPolicy> {
    use bollard_stubs::models::RestartPolicyNameEnum as Name;
    let name = match host.restart.as_str() {
        "" | "no" => Name::NO,
        "always" => Name::ALWAYS,
        "unless-stopped" => Name::UNLESS_STOPPED,
        "on-failure" => Name::ON_FAILURE,
        _ => return None,
    };
    Some(bollard_stubs::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: Some(host.restart_max),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ApiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record")
    ));
    let io = |e: std::io::Error| ApiError::internal(format!("write {}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&serde_json::to_vec_pretty(value).expect("records serialize"))
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// A JSON array of strings (absent or malformed: empty).
pub(crate) fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A non-empty string field.
fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A `{"k": "v"}` object (labels, sysctls).
fn string_map(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn opt_i64(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().filter(|n| *n != 0)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn unix_time(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp())
}

impl Engine {
    /// Records a container event with Docker's attributes (image, name, labels, and `extra`).
    pub(crate) fn container_event(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs: std::collections::BTreeMap<String, String> = rec.labels.clone();
        attrs.insert("image".into(), rec.image.clone());
        attrs.insert("name".into(), rec.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_owned(), v.clone());
        }
        self.events.emit("container", action, &rec.id, attrs);
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// The full ID of a container and whether it runs (for exec).
    pub(crate) fn container_status(&self, key: &str) -> Result<(String, bool), ApiError> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        Ok((rec.id, st.status == "running" && !st.paused))
    }

    pub(crate) fn container_rootfs(&self, id: &str) -> PathBuf {
        self.rootfs(id)
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

    pub(crate) fn records(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(self.containers_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| read_json::<Record>(&e.path().join("config.json")))
            .collect()
    }

    /// Finishes removals a crash interrupted (`containers/.removing-<id>`); nothing was mounted
    /// in them when they were renamed.
    pub(crate) fn finish_removals(&self) {
        let Ok(entries) = std::fs::read_dir(self.containers_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".removing-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Every container's image and whether it runs (for image removal and prune).
    pub(crate) fn image_users(&self) -> Vec<berth_image::delete::ImageUser> {
        self.records()
            .into_iter()
            .filter_map(|r| {
                let status = self.refresh(&r.id).status;
                Some(berth_image::delete::ImageUser {
                    image: r.image_id.parse().ok()?,
                    running: status == "running" || status == "restarting",
                    container: r.id,
                })
            })
            .collect()
    }

    /// Finds a container by full ID, name (with or without the leading `/`), or ID prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Record, ApiError> {
        let key = key.strip_prefix('/').unwrap_or(key);
        // A full ID (what the engine itself passes, on every start and refresh) is one file
        // read, not a read of every container's record.
        if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(r) = read_json::<Record>(&self.container_dir(key).join("config.json")) {
                return Ok(r);
            }
        }
        let records = self.records();
        if let Some(r) = records.iter().find(|r| r.id == key || r.name == key) {
            return Ok(r.clone());
        }
        let hits: Vec<&Record> = records.iter().filter(|r| r.id.starts_with(key)).collect();
        match hits.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(ApiError::not_found(format!("No such container: {key}"))),
            _ => Err(ApiError::not_found(format!(
                "Multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    pub(crate) fn state(&self, id: &str) -> State {
        read_json(&self.container_dir(id).join("state.json")).unwrap_or_else(|| State {
            status: "created".into(),
            ..Default::default()
        })
    }

    pub(crate) fn save_state(&self, id: &str, state: &State) -> Result<(), ApiError> {
        write_json(&self.container_dir(id).join("state.json"), state)
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
        if st.status != "running" {
            return st;
        }
        let dir = self.container_dir(id);
        if let Some(exit) = shim::read_exit(&dir) {
            st.paused = false;
            st.status = "exited".into();
            st.exit_code = exit.exit_code.into();
            st.finished_at = exit.finished_at;
            st.pid = 0;
        } else if !shim::shim_alive(&dir) {
            match shim::read_exit(&dir) {
                // It wrote its record and exited between the two looks: a normal end.
                Some(exit) => {
                    st.paused = false;
                    st.status = "exited".into();
                    st.exit_code = exit.exit_code.into();
                    st.finished_at = exit.finished_at;
                    st.pid = 0;
                }
                // The shim is gone without a record (killed with the host, say).
                None => {
                    st.status = "exited".into();
                    st.exit_code = 255;
                    st.finished_at = now();
                    st.pid = 0;
                    st.error = "the container's supervisor died".into();
                    st.paused = false;
                }
            }
        } else {
            return st;
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

    pub(crate) fn mount_rootfs(&self, rec: &Record) -> Result<(), ApiError> {
        let image: berth_core::Digest = rec
            .image_id
            .parse()
            .map_err(|_| ApiError::internal("bad image id in container record"))?;
        let config = self
            .images
            .config(&image)
            .map_err(|e| ApiError::from_kind(&e))?;
        let lowers = self
            .images
            .lower_dirs(&config)
            .map_err(|e| ApiError::from_kind(&e))?;
        let dir = self.container_dir(&rec.id);
        let (upper, work, target) = (dir.join("upper"), dir.join("work"), self.rootfs(&rec.id));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)
                .map_err(|e| ApiError::internal(format!("{}: {e}", d.display())))?;
        }
        self.unmount_rootfs(&rec.id);
        // An image without layers still needs one lower dir.
        let empty = dir.join("empty");
        if lowers.is_empty() {
            std::fs::create_dir_all(&empty).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        crate::overlay::mount_overlay(&target, &lowers, &empty, &upper, &work)
            .map_err(|e| ApiError::internal(format!("mount the container's rootfs: {e}")))
    }

    fn write_bundle(&self, rec: &Record) -> Result<PathBuf, ApiError> {
        let bundle = self.container_dir(&rec.id).join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.iter().cloned());
        let mut seccomp = SeccompChoice::Default;
        let mut no_new_privileges = false;
        for opt in &rec.host.security_opt {
            match opt.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => seccomp = SeccompChoice::Unconfined,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                    no_new_privileges = true
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid --security-opt: {other:?}"
                    )))
                }
            }
        }
        let ulimits = rec
            .host
            .ulimits
            .iter()
            .map(|u| u.parse::<Ulimit>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let net = self.network_up(rec)?;
        let mut mounts = self.user_mounts(rec)?;
        mounts.extend(net.mounts);
        let opts = ContainerOptions {
            rootfs: self.rootfs(&rec.id),
            args,
            env: rec.env.clone(),
            cwd: Some(rec.cwd.clone()).filter(|c| !c.is_empty()),
            user: Some(rec.user.clone()).filter(|u| !u.is_empty()),
            hostname: Some(rec.hostname.clone()),
            readonly_rootfs: rec.host.readonly_rootfs,
            memory: rec.host.memory,
            memory_swap: rec.host.memory_swap,
            cpus: rec.host.nano_cpus.map(|n| n as f64 / 1e9),
            cpu_shares: rec.host.cpu_shares,
            pids_limit: rec.host.pids_limit,
            cap_add: rec.host.cap_add.clone(),
            cap_drop: rec.host.cap_drop.clone(),
            privileged: rec.host.privileged,
            no_new_privileges,
            seccomp,
            sysctls: rec.host.sysctls.clone(),
            ulimits,
            tty: rec.tty,
            init: rec.host.init,
            mounts,
            host_network: net.host_network,
            netns_path: net.netns,
            cgroups_path: Some(berth_oci::host::default_cgroups_path(
                &rec.id,
                berth_oci::host::systemd_is_init(),
            )),
            ..Default::default()
        };
        let spec = docker_default(&opts).map_err(|e| ApiError::from_kind(&e))?;
        write_json(&bundle.join("config.json"), &spec)?;
        Ok(bundle)
    }

    pub(crate) fn wait_exited(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.refresh(id).status != "running" {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `berth-runtime ARGS` and turns a failure into its one-line error.
    pub(crate) fn runtime_op(&self, args: &[&str]) -> Result<(), ApiError> {
        let out = self
            .runtime()
            .args(args)
            .output()
            .map_err(|e| ApiError::internal(format!("run berth-runtime: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ApiError::internal(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }

    fn mark_manually_stopped(&self, id: &str) {
        let mut st = self.state(id);
        st.manually_stopped = true;
        let _ = self.save_state(id, &st);
    }

    /// `--rm`: the client that waits for the container removes it when it ends (and gets its
    /// exit code). A container whose client went away first (killed, or its output pipe
    /// closed) would stay; it goes once it has been over for a while, as Docker's daemon
    /// removes it by itself.
    fn remove_if_left_behind(&self, rec: &Record) {
        const GRACE_SECS: i64 = 10;
        let st = self.refresh(&rec.id);
        let over = st.status == "exited" || st.status == "dead";
        let ended = unix_time(&st.finished_at);
        if over && ended > 0 && chrono::Utc::now().timestamp() - ended >= GRACE_SECS {
            let _ = self.remove_container(&rec.id, true, true);
        }
    }

    /// Whether the restart policy wants `rec` started again after it ended with `st`.
    fn policy_restarts(rec: &Record, st: &State) -> bool {
        if st.manually_stopped || !(st.status == "exited" || st.status == "dead") {
            return false;
        }
        match rec.host.restart.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                st.exit_code != 0
                    && (rec.host.restart_max == 0 || st.restart_count < rec.host.restart_max)
            }
            "on-unhealthy" => st.killed_unhealthy,
            _ => false,
        }
    }

    /// One pass of the restart supervisor: containers whose policy wants them back, and whose
    /// back-off has passed, are started again. `boot` is the pass at daemon start, where
    /// `always` overrides an earlier manual stop, as in Docker.
    pub fn supervise(&self, boot: bool) {
        for rec in self.records() {
            if rec.host.auto_remove {
                self.remove_if_left_behind(&rec);
                continue;
            }
            if rec.host.restart == "no" || rec.host.restart.is_empty() {
                continue;
            }
            // Decide and start under the container's lock: a `start` or `rm` through the API
            // at the same moment waits, and sees the outcome.
            let lock = self.container_lock(&rec.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if !self.container_dir(&rec.id).join("config.json").exists() {
                continue; // removed meanwhile
            }
            let mut st = self.refresh(&rec.id);
            if boot && rec.host.restart == "always" && st.manually_stopped {
                st.manually_stopped = false;
                let _ = self.save_state(&rec.id, &st);
            }
            if !Self::policy_restarts(&rec, &st) {
                continue;
            }
            // Docker's back-off: 100 ms, doubling per restart, at most a minute; a container
            // that ran for 10 s or more starts over at 100 ms.
            let ran = unix_time(&st.finished_at) - unix_time(&st.started_at);
            let n = if ran >= 10 {
                0
            } else {
                st.restart_count.min(10)
            };
            let delay_ms = (100i64 << n).min(60_000);
            let finished = chrono::DateTime::parse_from_rfc3339(&st.finished_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0);
            if !boot && chrono::Utc::now().timestamp_millis() < finished + delay_ms {
                continue;
            }
            st.restart_count += 1;
            let _ = self.save_state(&rec.id, &st);
            if let Err(e) = self.start_locked(&rec) {
                let mut st = self.state(&rec.id);
                st.error = e.message;
                st.finished_at = now();
                let _ = self.save_state(&rec.id, &st);
            }
        }
    }

    /// Starts `rec`; the caller holds its lock.
    fn start_locked(&self, rec: &Record) -> Result<bool, ApiError> {
        // The record as it is now, under the lock (an update may have changed its limits).
        let rec = self.find(&rec.id)?;
        let st = self.refresh(&rec.id);
        if st.status == "running" {
            return Ok(false);
        }
        // A container whose shim died with the host leaves the runtime's record behind.
        if self.runtime_root().join(&rec.id).exists() {
            let _ = self.runtime_op(&["delete", "--force", &rec.id]);
        }
        self.mount_rootfs(&rec)?;
        let bundle = match self.write_bundle(&rec) {
            Ok(b) => b,
            Err(e) => {
                self.unmount_rootfs(&rec.id);
                self.network_down(&rec.id);
                return Err(e);
            }
        };
        let dir = self.container_dir(&rec.id);
        for f in [shim::EXIT_FILE, shim::SHIM_FILE] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let mut cmd = self.runtime();
        cmd.arg("shim")
            .arg("-b")
            .arg(&bundle)
            .arg("--state-dir")
            .arg(&dir);
        if rec.open_stdin {
            cmd.arg("--interactive");
        }
        if let Some(n) = rec.host.log_max_size {
            cmd.arg("--log-max-size").arg(n.to_string());
        }
        if let Some(n) = rec.host.log_max_files {
            cmd.arg("--log-max-file").arg(n.to_string());
        }
        let _ = std::fs::remove_file(dir.join(berth_oci::shim::health::HEALTH_FILE));
        if let Some(h) = &rec.healthcheck {
            let json = serde_json::to_string(h)
                .map_err(|e| ApiError::internal(format!("health check: {e}")))?;
            cmd.arg("--health").arg(json);
        }
        let client_waiting = self
            .attaching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&rec.id);
        if client_waiting {
            // Hold the process until the attached client is connected: it sees all output.
            cmd.arg("--wait-attach-ms").arg("10000");
        }
        let out = cmd
            .arg(&rec.id)
            .output()
            .map_err(|e| ApiError::internal(format!("run berth-runtime: {e}")))?;
        if !out.status.success() {
            self.unmount_rootfs(&rec.id);
            self.network_down(&rec.id);
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let mut st = self.state(&rec.id);
            st.error = msg.clone();
            let _ = self.save_state(&rec.id, &st);
            return Err(ApiError::bad_request(format!(
                "failed to create task for container: {msg}"
            )));
        }
        let info: shim::ShimInfo = serde_json::from_slice(&out.stdout)
            .map_err(|e| ApiError::internal(format!("shim answer: {e}")))?;
        self.save_state(
            &rec.id,
            &State {
                status: "running".into(),
                pid: info.init_pid.into(),
                exit_code: 0,
                started_at: now(),
                finished_at: ZERO_TIME.into(),
                error: String::new(),
                paused: false,
                manually_stopped: false,
                restart_count: st.restart_count,
                killed_unhealthy: false,
            },
        )?;
        self.container_event(&rec, "start", &[]);
        Ok(true)
    }

    /// Thaws a paused container (signals reach frozen processes only once they run again).
    pub(crate) fn thaw(&self, id: &str) {
        let mut st = self.state(id);
        if st.paused && self.runtime_op(&["resume", id]).is_ok() {
            st.paused = false;
            let _ = self.save_state(id, &st);
        }
    }

    pub(crate) fn signal(&self, id: &str, signal: &str) -> Result<(), ApiError> {
        self.runtime_op(&["kill", id, signal])
    }

    fn status_text(st: &State, now_unix: i64) -> String {
        match st.status.as_str() {
            "running" => format!(
                "Up {}{}",
                humanize::duration(now_unix - unix_time(&st.started_at)),
                if st.paused { " (Paused)" } else { "" }
            ),
            "exited" => format!(
                "Exited ({}) {} ago",
                st.exit_code,
                humanize::duration(now_unix - unix_time(&st.finished_at))
            ),
            "created" => "Created".into(),
            other => other.to_owned(),
        }
    }
}

impl ContainerBackend for Engine {
    fn create_container(
        &self,
        name: Option<String>,
        body: serde_json::Value,
    ) -> Result<ContainerCreateResponse, ApiError> {
        let image_name = body["Image"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request("No image was specified"))?
            .to_owned();
        let image_id = self
            .images
            .resolve(&image_name)
            .map_err(|e| ApiError::from_kind(&e))?
            .ok_or_else(|| ApiError::not_found(format!("No such image: {image_name}")))?;
        let image = self
            .images
            .config(&image_id)
            .map_err(|e| ApiError::from_kind(&e))?;
        let ic = &image.config;

        let entrypoint = if body["Entrypoint"].is_array() {
            strings(&body["Entrypoint"])
        } else {
            ic.entrypoint.clone().unwrap_or_default()
        };
        let cmd = if body["Cmd"].is_array() && !strings(&body["Cmd"]).is_empty() {
            strings(&body["Cmd"])
        } else if body["Entrypoint"].is_array() {
            Vec::new() // an explicit entrypoint resets the image's CMD, as in Docker
        } else {
            ic.cmd.clone().unwrap_or_default()
        };
        let mut argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if argv.is_empty() {
            return Err(ApiError::bad_request("no command specified"));
        }
        let path = argv.remove(0);

        let name = match name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_owned();
                if !valid_name(&n) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n
            }
            None => loop {
                let n = humanize::random_name();
                if !self.records().iter().any(|r| r.name == n) {
                    break n;
                }
            },
        };
        if let Some(other) = self.records().iter().find(|r| r.name == name) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }

        let id = ContainerId::generate().map_err(|e| ApiError::internal(e.to_string()))?;
        let hc = &body["HostConfig"];
        let (log_max_size, log_max_files) = log_options(hc)?;
        let mut env = ic.env.clone().unwrap_or_default();
        env.extend(strings(&body["Env"]));
        let mut record = Record {
            id: id.to_string(),
            name,
            created: now(),
            image: image_name,
            image_id: image_id.to_string(),
            path,
            args: argv,
            env,
            cwd: text(&body["WorkingDir"])
                .or_else(|| ic.working_dir.clone())
                .unwrap_or_default(),
            user: text(&body["User"])
                .or_else(|| ic.user.clone())
                .unwrap_or_default(),
            hostname: text(&body["Hostname"]).unwrap_or_else(|| id.short().to_owned()),
            tty: body["Tty"].as_bool().unwrap_or(false),
            open_stdin: body["OpenStdin"].as_bool().unwrap_or(false),
            labels: string_map(&body["Labels"]),
            stop_signal: body["StopSignal"]
                .as_str()
                .map(str::to_owned)
                .or(ic.stop_signal.clone()),
            stop_timeout: body["StopTimeout"].as_i64(),
            host: Host {
                memory: opt_i64(&hc["Memory"]),
                memory_swap: opt_i64(&hc["MemorySwap"]),
                nano_cpus: opt_i64(&hc["NanoCpus"]),
                cpu_shares: hc["CpuShares"].as_u64().filter(|n| *n != 0),
                pids_limit: opt_i64(&hc["PidsLimit"]),
                cap_add: strings(&hc["CapAdd"]),
                cap_drop: strings(&hc["CapDrop"]),
                privileged: hc["Privileged"].as_bool().unwrap_or(false),
                readonly_rootfs: hc["ReadonlyRootfs"].as_bool().unwrap_or(false),
                security_opt: strings(&hc["SecurityOpt"]),
                auto_remove: hc["AutoRemove"].as_bool().unwrap_or(false),
                restart: match hc["RestartPolicy"]["Name"].as_str().unwrap_or("") {
                    "" | "no" => "no".to_owned(),
                    p @ ("always" | "on-failure" | "unless-stopped" | "on-unhealthy") => {
                        p.to_owned()
                    }
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "invalid restart policy '{other}'"
                        )))
                    }
                },
                restart_max: hc["RestartPolicy"]["MaximumRetryCount"]
                    .as_i64()
                    .unwrap_or(0),
                init: hc["Init"].as_bool().unwrap_or(false),
                log_max_size,
                log_max_files,
                sysctls: string_map(&hc["Sysctls"]),
                ulimits: hc["Ulimits"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| {
                                Some(format!(
                                    "{}={}:{}",
                                    u["Name"].as_str()?,
                                    u["Soft"].as_i64()?,
                                    u["Hard"].as_i64()?
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            mounts: Vec::new(),
            healthcheck: None,
            net: Default::default(),
        };
        record.healthcheck = crate::health::config_for(
            &body,
            ic.healthcheck.as_ref(),
            ic.shell.clone().unwrap_or_default(),
            record.host.restart == "on-unhealthy",
        )?;
        if let Some(m) = record.host.memory {
            if m < 6 * 1024 * 1024 {
                return Err(ApiError::bad_request("Minimum memory limit allowed is 6MB"));
            }
        }
        // Check what the runtime would refuse now, not at start.
        self.check_options(&record)?;
        let exposed: Vec<String> = ic
            .exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        record.net = self.net_for_create(&body, &exposed)?;
        let mut warnings = Vec::new();
        let hc = &body["HostConfig"];
        let publishes = hc["PortBindings"]
            .as_object()
            .is_some_and(|p| !p.is_empty())
            || hc["PublishAllPorts"].as_bool() == Some(true);
        if record.net.mode == "host" && publishes {
            // Docker's words; the ports are not published (the container has the host's).
            warnings.push("Published ports are discarded when using host network mode".to_owned());
            record.net.ports.clear();
        }
        // Last, as it creates volumes: everything else about the request is fine.
        let image_volumes: Vec<String> = ic
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        record.mounts = self.mounts_for_create(&body, &image_volumes)?;
        let dir = self.container_dir(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(e.to_string()))?;
        write_json(
            &dir.join("state.json"),
            &State {
                status: "created".into(),
                ..Default::default()
            },
        )?;
        write_json(&dir.join("config.json"), &record)?;
        self.container_event(&record, "create", &[]);
        Ok(ContainerCreateResponse {
            id: record.id,
            warnings,
        })
    }

    fn start_container(&self, key: &str) -> Result<bool, ApiError> {
        let rec = self.find(key)?;
        let lock = self.container_lock(&rec.id);
        let result = {
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            self.start_locked(&rec)
        };
        // `--rm`: a container that cannot start goes too (the docker CLI waits for that).
        if result.is_err() && rec.host.auto_remove {
            let _ = self.remove_container(&rec.id, true, true);
        }
        result
    }

    fn wait_state(&self, key: &str) -> Result<WaitState, ApiError> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        let exited = st.status == "exited" || st.status == "dead";
        let mut ws = WaitState {
            running: st.status == "running",
            created: st.status == "created",
            exit_code: st.exit_code,
            finished_at: st.finished_at.clone(),
            removed: false,
        };
        // `--rm`: the container goes once it has ended; its exit code is reported once more.
        if exited && rec.host.auto_remove {
            // `--rm` takes the container's anonymous volumes too, as Docker's does.
            self.remove_container(&rec.id, true, true)?;
            ws.removed = true;
        }
        Ok(ws)
    }

    fn begin_attach(&self, key: &str) -> Result<(String, PathBuf), ApiError> {
        let rec = self.find(key)?;
        if self.refresh(&rec.id).status != "running" {
            self.attaching
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rec.id.clone());
        }
        let socket = self.container_dir(&rec.id).join(shim::ATTACH_SOCKET);
        Ok((rec.id, socket))
    }

    fn end_attach(&self, id: &str) {
        self.attaching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn stop_container(&self, key: &str, timeout: Option<i64>) -> Result<bool, ApiError> {
        let rec = self.find(key)?;
        {
            // Under the lock the restart supervisor decides under: once marked, it will not
            // start the container again (and it has not just done so unseen).
            let lock = self.container_lock(&rec.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let st = self.refresh(&rec.id);
            if st.status != "running" {
                // A container waiting for its restart stays down: the stop cancels it.
                if Self::policy_restarts(&rec, &st) {
                    self.mark_manually_stopped(&rec.id);
                }
                return Ok(false);
            }
            self.mark_manually_stopped(&rec.id);
        }
        self.thaw(&rec.id);
        let secs = timeout.or(rec.stop_timeout).unwrap_or(10).max(0) as u64;
        let sig = rec.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
        let _ = self.signal(&rec.id, &sig);
        if !self.wait_exited(&rec.id, Duration::from_secs(secs)) {
            self.container_event(&rec, "kill", &[("signal", "9".into())]);
            let _ = self.signal(&rec.id, "SIGKILL");
            self.wait_exited(&rec.id, Duration::from_secs(10));
        }
        self.container_event(&rec, "stop", &[]);
        Ok(true)
    }

    fn kill_container(&self, key: &str, signal: &str) -> Result<(), ApiError> {
        let rec = self.find(key)?;
        if self.refresh(&rec.id).status != "running" {
            return Err(ApiError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                key, rec.id
            )));
        }
        self.mark_manually_stopped(&rec.id);
        self.signal(&rec.id, signal)?;
        self.container_event(&rec, "kill", &[("signal", signal.to_owned())]);
        if matches!(signal.trim_start_matches("SIG"), "KILL" | "9") {
            self.thaw(&rec.id);
        }
        Ok(())
    }

    fn restart_container(&self, key: &str, timeout: Option<i64>) -> Result<(), ApiError> {
        let rec = self.find(key)?;
        self.stop_container(&rec.id, timeout)?;
        self.start_container(&rec.id)?;
        self.container_event(&rec, "restart", &[]);
        Ok(())
    }

    fn rename_container(&self, key: &str, new_name: &str) -> Result<(), ApiError> {
        let mut rec = self.find(key)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !valid_name(new_name) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if let Some(other) = self.records().iter().find(|r| r.name == new_name) {
            if other.id != rec.id {
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        let old = std::mem::replace(&mut rec.name, new_name.to_owned());
        write_json(&self.container_dir(&rec.id).join("config.json"), &rec)?;
        self.container_event(&rec, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    fn top_container(&self, key: &str, ps_args: &str) -> Result<serde_json::Value, ApiError> {
        let rec = self.find(key)?;
        if self.refresh(&rec.id).status != "running" {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let out = self
            .runtime()
            .args(["ps", "--format", "json", &rec.id])
            .output()
            .map_err(|e| ApiError::internal(format!("run berth-runtime: {e}")))?;
        let pids: Vec<i32> = serde_json::from_slice(&out.stdout).map_err(|_| {
            ApiError::internal(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        })?;
        let ps = Command::new("ps")
            .args(ps_args.split_whitespace())
            .output()
            .map_err(|e| ApiError::internal(format!("run ps: {e}")))?;
        if !ps.status.success() {
            return Err(ApiError::internal(format!(
                "Error running ps: {}",
                String::from_utf8_lossy(&ps.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&ps.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let titles: Vec<String> = header.split_whitespace().map(str::to_owned).collect();
        let pid_col = titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
        let mut processes = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .get(pid_col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
            {
                // The last column (the command) keeps its spaces.
                let mut row: Vec<String> = fields[..titles.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[titles.len() - 1..].join(" "));
                processes.push(row);
            }
        }
        Ok(serde_json::json!({ "Titles": titles, "Processes": processes }))
    }

    fn resize_container(&self, key: &str, rows: u16, cols: u16) -> Result<(), ApiError> {
        let rec = self.find(key)?;
        if self.refresh(&rec.id).status != "running" {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if !rec.tty || rows == 0 || cols == 0 {
            return Ok(());
        }
        let dir = self.container_dir(&rec.id);
        let (_dir, path) = shim::short_socket_path(&dir, shim::CONTROL_SOCKET)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut conn = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| ApiError::internal(format!("reach the container's shim: {e}")))?;
        writeln!(conn, "resize {rows} {cols}").map_err(|e| ApiError::internal(e.to_string()))
    }

    fn pause_container(&self, key: &str, pause: bool) -> Result<(), ApiError> {
        let rec = self.find(key)?;
        let mut st = self.refresh(&rec.id);
        if st.status != "running" {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        match (pause, st.paused) {
            (true, true) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    rec.id
                )))
            }
            (false, false) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not paused",
                    rec.id
                )))
            }
            (true, false) => self.runtime_op(&["pause", &rec.id])?,
            (false, true) => self.runtime_op(&["resume", &rec.id])?,
        }
        st.paused = pause;
        self.save_state(&rec.id, &st)?;
        self.container_event(&rec, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<(), ApiError> {
        let rec = self.find(key)?;
        let lock = self.container_lock(&rec.id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.container_dir(&rec.id).join("config.json").exists() {
            return Err(ApiError::not_found(format!("No such container: {key}")));
        }
        if self.refresh(&rec.id).status == "running" {
            if !force {
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    rec.name
                )));
            }
            let _ = self.signal(&rec.id, "SIGKILL");
            self.thaw(&rec.id);
            if !self.wait_exited(&rec.id, Duration::from_secs(10)) {
                return Err(ApiError::internal(format!(
                    "container {} did not stop after SIGKILL",
                    rec.id
                )));
            }
        }
        self.unmount_rootfs(&rec.id);
        let _ = self.runtime().args(["delete", "--force", &rec.id]).output();
        self.network_remove(&rec);
        // Never delete through a mount: if anything is still mounted in the container's
        // directory, refuse rather than risk files that are not the container's.
        let dir = self.container_dir(&rec.id);
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let prefix = format!("{}/", dir.display());
            if let Some(m) = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .find(|p| p.starts_with(&prefix))
            {
                return Err(ApiError::internal(format!(
                    "cannot remove container {}: {m} is still mounted",
                    rec.id
                )));
            }
        }
        // Out of the way first, in one rename: a request that looks at the container meanwhile
        // (a stats stream refreshing its state, say) then finds no directory to write into,
        // instead of putting a file back into one being deleted.
        let doomed = self.containers_dir().join(format!(".removing-{}", rec.id));
        std::fs::rename(&dir, &doomed)
            .map_err(|e| ApiError::internal(format!("remove container files: {e}")))?;
        std::fs::remove_dir_all(&doomed)
            .map_err(|e| ApiError::internal(format!("remove container files: {e}")))?;
        self.container_event(&rec, "destroy", &[]);
        self.forget_lock(&rec.id);
        self.release_volumes(&rec, volumes);
        Ok(())
    }

    fn container_logs(
        &self,
        key: &str,
        q: &LogQuery,
        cursor: Option<LogCursor>,
    ) -> Result<Logs, ApiError> {
        let rec = self.find(key)?;
        let running = self.refresh(&rec.id).status == "running";
        let base = self
            .container_dir(&rec.id)
            .join(format!("{}-json.log", rec.id));
        let (records, cursor) = crate::logs::read(&base, q, cursor);
        Ok(Logs {
            tty: rec.tty,
            records,
            cursor,
            running,
        })
    }

    fn list_containers(&self, q: ListQuery) -> Result<Vec<ContainerSummary>, ApiError> {
        let now_unix = chrono::Utc::now().timestamp();
        let mut recs = self.records();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let filter = crate::filters::ContainerFilter::new(&q.filters, &recs)?;
        let all = q.all || q.limit.is_some() || filter.wants_stopped();
        let mut out = Vec::new();
        for (n, rec) in recs.iter().enumerate() {
            if q.limit.is_some_and(|l| n >= l) {
                break;
            }
            let st = self.refresh(&rec.id);
            if !all && st.status != "running" {
                continue;
            }
            if !filter.matches(rec, &st) {
                continue;
            }
            let state = match st.status.as_str() {
                "running" if st.paused => ContainerSummaryStateEnum::PAUSED,
                "running" => ContainerSummaryStateEnum::RUNNING,
                "exited" if Self::policy_restarts(rec, &st) => {
                    ContainerSummaryStateEnum::RESTARTING
                }
                "exited" => ContainerSummaryStateEnum::EXITED,
                "created" => ContainerSummaryStateEnum::CREATED,
                _ => ContainerSummaryStateEnum::DEAD,
            };
            let command = std::iter::once(rec.path.clone())
                .chain(rec.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            out.push(ContainerSummary {
                id: Some(rec.id.clone()),
                names: Some(vec![format!("/{}", rec.name)]),
                image: Some(rec.image.clone()),
                image_id: Some(rec.image_id.clone()),
                command: Some(command),
                created: Some(unix_time(&rec.created)),
                ports: Some(self.port_summary(&rec.id)),
                labels: Some(rec.labels.clone().into_iter().collect()),
                state: Some(state),
                status: Some(if Self::policy_restarts(rec, &st) {
                    format!(
                        "Restarting ({}) {} ago",
                        st.exit_code,
                        humanize::duration(now_unix - unix_time(&st.finished_at))
                    )
                } else if st.status == "running" {
                    Engine::status_text(&st, now_unix)
                        + &crate::health::status_suffix(self.health_of(rec).as_ref())
                } else {
                    Engine::status_text(&st, now_unix)
                }),
                size_rw: q.size.then(|| self.upper_size(&rec.id)),
                size_root_fs: q
                    .size
                    .then(|| self.upper_size(&rec.id) + self.image_size(rec)),
                ..Default::default()
            });
        }
        Ok(out)
    }

    fn inspect_container(&self, key: &str) -> Result<ContainerInspectResponse, ApiError> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        let status = match st.status.as_str() {
            "running" if st.paused => ContainerStateStatusEnum::PAUSED,
            "running" => ContainerStateStatusEnum::RUNNING,
            "exited" if Self::policy_restarts(&rec, &st) => ContainerStateStatusEnum::RESTARTING,
            "exited" => ContainerStateStatusEnum::EXITED,
            "created" => ContainerStateStatusEnum::CREATED,
            _ => ContainerStateStatusEnum::DEAD,
        };
        let dir = self.container_dir(&rec.id);
        Ok(ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(rec.created.clone()),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(st.status == "running"),
                paused: Some(st.paused),
                restarting: Some(Self::policy_restarts(&rec, &st)),
                oom_killed: Some(false),
                dead: Some(st.status == "dead"),
                pid: Some(st.pid),
                exit_code: Some(st.exit_code),
                error: Some(st.error.clone()),
                started_at: Some(if st.started_at.is_empty() {
                    ZERO_TIME.into()
                } else {
                    st.started_at.clone()
                }),
                finished_at: Some(if st.finished_at.is_empty() {
                    ZERO_TIME.into()
                } else {
                    st.finished_at.clone()
                }),
                health: (st.status == "running")
                    .then(|| self.health_of(&rec))
                    .flatten()
                    .map(|h| crate::health::to_api(&h)),
            }),
            image: Some(rec.image_id.clone()),
            log_path: Some(
                dir.join(format!("{}-json.log", rec.id))
                    .display()
                    .to_string(),
            ),
            name: Some(format!("/{}", rec.name)),
            restart_count: Some(st.restart_count),
            driver: Some("overlayfs".into()),
            platform: Some("linux".into()),
            config: Some(ContainerConfig {
                hostname: Some(rec.hostname.clone()),
                user: Some(rec.user.clone()),
                tty: Some(rec.tty),
                open_stdin: Some(rec.open_stdin),
                env: Some(rec.env.clone()),
                cmd: Some(rec.args.clone()),
                image: Some(rec.image.clone()),
                working_dir: Some(rec.cwd.clone()),
                entrypoint: Some(vec![rec.path.clone()]),
                labels: Some(rec.labels.clone().into_iter().collect()),
                stop_signal: rec.stop_signal.clone(),
                ..Default::default()
            }),
            network_settings: Some(self.network_settings(&rec)),
            mounts: Some(
                rec.mounts
                    .iter()
                    .map(|m| bollard_stubs::models::MountPoint {
                        typ: Some(m.kind.clone()),
                        name: (m.kind == "volume").then(|| m.source.clone()),
                        source: Some(match m.kind.as_str() {
                            "volume" => self.volume_data(&m.source).display().to_string(),
                            "bind" => m.source.clone(),
                            _ => String::new(),
                        }),
                        destination: Some(m.target.clone()),
                        driver: (m.kind == "volume").then(|| "local".to_owned()),
                        mode: Some(if m.readonly { "ro" } else { "" }.to_owned()),
                        rw: Some(!m.readonly),
                        propagation: Some(m.propagation.clone().unwrap_or_default()),
                    })
                    .collect(),
            ),
            host_config: Some(HostConfig {
                memory: rec.host.memory,
                nano_cpus: rec.host.nano_cpus,
                pids_limit: rec.host.pids_limit,
                privileged: Some(rec.host.privileged),
                readonly_rootfs: Some(rec.host.readonly_rootfs),
                cap_add: Some(rec.host.cap_add.clone()),
                cap_drop: Some(rec.host.cap_drop.clone()),
                security_opt: Some(rec.host.security_opt.clone()),
                auto_remove: Some(rec.host.auto_remove),
                network_mode: Some(rec.net.mode.clone()),
                memory_swap: rec.host.memory_swap,
                cpu_shares: rec.host.cpu_shares.map(|s| s as i64),
                init: Some(rec.host.init),
                sysctls: Some(rec.host.sysctls.clone().into_iter().collect()),
                restart_policy: restart_policy(&rec.host),
                // Clients read the driver to know whether they can follow the logs (the
                // Python SDK's `containers.run` does).
                log_config: Some(bollard_stubs::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(
                        rec.host
                            .log_max_size
                            .map(|n| ("max-size".to_owned(), n.to_string()))
                            .into_iter()
                            .chain(
                                rec.host
                                    .log_max_files
                                    .map(|n| ("max-file".to_owned(), n.to_string())),
                            )
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

impl Engine {
    /// Bytes in a container's writable layer.
    fn upper_size(&self, id: &str) -> i64 {
        crate::disk_usage(&self.container_dir(id).join("upper")) as i64
    }

    /// Bytes of a container's image (its unpacked layers).
    fn image_size(&self, rec: &Record) -> i64 {
        rec.image_id
            .parse::<berth_core::Digest>()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .and_then(|c| self.images.lower_dirs(&c).ok())
            .map(|dirs| dirs.iter().map(|d| crate::disk_usage(d)).sum::<u64>() as i64)
            .unwrap_or(0)
    }

    /// Builds the spec once at create, so bad flag values are refused then, with nothing made.
    fn check_options(&self, rec: &Record) -> Result<(), ApiError> {
        let mut probe = rec.clone();
        probe.user = String::new(); // names are resolved against the rootfs at start
        let tmp_opts = ContainerOptions {
            rootfs: PathBuf::from("/nonexistent"),
            args: vec![probe.path.clone()],
            memory: probe.host.memory,
            cpus: probe.host.nano_cpus.map(|n| n as f64 / 1e9),
            pids_limit: probe.host.pids_limit,
            cap_add: probe.host.cap_add.clone(),
            cap_drop: probe.host.cap_drop.clone(),
            sysctls: probe.host.sysctls.clone(),
            ..Default::default()
        };
        docker_default(&tmp_opts)
            .map(|_| ())
            .map_err(|e| ApiError::from_kind(&e))
    }
}
