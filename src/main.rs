//! `berth`: the CLI, and as `berth daemon` the engine serving Docker's API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use berth_cli::{DEFAULT_HOST, DEFAULT_ROOT};

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
    /// Run the engine: serve the Docker Engine API on a unix socket.
    Daemon {
        /// Where images, containers and volumes live.
        #[arg(long, env = "BERTH_ROOT", default_value = DEFAULT_ROOT)]
        root: PathBuf,
        /// The socket to listen on.
        #[arg(short = 'H', long, env = "BERTH_HOST", default_value = DEFAULT_HOST)]
        host: String,
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
        /// berth's nftables table (family ip).
        #[arg(long = "nft-table", env = "BERTH_NFT_TABLE", default_value = berth_network::DEFAULT_TABLE)]
        nft_table: String,
        /// The build cache's size bound (e.g. 20GB); least recently used entries go first.
        #[arg(long = "builder-cache-max", env = "BERTH_BUILD_CACHE_MAX", default_value = "20GiB",
              value_parser = parse_bytes)]
        builder_cache_max: u64,
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

/// Binds the API socket: refuses to steal one a live daemon listens on, replaces a stale one,
/// and makes it mode 0660, group `berth` when that group exists (as Docker does with `docker`).
fn bind_socket(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
        let _ = nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group.gid));
    }
    Ok(listener)
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

fn daemon(
    root: PathBuf,
    host: String,
    log_level: String,
    options: berth_engine::EngineOptions,
) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let path = berth_cli::socket_path(&host)?;
    let root_for_pid = root.clone();
    let engine = berth_engine::Engine::with_options(&root, options)
        .with_context(|| format!("open root {}", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let std_listener = bind_socket(&path)?;
        std_listener.set_nonblocking(true)?;
        // Like Docker's docker.pid: who serves this root, for scripts and init systems.
        let pid_file = root.join("berth.pid");
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("write {}", pid_file.display()))?;
        let listener = tokio::net::UnixListener::from_std(std_listener)?;
        tracing::info!(socket = %path.display(), root = %root.display(), "berth daemon listening");
        // Restart policies: once now (containers that should come back after a reboot or a
        // daemon crash), then continuously.
        // A plain thread, not the runtime's blocking pool: the runtime waits for its blocking
        // tasks when it shuts down, and this loop never ends on its own.
        let supervisor = engine.clone();
        std::thread::Builder::new()
            .name("restart-policies".into())
            .spawn(move || {
                supervisor.supervise(true);
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    supervisor.supervise(false);
                }
            })
            .context("start the restart supervisor")?;
        let api = berth_api::router(Arc::new(engine));
        berth_api::serve(listener, api, shutdown).await?;
        tracing::info!("berth daemon stopped");
        anyhow::Ok(path)
    });
    if let Ok(path) = &result {
        let _ = std::fs::remove_file(path);
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

fn main() {
    // `berth daemon …` is the engine, `berth registry …` a registry; the rest is the CLI.
    if !matches!(
        std::env::args().nth(1).as_deref(),
        Some("daemon" | "registry")
    ) {
        let cli = <berth_cli::Cli as Parser>::parse();
        std::process::exit(berth_cli::run(cli));
    }
    let cli = DaemonCli::parse();
    let result = match cli.command {
        Command::Daemon {
            root,
            host,
            log_level,
            insecure_registries,
            max_concurrent_downloads,
            max_concurrent_uploads,
            bridge,
            bip,
            nft_table,
            builder_cache_max,
            min_free_space,
            userns_remap,
        } => daemon(
            root,
            host,
            log_level,
            berth_engine::EngineOptions {
                insecure_registries,
                max_concurrent_downloads,
                max_concurrent_uploads,
                network: Some(berth_engine::networks::NetworkOptions {
                    bridge,
                    bip,
                    nft_table,
                }),
                build_cache_max: builder_cache_max,
                min_free_space,
                userns_remap,
            },
        ),
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
