//! `berth`'s command line. It speaks Docker's dialect and talks only to the engine's API
//! (never to the engine directly), so it can drive a real Docker daemon too.
//!
//! The daemon is `-H`, else `BERTH_HOST`, else `DOCKER_HOST`, else the default socket
//! ([`Target`]); a `tcp://` one is reached over plain TCP or, with Docker's TLS flags or
//! `DOCKER_TLS_VERIFY`, over TLS ([`tls_flags`], [`conn`]).
//!
//! When nothing listens on the (unix) socket and the user is root, the CLI starts the daemon
//! itself (detached, logging to /var/log/berth.log) and waits for it, so `berth run …` needs
//! no set-up. It never does so for a tcp host.

pub mod archive;
// The API client lives in its own crate (compose shares it); these paths stay as they were.
pub use berth_client::{client, conn, progress, stream, table};
pub mod build;
pub mod containers;
pub mod create_opts;
pub mod disk;
pub mod flag_values;
pub mod format;
pub mod images;
pub mod lint;
pub mod networks;
pub mod refused_opts;
pub mod registry;
pub mod stats;
pub mod system;
pub mod tls_flags;
pub mod volumes;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_core::host::Host;
use clap::{Parser, Subcommand};

use client::{Client, ClientError};
use containers as ct;
use tls_flags::{TlsFlags, TlsMode};

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_DAEMON_LOG: &str = "/var/log/berth.log";

/// Exit status for errors of the engine or the CLI itself in `run` and `create`, and for bad
/// flags, as Docker's.
pub const EXIT_ENGINE: i32 = 125;

/// An error that ends the CLI with a given exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

impl StatusError {
    pub fn new(code: i32, message: String) -> StatusError {
        StatusError { code, message }
    }
}

