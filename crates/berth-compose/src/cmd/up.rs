//! `up`, `create`, `start` and `scale`: convergence ([`crate::converge`]) plus, for an
//! attached `up`, the services' output with prefixes until they exit, Ctrl-C stopping
//! the app (a second one killing it) as Docker Compose does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_client::Client;
use clap::Args;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::api;
use crate::cli::ComposeArgs;
use crate::cmd::logs::{self, Printer};
use crate::cmd::{check_services, display_name, service_containers};
use crate::converge::{self, BuildPolicy, Converger, Options, Progress, Recreate};
use crate::model::Project;

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy.
    #[arg(long = "wait-timeout")]
    pub wait_timeout: Option<u64>,
    /// Build images before starting containers.
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Don't build an image, even if it's policy.
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed.
    #[arg(long = "force-recreate", conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present.
    #[arg(long)]
    pub scale: Vec<String>,
    /// Stops all containers if any container was stopped.
    #[arg(long = "abort-on-container-exit")]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit.
    #[arg(long = "exit-code-from")]
    pub exit_code_from: Option<String>,
    /// Don't start linked services.
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Pull image before running ("always"|"missing"|"never").
    #[arg(long)]
    pub pull: Option<String>,
    /// Pull without printing progress information.
    #[arg(long = "quiet-pull")]
    pub quiet_pull: bool,
    /// Use this timeout in seconds for container shutdown when attached or when containers are already running.
    #[arg(short, long)]
    pub timeout: Option<i64>,
    /// Don't start the services after creating them.
    #[arg(long = "no-start")]
    pub no_start: bool,
    /// Produce monochrome output.
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't prefix the output with the service name.
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Show timestamps.
    #[arg(long)]
    pub timestamps: bool,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Build images before starting containers.
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy.
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed.
    #[arg(long = "force-recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances.
    #[arg(long)]
    pub scale: Vec<String>,
    /// Pull image before running ("always"|"missing"|"never").
    #[arg(long)]
    pub pull: Option<String>,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServicesArgs {
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Don't start linked services.
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// SERVICE=REPLICAS pairs.
    #[arg(required = true)]
    pub scales: Vec<String>,
}

fn parse_scales(items: &[String]) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for s in items {
        let Some((svc, n)) = s.split_once('=') else {
            bail!("invalid scale specifier: {s}");
        };
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid scale specifier: {s}"))?;
        out.insert(svc.to_owned(), n);
    }
    Ok(out)
}

fn check_pull(pull: &Option<String>) -> Result<()> {
    match pull.as_deref() {
        None | Some("always" | "missing" | "never") => Ok(()),
        Some(other) => bail!("invalid --pull option {other:?}"),
    }
}

/// Create (or recreate) what the model needs, without starting.
fn converge_all(
    client: &Client,
    project: &Project,
    args: &ComposeArgs,
    opts: &Options,
    progress: &Progress,
) -> Result<std::collections::BTreeSet<String>> {
    check_services(project, &opts.services)?;
    for svc in opts.scale.keys() {
        check_services(project, std::slice::from_ref(svc))?;
    }
    let selected = converge::selected(project, &opts.services, opts.no_deps)?;
    converge::check_supported(project, &selected)?;
    let c = Converger::new(client, project, opts, progress, &args.env_files);
    c.ensure_images(&selected)?;
    c.ensure_networks(&selected)?;
    c.ensure_volumes(&selected)?;
    c.orphans()?;
    let levels = converge::levels(project, &selected);
    converge::in_dependency_order(&levels, &|s| c.converge_service(s))?;
    Ok(selected)
}

fn start_all(
    client: &Client,
    project: &Project,
    args: &ComposeArgs,
    opts: &Options,
    progress: &Progress,
    selected: &std::collections::BTreeSet<String>,
    deadline: Option<Instant>,
) -> Result<()> {
    let c = Converger::new(client, project, opts, progress, &args.env_files);
    let levels = converge::levels(project, selected);
    converge::in_dependency_order(&levels, &|s| c.start_service(s, deadline))
}

pub fn create(
    client: &Client,
    project: &Project,
    args: &ComposeArgs,
    a: &CreateArgs,
) -> Result<i32> {
    check_pull(&a.pull)?;
    let opts = Options {
        services: a.services.clone(),
        recreate: recreate(a.force_recreate, a.no_recreate),
        build: build_policy(a.build, a.no_build),
        pull: a.pull.clone(),
        scale: parse_scales(&a.scale)?,
        remove_orphans: a.remove_orphans,
        ..Default::default()
    };
    converge_all(client, project, args, &opts, &Progress::default())?;
    Ok(0)
}

