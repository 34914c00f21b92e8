//! Building a service's image through `POST /build`, as `up --build`, `build` and a
//! missing image do: the context uploaded as a tar (so a real Docker daemon builds it
//! too), build args, labels, target, cache sources, network, extra hosts and shm size
//! passed as the API's query. What the classic builder API cannot carry (SSH agents,
//! build secrets, cache exports, several platforms) is refused by name.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use berth_client::client::with_query;
use berth_client::Client;
use serde_json::json;

use crate::api;
use crate::converge::Progress;
use crate::model::Project;

/// The file name an inline Dockerfile gets inside the uploaded context.
const INLINE_DOCKERFILE: &str = ".berth-compose-inline.Dockerfile";

pub fn build_service(
    client: &Client,
    project: &Project,
    service: &str,
    image: &str,
    progress: &Progress,
) -> Result<()> {
    let s = &project.services[service];
    let Some(b) = &s.build else {
        bail!("service {service:?} has no build section");
    };
    for (set, what) in [
        (b.ssh.is_some(), "build.ssh"),
        (!b.secrets.is_empty(), "build.secrets"),
        (!b.cache_to.is_empty(), "build.cache_to"),
        (
            b.platforms.len() > 1,
            "build.platforms with several platforms",
        ),
        (
            !b.additional_contexts.is_empty(),
            "build.additional_contexts",
        ),
        (!b.entitlements.is_empty(), "build.entitlements"),
    ] {
        if set {
            bail!("service {service:?}: {what} is not supported by berth compose (the Engine API's builder has no such option)");
        }
    }
    if b.context.contains("://") || b.context.starts_with("git@") {
        bail!(
            "service {service:?}: remote build contexts ({}) are not supported",
            b.context
        );
    }
    let dir = Path::new(&b.context);
    if !dir.is_dir() {
        bail!(
            "service {service:?}: build context {} is not a directory",
            dir.display()
        );
    }
    let mut query: Vec<(&str, String)> = vec![("t", image.to_owned())];
    for t in &b.tags {
        query.push(("t", t.clone()));
    }
    let args: serde_json::Map<String, serde_json::Value> = b
        .args
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), json!(v))))
        .collect();
    query.push(("buildargs", serde_json::Value::Object(args).to_string()));
    query.push(("labels", json!(b.labels).to_string()));
    if !b.cache_from.is_empty() {
        query.push(("cachefrom", json!(b.cache_from).to_string()));
    }
    if !b.target.is_empty() {
        query.push(("target", b.target.clone()));
    }
    if !b.network.is_empty() {
        query.push(("networkmode", b.network.clone()));
    }
    if !b.extra_hosts.is_empty() {
        let hosts: Vec<String> = b
            .extra_hosts
            .iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect();
        query.push(("extrahosts", hosts.join(",")));
    }
    if b.shm_size.0 != 0 {
        query.push(("shmsize", b.shm_size.0.to_string()));
    }
    if b.no_cache {
        query.push(("nocache", "1".into()));
    }
    if b.pull {
        query.push(("pull", "1".into()));
    }
    if let Some(p) = b
        .platforms
        .first()
        .or(Some(&s.platform))
        .filter(|p| !p.is_empty())
    {
        query.push(("platform", p.clone()));
    }
    let mut tar = if b.dockerfile_inline.is_empty() {
        // A Dockerfile outside the context is sent inside it under its own name.
        let df = dir.join(&b.dockerfile);
        match df.strip_prefix(dir) {
            Ok(rel) => {
                let rel = rel.to_string_lossy().into_owned();
                query.push(("dockerfile", rel.clone()));
                berth_client::context::tar_stream(dir, Some(&rel))?
            }
            Err(_) => {
                let content =
                    std::fs::read(&df).with_context(|| format!("reading {}", df.display()))?;
                query.push(("dockerfile", INLINE_DOCKERFILE.into()));
                berth_client::context::tar_stream_with(
                    dir,
                    None,
                    Some((INLINE_DOCKERFILE.into(), content)),
                )?
            }
        }
    } else {
        query.push(("dockerfile", INLINE_DOCKERFILE.into()));
        berth_client::context::tar_stream_with(
            dir,
            None,
            Some((
                INLINE_DOCKERFILE.into(),
                b.dockerfile_inline.clone().into_bytes(),
            )),
        )?
    };
    progress.event("Service", service, "Building");
    let mut resp = client.upload(
        "POST",
        &with_query("/build", &query),
        "application/x-tar",
        &mut tar,
    )?;
    let quiet = progress.quiet;
    let failed = api::drain_progress(&mut resp, &mut |m| {
        if quiet {
            return;
        }
        if let Some(line) = m["stream"].as_str() {
            eprint!("{line}");
        }
    })?;
    if let Some(e) = failed {
        bail!("failed to build service {service:?}: {e}");
    }
    progress.event("Service", service, "Built");
    Ok(())
}
