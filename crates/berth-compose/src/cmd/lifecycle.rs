//! `stop`, `restart`, `kill`, `rm`, `pause`, `unpause` and `wait` on a project's service
//! containers.

use anyhow::{bail, Result};
use berth_client::Client;
use clap::Args;

use crate::api;
use crate::cmd::up::ServicesArgs;
use crate::cmd::{check_services, service_containers};
use crate::converge::Progress;
use crate::model::Project;

#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short, long)]
    pub timeout: Option<i64>,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// SIGNAL to send to the container.
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// Don't ask to confirm removal.
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short, long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers.
    #[arg(short, long)]
    pub volumes: bool,
    /// Services.
    pub services: Vec<String>,
}

pub fn stop(client: &Client, project: &Project, a: &StopArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    for c in service_containers(client, project, &a.services)? {
        if c.state != "running" && c.state != "paused" && c.state != "restarting" {
            continue;
        }
        if c.state == "running" {
            if let Some(s) = project.services.get(c.service()) {
                for hook in &s.pre_stop {
                    if let Err(e) = crate::converge::run_hook(client, &c.id, hook) {
                        eprintln!("WARN[0000] pre_stop hook of {}: {e:#}", c.name);
                    }
                }
            }
        }
        progress.event("Container", &c.name, "Stopping");
        api::stop(client, &c.id, a.timeout)?;
        progress.event("Container", &c.name, "Stopped");
    }
    Ok(0)
}

pub fn restart(client: &Client, project: &Project, a: &StopArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    for c in service_containers(client, project, &a.services)? {
        progress.event("Container", &c.name, "Restarting");
        api::restart(client, &c.id, a.timeout)?;
        progress.event("Container", &c.name, "Started");
    }
    Ok(0)
}

pub fn kill(client: &Client, project: &Project, a: &KillArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    let running: Vec<_> = service_containers(client, project, &a.services)?
        .into_iter()
        .filter(|c| c.state == "running")
        .collect();
    if running.is_empty() {
        bail!("no container to kill");
    }
    for c in running {
        progress.event("Container", &c.name, "Killing");
        api::kill(client, &c.id, &a.signal)?;
        progress.event("Container", &c.name, "Killed");
    }
    Ok(0)
}

pub fn rm(client: &Client, project: &Project, a: &RmArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    let all = service_containers(client, project, &a.services)?;
    if a.stop {
        for c in all.iter().filter(|c| c.state == "running") {
            progress.event("Container", &c.name, "Stopping");
            api::stop(client, &c.id, None)?;
            progress.event("Container", &c.name, "Stopped");
        }
    }
    let stopped: Vec<_> = service_containers(client, project, &a.services)?
        .into_iter()
        .filter(|c| c.state != "running" && c.state != "paused" && c.state != "restarting")
        .collect();
    if stopped.is_empty() {
        println!("No stopped containers");
        return Ok(0);
    }
    if !a.force {
        // Without a terminal to ask on, v2 proceeds only with --force; keep it explicit.
        use std::io::IsTerminal;
        let names: Vec<&str> = stopped.iter().map(|c| c.name.as_str()).collect();
        if !std::io::stdin().is_terminal() {
            bail!(
                "Going to remove {}: use --force to confirm without a terminal",
                names.join(", ")
            );
        }
        eprint!(
            "Going to remove {}\n? Are you sure? [y/N] ",
            names.join(", ")
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    for c in stopped {
        progress.event("Container", &c.name, "Removing");
        api::remove(client, &c.id, false, a.volumes)?;
        progress.event("Container", &c.name, "Removed");
    }
    Ok(0)
}

pub fn pause(client: &Client, project: &Project, a: &ServicesArgs, pause: bool) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    for c in service_containers(client, project, &a.services)? {
        if pause && c.state == "running" {
            progress.event("Container", &c.name, "Pausing");
            api::pause(client, &c.id)?;
            progress.event("Container", &c.name, "Paused");
        } else if !pause && c.state == "paused" {
            progress.event("Container", &c.name, "Unpausing");
            api::unpause(client, &c.id)?;
            progress.event("Container", &c.name, "Unpaused");
        }
    }
    Ok(0)
}

/// Blocks until the services' containers stop; prints and returns the first exit code.
pub fn wait(client: &Client, project: &Project, a: &ServicesArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let containers = service_containers(client, project, &a.services)?;
    let mut first = None;
    for c in containers {
        let code = api::wait(client, &c.id)?;
        first.get_or_insert(code);
    }
    let code = first.unwrap_or(0);
    println!("{code}");
    Ok(code as i32)
}
