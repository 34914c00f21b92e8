//! The listing commands: `ps` (table, `-q`, `--services`, `--status`, `--format json`),
//! `ls`, `images`, `top` and `port`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_client::table::{align, ellipsis, ports_text};
use berth_client::Client;
use clap::Args;
use serde_json::{json, Value};

use crate::api::{self, OneOff, Summary};
use crate::cmd::up::ServicesArgs;
use crate::cmd::{check_services, service_containers};
use crate::model::Project;
use crate::naming;

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command).
    #[arg(short, long)]
    pub all: bool,
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Display services.
    #[arg(long)]
    pub services: bool,
    /// Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited].
    #[arg(long)]
    pub status: Vec<String>,
    /// Format output using a custom template: 'table' (default), 'json'.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Services.
    #[arg(value_name = "SERVICE")]
    pub names: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// Show all stopped Compose projects.
    #[arg(short, long)]
    pub all: bool,
    /// Only display project names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output. Values: [table | json].
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Args, Debug, Clone)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: u16,
}

/// A command as ps shows it: quoted, cut to 20 columns unless `no_trunc`.
fn command_text(cmd: &str, no_trunc: bool) -> String {
    let shown = if no_trunc {
        cmd.to_owned()
    } else {
        ellipsis(cmd, 20)
    };
    format!("{shown:?}")
}

fn since(created: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(created);
    format!(
        "{} ago",
        berth_core::humanize::duration((now - created).max(0))
    )
}

