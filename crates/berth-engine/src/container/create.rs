//! `docker create`: a request and its image's config become a record ([`new_record`], pure:
//! Docker's merge of the image's defaults into the request, the HostConfig normalized), then
//! the engine claims the name, resolves networks and mounts, and stores it.

use berth_core::timing::Step;
use std::collections::HashMap;

use berth_api::containers::CreateRequest;
use berth_image::oci::RunConfig;
use bollard_stubs::models::{
    ContainerConfig, ContainerCreateResponse, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigLogConfig,
};

use super::record::{now, valid_name, LogDriver, LogOptions, Record, RestartPolicy, State};
use crate::error::{EngineError, Result};
use crate::{humanize, Engine};

/// Docker's smallest memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The record of a new container `id` named `name`, from `req` over the image's config
/// (`image` as the user named it, `image_id` what it resolved to). Mounts, networks and the
/// health check are the engine's to fill in.
pub fn new_record(
    id: &str,
    name: &str,
    req: &CreateRequest,
    image: &str,
    image_id: &str,
    ic: &RunConfig,
) -> Result<Record> {
    let body = &req.body;
    // Docker's merge (daemon/commit.go): an explicit entrypoint replaces the image's and its
    // CMD; otherwise a missing Cmd comes from the image.
    let user_entrypoint = body
        .entrypoint
        .clone()
        .map(|e| e.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>());
    let entrypoint = user_entrypoint
        .clone()
        .unwrap_or_else(|| ic.entrypoint.clone().unwrap_or_default());
    let cmd = match &body.cmd {
        Some(c) if !c.is_empty() => c.clone(),
        _ if user_entrypoint.is_some() => Vec::new(),
        _ => ic.cmd.clone().unwrap_or_default(),
    };
    let mut argv: Vec<String> = entrypoint.iter().cloned().chain(cmd.clone()).collect();
    if argv.is_empty() {
        return Err(EngineError::invalid("no command specified"));
    }
    let path = argv.remove(0);

    let mut env = body.env.clone().unwrap_or_default();
    for image_var in ic.env.iter().flatten() {
        let key = image_var.split('=').next().unwrap_or_default();
        if !env.iter().any(|v| v.split('=').next() == Some(key)) {
            env.push(image_var.clone());
        }
    }
    let mut labels: HashMap<String, String> =
        ic.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(body.labels.clone().unwrap_or_default());
    let union = |mine: &Option<Vec<String>>, image: Option<Vec<String>>| {
        let mut all = image.unwrap_or_default();
        for k in mine.iter().flatten() {
            if !all.contains(k) {
                all.push(k.clone());
            }
        }
        all.sort();
        Some(all).filter(|a| !a.is_empty())
    };
    let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    // The kernel takes at most HOST_NAME_MAX (64) bytes; a longer name would fail only at
    // start, after the container was made.
    if let Some(h) = text(&body.hostname).filter(|h| h.len() > 64) {
        return Err(EngineError::invalid(format!(
            "invalid hostname format: {h}"
        )));
    }
    let config = ContainerConfig {
        hostname: Some(text(&body.hostname).unwrap_or_else(|| id[..12.min(id.len())].to_owned())),
        domainname: Some(body.domainname.clone().unwrap_or_default()),
        user: Some(
            text(&body.user)
                .or_else(|| ic.user.clone())
                .unwrap_or_default(),
        ),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: union(
            &body.exposed_ports,
            ic.exposed_ports
                .as_ref()
                .map(|p| p.keys().cloned().collect()),
        ),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: Some(env),
        cmd: Some(cmd).filter(|c| !c.is_empty()),
        healthcheck: body.healthcheck.clone(),
        image: Some(image.to_owned()),
        volumes: union(
            &body.volumes,
            ic.volumes.as_ref().map(|v| v.keys().cloned().collect()),
        ),
        working_dir: Some(
            text(&body.working_dir)
                .or_else(|| ic.working_dir.clone())
                .unwrap_or_default(),
        ),
        entrypoint: Some(entrypoint).filter(|e| !e.is_empty()),
        network_disabled: body.network_disabled,
        on_build: body.on_build.clone().or_else(|| ic.on_build.clone()),
        labels: Some(labels),
        stop_signal: text(&body.stop_signal).or_else(|| ic.stop_signal.clone()),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone().or_else(|| ic.shell.clone()),
        ..Default::default()
    };

    let restart = RestartPolicy::parse(&req.restart.name, req.restart.maximum_retry_count)
        .map_err(EngineError::invalid)?;
    let mut host_config = body.host_config.clone().unwrap_or_default();
    let log = log_options(host_config.log_config.as_ref())?;
    device_requests(host_config.device_requests.as_deref())?;
    if host_config.memory.is_some_and(|m| m != 0 && m < MIN_MEMORY) {
        return Err(EngineError::invalid("Minimum memory limit allowed is 6MB"));
    }
    if let (Some(m), Some(s)) = (host_config.memory, host_config.memory_swap) {
        if m > 0 && s > 0 && s < m {
            return Err(EngineError::invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
    }
    // Normalized as Docker stores it: the network mode named, the policy and log driver
    // filled, empty lists rather than none where Docker shows them so.
    host_config.network_mode = Some(match host_config.network_mode.as_deref() {
        None | Some("") | Some("default") => crate::networks::DEFAULT_NETWORK.to_owned(),
        Some(m) => m.to_owned(),
    });
    host_config.restart_policy = restart.to_api();
    fill_host_defaults(&mut host_config);
    host_config.log_config = Some(HostConfigLogConfig {
        typ: Some(log.driver.name().into()),
        config: Some(
            host_config
                .log_config
                .as_ref()
                .and_then(|l| l.config.clone())
                .unwrap_or_default(),
        ),
    });
    Ok(Record {
        id: id.to_owned(),
        name: name.to_owned(),
        created: now(),
        image: image.to_owned(),
        image_id: image_id.to_owned(),
        path,
        args: argv,
        config,
        host_config,
        networking_config: body.networking_config.clone(),
        restart,
        log,
        mounts: Vec::new(),
        healthcheck: None,
        net: Default::default(),
        links: Vec::new(),
    })
}

/// What Docker fills in at create where the request left a setting open, so that inspect
/// shows what the container gets: the runtime (berth's, under runc's name, whose CLI it has),
/// a private IPC namespace, a 64 MiB /dev/shm, the cgroup namespace of the host's cgroup
/// version; "unset" markers (`MemorySwappiness: -1`, `PidsLimit: 0`) become null.
fn fill_host_defaults(hc: &mut HostConfig) {
    if hc.runtime.as_deref().unwrap_or("").is_empty() {
        hc.runtime = Some("runc".to_owned());
    }
    if hc.ipc_mode.as_deref().unwrap_or("").is_empty() {
        hc.ipc_mode = Some("private".to_owned());
    }
    if hc.shm_size.unwrap_or(0) == 0 {
        hc.shm_size = Some(berth_oci::spec::DEFAULT_SHM_SIZE);
    }
    if hc
        .cgroupns_mode
        .is_none_or(|m| m == HostConfigCgroupnsModeEnum::EMPTY)
    {
        hc.cgroupns_mode = Some(
            if berth_oci::host::cgroup_mode() == berth_oci::host::CgroupMode::Unified {
                HostConfigCgroupnsModeEnum::PRIVATE
            } else {
                HostConfigCgroupnsModeEnum::HOST
            },
        );
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    if hc.pids_limit == Some(0) {
        hc.pids_limit = None;
    }
}

/// Docker's logging drivers that berth does not have: named in the refusal, where any other
/// name gets Docker's "plugin not found".
const OTHER_DOCKER_DRIVERS: [&str; 9] = [
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// `--gpus` and other device requests: berth has no device drivers (no NVIDIA or CDI
/// plugin), so it answers as dockerd does on a machine without them, instead of starting
/// the container without the devices.
fn device_requests(requests: Option<&[bollard_stubs::models::DeviceRequest]>) -> Result<()> {
    let Some(first) = requests.and_then(|r| r.first()) else {
        return Ok(());
    };
    let caps: Vec<String> = first
        .capabilities
        .iter()
        .flatten()
        .map(|c| format!("[{}]", c.join(" ")))
        .collect();
    Err(EngineError::invalid(format!(
        "could not select device driver {:?} with capabilities: [{}]",
        first.driver.as_deref().unwrap_or(""),
        caps.join(" ")
    )))
}

/// The logging driver and options of a create request (`--log-driver local --log-opt
/// max-size=10m --log-opt max-file=3`), checked as Docker checks them.
fn log_options(lc: Option<&HostConfigLogConfig>) -> Result<LogOptions> {
    let driver = match lc.and_then(|l| l.typ.as_deref()).unwrap_or("") {
        "" | "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        "none" => LogDriver::None,
        d if OTHER_DOCKER_DRIVERS.contains(&d) => {
            return Err(EngineError::invalid(format!(
                "logging driver {d:?} is not supported by berth: use json-file, local or none"
            )))
        }
        d => {
            return Err(EngineError::invalid(format!(
                "error looking up logging plugin {d}: plugin \"{d}\" not found"
            )))
        }
    };
    let mut opts = LogOptions {
        driver,
        ..Default::default()
    };
    if driver == LogDriver::None {
        // Nothing is logged; Docker's API takes any options here (its CLI refuses them).
        return Ok(opts);
    }
    for (k, v) in lc.and_then(|l| l.config.as_ref()).into_iter().flatten() {
        match k.as_str() {
            "max-size" => {
                opts.max_size = Some(
                    berth_core::humanize::parse_ram_bytes(v)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| EngineError::invalid(format!("invalid max-size: {v}")))?
                        as u64,
                )
            }
            "max-file" => {
                opts.max_files = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| EngineError::invalid(format!("invalid max-file: {v}")))?,
                )
            }
            // Logs are not compressed (rotated files stay readable as they are).
            "compress" if v.parse::<bool>().is_ok() => {}
            "compress" => {
                return Err(EngineError::invalid(format!(
                    "error parsing compress option: {v:?} is not a boolean"
                )))
            }
            other => {
                return Err(EngineError::invalid(format!(
                    "unknown log opt '{other}' for {} log driver",
                    if driver == LogDriver::Local {
                        "local"
                    } else {
                        "json-file"
                    }
                )))
            }
        }
    }
    Ok(opts)
}

impl Engine {
    /// `docker create`: the record made, the name claimed, networks and mounts resolved (the
    /// mounts last, as they create volumes), the record and its state stored.
    pub fn create(&self, req: CreateRequest) -> Result<ContainerCreateResponse> {
        let _t = Step::start("create");
        // A start usually follows at once (`docker run`).
        crate::cgroup_warm::warm();
        let image_name = req
            .body
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EngineError::invalid("No image was specified"))?;
        let image_id = self
            .images
            .resolve(&image_name)?
            .ok_or_else(|| EngineError::not_found(format!("No such image: {image_name}")))?;
        let image = self.images.config(&image_id)?;
        let id = berth_core::ContainerId::generate()
            .map_err(|e| EngineError::internal(e.to_string()))?
            .to_string();
        let name = match &req.name {
            Some(n) if !valid_name(n) => {
                return Err(EngineError::invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )))
            }
            Some(n) => {
                self.containers.reserve_name(n, &id)?;
                n.clone()
            }
            None => loop {
                let n = humanize::random_name();
                if self.containers.reserve_name(&n, &id).is_ok() {
                    break n;
                }
            },
        };
        let result = self.create_reserved(&id, &name, &req, &image_name, &image_id, &image);
        if result.is_err() {
            self.containers.release_name(&name, &id);
        }
        result
    }

    fn create_reserved(
        &self,
        id: &str,
        name: &str,
        req: &CreateRequest,
        image_name: &str,
        image_id: &berth_core::Digest,
        image: &berth_image::oci::ImageConfig,
    ) -> Result<ContainerCreateResponse> {
        let ic = &image.config;
        let mut record = new_record(id, name, req, image_name, &image_id.to_string(), ic)?;
        record.healthcheck = crate::health::config_for(
            req.body.healthcheck.as_ref(),
            ic.healthcheck.as_ref(),
            ic.shell.clone().unwrap_or_default(),
            record.restart == RestartPolicy::OnUnhealthy,
        )?;
        // What the runtime would refuse at start is refused now.
        self.check_spec(&record)?;
        let mut warnings = berth_oci::spec::warnings(&super::runtime::spec_options(
            &record,
            self.remap().map(|r| r.map()),
        )?);
        let image_exposed: Vec<String> = ic
            .exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        record.net = self.net_for_create(&req.body, &req.mac_address, &image_exposed)?;
        let (links, link_warnings) = self.links_for_create(&record)?;
        // Kept as resolved (by the child's ID); inspect shows them in Docker's form.
        record.links = links;
        record.host_config.links = None;
        warnings.extend(link_warnings);
        let hc = &record.host_config;
        let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports == Some(true);
        if record.net.mode == "host" && publishes {
            // Docker's words; the ports are not published (the container has the host's).
            warnings.push("Published ports are discarded when using host network mode".to_owned());
            record.net.ports.clear();
        }
        let image_volumes: Vec<String> = ic
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        record.mounts = self.mounts_for_create(&req.body, &image_volumes)?;
        let dir = self.container_dir(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::io(format!("create {}", dir.display()), e))?;
        let stored = self
            .save_state(id, &State::default())
            .and_then(|()| self.containers.insert(record));
        let record = match stored {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        self.container_event(&record, "create", &[]);
        Ok(ContainerCreateResponse {
            id: id.to_owned(),
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::RestartRequest;
    use bollard_stubs::models::{ContainerCreateBody, HostConfig};

    fn image() -> RunConfig {
        RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: Some("/srv".into()),
            labels: Some([("from".to_owned(), "image".to_owned())].into()),
            ..Default::default()
        }
    }

    fn req(body: serde_json::Value) -> CreateRequest {
        CreateRequest::decode(None, body.to_string().as_bytes()).unwrap()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_image_fills_what_the_request_leaves_out() {
        let r = new_record(
            ID,
            "web",
            &req(serde_json::json!({"Env": ["A=me"]})),
            "busybox",
            "sha256:x",
            &image(),
        )
        .unwrap();
        assert_eq!((r.path.as_str(), r.args.len()), ("sh", 0));
        assert_eq!(r.env(), ["A=me", "PATH=/bin"]);
        assert_eq!(r.cwd(), "/srv");
        assert_eq!(r.hostname(), "0123456789ab");
        assert_eq!(r.label("from"), Some("image"));
        assert_eq!(r.host_config.network_mode.as_deref(), Some("bridge"));
        assert_eq!(r.restart, RestartPolicy::No);
    }

    #[test]
    fn an_entrypoint_replaces_the_images_command() {
        let r = new_record(
            ID,
            "x",
            &req(serde_json::json!({"Entrypoint": "top"})),
            "busybox",
            "sha256:x",
            &image(),
        )
        .unwrap();
        assert_eq!((r.path.as_str(), r.args.len()), ("top", 0));
        let r = new_record(
            ID,
            "x",
            &req(serde_json::json!({"Cmd": ["echo", "hi"]})),
            "busybox",
            "sha256:x",
            &image(),
        )
        .unwrap();
        assert_eq!(
            (r.path.as_str(), r.args.as_slice()),
            ("echo", &["hi".to_owned()][..])
        );
    }

    #[test]
    fn the_host_config_is_kept_as_given() {
        let hc = serde_json::json!({
            "Memory": 67108864, "CpusetCpus": "0", "PidMode": "host", "Tmpfs": {"/t": "size=1m"},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}
        });
        let r = new_record(
            ID,
            "x",
            &req(serde_json::json!({"HostConfig": hc})),
            "b",
            "sha256:x",
            &image(),
        )
        .unwrap();
        assert_eq!(r.host_config.memory, Some(67108864));
        assert_eq!(r.host_config.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(r.host_config.pid_mode.as_deref(), Some("host"));
        assert_eq!(r.restart, RestartPolicy::OnFailure { max: 2 });
        assert_eq!(
            r.host_config
                .restart_policy
                .and_then(|p| p.maximum_retry_count),
            Some(2)
        );
    }

    #[test]
    fn bad_values_are_refused_with_dockers_words() {
        let small = CreateRequest {
            body: ContainerCreateBody {
                host_config: Some(HostConfig {
                    memory: Some(1024),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = new_record(ID, "x", &small, "b", "sha256:x", &image()).unwrap_err();
        assert_eq!(e.to_string(), "Minimum memory limit allowed is 6MB");
        let long = CreateRequest {
            body: ContainerCreateBody {
                hostname: Some("h".repeat(65)),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = new_record(ID, "x", &long, "b", "sha256:x", &image()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid hostname format: {}", "h".repeat(65))
        );
        let just = CreateRequest {
            body: ContainerCreateBody {
                hostname: Some("h".repeat(64)),
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(new_record(ID, "x", &just, "b", "sha256:x", &image()).is_ok());
        let policy = CreateRequest {
            restart: RestartRequest {
                name: "sometimes".into(),
                maximum_retry_count: 0,
            },
            ..Default::default()
        };
        let e = new_record(ID, "x", &policy, "b", "sha256:x", &image()).unwrap_err();
        assert_eq!(e.to_string(), "invalid restart policy 'sometimes'");
        let none = RunConfig::default();
        let e = new_record(ID, "x", &CreateRequest::default(), "b", "sha256:x", &none).unwrap_err();
        assert_eq!(e.to_string(), "no command specified");
    }
}
