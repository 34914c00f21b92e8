//! Per-network state on disk: the network's settings, its endpoints and its IPAM
//! allocations, one small JSON file per network under the caller's state directory.
//!
//! ```text
//! <state_dir>/<network>.json   NetworkState (replaced atomically: temp, fsync, rename, fsync dir)
//! <state_dir>/.lock            flock held across every read-modify-write
//! ```
//!
//! One lock for the whole directory keeps it simple: every change is a load, a small edit
//! and an atomic rewrite, so the lock is held for well under a millisecond, never across
//! netlink or nft work.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ports::PublishedPort;
use crate::subnet::{Subnet, Subnet6};

/// What a bridge network is: the caller's choices, with the gateway filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The key the engine uses for the network (its name or ID); also the state file's name.
    pub name: String,
    /// The Linux bridge (at most 15 bytes), e.g. `berth0` for the default network.
    pub bridge: String,
    pub subnet: Subnet,
    /// The bridge's own address and the containers' default route; the first host address
    /// of the subnet when not given.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// MTU of the bridge and every veth (1500 when not given).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `--internal`: no default route in containers, no masquerade, no forwarding to or
    /// from other interfaces, no forwarding of DNS queries for other names.
    #[serde(default)]
    pub internal: bool,
    /// Serve the embedded DNS on this network (user-defined networks; Docker's default
    /// `bridge` network has none).
    #[serde(default)]
    pub dns: bool,
    /// `--ip-range`: addresses are handed out from this part of the subnet only (Docker's
    /// sub-pool: its first address too, unless it is the subnet's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet>,
    /// `EnableIPv6` with an IPv6 subnet: the network is dual stack (the bridge and every
    /// endpoint get an IPv6 address beside the IPv4 one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
}

/// The IPv6 half of a dual-stack network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Config {
    pub subnet: Subnet6,
    /// The bridge's IPv6 address and the containers' IPv6 default route; the subnet's first
    /// host address when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv6Addr>,
    /// Addresses are handed out from this part of the subnet only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet6>,
}

impl Ipv6Config {
    pub fn new(subnet: Subnet6) -> Self {
        Ipv6Config {
            subnet,
            gateway: None,
            ip_range: None,
        }
    }

    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway.unwrap_or_else(|| self.subnet.first_host())
    }

    /// Docker's words for a gateway it cannot take.
    fn validate(&self) -> Result<()> {
        if let Some(r) = self.ip_range {
            if !(self.subnet.contains(r.network()) && self.subnet.contains(r.last())) {
                return Err(NetError::invalid(format!(
                    "ip range {r} is not within subnet {}",
                    self.subnet
                )));
            }
        }
        let gw = self.gateway();
        if !self.subnet.contains(gw) {
            return Err(NetError::invalid(format!(
                "failed to allocate gateway ({gw}): Requested address is out of range"
            )));
        }
        if !self.subnet.is_host(gw) {
            return Err(NetError::AddressInUse(format!(
                "failed to allocate gateway ({gw})"
            )));
        }
        Ok(())
    }
}

impl NetworkConfig {
    /// A network with Docker's defaults for everything but its name, bridge and subnet.
    pub fn new(name: impl Into<String>, bridge: impl Into<String>, subnet: Subnet) -> Self {
        NetworkConfig {
            name: name.into(),
            bridge: bridge.into(),
            subnet,
            gateway: None,
            mtu: None,
            internal: false,
            dns: false,
            ip_range: None,
            ipv6: None,
        }
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| self.subnet.first_host())
    }

    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(1500)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_network_name(&self.name)?;
        validate_ifname(&self.bridge)?;
        if let Some(r) = self.ip_range {
            if !(self.subnet.contains(r.network()) && self.subnet.contains(r.broadcast())) {
                return Err(NetError::invalid(format!(
                    "ip range {r} is not within subnet {}",
                    self.subnet
                )));
            }
        }
        let gw = self.gateway();
        if !self.subnet.is_host(gw) {
            return Err(NetError::AddressOutOfRange {
                ip: gw.to_string(),
                subnet: self.subnet.to_string(),
            });
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(NetError::invalid(format!("invalid MTU {mtu}")));
            }
        }
        if let Some(v6) = &self.ipv6 {
            v6.validate()?;
        }
        Ok(())
    }
}

