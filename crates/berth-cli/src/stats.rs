//! `stats` (live resource use, docker's table and figures) and `update` (new limits for
//! containers).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client, ClientError, Payload};
use crate::format::render_list;
use crate::{short_id, StatusError};

/// Go's `%.{prec}g`: `prec` significant digits, trailing zeros dropped, an exponent when the
/// number is too large or small for them.
pub fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_owned();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{v:.decimals$}"))
    }
}

fn scaled(v: f64, base: f64, units: &[&str], prec: usize) -> String {
    let mut v = v.max(0.0);
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    format!("{}{}", go_g(v, prec), units[i])
}

/// Docker's `units.BytesSize`: binary units, 4 significant digits ("50MiB", "7.775GiB").
pub fn bytes_size(v: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    scaled(v, 1024.0, &UNITS, 4)
}

/// Docker's `units.HumanSizeWithPrecision`: decimal units ("1.2MB" at 3 digits).
pub fn human_size(v: f64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    scaled(v, 1000.0, &UNITS, prec)
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// What one sample shows, computed as the docker CLI computes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The container as named on the command line, or its short ID.
    pub container: String,
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
    /// No figures (yet, or the container could not be read): shown as `--`.
    pub invalid: bool,
}

fn u(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64
}

impl Entry {
    /// The entry of a sample of Docker's stats JSON.
    pub fn from_sample(container: &str, s: &Value) -> Entry {
        // CPU: the container's share of the host's CPU time since the sample before,
        // times the CPUs online.
        let cpu = &s["cpu_stats"];
        let pre = &s["precpu_stats"];
        let cpu_delta = u(&cpu["cpu_usage"]["total_usage"]) - u(&pre["cpu_usage"]["total_usage"]);
        let system_delta = u(&cpu["system_cpu_usage"]) - u(&pre["system_cpu_usage"]);
        let mut online = u(&cpu["online_cpus"]);
        if online == 0.0 {
            online = cpu["cpu_usage"]["percpu_usage"]
                .as_array()
                .map_or(0.0, |a| a.len() as f64);
        }
        let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / system_delta * online * 100.0
        } else {
            0.0
        };
        // Memory: usage without the inactive page cache (v1's total_inactive_file, v2's
        // inactive_file).
        let mem = &s["memory_stats"];
        let usage = u(&mem["usage"]);
        let stats = &mem["stats"];
        let memory = match stats.get("total_inactive_file").and_then(Value::as_u64) {
            Some(v) if (v as f64) < usage => usage - v as f64,
            Some(_) => usage,
            None => match stats.get("inactive_file").and_then(Value::as_u64) {
                Some(v) if (v as f64) < usage => usage - v as f64,
                _ => usage,
            },
        };
        let memory_limit = u(&mem["limit"]);
        let memory_percent = if memory_limit != 0.0 {
            memory / memory_limit * 100.0
        } else {
            0.0
        };
        let (mut net_rx, mut net_tx) = (0.0, 0.0);
        for n in s["networks"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
            net_rx += u(&n["rx_bytes"]);
            net_tx += u(&n["tx_bytes"]);
        }
        let (mut block_read, mut block_write) = (0.0, 0.0);
        for e in s["blkio_stats"]["io_service_bytes_recursive"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => block_read += u(&e["value"]),
                Some("write") => block_write += u(&e["value"]),
                _ => {}
            }
        }
        Entry {
            container: container.to_owned(),
            id: s["id"].as_str().unwrap_or("").to_owned(),
            name: s["name"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_owned(),
            cpu_percent,
            memory,
            memory_limit,
            memory_percent,
            net_rx,
            net_tx,
            block_read,
            block_write,
            pids: s["pids_stats"]["current"].as_u64().unwrap_or(0),
            invalid: false,
        }
    }

    /// The fields docker's stats templates know.
    pub fn row(&self, trunc: bool) -> Value {
        let id = if trunc {
            short_id(&self.id)
        } else {
            self.id.clone()
        };
        let name = if self.name.is_empty() {
            "--".to_owned()
        } else {
            self.name.clone()
        };
        if self.invalid {
            return json!({
                "Container": self.container, "ID": id, "Name": name, "CPUPerc": "--",
                "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--", "BlockIO": "--",
                "PIDs": "--",
            });
        }
        json!({
            "Container": self.container,
            "ID": id,
            "Name": name,
            "CPUPerc": format!("{:.2}%", self.cpu_percent),
            "MemUsage": format!("{} / {}", bytes_size(self.memory), bytes_size(self.memory_limit)),
            "MemPerc": format!("{:.2}%", self.memory_percent),
            "NetIO": format!("{} / {}", human_size(self.net_rx, 3), human_size(self.net_tx, 3)),
            "BlockIO": format!("{} / {}", human_size(self.block_read, 3), human_size(self.block_write, 3)),
            "PIDs": self.pids.to_string(),
        })
    }
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn headers() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

