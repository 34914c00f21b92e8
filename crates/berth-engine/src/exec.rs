//! Exec instances (`docker exec`): kept in memory, as Docker does; each runs as
//! `berth-runtime exec`, which joins the container's namespaces and cgroup under its seccomp
//! filter and capabilities.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::EngineError;
use berth_api::exec::{ExecBackend, ExecInspect, ExecLaunch, ExecProcessConfig};
use berth_core::ContainerId;

use crate::Engine;
use berth_api::BackendResult;

#[derive(Debug, Clone, Default)]
pub struct ExecRecord {
    pub container: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub stdin: bool,
    pub tty: bool,
    /// The exec's `DetachKeys` as given (empty: the default sequence).
    pub detach_keys: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: Option<u32>,
}

/// The engine's exec instances by ID.
#[derive(Debug, Default)]
pub struct Execs(Mutex<HashMap<String, ExecRecord>>);

impl Execs {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ExecRecord>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Engine {
    pub fn create_exec(
        &self,
        container: &str,
        body: bollard_stubs::models::ExecConfig,
    ) -> Result<String, EngineError> {
        let _t = berth_core::timing::Step::start("exec.create");
        crate::cgroup_warm::warm();
        let (id, running) = self.container_status(container)?;
        if !running {
            return Err(EngineError::conflict(format!(
                "Container {id} is not running"
            )));
        }
        let cmd = body.cmd.unwrap_or_default();
        if cmd.is_empty() {
            return Err(EngineError::invalid("No exec command specified"));
        }
        let detach_keys = body.detach_keys.clone().unwrap_or_default();
        if berth_api::detach::parse(&detach_keys).is_err() {
            return Err(EngineError::invalid(format!(
                "Invalid escape keys ({detach_keys}) provided"
            )));
        }
        let exec_id = ContainerId::generate()
            .map_err(|e| EngineError::internal(e.to_string()))?
            .to_string();
        let record = ExecRecord {
            container: id,
            cmd,
            env: body.env.unwrap_or_default(),
            user: body.user.filter(|s| !s.is_empty()),
            cwd: body.working_dir.filter(|s| !s.is_empty()),
            stdin: body.attach_stdin.unwrap_or(false),
            tty: body.tty.unwrap_or(false),
            detach_keys,
            ..Default::default()
        };
        self.execs.with(|m| m.insert(exec_id.clone(), record));
        Ok(exec_id)
    }

    pub fn launch_exec(&self, exec_id: &str) -> Result<ExecLaunch, EngineError> {
        let _t = berth_core::timing::Step::start("exec.launch");
        crate::cgroup_warm::warm();
        let rec = self
            .execs
            .with(|m| m.get(exec_id).cloned())
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {exec_id}")))?;
        if rec.running || rec.exit_code.is_some() {
            return Err(EngineError::conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        let mut args = vec![
            "--root".to_owned(),
            self.runtime_root().display().to_string(),
            "exec".to_owned(),
        ];
        if rec.tty {
            args.push("--tty".into());
        }
        for e in &rec.env {
            args.push("--env".into());
            args.push(e.clone());
        }
        if let Some(cwd) = &rec.cwd {
            args.push("--cwd".into());
            args.push(cwd.clone());
        }
        if let Some(user) = &rec.user {
            // Names are the container's: resolve them in its rootfs, as Docker does.
            let resolved = berth_oci::spec::user::resolve(user, Some(&self.rootfs(&rec.container)))
                .map_err(|e| EngineError::invalid(e.to_string()))?;
            args.push("--user".into());
            args.push(format!("{}:{}", resolved.uid, resolved.gid));
        }
        args.push(rec.container.clone());
        args.extend(rec.cmd.iter().cloned());
        self.execs.with(|m| {
            if let Some(r) = m.get_mut(exec_id) {
                r.running = true;
            }
        });
        Ok(ExecLaunch {
            program: self.runtime_bin(),
            args,
            stdin: rec.stdin,
            tty: rec.tty,
            detach_keys: rec.detach_keys.clone(),
        })
    }

    pub fn finish_exec(&self, exec_id: &str, pid: Option<u32>, exit_code: i64) {
        self.execs.with(|m| {
            if let Some(r) = m.get_mut(exec_id) {
                r.running = false;
                r.exit_code = Some(exit_code);
                r.pid = pid;
            }
        });
    }

    pub fn inspect_exec(&self, exec_id: &str) -> Result<ExecInspect, EngineError> {
        let rec = self
            .execs
            .with(|m| m.get(exec_id).cloned())
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {exec_id}")))?;
        Ok(ExecInspect {
            id: exec_id.to_owned(),
            running: rec.running,
            exit_code: rec.exit_code,
            container_id: rec.container.clone(),
            open_stdin: rec.stdin,
            open_stdout: true,
            open_stderr: true,
            pid: rec.pid.map_or(0, i64::from),
            detach_keys: rec.detach_keys.clone(),
            process_config: ExecProcessConfig {
                entrypoint: rec.cmd.first().cloned().unwrap_or_default(),
                arguments: rec.cmd.get(1..).unwrap_or_default().to_vec(),
                tty: rec.tty,
                user: rec.user.clone().unwrap_or_default(),
                privileged: false,
            },
            ..Default::default()
        })
    }
}

impl ExecBackend for Engine {
    fn finish_exec(&self, exec_id: &str, pid: Option<u32>, exit_code: i64) {
        Engine::finish_exec(self, exec_id, pid, exit_code)
    }
    fn create_exec(
        &self,
        container: &str,
        body: bollard_stubs::models::ExecConfig,
    ) -> BackendResult<String> {
        Ok(Engine::create_exec(self, container, body)?)
    }
    fn launch_exec(&self, exec_id: &str) -> BackendResult<ExecLaunch> {
        Ok(Engine::launch_exec(self, exec_id)?)
    }
    fn inspect_exec(&self, exec_id: &str) -> BackendResult<ExecInspect> {
        Ok(Engine::inspect_exec(self, exec_id)?)
    }
}
