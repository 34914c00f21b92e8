//! The Compose Specification's objects as [`schema`](crate::schema) tables, and the
//! converters from each short syntax to its long form (ports, volumes, depends_on,
//! networks, build, commands, env files, extra hosts, devices, secret and config
//! references, ulimits, healthcheck tests), producing what compose-go produces.

use indexmap::IndexMap;

use crate::schema::{
    absolute, convert, key_values, object, scalar_text, Context, Kind, SchemaError, Walk,
};
use crate::shellwords;
use crate::yaml::{Node, Value};

use Kind::*;

const STRS: Kind = List(&Str);
const STRNUMS: Kind = List(&StrNum);

pub const TOP: &[(&str, Kind)] = &[
    ("version", Any),
    ("name", Str),
    ("include", Any),
    ("services", MapOf(&Object(SERVICE))),
    ("networks", MapOf(&Object(NETWORK))),
    ("volumes", MapOf(&Object(VOLUME))),
    ("secrets", MapOf(&Object(FILE_OBJECT))),
    ("configs", MapOf(&Object(FILE_OBJECT))),
    ("models", Any),
];

pub const SERVICE: &[(&str, Kind)] = &[
    ("annotations", KeyValues),
    ("attach", Bool),
    ("build", Custom(build)),
    ("blkio_config", Object(BLKIO)),
    ("cap_add", STRS),
    ("cap_drop", STRS),
    ("cgroup", Str),
    ("cgroup_parent", Str),
    ("command", Custom(command)),
    ("configs", List(&Custom(file_reference_config))),
    ("container_name", Str),
    ("cpu_count", Int),
    ("cpu_percent", Float),
    ("cpu_period", Int),
    ("cpu_quota", Int),
    ("cpu_rt_period", Int),
    ("cpu_rt_runtime", Int),
    ("cpus", Float),
    ("cpuset", Str),
    ("cpu_shares", Int),
    ("credential_spec", Any),
    ("depends_on", Custom(depends_on)),
    ("deploy", Object(DEPLOY)),
    ("develop", Object(&[("watch", List(&Object(WATCH)))])),
    ("device_cgroup_rules", STRS),
    ("devices", List(&Custom(device))),
    ("dns", StrList),
    ("dns_opt", STRS),
    ("dns_search", StrList),
    ("domainname", Str),
    ("entrypoint", Custom(command)),
    ("environment", Custom(environment)),
    ("env_file", Custom(env_file)),
    ("expose", STRNUMS),
    ("extends", Custom(extends)),
    ("external_links", STRS),
    ("extra_hosts", Custom(extra_hosts)),
    ("gpus", Custom(gpus)),
    ("group_add", STRNUMS),
    ("healthcheck", Object(HEALTHCHECK)),
    ("hostname", Str),
    ("image", Str),
    ("init", Bool),
    ("ipc", Str),
    ("isolation", Str),
    ("labels", KeyValues),
    ("label_file", Custom(path_list)),
    ("links", STRS),
    ("logging", Object(LOGGING)),
    ("mac_address", Str),
    ("mem_limit", Bytes),
    ("mem_reservation", Bytes),
    ("mem_swappiness", Bytes),
    ("memswap_limit", Bytes),
    ("models", Any),
    ("network_mode", Str),
    ("networks", Custom(service_networks)),
    ("oom_kill_disable", Bool),
    ("oom_score_adj", Int),
    ("pid", Str),
    ("pids_limit", Int),
    ("platform", Str),
    ("ports", List(&Custom(port))),
    ("post_start", List(&Object(HOOK))),
    ("pre_stop", List(&Object(HOOK))),
    ("privileged", Bool),
    ("profiles", STRS),
    ("provider", Any),
    ("pull_policy", Str),
    ("read_only", Bool),
    ("restart", Str),
    ("runtime", Str),
    ("scale", Int),
    ("secrets", List(&Custom(file_reference_secret))),
    ("security_opt", STRS),
    ("shm_size", Bytes),
    ("stdin_open", Bool),
    ("stop_grace_period", Duration),
    ("stop_signal", Str),
    ("storage_opt", MapOf(&StrNum)),
    ("sysctls", KeyValues),
    ("tmpfs", StrList),
    ("tty", Bool),
    ("ulimits", MapOf(&Custom(ulimit))),
    ("use_api_socket", Bool),
    ("user", Str),
    ("userns_mode", Str),
    ("uts", Str),
    ("volume_driver", Str),
    ("volumes", List(&Custom(service_volume))),
    ("volumes_from", STRS),
    ("working_dir", Str),
];

