//! `berth compose`'s command line: the project flags every command shares, and one
//! function per command. Commands that need the daemon get a client from the caller (the
//! berth CLI, which knows `-H`, TLS and when to start a daemon); `config` needs none.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use berth_client::Client;
use clap::{Args, Subcommand};

use crate::load::{self, Loaded, Options};
use crate::{cmd, hash, yaml_out};

// Flags of every compose command (`docker compose [OPTIONS] COMMAND`); a plain comment, as a
// doc comment would become the help text of `compose` (its augmentation is deferred, so last).
#[derive(Args, Debug, Clone)]
pub struct ComposeArgs {
    /// Compose configuration files.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first compose file).
    #[arg(long = "project-directory")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file.
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Specify a profile to enable.
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Control max parallelism, -1 for unlimited.
    #[arg(long, default_value_t = -1)]
    pub parallel: i64,
    /// Control when to print ANSI control characters ("never"|"always"|"auto").
    #[arg(long, default_value = "auto")]
    pub ansi: String,
    /// Set type of progress output (auto, tty, plain, json, quiet).
    #[arg(long)]
    pub progress: Option<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Subcommand, Debug, Clone)]
#[command(defer = true)]
pub enum ComposeCommand {
    /// Parse, resolve and render compose file in canonical format.
    Config(ConfigArgs),
    /// Create and start containers.
    Up(cmd::up::UpArgs),
    /// Stop and remove containers, networks.
    Down(cmd::down::DownArgs),
    /// List containers.
    Ps(cmd::ps::PsArgs),
    /// View output from containers.
    Logs(cmd::logs::LogsArgs),
    /// Creates containers for a service.
    Create(cmd::up::CreateArgs),
    /// Start services.
    Start(cmd::up::ServicesArgs),
    /// Stop services.
    Stop(cmd::lifecycle::StopArgs),
    /// Restart service containers.
    Restart(cmd::lifecycle::StopArgs),
    /// Force stop service containers.
    Kill(cmd::lifecycle::KillArgs),
    /// Removes stopped service containers.
    Rm(cmd::lifecycle::RmArgs),
    /// Pause services.
    Pause(cmd::up::ServicesArgs),
    /// Unpause services.
    Unpause(cmd::up::ServicesArgs),
    /// Execute a command in a running container.
    Exec(cmd::exec::ExecArgs),
    /// Run a one-off command on a service.
    Run(cmd::exec::RunArgs),
    /// Pull service images.
    Pull(cmd::images::PullArgs),
    /// Push service images.
    Push(cmd::up::ServicesArgs),
    /// Build or rebuild services.
    Build(cmd::images::BuildArgs),
    /// List images used by the created containers.
    Images(cmd::up::ServicesArgs),
    /// Display the running processes.
    Top(cmd::up::ServicesArgs),
    /// Print the public port for a port binding.
    Port(cmd::ps::PortArgs),
    /// List running compose projects.
    Ls(cmd::ps::LsArgs),
    /// Block until containers of all (or specified) services stop.
    Wait(cmd::up::ServicesArgs),
    /// Scale services.
    Scale(cmd::up::ScaleArgs),
    /// Copy files/folders between a service container and the local filesystem.
    Cp(cmd::exec::CpArgs),
    /// Receive real time events from containers.
    Events(cmd::logs::EventsArgs),
    /// Show the Docker Compose version information.
    Version(VersionArgs),
}

#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Format the output. Values: [pretty | json].
    #[arg(short, long, default_value = "pretty")]
    pub format: String,
    /// Shows only Compose's version number.
    #[arg(long)]
    pub short: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Format the output. Values: [yaml | json].
    #[arg(long, default_value = "yaml")]
    pub format: String,
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line.
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    pub images: bool,
    /// Print the service config hash, one per line ("*" for all services).
    #[arg(long)]
    pub hash: Option<String>,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub quiet: bool,
    /// Save to file (default to stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Service names.
    pub service_names: Vec<String>,
}

