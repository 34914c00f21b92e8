//! Docker's legacy links (`--link name:alias`, `HostConfig.Links`) on the default bridge:
//! resolved at create (the linked container, the "child", must exist), applied at start (it
//! must run: its address, exposed ports and environment become the linking container's
//! `ALIAS_*` variables and an `/etc/hosts` line), shown by inspect (`HostConfig.Links` as
//! `/child:/parent/alias`) and by `ps` (the child is also named `/parent/alias`), taken away
//! by `rm --link /parent/alias`. A link follows its child by ID, so renames keep it; a child
//! that is removed stays linked by its last name and the parent no longer starts, as in
//! Docker.
//!
//! On user-defined networks links are the endpoint's (`EndpointSettings.Links`; the CLI turns
//! `--link` into them): the embedded DNS answers the alias with the child's address on that
//! network, for the linking container only (berth-network's `dns.rs`). Docker ignores
//! `HostConfig.Links` there, and so does berth.
//!
//! Where berth differs from dockerd 20.10, on purpose: a bad spec is a 400 (Docker: 500), and
//! an empty name or alias, or an alias with a `/`, is refused (Docker takes `name:` and makes
//! no link); an alias given twice keeps the first link and says so in the create warnings
//! (Docker drops it silently); "Cannot link to a non running container" and "cannot remove
//! the default link name" are 409s (Docker: 500); an endpoint's bad `Links` are refused at
//! create (Docker: at start).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use berth_core::error::HasErrorKind;
use berth_core::ErrorKind;
use berth_network::files::ExtraHost;

use super::record::{Link, Record};
use crate::error::{EngineError, Result};
use crate::networks::DEFAULT_NETWORK;
use crate::Engine;

const HOST_CONFLICT: &str = "conflicting options: host type networking can't be used with links. This would result in undefined behavior";
const CONTAINER_CONFLICT: &str = "conflicting options: container type network can't be used with links. This would result in undefined behavior";

/// What a container's links give it at start.
#[derive(Debug, Default)]
pub(crate) struct LinkSetup {
    /// `ALIAS_NAME`, `ALIAS_PORT…`, `ALIAS_ENV_…`: before the container's own variables.
    pub env: Vec<String>,
    /// `IP alias hostname name`, after the `--add-host` lines.
    pub hosts: Vec<ExtraHost>,
}

/// An endpoint's `Links` checked (Docker's words for a bad spec) and turned into what the
/// embedded DNS answers: alias → the linked container's name.
pub(crate) fn endpoint_links(links: Option<&Vec<String>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for spec in links.into_iter().flatten() {
        let (name, alias) = berth_core::link::parse(spec).map_err(EngineError::invalid)?;
        out.entry(alias).or_insert(name);
    }
    Ok(out)
}

/// One port of a linked container (`80/tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    number: u16,
    proto: String,
}

