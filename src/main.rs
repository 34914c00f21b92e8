//! `berth`: the CLI, and as `berth daemon` the engine serving Docker's API.

mod check;
mod hosts;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use berth_cli::tls_flags::TlsFlags;
use berth_cli::{DEFAULT_HOST, DEFAULT_ROOT};

mod rootless;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Run the engine: serve the Docker Engine API"
)]
struct DaemonCli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine: serve the Docker Engine API on unix sockets and TCP (with TLS).
    Daemon {
        /// Where images, containers and volumes live [default: /var/lib/berth; rootless:
        /// $XDG_DATA_HOME/berth].
        #[arg(long, env = "BERTH_ROOT")]
        root: Option<PathBuf>,
        /// A socket to listen on: unix:///PATH or tcp://ADDR[:PORT] (2375, or 2376 with TLS);
        /// give it several times to listen on several at once [default:
        /// unix:///run/berth/berth.sock; rootless: unix://$XDG_RUNTIME_DIR/berth/berth.sock].
        #[arg(short = 'H', long = "host", env = "BERTH_HOST")]
        hosts: Vec<String>,
        #[command(flatten)]
        tls: Box<TlsFlags>,
        /// Serve plain TCP (no TLS) on a non-loopback address too: whoever reaches it is root
        /// on this host.
        #[arg(long = "insecure-tcp")]
        insecure_tcp: bool,
        /// error, warn, info, debug or trace.
        #[arg(long = "log-level", default_value = "info")]
        log_level: String,
        /// A registry to talk to over plain HTTP (host[:port] or CIDR); loopback ones always are.
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// Layers downloaded at once per pull.
        #[arg(long = "max-concurrent-downloads", default_value_t = 3)]
        max_concurrent_downloads: usize,
        /// Layers uploaded at once per push.
        #[arg(long = "max-concurrent-uploads", default_value_t = 5)]
        max_concurrent_uploads: usize,
        /// The default network's bridge.
        #[arg(long, env = "BERTH_BRIDGE", default_value = berth_network::DEFAULT_BRIDGE)]
        bridge: String,
        /// The default network's gateway address and prefix (e.g. 10.209.0.1/16).
        #[arg(long, env = "BERTH_BIP")]
        bip: Option<String>,
        /// Where networks created without a subnet get one (base=CIDR,size=PREFIX; repeat
        /// for several pools, first first). Default: base=10.210.0.0/16,size=24.
        #[arg(long = "default-address-pool", env = "BERTH_DEFAULT_ADDRESS_POOL",
              value_parser = parse_address_pool)]
        default_address_pools: Vec<berth_network::AddressPool>,
        /// berth's nftables table (family ip).
        #[arg(long = "nft-table", env = "BERTH_NFT_TABLE", default_value = berth_network::DEFAULT_TABLE)]
        nft_table: String,
        /// The build cache's size bound (e.g. 20GB); least recently used entries go first.
        #[arg(long = "builder-cache-max", env = "BERTH_BUILD_CACHE_MAX", default_value = "20GiB",
              value_parser = parse_bytes)]
        builder_cache_max: u64,
        /// How overlays are mounted: overlayfs (the kernel's; overlay2 is the same) or
        /// fuse-overlayfs (for rootless daemons on kernels before 5.11; a rootless daemon
        /// falls back to it by itself).
        #[arg(long = "storage-driver", default_value = "overlayfs")]
        storage_driver: berth_engine::StorageDriver,
        /// Free space an image unpack must leave on the root's filesystem (5%, 2G, 0: none);
        /// a layer that would eat into it stops with an error and leaves nothing behind.
        #[arg(
            long = "min-free-space",
            env = "BERTH_MIN_FREE_SPACE",
            default_value = "5%"
        )]
        min_free_space: berth_engine::MinFree,
        /// Run containers in user namespaces whose root is an unprivileged host ID: the first
        /// /etc/subuid and /etc/subgid ranges of `default` (the user dockremap, made when
        /// missing), USER[:GROUP] or UID[:GID]. A container opts out with --userns host.
        #[arg(long = "userns-remap", value_name = "default|USER[:GROUP]")]
        userns_remap: Option<berth_engine::userns::RemapSpec>,
    },
    /// Run an image registry (the OCI distribution API).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Serve the OCI distribution API, storing content under --root.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: std::net::SocketAddr,
        /// Where blobs and repository metadata live.
        #[arg(long)]
        root: PathBuf,
        /// htpasswd file (bcrypt entries): require basic auth.
        #[arg(long)]
        htpasswd: Option<PathBuf>,
        /// PEM certificate chain: serve HTTPS.
        #[arg(long = "tls-cert", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// error, warn, info, debug or trace.
        #[arg(long = "log-level", default_value = "info")]
        log_level: String,
    },
}