/// The first 12 hex digits of an ID, as docker shows them.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A container engine that speaks Docker's dialect"
)]
pub struct Cli {
    /// Daemon socket to connect to: unix:///PATH or tcp://HOST[:PORT] (default: $BERTH_HOST,
    /// else $DOCKER_HOST, else unix:///run/berth/berth.sock).
    #[arg(short = 'H', long, global = true)]
    pub host: Option<String>,
    #[command(flatten)]
    pub tls: TlsFlags,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create and run a new container from an image.
    Run(ct::RunArgs),
    /// Execute a command in a running container.
    Exec(ct::ExecArgs),
    /// List containers.
    Ps(ct::PsArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Create a new container.
    Create(ct::CreateArgs),
    /// Start one or more stopped containers.
    Start(ct::StartArgs),
    /// Stop one or more running containers.
    Stop(ct::StopArgs),
    /// Restart one or more containers.
    Restart(ct::StopArgs),
    /// Kill one or more running containers.
    Kill(ct::KillArgs),
    /// Remove one or more containers.
    Rm(ct::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(ct::ContainersArgs),
    /// Rename a container.
    Rename(ct::RenameArgs),
    /// Pause all processes within one or more containers.
    Pause(ct::ContainersArgs),
    /// Unpause all processes within one or more containers.
    Unpause(ct::ContainersArgs),
    /// Fetch the logs of a container.
    Logs(ct::LogsArgs),
    /// Return low-level information on berth objects.
    Inspect(ct::InspectArgs),
    /// Display the running processes of a container.
    Top(ct::TopArgs),
    /// List port mappings or a specific mapping for the container.
    Port(ct::PortArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(ct::AttachArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(archive::CpArgs),
    /// Create a new image from a container's changes.
    Commit(archive::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(archive::DiffArgs),
    /// Export a container's filesystem as a tar archive.
    Export(archive::ExportArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(stats::StatsArgs),
    /// Update configuration of one or more containers.
    Update(stats::UpdateArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Download an image from a registry.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Manage builds.
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Log in to a registry.
    Login(registry::LoginArgs),
    /// Log out from a registry.
    Logout(registry::LogoutArgs),
    /// Manage image manifests and manifest lists.
    #[command(subcommand)]
    Manifest(registry::ManifestCommand),
    /// Get real time events from the server.
    Events(system::EventsArgs),
    /// Check a Dockerfile against best practices (no daemon needed).
    Lint(lint::LintArgs),
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
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Manage berth.
    #[command(subcommand)]
    System(SystemCommand),
    /// Define and run multi-container applications (Docker Compose).
    Compose(berth_compose::cli::ComposeArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Create and run a new container from an image.
    Run(ct::RunArgs),
    /// Create a new container.
    Create(ct::CreateArgs),
    /// Execute a command in a running container.
    Exec(ct::ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(ct::PsArgs),
    /// Start one or more stopped containers.
    Start(ct::StartArgs),
    /// Stop one or more running containers.
    Stop(ct::StopArgs),
    /// Restart one or more containers.
    Restart(ct::StopArgs),
    /// Kill one or more running containers.
    Kill(ct::KillArgs),
    /// Remove one or more containers.
    #[command(visible_alias = "remove")]
    Rm(ct::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(ct::ContainersArgs),
    /// Rename a container.
    Rename(ct::RenameArgs),
    /// Pause all processes within one or more containers.
    Pause(ct::ContainersArgs),
    /// Unpause all processes within one or more containers.
    Unpause(ct::ContainersArgs),
    /// Fetch the logs of a container.
    Logs(ct::LogsArgs),
    /// Display detailed information on one or more containers.
    Inspect(ct::InspectArgs),
    /// Display the running processes of a container.
    Top(ct::TopArgs),
    /// List port mappings or a specific mapping for the container.
    Port(ct::PortArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(ct::AttachArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(archive::CpArgs),
    /// Create a new image from a container's changes.
    Commit(archive::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(archive::DiffArgs),
    /// Export a container's filesystem as a tar archive.
    Export(archive::ExportArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(stats::StatsArgs),
    /// Update configuration of one or more containers.
    Update(stats::UpdateArgs),
    /// Remove all stopped containers.
    Prune(disk::ContainerPruneArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_aliases = ["images", "list"])]
    Ls(images::ImagesArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Remove one or more images.
    #[command(visible_aliases = ["rmi", "remove"])]
    Rm(images::RmiArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive.
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Display detailed information on one or more images.
    Inspect(images::ImageInspectArgs),
    /// Remove unused images.
    Prune(images::PruneArgs),
    /// Download an image from a registry.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Build an image from a Dockerfile.
    Build(Box<build::BuildArgs>),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum SystemCommand {
    /// Display system-wide information.
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Get real time events from the server.
    Events(system::EventsArgs),
    /// Show berth disk usage.
    Df(disk::DfArgs),
    /// Remove unused data.
    Prune(disk::SystemPruneArgs),
    /// Check the store for problems (as fsck does), offline or through the running daemon.
    Check(system::CheckArgs),
}

/// The daemon the CLI talks to, and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address as given (`-H`, `BERTH_HOST`, `DOCKER_HOST`) or the default.
    pub host: String,
    pub tls: TlsFlags,
}

impl Target {
    /// `-H` when given, else `BERTH_HOST`, else `DOCKER_HOST` (as the docker CLI reads it),
    /// else the default socket; an empty variable counts as unset.
    pub fn new(flag: Option<String>, tls: TlsFlags) -> Target {
        let env = |name: &str| std::env::var(name).ok();
        Target {
            host: pick_host(flag, &env),
            tls,
        }
    }
}

fn pick_host(flag: Option<String>, env: tls_flags::Env<'_>) -> String {
    flag.or_else(|| env("BERTH_HOST").filter(|h| !h.is_empty()))
        .or_else(|| env("DOCKER_HOST").filter(|h| !h.is_empty()))
        .unwrap_or_else(default_host)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A rootless daemon's socket for this user (`$XDG_RUNTIME_DIR/berth/berth.sock`) as a host.
fn rootless_host() -> Option<String> {
    berth_core::userdirs::rootless_socket().map(|p| format!("unix://{}", p.display()))
}

/// The daemon when nothing names one: root's is the system daemon; another user's is their
/// rootless daemon when it runs, else the system daemon when it runs and its socket lets them
/// in (mode 0660, group `berth`), else (to be started) their rootless one.
fn default_host() -> String {
    if is_root() {
        return DEFAULT_HOST.to_owned();
    }
    let rootless = berth_core::userdirs::rootless_socket();
    let system = Path::new(DEFAULT_HOST.strip_prefix("unix://").unwrap_or(DEFAULT_HOST));
    user_host(rootless.as_deref(), system, |p| {
        nix::unistd::access(
            p,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
        )
        .is_ok()
    })
}

/// [`default_host`]'s choice for a user, given their rootless socket, the system's, and
/// whether they may connect to a socket that exists.
fn user_host(rootless: Option<&Path>, system: &Path, usable: impl Fn(&Path) -> bool) -> String {
    let unix = |p: &Path| format!("unix://{}", p.display());
    match rootless {
        Some(r) if r.exists() => unix(r),
        _ if system.exists() && usable(system) => unix(system),
        Some(r) => unix(r),
        None => unix(system),
    }
}

/// The client's TLS configuration from the flags (docker's wording for a file it cannot use).
fn client_tls(flags: &TlsFlags, mode: TlsMode) -> Result<rustls::ClientConfig> {
    let files = flags.files();
    let check = match mode {
        TlsMode::Verify => berth_tls::ServerCheck::Verify,
        _ => berth_tls::ServerCheck::Skip,
    };
    berth_tls::client_config(&files.ca, files.client_identity(), check)
        .map_err(|e| anyhow::anyhow!("unable to resolve docker endpoint: {e}"))
}

/// Starts `berth daemon` in its own session, logging to the daemon log, and waits (10 s at
/// most) until it answers on `socket`.
fn start_daemon(host: &str, socket: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("find the berth binary")?;
    let default_root = if is_root() {
        Some(DEFAULT_ROOT.into())
    } else {
        berth_core::userdirs::rootless_root()
    };
    let root = std::env::var_os("BERTH_ROOT")
        .map(std::path::PathBuf::from)
        .or(default_root)
        .context("no root for the berth daemon: set BERTH_ROOT")?;
    // A live daemon on this root (serving another socket) must not get a twin.
    if let Some(pid) = live_daemon(Path::new(&root)) {
        anyhow::bail!(
            "Cannot connect to the berth daemon at {host}: the daemon of {} (pid {pid}) listens elsewhere; point BERTH_HOST or -H at its socket",
            Path::new(&root).display()
        );
    }
    // A rootless daemon logs beside its state (the system log directory is root's).
    let log_path = std::env::var_os("BERTH_DAEMON_LOG").unwrap_or_else(|| {
        if is_root() {
            DEFAULT_DAEMON_LOG.into()
        } else {
            std::fs::create_dir_all(&root).ok();
            root.join("daemon.log").into_os_string()
        }
    });
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

/// The pid in `root`'s `berth.pid`, when that process still runs.
fn live_daemon(root: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(root.join("berth.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
        .then_some(pid)
}

/// Whether the CLI may start a daemon for `host` when nobody listens there: unless
/// `BERTH_NO_AUTOSTART` says no, and only where it knows which root goes with the socket:
/// root's default socket (the default root), a user's rootless socket (their rootless root),
/// or another one with `BERTH_ROOT` given. A socket of a daemon that died is never taken over
/// by a daemon on the default root.
fn may_autostart(host: &str) -> bool {
    if std::env::var_os("BERTH_NO_AUTOSTART").is_some() {
        return false;
    }
    if std::env::var_os("BERTH_ROOT").is_some() {
        return true;
    }
    if is_root() {
        host == DEFAULT_HOST
    } else {
        rootless_host().is_some_and(|r| r == host)
    }
}

/// A client for the target's daemon when one answers there; never starts one.
pub fn connect_running(target: &Target) -> Result<Client> {
    let host = Host::parse(&target.host, target.tls.mode().enabled())
        .map_err(|e| anyhow::anyhow!("unable to resolve docker endpoint: {e}"))?;
    match host {
        Host::Unix(socket) => {
            let client = Client::unix(socket);
            client.connect()?;
            Ok(client)
        }
        Host::Tcp { .. } => connect(target),
    }
}

/// A client for the target's daemon. For a unix socket nobody listens on, the daemon is
/// started when we may; a tcp host is only ever connected to.
pub fn connect(target: &Target) -> Result<Client> {
    let mode = target.tls.mode();
    let host = Host::parse(&target.host, mode.enabled())
        .map_err(|e| anyhow::anyhow!("unable to resolve docker endpoint: {e}"))?;
    let socket = match &host {
        Host::Unix(socket) => socket.clone(),
        Host::Tcp { .. } => {
            let tls = match mode {
                TlsMode::Off => None,
                _ => Some(Arc::new(client_tls(&target.tls, mode)?)),
            };
            let endpoint = conn::Endpoint::new(&host, tls).map_err(anyhow::Error::msg)?;
            return Ok(Client::new(endpoint));
        }
    };
    let client = Client::unix(socket.clone());
    match client.connect() {
        Ok(_) => Ok(client),
        Err(e) => {
            if may_autostart(&target.host) {
                start_daemon(&target.host, &socket)?;
                Ok(client)
            } else {
                Err(e.into())
            }
        }
    }
}

/// What `berth compose` borrows from the CLI: its connection and `cp`.
struct ComposeHost<'a>(&'a Target);

impl berth_compose::cli::Host for ComposeHost<'_> {
    fn connect(&self) -> Result<Client> {
        connect(self.0)
    }

    fn copy(
        &self,
        client: &Client,
        src: &str,
        dest: &str,
        archive: bool,
        follow_link: bool,
    ) -> Result<i32> {
        archive::cp(
            client,
            archive::CpArgs {
                archive,
                follow_link,
                quiet: true,
                src: src.to_owned(),
                dest: dest.to_owned(),
            },
        )
    }
}

/// Runs the CLI; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let target = Target::new(cli.host.clone(), cli.tls.clone());
    // run and create report engine errors with 125, like docker; other commands with 1.
    let (engine_code, prefix) = match &cli.command {
        Command::Run(_)
        | Command::Create(_)
        | Command::Container(ContainerCommand::Run(_) | ContainerCommand::Create(_)) => {
            (EXIT_ENGINE, "berth: ")
        }
        _ => (1, ""),
    };
    let result = dispatch(&target, cli.command);
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(se) = e.downcast_ref::<StatusError>() {
                eprintln!("{prefix}{}", se.message);
                return se.code;
            }
            match e.downcast_ref::<ClientError>() {
                Some(ce) => eprintln!("{prefix}{ce}"),
                None => eprintln!("{prefix}{e:#}"),
            }
            engine_code
        }
    }
}

fn dispatch(target: &Target, command: Command) -> Result<i32> {
    let command = match command {
        Command::Version { format } => return system::version(target, format),
        Command::Info { format } | Command::System(SystemCommand::Info { format }) => {
            return system::info(target, format)
        }
        Command::Events(a) | Command::System(SystemCommand::Events(a)) => {
            return system::events(target, a)
        }
        // These talk to the registry (and the credentials file) themselves.
        Command::Logout(a) => return registry::logout(a),
        Command::Manifest(m) => return registry::manifest(m),
        // Reads a file; needs no daemon.
        Command::Lint(a) => return lint::run(a),
        // Connects only for the commands that need the daemon.
        Command::Compose(a) => return berth_compose::cli::run(a, &ComposeHost(target)),
        Command::System(SystemCommand::Df(a)) => return disk::df(&connect(target)?, a),
        Command::System(SystemCommand::Prune(a)) => {
            return disk::system_prune(&connect(target)?, a)
        }
        Command::System(SystemCommand::Check(_)) => {
            anyhow::bail!("system check runs in the berth binary (it opens the root itself)")
        }
        Command::Container(c) => match c {
            ContainerCommand::Run(a) => Command::Run(a),
            ContainerCommand::Create(a) => Command::Create(a),
            ContainerCommand::Exec(a) => Command::Exec(a),
            ContainerCommand::Ls(a) => Command::Ps(a),
            ContainerCommand::Start(a) => Command::Start(a),
            ContainerCommand::Stop(a) => Command::Stop(a),
            ContainerCommand::Restart(a) => Command::Restart(a),
            ContainerCommand::Kill(a) => Command::Kill(a),
            ContainerCommand::Rm(a) => Command::Rm(a),
            ContainerCommand::Wait(a) => Command::Wait(a),
            ContainerCommand::Rename(a) => Command::Rename(a),
            ContainerCommand::Pause(a) => Command::Pause(a),
            ContainerCommand::Unpause(a) => Command::Unpause(a),
            ContainerCommand::Logs(a) => Command::Logs(a),
            ContainerCommand::Inspect(mut a) => {
                a.kind = Some("container".into());
                Command::Inspect(a)
            }
            ContainerCommand::Top(a) => Command::Top(a),
            ContainerCommand::Port(a) => Command::Port(a),
            ContainerCommand::Attach(a) => Command::Attach(a),
            ContainerCommand::Cp(a) => Command::Cp(a),
            ContainerCommand::Commit(a) => Command::Commit(a),
            ContainerCommand::Diff(a) => Command::Diff(a),
            ContainerCommand::Export(a) => Command::Export(a),
            ContainerCommand::Stats(a) => Command::Stats(a),
            ContainerCommand::Update(a) => Command::Update(a),
            ContainerCommand::Prune(a) => return disk::container_prune(&connect(target)?, a),
        },
        Command::Image(i) => match i {
            ImageCommand::Ls(a) => Command::Images(a),
            ImageCommand::Import(a) => Command::Import(a),
            ImageCommand::Tag(a) => Command::Tag(a),
            ImageCommand::Rm(a) => Command::Rmi(a),
            ImageCommand::History(a) => Command::History(a),
            ImageCommand::Save(a) => Command::Save(a),
            ImageCommand::Load(a) => Command::Load(a),
            ImageCommand::Inspect(a) => return images::inspect(&connect(target)?, a),
            ImageCommand::Prune(a) => return images::prune(&connect(target)?, a),
            ImageCommand::Pull(a) => Command::Pull(a),
            ImageCommand::Push(a) => Command::Push(a),
            ImageCommand::Build(a) => Command::Build(*a),
        },
        other => other,
    };
    let client = connect(target)?;
    match command {
        Command::Run(a) => ct::run(&client, a),
        Command::Create(a) => ct::create(&client, a),
        Command::Exec(a) => ct::exec(&client, a),
        Command::Ps(a) => ct::ps(&client, a),
        Command::Start(a) => ct::start(&client, a),
        Command::Stop(a) => ct::stop(&client, a, false),
        Command::Restart(a) => ct::stop(&client, a, true),
        Command::Kill(a) => ct::kill(&client, a),
        Command::Rm(a) => ct::rm(&client, a),
        Command::Wait(a) => ct::wait(&client, a),
        Command::Rename(a) => ct::rename(&client, a),
        Command::Pause(a) => ct::pause(&client, a, true),
        Command::Unpause(a) => ct::pause(&client, a, false),
        Command::Logs(a) => ct::logs(&client, a),
        Command::Inspect(a) => ct::inspect(&client, a),
        Command::Top(a) => ct::top(&client, a),
        Command::Port(a) => ct::port(&client, a),
        Command::Attach(a) => ct::attach(&client, a),
        Command::Cp(a) => archive::cp(&client, a),
        Command::Commit(a) => archive::commit(&client, a),
        Command::Diff(a) => archive::diff(&client, a),
        Command::Export(a) => archive::export(&client, a),
        Command::Stats(a) => stats::stats(&client, a),
        Command::Update(a) => stats::update(&client, a),
        Command::Images(a) => images::images(&client, a),
        Command::Import(a) => images::import(&client, a),
        Command::Tag(a) => images::tag(&client, a),
        Command::Rmi(a) => images::rmi(&client, a),
        Command::History(a) => images::history(&client, a),
        Command::Save(a) => images::save(&client, a),
        Command::Load(a) => images::load(&client, a),
        Command::Volume(v) => volumes::run(&client, v),
        Command::Network(n) => networks::run(&client, n),
        Command::Pull(a) => registry::pull(&client, a),
        Command::Push(a) => registry::push(&client, a),
        Command::Login(a) => registry::login(&client, a),
        Command::Build(a) => build::build(&client, a),
        Command::Builder(b) => build::builder(&client, b),
        Command::Version { .. }
        | Command::Info { .. }
        | Command::Events(_)
        | Command::Logout(_)
        | Command::Manifest(_)
        | Command::Lint(_)
        | Command::Compose(_)
        | Command::Container(_)
        | Command::Image(_)
        | Command::System(_) => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap checks the whole command tree (conflicting short flags and the like).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Each subcommand's arguments are added only when it is the one run (`defer`), after its
    /// help text: a doc comment on an argument struct would then replace that text.
    #[test]
    fn deferred_arguments_keep_each_subcommands_help_text() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        assert!(cmd.get_subcommands().count() > 40);
        let changed = berth_testutil::help_texts_changed_by_defer(cmd);
        assert!(changed.is_empty(), "help text changed: {changed:#?}");
    }

    #[test]
    fn host_is_the_flag_then_berth_host_then_docker_host() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let both = env(&[
            ("BERTH_HOST", "unix:///b.sock"),
            ("DOCKER_HOST", "tcp://d:1"),
        ]);
        assert_eq!(pick_host(Some("tcp://f:1".into()), &both), "tcp://f:1");
        assert_eq!(pick_host(None, &both), "unix:///b.sock");
        let docker = env(&[("BERTH_HOST", ""), ("DOCKER_HOST", "tcp://d:1")]);
        assert_eq!(pick_host(None, &docker), "tcp://d:1");
        assert_eq!(pick_host(None, &env(&[("DOCKER_HOST", "")])), DEFAULT_HOST);
        assert_eq!(pick_host(None, &env(&[])), DEFAULT_HOST);
    }

    /// The TLS flags go anywhere on the line, as docker's global flags do.
    #[test]
    fn tls_flags_are_global() {
        let cli = Cli::try_parse_from([
            "berth",
            "ps",
            "-H",
            "tcp://127.0.0.1",
            "--tlsverify",
            "--tlscacert",
            "/c.pem",
        ])
        .unwrap();
        assert_eq!(cli.host.as_deref(), Some("tcp://127.0.0.1"));
        assert!(cli.tls.tlsverify);
        assert_eq!(cli.tls.tlscacert.as_deref(), Some(Path::new("/c.pem")));
    }

    /// A user's CLI takes their rootless daemon when it runs, the system daemon only when its
    /// socket lets them in, and else their (not yet started) rootless daemon.
    #[test]
    fn a_user_gets_the_system_daemon_only_when_its_socket_lets_them_in() {
        let dir = tempfile::tempdir().unwrap();
        let (mine, system) = (dir.path().join("mine.sock"), dir.path().join("system.sock"));
        let unix = |p: &Path| format!("unix://{}", p.display());
        // Neither runs: the rootless one, to be started.
        assert_eq!(user_host(Some(&mine), &system, |_| true), unix(&mine));
        std::fs::write(&system, "").unwrap();
        assert_eq!(user_host(Some(&mine), &system, |_| true), unix(&system));
        assert_eq!(user_host(Some(&mine), &system, |_| false), unix(&mine));
        // No runtime directory: the system socket, usable or not (its error says why).
        assert_eq!(user_host(None, &system, |_| false), unix(&system));
        std::fs::write(&mine, "").unwrap();
        assert_eq!(user_host(Some(&mine), &system, |_| true), unix(&mine));
    }

    /// A tcp host never starts a daemon: connecting to nothing is an error at once.
    #[test]
    fn a_tcp_host_is_never_autostarted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target {
            host: format!("tcp://127.0.0.1:{port}"),
            tls: TlsFlags::default(),
        };
        let client = connect(&target).unwrap();
        let e = client.get("/_ping").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Cannot connect to the berth daemon at tcp://127.0.0.1:{port}. Is the berth daemon running?")
        );
    }
}
