//! A container's life: start (and the shim that supervises it), stop, kill, restart, pause,
//! wait, attach, resize, rename, remove, and the restart supervisor that starts containers
//! again by their policy. Start and remove run under the container's lifecycle lock, as does
//! the supervisor's decision, so they never interleave; record changes go through the store.

use berth_core::timing::Step;
use std::io::Write;
use std::time::Duration;

use berth_api::containers::WaitState;
use berth_oci::shim;

use super::record::{now, unix_time, valid_name, Record, RestartPolicy, State, Status, ZERO_TIME};
use crate::error::{EngineError, Result};
use crate::Engine;

fn not_running(id: &str) -> EngineError {
    EngineError::conflict(format!("Container {id} is not running"))
}

/// Whether `signal` (as the kill API takes it: a name with or without `SIG`, or a number)
/// is SIGKILL.
fn is_sigkill(signal: &str) -> bool {
    let s = signal.trim();
    let s = s
        .strip_prefix("SIG")
        .or_else(|| s.strip_prefix("sig"))
        .unwrap_or(s);
    s.eq_ignore_ascii_case("KILL") || s == "9"
}

/// Logs the shim's own steps (as it reported them: from its launch and fork to the record of
/// the running container) and, as `start.shim.return`, what is left of `took`, the whole
/// `berth-runtime shim`: the answer's way back (the first process reads it and exits, the
/// engine reads its output).
fn record_shim_steps(steps: &[(String, u64)], took: Duration) {
    if steps.is_empty() {
        return;
    }
    for (name, us) in steps {
        berth_core::timing::record(name, *us);
    }
    let inside: u64 = steps.iter().map(|(_, us)| us).sum();
    let whole = took.as_micros() as u64;
    berth_core::timing::record("start.shim.return", whole.saturating_sub(inside));
}

impl Engine {
    /// `docker start`: Ok(false) when it was already running. A `--rm` container that cannot
    /// start is removed (the docker CLI waits for that).
    pub fn start(&self, key: &str) -> Result<bool> {
        let _t = Step::start("start");
        crate::cgroup_warm::warm();
        let rec = self.find(key)?;
        let lock = self.container_lock(&rec.id);
        let result = {
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            self.start_locked(&rec.id)
        };
        if result.is_err() && rec.auto_remove() {
            let _ = self.remove(&rec.id, true, true);
        }
        result
    }

