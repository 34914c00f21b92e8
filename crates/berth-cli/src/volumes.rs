//! `berth volume create|ls|inspect|rm|prune`, and berth's own `volume export|import` (a tar of
//! a volume's content, for backups).

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::containers::{each, filters_json, inspect_each};
use crate::format::render_list;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect {
        /// Format output using a custom template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove unused local volumes.
    Prune {
        /// Remove all unused volumes, not just anonymous ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>").
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
    /// Write a volume's content as a tar archive (to STDOUT by default).
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short = 'o', long)]
        output: Option<String>,
        name: String,
    },
    /// Fill an empty (or new) volume from a tar archive (STDIN by default).
    Import {
        /// Read from a file, instead of STDIN.
        #[arg(short = 'i', long)]
        input: Option<String>,
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Volume driver name.
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume.
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options.
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true").
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

fn key_values(list: &[String]) -> serde_json::Map<String, Value> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
            None => (l.clone(), Value::String(String::new())),
        })
        .collect()
}

pub fn run(client: &Client, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create(a) => {
            let body = json!({
                "Name": a.name.unwrap_or_default(),
                "Driver": a.driver,
                "Labels": key_values(&a.label),
                "DriverOpts": key_values(&a.opt),
            });
            let v = client.post("/volumes/create", Some(&body))?.json()?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCommand::Ls(a) => {
            let v = client
                .get(&with_query(
                    "/volumes",
                    &[("filters", filters_json(&a.filter)?)],
                ))?
                .json()?;
            let rows: Vec<Value> = v["Volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    json!({
                        "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                        "Mountpoint": v["Mountpoint"], "CreatedAt": v["CreatedAt"],
                        "Labels": v["Labels"].as_object().map(|o| o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                    })
                })
                .collect();
            let default = if a.quiet {
                "{{.Name}}"
            } else {
                "table {{.Driver}}\t{{.Name}}"
            };
            let format = if a.quiet { None } else { a.format.as_deref() };
            let headers = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                "Mountpoint": "MOUNTPOINT", "CreatedAt": "CREATED", "Labels": "LABELS"});
            print!(
                "{}",
                render_list(format, default, &headers, &rows).map_err(anyhow::Error::msg)?
            );
            Ok(0)
        }
        VolumeCommand::Inspect { format, names } => inspect_each(
            client,
            &names,
            |n| format!("/volumes/{n}"),
            format.as_deref(),
        ),
        VolumeCommand::Rm { force, names } => each(&names, |n| {
            let path = with_query(
                &format!("/volumes/{n}"),
                &[("force", if force { "1" } else { "" }.to_owned())],
            );
            client.delete(&path).map(|_| ())
        }),
        VolumeCommand::Prune { all, force, filter } => {
            if !force {
                eprint!("WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let mut filters = filter;
            if all {
                filters.push("all=true".into());
            }
            let v = client
                .post(
                    &with_query("/volumes/prune", &[("filters", filters_json(&filters)?)]),
                    None,
                )?
                .json()?;
            let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                berth_core::humanize::size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
            );
            Ok(0)
        }
        VolumeCommand::Export { output, name } => {
            if output.is_none() && std::io::stdout().is_terminal() {
                bail!("cowardly refusing to write a tar archive to a terminal. Use the -o flag or redirect");
            }
            let mut resp = client.send(
                "GET",
                &format!("/volumes/{name}/export"),
                crate::client::Payload::None,
            )?;
            match output {
                Some(path) => {
                    let target = std::path::Path::new(&path);
                    let dir = target
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."));
                    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
                    std::io::copy(resp.body(), &mut tmp).context("write the archive")?;
                    tmp.as_file().sync_all()?;
                    tmp.persist(target)
                        .with_context(|| format!("write {path}"))?;
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    std::io::copy(resp.body(), &mut out)?;
                    out.flush()?;
                }
            }
            Ok(0)
        }
        VolumeCommand::Import { input, name } => {
            let mut body: Box<dyn std::io::Read> = match input.as_deref() {
                Some(p) if p != "-" => {
                    Box::new(std::fs::File::open(p).with_context(|| format!("open {p}"))?)
                }
                _ => {
                    if std::io::stdin().is_terminal() {
                        bail!("requested import from stdin, but stdin is a terminal");
                    }
                    Box::new(std::io::stdin())
                }
            };
            client
                .upload(
                    "PUT",
                    &format!("/volumes/{name}/import"),
                    "application/x-tar",
                    &mut body,
                )?
                .into_response()?;
            Ok(0)
        }
    }
}