fn registry_serve(config: berth_registry::server::ServerConfig, log_level: String) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let server = berth_registry::server::Server::bind(config).await?;
        eprintln!("berth registry listening on {}", server.local_addr());
        server.run(shutdown).await?;
        anyhow::Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when
/// the future is first polled), so call it before the socket exists: a signal that arrives
/// as soon as clients can connect must already stop us cleanly.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// The root and sockets a daemon uses when not told: the system's, or a rootless daemon's
/// in the user's XDG directories.
fn daemon_places(root: Option<PathBuf>, hosts: Vec<String>) -> Result<(PathBuf, Vec<String>)> {
    if !rootless::unprivileged() && std::env::var_os(rootless::CHILD_ENV).is_none() {
        let hosts = if hosts.is_empty() {
            vec![DEFAULT_HOST.to_owned()]
        } else {
            hosts
        };
        return Ok((root.unwrap_or_else(|| DEFAULT_ROOT.into()), hosts));
    }
    let root = match root {
        Some(r) => r,
        None => berth_core::userdirs::rootless_root()
            .context("a rootless daemon keeps its state in $XDG_DATA_HOME/berth: set XDG_DATA_HOME or HOME, or give --root")?,
    };
    let hosts = if hosts.is_empty() {
        vec![format!(
            "unix://{}",
            berth_core::userdirs::rootless_socket()
                .context("a rootless daemon listens in $XDG_RUNTIME_DIR/berth: set XDG_RUNTIME_DIR, or give -H")?
                .display()
        )]
    } else {
        hosts
    };
    Ok((root, hosts))
}

/// Where the daemon listens: `-H` values, TLS flags, `--insecure-tcp`.
#[derive(Debug)]
struct Listening {
    hosts: Vec<String>,
    tls: TlsFlags,
    insecure_tcp: bool,
}

fn daemon(
    root: PathBuf,
    listening: Listening,
    log_level: String,
    options: berth_engine::EngineOptions,
) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Every address and certificate is judged before anything else starts.
    let mode = listening.tls.mode();
    let checked = hosts::check(&listening.hosts, mode, listening.insecure_tcp)?;
    let server_tls = hosts::server_tls(&checked, mode, &listening.tls.files())?;
    for warning in &checked.warnings {
        tracing::warn!("{warning}");
    }
    let root_for_pid = root.clone();
    let engine = berth_engine::Engine::with_options(&root, options)
        .with_context(|| format!("open root {}", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let (bound, paths) = hosts::bind(&checked, server_tls)?;
        // Like Docker's docker.pid: who serves this root, for scripts and init systems.
        let pid_file = root.join("berth.pid");
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("write {}", pid_file.display()))?;
        let names: Vec<String> = checked
            .listen
            .iter()
            .map(|l| match l {
                hosts::Listen::Unix(p) => format!("unix://{}", p.display()),
                hosts::Listen::Tcp { host, .. } => host.clone(),
            })
            .collect();
        tracing::info!(hosts = %names.join(" "), tls = ?mode, root = %root.display(), "berth daemon listening");
        // What only the start needed (opening the root, restoring networks) leaves the
        // resident set; requests fault back the code they run.
        berth_core::memory::shed_resident_memory();
        // Restart policies: once now (containers that should come back after a reboot or a
        // daemon crash), then continuously.
        // A plain thread, not the runtime's blocking pool: the runtime waits for its blocking
        // tasks when it shuts down, and this loop never ends on its own.
        let supervisor = engine.clone();
        std::thread::Builder::new()
            .name("restart-policies".into())
            .spawn(move || {
                supervisor.supervise(true);
                // Every 10 s: the free heap back to the kernel, and after 10 s without a
                // request the code's file pages too (the next request faults back what it
                // runs).
                let mut memory = berth_core::memory::IdleShed::new(berth_api::activity::requests());
                for pass in 1u64.. {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    supervisor.supervise(false);
                    if pass % 50 == 0 {
                        use berth_core::memory::Release;
                        match memory.look(berth_api::activity::requests()) {
                            Release::FreeHeap => berth_core::memory::release_free_heap(),
                            Release::All => berth_core::memory::shed_resident_memory(),
                            Release::Nothing => {}
                        }
                    }
                }
            })
            .context("start the restart supervisor")?;
        let engine = Arc::new(engine);
        let api = berth_api::router(engine.clone());
        berth_api::serve(bound, api, shutdown).await?;
        if engine.rootless().is_some() {
            let e = engine.clone();
            tokio::task::spawn_blocking(move || e.stop_all_at_shutdown()).await?;
        }
        // Removals answered but not yet cleared up (what is left then, the next start does).
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.finish_background_work(std::time::Duration::from_secs(30)))
            .await?;
        tracing::info!("berth daemon stopped");
        anyhow::Ok(paths)
    });
    if let Ok(paths) = &result {
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(root_for_pid.join("berth.pid"));
    }
    result.map(|_| ())
}

