//! `pull`, `push` and `build` for a project's services.

use anyhow::{bail, Result};
use berth_client::client::{with_query, Payload};
use berth_client::Client;
use clap::Args;

use crate::api;
use crate::cmd::check_services;
use crate::cmd::up::ServicesArgs;
use crate::converge::{self, Progress};
use crate::model::Project;
use crate::naming;

#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    /// Ignore images that can be built.
    #[arg(long = "ignore-buildable")]
    pub ignore_buildable: bool,
    /// Pull what it can and ignores images with pull failures.
    #[arg(long = "ignore-pull-failures")]
    pub ignore_pull_failures: bool,
    /// Pull without printing progress information.
    #[arg(short, long)]
    pub quiet: bool,
    /// Services.
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Don't print anything to STDOUT.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set build-time variables for services.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Services.
    pub services: Vec<String>,
}

fn names<'a>(project: &'a Project, services: &'a [String]) -> Vec<&'a String> {
    project
        .services
        .keys()
        .filter(|k| services.is_empty() || services.contains(k))
        .collect()
}

pub fn pull(client: &Client, project: &Project, a: &PullArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::quiet(a.quiet);
    let mut failed = false;
    for name in names(project, &a.services) {
        let s = &project.services[name];
        if s.image.is_empty() || (a.ignore_buildable && s.build.is_some()) {
            continue;
        }
        if let Err(e) = converge::pull_image(client, &s.image, &progress, a.quiet) {
            if a.ignore_pull_failures || s.build.is_some() {
                eprintln!("WARN[0000] {name}: {e:#}");
                failed = true;
            } else {
                return Err(e);
            }
        }
    }
    let _ = failed;
    Ok(0)
}

pub fn push(client: &Client, project: &Project, a: &ServicesArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::default();
    for name in names(project, &a.services) {
        let s = &project.services[name];
        if s.build.is_none() || s.image.is_empty() {
            continue;
        }
        let (repo, tag) = converge::split_tag(&s.image);
        let path = with_query(&format!("/images/{repo}/push"), &[("tag", tag)]);
        progress.event("Image", &s.image, "Pushing");
        let mut resp = client.send("POST", &path, Payload::None)?;
        if let Some(e) = api::drain_progress(&mut resp, &mut |_| {})? {
            bail!("pushing {}: {e}", s.image);
        }
        progress.event("Image", &s.image, "Pushed");
    }
    Ok(0)
}

pub fn build(client: &Client, project: &Project, a: &BuildArgs) -> Result<i32> {
    check_services(project, &a.services)?;
    let progress = Progress::quiet(a.quiet);
    let mut project = project.clone();
    for (name, s) in project.services.iter_mut() {
        if !a.services.is_empty() && !a.services.contains(name) {
            continue;
        }
        let Some(b) = s.build.as_mut() else { continue };
        b.no_cache |= a.no_cache;
        b.pull |= a.pull;
        for arg in &a.build_args {
            let (k, v) = match arg.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), std::env::var(arg).ok()),
            };
            b.args.insert(k, v);
        }
    }
    for name in names(&project, &a.services) {
        let s = &project.services[name];
        if s.build.is_none() {
            continue;
        }
        let image = naming::image_name(&project.name, name, s);
        crate::build::build_service(client, &project, name, &image, &progress)?;
    }
    Ok(0)
}
