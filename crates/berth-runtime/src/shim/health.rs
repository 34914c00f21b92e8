//! Health checks, run by the shim (so they go on while the engine is down or restarting):
//! every interval the check runs in the container through `berth-runtime exec`; its result
//! goes into `health.json` in the state directory, Docker's `State.Health` (status, failing
//! streak, the last five results). With `kill_unhealthy` (berth's `--restart on-unhealthy`),
//! a container that turns unhealthy is killed, and the engine's restart policy brings it back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where a container's health is recorded.
pub const HEALTH_FILE: &str = "health.json";

/// Output kept per result, as Docker keeps it.
const MAX_OUTPUT: usize = 4096;
/// Results kept.
const MAX_LOG: usize = 5;

/// A container's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// Docker's form: `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub start_interval_ms: u64,
    pub retries: u32,
    /// Kill the container when it turns unhealthy (`--restart on-unhealthy`).
    #[serde(default)]
    pub kill_unhealthy: bool,
    /// The shell for `CMD-SHELL` (the image's SHELL, `/bin/sh -c` by default).
    #[serde(default)]
    pub shell: Vec<String>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// Docker's `State.Health`, plus whether the shim killed the container for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
    #[serde(default)]
    pub killed_unhealthy: bool,
}

pub fn read_health(state_dir: &Path) -> Option<Health> {
    serde_json::from_slice(&std::fs::read(state_dir.join(HEALTH_FILE)).ok()?).ok()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A check under way.
#[derive(Debug)]
struct Running {
    pid: i32,
    start: String,
    started: Instant,
    output: PathBuf,
}

/// The shim's health checker; the relay loop calls it when it is due and when it reaps.
#[derive(Debug)]
pub struct Checker {
    cfg: HealthConfig,
    id: String,
    state_dir: PathBuf,
    runtime: PathBuf,
    runtime_root: PathBuf,
    born: Instant,
    next: Instant,
    running: Option<Running>,
    health: Health,
}

impl Checker {
    pub fn new(
        cfg: HealthConfig,
        id: &str,
        state_dir: &Path,
        runtime: &Path,
        runtime_root: &Path,
    ) -> Checker {
        let born = Instant::now();
        let mut c = Checker {
            next: born,
            cfg,
            id: id.to_owned(),
            state_dir: state_dir.to_path_buf(),
            runtime: runtime.to_path_buf(),
            runtime_root: runtime_root.to_path_buf(),
            born,
            running: None,
            health: Health {
                status: "starting".into(),
                failing_streak: 0,
                log: Vec::new(),
                killed_unhealthy: false,
            },
        };
        c.next = born + c.interval();
        c.save();
        c
    }

    fn in_start_period(&self) -> bool {
        self.born.elapsed() < Duration::from_millis(self.cfg.start_period_ms)
    }

    /// The wait before the next check: the start interval while starting up.
    fn interval(&self) -> Duration {
        if self.in_start_period()
            && self.health.status == "starting"
            && self.cfg.start_interval_ms > 0
        {
            Duration::from_millis(self.cfg.start_interval_ms)
        } else {
            Duration::from_millis(self.cfg.interval_ms.max(1))
        }
    }

    /// How long until the checker has something to do.
    pub fn due_in(&self) -> Duration {
        match &self.running {
            Some(r) => (r.started + Duration::from_millis(self.cfg.timeout_ms))
                .saturating_duration_since(Instant::now()),
            None => self.next.saturating_duration_since(Instant::now()),
        }
    }

    /// Starts a check when one is due; kills one that overran its timeout. Returns true
    /// when the container should be killed (it turned unhealthy and `kill_unhealthy` is set).
    pub fn tick(&mut self) -> bool {
        if let Some(r) = &self.running {
            if r.started.elapsed() >= Duration::from_millis(self.cfg.timeout_ms) {
                // SAFETY: kill only sends a signal to the check we started.
                unsafe {
                    libc::kill(r.pid, libc::SIGKILL);
                }
            }
            return false;
        }
        if Instant::now() < self.next {
            return false;
        }
        self.start_check();
        false
    }

    fn command(&self) -> Option<Vec<String>> {
        match self.cfg.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                let mut v = if self.cfg.shell.is_empty() {
                    vec!["/bin/sh".to_owned(), "-c".to_owned()]
                } else {
                    self.cfg.shell.clone()
                };
                v.push(rest.join(" "));
                Some(v)
            }
            _ => None,
        }
    }

    fn start_check(&mut self) {
        let Some(cmd) = self.command() else {
            self.next = Instant::now() + Duration::from_secs(3600);
            return;
        };
        let output = self.state_dir.join(".health-output");
        let Ok(out) = std::fs::File::create(&output) else {
            self.next = Instant::now() + self.interval();
            return;
        };
        let err = out.try_clone().ok();
        let child = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.runtime_root)
            .arg("exec")
            .arg(&self.id)
            .args(&cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err.map(Stdio::from).unwrap_or_else(Stdio::null))
            .spawn();
        match child {
            // The relay's reaping loop collects it and hands the status to `reaped`.
            Ok(c) => {
                self.running = Some(Running {
                    pid: c.id() as i32,
                    start: now_text(),
                    started: Instant::now(),
                    output,
                })
            }
            Err(e) => self.record(-1, format!("cannot run the health check: {e}")),
        }
    }

    /// A child ended: if it was the check, its result is recorded. Returns (was it ours,
    /// should the container be killed).
    pub fn reaped(&mut self, pid: i32, exit_code: i32) -> (bool, bool) {
        let Some(r) = self.running.take_if(|r| r.pid == pid) else {
            return (false, false);
        };
        let timed_out = r.started.elapsed() >= Duration::from_millis(self.cfg.timeout_ms);
        let mut text = std::fs::read(&r.output).unwrap_or_default();
        let _ = std::fs::remove_file(&r.output);
        text.truncate(MAX_OUTPUT);
        let mut output = String::from_utf8_lossy(&text).into_owned();
        let code = if timed_out {
            output = format!(
                "Health check exceeded timeout ({}s)",
                self.cfg.timeout_ms as f64 / 1000.0
            );
            -1
        } else {
            i64::from(exit_code)
        };
        let start = r.start;
        self.record_with_start(start, code, output);
        let kill = self.cfg.kill_unhealthy
            && self.health.status == "unhealthy"
            && !self.health.killed_unhealthy;
        if kill {
            self.health.killed_unhealthy = true;
            self.save();
        }
        (true, kill)
    }

    fn record(&mut self, code: i64, output: String) {
        self.record_with_start(now_text(), code, output);
    }

    fn record_with_start(&mut self, start: String, code: i64, output: String) {
        self.health.log.push(HealthResult {
            start,
            end: now_text(),
            exit_code: code,
            output,
        });
        if self.health.log.len() > MAX_LOG {
            let extra = self.health.log.len() - MAX_LOG;
            self.health.log.drain(..extra);
        }
        if code == 0 {
            self.health.status = "healthy".into();
            self.health.failing_streak = 0;
        } else if !(self.in_start_period() && self.health.status == "starting") {
            // Failures while starting up do not count (Docker's start period).
            self.health.failing_streak += 1;
            if self.health.failing_streak >= self.cfg.retries.max(1) {
                self.health.status = "unhealthy".into();
            }
        }
        self.next = Instant::now() + self.interval();
        self.save();
    }

    fn save(&self) {
        if let Ok(bytes) = serde_json::to_vec(&self.health) {
            let _ = berth_core::fs::write_atomic(&self.state_dir.join(HEALTH_FILE), &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(dir: &Path, retries: u32, start_period_ms: u64) -> Checker {
        Checker::new(
            HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval_ms: 10,
                timeout_ms: 1000,
                start_period_ms,
                start_interval_ms: 0,
                retries,
                kill_unhealthy: true,
                shell: Vec::new(),
            },
            "c",
            dir,
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn results_drive_the_status_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = checker(dir.path(), 2, 0);
        assert_eq!(read_health(dir.path()).unwrap().status, "starting");
        c.record(0, "ok".into());
        assert_eq!(c.health.status, "healthy");
        c.record(1, "bad".into());
        assert_eq!(
            (c.health.status.as_str(), c.health.failing_streak),
            ("healthy", 1)
        );
        c.record(1, "bad".into());
        assert_eq!(c.health.status, "unhealthy");
        for _ in 0..10 {
            c.record(0, "ok".into());
        }
        assert_eq!(c.health.log.len(), 5);
        let saved = read_health(dir.path()).unwrap();
        assert_eq!(
            (saved.status.as_str(), saved.failing_streak),
            ("healthy", 0)
        );
    }

    #[test]
    fn failures_while_starting_up_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = checker(dir.path(), 1, 60_000);
        c.record(1, "not yet".into());
        assert_eq!(
            (c.health.status.as_str(), c.health.failing_streak),
            ("starting", 0)
        );
        c.record(0, "up".into());
        c.record(1, "down".into());
        assert_eq!(c.health.status, "unhealthy");
    }

    #[test]
    fn commands_take_docker_forms() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = checker(dir.path(), 1, 0);
        assert_eq!(c.command().unwrap(), ["/bin/sh", "-c", "true"]);
        c.cfg.test = vec!["CMD".into(), "/bin/check".into(), "-q".into()];
        assert_eq!(c.command().unwrap(), ["/bin/check", "-q"]);
        c.cfg.test = vec!["NONE".into()];
        assert!(c.command().is_none());
    }
}
