//! `exec` (a command in a service's running container) and `run` (a one-off container of
//! a service, named `<project>-<service>-run-<12 hex>` and labelled oneoff=True).

use anyhow::{bail, Result};
use berth_client::stream::{self, Outcome};
use berth_client::Client;
use clap::Args;
use serde_json::json;

use crate::api;
use crate::cli::ComposeArgs;
use crate::cmd::{check_services, service_containers};
use crate::converge::{self, Converger, Options, Progress};
use crate::convert::{self, Target};
use crate::hash;
use crate::model::{Port, Project};
use crate::naming;

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Disable pseudo-TTY allocation. By default `docker compose exec` allocates a TTY.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Give extended privileges to the process.
    #[arg(long)]
    pub privileged: bool,
    /// Run the command as this user.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Override the entrypoint of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Disable pseudo-TTY allocation (default: auto-detected).
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Don't start linked services.
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Run as specified username or uid.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host.
    #[arg(long = "service-ports")]
    pub service_ports: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Add or override a label.
    #[arg(short, long = "label")]
    pub labels: Vec<String>,
    /// Bind mount a volume.
    #[arg(short, long = "volume")]
    pub volumes: Vec<String>,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// SERVICE:SRC_PATH or a local SRC_PATH.
    pub src: String,
    /// A local DEST_PATH or SERVICE:DEST_PATH.
    pub dest: String,
}

fn env_pairs(env: &[String]) -> Vec<String> {
    env.iter()
        .map(|e| {
            if e.contains('=') {
                e.clone()
            } else {
                match std::env::var(e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => e.clone(),
                }
            }
        })
        .collect()
}

pub fn exec(client: &Client, project: &Project, a: &ExecArgs) -> Result<i32> {
    check_services(project, std::slice::from_ref(&a.service))?;
    let containers = service_containers(client, project, std::slice::from_ref(&a.service))?;
    let Some(c) = containers.iter().find(|c| c.number() == a.index) else {
        bail!("service {:?} is not running", a.service);
    };
    if c.state != "running" {
        bail!("container {} is not running", c.name);
    }
    use std::io::IsTerminal;
    let tty = !a.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let body = json!({
        "AttachStdin": !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": tty,
        "Env": env_pairs(&a.env),
        "Cmd": a.command,
        "Privileged": a.privileged,
        "User": a.user.clone().unwrap_or_default(),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
    });
    let exec_id = api::exec_create(client, &c.id, &body)?;
    if a.detach {
        client.post(
            &format!("/exec/{exec_id}/start"),
            Some(&json!({"Detach": true, "Tty": tty})),
        )?;
        return Ok(0);
    }
    let _raw = if tty {
        stream::RawTerminal::enter()
    } else {
        None
    };
    let hijacked = client.hijack(
        "POST",
        &format!("/exec/{exec_id}/start"),
        Some(&json!({"Detach": false, "Tty": tty})),
    )?;
    if tty {
        stream::follow_window_size(client, &format!("/exec/{exec_id}/resize"));
    }
    let outcome = stream::pump(hijacked, true, tty)?;
    drop(_raw);
    if let Outcome::Detached = outcome {
        return Ok(0);
    }
    Ok(api::exec_exit_code(client, &exec_id)? as i32)
}