fn recreate(force: bool, never: bool) -> Recreate {
    if force {
        Recreate::Force
    } else if never {
        Recreate::Never
    } else {
        Recreate::Diverged
    }
}

fn build_policy(build: bool, no_build: bool) -> BuildPolicy {
    if build {
        BuildPolicy::Always
    } else if no_build {
        BuildPolicy::Never
    } else {
        BuildPolicy::Missing
    }
}

pub fn start(client: &Client, project: &Project, a: &ServicesArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let opts = Options {
        services: a.services.clone(),
        ..Default::default()
    };
    let selected = converge::selected(project, &a.services, true)?;
    let progress = Progress::default();
    let c = Converger::new(client, project, &opts, &progress, &[]);
    let levels = converge::levels(project, &selected);
    converge::in_dependency_order(&levels, &|s| c.start_service(s, None))?;
    Ok(0)
}

pub fn scale(client: &Client, project: &Project, args: &ComposeArgs, a: &ScaleArgs) -> Result<i32> {
    let scale = parse_scales(&a.scales)?;
    let opts = Options {
        services: scale.keys().cloned().collect(),
        no_deps: a.no_deps,
        scale,
        ..Default::default()
    };
    let progress = Progress::default();
    let selected = converge_all(client, project, args, &opts, &progress)?;
    start_all(client, project, args, &opts, &progress, &selected, None)?;
    Ok(0)
}

pub fn up(client: &Client, project: &Project, args: &ComposeArgs, a: &UpArgs) -> Result<i32> {
    check_pull(&a.pull)?;
    if let Some(svc) = &a.exit_code_from {
        check_services(project, std::slice::from_ref(svc))?;
    }
    let detach = a.detach || a.wait;
    if detach && (a.abort_on_container_exit || a.exit_code_from.is_some()) {
        bail!("--abort-on-container-exit and -d cannot be combined.");
    }
    let opts = Options {
        services: a.services.clone(),
        no_deps: a.no_deps,
        recreate: recreate(a.force_recreate, a.no_recreate),
        build: build_policy(a.build, a.no_build),
        pull: a.pull.clone(),
        scale: parse_scales(&a.scale)?,
        remove_orphans: a.remove_orphans,
        timeout: a.timeout,
        quiet_pull: a.quiet_pull,
    };
    let progress = Progress::default();
    let selected = converge_all(client, project, args, &opts, &progress)?;
    if a.no_start {
        return Ok(0);
    }
    let deadline = a
        .wait_timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    if detach {
        start_all(client, project, args, &opts, &progress, &selected, deadline)?;
        if a.wait {
            wait_healthy(client, project, &selected, deadline)?;
        }
        return Ok(0);
    }
    attached(
        client, project, args, a, &opts, &progress, &selected, deadline,
    )
}

