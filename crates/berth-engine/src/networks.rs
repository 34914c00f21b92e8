//! Container networking (issue 6), over `berth-network`: the default `bridge` network made at
//! daemon start, each container's network namespace (made by the engine before the container
//! starts, an nsfs file bind-mounted at `containers/<id>/netns`, so it outlives the process
//! and restarts reuse it), its endpoints (attached before the process runs, detached when the
//! engine notices the exit and on remove), and its `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::EngineError;
use berth_api::networks::{NetworkIpam, NetworkResource};
use berth_core::filters::Filters;
use berth_network::{
    files, AttachRequest, Endpoint, HostPort, NetworkConfig, Networking, PortSpec,
};
use berth_oci::spec::UserMount;
use bollard_stubs::models::{
    ConfigReference, EndpointIpamConfig, EndpointResource, EndpointSettings, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkInspect, NetworkPruneResponse, NetworkSettings, PortBinding, PortSummary,
    PortSummaryTypeEnum,
};
use serde::{Deserialize, Serialize};

use crate::container::record::Record;
use crate::Engine;
use berth_api::BackendResult;
use bollard_stubs::models::ContainerCreateBody;

/// The default network's name (Docker's).
pub const DEFAULT_NETWORK: &str = "bridge";

/// The networks Docker lists besides `bridge`: modes, not networks berth makes.
const PSEUDO_NETWORKS: [&str; 2] = ["host", "none"];

/// `berth daemon --bridge/--bip/--nft-table`.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The default network's bridge (`berth0`).
    pub bridge: String,
    /// The default network's gateway address and prefix (`10.209.0.1/16`), or its subnet.
    pub bip: Option<String>,
    /// berth's nftables table (`berth`).
    pub nft_table: String,
    /// Binds published ports on the host for a rootless daemon (its agent); None: DNAT.
    pub host_ports: Option<Arc<dyn berth_network::HostPorts>>,
    /// `--default-address-pool`: where networks created without a subnet get one; empty:
    /// berth's own pool.
    pub address_pools: Vec<berth_network::AddressPool>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            bridge: berth_network::DEFAULT_BRIDGE.into(),
            bip: None,
            nft_table: berth_network::DEFAULT_TABLE.into(),
            host_ports: None,
            address_pools: Vec::new(),
        }
    }
}

pub use crate::container::record::{NetAttach, NetRecord};

/// What the spec needs from networking.
#[derive(Debug, Default)]
pub(crate) struct NetSetup {
    pub host_network: bool,
    pub netns: Option<PathBuf>,
    pub mounts: Vec<UserMount>,
}

pub(crate) fn net_err(e: berth_network::NetError) -> EngineError {
    EngineError::from_kind(&e)
}

const NSFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6e73_6673);

pub(crate) fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Brings `lo` up in the calling thread's network namespace (system calls only: a forked
/// child of the daemon may call it).
pub(crate) fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain datagram socket; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: fd is open, req a valid ifreq naming `lo`; the union member is the flags.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

/// A new network namespace with `lo` up, bind-mounted onto `path` (made empty first), from
/// a thread of its own that exits after (no thread of the daemon changes namespace); or, for
/// a container in a user namespace (`userns`, `--userns-remap`), owned by that namespace, so
/// the container can join it and mount its sysfs.
fn make_netns(path: &Path, userns: Option<&Path>) -> std::io::Result<()> {
    if let Some(userns) = userns {
        return crate::userns::make_netns_in(path, userns);
    }
    std::fs::File::create(path)?;
    let target = path.to_owned();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> std::io::Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            loopback_up()?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })?
        .join()
        .map_err(|_| std::io::Error::other("the netns thread panicked"))?
}

/// `80/tcp` → (80, tcp).
fn parse_port_key(key: &str) -> Option<(&str, &str)> {
    Some(key.split_once('/').unwrap_or((key, "tcp")))
}

