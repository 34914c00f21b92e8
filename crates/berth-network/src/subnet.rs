//! IPv4 and IPv6 subnets in CIDR notation (`10.88.0.0/16`, `fd12:3456::/64`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::NetError;

/// An IPv4 network: its address with the host bits cleared, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// `addr/prefix`; host bits in `addr` are cleared (Docker refuses them; we are lenient
    /// only here, `FromStr` is strict).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 30 {
            return Err(NetError::invalid(format!(
                "invalid subnet {addr}/{prefix}: a bridge network needs a prefix of /30 or shorter"
            )));
        }
        Ok(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// Whether `ip` can be given to a host: inside, and neither the network nor the
    /// broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.broadcast()
    }

    /// The first host address (Docker's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Every host address in order.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::invalid(format!("invalid CIDR address: {s}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let subnet = Subnet::new(addr, prefix)?;
        if subnet.network != addr {
            return Err(NetError::invalid(format!(
                "invalid subnet {s}: it should be {subnet}"
            )));
        }
        Ok(subnet)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 network (a dual-stack network's second subnet): its address with the host bits
/// cleared, and the prefix length. There is no broadcast address: every address but the
/// subnet's own (the subnet-router anycast address, which Docker never hands out) is a host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet6 {
    network: Ipv6Addr,
    prefix: u8,
}

impl Subnet6 {
    /// `addr/prefix`, host bits of `addr` cleared; at most /127 (the gateway needs one
    /// address besides the subnet's own).
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 127 {
            return Err(NetError::invalid(format!(
                "invalid subnet {addr}/{prefix}: a bridge network needs a prefix of /127 or shorter"
            )));
        }
        Ok(Subnet6 {
            network: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv6Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The subnet's last address.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) | !mask6(self.prefix))
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == u128::from(self.network)
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// Whether `ip` can be given to a host: inside, and not the subnet's own address.
    pub fn is_host(&self, ip: Ipv6Addr) -> bool {
        self.contains(ip) && ip != self.network
    }

    /// The first host address (Docker's default gateway, `…::1`).
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) + 1)
    }
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = NetError;

    /// Strict, as [`Subnet`]'s: `fd00::1/64` is refused with the subnet it should be.
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::invalid(format!("invalid CIDR address: {s}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 128 {
            return Err(bad());
        }
        let subnet = Subnet6::new(addr, prefix)?;
        if subnet.network != addr {
            return Err(NetError::invalid(format!(
                "invalid subnet {s}: it should be {subnet}"
            )));
        }
        Ok(subnet)
    }
}

impl Serialize for Subnet6 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet6 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where networks created without a subnet get theirs (`dockerd --default-address-pool
/// base=10.210.0.0/16,size=24`): `base` cut into `/size` pieces, the first free one taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Subnet,
    pub size: u8,
}

impl AddressPool {
    pub fn new(base: Subnet, size: u8) -> Result<Self, NetError> {
        if size < base.prefix() || size > 30 {
            return Err(NetError::invalid(format!(
                "invalid address pool {base} size {size}: the size must be between /{} and /30",
                base.prefix()
            )));
        }
        Ok(AddressPool { base, size })
    }

    /// The pool's subnets, lowest first.
    pub fn subnets(&self) -> impl Iterator<Item = Subnet> + '_ {
        let step = 1u64 << (32 - u32::from(self.size));
        let count = 1u64 << (self.size - self.base.prefix());
        let start = u64::from(u32::from(self.base.network()));
        (0..count).filter_map(move |i| {
            let addr = u32::try_from(start + i * step).ok()?;
            Subnet::new(Ipv4Addr::from(addr), self.size).ok()
        })
    }
}

impl fmt::Display for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

