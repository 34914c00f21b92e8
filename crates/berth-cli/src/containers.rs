//! Container commands: run, create, start, stop, kill, restart, rm, wait, rename, pause,
//! unpause, ps, logs, inspect, top, port, attach, exec.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client, ClientError};
use crate::create_opts::CreateOpts;
use crate::format::render_list;
use crate::stream::{self, Outcome, RawTerminal};
use crate::table::{ellipsis, ports_text};
use crate::{short_id, StatusError};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateOpts,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub create: CreateOpts,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(short = 't', long = "time", visible_alias = "timeout")]
    pub time: Option<i64>,
    /// Signal to send to the container.
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link.
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug, Default)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    pub size: bool,
    /// Only inspect objects of the given type (container, image).
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true)]
    pub sig_proxy: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]").
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// Runs `f` for every target, printing each target that worked and each error, as docker
/// does; fails (exit 1) if any did.
pub fn each(targets: &[String], mut f: impl FnMut(&str) -> Result<(), ClientError>) -> Result<i32> {
    let mut failed = false;
    for t in targets {
        match f(t) {
            Ok(()) => println!("{t}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Docker's exit status for a container that could not start: 127 when the command was not
/// found, 126 when it could not be invoked, 125 for any other engine error.
pub fn start_failure_status(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") || m.contains("cannot invoke") {
        126
    } else {
        125
    }
}

/// `--cidfile`: made (empty) before the container is created, as the docker CLI does, so an
/// existing file stops the create; removed again when no ID was written to it.
struct CidFile {
    path: Option<String>,
    written: bool,
}

impl CidFile {
    fn create(path: Option<&str>) -> Result<CidFile> {
        let path = path.filter(|p| !p.is_empty());
        if let Some(p) = path {
            if std::fs::symlink_metadata(p).is_ok() {
                bail!("container ID file found, make sure the other container isn't running or delete {p}");
            }
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("failed to create the container ID file: {e}"))?;
        }
        Ok(CidFile {
            path: path.map(str::to_owned),
            written: false,
        })
    }

    fn write(&mut self, id: &str) -> Result<()> {
        if let Some(p) = &self.path {
            std::fs::write(p, id).map_err(|e| {
                anyhow::anyhow!("failed to write the container ID to the file: {e}")
            })?;
            self.written = true;
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let (Some(p), false) = (&self.path, self.written) {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn create_container(client: &Client, opts: &CreateOpts, attach: bool) -> Result<String> {
    let engine_error = |e: anyhow::Error| StatusError::new(125, format!("{e:#}"));
    let body = opts.body(attach).map_err(engine_error)?;
    let mut query = vec![("name", opts.name.clone().unwrap_or_default())];
    if let Some(p) = opts.platform().map_err(engine_error)? {
        query.push(("platform", p));
    }
    let path = with_query("/containers/create", &query);
    let mut cidfile = CidFile::create(opts.cidfile.as_deref()).map_err(engine_error)?;
    match client.post(&path, Some(&body)) {
        Ok(r) => {
            let created = r.json()?;
            for w in created["Warnings"].as_array().into_iter().flatten() {
                eprintln!("WARNING: {}", w.as_str().unwrap_or_default());
            }
            let id = created["Id"].as_str().unwrap_or_default().to_owned();
            cidfile.write(&id).map_err(engine_error)?;
            Ok(id)
        }
        Err(e @ ClientError::Api { status: 404, .. }) => {
            let image = opts.image();
            let shown = if image.contains(':') || image.contains('@') {
                image.to_owned()
            } else {
                format!("{image}:latest")
            };
            eprintln!("Unable to find image '{shown}' locally");
            Err(StatusError::new(125, e.to_string()).into())
        }
        Err(e) => Err(StatusError::new(125, e.to_string()).into()),
    }
}

pub fn create(client: &Client, args: CreateArgs) -> Result<i32> {
    // As docker's create: stdout and stderr (and stdin with -i) marked for a later attach.
    let id = create_container(client, &args.create, true)?;
    println!("{id}");
    Ok(0)
}

pub fn run(client: &Client, args: RunArgs) -> Result<i32> {
    let opts = &args.create;
    if args.detach && opts.rm && !opts.restart.is_empty() && opts.restart != "no" {
        return Err(
            StatusError::new(125, "Conflicting options: --restart and --rm".to_owned()).into(),
        );
    }
    let attach = !args.detach;
    let id = create_container(client, opts, attach)?;
    if args.detach {
        start_or_status(client, &id, opts.rm)?;
        println!("{id}");
        return Ok(0);
    }
    let hijacked = client
        .hijack(
            "POST",
            &format!(
                "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}",
                if opts.interactive { "&stdin=1" } else { "" }
            ),
            None,
        )
        .map_err(|e| StatusError::new(125, e.to_string()))?;
    // Ask for the exit before starting, so a quick exit is not missed.
    let condition = if opts.rm { "removed" } else { "next-exit" };
    let mut waiter = client
        .send(
            "POST",
            &format!("/containers/{id}/wait?condition={condition}"),
            crate::client::Payload::None,
        )
        .map_err(|e| StatusError::new(125, e.to_string()))?;
    let _raw = if opts.tty && opts.interactive {
        RawTerminal::enter()
    } else {
        None
    };
    start_or_status(client, &id, opts.rm)?;
    if opts.tty {
        stream::follow_window_size(client, &format!("/containers/{id}/resize"));
    }
    let outcome = stream::pump(hijacked, opts.interactive, opts.tty)?;
    if outcome == Outcome::Detached {
        drop(_raw);
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    drop(_raw);
    let body = waiter.body().read_line_bytes()?;
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(msg) = v["Error"]["Message"].as_str() {
        if !msg.is_empty() {
            bail!(StatusError::new(125, msg.to_owned()));
        }
    }
    match v["StatusCode"].as_i64() {
        Some(code) => Ok(code as i32),
        None => Err(StatusError::new(
            125,
            format!(
                "the daemon ended the wait for {id} without an exit status ({:?})",
                String::from_utf8_lossy(&body)
            ),
        )
        .into()),
    }
}

/// Starts a container; a failure becomes Docker's exit status for it (and with `--rm` the
/// container that never ran is removed).
fn start_or_status(client: &Client, id: &str, remove: bool) -> Result<()> {
    if let Err(e) = client.post(&format!("/containers/{id}/start"), None) {
        if remove {
            let _ = client.delete(&format!("/containers/{id}?force=1"));
        }
        let status = start_failure_status(&e.to_string());
        return Err(StatusError::new(status, e.to_string()).into());
    }
    Ok(())
}

pub fn start(client: &Client, args: StartArgs) -> Result<i32> {
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let key = &args.containers[0];
        let info = client.get(&format!("/containers/{key}/json"))?.json()?;
        let id = info["Id"].as_str().unwrap_or(key).to_owned();
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let hijacked = client.hijack(
            "POST",
            &format!(
                "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}",
                if args.interactive { "&stdin=1" } else { "" }
            ),
            None,
        )?;
        let mut waiter = client.send(
            "POST",
            &format!("/containers/{id}/wait?condition=next-exit"),
            crate::client::Payload::None,
        )?;
        let raw = if tty && args.interactive {
            RawTerminal::enter()
        } else {
            None
        };
        start_or_status(client, &id, false)?;
        if tty {
            stream::follow_window_size(client, &format!("/containers/{id}/resize"));
        }
        let outcome = stream::pump(hijacked, args.interactive, tty)?;
        drop(raw);
        if outcome == Outcome::Detached {
            return Ok(0);
        }
        let v: Value =
            serde_json::from_slice(&waiter.body().read_line_bytes()?).unwrap_or_default();
        return Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32);
    }
    each(&args.containers, |c| {
        client
            .post(&format!("/containers/{c}/start"), None)
            .map(|_| ())
    })
}

pub fn stop(client: &Client, args: StopArgs, restart: bool) -> Result<i32> {
    let action = if restart { "restart" } else { "stop" };
    let q = [
        ("t", args.time.map(|t| t.to_string()).unwrap_or_default()),
        ("signal", args.signal.clone().unwrap_or_default()),
    ];
    each(&args.containers, |c| {
        client
            .post(&with_query(&format!("/containers/{c}/{action}"), &q), None)
            .map(|_| ())
    })
}

pub fn kill(client: &Client, args: KillArgs) -> Result<i32> {
    each(&args.containers, |c| {
        client
            .post(
                &with_query(
                    &format!("/containers/{c}/kill"),
                    &[("signal", args.signal.clone())],
                ),
                None,
            )
            .map(|_| ())
    })
}

pub fn rm(client: &Client, args: RmArgs) -> Result<i32> {
    let q = [
        ("force", if args.force { "1" } else { "" }.to_owned()),
        ("v", if args.volumes { "1" } else { "" }.to_owned()),
        ("link", if args.link { "1" } else { "" }.to_owned()),
    ];
    each(&args.containers, |c| {
        // A link's name (`/parent/alias`) goes without its outer slashes, as docker sends it.
        let c = c.trim_matches('/');
        client
            .delete(&with_query(&format!("/containers/{c}"), &q))
            .map(|_| ())
    })
}

pub fn pause(client: &Client, args: ContainersArgs, pause: bool) -> Result<i32> {
    let action = if pause { "pause" } else { "unpause" };
    each(&args.containers, |c| {
        client
            .post(&format!("/containers/{c}/{action}"), None)
            .map(|_| ())
    })
}

pub fn wait(client: &Client, args: ContainersArgs) -> Result<i32> {
    let mut failed = false;
    for c in &args.containers {
        match client.post(&format!("/containers/{c}/wait"), None) {
            Ok(r) => {
                let v = r.json()?;
                println!("{}", v["StatusCode"].as_i64().unwrap_or(-1));
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub fn rename(client: &Client, args: RenameArgs) -> Result<i32> {
    client.post(
        &with_query(
            &format!("/containers/{}/rename", args.container),
            &[("name", args.new_name)],
        ),
        None,
    )?;
    Ok(0)
}

/// Docker's "2026-11-24 18:42:26 +0000 UTC".
fn docker_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

fn labels_text(labels: &Value) -> String {
    labels
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// One `docker ps` row, with the fields docker's templates know.
fn ps_row(c: &Value, no_trunc: bool, now: i64) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let command = c["Command"].as_str().unwrap_or("");
    let created = c["Created"].as_i64().unwrap_or(0);
    let names: Vec<&str> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/'))
        .collect();
    let size = match (c["SizeRw"].as_i64(), c["SizeRootFs"].as_i64()) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            berth_core::humanize::size(rw as f64),
            berth_core::humanize::size(root as f64)
        ),
        (Some(rw), None) => berth_core::humanize::size(rw as f64),
        _ => "0B".to_owned(),
    };
    json!({
        "ID": if no_trunc { id.to_owned() } else { short_id(id) },
        "Image": c["Image"],
        "Command": if no_trunc { format!("\"{command}\"") } else { format!("\"{}\"", ellipsis(command, 20)) },
        "CreatedAt": docker_time(created),
        "RunningFor": format!("{} ago", berth_core::humanize::duration(now - created)),
        "Ports": ports_text(&c["Ports"]),
        "State": c["State"],
        "Status": c["Status"],
        "Size": size,
        "Names": names.join(","),
        "Labels": labels_text(&c["Labels"]),
        "Mounts": "",
        "Networks": "",
        "LocalVolumes": "0",
    })
}

/// `--filter key=value` flags as the API's `filters` JSON, as the docker CLI sends it
/// (empty for none).
pub fn filters_json(filters: &[String]) -> Result<String> {
    Ok(berth_core::filters::Filters::from_flags(filters)?.to_json())
}

pub fn ps(client: &Client, args: PsArgs) -> Result<i32> {
    let limit = if args.latest { 1 } else { args.last };
    let all = args.all || limit > 0;
    let path = with_query(
        "/containers/json",
        &[
            ("all", if all { "1" } else { "" }.to_owned()),
            (
                "limit",
                if limit > 0 {
                    limit.to_string()
                } else {
                    String::new()
                },
            ),
            ("size", if args.size { "1" } else { "" }.to_owned()),
            ("filters", filters_json(&args.filter)?),
        ],
    );
    let list = client.get(&path)?.json()?;
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ps_row(c, args.no_trunc, now))
        .collect();
    let default = if args.quiet {
        "{{.ID}}"
    } else if args.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let format = if args.quiet {
        None
    } else {
        args.format.as_deref()
    };
    let headers = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    });
    print!(
        "{}",
        render_list(format, default, &headers, &rows).map_err(anyhow::Error::msg)?
    );
    Ok(0)
}

pub fn logs(client: &Client, args: LogsArgs) -> Result<i32> {
    let info = client
        .get(&format!("/containers/{}/json", args.container))?
        .json()?;
    let id = info["Id"].as_str().unwrap_or(&args.container).to_owned();
    let path = with_query(
        &format!("/containers/{id}/logs"),
        &[
            ("stdout", "1".to_owned()),
            ("stderr", "1".to_owned()),
            ("follow", if args.follow { "1" } else { "" }.to_owned()),
            ("tail", args.tail.clone()),
            ("since", args.since.clone().unwrap_or_default()),
            ("until", args.until.clone().unwrap_or_default()),
            (
                "timestamps",
                if args.timestamps { "1" } else { "" }.to_owned(),
            ),
        ],
    );
    let mut resp = client.send("GET", &path, crate::client::Payload::None)?;
    let multiplexed = resp
        .header("content-type")
        .is_some_and(|c| c.contains("multiplexed"));
    if multiplexed {
        stream::demux(resp.body())?;
    } else {
        std::io::copy(resp.body(), &mut std::io::stdout())?;
    }
    Ok(0)
}

/// Prints JSON the way docker inspect does (an array, 4-space indent) or through a template.
pub fn print_inspected(items: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        Some(f) => {
            let f = crate::format::Format::parse(f);
            for item in items {
                println!(
                    "{}",
                    crate::format::render(&f.template, item).map_err(anyhow::Error::msg)?
                );
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&items, &mut ser)?;
            println!("{}", String::from_utf8_lossy(&buf));
        }
    }
    Ok(())
}

/// Inspects every name at `path(name)`, prints what was found (docker's array or the
/// template) and each error; fails (exit 1) if any name was not found.
pub fn inspect_each(
    client: &Client,
    names: &[String],
    path: impl Fn(&str) -> String,
    format: Option<&str>,
) -> Result<i32> {
    let mut found = Vec::new();
    let mut failed = false;
    for n in names {
        match client.get(&path(n)) {
            Ok(r) => found.push(r.json()?),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    print_inspected(&found, format)?;
    Ok(i32::from(failed))
}

/// `inspect`: containers first, then images, unless `--type` says which.
pub fn inspect(client: &Client, args: InspectArgs) -> Result<i32> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let mut result = None;
        let mut last_err = None;
        for kind in ["container", "image"] {
            if args.kind.as_deref().is_some_and(|k| k != kind) {
                continue;
            }
            let path = match kind {
                "container" => format!(
                    "/containers/{name}/json{}",
                    if args.size { "?size=1" } else { "" }
                ),
                _ => format!("/images/{name}/json"),
            };
            match client.get(&path) {
                Ok(r) => {
                    result = Some(r.json()?);
                    break;
                }
                Err(e @ ClientError::Api { status: 404, .. }) => last_err = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        match result {
            Some(v) => found.push(v),
            None => {
                failed = true;
                let msg = match (&args.kind, last_err) {
                    (None, _) => format!("Error: No such object: {name}"),
                    (Some(_), Some(e)) => e.to_string(),
                    (Some(k), None) => format!("unknown type {k:?}"),
                };
                eprintln!("{msg}");
            }
        }
    }
    print_inspected(&found, args.format.as_deref())?;
    Ok(i32::from(failed))
}

pub fn top(client: &Client, args: TopArgs) -> Result<i32> {
    let ps_args = if args.ps_options.is_empty() {
        String::new()
    } else {
        args.ps_options.join(" ")
    };
    let v = client
        .get(&with_query(
            &format!("/containers/{}/top", args.container),
            &[("ps_args", ps_args)],
        ))?
        .json()?;
    let mut lines = Vec::new();
    let titles: Vec<&str> = v["Titles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    lines.push(titles.join("\t"));
    for p in v["Processes"].as_array().into_iter().flatten() {
        let row: Vec<&str> = p
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        lines.push(row.join("\t"));
    }
    print!("{}", crate::table::align(&lines));
    Ok(0)
}

pub fn port(client: &Client, args: PortArgs) -> Result<i32> {
    let info = client
        .get(&format!("/containers/{}/json", args.container))?
        .json()?;
    let ports = &info["NetworkSettings"]["Ports"];
    let wanted = args.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut any = false;
    if let Some(map) = ports.as_object() {
        for (private, bindings) in map {
            if wanted.as_ref().is_some_and(|w| w != private) {
                continue;
            }
            for b in bindings.as_array().into_iter().flatten() {
                any = true;
                let addr = format!(
                    "{}:{}",
                    b["HostIp"].as_str().unwrap_or("0.0.0.0"),
                    b["HostPort"].as_str().unwrap_or("")
                );
                if wanted.is_some() {
                    println!("{addr}");
                } else {
                    println!("{private} -> {addr}");
                }
            }
        }
    }
    if let (Some(w), false) = (&wanted, any) {
        bail!(
            "Error: No public port '{w}' published for {}",
            args.container
        );
    }
    Ok(0)
}

pub fn attach(client: &Client, args: AttachArgs) -> Result<i32> {
    let info = client
        .get(&format!("/containers/{}/json", args.container))?
        .json()?;
    let id = info["Id"].as_str().unwrap_or(&args.container).to_owned();
    if info["State"]["Running"].as_bool() != Some(true) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if info["State"]["Paused"].as_bool() == Some(true) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !args.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let hijacked = client.hijack(
        "POST",
        &format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}",
            if stdin { "&stdin=1" } else { "" }
        ),
        None,
    )?;
    let raw = if tty && stdin {
        RawTerminal::enter()
    } else {
        None
    };
    if tty {
        stream::follow_window_size(client, &format!("/containers/{id}/resize"));
    }
    let outcome = stream::pump(hijacked, stdin, tty)?;
    drop(raw);
    if outcome == Outcome::Detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    let v = client
        .post(&format!("/containers/{id}/wait"), None)?
        .json()?;
    Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32)
}

pub fn exec(client: &Client, args: ExecArgs) -> Result<i32> {
    let attach = !args.detach;
    let body = json!({
        "AttachStdin": args.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": args.tty,
        "Cmd": args.command,
        "Env": args.env,
        "WorkingDir": args.workdir.clone().unwrap_or_default(),
        "User": args.user.clone().unwrap_or_default(),
        "Privileged": args.privileged,
    });
    let created = client.post(&format!("/containers/{}/exec", args.container), Some(&body))?;
    let exec_id = created.json()?["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if args.detach {
        client.post(
            &format!("/exec/{exec_id}/start"),
            Some(&json!({"Detach": true, "Tty": args.tty})),
        )?;
        return Ok(0);
    }
    let hijacked = client.hijack(
        "POST",
        &format!("/exec/{exec_id}/start"),
        Some(&json!({"Detach": false, "Tty": args.tty})),
    )?;
    let raw = if args.tty && args.interactive {
        RawTerminal::enter()
    } else {
        None
    };
    if args.tty {
        stream::follow_window_size(client, &format!("/exec/{exec_id}/resize"));
    }
    let outcome = stream::pump(hijacked, args.interactive, args.tty)?;
    drop(raw);
    if outcome == Outcome::Detached {
        return Ok(0);
    }
    let v = client.get(&format!("/exec/{exec_id}/json"))?.json()?;
    let code = v["ExitCode"].as_i64().unwrap_or(126) as i32;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_to_docker_statuses() {
        assert_eq!(
            start_failure_status("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            start_failure_status("exec: \"/etc/passwd\": permission denied"),
            126
        );
        assert_eq!(start_failure_status("something else"), 125);
    }

    #[test]
    fn filters_and_truncation() {
        assert_eq!(
            filters_json(&["status=exited".into(), "status=created".into()]).unwrap(),
            r#"{"status":{"created":true,"exited":true}}"#
        );
        assert_eq!(filters_json(&[]).unwrap(), "");
        assert!(filters_json(&["nonsense".into()]).is_err());
        assert_eq!(
            ellipsis("sh -c 'sleep 1000; echo done'", 20),
            "sh -c 'sleep 1000; …"
        );
    }
}