/// A size as docker's flags take it (`512m`, `20GB`, `1GiB`, bytes).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase().replace("ib", "b");
    berth_core::humanize::parse_ram_bytes(&t)
        .filter(|n| *n >= 0)
        .map(|n| n as u64)
        .ok_or_else(|| format!("invalid size {text:?}"))
}

fn parse_address_pool(text: &str) -> Result<berth_network::AddressPool, String> {
    text.parse()
        .map_err(|e: berth_network::NetError| e.to_string())
}

fn main() {
    // `berth daemon …` is the engine, `berth registry …` a registry; the rest is the CLI.
    if !matches!(
        std::env::args().nth(1).as_deref(),
        Some("daemon" | "registry")
    ) {
        // Bad flags or arguments exit 125, as the docker CLI's do (scripts tell a usage
        // error from the container's own status by it); help and version exit 0, and so does
        // a command group named alone (`berth container`: its usage on stderr, as docker's).
        let cli = <berth_cli::Cli as Parser>::try_parse().unwrap_or_else(|e| {
            let _ = e.print();
            let bare_group =
                e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            std::process::exit(if e.use_stderr() && !bare_group {
                125
            } else {
                0
            });
        });
        if let berth_cli::Command::System(berth_cli::SystemCommand::Check(args)) = cli.command {
            let target = berth_cli::Target::new(cli.host, cli.tls);
            std::process::exit(check::run(&target, args).unwrap_or_else(|e| {
                eprintln!("berth: {e:#}");
                1
            }));
        }
        std::process::exit(berth_cli::run(cli));
    }
    let cli = DaemonCli::parse();
    // An unprivileged user's daemon: this process becomes the rootless agent, and the daemon
    // proper runs in this same binary, re-executed inside new namespaces.
    let mut in_rootless = None;
    if matches!(cli.command, Command::Daemon { .. }) {
        match std::env::var(rootless::CHILD_ENV) {
            Ok(env) => match rootless::child::enter(&env) {
                Ok(r) => in_rootless = Some(r),
                Err(e) => {
                    eprintln!("berth: rootless: {e:#}");
                    std::process::exit(125);
                }
            },
            Err(_) if rootless::unprivileged() => match rootless::agent::run() {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("berth: rootless: {e:#}");
                    std::process::exit(125);
                }
            },
            Err(_) => {}
        }
    }
    let result = match cli.command {
        Command::Daemon {
            root,
            hosts,
            tls,
            insecure_tcp,
            log_level,
            insecure_registries,
            max_concurrent_downloads,
            max_concurrent_uploads,
            bridge,
            bip,
            default_address_pools,
            nft_table,
            builder_cache_max,
            min_free_space,
            userns_remap,
            storage_driver,
        } => daemon_places(root, hosts).and_then(|(root, hosts)| {
            if userns_remap.is_some() && storage_driver == berth_engine::StorageDriver::FuseOverlayfs {
                anyhow::bail!("--userns-remap needs the kernel's overlayfs (its idmapped layers), not fuse-overlayfs");
            }
            if in_rootless.is_some() && userns_remap.is_some() {
                // Its containers already run in the user's own namespace, as the user's ids.
                anyhow::bail!("--userns-remap cannot be used by a rootless daemon: its containers already run as the user's subordinate ids");
            }
            let cgroups = in_rootless.as_ref().map(|r| r.cgroups);
            let host_ports =
                in_rootless.map(|r| Arc::new(r.ports) as Arc<dyn berth_network::HostPorts>);
            daemon(
                root,
                Listening {
                    hosts,
                    tls: *tls,
                    insecure_tcp,
                },
                log_level,
                berth_engine::EngineOptions {
                    insecure_registries,
                    max_concurrent_downloads,
                    max_concurrent_uploads,
                    network: Some(berth_engine::networks::NetworkOptions {
                        bridge,
                        bip,
                        nft_table,
                        host_ports,
                        address_pools: default_address_pools,
                    }),
                    build_cache_max: builder_cache_max,
                    min_free_space,
                    userns_remap,
                    storage_driver,
                    rootless: cgroups
                        .map(|cgroups| berth_engine::rootless::RootlessOptions { cgroups }),
                },
            )
        }),
        Command::Registry {
            command:
                RegistryCommand::Serve {
                    addr,
                    root,
                    htpasswd,
                    tls_cert,
                    tls_key,
                    log_level,
                },
        } => {
            let mut config = berth_registry::server::ServerConfig::new(addr, root);
            config.htpasswd = htpasswd;
            config.tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| berth_registry::server::TlsFiles { cert, key });
            registry_serve(config, log_level)
        }
    };
    if let Err(e) = result {
        eprintln!("berth: {e:#}");
        std::process::exit(125);
    }
}
