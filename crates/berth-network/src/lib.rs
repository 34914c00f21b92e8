//! Container networking for berth: IPAM, Linux bridges and veth pairs (rtnetlink), NAT and
//! published ports (berth's own nftables table), the embedded DNS of user-defined networks,
//! and the `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` a container gets.
//!
//! The API is **synchronous** and blocking: the daemon calls it from `spawn_blocking`, the
//! tests and tools call it directly. Netlink work runs on short-lived threads of its own
//! (see `netlink.rs`), rules go to `nft -j -f -`, state is small JSON files. Nothing here
//! needs the daemon: the kernel keeps bridges, veths and rules, the state directory keeps
//! the rest, and [`Networking::restore`] puts whatever a reboot lost back.
//!
//! IPv4, and dual stack on networks made with an [`Ipv6Config`] (Docker's `EnableIPv6`):
//! the bridge and each endpoint get an IPv6 address too (no DAD, so it is usable at once),
//! containers an IPv6 default route, the embedded DNS answers AAAA, and a table of family
//! `ip6` beside berth's `ip` one masquerades and isolates IPv6 traffic (published ports stay
//! IPv4). Host (`--network host`) and none (`--network none`) modes need nothing from
//! this crate: for host the engine leaves the network namespace out of the spec (and
//! writes the host's `resolv.conf` via [`files::resolv_conf`] with `host_network`); for none
//! it gives the container a new namespace and calls nothing here (the runtime brings `lo`
//! up). `container:NAME` joins that container's namespace path and calls nothing either.

mod dns;
mod error;
pub mod files;
mod netlink;
mod nft;
mod ports;
mod proxy;
mod store;
mod subnet;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use dns::DnsOptions;
pub use error::{NetError, Result};
pub use ports::{HostPort, PortSpec, Protocol, PublishedPort};
pub use store::{Endpoint, Ipv6Config, NetworkConfig, NetworkState};
pub use subnet::{AddressPool, Subnet, Subnet6};

/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The default network's subnet (`berth daemon --bip` changes it): clear of docker0's
/// 172.17.0.0/16, Docker's 172.18–31 and 192.168 pools and podman's 10.88/10.89.
pub const DEFAULT_SUBNET: &str = "10.209.0.0/16";
/// Where user-defined networks without `--subnet` get a /24 from (`berth daemon
/// --default-address-pool` changes it).
pub const DEFAULT_POOL: &str = "base=10.210.0.0/16,size=24";
/// berth's nftables table (family ip).
pub const DEFAULT_TABLE: &str = "berth";

/// Where state lives and which nftables table is berth's.
#[derive(Clone, Debug)]
pub struct Options {
    /// One JSON file per network (e.g. `/var/lib/berth/network`).
    pub state_dir: PathBuf,
    /// berth's nftables table, family `ip`; tests use a name of their own.
    pub nft_table: String,
    /// Who binds published ports on the host when this namespace is not the host's (a
    /// rootless daemon); None: the DNAT rules publish them.
    pub host_ports: Option<Arc<dyn HostPorts>>,
    /// Where networks created without a subnet get one, first pool first.
    pub address_pools: Vec<AddressPool>,
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Options {
            state_dir: state_dir.into(),
            nft_table: DEFAULT_TABLE.to_string(),
            host_ports: None,
            address_pools: vec![DEFAULT_POOL.parse().expect("the default pool parses")],
        }
    }
}

/// Binds a port in the host's network namespace on behalf of a daemon that lives in another
/// (the rootless agent does it): the port (port 0 asks for a free one) and the bound socket.
pub trait HostPorts: Send + Sync + std::fmt::Debug {
    fn bind(&self, ip: Ipv4Addr, port: u16, protocol: Protocol) -> std::io::Result<(u16, OwnedFd)>;
}