/// One container's attachment to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The engine's key for the attachment (the container ID).
    pub id: String,
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The default route's next hop, unless the network is internal.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address on a dual-stack network (its prefix is the network's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix6: u8,
    /// The IPv6 default route's next hop (dual stack, not internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// `02:42:…`, lower-case, colon-separated.
    pub mac: String,
    /// The host end of the veth pair, attached to the bridge (`bv` + 12 hex digits).
    pub host_veth: String,
    /// The interface inside the container (`eth0`, `eth1`, …).
    pub ifname: String,
    /// The container's network namespace as it was given (for information).
    pub netns: PathBuf,
    /// Names the embedded DNS answers with this endpoint's address: container name,
    /// network aliases, service names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Ports published to the host through this endpoint (host ports already chosen).
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// `--dns` servers of the container: the embedded DNS forwards its other queries there
    /// instead of the host's resolvers.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    /// Legacy links (alias → container name) the embedded DNS answers for this endpoint's
    /// own queries only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

/// A network's file: its settings, endpoints and allocations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub config: NetworkConfig,
    /// Endpoints by ID.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// IPAM: every address handed out, with its owner (an endpoint ID, or whatever owner the
    /// engine reserved it for). The gateway is never in here.
    #[serde(default)]
    pub allocations: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out: the next search starts after it, so a released address
    /// is not given again at once (stale ARP entries elsewhere).
    #[serde(default)]
    pub last_allocated: Option<Ipv4Addr>,
    /// The port the embedded DNS listens on at the gateway address (queries to the
    /// gateway's port 53 from the bridge are redirected to it); set while a server runs.
    #[serde(default)]
    pub dns_port: Option<u16>,
    /// IPAM of a dual-stack network's IPv6 subnet, as `allocations` (the gateway is never in
    /// here either).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocations6: BTreeMap<Ipv6Addr, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_allocated6: Option<Ipv6Addr>,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl NetworkState {
    pub fn new(config: NetworkConfig) -> Self {
        NetworkState {
            config,
            endpoints: BTreeMap::new(),
            allocations: BTreeMap::new(),
            last_allocated: None,
            dns_port: None,
            allocations6: BTreeMap::new(),
            last_allocated6: None,
        }
    }

    /// Hands out an address to `owner`: `requested` if given (it must be a free host address
    /// of the subnet), else the next free one after the last handed out. An owner that holds
    /// an address already gets it again (a reservation made before the endpoint).
    pub fn allocate(&mut self, owner: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        if let Some((ip, _)) = self.allocations.iter().find(|(_, o)| o.as_str() == owner) {
            let ip = *ip;
            if requested.is_none_or(|r| r == ip) {
                return Ok(ip);
            }
            return Err(NetError::AddressInUse(format!(
                "{owner} already holds {ip} on network {}",
                self.config.name
            )));
        }
        let subnet = self.config.subnet;
        let gateway = self.config.gateway();
        if let Some(ip) = requested {
            if !subnet.is_host(ip) {
                return Err(NetError::AddressOutOfRange {
                    ip: ip.to_string(),
                    subnet: subnet.to_string(),
                });
            }
            if ip == gateway || self.allocations.contains_key(&ip) {
                return Err(NetError::AddressInUse(ip.to_string()));
            }
            self.allocations.insert(ip, owner.to_string());
            return Ok(ip);
        }
        let mut first = u32::from(subnet.first_host());
        let mut last = u32::from(subnet.broadcast()) - 1;
        if let Some(r) = self.config.ip_range {
            first = first.max(u32::from(r.network()));
            last = last.min(u32::from(r.broadcast()));
        }
        let start = match self.last_allocated {
            Some(prev) if (first..last).contains(&u32::from(prev)) => u32::from(prev) + 1,
            _ => first,
        };
        let candidates = (start..=last).chain(first..start).map(Ipv4Addr::from);
        for ip in candidates {
            if ip != gateway && !self.allocations.contains_key(&ip) {
                self.allocations.insert(ip, owner.to_string());
                self.last_allocated = Some(ip);
                return Ok(ip);
            }
        }
        Err(NetError::PoolExhausted(self.config.name.clone()))
    }

    /// Hands out an IPv6 address to `owner` on a dual-stack network, as [`Self::allocate`]
    /// does IPv4 ones (None when the network has no IPv6). Docker's words when the requested
    /// address is outside the subnet or taken.
    pub fn allocate6(
        &mut self,
        owner: &str,
        requested: Option<Ipv6Addr>,
    ) -> Result<Option<Ipv6Addr>> {
        let Some(v6) = self.config.ipv6.clone() else {
            return Ok(None);
        };
        if let Some((ip, _)) = self.allocations6.iter().find(|(_, o)| o.as_str() == owner) {
            let ip = *ip;
            if requested.is_none_or(|r| r == ip) {
                return Ok(Some(ip));
            }
            return Err(NetError::AddressInUse(format!(
                "{owner} already holds {ip} on network {}",
                self.config.name
            )));
        }
        let gateway = v6.gateway();
        if let Some(ip) = requested {
            if !v6.subnet.contains(ip) {
                return Err(NetError::AddressOutOfRange {
                    ip: ip.to_string(),
                    subnet: v6.subnet.to_string(),
                });
            }
            if !v6.subnet.is_host(ip) || ip == gateway || self.allocations6.contains_key(&ip) {
                return Err(NetError::AddressInUse(ip.to_string()));
            }
            self.allocations6.insert(ip, owner.to_string());
            return Ok(Some(ip));
        }
        let range = v6.ip_range.unwrap_or(v6.subnet);
        let first = u128::from(range.network()).max(u128::from(v6.subnet.first_host()));
        let last = u128::from(range.last());
        let start = match self.last_allocated6 {
            Some(prev) if (first..last).contains(&u128::from(prev)) => u128::from(prev) + 1,
            _ => first,
        };
        // A /64 has 2^64 addresses: look at the next few thousand after the last one handed
        // out, then from the start, never at all of them.
        const SCAN: u128 = 1 << 16;
        let ahead = start..=last.min(start.saturating_add(SCAN));
        let again = first..start.min(first.saturating_add(SCAN));
        for ip in ahead.chain(again).map(Ipv6Addr::from) {
            if ip != gateway && !self.allocations6.contains_key(&ip) {
                self.allocations6.insert(ip, owner.to_string());
                self.last_allocated6 = Some(ip);
                return Ok(Some(ip));
            }
        }
        Err(NetError::PoolExhausted(self.config.name.clone()))
    }

    /// Gives back every address `owner` holds; returns how many.
    pub fn release(&mut self, owner: &str) -> usize {
        let before = self.allocations.len() + self.allocations6.len();
        self.allocations.retain(|_, o| o != owner);
        self.allocations6.retain(|_, o| o != owner);
        before - self.allocations.len() - self.allocations6.len()
    }
}