const WATCH: &[(&str, Kind)] = &[
    ("path", Custom(path)),
    ("action", Str),
    ("target", Str),
    ("exec", Object(HOOK)),
    ("include", StrList),
    ("ignore", StrList),
    ("initial_sync", Bool),
];

const HOOK: &[(&str, Kind)] = &[
    ("command", Custom(command)),
    ("user", Str),
    ("privileged", Bool),
    ("working_dir", Str),
    ("environment", Custom(environment)),
];

const BUILD: &[(&str, Kind)] = &[
    ("context", Str),
    ("dockerfile", Str),
    ("dockerfile_inline", Str),
    ("entitlements", STRS),
    ("args", Custom(environment)),
    ("provenance", StrNum),
    ("sbom", StrNum),
    ("ssh", Any),
    ("labels", KeyValues),
    ("cache_from", StrList),
    ("cache_to", StrList),
    ("no_cache", Bool),
    ("additional_contexts", Custom(additional_contexts)),
    ("pull", Bool),
    ("extra_hosts", Custom(extra_hosts)),
    ("isolation", Str),
    ("network", Str),
    ("target", Str),
    ("secrets", List(&Custom(file_reference_config))),
    ("shm_size", Bytes),
    ("tags", StrList),
    ("ulimits", MapOf(&Custom(ulimit))),
    ("platforms", StrList),
    ("privileged", Bool),
];

const BLKIO: &[(&str, Kind)] = &[
    ("weight", Int),
    ("weight_device", List(&Object(WEIGHT_DEVICE))),
    ("device_read_bps", List(&Object(THROTTLE_DEVICE))),
    ("device_read_iops", List(&Object(THROTTLE_DEVICE))),
    ("device_write_bps", List(&Object(THROTTLE_DEVICE))),
    ("device_write_iops", List(&Object(THROTTLE_DEVICE))),
];
const WEIGHT_DEVICE: &[(&str, Kind)] = &[("path", Str), ("weight", Int)];
const THROTTLE_DEVICE: &[(&str, Kind)] = &[("path", Str), ("rate", Bytes)];

const DEPLOY: &[(&str, Kind)] = &[
    ("mode", Str),
    ("replicas", Int),
    ("labels", KeyValues),
    ("update_config", Object(UPDATE_CONFIG)),
    ("rollback_config", Object(UPDATE_CONFIG)),
    ("resources", Object(RESOURCES)),
    ("restart_policy", Object(RESTART_POLICY)),
    ("placement", Object(PLACEMENT)),
    ("endpoint_mode", Str),
];
const UPDATE_CONFIG: &[(&str, Kind)] = &[
    ("parallelism", Int),
    ("delay", Duration),
    ("failure_action", Str),
    ("monitor", Duration),
    ("max_failure_ratio", Float),
    ("order", Str),
];
const RESOURCES: &[(&str, Kind)] = &[
    ("limits", Object(RESOURCE)),
    ("reservations", Object(RESOURCE)),
];
const RESOURCE: &[(&str, Kind)] = &[
    ("cpus", Float),
    ("memory", Custom(bytes_string)),
    ("pids", Int),
    ("devices", List(&Object(DEVICE_REQUEST))),
    ("generic_resources", Any),
];
const DEVICE_REQUEST: &[(&str, Kind)] = &[
    ("capabilities", STRS),
    ("driver", Str),
    ("count", Custom(device_count)),
    ("device_ids", STRS),
    ("options", KeyValues),
];
const RESTART_POLICY: &[(&str, Kind)] = &[
    ("condition", Str),
    ("delay", Duration),
    ("max_attempts", Int),
    ("window", Duration),
];
const PLACEMENT: &[(&str, Kind)] = &[
    ("constraints", STRS),
    ("preferences", List(&Object(&[("spread", Str)]))),
    ("max_replicas_per_node", Int),
];

const HEALTHCHECK: &[(&str, Kind)] = &[
    ("test", Custom(healthcheck_test)),
    ("timeout", Duration),
    ("interval", Duration),
    ("retries", Int),
    ("start_period", Duration),
    ("start_interval", Duration),
    ("disable", Bool),
];

const LOGGING: &[(&str, Kind)] = &[("driver", Str), ("options", MapOf(&StrNum))];

