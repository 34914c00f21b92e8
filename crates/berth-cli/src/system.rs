//! System commands: version, info, events; `system check`'s flags (the check itself runs
//! in the berth binary, which can open a root offline).

use anyhow::Result;
use clap::Args;

use crate::client::{self, with_query};
use crate::{connect, format};

// `berth system check [--repair] [--deep] [--root DIR]` (a plain comment: a doc comment would
// replace the subcommand's help text, as its augmentation is deferred and comes last).
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Put right what can be (only with the daemon stopped: the root is locked meanwhile).
    #[arg(long)]
    pub repair: bool,
    /// Also read every blob and verify its digest.
    #[arg(long)]
    pub deep: bool,
    /// The root to check [default: $BERTH_ROOT, else the daemon's default root].
    #[arg(long, env = "BERTH_ROOT")]
    pub root: Option<std::path::PathBuf>,
    /// Print the problems as JSON (the API's CheckReport) instead of lines.
    #[arg(long)]
    pub json: bool,
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Adds the Go field names docker's templates use where the API's JSON differs.
fn docker_template_names(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        if let Some(x) = o.get("ApiVersion").cloned() {
            o.insert("APIVersion".into(), x);
        }
        if let Some(x) = o.get("MinAPIVersion").cloned() {
            o.insert("MinAPIVersion".into(), x);
        }
    }
}

pub fn version(target: &crate::Target, format: Option<String>) -> Result<i32> {
    let client_part = serde_json::json!({
        "Platform": {"Name": "berth"},
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": client::API_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
    });
    let server = connect(target).and_then(|c| Ok(c.get("/version")?.json()?));
    let mut data = serde_json::json!({ "Client": client_part });
    let err = match server {
        Ok(mut s) => {
            docker_template_names(&mut s);
            data["Server"] = s;
            None
        }
        Err(e) => Some(e),
    };
    match format {
        // docker exits 64 (EX_USAGE) for a template it cannot parse.
        Some(f) => println!(
            "{}",
            format::render(&f, &data).map_err(|e| crate::StatusError::new(64, e))?
        ),
        None => {
            let c = &data["Client"];
            println!("Client:");
            println!(
                " Version:           {}",
                c["Version"].as_str().unwrap_or("")
            );
            println!(" API version:       {}", client::API_VERSION);
            println!(" OS/Arch:           linux/{}", go_arch());
            if let Some(s) = data.get("Server") {
                let s_str = |k: &str| s[k].as_str().unwrap_or("").to_owned();
                println!();
                println!(
                    "Server: {}",
                    s["Platform"]["Name"].as_str().unwrap_or("berth")
                );
                println!(" Engine:");
                println!("  Version:          {}", s_str("Version"));
                println!(
                    "  API version:      {} (minimum version {})",
                    s_str("ApiVersion"),
                    s_str("MinAPIVersion")
                );
                println!("  OS/Arch:          {}/{}", s_str("Os"), s_str("Arch"));
                println!("  Kernel Version:   {}", s_str("KernelVersion"));
                println!(
                    "  Experimental:     {}",
                    s["Experimental"].as_bool().unwrap_or(false)
                );
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

fn human_bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
        + units[i]
}

pub fn info(target: &crate::Target, format: Option<String>) -> Result<i32> {
    let s = connect(target)?.get("/info")?.json()?;
    if let Some(f) = format {
        println!("{}", format::render(&f, &s).map_err(anyhow::Error::msg)?);
        return Ok(0);
    }
    let g = |k: &str| match &s[k] {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!();
    println!("Server:");
    println!(" Containers: {}", g("Containers"));
    println!("  Running: {}", g("ContainersRunning"));
    println!("  Paused: {}", g("ContainersPaused"));
    println!("  Stopped: {}", g("ContainersStopped"));
    println!(" Images: {}", g("Images"));
    println!(" Server Version: {}", g("ServerVersion"));
    println!(" Storage Driver: {}", g("Driver"));
    println!(" Logging Driver: {}", g("LoggingDriver"));
    println!(" Cgroup Driver: {}", g("CgroupDriver"));
    println!(" Cgroup Version: {}", g("CgroupVersion"));
    println!(" Default Runtime: {}", g("DefaultRuntime"));
    println!(" Kernel Version: {}", g("KernelVersion"));
    println!(" Operating System: {}", g("OperatingSystem"));
    println!(" OSType: {}", g("OSType"));
    println!(" Architecture: {}", g("Architecture"));
    println!(" CPUs: {}", g("NCPU"));
    println!(
        " Total Memory: {}",
        human_bytes(s["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(" Name: {}", g("Name"));
    println!(" ID: {}", g("ID"));
    println!(" Docker Root Dir: {}", g("DockerRootDir"));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Docker's event line: `TIME TYPE ACTION ID (k=v, …)`.
fn event_line(e: &serde_json::Value) -> String {
    let nanos = e["timeNano"].as_i64().unwrap_or(0);
    let time =
        chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string())
            .unwrap_or_default();
    let actor = &e["Actor"];
    let attrs: Vec<String> = actor["Attributes"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let mut line = format!(
        "{time} {} {} {}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        actor["ID"].as_str().unwrap_or("")
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

pub fn events(target: &crate::Target, args: EventsArgs) -> Result<i32> {
    let client = connect(target)?;
    let path = with_query(
        "/events",
        &[
            ("since", args.since.clone().unwrap_or_default()),
            ("until", args.until.clone().unwrap_or_default()),
            ("filters", crate::containers::filters_json(&args.filter)?),
        ],
    );
    let mut resp = client.send("GET", &path, client::Payload::None)?;
    let template = args.format.as_deref().map(format::Format::parse);
    loop {
        let line = resp.body().read_line_bytes()?;
        if line.is_empty() {
            return Ok(0);
        }
        let Ok(e) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        match &template {
            Some(t) => println!(
                "{}",
                format::render(&t.template, &e).map_err(anyhow::Error::msg)?
            ),
            None => println!("{}", event_line(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::client::API_VERSION as _;

    #[test]
    fn bytes_like_docker() {
        assert_eq!(human_bytes(24_000_000_000.0), "22.3517GiB");
        assert_eq!(human_bytes(1024.0), "1KiB");
    }
}
