//! `berth-runtime`: an OCI runtime with runc's command line.
//!
//! Single-threaded on purpose: libcontainer clones with raw clone3, which must not happen in a
//! process that has started other threads.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_runtime::exec::ExecOptions;
use berth_runtime::lifecycle::{CreateOptions, Runtime, DEFAULT_ROOT};
use berth_runtime::logging::{LogFormat, LogSink};
use berth_runtime::spec::{docker_default, ContainerOptions};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version,
    about = "berth's OCI container runtime (runc-compatible command line)"
)]
struct Cli {
    /// Directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    /// Log debug output.
    #[arg(long, global = true)]
    debug: bool,
    /// Drive cgroups through systemd (cgroups paths in slice:prefix:name form).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility; rootless mode is detected, not chosen.
    #[arg(long, global = true, hide = true)]
    rootless: Option<String>,
    /// Accepted for runc compatibility (path to criu); checkpointing is not offered.
    #[arg(long, global = true, hide = true)]
    criu: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Path to the bundle (directory holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to (when process.terminal is true).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the container init's pid here.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use chroot-like mount moves instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra file descriptors (from 3 on) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    container_id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            ..Default::default()
        }
    }
}

// `update`'s flags: runc's names. Sizes take units (`64m`); -1 means no limit; 0 (or an
// absent flag) leaves a setting as it is. (A plain comment: a doc comment would replace the
// subcommand's help text, as its deferred augmentation comes last.)
#[derive(clap::Args, Debug)]
struct UpdateArgs {
    /// An OCI LinuxResources JSON document with the new limits ('-' reads standard input);
    /// not combined with the other flags.
    #[arg(short, long)]
    resources: Option<String>,
    /// Memory limit (bytes, or with a unit: 512k, 64m, 1g).
    #[arg(long, short = 'm', allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory plus swap; -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Soft memory limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Accepted and ignored, as runc does (kernel memory limits are gone from the kernel).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Accepted and ignored, as runc does.
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// CPU shares (relative weight; cpu.weight on cgroup v2).
    #[arg(long = "cpu-shares", alias = "cpu-share")]
    cpu_shares: Option<u64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CFS quota in microseconds; -1 for no limit.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Most processes; -1 for no limit.
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    container_id: String,
}

impl UpdateArgs {
    fn flags(&self) -> berth_runtime::update::LimitFlags {
        berth_runtime::update::LimitFlags {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_reservation: self.memory_reservation.clone(),
            kernel_memory: self.kernel_memory.clone(),
            kernel_memory_tcp: self.kernel_memory_tcp.clone(),
            cpu_shares: self.cpu_shares,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
        }
    }