const SERVICE_NETWORK: &[(&str, Kind)] = &[
    ("aliases", STRS),
    ("driver_opts", MapOf(&StrNum)),
    ("gw_priority", Int),
    ("interface_name", Str),
    ("ipv4_address", Str),
    ("ipv6_address", Str),
    ("link_local_ips", STRS),
    ("mac_address", Str),
    ("priority", Int),
];

const PORT: &[(&str, Kind)] = &[
    ("name", Str),
    ("mode", Str),
    ("host_ip", Str),
    ("target", Int),
    ("published", StrNum),
    ("protocol", Str),
    ("app_protocol", Str),
];

const SERVICE_VOLUME: &[(&str, Kind)] = &[
    ("type", Str),
    ("source", Str),
    ("target", Str),
    ("read_only", Bool),
    ("consistency", Str),
    (
        "bind",
        Object(&[
            ("selinux", Str),
            ("propagation", Str),
            ("create_host_path", Bool),
            ("recursive", Str),
        ]),
    ),
    (
        "volume",
        Object(&[("labels", KeyValues), ("nocopy", Bool), ("subpath", Str)]),
    ),
    ("tmpfs", Object(&[("size", Bytes), ("mode", Int)])),
    ("image", Object(&[("subpath", Str)])),
];

const FILE_REFERENCE: &[(&str, Kind)] = &[
    ("source", Str),
    ("target", Str),
    ("uid", StrNum),
    ("gid", StrNum),
    ("mode", Custom(file_mode)),
];

const NETWORK: &[(&str, Kind)] = &[
    ("name", Str),
    ("driver", Str),
    ("driver_opts", MapOf(&StrNum)),
    ("ipam", Object(IPAM)),
    ("external", Custom(external)),
    ("internal", Bool),
    ("attachable", Bool),
    ("labels", KeyValues),
    ("enable_ipv4", Bool),
    ("enable_ipv6", Bool),
];
const IPAM: &[(&str, Kind)] = &[
    ("driver", Str),
    ("config", List(&Object(IPAM_POOL))),
    ("options", Any),
];
const IPAM_POOL: &[(&str, Kind)] = &[
    ("subnet", Str),
    ("gateway", Str),
    ("ip_range", Str),
    ("aux_addresses", KeyValues),
];

const VOLUME: &[(&str, Kind)] = &[
    ("name", Str),
    ("driver", Str),
    ("driver_opts", MapOf(&StrNum)),
    ("external", Custom(external)),
    ("labels", KeyValues),
];

const FILE_OBJECT: &[(&str, Kind)] = &[
    ("name", Str),
    ("file", Custom(path)),
    ("environment", Str),
    ("content", Str),
    ("external", Custom(external)),
    ("labels", KeyValues),
    ("driver", Str),
    ("driver_opts", MapOf(&StrNum)),
    ("template_driver", Str),
];

fn str_node(s: impl Into<String>, like: &Node) -> Node {
    Node::new(Value::Str(s.into()), like.at.clone())
}

fn map_node(m: IndexMap<String, Node>, like: &Node) -> Node {
    Node::new(Value::Map(m), like.at.clone())
}

fn type_error(n: &Node, walk: &Walk, want: &str) -> SchemaError {
    SchemaError {
        at: n.at.clone(),
        path: walk.text(),
        message: format!("must be {want}"),
    }
}

fn invalid(n: &Node, walk: &Walk, message: String) -> SchemaError {
    SchemaError {
        at: n.at.clone(),
        path: walk.text(),
        message,
    }
}

fn path(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match n.as_str() {
        Some(p) => Ok(Some(str_node(absolute(p, ctx), n))),
        None => Err(type_error(n, walk, "a string")),
    }
}

/// A path or a list of paths, made absolute.
fn path_list(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let Some(list) = convert(n, StrList, ctx, walk)? else {
        return Ok(None);
    };
    let Value::Seq(items) = list.value else {
        return Ok(None);
    };
    let items = items
        .iter()
        .map(|i| str_node(absolute(i.as_str().unwrap_or_default(), ctx), i))
        .collect();
    Ok(Some(Node::new(Value::Seq(items), n.at.clone())))
}

/// `external: true`, or the old `external: {name: x}`.
fn external(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Bool(_) => Ok(Some(n.clone())),
        Value::Map(_) => Ok(Some(Node::new(Value::Bool(true), n.at.clone()))),
        _ => Err(type_error(n, walk, "a boolean")),
    }
}

