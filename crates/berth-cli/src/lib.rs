//! `berth`'s command line. It speaks Docker's dialect and talks only to the engine's API
//! (never to the engine directly), so it can drive a real Docker daemon too.
//!
//! When nothing listens on the socket and the user is root, the CLI starts the daemon itself
//! (detached, logging to /var/log/berth.log) and waits for it, so `berth run …` needs no set-up.

pub mod client;
pub mod format;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use client::{Client, ClientError};

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_DAEMON_LOG: &str = "/var/log/berth.log";

/// Exit status for errors of the engine or the CLI itself, as Docker's.
pub const EXIT_ENGINE: i32 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A container engine that speaks Docker's dialect"
)]
pub struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long, global = true, env = "BERTH_HOST", default_value = DEFAULT_HOST)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the berth version information.
    Version {
        /// Format output using a Go template.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Display system-wide information.
    Info {
        /// Format output using a Go template.
        #[arg(short, long)]
        format: Option<String>,
    },
}

/// The socket path of a `unix://PATH` host.
pub fn socket_path(host: &str) -> Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => anyhow::bail!("unsupported host {host:?}: use unix://PATH"),
    }
}

/// Starts `berth daemon` in its own session, logging to the daemon log, and waits (10 s at
/// most) until it answers on `socket`.
fn start_daemon(host: &str, socket: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("find the berth binary")?;
    let root = std::env::var_os("BERTH_ROOT").unwrap_or_else(|| DEFAULT_ROOT.into());
    let log_path =
        std::env::var_os("BERTH_DAEMON_LOG").unwrap_or_else(|| DEFAULT_DAEMON_LOG.into());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open the daemon log {}", Path::new(&log_path).display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["daemon", "-H", host, "--root"])
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and only affects the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("start the berth daemon")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the berth daemon exited ({status}) before it listened; see {}",
                Path::new(&log_path).display()
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the berth daemon did not start listening on {} within 10s",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A client for `host`, starting the daemon when nobody listens and we may.
pub fn connect(host: &str) -> Result<Client> {
    let socket = socket_path(host)?;
    let client = Client::new(socket.clone());
    match client.connect() {
        Ok(_) => Ok(client),
        Err(e) => {
            if nix::unistd::geteuid().is_root() && std::env::var_os("BERTH_NO_AUTOSTART").is_none()
            {
                start_daemon(host, &socket)?;
                Ok(client)
            } else {
                Err(e.into())
            }
        }
    }
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

fn version(cli_host: &str, format: Option<String>) -> Result<i32> {
    let client_part = serde_json::json!({
        "Platform": {"Name": "berth"},
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": client::API_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
    });
    let server = connect(cli_host).and_then(|c| Ok(c.get("/version")?.json()?));
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
        Some(f) => println!("{}", format::render(&f, &data).map_err(anyhow::Error::msg)?),
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

fn info(cli_host: &str, format: Option<String>) -> Result<i32> {
    let s = connect(cli_host)?.get("/info")?.json()?;
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

/// Runs the CLI; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Version { format } => version(&cli.host, format),
        Command::Info { format } => info(&cli.host, format),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<ClientError>() {
                Some(ce) => eprintln!("{ce}"),
                None => eprintln!("berth: {e:#}"),
            }
            EXIT_ENGINE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_like_docker() {
        assert_eq!(human_bytes(24_000_000_000.0), "22.3517GiB");
        assert_eq!(human_bytes(1024.0), "1KiB");
    }
}
