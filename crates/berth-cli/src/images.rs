//! Image commands: images, import, tag, rmi, history, save, load, image inspect, image prune.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::containers::filters_json;
use crate::format::render_list;
use crate::short_id;
use berth_core::humanize;

#[derive(Args, Debug, Default)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show images of this repository.
    pub repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image.
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// A tarball file, or - for stdin.
    pub file: String,
    /// The name to give the image: REPOSITORY[:TAG].
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents.
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format (`-H` is the daemon host here).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// Format output using a custom template.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>").
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

fn image_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_owned()
    } else {
        short_id(id.strip_prefix("sha256:").unwrap_or(id))
    }
}

fn split_tag(repo_tag: &str) -> (String, String) {
    // The tag follows the last ':' that comes after the last '/' (a registry port is not a tag).
    let slash = repo_tag.rfind('/').map_or(0, |i| i + 1);
    match repo_tag[slash..].rfind(':') {
        Some(i) => (
            repo_tag[..slash + i].to_owned(),
            repo_tag[slash + i + 1..].to_owned(),
        ),
        None => (repo_tag.to_owned(), "<none>".to_owned()),
    }
}

pub fn images(client: &Client, args: ImagesArgs) -> Result<i32> {
    let mut filters = args.filter.clone();
    if let Some(r) = &args.repository {
        filters.push(format!("reference={r}"));
    }
    let path = with_query(
        "/images/json",
        &[
            ("all", if args.all { "1" } else { "" }.to_owned()),
            ("digests", if args.digests { "1" } else { "" }.to_owned()),
            ("filters", filters_json(&filters)?),
        ],
    );
    let list = client.get(&path)?.json()?;
    let now = chrono::Utc::now().timestamp();
    let mut rows = Vec::new();
    for img in list.as_array().into_iter().flatten() {
        let id = img["Id"].as_str().unwrap_or("");
        let created = img["Created"].as_i64().unwrap_or(0);
        let digests: Vec<&str> = img["RepoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .collect();
        let mut tags: Vec<(String, String)> = img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .filter(|t| *t != "<none>:<none>")
            .map(split_tag)
            .collect();
        // A repository named only by digest (pulled by digest) shows with tag <none>.
        for d in &digests {
            if let Some((repo, _)) = d.split_once('@') {
                if !tags.iter().any(|(r, _)| r == repo) {
                    tags.push((repo.to_owned(), "<none>".into()));
                }
            }
        }
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in tags {
            let digest = digests
                .iter()
                .find(|d| d.split('@').next() == Some(repo.as_str()))
                .and_then(|d| d.split('@').nth(1))
                .unwrap_or("<none>");
            rows.push(json!({
                "ID": image_id(id, args.no_trunc),
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": format!("{} ago", humanize::duration(now - created)),
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
                    .unwrap_or_default(),
                "Size": humanize::size(img["Size"].as_f64().unwrap_or(0.0)),
                "VirtualSize": humanize::size(img["Size"].as_f64().unwrap_or(0.0)),
                "Containers": match img["Containers"].as_i64() { Some(n) if n >= 0 => n.to_string(), _ => "N/A".into() },
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
            }));
        }
    }
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default().to_owned();
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let default = if args.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let headers = json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "VirtualSize": "VIRTUAL SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
    });
    print!(
        "{}",
        render_list(args.format.as_deref(), default, &headers, &rows)
            .map_err(anyhow::Error::msg)?
    );
    Ok(0)
}

/// Opens FILE, or stdin for `-`/none; refuses to read an archive from a terminal.
fn input(path: Option<&str>) -> Result<Box<dyn Read>> {
    match path {
        Some(p) if p != "-" => Ok(Box::new(
            std::fs::File::open(p).with_context(|| format!("open {p}"))?,
        )),
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Ok(Box::new(std::io::stdin()))
        }
    }
}

pub fn import(client: &Client, args: ImportArgs) -> Result<i32> {
    let (repo, tag) = match &args.reference {
        Some(r) => split_tag(r),
        None => (String::new(), String::new()),
    };
    let tag = if tag == "<none>" { String::new() } else { tag };
    let mut q = vec![
        ("fromSrc", "-".to_owned()),
        ("repo", repo),
        ("tag", tag),
        ("message", args.message.clone().unwrap_or_default()),
        ("platform", args.platform.clone().unwrap_or_default()),
    ];
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    let mut body = input(Some(&args.file))?;
    let resp = client.upload(
        "POST",
        &with_query("/images/create", &q),
        "application/x-tar",
        &mut body,
    )?;
    let text = resp.into_response()?.body;
    for line in String::from_utf8_lossy(&text).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(e) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
            bail!("{e}");
        }
        if let Some(s) = v["status"].as_str() {
            println!("{}", s.trim());
        }
    }
    Ok(0)
}