/// Build contexts by name: a relative path is made absolute; URLs and `docker-image://`
/// references stay as written.
fn additional_contexts(
    n: &Node,
    ctx: &Context,
    walk: &mut Walk,
) -> Result<Option<Node>, SchemaError> {
    let mut kv = key_values(n, walk, false)?;
    if let Some(m) = kv.as_map_mut() {
        for v in m.values_mut() {
            if let Value::Str(s) = &mut v.value {
                if !s.contains("://") && !s.starts_with("git@") {
                    *s = absolute(s, ctx);
                }
            }
        }
    }
    Ok(Some(kv))
}

/// A size that the schema wants written as a string (deploy's memory).
fn bytes_string(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(_) => convert(n, Bytes, ctx, walk),
        _ => Err(type_error(n, walk, "a string")),
    }
}

/// `build: ./dir` or the long form; context made absolute, `Dockerfile` by default.
fn build(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let long = match &n.value {
        Value::Str(s) => {
            let mut m = IndexMap::new();
            m.insert("context".to_owned(), str_node(s.clone(), n));
            map_node(m, n)
        }
        Value::Map(_) => n.clone(),
        _ => return Err(type_error(n, walk, "a string or a mapping")),
    };
    let mut out = object(&long, BUILD, ctx, walk)?;
    let m = out.as_map_mut().expect("object");
    let context = m
        .get("context")
        .and_then(Node::as_str)
        .unwrap_or(".")
        .to_owned();
    // A remote context (git URL) is kept as written.
    let is_remote = context.contains("://") || context.starts_with("git@");
    let resolved = if is_remote {
        context
    } else {
        absolute(&context, ctx)
    };
    m.insert("context".to_owned(), str_node(resolved, n));
    if !m.contains_key("dockerfile") && !m.contains_key("dockerfile_inline") {
        m.insert("dockerfile".to_owned(), str_node("Dockerfile", n));
    }
    Ok(Some(out))
}

/// `command`/`entrypoint`: a string split as a shell would, or a list.
fn command(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) => {
            let words = shellwords::split(s)
                .map_err(|e| invalid(n, walk, format!("cannot split {s:?}: {e}")))?;
            Ok(Some(Node::new(
                Value::Seq(words.into_iter().map(|w| str_node(w, n)).collect()),
                n.at.clone(),
            )))
        }
        Value::Seq(items) => {
            let mut out = Vec::new();
            for item in items {
                match scalar_text(&item.value) {
                    Some(s) => out.push(str_node(s, item)),
                    None => return Err(type_error(item, walk, "a list of strings")),
                }
            }
            Ok(Some(Node::new(Value::Seq(out), n.at.clone())))
        }
        _ => Err(type_error(n, walk, "a string or a list of strings")),
    }
}

fn environment(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    Ok(Some(key_values(n, walk, true)?))
}

/// `env_file`: a path, a list of paths, or `{path, required, format}` items.
fn env_file(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let items = match &n.value {
        Value::Str(_) => vec![n.clone()],
        Value::Seq(items) => items.clone(),
        _ => return Err(type_error(n, walk, "a string or a list")),
    };
    let mut out = Vec::new();
    for item in &items {
        let mut m = IndexMap::new();
        match &item.value {
            Value::Str(p) => {
                m.insert("path".to_owned(), str_node(absolute(p, ctx), item));
                m.insert(
                    "required".to_owned(),
                    Node::new(Value::Bool(true), item.at.clone()),
                );
            }
            Value::Map(_) => {
                let o = object(
                    item,
                    &[("path", Str), ("required", Bool), ("format", Str)],
                    ctx,
                    walk,
                )?;
                let om = o.as_map().expect("object");
                let p = om
                    .get("path")
                    .and_then(Node::as_str)
                    .ok_or_else(|| invalid(item, walk, "env_file needs a path".into()))?;
                m.insert("path".to_owned(), str_node(absolute(p, ctx), item));
                let required = om
                    .get("required")
                    .cloned()
                    .unwrap_or_else(|| Node::new(Value::Bool(true), item.at.clone()));
                m.insert("required".to_owned(), required);
                if let Some(f) = om.get("format") {
                    m.insert("format".to_owned(), f.clone());
                }
            }
            _ => return Err(type_error(item, walk, "a path or a mapping")),
        }
        out.push(map_node(m, item));
    }
    Ok(Some(Node::new(Value::Seq(out), n.at.clone())))
}

fn extends(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) => {
            let mut m = IndexMap::new();
            m.insert("service".to_owned(), str_node(s.clone(), n));
            Ok(Some(map_node(m, n)))
        }
        Value::Map(_) => Ok(Some(object(
            n,
            &[("service", Str), ("file", Str)],
            ctx,
            walk,
        )?)),
        _ => Err(type_error(n, walk, "a string or a mapping")),
    }
}