fn render(args: &StatsArgs, entries: &[Entry]) -> Result<String> {
    let rows: Vec<Value> = entries.iter().map(|e| e.row(!args.no_trunc)).collect();
    render_list(args.format.as_deref(), DEFAULT_FORMAT, &headers(), &rows)
        .map_err(anyhow::Error::msg)
}

/// The containers to show when none are named: running ones (or all with `-a`), by short ID.
fn listed(client: &Client, all: bool) -> Result<Vec<(String, String)>> {
    let path = with_query(
        "/containers/json",
        &[("all", if all { "1" } else { "" }.to_owned())],
    );
    let list = client.get(&path)?.json()?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Id"].as_str())
        .map(|id| (id.to_owned(), short_id(id)))
        .collect())
}

pub fn stats(client: &Client, args: StatsArgs) -> Result<i32> {
    if args.no_stream {
        return stats_once(client, &args);
    }
    stats_stream(client, args)
}

/// `--no-stream`: one sample of each container (the engine takes two, a second apart, so
/// that the CPU figure means something), then the table.
fn stats_once(client: &Client, args: &StatsArgs) -> Result<i32> {
    let targets: Vec<(String, String)> = if args.containers.is_empty() {
        listed(client, args.all)?
    } else {
        args.containers
            .iter()
            .map(|c| (c.clone(), c.clone()))
            .collect()
    };
    let results: Vec<Result<Entry, ClientError>> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(key, label)| {
                s.spawn(move || {
                    let path = format!("/containers/{key}/stats?stream=0");
                    let v = client.get(&path)?.json()?;
                    Ok(Entry::from_sample(label, &v))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ClientError::Protocol("stats thread failed".into())))
            })
            .collect()
    });
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(e) => entries.push(e),
            // A container listed a moment ago and gone since is simply not shown.
            Err(ClientError::Api { status: 404, .. }) if args.containers.is_empty() => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(StatusError::new(1, errors.join("\n")).into());
    }
    print!("{}", render(args, &entries)?);
    Ok(0)
}

/// What the streaming display knows of each container.
#[derive(Default)]
struct Watched {
    /// Keyed by what the request names (ID or the user's name), in display order.
    order: Vec<String>,
    entries: HashMap<String, Entry>,
    /// Containers whose stream is open.
    watching: std::collections::HashSet<String>,
    /// Streams that ended (the container was removed) or failed.
    ended: HashMap<String, Option<String>>,
}

fn watch(client: Client, key: String, label: String, state: Arc<Mutex<Watched>>) {
    std::thread::spawn(move || {
        let failure = (|| -> Result<(), ClientError> {
            let mut resp = client.send(
                "GET",
                &format!("/containers/{key}/stats?stream=1"),
                Payload::None,
            )?;
            loop {
                let line = resp.body().read_line_bytes()?;
                if line.is_empty() {
                    return Ok(());
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    let e = Entry::from_sample(&label, &v);
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.entries.insert(key.clone(), e);
                }
            }
        })()
        .err()
        .map(|e| e.to_string());
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.watching.remove(&key);
        st.ended.insert(key, failure);
    });
}

