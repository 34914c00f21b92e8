//! Disk use and clean-up: `system df [-v]`, `container prune` and `system prune`, with
//! docker's tables, prompts and "Total reclaimed space".

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client, ClientError};
use crate::containers::filters_json;
use crate::format::render_list;
use crate::short_id;
use crate::stats::human_size;

/// Docker's `units.HumanSize` (4 significant digits, decimal units).
fn size4(n: f64) -> String {
    human_size(n, 4)
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>").
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>").
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn container_active(c: &Value) -> bool {
    let state = c["State"].as_str().unwrap_or("");
    ["running", "paused", "restarting"]
        .iter()
        .any(|s| state.contains(s))
}

/// `"12MB (50%)"`, or just the size when there is nothing to divide by.
fn with_percent(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            size4(reclaimable as f64),
            reclaimable * 100 / total
        )
    } else {
        size4(reclaimable as f64)
    }
}

/// The summary rows, computed as the docker CLI computes them.
fn summary_rows(df: &Value) -> Vec<Value> {
    let images = list(&df["Images"]);
    let layers = n(&df["LayersSize"]);
    let used: i64 = images
        .iter()
        .filter(|i| n(&i["Containers"]) > 0)
        .filter(|i| n(&i["Size"]) != -1 && n(&i["SharedSize"]) != -1)
        .map(|i| n(&i["Size"]) - n(&i["SharedSize"]))
        .sum();
    let containers = list(&df["Containers"]);
    let ctr_size: i64 = containers.iter().map(|c| n(&c["SizeRw"])).sum();
    let ctr_free: i64 = containers
        .iter()
        .filter(|c| !container_active(c))
        .map(|c| n(&c["SizeRw"]))
        .sum();
    let volumes = list(&df["Volumes"]);
    let vol_size = |v: &Value| n(&v["UsageData"]["Size"]).max(0);
    let vol_total: i64 = volumes.iter().map(vol_size).sum();
    let vol_free: i64 = volumes
        .iter()
        .filter(|v| n(&v["UsageData"]["RefCount"]) == 0)
        .map(vol_size)
        .sum();
    let cache = list(&df["BuildCache"]);
    let cache_total: i64 = cache
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| n(&c["Size"]))
        .sum();
    let cache_free: i64 = cache
        .iter()
        .filter(|c| !c["InUse"].as_bool().unwrap_or(false))
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| n(&c["Size"]))
        .sum();
    vec![
        json!({
            "Type": "Images",
            "TotalCount": images.len().to_string(),
            "Active": images.iter().filter(|i| n(&i["Containers"]) > 0).count().to_string(),
            "Size": size4(layers as f64),
            "Reclaimable": with_percent(layers - used, layers),
        }),
        json!({
            "Type": "Containers",
            "TotalCount": containers.len().to_string(),
            "Active": containers.iter().filter(|c| container_active(c)).count().to_string(),
            "Size": size4(ctr_size as f64),
            "Reclaimable": with_percent(ctr_free, ctr_size),
        }),
        json!({
            "Type": "Local Volumes",
            "TotalCount": volumes.len().to_string(),
            "Active": volumes.iter().filter(|v| n(&v["UsageData"]["RefCount"]) > 0).count().to_string(),
            "Size": size4(vol_total as f64),
            "Reclaimable": with_percent(vol_free, vol_total),
        }),
        json!({
            "Type": "Build Cache",
            "TotalCount": cache.len().to_string(),
            "Active": cache.iter().filter(|c| c["InUse"].as_bool().unwrap_or(false)).count().to_string(),
            "Size": size4(cache_total as f64),
            "Reclaimable": size4(cache_free as f64),
        }),
    ]
}

fn ago(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{} ago", berth_core::humanize::duration(now - unix))
}