/// `extra_hosts`: `host:ip`/`host=ip` items or a map (a host may have several addresses),
/// printed as sorted `host=ip` items.
fn extra_hosts(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match &n.value {
        Value::Seq(items) => {
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| type_error(item, walk, "a list of strings"))?;
                let (host, ip) =
                    s.split_once('=')
                        .or_else(|| s.split_once(':'))
                        .ok_or_else(|| {
                            invalid(
                                item,
                                walk,
                                format!("invalid additional host, missing IP: {s}"),
                            )
                        })?;
                for ip in ip.split(',') {
                    pairs.push((host.to_owned(), ip.to_owned()));
                }
            }
        }
        Value::Map(m) => {
            for (host, v) in m {
                match &v.value {
                    Value::Seq(ips) => {
                        for ip in ips {
                            pairs.push((host.clone(), scalar_text(&ip.value).unwrap_or_default()));
                        }
                    }
                    Value::Null => pairs.push((host.clone(), String::new())),
                    other => pairs.push((host.clone(), scalar_text(other).unwrap_or_default())),
                }
            }
        }
        _ => return Err(type_error(n, walk, "a list or a mapping")),
    }
    let mut items: Vec<String> = pairs
        .into_iter()
        .map(|(h, ip)| {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .map(str::to_owned)
                .unwrap_or(ip);
            format!("{h}={ip}")
        })
        .collect();
    items.sort();
    Ok(Some(Node::new(
        Value::Seq(items.into_iter().map(|s| str_node(s, n)).collect()),
        n.at.clone(),
    )))
}

/// `gpus: all` or a list of device requests.
fn gpus(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) if s == "all" => {
            let mut m = IndexMap::new();
            m.insert("count".to_owned(), Node::new(Value::Int(-1), n.at.clone()));
            Ok(Some(Node::new(
                Value::Seq(vec![map_node(m, n)]),
                n.at.clone(),
            )))
        }
        Value::Seq(_) => convert(n, List(&Object(DEVICE_REQUEST)), ctx, walk),
        _ => Err(type_error(n, walk, "\"all\" or a list")),
    }
}

fn device_count(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Int(_) => Ok(Some(n.clone())),
        Value::Str(s) if s.eq_ignore_ascii_case("all") => {
            Ok(Some(Node::new(Value::Int(-1), n.at.clone())))
        }
        Value::Str(s) => s
            .parse::<i64>()
            .map(|i| Some(Node::new(Value::Int(i), n.at.clone())))
            .map_err(|_| {
                invalid(
                    n,
                    walk,
                    format!("invalid value {s:?}, the only value allowed is 'all' or a number"),
                )
            }),
        _ => Err(type_error(n, walk, "a number or \"all\"")),
    }
}

/// `devices`: `src[:dst[:perms]]` or the long form.
fn device(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) => {
            let parts: Vec<&str> = if s.contains("/dev/") || s.starts_with('/') {
                s.split(':').collect()
            } else {
                // A CDI name (`vendor.com/class=all`) is one part.
                vec![s.as_str()]
            };
            let (src, dst, perms) = match parts.as_slice() {
                [src] => (*src, *src, "rwm"),
                [src, dst] => (*src, *dst, "rwm"),
                [src, dst, perms] => (*src, *dst, *perms),
                _ => return Err(invalid(n, walk, format!("invalid device: {s}"))),
            };
            let mut m = IndexMap::new();
            m.insert("source".into(), str_node(src, n));
            m.insert("target".into(), str_node(dst, n));
            m.insert("permissions".into(), str_node(perms, n));
            Ok(Some(map_node(m, n)))
        }
        Value::Map(_) => Ok(Some(object(
            n,
            &[("source", Str), ("target", Str), ("permissions", Str)],
            ctx,
            walk,
        )?)),
        _ => Err(type_error(n, walk, "a string or a mapping")),
    }
}