    /// Starts container `id`; the caller holds its lock.
    fn start_locked(&self, id: &str) -> Result<bool> {
        // The record as it is now, under the lock (an update may have changed its limits).
        let rec = self.find(id)?;
        let st = self.refresh(&rec.id);
        if st.running() {
            return Ok(false);
        }
        // A container whose shim died with the host leaves the runtime's record behind.
        if self.runtime_root().join(&rec.id).exists() {
            let _ = self.runtime_op(&["delete", "--force", &rec.id]);
        }
        let t = Step::start("start.rootfs");
        self.mount_rootfs(&rec)?;
        drop(t);
        let t = Step::start("start.bundle");
        let bundle = match self.write_bundle(&rec) {
            Ok(b) => b,
            Err(e) => {
                self.unmount_rootfs(&rec.id);
                self.network_down(&rec.id);
                self.userns_down(&rec.id);
                return Err(e);
            }
        };
        let dir = self.container_dir(&rec.id);
        for f in [shim::EXIT_FILE, shim::SHIM_FILE, shim::health::HEALTH_FILE] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let mut cmd = self.runtime();
        cmd.arg("shim")
            .arg("-b")
            .arg(&bundle)
            .arg("--state-dir")
            .arg(&dir);
        if rec.open_stdin() {
            cmd.arg("--interactive");
        }
        if let Some(n) = rec.log.max_size {
            cmd.arg("--log-max-size").arg(n.to_string());
        }
        if rec.log.driver == super::record::LogDriver::None {
            cmd.arg("--log-max-file").arg("0");
        } else if let Some(n) = rec.log.max_files {
            cmd.arg("--log-max-file").arg(n.to_string());
        }
        if let Some(h) = &rec.healthcheck {
            let json = serde_json::to_string(h)
                .map_err(|e| EngineError::internal(format!("health check: {e}")))?;
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
        drop(t);
        let t = Step::start("start.shim");
        let spawned = std::time::Instant::now();
        if berth_core::timing::enabled() {
            cmd.env(
                berth_core::timing::SPAWNED_ENV,
                berth_core::timing::monotonic_us().to_string(),
            );
        }
        let out = cmd
            .arg(&rec.id)
            .output()
            .map_err(|e| EngineError::io("run berth-runtime", e))?;
        let shim_took = spawned.elapsed();
        drop(t);
        if !out.status.success() {
            self.unmount_rootfs(&rec.id);
            self.network_down(&rec.id);
            self.userns_down(&rec.id);
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            self.change_state(&rec.id, |st| st.error = msg.clone());
            return Err(EngineError::invalid(format!(
                "failed to create task for container: {msg}"
            )));
        }
        let _t = Step::start("start.record");
        let info: shim::ShimInfo = serde_json::from_slice(&out.stdout)
            .map_err(|e| EngineError::internal(format!("shim answer: {e}")))?;
        record_shim_steps(&info.steps, shim_took);
        self.save_state(
            &rec.id,
            &State {
                status: Status::Running,
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

    fn mark_manually_stopped(&self, id: &str) {
        self.change_state(id, |st| st.manually_stopped = true);
    }

    /// `docker stop`: the stop signal, then SIGKILL after the timeout. Ok(false) when it was
    /// not running.
    pub fn stop(&self, key: &str, timeout: Option<i64>) -> Result<bool> {
        let rec = self.find(key)?;
        {
            // Under the lock the restart supervisor decides under: once marked, it will not
            // start the container again (and it has not just done so unseen).
            let lock = self.container_lock(&rec.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let st = self.refresh(&rec.id);
            if !st.running() {
                // A container waiting for its restart stays down: the stop cancels it.
                if rec.policy_restarts(&st) {
                    self.mark_manually_stopped(&rec.id);
                }
                return Ok(false);
            }
            self.mark_manually_stopped(&rec.id);
        }
        self.thaw(&rec.id);
        let secs = timeout.or(rec.stop_timeout()).unwrap_or(10).max(0) as u64;
        let sig = rec.stop_signal().unwrap_or("SIGTERM").to_owned();
        let _ = self.signal(&rec.id, &sig);
        if !self.wait_exited(&rec.id, Duration::from_secs(secs)) {
            self.container_event(&rec, "kill", &[("signal", "9".into())]);
            let _ = self.signal(&rec.id, "SIGKILL");
            self.wait_exited(&rec.id, Duration::from_secs(10));
        }
        self.container_event(&rec, "stop", &[]);
        Ok(true)
    }

    /// `docker kill`.
    pub fn kill(&self, key: &str, signal: &str) -> Result<()> {
        let rec = self.find(key)?;
        if !self.refresh(&rec.id).running() {
            return Err(EngineError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                key, rec.id
            )));
        }
        self.mark_manually_stopped(&rec.id);
        self.signal(&rec.id, signal)?;
        self.container_event(&rec, "kill", &[("signal", signal.to_owned())]);
        if is_sigkill(signal) {
            self.thaw(&rec.id);
            // As Docker: a SIGKILL is answered once the container has stopped, so that the
            // next inspect (or a remove without force) sees it exited, with its code.
            if !self.wait_exited(&rec.id, Duration::from_secs(10)) {
                return Err(EngineError::internal(format!(
                    "container {} did not stop after SIGKILL",
                    rec.id
                )));
            }
        }
        Ok(())
    }

    /// `docker restart`: stop as `stop` does, then start.
    pub fn restart(&self, key: &str, timeout: Option<i64>) -> Result<()> {
        let rec = self.find(key)?;
        self.stop(&rec.id, timeout)?;
        self.start(&rec.id)?;
        self.container_event(&rec, "restart", &[]);
        Ok(())
    }

    /// `docker rename`: the new name is claimed first, so a create or another rename racing
    /// for it loses; the record changes through the store (under its write lock).
    pub fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let rec = self.find(key)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !valid_name(new_name) {
            return Err(EngineError::invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        self.containers.reserve_name(new_name, &rec.id)?;
        let renamed = self.containers.update(&rec.id, |r| {
            Ok(std::mem::replace(&mut r.name, new_name.to_owned()))
        });
        match renamed {
            Ok((rec, old)) => {
                self.container_event(&rec, "rename", &[("oldName", format!("/{old}"))]);
                Ok(())
            }
            Err(e) => {
                self.containers.release_name(new_name, &rec.id);
                Err(e)
            }
        }
    }

    /// `docker pause` / `docker unpause`.
    pub fn pause(&self, key: &str, pause: bool) -> Result<()> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        if !st.running() {
            return Err(not_running(&rec.id));
        }
        match (pause, st.paused) {
            (true, true) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is already paused",
                    rec.id
                )))
            }
            (false, false) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not paused",
                    rec.id
                )))
            }
            (true, false) => self.runtime_op(&["pause", &rec.id])?,
            (false, true) => self.runtime_op(&["resume", &rec.id])?,
        }
        self.change_state(&rec.id, |st| st.paused = pause);
        self.container_event(&rec, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// Where the container is in its life, for `wait`; a `--rm` container that ended is
    /// removed (with its anonymous volumes, as Docker's) and reported once more.
    pub fn wait_state(&self, key: &str) -> Result<WaitState> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        let mut ws = WaitState {
            running: st.running(),
            created: st.status == Status::Created,
            exit_code: st.exit_code,
            finished_at: st.finished_at.clone(),
            removed: false,
        };
        if st.status.ended() && rec.auto_remove() {
            self.remove(&rec.id, true, true)?;
            ws.removed = true;
        }
        Ok(ws)
    }

    /// Resolves `key` for an attach and, if it does not run yet, notes that a client waits.
    pub fn begin_attach(&self, key: &str) -> Result<(String, std::path::PathBuf)> {
        let rec = self.find(key)?;
        if !self.refresh(&rec.id).running() {
            self.attaching
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rec.id.clone());
        }
        let socket = self.container_dir(&rec.id).join(shim::ATTACH_SOCKET);
        Ok((rec.id.clone(), socket))
    }

    pub fn end_attach(&self, id: &str) {
        self.attaching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Sets a tty container's window size (through its shim).
    pub fn resize(&self, key: &str, rows: u16, cols: u16) -> Result<()> {
        let rec = self.find(key)?;
        if !self.refresh(&rec.id).running() {
            return Err(not_running(&rec.id));
        }
        if !rec.tty() || rows == 0 || cols == 0 {
            return Ok(());
        }
        let dir = self.container_dir(&rec.id);
        let (_dir, path) = shim::short_socket_path(&dir, shim::CONTROL_SOCKET)
            .map_err(|e| EngineError::io("the shim's control socket", e))?;
        let mut conn = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| EngineError::io("reach the container's shim", e))?;
        writeln!(conn, "resize {rows} {cols}").map_err(|e| EngineError::io("resize", e))
    }

    /// `docker rm`: a running container only with `force`; `volumes`: its anonymous volumes
    /// too.
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let _t = Step::start("remove");
        let rec = self.find(key)?;
        let lock = self.container_lock(&rec.id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.containers.contains(&rec.id) {
            return Err(EngineError::not_found(format!("No such container: {key}")));
        }
        let st = self.refresh(&rec.id);
        // Between two runs by its restart policy: Docker refuses that too without force (its
        // words); with force the removal cancels the restart (the supervisor decides under
        // the lock held here, and finds the container gone).
        if !force && rec.policy_restarts(&st) {
            return Err(EngineError::conflict(format!(
                "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        if st.running() {
            if !force {
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    rec.name
                )));
            }
            let _t = Step::start("remove.kill");
            let _ = self.signal(&rec.id, "SIGKILL");
            self.thaw(&rec.id);
            if !self.wait_exited(&rec.id, Duration::from_secs(10)) {
                return Err(EngineError::internal(format!(
                    "container {} did not stop after SIGKILL",
                    rec.id
                )));
            }
        }
        let t = Step::start("remove.unmount");
        self.unmount_rootfs(&rec.id);
        drop(t);
        let t = Step::start("remove.network");
        self.network_remove(&rec);
        self.userns_down(&rec.id);
        drop(t);
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
                return Err(EngineError::internal(format!(
                    "cannot remove container {}: {m} is still mounted",
                    rec.id
                )));
            }
        }
        // Out of the way first, in one rename: a request that looks at the container meanwhile
        // (a stats stream refreshing its state, say) then finds no directory to write into,
        // instead of putting a file back into one being deleted.
        // The rest (the files, the runtime's record) is cleared after the answer.
        let _files = Step::start("remove.files");
        let doomed = self.containers_dir().join(format!(".removing-{}", rec.id));
        std::fs::rename(&dir, &doomed).map_err(|e| EngineError::io("remove container files", e))?;
        self.containers.remove(&rec.id);
        self.reaper.clear_later(self.remains(&rec.id, doomed));
        self.container_event(&rec, "destroy", &[]);
        self.forget_lock(&rec.id);
        self.forget_live(&rec.id);
        self.release_volumes(&rec, volumes);
        Ok(())
    }

    /// `--rm`: the client that waits for the container removes it when it ends (and gets its
    /// exit code). A container whose client went away first (killed, or its output pipe
    /// closed) would stay; it goes once it has been over for a while, as Docker's daemon
    /// removes it by itself.
    fn remove_if_left_behind(&self, rec: &Record) {
        const GRACE_SECS: i64 = 10;
        let st = self.refresh(&rec.id);
        let ended = unix_time(&st.finished_at);
        if st.status.ended() && ended > 0 && chrono::Utc::now().timestamp() - ended >= GRACE_SECS {
            let _ = self.remove(&rec.id, true, true);
        }
    }

    /// One pass of the restart supervisor: containers whose policy wants them back, and whose
    /// back-off has passed, are started again. `boot` is the pass at daemon start, where
    /// `always` overrides an earlier manual stop, as in Docker.
    pub fn supervise(&self, boot: bool) {
        if boot {
            // Whatever ran before the daemon started may run still.
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.extend(self.records().iter().map(|r| r.id.clone()));
        }
        self.notice_exits();
        for rec in self.records() {
            if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if rec.auto_remove() {
                self.remove_if_left_behind(&rec);
                continue;
            }
            if rec.restart.is_none() {
                continue;
            }
            // Decide and start under the container's lock: a `start` or `rm` through the API
            // at the same moment waits, and sees the outcome.
            let lock = self.container_lock(&rec.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if !self.containers.contains(&rec.id) {
                continue; // removed meanwhile
            }
            let mut st = self.refresh(&rec.id);
            if boot && rec.restart == RestartPolicy::Always && st.manually_stopped {
                st.manually_stopped = false;
                let _ = self.save_state(&rec.id, &st);
            }
            if !rec.policy_restarts(&st) {
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
            if let Err(e) = self.start_locked(&rec.id) {
                self.change_state(&rec.id, |st| {
                    st.error = e.message();
                    st.finished_at = now();
                });
            }
        }
    }
}

impl Engine {
    /// Acts on the exits of containers without a restart policy that no request has looked
    /// at (a listing only observes them): their rootfs, network and user namespace go, the
    /// end is recorded and `die` sent, within a pass of the supervisor. A container that an
    /// operation holds (start, stop, removal) is left to it.
    fn notice_exits(&self) {
        let ids: Vec<String> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for id in ids {
            let Ok(rec) = self.containers.get(&id) else {
                self.forget_live(&id);
                continue;
            };
            if !rec.restart.is_none() || rec.auto_remove() {
                self.forget_live(&id); // refreshed by the passes below
                continue;
            }
            // The common case, a container still running, costs its shim's records and one
            // kill(0): no state read, no lock.
            if self.exit_seen(&id).is_none() {
                continue;
            }
            let lock = self.container_lock(&id);
            let Ok(_held) = lock.try_lock() else {
                continue;
            };
            if !self.containers.contains(&id) {
                drop(_held);
                self.forget_lock(&id);
                self.forget_live(&id);
                continue;
            }
            if !self.refresh(&id).running() {
                self.forget_live(&id);
            }
        }
    }

    fn forget_live(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::is_sigkill;

    #[test]
    fn sigkill_in_its_spellings() {
        for s in ["SIGKILL", "KILL", "kill", "sigkill", "9"] {
            assert!(is_sigkill(s), "{s}");
        }
        for s in ["SIGTERM", "15", "SIGKILLX", "HUP", ""] {
            assert!(!is_sigkill(s), "{s}");
        }
    }
}