pub fn tag(client: &Client, args: TagArgs) -> Result<i32> {
    let (repo, tag) = split_tag(&args.target);
    let tag = if tag == "<none>" {
        "latest".to_owned()
    } else {
        tag
    };
    client.post(
        &with_query(
            &format!("/images/{}/tag", args.source),
            &[("repo", repo), ("tag", tag)],
        ),
        None,
    )?;
    Ok(0)
}

pub fn rmi(client: &Client, args: RmiArgs) -> Result<i32> {
    let mut failed = false;
    for image in &args.images {
        let path = with_query(
            &format!("/images/{image}"),
            &[
                ("force", if args.force { "1" } else { "" }.to_owned()),
                ("noprune", if args.no_prune { "1" } else { "" }.to_owned()),
            ],
        );
        match client.delete(&path) {
            Ok(r) => {
                for item in r.json()?.as_array().into_iter().flatten() {
                    if let Some(t) = item["Untagged"].as_str() {
                        println!("Untagged: {t}");
                    }
                    if let Some(d) = item["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub fn history(client: &Client, args: HistoryArgs) -> Result<i32> {
    let list = client
        .get(&format!("/images/{}/history", args.image))?
        .json()?;
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("<missing>");
            let created = h["Created"].as_i64().unwrap_or(0);
            let by = h["CreatedBy"].as_str().unwrap_or("");
            let size = h["Size"].as_i64().unwrap_or(0);
            json!({
                "ID": if id == "<missing>" { id.to_owned() } else { image_id(id, args.no_trunc) },
                "CreatedSince": if args.human { format!("{} ago", humanize::duration(now - created)) } else { created.to_string() },
                "CreatedAt": created.to_string(),
                "CreatedBy": if args.no_trunc { by.to_owned() } else { truncate(by, 45) },
                "Size": if args.human { humanize::size(size as f64) } else { size.to_string() },
                "Comment": h["Comment"],
            })
        })
        .collect();
    if args.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let headers = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    print!(
        "{}",
        render_list(
            args.format.as_deref(),
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
            &headers,
            &rows
        )
        .map_err(anyhow::Error::msg)?
    );
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

pub fn save(client: &Client, args: SaveArgs) -> Result<i32> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let q: Vec<(&str, String)> = args.images.iter().map(|i| ("names", i.clone())).collect();
    let mut resp = client.send(
        "GET",
        &with_query("/images/get", &q),
        crate::client::Payload::None,
    )?;
    match &args.output {
        Some(path) => {
            // Write beside the target and rename: a failed save never leaves half a file.
            let target = std::path::Path::new(path);
            let dir = target
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("create a file in {}", dir.display()))?;
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

pub fn load(client: &Client, args: LoadArgs) -> Result<i32> {
    let mut body = input(args.input.as_deref())?;
    let mut resp = client.upload(
        "POST",
        &format!("/images/load?quiet={}", u8::from(args.quiet)),
        "application/x-tar",
        &mut body,
    )?;
    let mut display =
        crate::progress::Display::new(std::io::stdout(), std::io::stdout().is_terminal());
    if let Some(e) = display.show_stream(resp.body())? {
        bail!("{e}");
    }
    Ok(0)
}

pub fn inspect(client: &Client, args: ImageInspectArgs) -> Result<i32> {
    crate::containers::inspect_each(
        client,
        &args.images,
        |i| format!("/images/{i}/json"),
        args.format.as_deref(),
    )
}

pub fn prune(client: &Client, args: PruneArgs) -> Result<i32> {
    if !args.force {
        let what = if args.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut filters = args.filter.clone();
    if args.all {
        filters.push("dangling=false".into());
    }
    let v = client
        .post(
            &with_query("/images/prune", &[("filters", filters_json(&filters)?)]),
            None,
        )?
        .json()?;
    let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for d in &deleted {
            if let Some(t) = d["Untagged"].as_str() {
                println!("untagged: {t}");
            }
            if let Some(t) = d["Deleted"].as_str() {
                println!("deleted: {t}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        humanize::size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_after_the_registry_port() {
        assert_eq!(split_tag("bb:1"), ("bb".into(), "1".into()));
        assert_eq!(
            split_tag("localhost:5000/bb"),
            ("localhost:5000/bb".into(), "<none>".into())
        );
        assert_eq!(
            split_tag("localhost:5000/bb:x"),
            ("localhost:5000/bb".into(), "x".into())
        );
    }
}
