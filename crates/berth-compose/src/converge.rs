//! Bringing the daemon to a project's model, as `up`/`create`/`start` do: networks and
//! volumes ensured, images pulled or built, containers created or recreated where their
//! config hash or image changed (and left alone where not), started in dependency order
//! with each `depends_on` condition waited for. Services with no dependency between them
//! converge in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use berth_client::client::{with_query, Payload};
use berth_client::Client;
use serde_json::{json, Value};

use crate::api::{self, OneOff, Summary};
use crate::convert::{self, Resolved, Target};
use crate::hash;
use crate::model::{Project, Service};
use crate::naming;

/// Progress lines on stderr, as Docker Compose's plain progress prints them.
#[derive(Debug, Default)]
pub struct Progress {
    lock: Mutex<()>,
    pub quiet: bool,
}

impl Progress {
    pub fn quiet(quiet: bool) -> Progress {
        Progress {
            lock: Mutex::new(()),
            quiet,
        }
    }

    pub fn event(&self, kind: &str, name: &str, state: &str) {
        if self.quiet {
            return;
        }
        let _g = self.lock.lock();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, " {kind} {name}  {state}");
    }
}

/// How `up`/`create` treat existing containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recreate {
    /// When the config hash or image changed.
    #[default]
    Diverged,
    Force,
    Never,
}

/// When images are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildPolicy {
    /// When missing.
    #[default]
    Missing,
    Always,
    Never,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub services: Vec<String>,
    pub no_deps: bool,
    pub recreate: Recreate,
    pub build: BuildPolicy,
    /// `--pull`: always, missing, never (overrides the services' pull_policy).
    pub pull: Option<String>,
    pub scale: BTreeMap<String, u32>,
    pub remove_orphans: bool,
    pub timeout: Option<i64>,
    pub quiet_pull: bool,
}