/// A container's attachment request (`docker run --network`, `network connect`).
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub network: String,
    /// The engine's key for the endpoint: the container ID (one endpoint per container and
    /// network).
    pub endpoint: String,
    /// The container's network namespace: `/proc/<pid>/ns/net` or a bind-mounted nsfs file.
    pub netns: PathBuf,
    /// The interface inside: `eth0` for the first network, `eth1` …
    pub ifname: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--ip6` (used on dual-stack networks only, ignored elsewhere as Docker does).
    pub ip6: Option<Ipv6Addr>,
    /// `--mac-address` (`aa:bb:cc:dd:ee:ff`); derived from the address when not given.
    pub mac: Option<String>,
    /// Names the embedded DNS resolves to this endpoint (container name, `--alias`es,
    /// service names, the short ID).
    pub names: Vec<String>,
    /// `-p`/`-P`; published on this endpoint's address (ignored on internal networks).
    pub ports: Vec<PortSpec>,
    /// `--dns`: the embedded DNS forwards this container's other queries there.
    pub dns_servers: Vec<IpAddr>,
    /// Legacy links of the endpoint (alias → a container's name): the embedded DNS answers
    /// this container's query for the alias with that container's address on this network.
    pub links: std::collections::BTreeMap<String, String>,
}

impl AttachRequest {
    pub fn new(
        network: impl Into<String>,
        endpoint: impl Into<String>,
        netns: impl Into<PathBuf>,
    ) -> Self {
        AttachRequest {
            network: network.into(),
            endpoint: endpoint.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            ip: None,
            ip6: None,
            mac: None,
            names: Vec::new(),
            ports: Vec::new(),
            dns_servers: Vec::new(),
            links: Default::default(),
        }
    }
}

/// What berth holds for one network right now, to find leaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// Links whose controller is the network's bridge (the host ends of veths).
    pub interfaces: Vec<String>,
    /// Endpoint records in the state file.
    pub endpoints: usize,
    /// IPAM allocations in the state file.
    pub allocations: usize,
    /// Rules in berth's table that name the network (its ports, NAT and filter rules).
    pub rules: usize,
}

/// What [`Networking::cleanup_network`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub interfaces: Vec<String>,
    pub endpoints: usize,
    pub allocations: usize,
}

/// berth's networking on this host. One per daemon; cheap to create (tests make their own,
/// with their own state dir and table).
#[derive(Debug)]
pub struct Networking {
    store: store::Store,
    table: String,
    dns: Mutex<Option<dns::DnsServer>>,
    host_ports: Option<Arc<dyn HostPorts>>,
    address_pools: Vec<AddressPool>,
    /// The userland proxies of published ports, by (network, endpoint), when `host_ports`
    /// binds them.
    proxies: Mutex<HashMap<(String, String), Vec<proxy::Forwarder>>>,
}

/// `bv` + 12 hex digits of a hash of network and endpoint: stable, so a veth left behind
/// by an interrupted attach is found again by name; 14 bytes, under the kernel's 15.
fn host_veth_name(network: &str, endpoint: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes().chain([0]).chain(endpoint.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("bv{:012x}", h & 0xffff_ffff_ffff)
}

/// Docker's classic MAC for an address: 02:42 and the four bytes of the IPv4 address.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || NetError::invalid(format!("invalid MAC address {s:?}"));
    let parts: Vec<u8> = s
        .split([':', '-'])
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let mac: [u8; 6] = parts.try_into().map_err(|_| bad())?;
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn set_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| NetError::io(format!("writing {path}"), e))
}

/// `net.ipv4.ip_forward=1`, which outbound NAT and published ports reached from other
/// hosts need (Docker sets it too). The daemon calls it at start; tests need not.
pub fn enable_ip_forward() -> Result<()> {
    set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

impl Networking {
    pub fn new(opts: Options) -> Result<Self> {
        store::validate_name("nftables table", &opts.nft_table)?;
        Ok(Networking {
            store: store::Store::open(&opts.state_dir)?,
            table: opts.nft_table,
            dns: Mutex::new(None),
            host_ports: opts.host_ports,
            address_pools: opts.address_pools,
            proxies: Mutex::default(),
        })
    }

    pub fn state_dir(&self) -> &Path {
        self.store.dir()
    }

    pub fn nft_table(&self) -> &str {
        &self.table
    }

    /// [`Self::create_network`] for a network a client asks for, which must not touch what
    /// berth does not own: a bridge name that is already an interface of the host (berth
    /// would re-address it) or a subnet that overlaps an address of the host (a route through
    /// a new bridge would shadow it; `127.0.0.0/8` would be masqueraded) is refused.
    pub fn create_user_network(&self, config: NetworkConfig) -> Result<NetworkState> {
        config.validate()?;
        let ours = self.store.all()?;
        if !ours.iter().any(|n| n.config.bridge == config.bridge)
            && netlink::link_exists(&config.bridge)?
        {
            return Err(NetError::invalid(format!(
                "bridge name {} is taken by an interface of the host that berth did not create",
                config.bridge
            )));
        }
        if let Some(host) = host_subnets()?
            .into_iter()
            .filter(|h| !ours.iter().any(|n| n.config.subnet.overlaps(h)))
            .find(|h| h.overlaps(&config.subnet))
        {
            return Err(NetError::PoolOverlap(format!(
                "{} overlaps {host}, an address of this host",
                config.subnet
            )));
        }
        self.create_network(config)
    }

    /// Creates a bridge network: records it, makes the bridge (gateway address, MTU,
    /// `route_localnet`), rebuilds the rules, and starts its DNS when the server runs.
    pub fn create_network(&self, config: NetworkConfig) -> Result<NetworkState> {
        config.validate()?;
        let mut config = config;
        config.gateway = Some(config.gateway());
        {
            let _lock = self.store.lock()?;
            let all = self.store.all()?;
            if all.iter().any(|n| n.config.name == config.name) {
                return Err(NetError::NetworkExists(config.name));
            }
            if let Some(other) = all.iter().find(|n| n.config.bridge == config.bridge) {
                return Err(NetError::invalid(format!(
                    "bridge {} is already used by network {}",
                    config.bridge, other.config.name
                )));
            }
            if let Some(other) = all
                .iter()
                .find(|n| n.config.subnet.overlaps(&config.subnet))
            {
                return Err(NetError::PoolOverlap(format!(
                    "{} overlaps {} of network {}",
                    config.subnet, other.config.subnet, other.config.name
                )));
            }
            if let Some(v6) = &config.ipv6 {
                if let Some((other, o6)) = all.iter().find_map(|n| {
                    n.config
                        .ipv6
                        .as_ref()
                        .filter(|o| o.subnet.overlaps(&v6.subnet))
                        .map(|o| (n, o))
                }) {
                    return Err(NetError::PoolOverlap(format!(
                        "{} overlaps {} of network {}",
                        v6.subnet, o6.subnet, other.config.name
                    )));
                }
            }
            self.store.save(&NetworkState::new(config.clone()))?;
        }
        let made = self.ensure_bridge(&config).and_then(|_| {
            if config.dns {
                self.start_dns_for(&config.name)?;
            }
            self.sync_rules()
        });
        if let Err(e) = made {
            self.stop_dns_for(&config.name);
            let _ = netlink::delete_link(&config.bridge);
            if let Ok(_lock) = self.store.lock() {
                let _ = self.store.remove(&config.name);
            }
            let _ = self.sync_rules();
            return Err(e);
        }
        self.network(&config.name)
    }

    fn ensure_bridge(&self, config: &NetworkConfig) -> Result<()> {
        netlink::ensure_bridge(
            &config.bridge,
            config.gateway(),
            config.subnet.prefix(),
            config.mtu(),
            mac_for(config.gateway()),
        )?;
        set_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", config.bridge),
            "1",
        )?;
        if let Some(v6) = &config.ipv6 {
            // A host booted with IPv6 off by default makes bridges without it.
            set_sysctl(
                &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", config.bridge),
                "0",
            )?;
            netlink::add_ipv6_address(&config.bridge, v6.gateway(), v6.subnet.prefix())?;
            // Egress of containers' IPv6 traffic, as Docker enables it for such networks.
            if let Err(e) = set_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
                tracing::warn!("IPv6 forwarding: {e}");
            }
        }
        Ok(())
    }

    /// Removes a network that has no endpoints: its DNS listener, bridge, state and rules.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        {
            let _lock = self.store.lock()?;
            let state = self.store.get(name)?;
            if !state.endpoints.is_empty() {
                return Err(NetError::NetworkInUse(name.to_string()));
            }
            // The bridge before the record: a crash between the two leaves a record whose
            // bridge `restore` makes again (the network is still there, and can be removed);
            // the other order would leave a bridge no record names, on the host for good.
            netlink::delete_link(&state.config.bridge)?;
            self.store.remove(name)?;
        }
        self.stop_dns_for(name);
        self.sync_rules()
    }

    pub fn network(&self, name: &str) -> Result<NetworkState> {
        self.store.get(name)
    }

    pub fn networks(&self) -> Result<Vec<NetworkState>> {
        self.store.all()
    }

    /// A free subnet for a network created without `--subnet`, from the daemon's address
    /// pools (first pool first): one that overlaps no berth network and no address or route
    /// on the host's interfaces.
    pub fn free_subnet(&self) -> Result<Subnet> {
        let taken: Vec<Subnet> = self
            .store
            .all()?
            .into_iter()
            .map(|n| n.config.subnet)
            .chain(host_subnets()?)
            .collect();
        self.address_pools
            .iter()
            .flat_map(|p| p.subnets())
            .find(|s| !taken.iter().any(|t| t.overlaps(s)))
            .ok_or_else(|| {
                let pools: Vec<String> = self.address_pools.iter().map(|p| p.to_string()).collect();
                NetError::PoolExhausted(pools.join(" "))
            })
    }

    /// IPAM alone: reserves an address on `network` for `owner` (e.g. a container created
    /// with `--ip` that is not running yet). [`Networking::attach`] with the same owner as
    /// endpoint takes this address.
    pub fn reserve_ip(&self, network: &str, owner: &str, ip: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let _lock = self.store.lock()?;
        let mut state = self.store.get(network)?;
        let ip = state.allocate(owner, ip)?;
        self.store.save(&state)?;
        Ok(ip)
    }

    /// Gives back what `owner` holds on `network`.
    pub fn release_ip(&self, network: &str, owner: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut state = self.store.get(network)?;
        if state.release(owner) > 0 {
            self.store.save(&state)?;
        }
        Ok(())
    }

    /// Connects a container: an address, a veth pair with `ifname` inside the namespace
    /// (address, MAC, MTU, default route unless internal, `lo` up), and its published ports.
    /// On failure nothing is left behind.
    pub fn attach(&self, req: &AttachRequest) -> Result<Endpoint> {
        store::validate_ifname(&req.ifname)?;
        store::validate_name("endpoint", &req.endpoint)?;
        let mac = req.mac.as_deref().map(parse_mac).transpose()?;
        let sockets_held;
        let (endpoint, config) = {
            let _lock = self.store.lock()?;
            let mut state = self.store.get(&req.network)?;
            if state.endpoints.contains_key(&req.endpoint) {
                return Err(NetError::EndpointExists {
                    network: req.network.clone(),
                    endpoint: req.endpoint.clone(),
                });
            }
            let chosen = if req.ports.is_empty() || state.config.internal {
                Vec::new()
            } else {
                let taken: Vec<PublishedPort> = self
                    .store
                    .all()?
                    .iter()
                    .flat_map(|n| n.endpoints.values().flat_map(|e| e.ports.iter().copied()))
                    .collect();
                match &self.host_ports {
                    Some(host) => ports::choose(&req.ports, &taken, &|ip, port, proto| {
                        host.bind(ip, port, proto).map(|(p, fd)| (p, Some(fd)))
                    })?,
                    None => ports::choose(&req.ports, &taken, &ports::check_bind)?,
                }
            };
            let (ports, sockets): (Vec<PublishedPort>, Vec<Option<OwnedFd>>) =
                chosen.into_iter().unzip();
            sockets_held = sockets;
            let ip = state.allocate(&req.endpoint, req.ip)?;
            // Nothing is saved when this fails: the IPv4 address goes back with it.
            let ip6 = state.allocate6(&req.endpoint, req.ip6)?;
            let config = state.config.clone();
            let endpoint = Endpoint {
                id: req.endpoint.clone(),
                network: req.network.clone(),
                ip,
                prefix: config.subnet.prefix(),
                gateway: (!config.internal).then(|| config.gateway()),
                ip6,
                prefix6: config.ipv6.as_ref().map_or(0, |v| v.subnet.prefix()),
                gateway6: config
                    .ipv6
                    .as_ref()
                    .filter(|_| ip6.is_some() && !config.internal)
                    .map(|v| v.gateway()),
                mac: format_mac(mac.unwrap_or_else(|| mac_for(ip))),
                host_veth: host_veth_name(&req.network, &req.endpoint),
                ifname: req.ifname.clone(),
                netns: req.netns.clone(),
                names: req.names.clone(),
                ports,
                dns_servers: req.dns_servers.clone(),
                links: req.links.clone(),
            };
            state
                .endpoints
                .insert(req.endpoint.clone(), endpoint.clone());
            self.store.save(&state)?;
            (endpoint, config)
        };
        let spec = netlink::VethSpec {
            host_name: &endpoint.host_veth,
            bridge: &config.bridge,
            peer_name: &endpoint.ifname,
            netns: &req.netns,
            mtu: config.mtu(),
            mac: mac.unwrap_or_else(|| mac_for(endpoint.ip)),
            ip: endpoint.ip,
            prefix: endpoint.prefix,
            gateway: endpoint.gateway,
            ip6: endpoint.ip6.map(|ip| (ip, endpoint.prefix6)),
            gateway6: endpoint.gateway6,
        };
        let wired = netlink::create_endpoint(&spec)
            .and_then(|_| {
                if endpoint.ports.is_empty() {
                    Ok(())
                } else {
                    self.sync_rules()
                }
            })
            .and_then(|_| self.start_proxies(&endpoint, sockets_held));
        if let Err(e) = wired {
            let _ = self.detach(&req.network, &req.endpoint);
            return Err(e);
        }
        Ok(endpoint)
    }

    /// Disconnects a container from a network: deletes its veth (the kernel already did
    /// when the namespace died with the container), releases its address, drops its ports.
    /// Idempotent: an endpoint that is not there is not an error.
    pub fn detach(&self, network: &str, endpoint: &str) -> Result<()> {
        self.detach_with(network, endpoint, true)
    }

    /// Lets every endpoint of the container go when its network namespace is about to be
    /// destroyed (it stopped, or is removed): addresses and ports are released at once, and
    /// each host veth is only taken off its bridge and down. Deleting the pair is left to
    /// the kernel, which does it when the namespace dies (the caller destroys it next), in
    /// the background: a synchronous delete waits ~25 ms in the kernel, most of what
    /// networking would add to a short container's life.
    pub fn release_all(&self, endpoint: &str) -> Result<()> {
        for ep in self.endpoints_of(endpoint)? {
            self.detach_with(&ep.network, endpoint, false)?;
        }
        Ok(())
    }

    /// Relays each published port whose host socket we hold to the endpoint's address.
    fn start_proxies(&self, endpoint: &Endpoint, sockets: Vec<Option<OwnedFd>>) -> Result<()> {
        let mut forwarders = Vec::new();
        for (port, socket) in endpoint.ports.iter().zip(sockets) {
            let Some(socket) = socket else { continue };
            let target = std::net::SocketAddrV4::new(endpoint.ip, port.container_port);
            let f = proxy::Forwarder::start(socket, port.protocol, target)
                .map_err(|e| NetError::io(format!("starting the proxy for {port}"), e))?;
            forwarders.push(f);
        }
        if !forwarders.is_empty() {
            self.proxies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((endpoint.network.clone(), endpoint.id.clone()), forwarders);
        }
        Ok(())
    }

    fn detach_with(&self, network: &str, endpoint: &str, delete: bool) -> Result<()> {
        // Outside the lock: dropping a forwarder joins its thread.
        let proxies = self
            .proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(network.to_owned(), endpoint.to_owned()));
        drop(proxies);
        let veth = match self.store.get(network)?.endpoints.get(endpoint) {
            Some(ep) => ep.host_veth.clone(),
            None => host_veth_name(network, endpoint),
        };
        if delete {
            netlink::delete_link(&veth)?;
        } else {
            netlink::unplug_link(&veth)?;
        }
        let had_ports = {
            let _lock = self.store.lock()?;
            let mut state = self.store.get(network)?;
            let removed = state.endpoints.remove(endpoint);
            let released = state.release(endpoint);
            if removed.is_some() || released > 0 {
                self.store.save(&state)?;
            }
            removed.is_some_and(|e| !e.ports.is_empty())
        };
        if had_ports {
            self.sync_rules()?;
        }
        Ok(())
    }

    /// Forgets `owner`'s endpoint and addresses on `network` in the state alone (no link, no
    /// rule is touched): for `system check --repair`, offline, of a container that is gone
    /// (its veth went with its namespace; the next start rebuilds the rules from the state).
    pub fn forget_owner(&self, network: &str, owner: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut state = self.store.get(network)?;
        let removed = state.endpoints.remove(owner).is_some();
        if state.release(owner) > 0 || removed {
            self.store.save(&state)?;
        }
        Ok(())
    }

    /// Every endpoint of the container (`endpoint`) on every network.
    pub fn endpoints_of(&self, endpoint: &str) -> Result<Vec<Endpoint>> {
        Ok(self
            .store
            .all()?
            .into_iter()
            .filter_map(|mut n| n.endpoints.remove(endpoint))
            .collect())
    }

    /// Disconnects the container from every network it is on (container stop or removal).
    pub fn detach_all(&self, endpoint: &str) -> Result<()> {
        for ep in self.endpoints_of(endpoint)? {
            self.detach(&ep.network, endpoint)?;
        }
        Ok(())
    }

    /// Rebuilds berth's nftables table from the state files in one atomic transaction.
    /// Running it any number of times gives the same rules.
    pub fn sync_rules(&self) -> Result<()> {
        // Under the store lock, so the last writer of nft applies the latest state.
        let _lock = self.store.lock()?;
        let networks = self.store.all()?;
        nft::apply(&self.table, &networks)
    }

    /// Daemon start: re-creates bridges a reboot removed (with their `route_localnet`),
    /// restarts DNS listeners when the server runs, and rebuilds the rules. Endpoints of
    /// containers that are no longer running are the engine's to [`Networking::detach`].
    pub fn restore(&self) -> Result<()> {
        for net in self.store.all()? {
            self.ensure_bridge(&net.config)?;
            if net.config.dns && self.dns_running() {
                self.start_dns_for(&net.config.name)?;
            }
        }
        self.sync_rules()
    }

    /// Starts the embedded DNS server in this process and listens on every DNS-enabled
    /// network (later ones are added by [`Networking::create_network`]).
    pub fn enable_dns(&self, opts: DnsOptions) -> Result<()> {
        {
            let mut dns = self.dns.lock().unwrap_or_else(|e| e.into_inner());
            if dns.is_none() {
                *dns = Some(dns::DnsServer::start(self.store.clone(), opts)?);
            }
        }
        for net in self.store.all()? {
            if net.config.dns {
                // The listener binds the gateway's address, which only the bridge has: after
                // a reboot, or a crash between a network's record and its bridge, it is
                // made here first.
                self.ensure_bridge(&net.config)?;
                self.start_dns_for(&net.config.name)?;
            }
        }
        self.sync_rules()
    }

    fn dns_running(&self) -> bool {
        self.dns.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Listens for one network (same port as before when free) and records the port; the
    /// caller syncs the rules.
    fn start_dns_for(&self, name: &str) -> Result<()> {
        let guard = self.dns.lock().unwrap_or_else(|e| e.into_inner());
        let Some(server) = guard.as_ref() else {
            return Ok(());
        };
        let state = self.store.get(name)?;
        let port = server.listen(&state, state.dns_port)?;
        drop(guard);
        let _lock = self.store.lock()?;
        let mut state = self.store.get(name)?;
        if state.dns_port != Some(port) {
            state.dns_port = Some(port);
            self.store.save(&state)?;
        }
        Ok(())
    }

    fn stop_dns_for(&self, name: &str) {
        if let Some(server) = self.dns.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            server.stop(name);
        }
    }

    /// Interfaces, endpoints, allocations and rules berth holds for `network`.
    pub fn inventory(&self, network: &str) -> Result<Inventory> {
        let state = self.store.get(network)?;
        let (plain, ports, dns) = (
            network.to_string(),
            format!("{network} "),
            format!("dns {network}"),
        );
        let marker = |r: &serde_json::Value| {
            r["comment"]
                .as_str()
                .is_some_and(|c| c == plain || c == dns || c.starts_with(&ports))
        };
        Ok(Inventory {
            interfaces: netlink::bridge_ports(&state.config.bridge)?,
            endpoints: state.endpoints.len(),
            allocations: state.allocations.len(),
            rules: nft::list_rules(&self.table)?
                .iter()
                .filter(|r| marker(r))
                .count(),
        })
    }

    /// Every rule in berth's table (0 when there is none).
    pub fn rule_count(&self) -> Result<usize> {
        Ok(nft::list_rules(&self.table)?.len())
    }

    /// Empties a network after a crash or for `network rm -f`: deletes every link on its
    /// bridge (veths of endpoints, and orphans with no record), forgets its endpoints and
    /// allocations, and rebuilds the rules. The network itself stays.
    pub fn cleanup_network(&self, network: &str) -> Result<Cleanup> {
        let state = self.store.get(network)?;
        let mut out = Cleanup::default();
        for link in netlink::bridge_ports(&state.config.bridge)? {
            if netlink::delete_link(&link)? {
                out.interfaces.push(link);
            }
        }
        for ep in state.endpoints.values() {
            if netlink::delete_link(&ep.host_veth)? {
                out.interfaces.push(ep.host_veth.clone());
            }
        }
        {
            let _lock = self.store.lock()?;
            let mut state = self.store.get(network)?;
            out.endpoints = state.endpoints.len();
            out.allocations = state.allocations.len();
            state.endpoints.clear();
            state.allocations.clear();
            self.store.save(&state)?;
        }
        self.sync_rules()?;
        Ok(out)
    }

    /// Deletes berth's nftables table (uninstall, tests). Bridges and state stay.
    pub fn delete_rules(&self) -> Result<()> {
        nft::delete_table(&self.table)
    }

    /// Whether the network's bridge exists on the host.
    pub fn bridge_exists(&self, network: &str) -> Result<bool> {
        netlink::link_exists(&self.store.get(network)?.config.bridge)
    }
}

/// Subnets of the host's IPv4 addresses (those a new network must not overlap).
fn host_subnets() -> Result<Vec<Subnet>> {
    netlink::host_ipv4_subnets()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        let a = host_veth_name("net", "c1");
        assert_eq!(a.len(), 14);
        assert_eq!(a, host_veth_name("net", "c1"));
        assert_ne!(a, host_veth_name("net", "c2"));
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(10, 209, 0, 2))),
            "02:42:0a:d1:00:02"
        );
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:00:00:00:00").is_err(), "multicast");
        assert!(parse_mac("02:42:ac:11:00").is_err());
    }
}
