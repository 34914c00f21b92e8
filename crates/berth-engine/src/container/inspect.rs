//! What a container shows: `inspect` (the stored Config and HostConfig echoed, with the
//! state, mounts and network settings of now), `ps` (the list, with Docker's status words),
//! `top` and `logs`.

use std::process::Command;

use berth_api::containers::{ListQuery, LogCursor, LogQuery, Logs};
use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum,
    ContainerTopResponse, MountPoint,
};

use super::record::{unix_time, Record, State, Status, ZERO_TIME};
use crate::error::{EngineError, Result};
use crate::{humanize, Engine};

/// Docker's status for a container: paused and restarting are states of their own.
fn status_word(rec: &Record, st: &State) -> &'static str {
    match st.status {
        Status::Running if st.paused => "paused",
        Status::Exited if rec.policy_restarts(st) => "restarting",
        s => s.as_str(),
    }
}

fn time_or_zero(t: &str) -> String {
    if t.is_empty() {
        ZERO_TIME.into()
    } else {
        t.to_owned()
    }
}

impl Engine {
    /// `ps`'s STATUS column: "Up 5 minutes (healthy)", "Exited (0) 2 seconds ago"…
    fn status_text(&self, rec: &Record, st: &State, now_unix: i64) -> String {
        let since = |t: &str| humanize::duration(now_unix - unix_time(t));
        if rec.policy_restarts(st) {
            return format!(
                "Restarting ({}) {} ago",
                st.exit_code,
                since(&st.finished_at)
            );
        }
        match st.status {
            Status::Running => format!(
                "Up {}{}{}",
                since(&st.started_at),
                if st.paused { " (Paused)" } else { "" },
                crate::health::status_suffix(self.health_of(rec).as_ref())
            ),
            Status::Exited => format!("Exited ({}) {} ago", st.exit_code, since(&st.finished_at)),
            Status::Created => "Created".into(),
            Status::Dead => "Dead".into(),
        }
    }