/// Loads the project the flags describe, printing the loader's warnings.
pub fn load_project(args: &ComposeArgs) -> Result<Loaded> {
    let cwd = std::env::current_dir().context("the working directory")?;
    let opts = Options {
        files: args.files.clone(),
        project_name: args.project_name.clone(),
        project_directory: args.project_directory.clone(),
        env_files: args.env_files.clone(),
        profiles: args.profiles.clone(),
        environment: std::env::vars().collect(),
        cwd,
    };
    let loaded = load::load(&opts).map_err(|e| anyhow::anyhow!(e.message))?;
    for w in &loaded.warnings {
        eprintln!("WARN[0000] {w}");
    }
    Ok(loaded)
}

/// What compose takes from the command line program that runs it: the connection (`-H`,
/// TLS, starting a daemon) and `cp`'s copying, which are the CLI's and not repeated here.
pub trait Host {
    /// A client for the daemon.
    fn connect(&self) -> Result<Client>;
    /// `docker cp SRC DEST`, one side `CONTAINER:PATH`.
    fn copy(
        &self,
        client: &Client,
        src: &str,
        dest: &str,
        archive: bool,
        follow_link: bool,
    ) -> Result<i32>;
}

/// Runs a compose command.
pub fn run(args: ComposeArgs, host: &dyn Host) -> Result<i32> {
    match &args.command {
        ComposeCommand::Config(c) => config(&args, c),
        ComposeCommand::Version(v) => version(v),
        ComposeCommand::Ls(l) => cmd::ps::ls(&host.connect()?, l),
        _ => cmd::run(&args, host),
    }
}

/// The version berth compose reports: berth's, and the Compose release it follows.
fn version(v: &VersionArgs) -> Result<i32> {
    let own = env!("CARGO_PKG_VERSION");
    if v.short {
        println!("{own}");
    } else if v.format == "json" {
        println!("{{\"version\":\"{own}\"}}");
    } else {
        println!(
            "berth compose version {own} (compatible with Docker Compose {})",
            crate::naming::COMPOSE_VERSION
        );
    }
    Ok(0)
}

fn config(args: &ComposeArgs, c: &ConfigArgs) -> Result<i32> {
    let loaded = load_project(args)?;
    let mut project = loaded.project;
    if !c.service_names.is_empty() {
        for s in &c.service_names {
            if !project.services.contains_key(s) {
                anyhow::bail!("no such service: {s}");
            }
        }
        project.services.retain(|k, _| c.service_names.contains(k));
    }
    if c.quiet {
        return Ok(0);
    }
    let mut text = String::new();
    if c.services {
        for s in project.services.keys() {
            text.push_str(&format!("{s}\n"));
        }
    } else if c.volumes {
        for v in project.volumes.keys() {
            text.push_str(&format!("{v}\n"));
        }
    } else if c.networks {
        for n in project.networks.keys() {
            text.push_str(&format!("{n}\n"));
        }
    } else if c.profiles {
        let mut all: Vec<&String> = project
            .services
            .values()
            .chain(project.disabled.values())
            .flat_map(|s| s.profiles.iter())
            .collect();
        all.sort();
        all.dedup();
        for p in all {
            text.push_str(&format!("{p}\n"));
        }
    } else if c.images {
        for (name, s) in &project.services {
            text.push_str(&format!(
                "{}\n",
                crate::naming::image_name(&project.name, name, s)
            ));
        }
    } else if let Some(which) = &c.hash {
        let wanted: Vec<&str> = which.split(',').map(str::trim).collect();
        for (name, s) in &project.services {
            if wanted.contains(&"*") || wanted.contains(&name.as_str()) {
                text.push_str(&format!("{name} {}\n", hash::service_hash(s)));
            }
        }
    } else {
        let json = project.to_config_json();
        match c.format.as_str() {
            "json" => text = json,
            "yaml" => text = yaml_out::from_json(&json)?,
            other => anyhow::bail!("unsupported format {other:?}"),
        }
    }
    match &c.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(0)
}