/// `depends_on`: a list of names or a map with condition/restart/required.
fn depends_on(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let mut out = IndexMap::new();
    let default = |at: &Node| {
        let mut m = IndexMap::new();
        m.insert("condition".to_owned(), str_node("service_started", at));
        m.insert(
            "required".to_owned(),
            Node::new(Value::Bool(true), at.at.clone()),
        );
        m
    };
    match &n.value {
        Value::Seq(items) => {
            for item in items {
                let name = item
                    .as_str()
                    .ok_or_else(|| type_error(item, walk, "a list of service names"))?;
                out.insert(name.to_owned(), map_node(default(item), item));
            }
        }
        Value::Map(m) => {
            for (name, v) in m {
                walk.enter(name);
                let mut entry = default(v);
                if !matches!(v.value, Value::Null) {
                    let o = object(
                        v,
                        &[("condition", Str), ("restart", Bool), ("required", Bool)],
                        ctx,
                        walk,
                    )?;
                    if o.get("condition").is_none() {
                        return Err(invalid(v, walk, "missing property 'condition'".into()));
                    }
                    for (k, val) in o.as_map().expect("object") {
                        entry.insert(k.clone(), val.clone());
                    }
                }
                walk.leave();
                out.insert(name.clone(), map_node(entry, v));
            }
        }
        _ => return Err(type_error(n, walk, "a list or a mapping")),
    }
    Ok(Some(map_node(out, n)))
}

/// A service's `networks`: a list of names or a map of optional settings.
fn service_networks(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Seq(items) => {
            for item in items {
                let name = item
                    .as_str()
                    .ok_or_else(|| type_error(item, walk, "a list of network names"))?;
                out.insert(name.to_owned(), Node::new(Value::Null, item.at.clone()));
            }
        }
        Value::Map(m) => {
            for (name, v) in m {
                walk.enter(name);
                let c = match v.value {
                    Value::Null => Node::new(Value::Null, v.at.clone()),
                    _ => object(v, SERVICE_NETWORK, ctx, walk)?,
                };
                walk.leave();
                out.insert(name.clone(), c);
            }
        }
        _ => return Err(type_error(n, walk, "a list or a mapping")),
    }
    Ok(Some(map_node(out, n)))
}

/// A port: `[[ip:]published:]target[/proto]` (ranges expand to one entry per port), a
/// number, or the long form. Returns a list (a range is several ports).
fn port(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let entries = match &n.value {
        Value::Int(i) => parse_port(&i.to_string()),
        Value::Str(s) => parse_port(s),
        Value::Map(_) => {
            let mut o = object(n, PORT, ctx, walk)?;
            let m = o.as_map_mut().expect("object");
            if !m.contains_key("mode") {
                m.insert("mode".into(), str_node("ingress", n));
            }
            if !m.contains_key("protocol") {
                m.insert("protocol".into(), str_node("tcp", n));
            }
            let mut ordered = IndexMap::new();
            for key in [
                "name",
                "mode",
                "host_ip",
                "target",
                "published",
                "protocol",
                "app_protocol",
            ] {
                if let Some(v) = m.shift_remove(key) {
                    ordered.insert(key.to_owned(), v);
                }
            }
            ordered.extend(m.drain(..));
            return Ok(Some(Node::new(
                Value::Seq(vec![map_node(ordered, n)]),
                n.at.clone(),
            )));
        }
        _ => return Err(type_error(n, walk, "a string, number or mapping")),
    };
    let entries = entries.map_err(|e| invalid(n, walk, e))?;
    let items = entries
        .into_iter()
        .map(|p| {
            let mut m = IndexMap::new();
            m.insert("mode".into(), str_node("ingress", n));
            if !p.host_ip.is_empty() {
                m.insert("host_ip".into(), str_node(p.host_ip, n));
            }
            m.insert(
                "target".into(),
                Node::new(Value::Int(p.target), n.at.clone()),
            );
            if !p.published.is_empty() {
                m.insert("published".into(), str_node(p.published, n));
            }
            m.insert("protocol".into(), str_node(p.protocol, n));
            map_node(m, n)
        })
        .collect();
    Ok(Some(Node::new(Value::Seq(items), n.at.clone())))
}

/// One published port of a short port spec.
#[derive(Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: String,
    pub published: String,
    pub target: i64,
    pub protocol: String,
}

fn parse_range(s: &str) -> Option<(i64, i64)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: i64 = a.parse().ok()?;
    let b: i64 = b.parse().ok()?;
    (a <= b && (0..=65535).contains(&a) && b <= 65535).then_some((a, b))
}