    /// `GET /containers/json`.
    pub fn list(&self, q: ListQuery) -> Result<Vec<ContainerSummary>> {
        let now_unix = chrono::Utc::now().timestamp();
        let mut recs = self.records();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let filter = super::filter::ContainerFilter::new(&q.filters, &recs)?;
        let names = super::links::LinkNames::new(&recs);
        let all = q.all || q.limit.is_some() || filter.wants_stopped();
        let view = self.network_view();
        let mut out = Vec::new();
        for (n, rec) in recs.iter().enumerate() {
            if q.limit.is_some_and(|l| n >= l) {
                break;
            }
            let st = self.observe(&rec.id);
            if (!all && !st.running()) || !filter.matches(rec, &st) {
                continue;
            }
            let state = match status_word(rec, &st) {
                "paused" => ContainerSummaryStateEnum::PAUSED,
                "running" => ContainerSummaryStateEnum::RUNNING,
                "restarting" => ContainerSummaryStateEnum::RESTARTING,
                "exited" => ContainerSummaryStateEnum::EXITED,
                "created" => ContainerSummaryStateEnum::CREATED,
                _ => ContainerSummaryStateEnum::DEAD,
            };
            // Compose reads the networks of listed containers to decide what to recreate.
            let networks = self.network_settings(rec, &view).networks;
            out.push(ContainerSummary {
                id: Some(rec.id.clone()),
                network_settings: Some(ContainerSummaryNetworkSettings { networks }),
                host_config: Some(ContainerSummaryHostConfig {
                    network_mode: Some(rec.net.mode.clone()),
                    annotations: None,
                }),
                mounts: Some(rec.mounts.iter().map(|m| self.mount_point(m)).collect()),
                names: Some(names.of(rec)),
                image: Some(rec.image.clone()),
                image_id: Some(rec.image_id.clone()),
                command: Some(rec.command_line()),
                created: Some(unix_time(&rec.created)),
                ports: Some(self.port_summary(&rec.id, &view)),
                labels: rec.config.labels.clone(),
                state: Some(state),
                status: Some(self.status_text(rec, &st, now_unix)),
                size_rw: q.size.then(|| self.upper_size(&rec.id)),
                size_root_fs: q
                    .size
                    .then(|| self.upper_size(&rec.id) + self.image_size(rec)),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, key: &str) -> Result<ContainerInspectResponse> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        let status = match status_word(&rec, &st) {
            "paused" => ContainerStateStatusEnum::PAUSED,
            "running" => ContainerStateStatusEnum::RUNNING,
            "restarting" => ContainerStateStatusEnum::RESTARTING,
            "exited" => ContainerStateStatusEnum::EXITED,
            "created" => ContainerStateStatusEnum::CREATED,
            _ => ContainerStateStatusEnum::DEAD,
        };
        let dir = self.container_dir(&rec.id);
        let mut host_config = rec.host_config.clone();
        // What create resolved, where the request left it open.
        host_config.network_mode = Some(rec.net.mode.clone());
        host_config.links = self.links_shown(&rec);
        Ok(ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(rec.created.clone()),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(st.running()),
                paused: Some(st.paused),
                restarting: Some(rec.policy_restarts(&st)),
                oom_killed: Some(false),
                dead: Some(st.status == Status::Dead),
                pid: Some(st.pid),
                exit_code: Some(st.exit_code),
                error: Some(st.error.clone()),
                started_at: Some(time_or_zero(&st.started_at)),
                finished_at: Some(time_or_zero(&st.finished_at)),
                health: st
                    .running()
                    .then(|| self.health_of(&rec))
                    .flatten()
                    .map(|h| crate::health::to_api(&h)),
            }),
            image: Some(rec.image_id.clone()),
            resolv_conf_path: Some(dir.join("resolv.conf").display().to_string()),
            hostname_path: Some(dir.join("hostname").display().to_string()),
            hosts_path: Some(dir.join("hosts").display().to_string()),
            log_path: Some(
                dir.join(format!("{}-json.log", rec.id))
                    .display()
                    .to_string(),
            ),
            name: Some(format!("/{}", rec.name)),
            restart_count: Some(st.restart_count),
            driver: Some("overlayfs".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            config: Some(rec.config.clone()),
            network_settings: Some(self.network_settings(&rec, &self.network_view())),
            mounts: Some(rec.mounts.iter().map(|m| self.mount_point(m)).collect()),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    fn mount_point(&self, m: &crate::volumes::MountRecord) -> MountPoint {
        MountPoint {
            typ: Some(m.kind.clone()),
            name: (m.kind == "volume").then(|| m.source.clone()),
            source: Some(match m.kind.as_str() {
                "volume" => self.volume_data(&m.source).display().to_string(),
                "bind" => m.source.clone(),
                _ => String::new(),
            }),
            destination: Some(m.target.clone()),
            driver: (m.kind == "volume").then(|| "local".to_owned()),
            mode: Some(m.mode.clone()),
            rw: Some(!m.readonly),
            // Binds without a propagation are private (recursively), as Docker says.
            propagation: Some(match (&m.propagation, m.kind.as_str()) {
                (Some(p), _) => p.clone(),
                (None, "bind") => "rprivate".to_owned(),
                (None, _) => String::new(),
            }),
        }
    }

    /// `docker top`: `ps` on the host, limited to the container's processes.
    pub fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        let rec = self.find(key)?;
        if !self.refresh(&rec.id).running() {
            return Err(EngineError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let out = self
            .runtime()
            .args(["ps", "--format", "json", &rec.id])
            .output()
            .map_err(|e| EngineError::io("run berth-runtime", e))?;
        let pids: Vec<i32> = serde_json::from_slice(&out.stdout).map_err(|_| {
            EngineError::internal(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        })?;
        let ps = Command::new("ps")
            .args(ps_args.split_whitespace())
            .output()
            .map_err(|e| EngineError::io("run ps", e))?;
        if !ps.status.success() {
            return Err(EngineError::internal(format!(
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
            .ok_or_else(|| EngineError::internal("Couldn't find PID field in ps output"))?;
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
        Ok(ContainerTopResponse {
            titles: Some(titles),
            processes: Some(processes),
        })
    }

    /// The log of a container from `cursor` on.
    pub fn logs(&self, key: &str, q: &LogQuery, cursor: Option<LogCursor>) -> Result<Logs> {
        let rec = match self.find(key) {
            Ok(rec) => rec,
            // Removed while followed: what it wrote last is in the file the cursor holds.
            Err(e) => {
                let Some(cursor) = cursor.filter(|c| c.file.is_some()) else {
                    return Err(e);
                };
                // No path: the log is gone with the container, and `read` takes the held file.
                let (records, cursor) =
                    crate::logs::read(std::path::Path::new(""), q, Some(cursor));
                return Ok(Logs {
                    tty: false,
                    records,
                    cursor,
                    running: false,
                });
            }
        };
        if rec.log.driver == super::record::LogDriver::None {
            return Err(EngineError::not_implemented(
                "configured logging driver does not support reading",
            ));
        }
        let running = self.refresh(&rec.id).running();
        let base = self
            .container_dir(&rec.id)
            .join(format!("{}-json.log", rec.id));
        let first = cursor.is_none();
        let (records, cursor) = crate::logs::read(&base, q, cursor);
        // Removed between the lookup and the read: its log went with it. Say so (as after the
        // removal) rather than answer an empty log of a container that wrote one.
        if first && cursor.file.is_none() && !self.container_dir(&rec.id).exists() {
            return Err(EngineError::not_found(format!("No such container: {key}")));
        }
        Ok(Logs {
            tty: rec.tty(),
            records,
            cursor,
            running,
        })
    }
}