/// Makes networking ready at daemon start.
pub(crate) fn init(root: &Path, opts: &NetworkOptions) -> Result<Networking, String> {
    let _ = berth_network::enable_ip_forward();
    let defaults = berth_network::Options::new(root.join("networks"));
    let net = Networking::new(berth_network::Options {
        nft_table: opts.nft_table.clone(),
        host_ports: opts.host_ports.clone(),
        address_pools: if opts.address_pools.is_empty() {
            defaults.address_pools.clone()
        } else {
            opts.address_pools.clone()
        },
        ..defaults
    })
    .map_err(|e| format!("networking: {e}"))?;
    if net.network(DEFAULT_NETWORK).is_err() {
        let bip = opts
            .bip
            .clone()
            .unwrap_or_else(|| berth_network::DEFAULT_SUBNET.into());
        let (addr, prefix) = bip
            .split_once('/')
            .ok_or_else(|| format!("invalid --bip {bip:?}: want ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("invalid --bip {bip:?}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| format!("invalid --bip {bip:?}"))?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let subnet = berth_network::Subnet::new(Ipv4Addr::from(u32::from(addr) & mask), prefix)
            .map_err(|e| format!("invalid --bip {bip:?}: {e}"))?;
        let mut config = NetworkConfig::new(DEFAULT_NETWORK, &opts.bridge, subnet);
        if addr != subnet.network() {
            config.gateway = Some(addr);
        }
        config.dns = false;
        net.create_network(config)
            .map_err(|e| format!("create the default network: {e}"))?;
    }
    net.enable_dns(berth_network::DnsOptions::default())
        .map_err(|e| format!("start the embedded DNS: {e}"))?;
    Ok(net)
}

impl Engine {
    pub(crate) fn networking(&self) -> Option<&Arc<Networking>> {
        self.net.as_ref()
    }

    /// Daemon start, after `init`: endpoints of containers that are not running are let go,
    /// and those no record accounts for; then bridges, listeners and rules are restored.
    pub(crate) fn restore_networks(&self) -> Result<(), String> {
        let Some(net) = self.networking() else {
            return Ok(());
        };
        let records = self.records();
        // The networks each running container's record puts it on.
        let mut running: std::collections::HashMap<&str, Vec<&str>> = Default::default();
        for rec in &records {
            if self.refresh(&rec.id).running() {
                running.insert(rec.id.as_str(), listed_networks(&rec.net));
            } else {
                self.network_down(&rec.id);
                self.userns_down(&rec.id);
            }
        }
        let known: std::collections::HashSet<&str> =
            records.iter().map(|r| r.id.as_str()).collect();
        for state in net.networks().map_err(|e| format!("networks: {e}"))? {
            let name = state.config.name.as_str();
            let owners: std::collections::BTreeSet<&String> = state
                .endpoints
                .keys()
                .chain(state.allocations.values())
                .collect();
            for owner in owners {
                // Whose owner is no container: a build step's, or a create's, cut short by a
                // crash; they would hold addresses (and veths) forever. Or a running
                // container's on a network its record does not list: a `network connect` cut
                // short between the endpoint and the record, which neither `disconnect`
                // (reading the record) nor `network rm` (active endpoints) could let go.
                let stray = !known.contains(owner.as_str())
                    || running
                        .get(owner.as_str())
                        .is_some_and(|listed| !listed.contains(&name));
                if stray {
                    let _ = net.detach(name, owner);
                    let _ = net.release_ip(name, owner);
                }
            }
        }
        net.restore()
            .map_err(|e| format!("restore networking: {e}"))
    }

    fn netns_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("netns")
    }

    /// The network settings of a create request (`HostConfig.NetworkMode`, `PortBindings`,
    /// `PublishAllPorts`, `Dns*`, `ExtraHosts`, `NetworkingConfig`, `MacAddress`).
    pub(crate) fn net_for_create(
        &self,
        body: &ContainerCreateBody,
        body_mac: &Option<String>,
        image_exposed: &[String],
    ) -> Result<NetRecord, EngineError> {
        let empty = Default::default();
        let hc = body.host_config.as_ref().unwrap_or(&empty);
        let mode = match hc.network_mode.as_deref().unwrap_or("") {
            "" | "default" => DEFAULT_NETWORK.to_owned(),
            m => m.to_owned(),
        };
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref());
        let raw_mode = hc.network_mode.as_deref().unwrap_or("");
        let mut rec = NetRecord {
            mode: mode.clone(),
            ..Default::default()
        };
        let bad = |m: String| EngineError::invalid(m);
        match mode.as_str() {
            "host" | "none" => {}
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                rec.mode = format!("container:{}", other.id);
            }
            name => {
                if let Some(net) = self.networking() {
                    net.network(name)
                        .map_err(|_| EngineError::not_found(format!("network {name} not found")))?;
                } else if name != DEFAULT_NETWORK {
                    return Err(EngineError::not_found(format!("network {name} not found")));
                }
                // The docker CLI keys the endpoint by the mode as given (`default` too).
                let ep = endpoints.and_then(|e| e.get(name).or_else(|| e.get(raw_mode)));
                let attach = endpoint_attach(name, ep)?;
                rec.mac = ep
                    .and_then(|e| e.mac_address.clone())
                    .filter(|s| !s.is_empty());
                rec.mac = rec.mac.or_else(|| body_mac.clone());
                rec.networks.push(attach);
                // API 1.44 and later: the other entries are more networks joined at create
                // (`docker run --network a --network b`, Compose's services on several).
                let mut others: Vec<(&String, &EndpointSettings)> = endpoints
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != name && k.as_str() != raw_mode)
                    .collect();
                others.sort_by(|a, b| a.0.cmp(b.0));
                for (other, ep) in others {
                    if let Some(net) = self.networking() {
                        let found = net.network(other).map_err(|_| {
                            EngineError::not_found(format!("network {other} not found"))
                        })?;
                        let same = |n: &NetAttach| {
                            net.network(&n.name)
                                .is_ok_and(|x| x.config.name == found.config.name)
                        };
                        if rec.networks.iter().any(same) {
                            continue;
                        }
                    } else {
                        return Err(EngineError::not_found(format!("network {other} not found")));
                    }
                    rec.networks.push(endpoint_attach(other, Some(ep))?);
                }
            }
        }
        for s in hc.dns.iter().flatten() {
            rec.dns.push(
                s.parse()
                    .map_err(|_| bad(format!("{s} is not an ip address")))?,
            );
        }
        rec.dns_search = hc.dns_search.clone().unwrap_or_default();
        rec.dns_options = hc.dns_options.clone().unwrap_or_default();
        rec.extra_hosts = hc.extra_hosts.clone().unwrap_or_default();
        let gw = self.host_gateway();
        for h in &rec.extra_hosts {
            files::ExtraHost::parse(h, gw).map_err(net_err)?;
        }
        // Published ports: -p, then -P with every exposed port not published already.
        if rec.mode != "host" && !rec.mode.starts_with("container:") {
            let mut bindings: Vec<_> = hc.port_bindings.iter().flatten().collect();
            bindings.sort_by(|a, b| a.0.cmp(b.0));
            for (key, list) in bindings {
                let (port, proto) =
                    parse_port_key(key).ok_or_else(|| bad(format!("invalid port {key}")))?;
                let list = list.clone().unwrap_or_default();
                let list = if list.is_empty() {
                    vec![Default::default()]
                } else {
                    list
                };
                for b in list {
                    let ip = b.host_ip.as_deref().unwrap_or("");
                    let hp = b.host_port.as_deref().unwrap_or("");
                    let spec = format!("{ip}:{hp}:{port}/{proto}");
                    rec.ports.extend(PortSpec::parse(&spec).map_err(net_err)?);
                }
            }
            if hc.publish_all_ports.unwrap_or(false) {
                let mut exposed: Vec<String> = image_exposed.to_vec();
                exposed.extend(body.exposed_ports.iter().flatten().cloned());
                for key in exposed {
                    let Some((port, proto)) = parse_port_key(&key) else {
                        continue;
                    };
                    for spec in PortSpec::parse(&format!("{port}/{proto}")).map_err(net_err)? {
                        if !rec.ports.iter().any(|p| {
                            p.container_port == spec.container_port && p.protocol == spec.protocol
                        }) {
                            rec.ports.push(PortSpec {
                                host_port: HostPort::Any,
                                ..spec
                            });
                        }
                    }
                }
            }
        }
        Ok(rec)
    }

    /// The default bridge's gateway (`--add-host x:host-gateway`).
    fn host_gateway(&self) -> Option<IpAddr> {
        let net = self.networking()?;
        let state = net.network(DEFAULT_NETWORK).ok()?;
        Some(IpAddr::V4(state.config.gateway()))
    }

    /// Before the container starts: its namespace (owned by `userns` when it has one of
    /// its own), endpoints and files.
    pub(crate) fn network_up(
        &self,
        rec: &Record,
        userns: Option<&Path>,
    ) -> Result<NetSetup, EngineError> {
        let dir = self.container_dir(&rec.id);
        let io = |what: &str, e: std::io::Error| EngineError::internal(format!("{what}: {e}"));
        // Containers created before networking have no settings: the default network.
        let legacy;
        let n = if rec.net.mode.is_empty() {
            legacy = NetRecord {
                mode: DEFAULT_NETWORK.into(),
                networks: vec![NetAttach {
                    name: DEFAULT_NETWORK.into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            &legacy
        } else {
            &rec.net
        };
        if let Some(other) = n.mode.strip_prefix("container:") {
            let other_rec = self.find(other)?;
            if !self.refresh(&other_rec.id).running() {
                return Err(EngineError::conflict(format!(
                    "cannot join network of a non running container: {}",
                    other_rec.id
                )));
            }
            let odir = self.container_dir(&other_rec.id);
            let ns = self.netns_file(&other_rec.id);
            return Ok(NetSetup {
                host_network: !ns.exists(),
                netns: ns.exists().then_some(ns),
                mounts: file_mounts(&odir),
            });
        }
        let host_resolv = files::ResolvConf::host();
        let mut resolv = files::ResolvOptions {
            dns: n.dns.clone(),
            dns_search: n.dns_search.clone(),
            dns_options: n.dns_options.clone(),
            ..Default::default()
        };
        let extra: Vec<files::ExtraHost> = n
            .extra_hosts
            .iter()
            .filter_map(|h| files::ExtraHost::parse(h, self.host_gateway()).ok())
            .collect();
        let mut hosts = files::HostsOptions {
            hostname: rec.hostname().to_owned(),
            extra,
            ..Default::default()
        };
        hosts.extra.extend(self.link_hosts(rec));
        let mut setup = NetSetup::default();
        if n.mode == "host" {
            setup.host_network = true;
            resolv.host_network = true;
        } else {
            let ns = self.netns_file(&rec.id);
            if !is_nsfs(&ns) {
                make_netns(&ns, userns).map_err(|e| io("make the network namespace", e))?;
            }
            setup.netns = Some(ns.clone());
            if let Some(net) = self.networking() {
                if !net.endpoints_of(&rec.id).map_err(net_err)?.is_empty() {
                    let _ = net.detach_all(&rec.id);
                }
                let short = rec.id.get(..12).unwrap_or(&rec.id).to_owned();
                for (i, a) in n.networks.iter().enumerate() {
                    let mut req = AttachRequest::new(&a.name, &rec.id, &ns);
                    req.ifname = format!("eth{i}");
                    req.ip = a.ip;
                    req.ip6 = requested_ip6(a.ipam_config.as_ref()).ok().flatten();
                    req.mac = if i == 0 { n.mac.clone() } else { None };
                    req.mac = req.mac.or_else(|| a.mac.clone());
                    req.names = [rec.name.clone(), short.clone()]
                        .into_iter()
                        .chain(a.aliases.iter().cloned())
                        .collect();
                    if i == 0 {
                        req.ports = n.ports.clone();
                    }
                    req.dns_servers = n.dns.clone();
                    req.links = crate::container::links::endpoint_links(a.links.as_ref())?;
                    let ep = match net.attach(&req) {
                        Ok(ep) => ep,
                        Err(e) => {
                            let _ = net.detach_all(&rec.id);
                            return Err(net_err(e));
                        }
                    };
                    hosts.addresses.push(ep.ip);
                    hosts.addresses6.extend(ep.ip6);
                    if a.name != DEFAULT_NETWORK {
                        hosts.aliases.extend(a.aliases.iter().cloned());
                    }
                    if resolv.embedded_dns.is_none() {
                        if let Ok(state) = net.network(&a.name) {
                            if state.config.dns {
                                resolv.embedded_dns = Some(state.config.gateway());
                            }
                        }
                    }
                }
            }
        }
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).map_err(|e| io(name, e))
        };
        if n.mode == "host" {
            write(
                "hosts",
                std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            )?;
        } else {
            write("hosts", files::hosts_file(&hosts))?;
        }
        write("hostname", files::hostname_file(rec.hostname()))?;
        write("resolv.conf", files::resolv_conf(&host_resolv, &resolv))?;
        setup.mounts = file_mounts(&dir);
        Ok(setup)
    }

    /// The container's process is gone: its endpoints and its namespace go (a start makes a
    /// new one, as Docker makes a new sandbox). The kernel deletes the veth pairs with the
    /// namespace, in the background (see `Networking::release_all`).
    pub(crate) fn network_down(&self, id: &str) {
        if let Some(net) = self.networking() {
            let _ = net.release_all(id);
        }
        let ns = self.netns_file(id);
        if is_nsfs(&ns) {
            let _ = nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_file(&ns);
    }

    /// The network of a build step's container `id` (files in `dir`): `host`, `none` (its own
    /// namespace with only loopback) or, by default, an endpoint on the default network, as
    /// the classic builder gives RUN; owned by the step's user namespace `userns` when it has
    /// one. Undone by [`Engine::build_network_down`].
    pub(crate) fn build_network_up(
        &self,
        id: &str,
        dir: &Path,
        mode: &str,
        extra_hosts: &[String],
        userns: Option<&Path>,
    ) -> Result<NetSetup, EngineError> {
        let io = |what: &str, e: std::io::Error| EngineError::internal(format!("{what}: {e}"));
        let hostname = id.get(..12).unwrap_or(id).to_owned();
        let extra = extra_hosts
            .iter()
            .map(|h| {
                files::ExtraHost::parse(h, self.host_gateway())
                    .map_err(|e| EngineError::invalid(format!("invalid --add-host {h:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut hosts = files::HostsOptions {
            hostname: hostname.clone(),
            extra,
            ..Default::default()
        };
        let mut resolv = files::ResolvOptions::default();
        let mut setup = NetSetup::default();
        match mode {
            "host" => {
                setup.host_network = true;
                resolv.host_network = true;
            }
            "none" | "default" | "bridge" | "" => {
                let ns = dir.join("netns");
                make_netns(&ns, userns).map_err(|e| io("make the network namespace", e))?;
                setup.netns = Some(ns.clone());
                if let (Some(net), false) = (self.networking(), mode == "none") {
                    let mut req = AttachRequest::new(DEFAULT_NETWORK, id, &ns);
                    req.ifname = "eth0".into();
                    let ep = net.attach(&req).map_err(net_err)?;
                    hosts.addresses.push(ep.ip);
                }
            }
            other => match other.strip_prefix("container:") {
                // Another container's namespace (and its files), as `--network container:`.
                Some(key) => {
                    let donor = self.find(key)?;
                    if !self.refresh(&donor.id).running() {
                        return Err(EngineError::conflict(format!(
                            "cannot join network of a non running container: {}",
                            donor.id
                        )));
                    }
                    let ns = self.netns_file(&donor.id);
                    setup.host_network = !ns.exists();
                    setup.netns = ns.exists().then_some(ns);
                    setup.mounts = file_mounts(&self.container_dir(&donor.id));
                    return Ok(setup);
                }
                // A user-defined network: the step is an endpoint on it, with its DNS.
                None => {
                    let state = self.find_network(other)?;
                    let net = self.net_required()?;
                    let ns = dir.join("netns");
                    make_netns(&ns, userns).map_err(|e| io("make the network namespace", e))?;
                    setup.netns = Some(ns.clone());
                    let mut req = AttachRequest::new(&state.config.name, id, &ns);
                    req.ifname = "eth0".into();
                    req.names = vec![hostname.clone()];
                    let ep = net.attach(&req).map_err(net_err)?;
                    hosts.addresses.push(ep.ip);
                    if state.config.dns {
                        resolv.embedded_dns = Some(state.config.gateway());
                    }
                }
            },
        }
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).map_err(|e| io(name, e))
        };
        write("hosts", files::hosts_file(&hosts))?;
        write("hostname", files::hostname_file(&hostname))?;
        write(
            "resolv.conf",
            files::resolv_conf(&files::ResolvConf::host(), &resolv),
        )?;
        setup.mounts = file_mounts(dir);
        Ok(setup)
    }

    /// Takes a build step's network away again.
    pub(crate) fn build_network_down(&self, id: &str, dir: &Path, mode: &str) {
        if let Some(net) = self.networking() {
            let _ = net.release_all(id);
            let _ = net.release_ip(DEFAULT_NETWORK, id);
            if !matches!(mode, "" | "default" | "bridge" | "host" | "none")
                && !mode.starts_with("container:")
            {
                // By name or ID, as the step was attached.
                if let Ok(state) = self.find_network(mode) {
                    let _ = net.release_ip(&state.config.name, id);
                }
            }
        }
        let ns = dir.join("netns");
        let _ = nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&ns);
        crate::userns::unpin(&dir.join("userns"));
    }

    /// The container is being removed: endpoints, reservations and its namespace.
    pub(crate) fn network_remove(&self, rec: &Record) {
        self.network_down(&rec.id);
        if let Some(net) = self.networking() {
            for a in &rec.net.networks {
                let _ = net.release_ip(&a.name, &rec.id);
            }
        }
        let ns = self.netns_file(&rec.id);
        let _ = nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&ns);
    }

    fn endpoints(&self, id: &str) -> Vec<Endpoint> {
        self.networking()
            .and_then(|n| n.endpoints_of(id).ok())
            .unwrap_or_default()
    }

    /// Every network's state, read once for one listing or inspect.
    pub(crate) fn network_view(&self) -> NetworkView {
        NetworkView {
            states: self
                .networking()
                .and_then(|n| n.networks().ok())
                .unwrap_or_default(),
        }
    }

    /// `ps`'s Ports column.
    pub(crate) fn port_summary(&self, id: &str, view: &NetworkView) -> Vec<PortSummary> {
        let mut out = Vec::new();
        for ep in view.endpoints_of(id) {
            for p in &ep.ports {
                out.push(PortSummary {
                    ip: Some(p.host_ip.to_string()),
                    private_port: p.container_port,
                    public_port: Some(p.host_port),
                    typ: Some(match p.protocol {
                        berth_network::Protocol::Tcp => PortSummaryTypeEnum::TCP,
                        berth_network::Protocol::Udp => PortSummaryTypeEnum::UDP,
                    }),
                });
            }
        }
        out
    }

    /// Inspect's NetworkSettings.
    pub(crate) fn network_settings(&self, rec: &Record, view: &NetworkView) -> NetworkSettings {
        let eps = view.endpoints_of(&rec.id);
        let mut ports: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for spec in &rec.net.ports {
            ports
                .entry(format!("{}/{}", spec.container_port, spec.protocol))
                .or_insert(None);
        }
        let mut networks = HashMap::new();
        for (i, a) in rec.net.networks.iter().enumerate() {
            let ep = eps.iter().copied().find(|e| e.network == a.name);
            // The same IDs as network inspect gives (Compose compares them).
            let net_id = view.network(&a.name).map(|s| self.id_of(&s.config.name));
            // Before start (no endpoint): the MAC asked for, if any (Docker shows it).
            let asked_mac = if i == 0 { rec.net.mac.clone() } else { None };
            networks.insert(
                a.name.clone(),
                endpoint_view(a, net_id, ep, asked_mac.or_else(|| a.mac.clone())),
            );
            if let Some(ep) = ep {
                for p in &ep.ports {
                    ports
                        .entry(format!("{}/{}", p.container_port, p.protocol))
                        .or_insert(None)
                        .get_or_insert_with(Vec::new)
                        .push(PortBinding {
                            host_ip: Some(p.host_ip.to_string()),
                            host_port: Some(p.host_port.to_string()),
                        });
                }
            }
        }
        if matches!(rec.net.mode.as_str(), "host" | "none") {
            networks.insert(rec.net.mode.clone(), EndpointSettings::default());
        }
        let ns = self.netns_file(&rec.id);
        NetworkSettings {
            sandbox_id: Some(rec.id.clone()),
            sandbox_key: Some(if ns.exists() {
                ns.display().to_string()
            } else {
                String::new()
            }),
            ports: Some(ports),
            networks: Some(networks),
        }
    }
}

/// The networks as one listing or inspect sees them: read once, looked up per container.
pub(crate) struct NetworkView {
    states: Vec<berth_network::NetworkState>,
}

impl NetworkView {
    /// The container's endpoints, one per network it is on.
    fn endpoints_of(&self, id: &str) -> Vec<&Endpoint> {
        self.states
            .iter()
            .filter_map(|n| n.endpoints.get(id))
            .collect()
    }

    fn network(&self, name: &str) -> Option<&berth_network::NetworkState> {
        self.states.iter().find(|n| n.config.name == name)
    }
}

/// One `NetworkSettings.Networks.<net>` as Docker's `EndpointSettings`: the config as given
/// (`IPAMConfig`, `Links`, `Aliases`, `DriverOpts`; the API edge sends `null` for the ones
/// not given), then the endpoint's addresses, empty before start (the MAC asked for shows).
fn endpoint_view(
    a: &NetAttach,
    network_id_: Option<String>,
    ep: Option<&Endpoint>,
    asked_mac: Option<String>,
) -> EndpointSettings {
    let mut dns_names: Option<Vec<String>> = None;
    if let Some(e) = ep {
        let mut names: Vec<String> = Vec::new();
        for n in &e.names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        dns_names = Some(names);
    }
    EndpointSettings {
        ipam_config: a.ipam_config.clone(),
        links: a.links.clone(),
        aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
        driver_opts: a.driver_opts.clone(),
        network_id: Some(network_id_.unwrap_or_default()),
        endpoint_id: Some(
            ep.map(|e| network_id(&format!("{}\0{}", e.network, e.id)))
                .unwrap_or_default(),
        ),
        gateway: Some(
            ep.and_then(|e| e.gateway.map(|g| g.to_string()))
                .unwrap_or_default(),
        ),
        ip_address: Some(ep.map(|e| e.ip.to_string()).unwrap_or_default()),
        ip_prefix_len: Some(ep.map(|e| i64::from(e.prefix)).unwrap_or(0)),
        ipv6_gateway: Some(
            ep.and_then(|e| e.gateway6.map(|g| g.to_string()))
                .unwrap_or_default(),
        ),
        global_ipv6_address: Some(
            ep.and_then(|e| e.ip6.map(|ip| ip.to_string()))
                .unwrap_or_default(),
        ),
        global_ipv6_prefix_len: Some(
            ep.filter(|e| e.ip6.is_some())
                .map_or(0, |e| i64::from(e.prefix6)),
        ),
        mac_address: Some(ep.map(|e| e.mac.clone()).or(asked_mac).unwrap_or_default()),
        dns_names,
        ..Default::default()
    }
}

/// The networks a container's record puts it on (a record from before networking: the
/// default network, as `network_up` reads it).
fn listed_networks(n: &NetRecord) -> Vec<&str> {
    if n.mode.is_empty() {
        return vec![DEFAULT_NETWORK];
    }
    n.networks.iter().map(|a| a.name.as_str()).collect()
}

/// `IPAMConfig.IPv6Address` of an endpoint (`--ip6`): None when not given, Docker's 400
/// when it is not an IPv6 address. Used on dual-stack networks; elsewhere Docker ignores it.
fn requested_ip6(ipam: Option<&EndpointIpamConfig>) -> Result<Option<Ipv6Addr>, EngineError> {
    match ipam.and_then(|i| i.ipv6_address.as_deref()).unwrap_or("") {
        "" => Ok(None),
        s => s
            .parse::<Ipv6Addr>()
            .map(Some)
            .map_err(|_| EngineError::invalid(format!("invalid IPv6 address: {s}"))),
    }
}

/// A network's ID: stable, from its name (64 hex digits, as Docker's).
pub(crate) fn network_id(name: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(format!("berth-network:{name}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What every network berth shows has in common: bridge or pseudo network alike, local,
/// IPv4 only, never attachable, ingress or config-only. `created` is Go's zero time when
/// unknown (the default network and the pseudo networks).
fn network_common(name: &str, id: String, created: Option<String>) -> NetworkInspect {
    NetworkInspect {
        name: Some(name.to_owned()),
        id: Some(id),
        created: Some(created.unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned())),
        scope: Some("local".into()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        internal: Some(false),
        attachable: Some(false),
        ingress: Some(false),
        config_from: Some(ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        ..Default::default()
    }
}

fn file_mounts(dir: &Path) -> Vec<UserMount> {
    ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| UserMount::Bind {
            source: dir.join(f),
            target: format!("/etc/{f}"),
            readonly: false,
            propagation: None,
        })
        .collect()
}

/// `IPAM.Config` by family: an entry is IPv6 when its subnet (else its gateway, else its
/// range) is. Two of one family: Docker's refusal.
fn split_ipam(
    configs: Vec<IpamConfig>,
) -> Result<(Option<IpamConfig>, Option<IpamConfig>), EngineError> {
    let (mut v4, mut v6) = (None, None);
    for c in configs {
        let is6 = [&c.subnet, &c.gateway, &c.ip_range]
            .into_iter()
            .find_map(|f| f.as_deref().filter(|s| !s.is_empty()))
            .is_some_and(|s| s.contains(':'));
        let slot = if is6 { &mut v6 } else { &mut v4 };
        if slot.is_some() {
            return Err(forbidden(
                "bridge driver doesn't support multiple subnets".into(),
            ));
        }
        *slot = Some(c);
    }
    Ok((v4, v6))
}

/// The IPv6 half of a network from its `IPAM.Config` entry, with Docker's words for what is
/// wrong in it.
fn ipv6_config(c: &IpamConfig) -> Result<berth_network::Ipv6Config, EngineError> {
    let subnet = c.subnet.as_deref().unwrap_or("");
    if subnet.is_empty() {
        return Err(EngineError::invalid(
            "an IPv6 IPAM entry needs a Subnet (berth has no IPv6 pool to take one from)",
        ));
    }
    let mut v6 = berth_network::Ipv6Config::new(subnet.parse().map_err(net_err)?);
    if let Some(gw) = c.gateway.as_deref().filter(|s| !s.is_empty()) {
        v6.gateway = Some(gw.parse().map_err(|_| {
            EngineError::invalid(format!(
                "invalid gateway address {gw} in Ipam configuration"
            ))
        })?);
    }
    if let Some(r) = c.ip_range.as_deref().filter(|s| !s.is_empty()) {
        v6.ip_range = Some(r.parse().map_err(net_err)?);
    }
    Ok(v6)
}

fn forbidden(message: String) -> EngineError {
    EngineError::forbidden(message)
}

/// What the engine keeps about a user network beside berth-network's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct NetworkMeta {
    created: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    /// `Options` as created (None: a network made before berth kept them; it shows the
    /// bridge's name and MTU as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    options: Option<std::collections::BTreeMap<String, String>>,
    /// `IPAM.Options` as given (`null` in inspect when not given, as Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipam_options: Option<std::collections::BTreeMap<String, String>>,
    /// `IPAM.Config[0].IPRange` and `AuxiliaryAddresses` as given, echoed by inspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aux_addresses: Option<std::collections::BTreeMap<String, String>>,
    /// The IPv6 entry of `IPAM.Config` as given (inspect lists it after the IPv4 one, with
    /// or without `EnableIPv6`, as Docker does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6_config: Option<IpamConfig>,
}

impl Engine {
    fn network_event(&self, action: &str, name: &str) {
        self.network_event_for(action, name, None);
    }

    /// A network event; `connect`/`disconnect` name the container, as Docker's do.
    fn network_event_for(&self, action: &str, name: &str, container: Option<&str>) {
        let mut attrs: std::collections::BTreeMap<String, String> =
            [("name", name), ("type", "bridge")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        if let Some(c) = container {
            attrs.insert("container".into(), c.to_owned());
        }
        self.events
            .emit("network", action, &self.id_of(name), attrs);
    }

    fn net_required(&self) -> Result<&Arc<Networking>, EngineError> {
        self.networking()
            .ok_or_else(|| EngineError::internal("networking is not enabled in this engine"))
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.root()
            .join("network-meta")
            .join(format!("{name}.json"))
    }

    fn meta(&self, name: &str) -> NetworkMeta {
        std::fs::read(self.meta_path(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn id_of(&self, name: &str) -> String {
        network_id(&format!("{}\0{name}", self.root().display()))
    }

    /// A network by name, ID or ID prefix.
    fn find_network(&self, key: &str) -> Result<berth_network::NetworkState, EngineError> {
        let net = self.net_required()?;
        if let Ok(s) = net.network(key) {
            return Ok(s);
        }
        let all = net.networks().map_err(net_err)?;
        let mut hits = all
            .into_iter()
            .filter(|s| !key.is_empty() && self.id_of(&s.config.name).starts_with(key));
        match (hits.next(), hits.next()) {
            (Some(s), None) => Ok(s),
            (Some(_), Some(_)) => Err(EngineError::invalid(format!("network {key} is ambiguous"))),
            _ => Err(EngineError::not_found(format!("network {key} not found"))),
        }
    }

    /// `host` or `none` when `key` names one of them (by name or ID prefix): Docker lists
    /// them as networks of their own (drivers `host` and `null`), made by nobody, removed by
    /// nobody, joined only at create (`--network host|none`).
    fn pseudo_network(&self, key: &str) -> Option<&'static str> {
        PSEUDO_NETWORKS
            .iter()
            .copied()
            .find(|n| key == *n || (key.len() >= 3 && self.id_of(n).starts_with(key)))
    }

    fn pseudo_network_json(&self, name: &str) -> NetworkResource {
        let containers = self
            .records()
            .into_iter()
            .filter(|r| r.net.mode == name && self.refresh(&r.id).running())
            .map(|r| {
                (
                    r.id.clone(),
                    EndpointResource {
                        name: Some(r.name.clone()),
                        endpoint_id: Some(network_id(&format!("{name}\0{}", r.id))),
                        mac_address: Some(String::new()),
                        ipv4_address: Some(String::new()),
                        ipv6_address: Some(String::new()),
                    },
                )
            })
            .collect();
        NetworkResource {
            network: NetworkInspect {
                driver: Some(if name == "host" { "host" } else { "null" }.into()),
                containers: Some(containers),
                options: Some(HashMap::new()),
                labels: Some(HashMap::new()),
                ..network_common(name, self.id_of(name), None)
            },
            // Docker's IPAM of host and none: options null, not {}.
            ipam: NetworkIpam {
                driver: "default".into(),
                options: None,
                config: Vec::new(),
            },
        }
    }

    fn network_json(&self, s: &berth_network::NetworkState) -> NetworkResource {
        let name = &s.config.name;
        let meta = self.meta(name);
        let records = self.records();
        let containers = s
            .endpoints
            .values()
            .map(|ep| {
                let cname = records
                    .iter()
                    .find(|r| r.id == ep.id)
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                (
                    ep.id.clone(),
                    EndpointResource {
                        name: Some(cname),
                        endpoint_id: Some(network_id(&format!("{}\0{}", ep.network, ep.id))),
                        mac_address: Some(ep.mac.clone()),
                        ipv4_address: Some(format!("{}/{}", ep.ip, ep.prefix)),
                        ipv6_address: Some(
                            ep.ip6
                                .map(|ip| format!("{ip}/{}", ep.prefix6))
                                .unwrap_or_default(),
                        ),
                    },
                )
            })
            .collect();
        let default_network = meta.created.is_empty();
        let created = (!default_network).then_some(meta.created);
        NetworkResource {
            network: NetworkInspect {
                driver: Some("bridge".into()),
                internal: Some(s.config.internal),
                containers: Some(containers),
                // As created (nothing added); the default network and networks made before
                // berth kept them show the bridge's name and MTU.
                options: Some(match meta.options {
                    Some(o) => o.into_iter().collect(),
                    None => HashMap::from([
                        (
                            "com.docker.network.bridge.name".to_owned(),
                            s.config.bridge.clone(),
                        ),
                        (
                            "com.docker.network.driver.mtu".to_owned(),
                            s.config.mtu().to_string(),
                        ),
                    ]),
                }),
                labels: Some(meta.labels.into_iter().collect()),
                enable_ipv6: Some(s.config.ipv6.is_some()),
                ..network_common(name, self.id_of(name), created)
            },
            ipam: NetworkIpam {
                driver: "default".into(),
                // User networks: as given, `null` when not given (Docker). The default
                // network (no meta file) keeps `{}`.
                options: if default_network {
                    Some(HashMap::new())
                } else {
                    meta.ipam_options.map(|o| o.into_iter().collect())
                },
                config: std::iter::once(IpamConfig {
                    subnet: Some(s.config.subnet.to_string()),
                    ip_range: meta.ip_range,
                    gateway: Some(s.config.gateway().to_string()),
                    auxiliary_addresses: meta.aux_addresses.map(|a| a.into_iter().collect()),
                })
                .chain(meta.ipv6_config)
                .collect(),
            },
        }
    }

    /// What `network connect`/`disconnect` name: the network, the container's ID and its lock
    /// (to hold while the record changes). host and none take no connections.
    fn connection(
        &self,
        name: &str,
        container: &str,
    ) -> Result<
        (
            berth_network::NetworkState,
            String,
            Arc<std::sync::Mutex<()>>,
        ),
        EngineError,
    > {
        if let Some(p) = self.pseudo_network(name) {
            return Err(forbidden(format!(
                "container cannot be disconnected from {p} network or connected to {p} network"
            )));
        }
        let s = self.find_network(name)?;
        if container.is_empty() {
            return Err(EngineError::invalid("no container given"));
        }
        let id = self.find(container)?.id.clone();
        let lock = self.container_lock(&id);
        Ok((s, id, lock))
    }

    /// Attaches a running container to one more network (`network connect`).
    fn attach_running(&self, rec: &Record, a: &NetAttach) -> Result<(), EngineError> {
        let net = self.net_required()?;
        let ns = self.netns_file(&rec.id);
        let n = net.endpoints_of(&rec.id).map_err(net_err)?.len();
        let mut req = AttachRequest::new(&a.name, &rec.id, &ns);
        req.ifname = format!("eth{n}");
        req.ip = a.ip;
        req.ip6 = requested_ip6(a.ipam_config.as_ref())?;
        req.mac = a.mac.clone();
        let short = rec.id.get(..12).unwrap_or(&rec.id).to_owned();
        req.names = [rec.name.clone(), short]
            .into_iter()
            .chain(a.aliases.iter().cloned())
            .collect();
        req.dns_servers = rec.net.dns.clone();
        req.links = crate::container::links::endpoint_links(a.links.as_ref())?;
        let ep = net.attach(&req).map_err(net_err)?;
        // The container's /etc/hosts gets the new address (the file is bind-mounted: edit it
        // in place).
        let names: Vec<&str> = std::iter::once(rec.hostname())
            .chain(a.aliases.iter().map(String::as_str))
            .collect();
        let hosts = self.container_dir(&rec.id).join("hosts");
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&hosts) {
            use std::io::Write;
            let _ = writeln!(f, "{}\t{}", ep.ip, names.join(" "));
            if let Some(ip6) = ep.ip6 {
                let _ = writeln!(f, "{ip6}\t{}", names.join(" "));
            }
        }
        Ok(())
    }
}

impl Engine {
    pub fn create_network(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, EngineError> {
        let net = self.net_required()?;
        let name = req.name;
        if name.is_empty() {
            return Err(EngineError::invalid("network name is required"));
        }
        match req.driver.as_deref().unwrap_or("") {
            "" | "bridge" => {}
            d => return Err(EngineError::not_found(format!("plugin \"{d}\" not found"))),
        }
        if PSEUDO_NETWORKS.contains(&name.as_str())
            || self
                .find_network(&name)
                .is_ok_and(|s| s.config.name == name)
        {
            return Err(EngineError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        // One IPv4 and one IPv6 entry at most, as Docker's bridge driver takes them.
        let ipam_options = req.ipam.as_ref().and_then(|i| i.options.clone());
        let (ipam, ipam6) = split_ipam(req.ipam.and_then(|i| i.config).unwrap_or_default())?;
        let ipam = ipam.unwrap_or_default();
        let ipv6 = match &ipam6 {
            Some(c) => Some(ipv6_config(c)?),
            None => None,
        };
        let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
        if enable_ipv6 && ipv6.is_none() {
            // Docker 20.10 has no IPv6 pool of its own to take one from.
            return Err(EngineError::not_found(
                "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network",
            ));
        }
        let subnet = match ipam.subnet.as_deref().unwrap_or("") {
            "" => net.free_subnet().map_err(net_err)?,
            s => s.parse().map_err(net_err)?,
        };
        let id = self.id_of(&name);
        let opts = req.options.unwrap_or_default();
        let bridge = opts
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        let mut config = NetworkConfig::new(&name, bridge, subnet);
        if let Some(gw) = ipam.gateway.as_deref().filter(|s| !s.is_empty()) {
            config.gateway = Some(
                gw.parse()
                    .map_err(|_| EngineError::invalid(format!("invalid gateway {gw}")))?,
            );
        }
        if let Some(mtu) = opts.get("com.docker.network.driver.mtu") {
            config.mtu = Some(
                mtu.parse()
                    .map_err(|_| EngineError::invalid(format!("invalid MTU {mtu}")))?,
            );
        }
        let ip_range = ipam.ip_range.clone().filter(|r| !r.is_empty());
        if let Some(r) = &ip_range {
            config.ip_range = Some(r.parse().map_err(net_err)?);
        }
        config.internal = req.internal.unwrap_or(false);
        config.dns = true;
        // Without EnableIPv6 a v6 subnet is only echoed (Docker gives no one an address in it).
        config.ipv6 = ipv6.filter(|_| enable_ipv6);
        let meta = NetworkMeta {
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            labels: req.labels.unwrap_or_default().into_iter().collect(),
            options: Some(opts.into_iter().collect()),
            ipam_options: ipam_options.map(|o| o.into_iter().collect()),
            ip_range,
            aux_addresses: ipam.auxiliary_addresses.map(|a| a.into_iter().collect()),
            ipv6_config: ipam6,
        };
        std::fs::create_dir_all(self.root().join("network-meta"))
            .map_err(|e| EngineError::internal(e.to_string()))?;
        crate::save_json(&self.meta_path(&name), &meta)?;
        if let Err(e) = net.create_user_network(config) {
            let _ = std::fs::remove_file(self.meta_path(&name));
            return Err(net_err(e));
        }
        self.network_event("create", &name);
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    pub fn list_networks(&self, filters: Filters) -> Result<Vec<NetworkResource>, EngineError> {
        filters.validate(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let dangling = filters.get_bool("dangling")?;
        let net = self.net_required()?;
        let mut out = Vec::new();
        for s in net.networks().map_err(net_err)? {
            let name = &s.config.name;
            let id = self.id_of(name);
            let meta = self.meta(name);
            let builtin = name == DEFAULT_NETWORK;
            let ok = filters.any("name", |v| name.contains(v))
                && filters.fuzzy_match("id", &id)
                && filters.match_kv_list("label", &meta.labels)
                && filters.exact_match("driver", "bridge")
                && filters.any("type", |v| (v == "builtin") == builtin)
                && filters.exact_match("scope", "local")
                && dangling.is_none_or(|d| d == s.endpoints.is_empty());
            if ok {
                out.push(self.network_json(&s));
            }
        }
        for name in PSEUDO_NETWORKS {
            let id = self.id_of(name);
            let driver = if name == "host" { "host" } else { "null" };
            // A pseudo network has no labels, and is never listed by `dangling`.
            let ok = filters.any("name", |v| name.contains(v))
                && filters.fuzzy_match("id", &id)
                && filters.match_kv_list("label", &std::collections::BTreeMap::new())
                && filters.exact_match("driver", driver)
                && filters.exact_match("type", "builtin")
                && filters.exact_match("scope", "local")
                && dangling.is_none();
            if ok {
                out.push(self.pseudo_network_json(name));
            }
        }
        Ok(out)
    }

    pub fn inspect_network(&self, name: &str) -> Result<NetworkResource, EngineError> {
        if let Some(p) = self.pseudo_network(name) {
            return Ok(self.pseudo_network_json(p));
        }
        let s = self.find_network(name)?;
        Ok(self.network_json(&s))
    }

    pub fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        if let Some(p) = self.pseudo_network(name) {
            return Err(forbidden(format!(
                "{p} is a pre-defined network and cannot be removed"
            )));
        }
        let s = self.find_network(name)?;
        let name = s.config.name.clone();
        if name == DEFAULT_NETWORK {
            return Err(forbidden(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        if !s.endpoints.is_empty() {
            return Err(EngineError::conflict(format!(
                "error while removing network: network {name} id {} has active endpoints",
                self.id_of(&name)
            )));
        }
        self.net_required()?
            .remove_network(&name)
            .map_err(net_err)?;
        let _ = std::fs::remove_file(self.meta_path(&name));
        self.network_event("destroy", &name);
        Ok(())
    }

    pub fn prune_networks(&self, filters: Filters) -> Result<NetworkPruneResponse, EngineError> {
        filters.validate(&["until", "label", "label!"])?;
        let until = filters.timestamp("until", berth_core::timestamp::now_nanos())?;
        let net = self.net_required()?;
        let used: Vec<String> = self
            .records()
            .iter()
            .flat_map(|r| r.net.networks.iter().map(|a| a.name.clone()))
            .collect();
        let mut deleted = Vec::new();
        for s in net.networks().map_err(net_err)? {
            let name = s.config.name.clone();
            let meta = self.meta(&name);
            let created = chrono::DateTime::parse_from_rfc3339(&meta.created)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .unwrap_or(0);
            let wanted = filters.match_labels(&meta.labels) && until.is_none_or(|u| created < u);
            if name == DEFAULT_NETWORK || used.contains(&name) || !s.endpoints.is_empty() || !wanted
            {
                continue;
            }
            if Engine::remove_network(self, &name).is_ok() {
                deleted.push(name);
            }
        }
        Ok(NetworkPruneResponse {
            networks_deleted: Some(deleted),
        })
    }

    pub fn connect_network(
        &self,
        name: &str,
        req: NetworkConnectRequest,
    ) -> Result<(), EngineError> {
        let (s, id, lock) = self.connection(name, &req.container)?;
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self.find(&id)?;
        if matches!(rec.net.mode.as_str(), "host" | "none")
            || rec.net.mode.starts_with("container:")
        {
            return Err(EngineError::invalid(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {})",
                rec.net.mode
            )));
        }
        let net_name = s.config.name.clone();
        if rec.net.networks.iter().any(|a| a.name == net_name) {
            return Err(forbidden(format!(
                "endpoint with name {} already exists in network {net_name}",
                rec.name
            )));
        }
        let ep = req.endpoint_config.unwrap_or_default();
        let ip = match ep
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv4_address.as_deref())
            .unwrap_or("")
        {
            "" => None,
            v => Some(
                v.parse::<Ipv4Addr>()
                    .map_err(|_| EngineError::invalid(format!("invalid IPv4 address: {v}")))?,
            ),
        };
        requested_ip6(ep.ipam_config.as_ref())?;
        crate::container::links::endpoint_links(ep.links.as_ref())?;
        let a = NetAttach {
            name: net_name,
            aliases: ep.aliases.unwrap_or_default(),
            ip,
            ipam_config: ep.ipam_config,
            links: ep.links,
            driver_opts: ep.driver_opts,
            mac: ep.mac_address.filter(|m| !m.is_empty()),
        };
        if self.refresh(&rec.id).running() {
            self.attach_running(&rec, &a)?;
        }
        let net_name = a.name.clone();
        self.containers.update(&rec.id, |r| {
            r.net.networks.push(a);
            Ok(())
        })?;
        self.network_event_for("connect", &net_name, Some(&rec.id));
        Ok(())
    }

    /// `Force` changes nothing: berth's endpoints are always local, and are let go at once.
    pub fn disconnect_network(
        &self,
        name: &str,
        req: NetworkDisconnectRequest,
    ) -> Result<(), EngineError> {
        let (s, id, lock) = self.connection(name, &req.container)?;
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let rec = self.find(&id)?;
        let net_name = s.config.name.clone();
        if !rec.net.networks.iter().any(|a| a.name == net_name) {
            return Err(forbidden(format!(
                "container {} is not connected to network {net_name}",
                rec.id
            )));
        }
        let gone = self
            .endpoints(&rec.id)
            .into_iter()
            .find(|e| e.network == net_name);
        self.net_required()?
            .detach(&net_name, &rec.id)
            .map_err(net_err)?;
        if let Some(ep) = gone {
            let hosts = self.container_dir(&rec.id).join("hosts");
            if let Ok(text) = std::fs::read_to_string(&hosts) {
                let prefix = format!("{}\t", ep.ip);
                let prefix6 = ep.ip6.map(|ip| format!("{ip}\t"));
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .filter(|l| prefix6.as_ref().is_none_or(|p| !l.starts_with(p)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                // In place: the bind mount follows the inode, not the name.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&hosts)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, kept.as_bytes()));
            }
        }
        let _ = self.net_required()?.release_ip(&net_name, &rec.id);
        self.containers.update(&rec.id, |r| {
            r.net.networks.retain(|a| a.name != net_name);
            Ok(())
        })?;
        self.network_event_for("disconnect", &net_name, Some(&rec.id));
        Ok(())
    }
}

impl berth_api::networks::NetworkBackend for Engine {
    fn create_network(&self, req: NetworkCreateRequest) -> BackendResult<NetworkCreateResponse> {
        Ok(Engine::create_network(self, req)?)
    }
    fn list_networks(&self, filters: Filters) -> BackendResult<Vec<NetworkResource>> {
        Ok(Engine::list_networks(self, filters)?)
    }
    fn inspect_network(&self, name: &str) -> BackendResult<NetworkResource> {
        Ok(Engine::inspect_network(self, name)?)
    }
    fn remove_network(&self, name: &str) -> BackendResult<()> {
        Ok(Engine::remove_network(self, name)?)
    }
    fn prune_networks(&self, filters: Filters) -> BackendResult<NetworkPruneResponse> {
        Ok(Engine::prune_networks(self, filters)?)
    }
    fn connect_network(&self, name: &str, req: NetworkConnectRequest) -> BackendResult<()> {
        Ok(Engine::connect_network(self, name, req)?)
    }
    fn disconnect_network(&self, name: &str, req: NetworkDisconnectRequest) -> BackendResult<()> {
        Ok(Engine::disconnect_network(self, name, req)?)
    }
}

/// A network joined at create, from its `EndpointsConfig` entry: the requested addresses
/// checked, aliases, links and driver options kept.
fn endpoint_attach(name: &str, ep: Option<&EndpointSettings>) -> Result<NetAttach, EngineError> {
    let bad = |m: String| EngineError::invalid(m);
    let ip = match ep
        .and_then(|e| e.ipam_config.as_ref())
        .and_then(|i| i.ipv4_address.as_deref())
        .unwrap_or("")
    {
        "" => None,
        s => Some(
            s.parse::<Ipv4Addr>()
                .map_err(|_| bad(format!("invalid IPv4 address: {s}")))?,
        ),
    };
    let ip6 = requested_ip6(ep.and_then(|e| e.ipam_config.as_ref()))?;
    if (ip.is_some() || ip6.is_some()) && name == DEFAULT_NETWORK {
        return Err(bad(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    crate::container::links::endpoint_links(ep.and_then(|e| e.links.as_ref()))?;
    Ok(NetAttach {
        name: name.to_owned(),
        aliases: ep.and_then(|e| e.aliases.clone()).unwrap_or_default(),
        ip,
        ipam_config: ep.and_then(|e| e.ipam_config.clone()),
        links: ep.and_then(|e| e.links.clone()),
        driver_opts: ep.and_then(|e| e.driver_opts.clone()),
        mac: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_shows_what_was_asked_for_before_start_and_its_addresses_after() {
        let a = NetAttach {
            name: "app".into(),
            ipam_config: Some(bollard_stubs::models::EndpointIpamConfig {
                ipv4_address: Some("10.9.0.7".into()),
                ..Default::default()
            }),
            driver_opts: Some(HashMap::from([("k".to_owned(), "v".to_owned())])),
            ..Default::default()
        };
        let v = endpoint_view(&a, Some("n".into()), None, Some("02:42:ac:11:00:02".into()));
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"IPAMConfig": {"IPv4Address": "10.9.0.7"},
                "MacAddress": "02:42:ac:11:00:02", "DriverOpts": {"k": "v"},
                "NetworkID": "n", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0})
        );
        let ep = Endpoint {
            id: "c".into(),
            network: "app".into(),
            ip: Ipv4Addr::new(10, 9, 0, 7),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
            ip6: Some("fd00:9::7".parse().unwrap()),
            prefix6: 64,
            gateway6: Some("fd00:9::1".parse().unwrap()),
            mac: "02:42:0a:09:00:07".into(),
            host_veth: "bv0".into(),
            ifname: "eth0".into(),
            netns: PathBuf::new(),
            names: vec!["web".into(), "abc".into(), "web".into()],
            ports: vec![],
            dns_servers: vec![],
            links: Default::default(),
        };
        let a = NetAttach {
            aliases: vec!["web".into()],
            ..a
        };
        let v = endpoint_view(&a, None, Some(&ep), None);
        assert_eq!(v.aliases, Some(vec!["web".to_owned()]));
        assert_eq!(v.ip_address.as_deref(), Some("10.9.0.7"));
        assert_eq!(v.ip_prefix_len, Some(24));
        assert_eq!(v.gateway.as_deref(), Some("10.9.0.1"));
        assert_eq!(v.global_ipv6_address.as_deref(), Some("fd00:9::7"));
        assert_eq!(v.global_ipv6_prefix_len, Some(64));
        assert_eq!(v.ipv6_gateway.as_deref(), Some("fd00:9::1"));
        assert_eq!(v.mac_address.as_deref(), Some("02:42:0a:09:00:07"));
        // No duplicates in DNSNames.
        assert_eq!(v.dns_names, Some(vec!["web".to_owned(), "abc".to_owned()]));
        assert_eq!(v.network_id.as_deref(), Some(""));
    }

    #[test]
    fn ipam_entries_by_family_with_dockers_words() {
        let entry = |subnet: &str, gw: Option<&str>| IpamConfig {
            subnet: Some(subnet.into()),
            gateway: gw.map(Into::into),
            ..Default::default()
        };
        let (v4, v6) = split_ipam(vec![
            entry("fd00:1::/64", None),
            entry("10.240.0.0/24", None),
        ])
        .unwrap();
        assert_eq!(v4.unwrap().subnet.as_deref(), Some("10.240.0.0/24"));
        assert_eq!(v6.unwrap().subnet.as_deref(), Some("fd00:1::/64"));
        let err =
            split_ipam(vec![entry("fd00:1::/64", None), entry("fd00:2::/64", None)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bridge driver doesn't support multiple subnets"
        );
        let v6 = ipv6_config(&entry("2001:389::/64", Some("2001:389::ffff"))).unwrap();
        assert_eq!(v6.gateway(), "2001:389::ffff".parse::<Ipv6Addr>().unwrap());
        for (subnet, gw, want) in [
            (
                "2001:389::/164",
                None,
                "invalid CIDR address: 2001:389::/164",
            ),
            (
                "fd00:4::/64",
                Some("zz"),
                "invalid gateway address zz in Ipam configuration",
            ),
        ] {
            assert_eq!(
                ipv6_config(&entry(subnet, gw)).unwrap_err().to_string(),
                want
            );
        }
        let ask = |s: &str| EndpointIpamConfig {
            ipv6_address: Some(s.into()),
            ..Default::default()
        };
        assert_eq!(
            requested_ip6(Some(&ask("2001:389::f00d"))).unwrap(),
            Some("2001:389::f00d".parse().unwrap())
        );
        assert_eq!(requested_ip6(Some(&ask(""))).unwrap(), None);
        assert_eq!(
            requested_ip6(Some(&ask("10.1.1.1")))
                .unwrap_err()
                .to_string(),
            "invalid IPv6 address: 10.1.1.1"
        );
    }

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path()).unwrap();
        (dir, engine)
    }

    #[test]
    fn host_and_none_are_sent_as_before_the_typed_models() {
        let (_dir, e) = engine();
        for (name, driver) in [("host", "host"), ("none", "null")] {
            let got = serde_json::to_value(Engine::inspect_network(&e, name).unwrap()).unwrap();
            // What berth sent when it built this object as JSON by hand.
            let want = serde_json::json!({
                "Name": name,
                "Id": e.id_of(name),
                "Created": "0001-01-01T00:00:00Z",
                "Scope": "local",
                "Driver": driver,
                "EnableIPv4": true,
                "EnableIPv6": false,
                "IPAM": {"Driver": "default", "Options": null, "Config": []},
                "Internal": false,
                "Attachable": false,
                "Ingress": false,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": false,
                "Containers": {},
                "Options": {},
                "Labels": {},
            });
            assert_eq!(got, want, "{name}");
        }
        // By ID prefix too.
        let id = e.id_of("host");
        let n = Engine::inspect_network(&e, &id[..5]).unwrap();
        assert_eq!(n.network.name.as_deref(), Some("host"));
    }

    #[test]
    fn host_and_none_take_no_connections_and_stay() {
        let (_dir, e) = engine();
        let req = NetworkConnectRequest {
            container: "c".into(),
            ..Default::default()
        };
        let err = Engine::connect_network(&e, "host", req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container cannot be disconnected from host network or connected to host network"
        );
        let req = NetworkDisconnectRequest {
            container: "c".into(),
            force: Some(true),
        };
        let err = Engine::disconnect_network(&e, "none", req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container cannot be disconnected from none network or connected to none network"
        );
        let err = Engine::remove_network(&e, "none").unwrap_err();
        assert_eq!(
            err.to_string(),
            "none is a pre-defined network and cannot be removed"
        );
    }
}
