//! `berth network create|ls|inspect|rm|prune|connect|disconnect`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::containers::{each, filters_json, inspect_each};
use crate::format::render_list;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect {
        /// Format output using a custom template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true, value_name = "NETWORK")]
        names: Vec<String>,
    },
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NETWORK")]
        names: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>").
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// Add network-scoped alias for the container.
        #[arg(long = "alias")]
        alias: Vec<String>,
        /// IPv4 address (e.g. 172.30.100.104).
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address (e.g. 2001:db8::33).
        #[arg(long)]
        ip6: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Force the container to disconnect from a network.
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network.
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment (one IPv4 and one IPv6).
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Enable or disable IPv6 networking.
    #[arg(long)]
    pub ipv6: bool,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network.
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options.
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge").
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

fn key_values(list: &[String]) -> serde_json::Map<String, Value> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
            None => (l.clone(), Value::String(String::new())),
        })
        .collect()
}

pub fn run(client: &Client, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => {
            // A gateway goes with the subnet of its family (IPv6 ones have a `:`).
            let mut ipam_config: Vec<serde_json::Map<String, Value>> = a
                .subnet
                .iter()
                .map(|s| {
                    [("Subnet".to_owned(), Value::from(s.clone()))]
                        .into_iter()
                        .collect()
                })
                .collect();
            for g in &a.gateway {
                if a.subnet.is_empty() {
                    bail!("every ip-range or gateway must have a corresponding subnet");
                }
                let slot = ipam_config.iter_mut().find(|c| {
                    !c.contains_key("Gateway")
                        && c["Subnet"]
                            .as_str()
                            .is_some_and(|s| s.contains(':') == g.contains(':'))
                });
                match slot {
                    Some(c) => {
                        c.insert("Gateway".into(), g.clone().into());
                    }
                    None => bail!("no matching subnet for gateway {g}"),
                }
            }
            let ipam_config: Vec<Value> = ipam_config.into_iter().map(Value::Object).collect();
            let body = json!({
                "Name": a.name,
                "Driver": a.driver,
                "Internal": a.internal,
                "EnableIPv6": a.ipv6,
                "Labels": key_values(&a.label),
                "Options": key_values(&a.opt),
                "IPAM": {"Driver": "default", "Config": ipam_config},
            });
            let v = client.post("/networks/create", Some(&body))?.json()?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCommand::Ls(a) => {
            let v = client
                .get(&with_query(
                    "/networks",
                    &[("filters", filters_json(&a.filter)?)],
                ))?
                .json()?;
            let mut rows: Vec<Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    let id = n["Id"].as_str().unwrap_or("");
                    let id = if a.no_trunc { id } else { id.get(..12).unwrap_or(id) };
                    json!({
                        "ID": id, "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                        "Internal": n["Internal"], "CreatedAt": n["Created"],
                        "Labels": n["Labels"].as_object().map(|o| o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                    })
                })
                .collect();
            rows.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
            let default = if a.quiet {
                "{{.ID}}"
            } else {
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
            };
            let format = if a.quiet { None } else { a.format.as_deref() };
            let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
                "Scope": "SCOPE", "Internal": "INTERNAL", "CreatedAt": "CREATED", "Labels": "LABELS"});
            print!(
                "{}",
                render_list(format, default, &headers, &rows).map_err(anyhow::Error::msg)?
            );
            Ok(0)
        }
        NetworkCommand::Inspect { format, names } => inspect_each(
            client,
            &names,
            |n| format!("/networks/{n}"),
            format.as_deref(),
        ),
        NetworkCommand::Rm { names } => each(&names, |n| {
            client.delete(&format!("/networks/{n}")).map(|_| ())
        }),
        NetworkCommand::Prune { force, filter } => {
            if !force {
                eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let v = client
                .post(
                    &with_query("/networks/prune", &[("filters", filters_json(&filter)?)]),
                    None,
                )?
                .json()?;
            let deleted = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
            }
            Ok(0)
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            network,
            container,
        } => {
            let mut endpoint = json!({"Aliases": alias});
            let mut ipam = serde_json::Map::new();
            if let Some(ip) = ip {
                ipam.insert("IPv4Address".into(), ip.into());
            }
            if let Some(ip6) = ip6 {
                ipam.insert("IPv6Address".into(), ip6.into());
            }
            if !ipam.is_empty() {
                endpoint["IPAMConfig"] = Value::Object(ipam);
            }
            let body = json!({"Container": container, "EndpointConfig": endpoint});
            client.post(&format!("/networks/{network}/connect"), Some(&body))?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => {
            let body = json!({"Container": container, "Force": force});
            client.post(&format!("/networks/{network}/disconnect"), Some(&body))?;
            Ok(0)
        }
    }
}