fn verbose(df: &Value) -> Result<String> {
    let mut out = String::from("Images space usage:\n\n");
    let mut rows = Vec::new();
    for i in list(&df["Images"]) {
        let id = i["Id"].as_str().unwrap_or("");
        let id = short_id(id.strip_prefix("sha256:").unwrap_or(id));
        let (size, shared) = (n(&i["Size"]), n(&i["SharedSize"]));
        let mut tags: Vec<(String, String)> = list(&i["RepoTags"])
            .iter()
            .filter_map(|t| t.as_str())
            .map(|t| {
                let slash = t.rfind('/').map_or(0, |p| p + 1);
                match t[slash..].rfind(':') {
                    Some(p) => (t[..slash + p].to_owned(), t[slash + p + 1..].to_owned()),
                    None => (t.to_owned(), "<none>".to_owned()),
                }
            })
            .collect();
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in tags {
            rows.push(json!({
                "Repository": repo, "Tag": tag, "ID": id,
                "CreatedSince": ago(n(&i["Created"])),
                "Size": human_size(size as f64, 3),
                "SharedSize": size4(shared.max(0) as f64),
                "UniqueSize": size4((size - shared.max(0)) as f64),
                "Containers": n(&i["Containers"]).to_string(),
            }));
        }
    }
    let headers = json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
        "CreatedSince": "CREATED", "Size": "SIZE", "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"});
    out += &render_list(
        None,
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &headers,
        &rows,
    )
    .map_err(anyhow::Error::msg)?;
    out += "\nContainers space usage:\n\n";
    let rows: Vec<Value> = list(&df["Containers"])
        .iter()
        .map(|c| {
            let command = c["Command"].as_str().unwrap_or("");
            let command = if command.chars().count() > 20 {
                format!("{}…", command.chars().take(19).collect::<String>())
            } else {
                command.to_owned()
            };
            let names: Vec<&str> = c["Names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
                .map(|x| x.trim_start_matches('/'))
                .collect();
            json!({
                "ID": short_id(c["Id"].as_str().unwrap_or("")),
                "Image": c["Image"], "Command": format!("\"{command}\""),
                "LocalVolumes": list(&c["Mounts"]).iter().filter(|m| m["Type"] == "volume").count().to_string(),
                "Size": human_size(n(&c["SizeRw"]) as f64, 3),
                "RunningFor": ago(n(&c["Created"])),
                "Status": c["Status"], "Names": names.join(","),
            })
        })
        .collect();
    let headers = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
        "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED",
        "Status": "STATUS", "Names": "NAMES"});
    out += &render_list(
        None,
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &headers,
        &rows,
    )
    .map_err(anyhow::Error::msg)?;
    out += "\nLocal Volumes space usage:\n\n";
    let rows: Vec<Value> = list(&df["Volumes"])
        .iter()
        .map(|v| {
            let size = n(&v["UsageData"]["Size"]);
            json!({
                "Name": v["Name"],
                "Links": n(&v["UsageData"]["RefCount"]).to_string(),
                "Size": if size < 0 { "N/A".to_owned() } else { human_size(size as f64, 3) },
            })
        })
        .collect();
    let headers = json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"});
    out += &render_list(
        None,
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &headers,
        &rows,
    )
    .map_err(anyhow::Error::msg)?;
    let cache: i64 = list(&df["BuildCache"]).iter().map(|c| n(&c["Size"])).sum();
    out += &format!("\nBuild cache usage: {}\n\n", size4(cache as f64));
    out += &crate::table::align(&[
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED".to_owned(),
    ]);
    Ok(out)
}

pub fn df(client: &Client, args: DfArgs) -> Result<i32> {
    let df = client.get("/system/df")?.json()?;
    if args.verbose && args.format.is_none() {
        print!("{}", verbose(&df)?);
        return Ok(0);
    }
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
        "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print!(
        "{}",
        render_list(
            args.format.as_deref(),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &headers,
            &summary_rows(&df),
        )
        .map_err(anyhow::Error::msg)?
    );
    Ok(0)
}

/// Docker's prompt; true when the user said yes.
pub(crate) fn confirm(warning: &str) -> Result<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// One prune step's report: what to print and the bytes it freed.
struct Pruned {
    output: String,
    reclaimed: u64,
}

fn prune_containers(client: &Client, filters: &[String]) -> Result<Pruned> {
    let v = client
        .post(
            &with_query("/containers/prune", &[("filters", filters_json(filters)?)]),
            None,
        )?
        .json()?;
    let deleted = list(&v["ContainersDeleted"]);
    let mut output = String::new();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        output.push_str("Deleted Containers:\n");
        for id in &deleted {
            output.push_str(id.as_str().unwrap_or(""));
            output.push('\n');
        }
        reclaimed = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    }
    Ok(Pruned { output, reclaimed })
}

/// A prune endpoint this engine may not have yet (networks, build cache): a 404 is nothing
/// to prune.
fn prune_optional(
    client: &Client,
    path: &str,
    filters: &[String],
    title: &str,
    key: &str,
) -> Result<Pruned> {
    prune_optional_with(client, path, filters, &[], title, key)
}