/// The state directory: network files and the lock that orders their changes.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// Held while a read-modify-write of network files runs.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _lock: Flock<File>,
}

impl Store {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
            .map_err(|e| NetError::io(format!("creating {}", dir.display()), e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NetError::io(format!("opening {}", path.display()), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| NetError::io(format!("locking {}", path.display()), e.into()))?;
        Ok(StoreLock { _lock: lock })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub(crate) fn load(&self, name: &str) -> Result<Option<NetworkState>> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| NetError::State {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetError::io(format!("reading {}", path.display()), e)),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Result<NetworkState> {
        self.load(name)?
            .ok_or_else(|| NetError::NetworkNotFound(name.to_string()))
    }

    /// Every network, sorted by name. Files that do not parse are skipped with a warning
    /// (one bad file must not take every network's rules down).
    pub(crate) fn all(&self) -> Result<Vec<NetworkState>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| NetError::io(format!("reading {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| NetError::io("reading state dir", e))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            match self.load(name) {
                Ok(Some(state)) => out.push(state),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping network state: {e}"),
            }
        }
        out.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        Ok(out)
    }

    pub(crate) fn save(&self, state: &NetworkState) -> Result<()> {
        let path = self.path(&state.config.name);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| NetError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        berth_core::fs::write_atomic(&path, &bytes)
            .map_err(|e| NetError::io(format!("writing {}", path.display()), e))
    }

    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io(format!("removing {}", path.display()), e)),
        }
        berth_core::fs::sync_dir(&self.dir).map_err(|e| NetError::io("syncing state dir", e))
    }
}