/// Parses the short port syntax as docker's nat.ParsePortSpecs does.
pub fn parse_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {protocol}"));
    }
    // An IPv6 host address is bracketed.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| format!("invalid port specification: {spec:?}"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| format!("invalid port specification: {spec:?}"))?;
        (ip.to_owned(), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest),
            3 => (parts[0].to_owned(), &rest[parts[0].len() + 1..]),
            _ => return Err(format!("invalid port specification: {spec:?}")),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (p, t),
        None => ("", rest),
    };
    let (t0, t1) = parse_range(target).ok_or_else(|| format!("invalid containerPort: {target}"))?;
    let mut out = Vec::new();
    if published.is_empty() {
        for t in t0..=t1 {
            out.push(PortSpec {
                host_ip: host_ip.clone(),
                published: String::new(),
                target: t,
                protocol: protocol.clone(),
            });
        }
        return Ok(out);
    }
    let (p0, p1) =
        parse_range(published).ok_or_else(|| format!("invalid hostPort: {published}"))?;
    let targets = t1 - t0 + 1;
    let publisheds = p1 - p0 + 1;
    if targets == 1 && publisheds > 1 {
        out.push(PortSpec {
            host_ip,
            published: published.to_owned(),
            target: t0,
            protocol,
        });
        return Ok(out);
    }
    if targets != publisheds {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {target} and {published}"
        ));
    }
    for i in 0..targets {
        out.push(PortSpec {
            host_ip: host_ip.clone(),
            published: (p0 + i).to_string(),
            target: t0 + i,
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

/// A service volume: `[source:]target[:options]` or the long form.
fn service_volume(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) => short_volume(s, n, ctx)
            .map(Some)
            .map_err(|e| invalid(n, walk, e)),
        Value::Map(_) => {
            let mut o = object(n, SERVICE_VOLUME, ctx, walk)?;
            let m = o.as_map_mut().expect("object");
            let kind = m
                .get("type")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_owned();
            if kind == "bind" {
                if let Some(src) = m.get("source").and_then(Node::as_str).map(str::to_owned) {
                    m.insert("source".into(), str_node(absolute(&src, ctx), n));
                }
                // `create_host_path: false` is Go's zero value: omitted.
                if let Some(b) = m.get_mut("bind").and_then(Node::as_map_mut) {
                    if matches!(
                        b.get("create_host_path").map(|v| &v.value),
                        Some(Value::Bool(false))
                    ) {
                        b.shift_remove("create_host_path");
                    }
                }
            }
            Ok(Some(o))
        }
        _ => Err(type_error(n, walk, "a string or a mapping")),
    }
}

fn is_path(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

fn short_volume(spec: &str, n: &Node, ctx: &Context) -> Result<Node, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [a, b] if b.starts_with('/') => (*a, *b, ""),
        [a, b] if !a.starts_with('/') || b.is_empty() => ("", *a, *b),
        [a, b] => (*a, *b, ""),
        [a, b, c] => (*a, *b, *c),
        _ => return Err(format!("invalid spec: {spec}: too many colons")),
    };
    if target.is_empty() {
        return Err(format!(
            "invalid spec: {spec}: empty section between colons"
        ));
    }
    let mut m = IndexMap::new();
    let mut read_only = false;
    let mut nocopy = false;
    let mut selinux = None;
    let mut propagation = None;
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => nocopy = true,
            "z" | "Z" => selinux = Some(opt),
            "cached" | "delegated" | "consistent" => {}
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                propagation = Some(opt)
            }
            other => return Err(format!("invalid spec: {spec}: unknown option {other:?}")),
        }
    }
    let bool_node = |b: bool| Node::new(Value::Bool(b), n.at.clone());
    if source.is_empty() {
        m.insert("type".into(), str_node("volume", n));
        m.insert("target".into(), str_node(target, n));
        if read_only {
            m.insert("read_only".into(), bool_node(true));
        }
        m.insert("volume".into(), map_node(IndexMap::new(), n));
    } else if is_path(source) {
        m.insert("type".into(), str_node("bind", n));
        m.insert("source".into(), str_node(absolute(source, ctx), n));
        m.insert("target".into(), str_node(target, n));
        if read_only {
            m.insert("read_only".into(), bool_node(true));
        }
        let mut b = IndexMap::new();
        if let Some(z) = selinux {
            b.insert("selinux".into(), str_node(z, n));
        }
        if let Some(p) = propagation {
            b.insert("propagation".into(), str_node(p, n));
        }
        b.insert("create_host_path".into(), bool_node(true));
        m.insert("bind".into(), map_node(b, n));
    } else {
        m.insert("type".into(), str_node("volume", n));
        m.insert("source".into(), str_node(source, n));
        m.insert("target".into(), str_node(target, n));
        if read_only {
            m.insert("read_only".into(), bool_node(true));
        }
        let mut v = IndexMap::new();
        if nocopy {
            v.insert("nocopy".into(), bool_node(true));
        }
        m.insert("volume".into(), map_node(v, n));
    }
    Ok(map_node(m, n))
}