/// `base=CIDR,size=N`, keys in any order, both required.
impl FromStr for AddressPool {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let (mut base, mut size) = (None, None);
        for field in s.split(',') {
            let (key, value) = field.split_once('=').ok_or_else(|| {
                NetError::invalid(format!(
                    "invalid address pool {s:?}: want base=CIDR,size=PREFIX"
                ))
            })?;
            match key.trim() {
                "base" => base = Some(value.trim().parse::<Subnet>()?),
                "size" => {
                    size = Some(value.trim().parse::<u8>().map_err(|_| {
                        NetError::invalid(format!("invalid address pool size {value:?}"))
                    })?)
                }
                other => {
                    return Err(NetError::invalid(format!(
                        "unexpected key {other:?} in address pool {s:?}"
                    )))
                }
            }
        }
        match (base, size) {
            (Some(base), Some(size)) => AddressPool::new(base, size),
            _ => Err(NetError::invalid(format!(
                "invalid address pool {s:?}: base and size are both required"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_pools_parse_and_split() {
        let p: AddressPool = "base=10.210.0.0/16,size=24".parse().unwrap();
        assert_eq!(p.to_string(), "base=10.210.0.0/16,size=24");
        let q: AddressPool = " size=26 , base=10.1.2.0/24".parse().unwrap();
        let subnets: Vec<String> = q.subnets().map(|s| s.to_string()).collect();
        assert_eq!(
            subnets,
            [
                "10.1.2.0/26",
                "10.1.2.64/26",
                "10.1.2.128/26",
                "10.1.2.192/26"
            ]
        );
        assert_eq!(p.subnets().count(), 256);
        let top: AddressPool = "base=255.255.255.0/24,size=30".parse().unwrap();
        assert_eq!(
            top.subnets().last().unwrap().to_string(),
            "255.255.255.252/30"
        );
        for bad in [
            "",
            "base=10.0.0.0/16",
            "size=24",
            "base=10.0.0.0/16,size=8",
            "base=10.0.0.0/16,size=31",
            "base=10.0.0.1/16,size=24",
            "base=10.0.0.0/16,size=x",
            "base=10.0.0.0/16,size=24,scope=local",
            "10.0.0.0/16",
        ] {
            assert!(bad.parse::<AddressPool>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parse_and_ranges() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.88.0.0/16");
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(s.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert!(!s.is_host(Ipv4Addr::new(10, 88, 0, 0)));
        let small: Subnet = "10.213.1.0/30".parse().unwrap();
        assert_eq!(small.hosts().count(), 2);
        assert!("10.88.0.1/16".parse::<Subnet>().is_err());
        assert!("10.88.0.0".parse::<Subnet>().is_err());
        assert!("10.88.0.0/31".parse::<Subnet>().is_err());
        let other: Subnet = "10.0.0.0/8".parse().unwrap();
        assert!(s.overlaps(&other) && other.overlaps(&s));
        assert!(!s.overlaps(&"172.17.0.0/16".parse().unwrap()));
    }

    #[test]
    fn v6_parse_and_ranges() {
        let s: Subnet6 = "2001:389::/64".parse().unwrap();
        assert_eq!(s.to_string(), "2001:389::/64");
        assert_eq!(s.first_host(), "2001:389::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            s.last(),
            "2001:389::ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap()
        );
        assert!(s.is_host("2001:389::f00d".parse().unwrap()));
        assert!(
            !s.is_host("2001:389::".parse().unwrap()),
            "the subnet's own"
        );
        assert!(!s.contains("2001:388::1".parse().unwrap()));
        let small: Subnet6 = "2001:389::/80".parse().unwrap();
        assert!(s.overlaps(&small) && small.overlaps(&s));
        assert!(!s.overlaps(&"fd00::/64".parse().unwrap()));
        assert_eq!(
            "2001:389::1/64".parse::<Subnet6>().unwrap_err().to_string(),
            "invalid subnet 2001:389::1/64: it should be 2001:389::/64"
        );
        for bad in [
            "2001:389::/164",
            "zzz",
            "2001:389::",
            "10.0.0.0/8",
            "::/128",
        ] {
            assert!(bad.parse::<Subnet6>().is_err(), "{bad}");
        }
        assert_eq!(
            "2001:389::/164".parse::<Subnet6>().unwrap_err().to_string(),
            "invalid CIDR address: 2001:389::/164"
        );
        let all: Subnet6 = "::/0".parse().unwrap();
        assert!(all.contains("fd00::1".parse().unwrap()));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Subnet6>(&json).unwrap(), s);
    }
}