pub fn run(client: &Client, project: &Project, args: &ComposeArgs, a: &RunArgs) -> Result<i32> {
    check_services(project, std::slice::from_ref(&a.service))?;
    let mut svc = project.services[&a.service].clone();
    // Dependencies first, as `up` would bring them.
    let deps: Vec<String> = svc.depends_on.keys().cloned().collect();
    let progress = Progress::default();
    let opts = Options {
        services: deps.clone(),
        ..Default::default()
    };
    let conv = Converger::new(client, project, &opts, &progress, &args.env_files);
    let mut needed = converge::selected(project, std::slice::from_ref(&a.service), a.no_deps)?;
    converge::check_supported(project, &needed)?;
    conv.ensure_images(&needed)?;
    conv.ensure_networks(&needed)?;
    conv.ensure_volumes(&needed)?;
    needed.remove(&a.service);
    if !needed.is_empty() {
        let levels = converge::levels(project, &needed);
        converge::in_dependency_order(&levels, &|s| conv.converge_service(s))?;
        converge::in_dependency_order(&levels, &|s| conv.start_service(s, None))?;
    }

    use std::io::IsTerminal;
    let tty = !a.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    svc.tty = tty;
    svc.stdin_open = a.interactive || tty || !a.detach;
    if !a.command.is_empty() {
        svc.command = Some(a.command.clone());
    }
    if let Some(e) = &a.entrypoint {
        svc.entrypoint =
            Some(crate::shellwords::split(e).map_err(|e| anyhow::anyhow!("--entrypoint: {e}"))?);
    }
    if let Some(u) = &a.user {
        svc.user = u.clone();
    }
    if let Some(w) = &a.workdir {
        svc.working_dir = w.clone();
    }
    for e in env_pairs(&a.env) {
        match e.split_once('=') {
            Some((k, v)) => svc.environment.insert(k.to_owned(), Some(v.to_owned())),
            None => svc.environment.insert(e, None),
        };
    }
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        svc.labels.insert(k.to_owned(), v.to_owned());
    }
    if !a.service_ports {
        svc.ports.clear();
    }
    for p in &a.publish {
        for spec in crate::spec::parse_port(p).map_err(|e| anyhow::anyhow!("--publish {p}: {e}"))? {
            svc.ports.push(Port {
                mode: "ingress".into(),
                host_ip: spec.host_ip,
                target: spec.target,
                published: spec.published,
                protocol: spec.protocol,
                ..Default::default()
            });
        }
    }
    svc.restart.clear();
    if let Some(d) = svc.deploy.as_mut() {
        d.restart_policy = None;
    }
    // A one-off's slug: a fresh ID (its first 12 digits never all numeric), as v2's.
    let slug = berth_core::id::ContainerId::generate()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .as_str()
        .to_owned();
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{}", project.name, a.service, &slug[..12]));
    svc.container_name = name.clone();
    let image = naming::image_name(&project.name, &a.service, &svc);
    let mut labels = svc.labels.clone();
    labels.extend(converge::project_labels(project, &args.env_files));
    labels.insert(naming::SERVICE.into(), a.service.clone());
    labels.insert(naming::ONEOFF.into(), "True".into());
    labels.insert(naming::SLUG.into(), slug.clone());
    labels.insert(naming::CONFIG_HASH.into(), hash::service_hash(&svc));
    labels.insert(naming::DEPENDS_ON.into(), converge::depends_on_label(&svc));
    if let Some(id) =
        api::inspect_image(client, &image)?.and_then(|i| i["Id"].as_str().map(str::to_owned))
    {
        labels.insert(naming::IMAGE.into(), id);
    }
    let target = Target {
        project,
        service: &svc,
        container_name: &name,
        image: &image,
        labels,
        resolved: Default::default(),
        oneoff: true,
        links: Vec::new(),
        security_opt: converge::security_opts(project, &svc)?,
    };
    let mut body = convert::create_request(&target);
    // Extra `-v` binds.
    if let Some(binds) = body["HostConfig"]["Binds"].as_array_mut() {
        for v in &a.volumes {
            binds.push(json!(v));
        }
    }
    body["HostConfig"]["AutoRemove"] = json!(a.rm);
    let attach = !a.detach;
    body["AttachStdin"] = json!(attach && svc.stdin_open);
    body["StdinOnce"] = json!(attach && svc.stdin_open);
    let id = api::create_container(client, &name, &svc.platform, &body)?;
    if a.detach {
        api::start(client, &id)?;
        println!("{name}");
        return Ok(0);
    }
    let hijacked = client.hijack(
        "POST",
        &format!("/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
        None,
    )?;
    // The exit code is asked for before the start, so a container removed on exit
    // (--rm) still reports it.
    let waiter = {
        let client = client.clone();
        let id = id.clone();
        let condition = if a.rm { "removed" } else { "next-exit" };
        std::thread::spawn(move || -> Result<i64> {
            let resp = client
                .post(
                    &format!("/containers/{id}/wait?condition={condition}"),
                    None,
                )?
                .json()?;
            Ok(resp["StatusCode"].as_i64().unwrap_or_default())
        })
    };
    let _raw = if tty {
        stream::RawTerminal::enter()
    } else {
        None
    };
    api::start(client, &id)?;
    if tty {
        stream::follow_window_size(client, &format!("/containers/{id}/resize"));
    }
    let outcome = stream::pump(hijacked, svc.stdin_open, tty)?;
    drop(_raw);
    if let Outcome::Detached = outcome {
        return Ok(0);
    }
    let code = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the wait for the container panicked"))??;
    Ok(code as i32)
}

/// `cp`: the service side named by its container, then the CLI's own copy.
pub fn cp(
    client: &Client,
    project: &Project,
    a: &CpArgs,
    host: &dyn crate::cli::Host,
) -> Result<i32> {
    let resolve = |arg: &str| -> Result<String> {
        let Some((svc, path)) = arg.split_once(':') else {
            return Ok(arg.to_owned());
        };
        if svc.contains('/') || svc.is_empty() {
            return Ok(arg.to_owned());
        }
        check_services(project, &[svc.to_owned()])?;
        let containers = service_containers(client, project, &[svc.to_owned()])?;
        let c = containers
            .iter()
            .find(|c| c.number() == a.index)
            .ok_or_else(|| anyhow::anyhow!("service {svc:?} has no container {}", a.index))?;
        Ok(format!("{}:{path}", c.name))
    };
    let src = resolve(&a.src)?;
    let dest = resolve(&a.dest)?;
    if src == a.src && dest == a.dest {
        bail!("one of SRC and DEST must be SERVICE:PATH");
    }
    host.copy(client, &src, &dest, a.archive, a.follow_link)
}