/// [`prune_optional`] with more query parameters (`all=1` for the build cache).
fn prune_optional_with(
    client: &Client,
    path: &str,
    filters: &[String],
    extra: &[(&str, String)],
    title: &str,
    key: &str,
) -> Result<Pruned> {
    let mut query = vec![("filters", filters_json(filters)?)];
    query.extend(extra.iter().cloned());
    let v = match client.post(&with_query(path, &query), None) {
        Ok(r) => r.json()?,
        Err(ClientError::Api { status: 404, .. }) => {
            return Ok(Pruned {
                output: String::new(),
                reclaimed: 0,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let deleted = list(&v[key]);
    let mut output = String::new();
    if !deleted.is_empty() {
        output.push_str(&format!("{title}:\n"));
        for d in &deleted {
            output.push_str(d.as_str().unwrap_or(""));
            output.push('\n');
        }
    }
    Ok(Pruned {
        output,
        reclaimed: v["SpaceReclaimed"].as_u64().unwrap_or(0),
    })
}

fn prune_images(client: &Client, all: bool, filters: &[String]) -> Result<Pruned> {
    let mut filters = filters.to_vec();
    if all {
        filters.push("dangling=false".into());
    }
    let v = client
        .post(
            &with_query("/images/prune", &[("filters", filters_json(&filters)?)]),
            None,
        )?
        .json()?;
    let deleted = list(&v["ImagesDeleted"]);
    let mut output = String::new();
    if !deleted.is_empty() {
        output.push_str("Deleted Images:\n");
        for d in &deleted {
            if let Some(t) = d["Untagged"].as_str() {
                output.push_str(&format!("untagged: {t}\n"));
            }
            if let Some(t) = d["Deleted"].as_str() {
                output.push_str(&format!("deleted: {t}\n"));
            }
        }
    }
    Ok(Pruned {
        output,
        reclaimed: v["SpaceReclaimed"].as_u64().unwrap_or(0),
    })
}

pub fn container_prune(client: &Client, args: ContainerPruneArgs) -> Result<i32> {
    if !args.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let p = prune_containers(client, &args.filter)?;
    if !p.output.is_empty() {
        println!("{}", p.output);
    }
    println!("Total reclaimed space: {}", size4(p.reclaimed as f64));
    Ok(0)
}

pub fn system_prune(client: &Client, args: SystemPruneArgs) -> Result<i32> {
    if !args.force {
        let mut warning = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
        );
        if args.volumes {
            warning.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        warning.push_str(if args.all {
            "  - all images without at least one container associated to them\n  - all build cache\n"
        } else {
            "  - all dangling images\n  - unused build cache\n"
        });
        if !confirm(&warning)? {
            return Ok(0);
        }
    }
    let f = &args.filter;
    let mut steps = vec![
        prune_containers(client, f)?,
        prune_optional(
            client,
            "/networks/prune",
            f,
            "Deleted Networks",
            "NetworksDeleted",
        )?,
    ];
    if args.volumes {
        steps.push(prune_optional(
            client,
            "/volumes/prune",
            f,
            "Deleted Volumes",
            "VolumesDeleted",
        )?);
    }
    steps.push(prune_images(client, args.all, f)?);
    // -a: all build cache (Docker's `all` parameter), else the dangling entries.
    let all: Vec<(&str, String)> = if args.all {
        vec![("all", "1".into())]
    } else {
        Vec::new()
    };
    steps.push(prune_optional_with(
        client,
        "/build/prune",
        f,
        &all,
        "Deleted build cache objects",
        "CachesDeleted",
    )?);
    let mut total = 0;
    for s in &steps {
        if !s.output.is_empty() {
            println!("{}", s.output);
        }
        total += s.reclaimed;
    }
    println!("Total reclaimed space: {}", size4(total as f64));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_like_docker() {
        let df = json!({
            "LayersSize": 4_000_000,
            "Images": [
                {"Id": "sha256:aa", "Size": 3_000_000, "SharedSize": 1_000_000, "Containers": 1, "RepoTags": ["bb:latest"], "Created": 0},
                {"Id": "sha256:bb", "Size": 2_000_000, "SharedSize": 1_000_000, "Containers": 0, "RepoTags": [], "Created": 0},
            ],
            "Containers": [
                {"Id": "c1", "State": "running", "SizeRw": 100},
                {"Id": "c2", "State": "exited", "SizeRw": 300},
            ],
            "Volumes": [{"Name": "v", "UsageData": {"Size": 50, "RefCount": 0}}],
            "BuildCache": [],
        });
        let rows = summary_rows(&df);
        assert_eq!(rows[0]["TotalCount"], "2");
        assert_eq!(rows[0]["Active"], "1");
        assert_eq!(rows[0]["Size"], "4MB");
        // 4 MB minus the 2 MB unique to the image in use.
        assert_eq!(rows[0]["Reclaimable"], "2MB (50%)");
        assert_eq!(rows[1]["Active"], "1");
        assert_eq!(rows[1]["Size"], "400B");
        assert_eq!(rows[1]["Reclaimable"], "300B (75%)");
        assert_eq!(rows[2]["Reclaimable"], "50B (100%)");
        assert_eq!(rows[3]["Size"], "0B");
        let text = verbose(&df).unwrap();
        assert!(
            text.starts_with("Images space usage:\n\nREPOSITORY"),
            "{text}"
        );
        assert!(text.contains("<none>"), "{text}");
        assert!(text.contains("Build cache usage: 0B"), "{text}");
    }
}