/// The exposed ports in Docker's order for links: by number, tcp first of one number.
fn link_ports(exposed: &[String]) -> Vec<Port> {
    let mut ports: Vec<Port> = exposed
        .iter()
        .filter_map(|key| {
            let (n, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            Some(Port {
                number: n.parse().ok()?,
                proto: proto.to_ascii_lowercase(),
            })
        })
        .collect();
    ports.sort_by(|a, b| {
        (a.number, a.proto != "tcp", &a.proto).cmp(&(b.number, b.proto != "tcp", &b.proto))
    });
    ports.dedup();
    ports
}

/// The variables Docker gives a container for one link (daemon/links): `ALIAS_PORT` (the
/// lowest port), `_START`/`_END` groups for runs of three or more consecutive port numbers,
/// `ALIAS_PORT_<n>_<PROTO>` with `_ADDR`, `_PORT`, `_PROTO` for each port, `ALIAS_NAME`, and
/// `ALIAS_ENV_<VAR>` for each of the child's variables but HOME and PATH. `link_name` is
/// `/parent/alias`; the prefix is the alias upper-cased, `-` made `_`.
pub(crate) fn link_env(
    link_name: &str,
    child_ip: IpAddr,
    child_env: &[String],
    exposed: &[String],
) -> Vec<String> {
    let alias = link_name.rsplit('/').next().unwrap_or(link_name);
    let prefix = alias.to_uppercase().replace('-', "_");
    let ports = link_ports(exposed);
    let mut env = Vec::new();
    let key = |p: &Port| format!("{prefix}_PORT_{}_{}", p.number, p.proto.to_uppercase());
    let url = |p: &Port| format!("{}://{child_ip}:{}", p.proto, p.number);
    if let Some(p) = ports.first() {
        env.push(format!("{prefix}_PORT={}", url(p)));
    }
    let mut i = 0;
    while i < ports.len() {
        // The last of the run of consecutive numbers that starts at i (protocols aside).
        let mut j = i;
        while j + 1 < ports.len()
            && u32::from(ports[j + 1].number) <= u32::from(ports[j].number) + 1
        {
            j += 1;
        }
        if j > i + 1 {
            let (p, q) = (&ports[i], &ports[j]);
            let k = key(p);
            env.push(format!("{k}_START={}", url(p)));
            env.push(format!("{k}_ADDR={child_ip}"));
            env.push(format!("{k}_PROTO={}", p.proto));
            env.push(format!("{k}_PORT_START={}", p.number));
            let end = format!("{prefix}_PORT_{}_{}", p.number, q.proto.to_uppercase());
            env.push(format!("{end}_END={}", url(q)));
            env.push(format!("{end}_PORT_END={}", q.number));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for p in &ports {
        let k = key(p);
        env.push(format!("{k}={}", url(p)));
        env.push(format!("{k}_ADDR={child_ip}"));
        env.push(format!("{k}_PORT={}", p.number));
        env.push(format!("{k}_PROTO={}", p.proto));
    }
    env.push(format!("{prefix}_NAME={link_name}"));
    for var in child_env {
        let Some((k, v)) = var.split_once('=') else {
            continue;
        };
        if k != "HOME" && k != "PATH" {
            env.push(format!("{prefix}_ENV_{k}={v}"));
        }
    }
    env
}

/// The names `ps` gives each container: its own and, for a linked one, `/parent/alias` for
/// every link to it, sorted as Docker lists them.
pub(crate) struct LinkNames(HashMap<String, Vec<String>>);

impl LinkNames {
    pub(crate) fn new(recs: &[Arc<Record>]) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for parent in recs {
            for l in &parent.links {
                map.entry(l.child.clone())
                    .or_default()
                    .push(format!("/{}/{}", parent.name, l.alias));
            }
        }
        LinkNames(map)
    }

    pub(crate) fn of(&self, rec: &Record) -> Vec<String> {
        let mut names = vec![format!("/{}", rec.name)];
        names.extend(self.0.get(&rec.id).into_iter().flatten().cloned());
        names.sort();
        names
    }
}

impl Engine {
    /// The links of a new container (`HostConfig.Links`, its network mode already resolved
    /// in `rec.net`), with a warning for each one Docker would drop (an alias given twice).
    pub(crate) fn links_for_create(&self, rec: &Record) -> Result<(Vec<Link>, Vec<String>)> {
        let specs = rec.host_config.links.clone().unwrap_or_default();
        let mut links: Vec<Link> = Vec::new();
        let mut warnings = Vec::new();
        if specs.is_empty() {
            return Ok((links, warnings));
        }
        let mode = rec.net.mode.as_str();
        if mode == "host" {
            return Err(EngineError::invalid(HOST_CONFLICT));
        }
        if mode.starts_with("container:") {
            return Err(EngineError::invalid(CONTAINER_CONFLICT));
        }
        let parsed = specs
            .iter()
            .map(|s| berth_core::link::parse(s).map_err(EngineError::invalid))
            .collect::<Result<Vec<_>>>()?;
        if mode != DEFAULT_NETWORK && mode != "none" {
            // A user-defined network: Docker ignores HostConfig.Links (the endpoint's count).
            return Ok((links, warnings));
        }
        let could_not = |name: &str, e: EngineError| {
            let msg = format!("could not get container for {name}: {e}");
            if e.kind() == ErrorKind::NotFound {
                EngineError::invalid(msg)
            } else {
                EngineError::with_kind(e.kind(), msg)
            }
        };
        for (name, alias) in parsed {
            let child = self.find(&name).map_err(|e| could_not(&name, e))?;
            // Whose network it has, to the end of a `container:` chain.
            let mut net_owner = child.clone();
            for _ in 0..16 {
                let Some(id) = net_owner.net.mode.strip_prefix("container:") else {
                    break;
                };
                let id = id.to_owned();
                net_owner = self.find(&id).map_err(|e| could_not(&id, e))?;
            }
            if net_owner.net.mode == "host" {
                return Err(EngineError::invalid(HOST_CONFLICT));
            }
            if let Some(taken) = links.iter().find(|l| l.alias == alias) {
                warnings.push(format!(
                    "link {name}:{alias} ignored: the alias {alias} already links to {}",
                    taken.name
                ));
                continue;
            }
            links.push(Link {
                child: child.id.clone(),
                name: child.name.clone(),
                alias,
            });
        }
        Ok((links, warnings))
    }

    /// `HostConfig.Links` as inspect shows it: `/child:/parent/alias`, the child by its
    /// current name (by the last one known once it is gone); none: null.
    pub(crate) fn links_shown(&self, rec: &Record) -> Option<Vec<String>> {
        if rec.links.is_empty() {
            return None;
        }
        Some(
            rec.links
                .iter()
                .map(|l| {
                    let child = self
                        .containers
                        .get(&l.child)
                        .map_or_else(|_| l.name.clone(), |c| c.name.clone());
                    format!("/{child}:/{}/{}", rec.name, l.alias)
                })
                .collect(),
        )
    }

    /// What `rec`'s links give it at start. Nothing unless it is on the default bridge; each
    /// linked container must run there (Docker's words otherwise).
    pub(crate) fn link_setup(&self, rec: &Record) -> Result<LinkSetup> {
        let mut setup = LinkSetup::default();
        if rec.links.is_empty() || !rec.net.networks.iter().any(|a| a.name == DEFAULT_NETWORK) {
            return Ok(setup);
        }
        for l in &rec.links {
            let link_name = format!("/{}/{}", rec.name, l.alias);
            let child = self.containers.get(&l.child).ok();
            let running = child
                .as_ref()
                .is_some_and(|c| self.refresh(&c.id).running());
            let (Some(child), true) = (child, running) else {
                let name = self
                    .containers
                    .get(&l.child)
                    .map_or_else(|_| l.name.clone(), |c| c.name.clone());
                return Err(EngineError::conflict(format!(
                    "Cannot link to a non running container: /{name} AS {link_name}"
                )));
            };
            let ip = self.bridge_address(&child).ok_or_else(|| {
                EngineError::conflict(format!(
                    "container {} not attached to default bridge network",
                    child.id
                ))
            })?;
            let exposed = child.config.exposed_ports.clone().unwrap_or_default();
            setup
                .env
                .extend(link_env(&link_name, IpAddr::V4(ip), child.env(), &exposed));
            let mut names = vec![l.alias.clone(), child.hostname().to_owned()];
            if l.alias != child.name {
                names.push(child.name.clone());
            }
            setup.hosts.push(ExtraHost {
                name: names.join(" "),
                ip: IpAddr::V4(ip),
            });
        }
        Ok(setup)
    }

    /// The `/etc/hosts` lines of `rec`'s links (none when a linked container does not run:
    /// the start fails first, in [`Engine::link_setup`]).
    pub(crate) fn link_hosts(&self, rec: &Record) -> Vec<ExtraHost> {
        self.link_setup(rec).map(|s| s.hosts).unwrap_or_default()
    }

    /// The address of a container on the default bridge, following `container:` modes.
    fn bridge_address(&self, rec: &Record) -> Option<Ipv4Addr> {
        let mut id = rec.id.clone();
        let mut mode = rec.net.mode.clone();
        for _ in 0..16 {
            let Some(other) = mode.strip_prefix("container:") else {
                break;
            };
            let other = self.containers.get(other).ok()?;
            id = other.id.clone();
            mode = other.net.mode.clone();
        }
        self.networking()?
            .endpoints_of(&id)
            .ok()?
            .into_iter()
            .find(|e| e.network == DEFAULT_NETWORK)
            .map(|e| e.ip)
    }

    /// The container a link name (`parent/alias`, with or without the leading `/`) stands
    /// for, as Docker's name registrar knows it.
    pub(crate) fn find_by_link(&self, key: &str) -> Option<Arc<Record>> {
        let key = key.strip_prefix('/').unwrap_or(key);
        let (parent, alias) = key.split_once('/')?;
        let parent = self
            .containers
            .get(parent)
            .ok()
            .filter(|p| p.name == parent)?;
        let link = parent.links.iter().find(|l| l.alias == alias)?;
        self.containers.get(&link.child).ok()
    }

    /// `DELETE /containers/{parent/alias}?link=1` (`docker rm --link`): the parent loses the
    /// link; both containers stay.
    pub fn remove_link(&self, name: &str) -> Result<()> {
        self.find(name)?;
        let full = name.trim_start_matches('/');
        let Some((parent, alias)) = full.split_once('/') else {
            return Err(EngineError::conflict(
                "Conflict, cannot remove the default link name of the container",
            ));
        };
        let parent = self
            .containers
            .get(parent)
            .ok()
            .filter(|p| p.name == parent)
            .ok_or_else(|| {
                EngineError::not_found(format!("Cannot get parent /{parent} for link name /{full}"))
            })?;
        let alias = alias.to_owned();
        self.containers.update(&parent.id, |r| {
            r.links.retain(|l| l.alias != alias);
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
    }

    #[test]
    fn a_link_gives_dockers_variables_in_dockers_order() {
        let env = link_env(
            "/web/my-db",
            ip(),
            &[
                "FOO=1".into(),
                "PATH=/bin".into(),
                "HOME=/x".into(),
                "HOSTNAME=h".into(),
                "BARE".into(),
            ],
            &[
                "8080/udp".into(),
                "81/tcp".into(),
                "80/tcp".into(),
                "82/tcp".into(),
            ],
        );
        let want = [
            "MY_DB_PORT=tcp://10.0.0.2:80",
            "MY_DB_PORT_80_TCP_START=tcp://10.0.0.2:80",
            "MY_DB_PORT_80_TCP_ADDR=10.0.0.2",
            "MY_DB_PORT_80_TCP_PROTO=tcp",
            "MY_DB_PORT_80_TCP_PORT_START=80",
            "MY_DB_PORT_80_TCP_END=tcp://10.0.0.2:82",
            "MY_DB_PORT_80_TCP_PORT_END=82",
            "MY_DB_PORT_80_TCP=tcp://10.0.0.2:80",
            "MY_DB_PORT_80_TCP_ADDR=10.0.0.2",
            "MY_DB_PORT_80_TCP_PORT=80",
            "MY_DB_PORT_80_TCP_PROTO=tcp",
            "MY_DB_PORT_81_TCP=tcp://10.0.0.2:81",
            "MY_DB_PORT_81_TCP_ADDR=10.0.0.2",
            "MY_DB_PORT_81_TCP_PORT=81",
            "MY_DB_PORT_81_TCP_PROTO=tcp",
            "MY_DB_PORT_82_TCP=tcp://10.0.0.2:82",
            "MY_DB_PORT_82_TCP_ADDR=10.0.0.2",
            "MY_DB_PORT_82_TCP_PORT=82",
            "MY_DB_PORT_82_TCP_PROTO=tcp",
            "MY_DB_PORT_8080_UDP=udp://10.0.0.2:8080",
            "MY_DB_PORT_8080_UDP_ADDR=10.0.0.2",
            "MY_DB_PORT_8080_UDP_PORT=8080",
            "MY_DB_PORT_8080_UDP_PROTO=udp",
            "MY_DB_NAME=/web/my-db",
            "MY_DB_ENV_FOO=1",
            "MY_DB_ENV_HOSTNAME=h",
        ];
        assert_eq!(env, want);
    }

    #[test]
    fn two_consecutive_ports_are_no_range_and_udp_can_be_the_default() {
        let env = link_env(
            "/p/c2",
            ip(),
            &[],
            &["9001/udp".into(), "53/udp".into(), "9000/udp".into()],
        );
        assert_eq!(env[0], "C2_PORT=udp://10.0.0.2:53");
        assert!(!env.iter().any(|v| v.contains("_START")), "{env:?}");
        assert_eq!(env.last().unwrap(), "C2_NAME=/p/c2");
        // No ports: the name only.
        assert_eq!(link_env("/p/x", ip(), &[], &[]), ["X_NAME=/p/x"]);
        // Of one number, tcp first.
        let env = link_env("/p/x", ip(), &[], &["53/udp".into(), "53/tcp".into()]);
        assert_eq!(env[0], "X_PORT=tcp://10.0.0.2:53");
    }

    #[test]
    fn endpoint_links_are_checked_and_keyed_by_alias() {
        let links = vec![
            "upstream:bar".to_owned(),
            "/db:/x/data".to_owned(),
            "solo".to_owned(),
        ];
        let m = endpoint_links(Some(&links)).unwrap();
        assert_eq!(m.get("bar").map(String::as_str), Some("upstream"));
        assert_eq!(m.get("data").map(String::as_str), Some("db"));
        assert_eq!(m.get("solo").map(String::as_str), Some("solo"));
        let bad = vec!["a:b:c".to_owned()];
        let e = endpoint_links(Some(&bad)).unwrap_err();
        assert_eq!(e.to_string(), "bad format for links: a:b:c");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(endpoint_links(None).unwrap().is_empty());
    }
}