/// `--wait`: every selected service running (healthy where it has a healthcheck), or
/// exited 0 where another service waits for it to complete.
fn wait_healthy(
    client: &Client,
    project: &Project,
    selected: &std::collections::BTreeSet<String>,
    deadline: Option<Instant>,
) -> Result<()> {
    let completes: Vec<&String> = project
        .services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, d)| d.condition == "service_completed_successfully")
        .map(|(n, _)| n)
        .collect();
    loop {
        let mut ready = true;
        for c in service_containers(client, project, &[])? {
            if !selected.contains(c.service()) {
                continue;
            }
            let inspect = api::inspect_container(client, &c.id)?;
            let state = &inspect["State"];
            let status = state["Status"].as_str().unwrap_or("");
            // A container with a health check waits for "healthy" even before the daemon
            // shows a Health (some show none until the first probe).
            let checked = inspect["Config"]["Healthcheck"]["Test"]
                .as_array()
                .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
            let health = state["Health"]["Status"]
                .as_str()
                .or(checked.then_some("starting"));
            if completes.iter().any(|s| *s == c.service()) && status == "exited" {
                if state["ExitCode"].as_i64() != Some(0) {
                    bail!("container {} exited ({})", c.name, state["ExitCode"]);
                }
                continue;
            }
            match (status, health) {
                ("running", None | Some("healthy")) => {}
                ("running", Some("unhealthy")) => bail!("container {} is unhealthy", c.name),
                ("exited" | "dead", _) => bail!(
                    "container {} exited ({})",
                    c.name,
                    state["ExitCode"].as_i64().unwrap_or(0)
                ),
                _ => ready = false,
            }
        }
        if ready {
            return Ok(());
        }
        if let Some(d) = deadline {
            if Instant::now() > d {
                bail!("application not healthy after {:?}", d.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[allow(clippy::too_many_arguments)]
fn attached(
    client: &Client,
    project: &Project,
    args: &ComposeArgs,
    a: &UpArgs,
    opts: &Options,
    progress: &Progress,
    selected: &std::collections::BTreeSet<String>,
    deadline: Option<Instant>,
) -> Result<i32> {
    // Signals go to one thread that stops the app; block them everywhere else first.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;

    start_all(client, project, args, opts, progress, selected, deadline)?;
    let containers: Vec<api::Summary> = service_containers(client, project, &[])?
        .into_iter()
        .filter(|c| {
            selected.contains(c.service())
                && (a.services.is_empty() || a.services.iter().any(|s| s == c.service()))
        })
        .collect();
    let names: Vec<String> = containers
        .iter()
        .map(|c| display_name(&project.name, c))
        .collect();
    println!("Attaching to {}", names.join(", "));
    let printer = Arc::new(Printer::new(&names, !a.no_color, !a.no_log_prefix));
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let stopping = Arc::new(AtomicBool::new(false));
    let exit_code = Arc::new(AtomicI64::new(0));

    let stop_all = {
        let client = client.clone();
        let project = project.clone();
        let timeout = a.timeout;
        move || {
            let levels = converge::levels(&project, &project.services.keys().cloned().collect());
            for level in levels.iter().rev() {
                for c in service_containers(&client, &project, level).unwrap_or_default() {
                    if c.state == "running" {
                        let _ = api::stop(&client, &c.id, timeout);
                    }
                }
            }
        }
    };

    {
        let stopping = stopping.clone();
        let stop_all = stop_all.clone();
        let client = client.clone();
        let project = project.clone();
        std::thread::spawn(move || {
            let mut first = true;
            while let Ok(sig) = signals.wait() {
                let _ = sig;
                if first {
                    first = false;
                    stopping.store(true, Ordering::SeqCst);
                    eprintln!("Gracefully Stopping... press Ctrl+C again to force");
                    let stop_all = stop_all.clone();
                    std::thread::spawn(stop_all);
                } else {
                    for c in service_containers(&client, &project, &[]).unwrap_or_default() {
                        if c.state == "running" {
                            let _ = api::kill(&client, &c.id, "SIGKILL");
                        }
                    }
                }
            }
        });
    }

    let (done_tx, done_rx) = std::sync::mpsc::channel::<(String, String, i64)>();
    for (c, display) in containers.iter().zip(&names) {
        let client = client.clone();
        let printer = printer.clone();
        let id = c.id.clone();
        let display = display.clone();
        let service = c.service().to_owned();
        let tx = done_tx.clone();
        let timestamps = a.timestamps;
        std::thread::spawn(move || {
            let _ = logs::follow(&client, &id, &display, &printer, timestamps, None, true);
            let code = api::wait(&client, &id).unwrap_or(-1);
            let _ = tx.send((display, service, code));
        });
    }
    drop(done_tx);
    let mut remaining = containers.len();
    while remaining > 0 {
        let Ok((display, service, code)) = done_rx.recv() else {
            break;
        };
        remaining -= 1;
        printer.line_plain(&format!("{display} exited with code {code}"));
        let chosen = a.exit_code_from.as_deref().is_none_or(|s| s == service);
        if abort && chosen {
            exit_code.store(code, Ordering::SeqCst);
            if !stopping.swap(true, Ordering::SeqCst) {
                eprintln!("Aborting on container exit...");
                stop_all();
            }
        }
    }
    let _ = SigSet::empty().thread_set_mask();
    let mut unblock = SigSet::empty();
    unblock.add(Signal::SIGINT);
    unblock.add(Signal::SIGTERM);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&unblock), None);
    if abort {
        return Ok(exit_code.load(Ordering::SeqCst) as i32);
    }
    if stopping.load(Ordering::SeqCst) {
        // Stopped by Ctrl-C: v2 exits 130.
        return Ok(130);
    }
    Ok(0)
}