fn file_reference(
    n: &Node,
    ctx: &Context,
    walk: &mut Walk,
    secret: bool,
) -> Result<Option<Node>, SchemaError> {
    let mut o = match &n.value {
        Value::Str(s) => {
            let mut m = IndexMap::new();
            m.insert("source".into(), str_node(s.clone(), n));
            map_node(m, n)
        }
        Value::Map(_) => object(n, FILE_REFERENCE, ctx, walk)?,
        _ => return Err(type_error(n, walk, "a string or a mapping")),
    };
    // A secret lands in /run/secrets/<source> unless told otherwise.
    if secret {
        let m = o.as_map_mut().expect("object");
        if !m.contains_key("target") {
            let source = m
                .get("source")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_owned();
            let mut ordered = IndexMap::new();
            if let Some(s) = m.shift_remove("source") {
                ordered.insert("source".into(), s);
            }
            ordered.insert(
                "target".into(),
                str_node(format!("/run/secrets/{source}"), n),
            );
            ordered.extend(m.drain(..));
            *m = ordered;
        }
    }
    Ok(Some(o))
}

fn file_reference_secret(
    n: &Node,
    ctx: &Context,
    walk: &mut Walk,
) -> Result<Option<Node>, SchemaError> {
    file_reference(n, ctx, walk, true)
}

fn file_reference_config(
    n: &Node,
    ctx: &Context,
    walk: &mut Walk,
) -> Result<Option<Node>, SchemaError> {
    file_reference(n, ctx, walk, false)
}

/// A file mode: a number as YAML read it (`0400` is octal there) or an octal string;
/// printed as Go's `0%o`.
fn file_mode(n: &Node, _: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    let mode = match &n.value {
        Value::Int(i) => *i,
        Value::Str(s) => i64::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| invalid(n, walk, format!("invalid file mode {s:?}")))?,
        _ => return Err(type_error(n, walk, "a number or an octal string")),
    };
    Ok(Some(str_node(format!("0{mode:o}"), n)))
}

/// A ulimit: one number, or soft and hard.
fn ulimit(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Int(_) => Ok(Some(n.clone())),
        Value::Str(s) => s
            .parse::<i64>()
            .map(|i| Some(Node::new(Value::Int(i), n.at.clone())))
            .map_err(|_| type_error(n, walk, "a number or {soft, hard}")),
        Value::Map(_) => Ok(Some(object(n, &[("soft", Int), ("hard", Int)], ctx, walk)?)),
        _ => Err(type_error(n, walk, "a number or {soft, hard}")),
    }
}

/// A healthcheck test: a string is `CMD-SHELL`.
fn healthcheck_test(n: &Node, ctx: &Context, walk: &mut Walk) -> Result<Option<Node>, SchemaError> {
    match &n.value {
        Value::Str(s) => Ok(Some(Node::new(
            Value::Seq(vec![str_node("CMD-SHELL", n), str_node(s.clone(), n)]),
            n.at.clone(),
        ))),
        Value::Seq(_) => convert(n, STRS, ctx, walk),
        _ => Err(type_error(n, walk, "a string or a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(s: &str) -> Vec<(String, String, i64, String)> {
        parse_port(s)
            .unwrap()
            .into_iter()
            .map(|p| (p.host_ip, p.published, p.target, p.protocol))
            .collect()
    }

    #[test]
    fn short_ports() {
        assert_eq!(ports("80"), [("".into(), "".into(), 80, "tcp".into())]);
        assert_eq!(
            ports("127.0.0.1:8080:80/udp"),
            [("127.0.0.1".into(), "8080".into(), 80, "udp".into())]
        );
        assert_eq!(
            ports("[::1]:8082:80"),
            [("::1".into(), "8082".into(), 80, "tcp".into())]
        );
        assert_eq!(
            ports("127.0.0.1::82"),
            [("127.0.0.1".into(), "".into(), 82, "tcp".into())]
        );
        assert_eq!(ports("9000-9001:9000-9001").len(), 2);
        assert_eq!(ports("9100-9101").len(), 2);
        assert_eq!(
            ports("6000-6001:6000"),
            [("".into(), "6000-6001".into(), 6000, "tcp".into())]
        );
        assert!(parse_port("80:80:80:80").is_err());
        assert!(parse_port("abc").is_err());
        assert!(parse_port("1-3:1-2").is_err());
        assert!(parse_port("80/xyz").is_err());
    }
}
