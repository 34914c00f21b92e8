//! Registry commands: pull, push, login, logout, manifest inspect. Pull and push go through
//! the daemon (`POST /images/create?fromImage=`, `POST /images/{name}/push`) with the user's
//! credentials in `X-Registry-Auth`, as docker sends them; login asks the daemon to check
//! (`POST /auth`) and stores them in `~/.docker/config.json` form (or `$DOCKER_CONFIG`);
//! `manifest inspect` asks the registry directly, as docker's does.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use berth_core::Reference;
use berth_registry::client::{self as registry, endpoint, AuthConfig, DockerConfig};
use clap::{Args, Subcommand};

use crate::client::{with_query, Client, Payload};
use crate::progress::Display;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The registry (Docker Hub when none).
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (Docker Hub when none).
    pub server: Option<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list.
    Inspect {
        /// Allow communication with an insecure registry.
        #[arg(long)]
        insecure: bool,
        /// NAME[:TAG|@DIGEST]
        name: String,
    },
}

/// Runs an async registry call to completion on a small runtime of the CLI's own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start an async runtime")?;
    Ok(rt.block_on(f))
}

fn parse_reference(name: &str) -> Result<Reference> {
    name.parse::<Reference>()
        .map_err(|_| anyhow::anyhow!("invalid reference format"))
}

/// The stored credentials for the registry of `r`, as an `X-Registry-Auth` value.
fn auth_header(r: &Reference) -> Result<Option<String>> {
    let config = DockerConfig::default_location();
    let found = block_on(config.get(&r.registry))?
        .with_context(|| format!("read the credentials in {}", config.path().display()))?;
    Ok(found.map(|a| a.to_header()))
}

/// Sends a pull or push and shows its progress; fails with the stream's error.
fn stream_progress(client: &Client, path: &str, auth: Option<String>, quiet: bool) -> Result<()> {
    let headers: Vec<(&str, String)> = auth.map(|a| ("X-Registry-Auth", a)).into_iter().collect();
    let mut resp = client.send_with_headers("POST", path, Payload::None, &headers)?;
    let failed = if quiet {
        let mut sink = Display::new(std::io::sink(), false);
        sink.show_stream(resp.body())?
    } else {
        let mut display = Display::new(std::io::stdout(), std::io::stdout().is_terminal());
        display.show_stream(resp.body())?
    };
    match failed {
        Some(e) => bail!("{e}"),
        None => Ok(()),
    }
}