/// The services an operation covers: the named ones (all when none) and, unless
/// `no_deps`, what they depend on.
pub fn selected(project: &Project, names: &[String], no_deps: bool) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = if names.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        for n in names {
            if !project.services.contains_key(n) {
                bail!("no such service: {n}");
            }
        }
        names.to_vec()
    };
    while let Some(n) = todo.pop() {
        if !out.insert(n.clone()) || no_deps {
            continue;
        }
        if let Some(s) = project.services.get(&n) {
            for dep in s.depends_on.keys() {
                if project.services.contains_key(dep) {
                    todo.push(dep.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Services grouped in levels: each level depends only on earlier ones.
pub fn levels(project: &Project, services: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while done.len() < services.len() {
        let level: Vec<String> = services
            .iter()
            .filter(|s| !done.contains(*s))
            .filter(|s| {
                project.services[*s]
                    .depends_on
                    .keys()
                    .all(|d| done.contains(d) || !services.contains(d))
            })
            .cloned()
            .collect();
        if level.is_empty() {
            // A cycle; the loader refuses those, so this only guards the loop.
            out.push(
                services
                    .iter()
                    .filter(|s| !done.contains(*s))
                    .cloned()
                    .collect(),
            );
            break;
        }
        done.extend(level.iter().cloned());
        out.push(level);
    }
    out
}

/// Runs `f` for every service of every level, a level's services in parallel.
pub fn in_dependency_order(
    levels: &[Vec<String>],
    f: &(dyn Fn(&str) -> Result<()> + Sync),
) -> Result<()> {
    for level in levels {
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = level.iter().map(|s| scope.spawn(move || f(s))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a worker panicked")))
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    Ok(())
}

/// The number of containers a service wants.
pub fn scale_of(service: &Service, overrides: &BTreeMap<String, u32>) -> u32 {
    if let Some(n) = overrides.get(&service.name) {
        return *n;
    }
    service
        .scale
        .or(service.deploy.as_ref().and_then(|d| d.replicas))
        .map(|n| n.max(0) as u32)
        .unwrap_or(1)
}

/// The labels common to every container of the project.
pub fn project_labels(
    project: &Project,
    env_files: &[std::path::PathBuf],
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(naming::PROJECT.into(), project.name.clone());
    l.insert(naming::VERSION.into(), naming::COMPOSE_VERSION.into());
    l.insert(
        naming::WORKING_DIR.into(),
        project.working_dir.display().to_string(),
    );
    l.insert(
        naming::CONFIG_FILES.into(),
        project
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    if !env_files.is_empty() {
        l.insert(
            naming::ENVIRONMENT_FILE.into(),
            env_files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    l
}

/// `depends_on` as the label v2 writes (`dep:condition:restart`, sorted here).
pub fn depends_on_label(service: &Service) -> String {
    service
        .depends_on
        .iter()
        .map(|(d, c)| format!("{d}:{}:{}", c.condition, c.restart))
        .collect::<Vec<_>>()
        .join(",")
}

/// The state one `up` works in.
#[derive(Debug)]
pub struct Converger<'a> {
    pub client: &'a Client,
    pub project: &'a Project,
    pub opts: &'a Options,
    pub progress: &'a Progress,
    pub base_labels: BTreeMap<String, String>,
    /// Image IDs by image name, filled by [`Converger::ensure_images`].
    pub image_ids: Mutex<BTreeMap<String, String>>,
}

impl<'a> Converger<'a> {
    pub fn new(
        client: &'a Client,
        project: &'a Project,
        opts: &'a Options,
        progress: &'a Progress,
        env_files: &[std::path::PathBuf],
    ) -> Converger<'a> {
        Converger {
            client,
            project,
            opts,
            progress,
            base_labels: project_labels(project, env_files),
            image_ids: Mutex::new(BTreeMap::new()),
        }
    }

    /// Networks the selected services use: created when missing, refused when a network
    /// of that name belongs to something else.
    pub fn ensure_networks(&self, services: &BTreeSet<String>) -> Result<()> {
        let used: BTreeSet<&String> = services
            .iter()
            .flat_map(|s| self.project.services[s].networks.keys())
            .collect();
        for key in used {
            let Some(net) = self.project.networks.get(key) else {
                continue;
            };
            let existing = api::inspect_network(self.client, &net.name)?;
            if net.external {
                if existing.is_none() {
                    bail!(
                        "network {} declared as external, but could not be found",
                        net.name
                    );
                }
                continue;
            }
            if let Some(found) = existing {
                let labels = &found["Labels"];
                let project = labels[naming::PROJECT].as_str().unwrap_or("");
                if project.is_empty() {
                    eprintln!(
                        "WARN[0000] a network with name {} exists but was not created by compose.\nSet `external: true` to use an existing network",
                        net.name
                    );
                } else if project != self.project.name
                    || labels[naming::NETWORK].as_str().unwrap_or("") != key
                {
                    bail!(
                        "network {} was found but has incorrect label {} set to {:?} (expected: {:?})",
                        net.name,
                        naming::NETWORK,
                        labels[naming::NETWORK].as_str().unwrap_or(""),
                        key
                    );
                }
                continue;
            }
            let mut labels: BTreeMap<String, String> = net.labels.clone();
            labels.insert(naming::NETWORK.into(), key.clone());
            labels.insert(naming::PROJECT.into(), self.project.name.clone());
            labels.insert(naming::VERSION.into(), naming::COMPOSE_VERSION.into());
            labels.insert(naming::CONFIG_HASH.into(), hash::network_hash(net));
            let mut body = json!({
                "Name": net.name,
                "Driver": net.driver,
                "Options": net.driver_opts,
                "Internal": net.internal,
                "Attachable": net.attachable,
                "Labels": labels,
                "CheckDuplicate": true,
            });
            if !net.ipam.driver.is_empty() || !net.ipam.config.is_empty() {
                let config: Vec<Value> = net
                    .ipam
                    .config
                    .iter()
                    .map(|p| {
                        json!({
                            "Subnet": p.subnet,
                            "Gateway": p.gateway,
                            "IPRange": p.ip_range,
                            "AuxiliaryAddresses": p.aux_addresses,
                        })
                    })
                    .collect();
                body["IPAM"] = json!({"Driver": net.ipam.driver, "Config": config});
            }
            if let Some(v4) = net.enable_ipv4 {
                body["EnableIPv4"] = json!(v4);
            }
            if let Some(v6) = net.enable_ipv6 {
                body["EnableIPv6"] = json!(v6);
            }
            self.progress.event("Network", &net.name, "Creating");
            api::create_network(self.client, &body)
                .with_context(|| format!("creating network {}", net.name))?;
            self.progress.event("Network", &net.name, "Created");
        }
        Ok(())
    }

    /// Named volumes the selected services use: created when missing.
    pub fn ensure_volumes(&self, services: &BTreeSet<String>) -> Result<()> {
        let used: BTreeSet<&String> = services
            .iter()
            .flat_map(|s| self.project.services[s].volumes.iter())
            .filter(|v| v.kind == "volume" && !v.source.is_empty())
            .map(|v| &v.source)
            .collect();
        for key in used {
            let Some(vol) = self.project.volumes.get(key) else {
                continue;
            };
            let existing = api::inspect_volume(self.client, &vol.name)?;
            if vol.external {
                if existing.is_none() {
                    bail!("external volume \"{}\" not found", vol.name);
                }
                continue;
            }
            if let Some(found) = existing {
                let project = found["Labels"][naming::PROJECT].as_str().unwrap_or("");
                if project.is_empty() {
                    eprintln!(
                        "WARN[0000] volume \"{}\" already exists but was not created by Docker Compose. Use `external: true` to use an existing volume",
                        vol.name
                    );
                }
                continue;
            }
            let mut labels: BTreeMap<String, String> = vol.labels.clone();
            labels.insert(naming::VOLUME.into(), key.clone());
            labels.insert(naming::PROJECT.into(), self.project.name.clone());
            labels.insert(naming::VERSION.into(), naming::COMPOSE_VERSION.into());
            labels.insert(naming::CONFIG_HASH.into(), hash::volume_hash(vol));
            let body = json!({
                "Name": vol.name,
                "Driver": vol.driver,
                "DriverOpts": vol.driver_opts,
                "Labels": labels,
            });
            self.progress
                .event("Volume", &format!("\"{}\"", vol.name), "Creating");
            api::create_volume(self.client, &body)
                .with_context(|| format!("creating volume {}", vol.name))?;
            self.progress
                .event("Volume", &format!("\"{}\"", vol.name), "Created");
        }
        Ok(())
    }

    /// Images: built or pulled as the pull policy and `--build`/`--pull` say; their IDs
    /// recorded for the `com.docker.compose.image` label.
    pub fn ensure_images(&self, services: &BTreeSet<String>) -> Result<()> {
        for name in services {
            let s = &self.project.services[name];
            let image = naming::image_name(&self.project.name, name, s);
            let policy = self
                .opts
                .pull
                .clone()
                .unwrap_or_else(|| s.pull_policy.clone());
            let present = api::inspect_image(self.client, &image)?;
            let must_build = s.build.is_some()
                && match self.opts.build {
                    BuildPolicy::Always => true,
                    BuildPolicy::Never => false,
                    BuildPolicy::Missing => present.is_none() || policy == "build",
                };
            if must_build {
                crate::build::build_service(
                    self.client,
                    self.project,
                    name,
                    &image,
                    self.progress,
                )?;
            } else {
                let pull = match policy.as_str() {
                    "always" => true,
                    "never" => false,
                    "build" => false,
                    "daily" | "weekly" => present.as_ref().is_none_or(|i| stale(&policy, i)),
                    p if p.starts_with("every_") => present.as_ref().is_none_or(|i| stale(p, i)),
                    _ => present.is_none(),
                };
                if pull && !(s.build.is_some() && present.is_some()) {
                    if let Err(e) =
                        pull_image(self.client, &image, self.progress, self.opts.quiet_pull)
                    {
                        if s.build.is_none() {
                            return Err(e);
                        }
                        crate::build::build_service(
                            self.client,
                            self.project,
                            name,
                            &image,
                            self.progress,
                        )?;
                    }
                } else if present.is_none() && policy == "never" && s.build.is_none() {
                    bail!("image {image} not found and pull_policy is never");
                }
            }
            let id = api::inspect_image(self.client, &image)?
                .and_then(|i| i["Id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            self.image_ids
                .lock()
                .map_err(|_| anyhow!("lock poisoned"))?
                .insert(image, id);
        }
        Ok(())
    }

    fn image_id(&self, image: &str) -> String {
        self.image_ids
            .lock()
            .ok()
            .and_then(|m| m.get(image).cloned())
            .unwrap_or_default()
    }

    /// `service:x` references resolved to x's first container, as v2 resolves them
    /// before hashing.
    fn resolve(&self, s: &Service) -> Result<(Service, Resolved)> {
        let mut s = s.clone();
        let mut r = Resolved::default();
        let first_of = |svc: &str| -> Result<String> {
            let list =
                api::project_containers(self.client, &self.project.name, OneOff::Exclude, true)?;
            list.into_iter()
                .find(|c| c.service() == svc)
                .map(|c| c.id)
                .ok_or_else(|| anyhow!("service {svc:?} has no container to share"))
        };
        for (field, slot) in [("network_mode", 0), ("ipc", 1), ("pid", 2)] {
            let value = match field {
                "network_mode" => &mut s.network_mode,
                "ipc" => &mut s.ipc,
                _ => &mut s.pid,
            };
            if let Some(svc) = value.strip_prefix("service:") {
                let id = first_of(svc)?;
                *value = format!("container:{id}");
                let v = Some(value.clone());
                match slot {
                    0 => r.network_mode = v,
                    1 => r.ipc = v,
                    _ => r.pid = v,
                }
            }
        }
        let mut from = Vec::new();
        for v in &s.volumes_from {
            if let Some(c) = v.strip_prefix("container:") {
                from.push(c.split(':').next().unwrap_or(c).to_owned());
            } else {
                let svc = v.split(':').next().unwrap_or(v);
                from.push(first_of(svc)?);
            }
        }
        if !from.is_empty() {
            s.volumes_from = from.clone();
            r.volumes_from = from;
        }
        Ok((s, r))
    }

    fn labels_for(
        &self,
        s: &Service,
        hash: &str,
        image: &str,
        number: Option<u32>,
    ) -> BTreeMap<String, String> {
        let mut l = s.labels.clone();
        l.extend(self.base_labels.clone());
        l.insert(naming::SERVICE.into(), s.name.clone());
        l.insert(naming::CONFIG_HASH.into(), hash.to_owned());
        l.insert(naming::DEPENDS_ON.into(), depends_on_label(s));
        match number {
            Some(n) => {
                l.insert(naming::CONTAINER_NUMBER.into(), n.to_string());
                l.insert(naming::ONEOFF.into(), "False".into());
            }
            None => {
                l.insert(naming::ONEOFF.into(), "True".into());
            }
        }
        let id = self.image_id(image);
        if !id.is_empty() {
            l.insert(naming::IMAGE.into(), id);
        }
        l
    }

    /// Creates one container of a service; its ID.
    fn create(
        &self,
        s: &Service,
        resolved: &Resolved,
        name: &str,
        number: u32,
        hash: &str,
        replace: Option<&str>,
    ) -> Result<String> {
        let image = naming::image_name(&self.project.name, &s.name, s);
        let mut labels = self.labels_for(s, hash, &image, Some(number));
        if let Some(r) = replace {
            labels.insert(naming::REPLACE.into(), r.to_owned());
        }
        let final_name = naming::container_name(&self.project.name, s, number);
        let target = Target {
            project: self.project,
            service: s,
            container_name: &final_name,
            image: &image,
            labels,
            resolved: resolved.clone(),
            oneoff: false,
            links: self.links(s)?,
            security_opt: security_opts(self.project, s)?,
        };
        let body = convert::create_request(&target);
        api::create_container(self.client, name, &s.platform, &body)
            .with_context(|| format!("creating container {name}"))
    }

    /// `links` and `external_links` as `container:alias` pairs.
    fn links(&self, s: &Service) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !s.links.is_empty() {
            let all =
                api::project_containers(self.client, &self.project.name, OneOff::Exclude, true)?;
            for l in &s.links {
                let (svc, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                for c in all.iter().filter(|c| c.service() == svc) {
                    out.push(format!("{}:{alias}", c.name));
                }
            }
        }
        for l in &s.external_links {
            let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            out.push(format!("{name}:{alias}"));
        }
        Ok(out)
    }

    /// Whether a container must be recreated to match the model.
    fn diverged(&self, c: &Summary, expected_hash: &str, image: &str) -> Result<bool> {
        match self.opts.recreate {
            Recreate::Never => return Ok(false),
            Recreate::Force => return Ok(true),
            Recreate::Diverged => {}
        }
        if c.label(naming::CONFIG_HASH) != expected_hash {
            return Ok(true);
        }
        if c.label(naming::IMAGE) != self.image_id(image) {
            return Ok(true);
        }
        if c.state == "running" {
            let inspect = api::inspect_container(self.client, &c.id)?;
            let attached = &inspect["NetworkSettings"]["Networks"];
            let s = &self.project.services[c.service()];
            if s.network_mode.is_empty() {
                for key in s.networks.keys() {
                    let Some(net) = self.project.networks.get(key) else {
                        continue;
                    };
                    if attached.get(&net.name).is_none() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Creates, recreates or removes a service's containers to match its scale and
    /// config. Containers left as they were are returned too; starting is separate.
    pub fn converge_service(&self, name: &str) -> Result<()> {
        let model = &self.project.services[name];
        let (s, resolved) = self.resolve(model)?;
        let expected = hash::service_hash(&s);
        let image = naming::image_name(&self.project.name, name, &s);
        let mut existing: Vec<Summary> =
            api::project_containers(self.client, &self.project.name, OneOff::Exclude, true)?
                .into_iter()
                .filter(|c| c.service() == name)
                .collect();
        existing.sort_by_key(Summary::number);
        let want = scale_of(model, &self.opts.scale) as usize;
        // Extra containers: the highest numbers go.
        while existing.len() > want {
            let c = existing.pop().expect("non-empty");
            self.progress.event("Container", &c.name, "Stopping");
            api::stop(self.client, &c.id, self.opts.timeout)?;
            api::remove(self.client, &c.id, false, false)?;
            self.progress.event("Container", &c.name, "Removed");
        }
        for c in &existing {
            if self.diverged(c, &expected, &image)? {
                let number = c.number().max(1);
                let final_name = naming::container_name(&self.project.name, &s, number);
                let tmp = format!("{}_{final_name}", &c.id[..12.min(c.id.len())]);
                self.progress.event("Container", &final_name, "Recreate");
                let replace = if s.container_name.is_empty() {
                    format!("{name}-{number}")
                } else {
                    s.container_name.clone()
                };
                let id = self.create(&s, &resolved, &tmp, number, &expected, Some(&replace))?;
                api::stop(self.client, &c.id, self.opts.timeout)?;
                api::remove(self.client, &c.id, false, false)?;
                api::rename(self.client, &id, &final_name)?;
                self.progress.event("Container", &final_name, "Recreated");
                self.stop_dependents(name)?;
            } else if c.state == "running" {
                self.progress.event("Container", &c.name, "Running");
            }
        }
        let mut next = existing.iter().map(Summary::number).max().unwrap_or(0);
        for _ in existing.len()..want {
            next += 1;
            let container = naming::container_name(&self.project.name, &s, next);
            self.progress.event("Container", &container, "Creating");
            self.create(&s, &resolved, &container, next, &expected, None)?;
            self.progress.event("Container", &container, "Created");
        }
        Ok(())
    }

    /// Services that depend on `name` with `restart: true` are stopped when it is
    /// recreated; the start phase brings them back after it.
    fn stop_dependents(&self, name: &str) -> Result<()> {
        let dependents: Vec<&String> = self
            .project
            .services
            .iter()
            .filter(|(_, s)| s.depends_on.get(name).is_some_and(|d| d.restart))
            .map(|(k, _)| k)
            .collect();
        if dependents.is_empty() {
            return Ok(());
        }
        for c in api::project_containers(self.client, &self.project.name, OneOff::Exclude, false)? {
            if dependents.iter().any(|d| *d == c.service()) {
                self.progress.event("Container", &c.name, "Stopping");
                api::stop(self.client, &c.id, self.opts.timeout)?;
                self.progress.event("Container", &c.name, "Stopped");
            }
        }
        Ok(())
    }

    /// Removes containers of services the model no longer has (`--remove-orphans`), or
    /// warns about them.
    pub fn orphans(&self) -> Result<()> {
        let all = api::project_containers(self.client, &self.project.name, OneOff::Include, true)?;
        let orphans: Vec<&Summary> = all
            .iter()
            .filter(|c| {
                !self.project.services.contains_key(c.service())
                    && !self.project.disabled.contains_key(c.service())
                    || (c.oneoff() && c.state != "running" && self.opts.remove_orphans)
            })
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        if self.opts.remove_orphans {
            for c in orphans {
                self.progress.event("Container", &c.name, "Stopping");
                api::stop(self.client, &c.id, self.opts.timeout)?;
                api::remove(self.client, &c.id, false, false)?;
                self.progress.event("Container", &c.name, "Removed");
            }
        } else {
            let names: Vec<&str> = orphans
                .iter()
                .filter(|c| !c.oneoff())
                .map(|c| c.name.as_str())
                .collect();
            if !names.is_empty() {
                eprintln!(
                    "WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    names.join(" ")
                );
            }
        }
        Ok(())
    }

    /// Starts a service's containers that are not running, after waiting for its
    /// dependencies' conditions.
    pub fn start_service(&self, name: &str, deadline: Option<Instant>) -> Result<()> {
        let s = &self.project.services[name];
        for (dep, cond) in &s.depends_on {
            if !self.project.services.contains_key(dep) {
                continue;
            }
            if let Err(e) = self.wait_dependency(dep, &cond.condition, deadline) {
                if cond.required {
                    return Err(e);
                }
                eprintln!("WARN[0000] optional dependency {dep:?} failed: {e:#}");
            }
        }
        let containers: Vec<Summary> =
            api::project_containers(self.client, &self.project.name, OneOff::Exclude, true)?
                .into_iter()
                .filter(|c| c.service() == name)
                .collect();
        for c in containers {
            if c.state == "running" {
                continue;
            }
            if c.state == "paused" {
                api::unpause(self.client, &c.id)?;
                continue;
            }
            self.inject_files(s, &c.id)?;
            self.progress.event("Container", &c.name, "Starting");
            api::start(self.client, &c.id).with_context(|| format!("starting {}", c.name))?;
            self.progress.event("Container", &c.name, "Started");
            for hook in &s.post_start {
                run_hook(self.client, &c.id, hook)
                    .with_context(|| format!("post_start hook of {}", c.name))?;
            }
        }
        Ok(())
    }

    /// Waits for a dependency's condition; `service_started` only needs it started.
    fn wait_dependency(&self, dep: &str, condition: &str, deadline: Option<Instant>) -> Result<()> {
        if condition == "service_started" || condition.is_empty() {
            return Ok(());
        }
        if scale_of(&self.project.services[dep], &self.opts.scale) == 0 {
            return Ok(());
        }
        loop {
            let containers: Vec<Summary> =
                api::project_containers(self.client, &self.project.name, OneOff::Exclude, true)?
                    .into_iter()
                    .filter(|c| c.service() == dep)
                    .collect();
            let mut all_ok = !containers.is_empty();
            for c in &containers {
                let inspect = api::inspect_container(self.client, &c.id)?;
                let state = &inspect["State"];
                let status = state["Status"].as_str().unwrap_or("");
                let code = state["ExitCode"].as_i64().unwrap_or(0);
                match condition {
                    "service_healthy" => {
                        let health = state["Health"]["Status"].as_str();
                        match health {
                            None => bail!("dependency failed to start: container {} has no healthcheck configured", c.name),
                            Some("healthy") => {}
                            Some("unhealthy") => bail!("dependency failed to start: container {} is unhealthy", c.name),
                            Some(_) => all_ok = false,
                        }
                        if status == "exited" {
                            bail!(
                                "dependency failed to start: container {} exited ({code})",
                                c.name
                            );
                        }
                    }
                    "service_completed_successfully" => {
                        if status == "exited" {
                            if code != 0 {
                                bail!("service {dep:?} didn't complete successfully: exit {code}");
                            }
                        } else {
                            all_ok = false;
                        }
                    }
                    _ => {}
                }
            }
            if all_ok {
                self.progress.event(
                    "Container",
                    &containers
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if condition == "service_healthy" {
                        "Healthy"
                    } else {
                        "Exited"
                    },
                );
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                bail!("timeout waiting for dependencies");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Secrets and configs given by `content` or `environment` are copied into the
    /// container before it starts (mode 0444 unless set).
    fn inject_files(&self, s: &Service, id: &str) -> Result<()> {
        for (refs, objects, default_dir, kind) in [
            (&s.secrets, &self.project.secrets, "/run/secrets/", "secret"),
            (&s.configs, &self.project.configs, "/", "config"),
        ] {
            for r in refs {
                let Some(obj) = objects.get(&r.source) else {
                    continue;
                };
                let content = if !obj.environment.is_empty() {
                    match self.project.environment.get(&obj.environment) {
                        Some(v) => v.clone(),
                        None => bail!(
                            "environment variable {:?} required by {kind} {:?} is not set",
                            obj.environment,
                            r.source
                        ),
                    }
                } else if !obj.content.is_empty() {
                    obj.content.clone()
                } else {
                    continue;
                };
                let target = convert::file_target(&r.target, &r.source, default_dir);
                let mode = r
                    .mode
                    .as_deref()
                    .and_then(|m| u32::from_str_radix(m.trim_start_matches('0'), 8).ok())
                    .unwrap_or(0o444);
                let mut header = tar::Header::new_gnu();
                header.set_size(content.len() as u64);
                header.set_mode(mode);
                header.set_uid(r.uid.parse().unwrap_or(0));
                header.set_gid(r.gid.parse().unwrap_or(0));
                header.set_mtime(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                );
                let mut builder = tar::Builder::new(Vec::new());
                builder.append_data(
                    &mut header,
                    target.trim_start_matches('/'),
                    content.as_bytes(),
                )?;
                let bytes = builder.into_inner()?;
                api::put_archive(self.client, id, "/", &mut bytes.as_slice())
                    .with_context(|| format!("copying {kind} {} into the container", r.source))?;
            }
        }
        Ok(())
    }
}

/// Runs a lifecycle hook in a container, its output passed through; fails on a non-zero
/// exit.
pub fn run_hook(client: &Client, id: &str, hook: &crate::model::Hook) -> Result<()> {
    let env: Vec<String> = hook
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    let body = json!({
        "AttachStdout": true,
        "AttachStderr": true,
        "Cmd": hook.command.clone().unwrap_or_default(),
        "User": hook.user,
        "Privileged": hook.privileged,
        "WorkingDir": hook.working_dir,
        "Env": env,
    });
    let exec_id = api::exec_create(client, id, &body)?;
    let mut hijacked = client.hijack(
        "POST",
        &format!("/exec/{exec_id}/start"),
        Some(&json!({"Detach": false, "Tty": false})),
    )?;
    berth_client::stream::demux(&mut hijacked.reader)?;
    let code = api::exec_exit_code(client, &exec_id)?;
    if code != 0 {
        bail!("hook exited with code {code}");
    }
    Ok(())
}

/// `security_opt`, with a `seccomp=<file>` profile read (relative to the project
/// directory) and sent inline as its compact JSON, as v2 sends it.
pub fn security_opts(project: &Project, s: &Service) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for opt in &s.security_opt {
        let opt = opt.replacen(':', "=", usize::from(!opt.contains('=')));
        match opt.strip_prefix("seccomp=") {
            Some(file) if file != "unconfined" && !file.trim_start().starts_with('{') => {
                let path = project.working_dir.join(file);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("opening seccomp profile ({}) failed", path.display())
                })?;
                let v: Value = serde_json::from_str(&text)
                    .with_context(|| format!("seccomp profile {} is not JSON", path.display()))?;
                out.push(format!("seccomp={v}"));
            }
            _ => out.push(opt),
        }
    }
    Ok(out)
}

/// What berth compose cannot do, refused by name before anything is created.
pub fn check_supported(project: &Project, services: &BTreeSet<String>) -> Result<()> {
    for name in services {
        let s = &project.services[name];
        for (set, what) in [
            (s.use_api_socket, "use_api_socket"),
            (s.models.is_some(), "models"),
            (s.provider.is_some(), "provider"),
            (
                s.credential_spec.is_some(),
                "credential_spec (Windows only)",
            ),
        ] {
            if set {
                bail!("service {name:?}: {what} is not supported by berth compose");
            }
        }
        // What the Engine API has no place for is said, not dropped in silence.
        if let Some(d) = &s.deploy {
            let mut ignored = Vec::new();
            if d.resources
                .reservations
                .as_ref()
                .is_some_and(|r| r.cpus.is_some())
            {
                ignored.push("deploy.resources.reservations.cpus");
            }
            if let Some(p) = &d.restart_policy {
                if p.delay.is_some() {
                    ignored.push("deploy.restart_policy.delay");
                }
                if p.window.is_some() {
                    ignored.push("deploy.restart_policy.window");
                }
            }
            for what in ignored {
                eprintln!(
                    "WARN[0000] service {name:?}: {what} has no equivalent outside a swarm and is ignored"
                );
            }
        }
        for (refs, objects, kind) in [
            (&s.secrets, &project.secrets, "secret"),
            (&s.configs, &project.configs, "config"),
        ] {
            for r in refs {
                let Some(obj) = objects.get(&r.source) else {
                    continue;
                };
                if obj.external {
                    bail!("unsupported external {kind} {}", r.source);
                }
                if !obj.driver.is_empty() {
                    bail!("Docker Compose does not support {kind}s.*.driver");
                }
                if !obj.template_driver.is_empty() {
                    bail!("Docker Compose does not support {kind}s.*.template_driver");
                }
                if !obj.file.is_empty()
                    && (!r.uid.is_empty() || !r.gid.is_empty() || r.mode.is_some())
                {
                    eprintln!(
                        "WARN[0000] {kind}s `uid`, `gid` and `mode` are not supported, they will be ignored"
                    );
                }
                if s.read_only && obj.file.is_empty() {
                    bail!(
                        "cannot create {kind} {:?} in read-only service {name}: `file` is the sole supported option",
                        r.source
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether an image is older than a refresh pull policy allows (`daily`, `weekly`,
/// `every_<duration>`).
pub fn stale(policy: &str, image: &Value) -> bool {
    let interval = match policy {
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        p => match p.strip_prefix("every_") {
            Some(d) => crate::units::parse_duration(d)
                .map(|n| n / 1_000_000_000)
                .unwrap_or(0),
            None => return false,
        },
    };
    let created = image["Metadata"]["LastTagTime"]
        .as_str()
        .filter(|t| !t.starts_with("0001"))
        .or(image["Created"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match created {
        Some(t) => (chrono::Utc::now().timestamp() - t.timestamp()) > interval,
        None => true,
    }
}

/// Pulls an image, showing progress unless quiet.
pub fn pull_image(client: &Client, image: &str, progress: &Progress, quiet: bool) -> Result<()> {
    let (name, tag) = split_tag(image);
    let path = with_query("/images/create", &[("fromImage", name), ("tag", tag)]);
    progress.event("Image", image, "Pulling");
    let mut resp = client.send("POST", &path, Payload::None)?;
    let failed = if quiet || progress.quiet {
        api::drain_progress(&mut resp, &mut |_| {})?
    } else {
        let mut display = berth_client::progress::Display::new(
            std::io::stderr(),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
        display.show_stream(resp.body())?
    };
    if let Some(e) = failed {
        bail!("{e}");
    }
    progress.event("Image", image, "Pulled");
    Ok(())
}

/// `name[:tag]` split for the pull API (a digest stays in the name).
pub fn split_tag(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_owned(), String::new());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => (
            image[..image.len() - tag.len() - 1].to_owned(),
            tag.to_owned(),
        ),
        None => (image.to_owned(), "latest".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b:1"),
            ("127.0.0.1:5000/a/b".into(), "1".into())
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a".into(), "latest".into())
        );
    }
}
