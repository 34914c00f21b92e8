//! The compose commands that act on a project through the daemon, one file per group:
//! [`up`] (up, create, start, scale), [`down`], [`lifecycle`] (stop, restart, kill, rm,
//! pause, unpause, wait), [`ps`] (ps, ls, images, top, port), [`logs`], [`exec`] (exec,
//! run), [`images`] (pull, push, build).

pub mod down;
pub mod exec;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod ps;
pub mod up;

use anyhow::Result;
use berth_client::Client;

use crate::api::{self, OneOff, Summary};
use crate::cli::{ComposeArgs, ComposeCommand};
use crate::load::Loaded;
use crate::model::Project;

/// Runs a command that needs the project and the daemon.
pub fn run(args: &ComposeArgs, host: &dyn crate::cli::Host) -> Result<i32> {
    // With no compose file but a project name, these work from the containers' labels,
    // as v2's do; a file that is there but wrong is still an error.
    let loaded = crate::cli::load_project(args);
    let project = match (loaded, &args.command) {
        (Ok(Loaded { project, .. }), _) => project,
        (
            Err(e),
            ComposeCommand::Down(_)
            | ComposeCommand::Ps(_)
            | ComposeCommand::Stop(_)
            | ComposeCommand::Logs(_),
        ) if args.project_name.is_some()
            && e.to_string().starts_with("no configuration file provided") =>
        {
            Project {
                name: args.project_name.clone().unwrap_or_default(),
                ..Default::default()
            }
        }
        (Err(e), _) => return Err(e),
    };
    let client = host.connect()?;
    let c = &client;
    let p = &project;
    match &args.command {
        ComposeCommand::Up(a) => up::up(c, p, args, a),
        ComposeCommand::Create(a) => up::create(c, p, args, a),
        ComposeCommand::Start(a) => up::start(c, p, a),
        ComposeCommand::Scale(a) => up::scale(c, p, args, a),
        ComposeCommand::Down(a) => down::down(c, p, a),
        ComposeCommand::Stop(a) => lifecycle::stop(c, p, a),
        ComposeCommand::Restart(a) => lifecycle::restart(c, p, a),
        ComposeCommand::Kill(a) => lifecycle::kill(c, p, a),
        ComposeCommand::Rm(a) => lifecycle::rm(c, p, a),
        ComposeCommand::Pause(a) => lifecycle::pause(c, p, a, true),
        ComposeCommand::Unpause(a) => lifecycle::pause(c, p, a, false),
        ComposeCommand::Wait(a) => lifecycle::wait(c, p, a),
        ComposeCommand::Ps(a) => ps::ps(c, p, a),
        ComposeCommand::Images(a) => ps::images(c, p, a),
        ComposeCommand::Top(a) => ps::top(c, p, a),
        ComposeCommand::Port(a) => ps::port(c, p, a),
        ComposeCommand::Logs(a) => logs::logs(c, p, a),
        ComposeCommand::Exec(a) => exec::exec(c, p, a),
        ComposeCommand::Run(a) => exec::run(c, p, args, a),
        ComposeCommand::Pull(a) => images::pull(c, p, a),
        ComposeCommand::Push(a) => images::push(c, p, a),
        ComposeCommand::Build(a) => images::build(c, p, a),
        ComposeCommand::Cp(a) => exec::cp(c, p, a, host),
        ComposeCommand::Events(a) => logs::events(c, p, a),
        ComposeCommand::Config(_) | ComposeCommand::Version(_) | ComposeCommand::Ls(_) => {
            unreachable!("handled without a project")
        }
    }
}

/// The project's service containers (not one-offs), of the named services (all when
/// none), stopped ones included.
pub fn service_containers(
    client: &Client,
    project: &Project,
    services: &[String],
) -> Result<Vec<Summary>> {
    let all = api::project_containers(client, &project.name, OneOff::Exclude, true)?;
    Ok(all
        .into_iter()
        .filter(|c| services.is_empty() || services.iter().any(|s| s == c.service()))
        .collect())
}

/// Checks that named services exist in the model.
pub fn check_services(project: &Project, services: &[String]) -> Result<()> {
    if project.services.is_empty() {
        return Ok(());
    }
    for s in services {
        if !project.services.contains_key(s) && !project.disabled.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    Ok(())
}

/// The name v2 shows for a container in prefixes and messages: `<service>-<n>` when it has
/// its default name, else its name.
pub fn display_name(project: &str, c: &Summary) -> String {
    let default = format!("{project}-{}-{}", c.service(), c.number());
    if c.name == default {
        format!("{}-{}", c.service(), c.number())
    } else {
        c.name.clone()
    }
}