pub fn pull(client: &Client, args: PullArgs) -> Result<i32> {
    let r = parse_reference(&args.name)?;
    let explicit = args
        .name
        .rsplit('/')
        .next()
        .is_some_and(|l| l.contains(':'))
        || args.name.contains('@');
    if args.all_tags && explicit {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tag = if args.all_tags {
        String::new()
    } else if let Some(d) = &r.digest {
        d.to_string()
    } else {
        r.tag.clone().unwrap_or_else(|| "latest".into())
    };
    if !args.all_tags && !explicit && !args.quiet {
        println!("Using default tag: latest");
    }
    let path = with_query(
        "/images/create",
        &[
            ("fromImage", r.familiar_name()),
            ("tag", tag),
            ("platform", args.platform.clone().unwrap_or_default()),
        ],
    );
    // An empty tag must reach the daemon as such (all tags).
    let path = if args.all_tags {
        format!("{path}&tag=")
    } else {
        path
    };
    stream_progress(client, &path, auth_header(&r)?, args.quiet)?;
    if args.all_tags {
        println!("{}", r.name());
    } else {
        println!("{}", pulled_name(&r));
    }
    Ok(0)
}

/// What docker prints last: the fully qualified reference.
fn pulled_name(r: &Reference) -> String {
    match (&r.digest, &r.tag) {
        (Some(d), _) => format!("{}@{d}", r.name()),
        (None, Some(t)) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
}

pub fn push(client: &Client, args: PushArgs) -> Result<i32> {
    let r = parse_reference(&args.name)?;
    if args.all_tags
        && r.tag.is_some()
        && args
            .name
            .rsplit('/')
            .next()
            .is_some_and(|l| l.contains(':'))
    {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tags: Vec<String> = if args.all_tags {
        // Every local tag of the repository.
        let list = client
            .get(&with_query(
                "/images/json",
                &[(
                    "filters",
                    format!("{{\"reference\":[\"{}\"]}}", r.familiar_name()),
                )],
            ))?
            .json()?;
        let mut tags: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| {
                t.as_str()
                    .and_then(|t| t.rsplit_once(':'))
                    .map(|(_, t)| t.to_owned())
            })
            .collect();
        tags.sort();
        tags.dedup();
        if tags.is_empty() {
            bail!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            );
        }
        tags
    } else {
        vec![r.tag.clone().unwrap_or_else(|| "latest".into())]
    };
    if !args.all_tags && r.tag.is_none() && !args.quiet {
        println!("Using default tag: latest");
    }
    let auth = auth_header(&r)?;
    for tag in tags {
        let path = with_query(
            &format!("/images/{}/push", r.familiar_name()),
            &[("tag", tag.clone())],
        );
        stream_progress(client, &path, auth.clone(), args.quiet)?;
        if args.quiet {
            println!("{}:{tag}", r.name());
        }
    }
    Ok(0)
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a password from the terminal without echoing it.
fn prompt_secret(label: &str) -> Result<String> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(s) = &saved {
        let mut quiet = s.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    let answer = prompt(label);
    if let Some(s) = &saved {
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, s);
        eprintln!();
    }
    answer
}

pub fn login(client: &Client, args: LoginArgs) -> Result<i32> {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let registry = endpoint::canonical_registry(&server);
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password_stdin && args.username.is_none() {
        bail!("Must provide --username with --password-stdin");
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt("Username: ")?,
    };
    let password = if args.password_stdin {
        let mut p = String::new();
        std::io::stdin().lock().read_line(&mut p)?;
        p.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Some(p) = &args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        prompt_secret("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        bail!("Error: Cannot perform an interactive login from a non TTY device");
    }
    let body = serde_json::json!({
        "username": username,
        "password": password,
        "serveraddress": registry,
    });
    let answer = client.request("POST", "/auth", Some(&body))?.json()?;
    let mut stored = AuthConfig::basic(&username, &password);
    if let Some(token) = answer["IdentityToken"].as_str().filter(|t| !t.is_empty()) {
        stored.identity_token = token.to_owned();
        stored.password.clear();
    }
    let config = DockerConfig::default_location();
    block_on(config.store(&registry, &stored))?
        .with_context(|| format!("store the credentials in {}", config.path().display()))?;
    println!("{}", answer["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(0)
}

pub fn logout(args: LogoutArgs) -> Result<i32> {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let registry = endpoint::canonical_registry(&server);
    let config = DockerConfig::default_location();
    if block_on(registry::logout(&config, &registry))?
        .with_context(|| format!("update {}", config.path().display()))?
    {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

pub fn manifest(cmd: ManifestCommand) -> Result<i32> {
    let ManifestCommand::Inspect { insecure, name } = cmd;
    let r = parse_reference(&name)?;
    let client = registry::Client::new(registry::ClientOptions {
        insecure_registries: if insecure {
            vec![r.registry.clone()]
        } else {
            Vec::new()
        },
        docker_config: Some(DockerConfig::default_location()),
        ..Default::default()
    })?;
    let found = block_on(client.inspect_manifest(&r, None))??;
    let v: serde_json::Value =
        serde_json::from_slice(&found.bytes).context("the registry's manifest is not JSON")?;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&v, &mut ser)?;
    println!("{}", String::from_utf8_lossy(&out));
    Ok(0)
}