fn stats_stream(client: &Client, args: StatsArgs) -> Result<i32> {
    let state = Arc::new(Mutex::new(Watched::default()));
    let named = !args.containers.is_empty();
    let add = |key: &str, label: &str| {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.order.iter().any(|k| k == key) {
            st.order.push(key.to_owned());
        }
        // A stopped container's stream goes on (with empty samples) until it is removed, so
        // one that shows up again already has one.
        if st.watching.insert(key.to_owned()) {
            st.entries.entry(key.to_owned()).or_insert(Entry {
                container: label.to_owned(),
                invalid: true,
                ..Default::default()
            });
            drop(st);
            watch(
                client.clone(),
                key.to_owned(),
                label.to_owned(),
                state.clone(),
            );
        }
    };
    if named {
        for c in &args.containers {
            add(c, c);
        }
    }
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    if terminal {
        // Docker clears the screen once, then redraws in place.
        write!(out, "\x1b[2J")?;
    }
    let mut first = true;
    loop {
        if !named {
            // New containers join, removed (or, without -a, stopped) ones leave.
            let now = listed(client, args.all)?;
            for (id, label) in &now {
                add(id, label);
            }
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let keep: Vec<String> = st
                .order
                .iter()
                .filter(|k| now.iter().any(|(id, _)| id == *k))
                .cloned()
                .collect();
            st.order = keep;
        }
        // Give the streams a moment to bring their first sample.
        if first {
            std::thread::sleep(Duration::from_millis(500));
            first = false;
        }
        let (entries, errors, all_ended) = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let ended: Vec<(String, Option<String>)> = st.ended.drain().collect();
            let mut errors = Vec::new();
            for (key, failure) in ended {
                match failure {
                    Some(e) if named => errors.push(e),
                    _ => {}
                }
                st.order.retain(|k| *k != key);
                st.entries.remove(&key);
            }
            let entries: Vec<Entry> = st
                .order
                .iter()
                .filter_map(|k| st.entries.get(k).cloned())
                .collect();
            (entries, errors, named && st.order.is_empty())
        };
        if !errors.is_empty() {
            return Err(StatusError::new(1, errors.join("\n")).into());
        }
        let table = render(&args, &entries)?;
        if terminal {
            let mut frame = String::from("\x1b[H");
            for line in table.lines() {
                frame.push_str(line);
                frame.push_str("\x1b[K\n");
            }
            frame.push_str("\x1b[J");
            write!(out, "{frame}")?;
        } else {
            write!(out, "{table}")?;
        }
        out.flush()?;
        if all_ended {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// A flag value docker would refuse while parsing flags (exit 125).
fn flag_error(flag: &str, value: &str, why: &str) -> anyhow::Error {
    StatusError::new(
        crate::EXIT_ENGINE,
        format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}"),
    )
    .into()
}

fn restart_policy(text: &str) -> Result<Value> {
    let (name, count) = match text.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid restart policy format: maximum retry count must be an integer"
                )
            })?,
        ),
        None => (text, 0),
    };
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// The update request for `args` (only what the flags set; docker sends zero for the rest).
pub fn update_body(args: &UpdateArgs) -> Result<Value> {
    let mut body = serde_json::Map::new();
    if let Some(m) = &args.memory {
        let n = berth_core::humanize::parse_ram_bytes(m)
            .ok_or_else(|| flag_error("-m, --memory", m, &format!("invalid size: '{m}'")))?;
        body.insert("Memory".into(), json!(n));
    }
    if let Some(s) = &args.memory_swap {
        let n = if s == "-1" {
            -1
        } else {
            berth_core::humanize::parse_ram_bytes(s)
                .ok_or_else(|| flag_error("--memory-swap", s, &format!("invalid size: '{s}'")))?
        };
        body.insert("MemorySwap".into(), json!(n));
    }
    if let Some(c) = &args.cpus {
        let n: f64 = c
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| flag_error("--cpus", c, "failed to parse as a number"))?;
        body.insert("NanoCpus".into(), json!((n * 1e9).round() as i64));
    }
    if let Some(n) = args.cpu_shares {
        body.insert("CpuShares".into(), json!(n));
    }
    if let Some(n) = args.cpu_period {
        body.insert("CpuPeriod".into(), json!(n));
    }
    if let Some(n) = args.cpu_quota {
        body.insert("CpuQuota".into(), json!(n));
    }
    if let Some(n) = args.pids_limit {
        body.insert("PidsLimit".into(), json!(n));
    }
    if let Some(r) = &args.restart {
        body.insert("RestartPolicy".into(), restart_policy(r)?);
    }
    if body.is_empty() {
        return Err(StatusError::new(
            1,
            "you must provide one or more flags when using this command".into(),
        )
        .into());
    }
    Ok(Value::Object(body))
}