    /// The request: the --resources document, or what the flags say.
    fn request(&self) -> Result<oci_spec::runtime::LinuxResources> {
        let flags = self.flags();
        let Some(source) = &self.resources else {
            return flags.to_resources().map_err(anyhow::Error::msg);
        };
        if flags.any() {
            bail!("--resources cannot be combined with other limit flags");
        }
        let text = if source == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("read --resources from standard input")?;
            text
        } else {
            std::fs::read_to_string(source).with_context(|| format!("read --resources {source}"))?
        };
        Ok(berth_runtime::update::parse_resources(&text)?)
    }
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Write a config.json with Docker's defaults into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Do not give the process a terminal (runc's default spec has one).
        #[arg(long = "no-terminal")]
        no_terminal: bool,
        /// The process to run (default: sh).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start the process of a created container.
    Start { container_id: String },
    /// Create and start a container, wait for it, delete it, and exit with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container runs.
        #[arg(short, long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Run a process in a running container.
    Exec {
        /// process.json describing the process (instead of the arguments).
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        /// Allocate a pseudo-terminal.
        #[arg(short, long)]
        tty: bool,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Working directory.
        #[arg(long)]
        cwd: Option<String>,
        /// KEY=value to set (repeatable).
        #[arg(short, long)]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        /// Additional gid (repeatable).
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// Capability to add (repeatable).
        #[arg(short, long)]
        cap: Vec<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        container_id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a container's state as JSON.
    State { container_id: String },
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// Send it to every process in the container.
        #[arg(short, long)]
        all: bool,
        container_id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's state, cgroups and resources.
    Delete {
        /// Kill the container first if it runs.
        #[arg(short, long)]
        force: bool,
        container_id: String,
    },
    /// Freeze every process in the container.
    Pause { container_id: String },
    /// Thaw a paused container.
    Resume { container_id: String },
    /// List the processes in a container.
    Ps {
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        container_id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a container's resource limits (runc's `update`).
    Update(UpdateArgs),
    /// Print the features this runtime supports (OCI features.json).
    Features,
    /// Start a container under its own supervisor (for the engine): returns once it runs; the
    /// shim keeps its stdio, log and exit status in the state directory.
    Shim {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// The engine's directory for this container (log, shim.json, exit.json, attach.sock).
        #[arg(long = "state-dir")]
        state_dir: PathBuf,
        /// Keep stdin open for attached clients.
        #[arg(short, long)]
        interactive: bool,
        /// Rotate the log at this many bytes.
        #[arg(long = "log-max-size", default_value_t = berth_runtime::shim::log::DEFAULT_MAX_SIZE)]
        log_max_size: u64,
        /// Keep this many log files (0: keep no log at all).
        #[arg(long = "log-max-file", default_value_t = berth_runtime::shim::log::DEFAULT_MAX_FILES)]
        log_max_files: u32,
        /// Wait up to this many milliseconds for an attach client before starting the process.
        #[arg(long = "wait-attach-ms")]
        wait_attach_ms: Option<u64>,
        /// The health check to run, as JSON (berth_runtime::shim::health::HealthConfig).
        #[arg(long)]
        health: Option<String>,
        container_id: String,
    },
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("invalid --user {s:?}: need uid[:gid]"))?;
    let gid = match g {
        Some(g) => Some(
            g.parse()
                .with_context(|| format!("invalid --user {s:?}: need uid[:gid]"))?,
        ),
        None => None,
    };
    Ok((uid, gid))
}

fn write_spec(bundle: &std::path::Path, no_terminal: bool, args: Vec<String>) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let explicit = !args.is_empty();
    let args = if explicit {
        args
    } else {
        vec!["sh".to_owned()]
    };
    let opts = ContainerOptions {
        tty: !(no_terminal || explicit),
        hostname: Some("berth".to_owned()),
        ..ContainerOptions::new("rootfs", args)
    };
    let spec = docker_default(&opts)?;
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn print_list(rt: &Runtime, format: OutputFormat, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    if format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&states)?)?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(str::to_owned))
            .chain(states.iter().map(|s| {
                [
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.clone(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]
            }))
            .collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 5 {
                    c.clone()
                } else {
                    format!("{:width$}", c, width = widths[i] + 3)
                }
            })
            .collect();
        writeln!(out, "{}", line.concat().trim_end())?;
    }
    Ok(())
}