/// Names become file names and nft comments: keep them to a safe alphabet.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetError::invalid(format!("invalid {what} name {name:?}")))
    }
}

/// A network's name, as Docker takes it (libnetwork's `IsValidName`: anything but blank, so
/// `test 01` too), within what a state file's name can be: no `/`, no control characters, no
/// leading `.` (hidden files are not networks), at most 128 bytes.
pub(crate) fn validate_network_name(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(NetError::invalid(format!("invalid network name {name:?}")))
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, `:` or whitespace.
pub(crate) fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(NetError::invalid(format!(
            "invalid interface name {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(subnet: &str) -> NetworkState {
        NetworkState::new(NetworkConfig::new("n", "bt0", subnet.parse().unwrap()))
    }

    #[test]
    fn allocates_in_order_skipping_gateway_and_not_reusing_at_once() {
        let mut s = state("10.213.0.0/29");
        let a = s.allocate("a", None).unwrap();
        let b = s.allocate("b", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 213, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 213, 0, 3));
        assert_eq!(
            s.allocate("a", None).unwrap(),
            a,
            "same owner, same address"
        );
        assert_eq!(s.release("a"), 1);
        let c = s.allocate("c", None).unwrap();
        assert_eq!(
            c,
            Ipv4Addr::new(10, 213, 0, 4),
            "released address not reused at once"
        );
        for o in ["d", "e", "f"] {
            s.allocate(o, None).unwrap();
        }
        assert!(matches!(
            s.allocate("g", None),
            Err(NetError::PoolExhausted(_))
        ));
        s.release("b");
        assert_eq!(
            s.allocate("g", None).unwrap(),
            b,
            "wraps around to a free one"
        );
    }

    #[test]
    fn requested_addresses() {
        let mut s = state("10.213.0.0/24");
        let want = Ipv4Addr::new(10, 213, 0, 9);
        assert_eq!(s.allocate("a", Some(want)).unwrap(), want);
        assert!(matches!(
            s.allocate("b", Some(want)),
            Err(NetError::AddressInUse(_))
        ));
        assert!(matches!(
            s.allocate("b", Some(Ipv4Addr::new(10, 213, 0, 1))),
            Err(NetError::AddressInUse(_))
        ));
        assert!(matches!(
            s.allocate("b", Some(Ipv4Addr::new(10, 214, 0, 9))),
            Err(NetError::AddressOutOfRange { .. })
        ));
        assert!(matches!(
            s.allocate("b", Some(Ipv4Addr::new(10, 213, 0, 255))),
            Err(NetError::AddressOutOfRange { .. })
        ));
    }

    #[test]
    fn persisted_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut s = state("10.213.0.0/24");
        s.allocate("a", None).unwrap();
        {
            let _l = store.lock().unwrap();
            store.save(&s).unwrap();
        }
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.get("n").unwrap(), s);
        assert_eq!(again.all().unwrap().len(), 1);
        again.remove("n").unwrap();
        assert!(again.load("n").unwrap().is_none());
    }

    #[test]
    fn an_ip_range_bounds_allocation() {
        let mut s = state("172.28.0.0/16");
        s.config.ip_range = Some("172.28.5.0/30".parse().unwrap());
        s.config.gateway = Some(Ipv4Addr::new(172, 28, 5, 1));
        s.config.validate().unwrap();
        let got: Vec<Ipv4Addr> = ["a", "b", "c"]
            .iter()
            .map(|o| s.allocate(o, None).unwrap())
            .collect();
        // Docker's sub-pool: its first address too, the gateway skipped.
        assert_eq!(
            got,
            [
                Ipv4Addr::new(172, 28, 5, 0),
                Ipv4Addr::new(172, 28, 5, 2),
                Ipv4Addr::new(172, 28, 5, 3)
            ]
        );
        assert!(matches!(
            s.allocate("d", None),
            Err(NetError::PoolExhausted(_))
        ));
        // A requested address may lie outside the range (Docker: anywhere in the subnet).
        assert_eq!(
            s.allocate("e", Some(Ipv4Addr::new(172, 28, 1, 9))).unwrap(),
            Ipv4Addr::new(172, 28, 1, 9)
        );
        s.config.ip_range = Some("10.0.0.0/24".parse().unwrap());
        assert!(s.config.validate().is_err());
    }

    #[test]
    fn v6_addresses_beside_v4_ones() {
        let mut s = state("10.213.0.0/24");
        assert_eq!(s.allocate6("a", None).unwrap(), None, "IPv4 only");
        s.config.ipv6 = Some(Ipv6Config::new("2001:389::/64".parse().unwrap()));
        s.config.validate().unwrap();
        let v6 = |t: &str| t.parse::<Ipv6Addr>().unwrap();
        assert_eq!(s.allocate6("a", None).unwrap(), Some(v6("2001:389::2")));
        assert_eq!(
            s.allocate6("b", Some(v6("2001:389::f00d"))).unwrap(),
            Some(v6("2001:389::f00d"))
        );
        assert_eq!(s.allocate6("b", None).unwrap(), Some(v6("2001:389::f00d")));
        for taken in ["2001:389::f00d", "2001:389::1", "2001:389::"] {
            assert!(
                matches!(
                    s.allocate6("c", Some(v6(taken))),
                    Err(NetError::AddressInUse(_))
                ),
                "{taken}"
            );
        }
        let out = s.allocate6("c", Some(v6("2001:999::5"))).unwrap_err();
        assert_eq!(
            out.to_string(),
            "invalid address 2001:999::5: it does not belong to subnet 2001:389::/64"
        );
        s.allocate("a", None).unwrap();
        assert_eq!(s.release("a"), 2, "both families");
        assert_eq!(
            s.allocate6("d", None).unwrap(),
            Some(v6("2001:389::3")),
            "not reused at once"
        );

        // A gateway of its own (docker-py's: the range's last address) and a range.
        let mut cfg = Ipv6Config::new("2001:389::/64".parse().unwrap());
        cfg.gateway = Some(v6("2001:389::ffff"));
        cfg.ip_range = Some("2001:389::/96".parse().unwrap());
        s.config.ipv6 = Some(cfg.clone());
        s.config.validate().unwrap();
        let mut t = NetworkState::new(s.config.clone());
        assert_eq!(t.allocate6("a", None).unwrap(), Some(v6("2001:389::1")));
        cfg.gateway = Some(v6("2001:38c::1"));
        s.config.ipv6 = Some(cfg.clone());
        assert_eq!(
            s.config.validate().unwrap_err().to_string(),
            "failed to allocate gateway (2001:38c::1): Requested address is out of range"
        );
        cfg.gateway = Some(v6("2001:389::"));
        s.config.ipv6 = Some(cfg.clone());
        assert!(matches!(
            s.config.validate(),
            Err(NetError::AddressInUse(_))
        ));
        cfg.gateway = None;
        cfg.ip_range = Some("2001:38a::/96".parse().unwrap());
        s.config.ipv6 = Some(cfg);
        assert!(s.config.validate().is_err());

        // A tiny subnet runs out.
        let mut tiny = state("10.213.0.0/24");
        tiny.config.ipv6 = Some(Ipv6Config::new("fd00::/126".parse().unwrap()));
        assert!(tiny.allocate6("a", None).unwrap().is_some());
        assert!(tiny.allocate6("b", None).unwrap().is_some());
        assert!(matches!(
            tiny.allocate6("c", None),
            Err(NetError::PoolExhausted(_))
        ));
    }

    #[test]
    fn names() {
        assert!(validate_ifname("berth0").is_ok());
        assert!(validate_ifname("abcdefghijklmnop").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_name("network", "my-net_1.x").is_ok());
        assert!(validate_name("network", "../x").is_err());
        // Docker takes any name that is not blank; berth's files keep out `/` and `.x`.
        for ok in ["my-net_1.x", "test 01", "a:b", "ünï"] {
            assert!(validate_network_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "  ", "../x", "a/b", ".hidden", "a\nb", &"x".repeat(129)] {
            assert!(validate_network_name(bad).is_err(), "{bad:?}");
        }
    }
}