pub fn update(client: &Client, args: UpdateArgs) -> Result<i32> {
    let body = update_body(&args)?;
    let mut failed = false;
    for c in &args.containers {
        match client.post(&format!("/containers/{c}/update"), Some(&body)) {
            Ok(r) => {
                for w in r.json()?["Warnings"].as_array().into_iter().flatten() {
                    eprintln!("WARNING: {}", w.as_str().unwrap_or(""));
                }
                println!("{c}");
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(bytes_size(52_428_800.0), "50MiB");
        assert_eq!(bytes_size(8_348_360_704.0), "7.775GiB");
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1023.0), "1023B");
        assert_eq!(human_size(1_296.0, 3), "1.3kB");
        assert_eq!(human_size(0.0, 3), "0B");
        assert_eq!(human_size(4_259_840.0, 4), "4.26MB");
        assert_eq!(human_size(999_700.0, 3), "1e+03kB");
        assert_eq!(go_g(0.000012345, 4), "1.234e-05");
    }

    #[test]
    fn figures_as_the_docker_cli_computes_them() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 60 << 20, "limit": 1u64 << 30, "stats": {"inactive_file": 10 << 20}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 8192}]},
            "pids_stats": {"current": 3},
        });
        let e = Entry::from_sample("web", &s);
        assert!((e.cpu_percent - 40.0).abs() < 1e-9, "{}", e.cpu_percent);
        assert_eq!(e.memory, (50u64 << 20) as f64);
        let row = e.row(true);
        assert_eq!(row["ID"], "0123456789ab");
        assert_eq!(row["Name"], "web");
        assert_eq!(row["CPUPerc"], "40.00%");
        assert_eq!(row["MemUsage"], "50MiB / 1GiB");
        assert_eq!(row["MemPerc"], "4.88%");
        assert_eq!(row["NetIO"], "1kB / 2kB");
        assert_eq!(row["BlockIO"], "4.1kB / 8.19kB");
        assert_eq!(row["PIDs"], "3");
        // v1: total_inactive_file is what counts.
        let v1 = json!({"memory_stats": {"usage": 100, "limit": 200,
            "stats": {"total_inactive_file": 40, "inactive_file": 10}}});
        assert_eq!(Entry::from_sample("x", &v1).memory, 60.0);
        // A stopped container's empty sample.
        let empty = json!({"id": "ab", "name": "/x", "read": "0001-01-01T00:00:00Z"});
        assert_eq!(
            Entry::from_sample("x", &empty).row(true)["MemUsage"],
            "0B / 0B"
        );
    }

    #[test]
    fn the_table_is_dockers() {
        let args = StatsArgs {
            all: false,
            no_stream: true,
            no_trunc: false,
            format: None,
            containers: vec![],
        };
        let e = Entry {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            ..Default::default()
        };
        let t = render(&args, &[e]).unwrap();
        let header = t.lines().next().unwrap();
        assert_eq!(
            header,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS"
        );
    }

    #[test]
    fn update_bodies() {
        let mut args = UpdateArgs {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpus: Some("1.5".into()),
            cpu_shares: None,
            cpu_period: None,
            cpu_quota: None,
            pids_limit: Some(-1),
            restart: Some("on-failure:3".into()),
            containers: vec!["x".into()],
        };
        let b = update_body(&args).unwrap();
        assert_eq!(b["Memory"], 64 << 20);
        assert_eq!(b["MemorySwap"], -1);
        assert_eq!(b["NanoCpus"], 1_500_000_000i64);
        assert_eq!(b["PidsLimit"], -1);
        assert_eq!(b["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(b["RestartPolicy"]["MaximumRetryCount"], 3);
        args.memory = Some("lots".into());
        assert!(update_body(&args).is_err());
        let none = UpdateArgs {
            memory: None,
            memory_swap: None,
            cpus: None,
            cpu_shares: None,
            cpu_period: None,
            cpu_quota: None,
            pids_limit: None,
            restart: None,
            containers: vec!["x".into()],
        };
        assert!(update_body(&none).is_err());
    }
}