fn print_ps(rt: &Runtime, id: &str, format: OutputFormat, ps_args: Vec<String>) -> Result<()> {
    let pids = rt.pids(id)?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args = if ps_args.is_empty() {
        vec!["-ef".to_owned()]
    } else {
        ps_args
    };
    let output = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !output.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// Runs the command; `entered_us` is when this process began (for the shim's timing).
fn run(cli: Cli, entered_us: u64) -> Result<i32> {
    if let Command::Spec {
        bundle,
        no_terminal,
        args,
    } = cli.command
    {
        write_spec(&bundle, no_terminal, args)?;
        return Ok(0);
    }
    if let Command::Features = cli.command {
        println!(
            "{}",
            serde_json::to_string_pretty(&berth_runtime::features::features())?
        );
        return Ok(0);
    }
    let rt = Runtime::new(&cli.root, cli.systemd_cgroup)?;
    match cli.command {
        Command::Spec { .. } | Command::Features => unreachable!("handled above"),
        Command::Shim {
            bundle,
            state_dir,
            interactive,
            log_max_size,
            log_max_files,
            wait_attach_ms,
            health,
            container_id,
        } => {
            let health = health
                .map(|h| serde_json::from_str(&h))
                .transpose()
                .map_err(|e| anyhow::anyhow!("bad --health: {e}"))?;
            let opts = berth_runtime::shim::ShimOptions {
                id: container_id,
                bundle,
                state_dir,
                stdin: interactive,
                log_max_size,
                log_max_files,
                wait_attach: wait_attach_ms.map(std::time::Duration::from_millis),
                health,
                launch: std::env::var(berth_core::timing::SPAWNED_ENV)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map(|spawned_us| berth_runtime::shim::Launch {
                        spawned_us,
                        entered_us,
                    }),
            };
            // Not for the relay, the health checks or anything else this shim starts.
            std::env::remove_var(berth_core::timing::SPAWNED_ENV);
            let info = berth_runtime::shim::spawn(&rt, &opts)?;
            println!("{}", serde_json::to_string(&info)?);
            Ok(0)
        }
        Command::Create(args) => {
            rt.create(&args.container_id, &args.bundle, args.options(), true)?;
            Ok(0)
        }
        Command::Start { container_id } => {
            rt.start(&container_id)?;
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
        } => {
            if keep && !detach {
                // --keep: run in the foreground but leave the stopped container for inspection.
                let container = rt.create(
                    &create.container_id,
                    &create.bundle,
                    create.options(),
                    false,
                )?;
                rt.start(&create.container_id)?;
                let pid = container.pid().context("container has no pid")?;
                return Ok(berth_runtime::foreground::wait(pid, None)?);
            }
            Ok(rt.run(
                &create.container_id,
                &create.bundle,
                create.options(),
                detach,
            )?)
        }
        Command::Exec {
            process,
            detach,
            tty,
            console_socket,
            pid_file,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            container_id,
            command,
        } => {
            if process.is_none() && command.is_empty() {
                bail!("exec needs a command or --process");
            }
            let opts = ExecOptions {
                args: command,
                env,
                cwd,
                user: user.as_deref().map(parse_user).transpose()?,
                additional_gids,
                caps: cap,
                no_new_privs,
                tty,
                process_file: process,
                console_socket,
                pid_file,
                preserve_fds,
                detach,
            };
            Ok(berth_runtime::exec::exec(&rt, &container_id, opts)?)
        }
        Command::State { container_id } => {
            let state = rt.state(&container_id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Command::List { format, quiet } => {
            print_list(&rt, format, quiet)?;
            Ok(0)
        }
        Command::Kill {
            all,
            container_id,
            signal,
        } => {
            rt.kill(&container_id, &signal, all)?;
            Ok(0)
        }
        Command::Delete {
            force,
            container_id,
        } => {
            rt.delete(&container_id, force)?;
            Ok(0)
        }
        Command::Update(args) => {
            let req = args.request()?;
            rt.update(&args.container_id, &req)?;
            Ok(0)
        }
        Command::Pause { container_id } => {
            rt.pause(&container_id)?;
            Ok(0)
        }
        Command::Resume { container_id } => {
            rt.resume(&container_id)?;
            Ok(0)
        }
        Command::Ps {
            format,
            container_id,
            ps_args,
        } => {
            print_ps(&rt, &container_id, format, ps_args)?;
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let entered_us = berth_core::timing::monotonic_us();
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let sink = match LogSink::open(cli.log.as_deref(), format) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("berth-runtime: cannot open log file: {e}");
            return ExitCode::from(1);
        }
    };
    // Without a log file, library chatter stays off the terminal unless --debug; our own
    // one-line error below is what the user sees.
    if cli.debug || sink.has_file() {
        let level = if cli.debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        };
        berth_runtime::logging::install(sink.clone(), level);
    }
    // run and exec exit with the process's status; when its command cannot run at all, with
    // Docker's 127 (no such command) or 126 (cannot be invoked) rather than 1.
    let runs_a_process = matches!(cli.command, Command::Run { .. } | Command::Exec { .. });
    match run(cli, entered_us) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            let msg = format!("{err:#}");
            if sink.has_file() {
                sink.write("error", &msg, &[]);
            }
            eprintln!("berth-runtime: {msg}");
            let code = err
                .downcast_ref::<berth_runtime::RuntimeError>()
                .and_then(berth_runtime::RuntimeError::exit_code)
                .filter(|_| runs_a_process)
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Each subcommand's arguments are added only when it is the one run (`defer`).
    #[test]
    fn deferred_arguments_keep_each_subcommands_help_text() {
        use clap::CommandFactory;
        let cmd = super::Cli::command();
        assert!(cmd.get_subcommands().count() > 10);
        let changed = berth_testutil::help_texts_changed_by_defer(cmd);
        assert!(changed.is_empty(), "help text changed: {changed:#?}");
    }
}
