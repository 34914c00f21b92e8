//! `down`: the project's containers stopped (dependents first) and removed, then its
//! networks, and with `-v` its named volumes and containers' anonymous ones, with `--rmi`
//! its images. Works from labels alone when given `-p` without a compose file.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use berth_client::Client;
use clap::Args;

use crate::api::{self, OneOff};
use crate::converge::{self, Progress};
use crate::model::Project;
use crate::naming;

#[derive(Args, Debug, Clone)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers.
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all").
    #[arg(long)]
    pub rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds.
    #[arg(short, long)]
    pub timeout: Option<i64>,
    /// Services.
    pub services: Vec<String>,
}

pub fn down(client: &Client, project: &Project, a: &DownArgs) -> Result<i32> {
    if let Some(r) = &a.rmi {
        if r != "local" && r != "all" {
            bail!("invalid --rmi option {r:?}");
        }
    }
    let progress = Progress::default();
    let known = !project.services.is_empty();
    let all = api::project_containers(client, &project.name, OneOff::Include, true)?;
    let in_model = |svc: &str| {
        !known || project.services.contains_key(svc) || project.disabled.contains_key(svc)
    };
    let to_remove: Vec<&api::Summary> = all
        .iter()
        .filter(|c| {
            (a.services.is_empty() || a.services.iter().any(|s| s == c.service()))
                && (a.remove_orphans || in_model(c.service()) || c.oneoff())
        })
        .collect();
    let orphans: Vec<&str> = all
        .iter()
        .filter(|c| !in_model(c.service()) && !c.oneoff())
        .map(|c| c.name.as_str())
        .collect();
    if !orphans.is_empty() && !a.remove_orphans {
        eprintln!(
            "WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
            orphans.join(" ")
        );
    }
    // Dependents first: the reverse of the dependency levels.
    let mut order: Vec<Vec<&api::Summary>> = Vec::new();
    if known {
        let names: BTreeSet<String> = project.services.keys().cloned().collect();
        for level in converge::levels(project, &names).iter().rev() {
            order.push(
                to_remove
                    .iter()
                    .copied()
                    .filter(|c| level.iter().any(|s| s == c.service()))
                    .collect(),
            );
        }
        order.push(
            to_remove
                .iter()
                .copied()
                .filter(|c| !project.services.contains_key(c.service()))
                .collect(),
        );
    } else {
        order.push(to_remove.clone());
    }
    let mut removed_any = false;
    for group in order {
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = group
                .iter()
                .map(|c| {
                    let progress = &progress;
                    scope.spawn(move || -> Result<()> {
                        if c.state == "running" {
                            if let Some(s) = project.services.get(c.service()) {
                                for hook in &s.pre_stop {
                                    if let Err(e) = converge::run_hook(client, &c.id, hook) {
                                        eprintln!("WARN[0000] pre_stop hook of {}: {e:#}", c.name);
                                    }
                                }
                            }
                        }
                        if c.state == "running" || c.state == "paused" || c.state == "restarting" {
                            progress.event("Container", &c.name, "Stopping");
                            api::stop(client, &c.id, a.timeout)?;
                            progress.event("Container", &c.name, "Stopped");
                        }
                        progress.event("Container", &c.name, "Removing");
                        api::remove(client, &c.id, true, a.volumes)?;
                        progress.event("Container", &c.name, "Removed");
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
                removed_any = true;
            }
            Ok(())
        })?;
    }
    if !a.services.is_empty() {
        return Ok(0);
    }
    // Networks: the model's, else whatever carries the project's label.
    let mut networks: Vec<String> = if known {
        project
            .networks
            .values()
            .filter(|n| !n.external)
            .map(|n| n.name.clone())
            .collect()
    } else {
        api::project_networks(client, &project.name)?
            .iter()
            .filter_map(|n| n["Name"].as_str().map(str::to_owned))
            .collect()
    };
    networks.sort();
    networks.dedup();
    for name in networks {
        let Some(found) = api::inspect_network(client, &name)? else {
            continue;
        };
        if found["Labels"][naming::PROJECT].as_str() != Some(project.name.as_str()) {
            continue;
        }
        let attached = found["Containers"]
            .as_object()
            .is_some_and(|m| !m.is_empty());
        if attached {
            eprintln!("WARN[0000] network {name}: Resource is still in use");
            continue;
        }
        progress.event("Network", &name, "Removing");
        api::remove_network(client, &name)?;
        progress.event("Network", &name, "Removed");
        removed_any = true;
    }
    if a.volumes {
        // The model's volumes, else whatever carries the project's label.
        let names: Vec<String> = if known {
            project
                .volumes
                .values()
                .filter(|v| !v.external)
                .map(|v| v.name.clone())
                .collect()
        } else {
            api::project_volumes(client, &project.name)?
        };
        for name in names {
            let Some(found) = api::inspect_volume(client, &name)? else {
                continue;
            };
            if found["Labels"][naming::PROJECT].as_str() != Some(project.name.as_str()) {
                continue;
            }
            progress.event("Volume", &name, "Removing");
            api::remove_volume(client, &name)?;
            progress.event("Volume", &name, "Removed");
            removed_any = true;
        }
    }
    if let Some(mode) = &a.rmi {
        for (name, s) in &project.services {
            let image = naming::image_name(&project.name, name, s);
            let local = s.image.is_empty();
            if (mode == "all" || local) && api::inspect_image(client, &image)?.is_some() {
                progress.event("Image", &image, "Removing");
                api::remove_image(client, &image)?;
                progress.event("Image", &image, "Removed");
                removed_any = true;
            }
        }
    }
    if !removed_any {
        eprintln!(
            "WARN[0000] Warning: No resource found to remove for project {:?}.",
            project.name
        );
    }
    Ok(0)
}