pub fn ps(client: &Client, project: &Project, a: &PsArgs) -> Result<i32> {
    check_services(project, &a.names)?;
    if a.services {
        let mut names: Vec<&String> = project.services.keys().collect();
        if !a.names.is_empty() {
            names.retain(|n| a.names.contains(n));
        }
        for n in names {
            println!("{n}");
        }
        return Ok(0);
    }
    let oneoff = if a.all {
        OneOff::Include
    } else {
        OneOff::Exclude
    };
    let all = a.all || !a.status.is_empty();
    let mut list: Vec<Summary> = api::project_containers(client, &project.name, oneoff, all)?
        .into_iter()
        .filter(|c| a.names.is_empty() || a.names.iter().any(|n| n == c.service()))
        .filter(|c| a.status.is_empty() || a.status.contains(&c.state))
        .filter(|c| {
            project.services.is_empty() || project.services.contains_key(c.service()) || c.oneoff()
        })
        .collect();
    list.sort_by(|x, y| x.name.cmp(&y.name));
    if a.quiet {
        for c in &list {
            println!(
                "{}",
                if a.no_trunc {
                    c.id.clone()
                } else {
                    c.id.chars().take(12).collect()
                }
            );
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            for c in &list {
                println!("{}", ps_json(client, c, a.no_trunc)?);
            }
        }
        "table" => {
            let rows: Vec<[String; 7]> = list
                .iter()
                .map(|c| {
                    [
                        c.name.clone(),
                        c.image.clone(),
                        command_text(&c.command, a.no_trunc),
                        c.service().to_owned(),
                        since(c.created),
                        c.status.clone(),
                        ports_text(&c.raw["Ports"]),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
                ],
                &rows,
            );
        }
        other => bail!("unsupported format {other:?}: use table or json"),
    }
    Ok(0)
}

fn ps_json(client: &Client, c: &Summary, no_trunc: bool) -> Result<String> {
    let inspect = api::inspect_container(client, &c.id)?;
    let state = &inspect["State"];
    let exit = if c.state == "exited" || c.state == "dead" {
        state["ExitCode"].as_i64().unwrap_or(0)
    } else {
        0
    };
    let health = if c.state == "running" {
        state["Health"]["Status"].as_str().unwrap_or("")
    } else {
        ""
    };
    let mut publishers: Vec<Value> = c.raw["Ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            json!({
                "URL": p["IP"].as_str().unwrap_or(""),
                "TargetPort": p["PrivatePort"].as_i64().unwrap_or(0),
                "PublishedPort": p["PublicPort"].as_i64().unwrap_or(0),
                "Protocol": p["Type"].as_str().unwrap_or("tcp"),
            })
        })
        .collect();
    publishers.sort_by_key(|p| p["TargetPort"].as_i64());
    let networks: Vec<String> = c.raw["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let labels: Vec<String> = c
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let mounts: Vec<String> = c.raw["Mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            m["Name"]
                .as_str()
                .or(m["Source"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let local_volumes = c.raw["Mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|x| x["Driver"].as_str() == Some("local"))
                .count()
        })
        .unwrap_or(0);
    let created = chrono::DateTime::from_timestamp(c.created, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default();
    let obj = json!({
        "Command": command_text(&c.command, no_trunc),
        "CreatedAt": created,
        "ExitCode": exit,
        "Health": health,
        "ID": if no_trunc { c.id.clone() } else { c.id.chars().take(12).collect() },
        "Image": c.image,
        "Labels": labels.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mounts.join(","),
        "Name": c.name,
        "Names": c.name,
        "Networks": networks.join(","),
        "Ports": ports_text(&c.raw["Ports"]),
        "Project": c.label(naming::PROJECT),
        "Publishers": publishers,
        "RunningFor": since(c.created),
        "Service": c.service(),
        "Size": "0B",
        "State": c.state,
        "Status": c.status,
    });
    Ok(crate::model::go_escape(&obj.to_string()))
}

/// Rows as Docker's tabwriter aligns them.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut lines = vec![header.join("\t")];
    lines.extend(rows.iter().map(|r| r.join("\t")));
    print!("{}", align(&lines));
}

pub fn ls(client: &Client, a: &LsArgs) -> Result<i32> {
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, Vec<String>)> = BTreeMap::new();
    for c in api::all_project_containers(client)? {
        if !a.all && c.state != "running" {
            continue;
        }
        let name = c.label(naming::PROJECT).to_owned();
        let entry = projects.entry(name).or_default();
        *entry.0.entry(c.state.clone()).or_default() += 1;
        for f in c
            .label(naming::CONFIG_FILES)
            .split(',')
            .filter(|f| !f.is_empty())
        {
            if !entry.1.iter().any(|x| x == f) {
                entry.1.push(f.to_owned());
            }
        }
    }
    let rows: Vec<[String; 3]> = projects
        .iter()
        .map(|(name, (states, files))| {
            let status = states
                .iter()
                .map(|(s, n)| format!("{s}({n})"))
                .collect::<Vec<_>>()
                .join(", ");
            [name.clone(), status, files.join(",")]
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            let arr: Vec<Value> = rows
                .iter()
                .map(|r| json!({"Name": r[0], "Status": r[1], "ConfigFiles": r[2]}))
                .collect();
            // Name, Status, ConfigFiles in that order, as v2 prints them.
            let items: Vec<String> = arr
                .iter()
                .map(|o| {
                    format!(
                        "{{\"Name\":{},\"Status\":{},\"ConfigFiles\":{}}}",
                        o["Name"], o["Status"], o["ConfigFiles"]
                    )
                })
                .collect();
            println!("[{}]", items.join(","));
        }
        "table" => print_table(&["NAME", "STATUS", "CONFIG FILES"], &rows),
        other => bail!("unsupported format {other:?}: use table or json"),
    }
    Ok(0)
}

pub fn images(client: &Client, project: &Project, a: &ServicesArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let mut rows = Vec::new();
    for c in service_containers(client, project, &a.services)? {
        let Some(img) = api::inspect_image(client, &c.image)? else {
            continue;
        };
        let (repo, tag) = crate::converge::split_tag(&c.image);
        let id: String = img["Id"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let size = img["Size"].as_u64().unwrap_or(0);
        rows.push([
            c.name.clone(),
            repo,
            tag,
            id,
            berth_core::humanize::size(size as f64),
        ]);
    }
    print_table(
        &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
        &rows,
    );
    Ok(0)
}

pub fn top(client: &Client, project: &Project, a: &ServicesArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    for c in service_containers(client, project, &a.services)? {
        if c.state != "running" {
            continue;
        }
        let top = client.get(&format!("/containers/{}/top", c.id))?.json()?;
        println!("{}", c.name);
        let titles: Vec<String> = top["Titles"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|x| x.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let procs: Vec<Vec<String>> = top["Processes"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|row| {
                        row.as_array()
                            .map(|r| {
                                r.iter()
                                    .map(|x| x.as_str().unwrap_or("").to_owned())
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut lines = vec![titles.join("\t")];
        lines.extend(procs.iter().map(|p| p.join("\t")));
        print!("{}", align(&lines));
        println!();
    }
    Ok(0)
}

pub fn port(client: &Client, project: &Project, a: &PortArgs) -> Result<i32> {
    check_services(project, std::slice::from_ref(&a.service))?;
    let containers = service_containers(client, project, std::slice::from_ref(&a.service))?;
    let Some(c) = containers.iter().find(|c| c.number() == a.index) else {
        bail!("service {:?} is not running", a.service);
    };
    let inspect = api::inspect_container(client, &c.id)?;
    let key = format!("{}/{}", a.private_port, a.protocol);
    match inspect["NetworkSettings"]["Ports"][&key][0].as_object() {
        Some(b) => {
            let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
            let port = b.get("HostPort").and_then(Value::as_str).unwrap_or("");
            println!("{ip}:{port}");
            Ok(0)
        }
        None => bail!("no port {key} for container {}", c.name),
    }
}
