//! `logs`, and the output of an attached `up`: each container's stream split into lines
//! and printed with its `<service>-<n> | ` prefix (padded to the longest, coloured on a
//! terminal), lines of different containers never interleaved.

use std::io::{BufRead, Read, Write};
use std::sync::Mutex;

use anyhow::Result;
use berth_client::Client;
use clap::Args;

use crate::api;
use crate::cmd::{check_services, display_name, service_containers};
use crate::model::Project;

#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    pub until: Option<String>,
    /// Produce monochrome output.
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs.
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    /// Output events as a stream of json objects.
    #[arg(long)]
    pub json: bool,
    /// Show all events created since timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Services.
    pub services: Vec<String>,
}

/// Colours v2 cycles through for prefixes.
const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Prints prefixed lines for several containers.
#[derive(Debug)]
pub struct Printer {
    width: usize,
    color: bool,
    prefix: bool,
    names: Vec<String>,
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(names: &[String], color: bool, prefix: bool) -> Printer {
        use std::io::IsTerminal;
        Printer {
            width: names.iter().map(String::len).max().unwrap_or(0),
            color: color && std::io::stdout().is_terminal(),
            prefix,
            names: names.to_vec(),
            lock: Mutex::new(()),
        }
    }

    fn prefix_of(&self, name: &str) -> String {
        if !self.prefix {
            return String::new();
        }
        let padded = format!("{name:<width$}  | ", width = self.width);
        if self.color {
            let i = self.names.iter().position(|n| n == name).unwrap_or(0);
            format!("\x1b[{}m{padded}\x1b[0m", COLORS[i % COLORS.len()])
        } else {
            padded
        }
    }

    pub fn line(&self, name: &str, text: &str) {
        let _g = self.lock.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}{text}", self.prefix_of(name));
        let _ = out.flush();
    }

    /// A line without a prefix (`web-1 exited with code 0`).
    pub fn line_plain(&self, text: &str) {
        let _g = self.lock.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Streams one container's log (multiplexed unless it has a TTY) through the printer.
pub fn follow(
    client: &Client,
    id: &str,
    name: &str,
    printer: &Printer,
    timestamps: bool,
    extra: Option<&[(&str, String)]>,
    follow: bool,
) -> Result<()> {
    let inspect = api::inspect_container(client, id)?;
    let tty = inspect["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut query: Vec<(&str, String)> = vec![
        ("stdout", "1".into()),
        ("stderr", "1".into()),
        ("follow", if follow { "1" } else { "0" }.into()),
        ("timestamps", if timestamps { "1" } else { "0" }.into()),
    ];
    if let Some(e) = extra {
        query.extend(e.iter().cloned());
    }
    let mut resp = api::logs(client, id, &query)?;
    let body = resp.body();
    let emit = |bytes: &[u8]| {
        for line in String::from_utf8_lossy(bytes).lines() {
            printer.line(name, line.trim_end_matches('\r'));
        }
    };
    if tty {
        let mut reader = std::io::BufReader::new(body);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            emit(&line);
        }
        return Ok(());
    }
    // Frames: [stream, 0, 0, 0, size (u32 BE)] then the payload. A line may span frames.
    let mut pending: [Vec<u8>; 3] = Default::default();
    let mut header = [0u8; 8];
    loop {
        if let Err(e) = body.read_exact(&mut header) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                break;
            }
            return Err(e.into());
        }
        let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut payload = vec![0u8; size];
        body.read_exact(&mut payload)?;
        let buf = &mut pending[(header[0] as usize).min(2)];
        buf.extend_from_slice(&payload);
        if let Some(last) = buf.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = buf.drain(..=last).collect();
            emit(&complete);
        }
    }
    for rest in pending.iter().filter(|p| !p.is_empty()) {
        emit(rest);
    }
    Ok(())
}

pub fn logs(client: &Client, project: &Project, a: &LogsArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let containers = service_containers(client, project, &a.services)?;
    let names: Vec<String> = containers
        .iter()
        .map(|c| display_name(&project.name, c))
        .collect();
    let printer = Printer::new(&names, !a.no_color, !a.no_log_prefix);
    let mut extra: Vec<(&str, String)> = vec![("tail", a.tail.clone())];
    if let Some(s) = &a.since {
        extra.push(("since", s.clone()));
    }
    if let Some(u) = &a.until {
        extra.push(("until", u.clone()));
    }
    std::thread::scope(|scope| {
        for (c, name) in containers.iter().zip(&names) {
            let printer = &printer;
            let extra = &extra;
            scope.spawn(move || {
                if let Err(e) = follow(
                    client,
                    &c.id,
                    name,
                    printer,
                    a.timestamps,
                    Some(extra),
                    a.follow,
                ) {
                    eprintln!("{name}: {e:#}");
                }
            });
        }
    });
    Ok(0)
}

/// `events`: the daemon's container events for the project, as v2 prints them
/// (`TIME container ACTION ID (attributes)`, or one JSON object a line with `--json`).
pub fn events(client: &Client, project: &Project, a: &EventsArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let filters = serde_json::json!({
        "type": ["container"],
        "label": [format!("{}={}", crate::naming::PROJECT, project.name)],
    });
    let mut query = vec![("filters", filters.to_string())];
    if let Some(s) = &a.since {
        query.push(("since", s.clone()));
    }
    if let Some(u) = &a.until {
        query.push(("until", u.clone()));
    }
    let path = berth_client::client::with_query("/events", &query);
    let mut resp = client.send("GET", &path, berth_client::client::Payload::None)?;
    loop {
        let line = resp.body().read_line_bytes()?;
        if line.is_empty() {
            return Ok(0);
        }
        let Ok(e) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        let attrs = e["Actor"]["Attributes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let service = attrs
            .get(crate::naming::SERVICE)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        if !a.services.is_empty() && !a.services.contains(&service) {
            continue;
        }
        let nanos = e["timeNano"].as_i64().unwrap_or(0);
        let time =
            chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default();
        let action = e["Action"].as_str().unwrap_or("");
        let id = e["Actor"]["ID"].as_str().unwrap_or("");
        let mut out = std::io::stdout().lock();
        if a.json {
            let obj = serde_json::json!({
                "time": time,
                "type": "container",
                "action": action,
                "id": id,
                "service": service,
                "attributes": attrs,
            });
            let _ = writeln!(out, "{obj}");
        } else {
            let shown: Vec<String> = attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("com.docker.compose."))
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let _ = writeln!(out, "{time} container {action} {id} ({})", shown.join(", "));
        }
        let _ = out.flush();
    }
}
