//! Published ports: `-p [ip:][host:]container[/tcp|udp]` specs, and choosing host ports.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// Which host port a spec asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPort {
    /// `-p 80`, `-p ip::80`: any free port (the kernel's ephemeral range).
    Any,
    Fixed(u16),
    /// `-p 8000-8010:80`: the first free port of the range.
    Range(u16, u16),
}

/// One port to publish, as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address to listen on; None is every address (`0.0.0.0`).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: HostPort,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    pub fn new(host_port: HostPort, container_port: u16, protocol: Protocol) -> Self {
        PortSpec {
            host_ip: None,
            host_port,
            container_port,
            protocol,
        }
    }

    /// Parses Docker's `-p` syntax: `[ip:][hostPort:]containerPort[/protocol]`, where either
    /// port may be a range (`8000-8001:80-81` pairs them up; `8000-8010:80` takes the first
    /// free host port of the range). One spec per container port.
    pub fn parse(s: &str) -> Result<Vec<PortSpec>> {
        let bad = |why: &str| NetError::invalid(format!("invalid port specification {s:?}: {why}"));
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some((_, p)) => return Err(bad(&format!("unsupported protocol {p}"))),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => (None, "", *c),
            [h, c] => (None, *h, *c),
            [ip, h, c] => (Some(*ip), *h, *c),
            _ => return Err(bad("IPv6 host addresses are not supported")),
        };
        let host_ip = match ip {
            None | Some("") | Some("0.0.0.0") => None,
            Some(ip) => Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("invalid host address {ip}")))?,
            ),
        };
        let (c_lo, c_hi) = parse_range(container).ok_or_else(|| bad("invalid container port"))?;
        let hosts = if host.is_empty() {
            None
        } else {
            Some(parse_range(host).ok_or_else(|| bad("invalid host port"))?)
        };
        let count = c_hi - c_lo + 1;
        let mut out = Vec::with_capacity(usize::from(count));
        for i in 0..count {
            let host_port = match hosts {
                None => HostPort::Any,
                Some((lo, hi)) if lo == hi && count == 1 => HostPort::Fixed(lo),
                Some((lo, hi)) if count == 1 => HostPort::Range(lo, hi),
                Some((lo, hi)) if hi - lo + 1 == count => HostPort::Fixed(lo + i),
                Some(_) => return Err(bad("host and container port ranges differ in length")),
            };
            out.push(PortSpec {
                host_ip,
                host_port,
                container_port: c_lo + i,
                protocol,
            });
        }
        Ok(out)
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?),
        None => {
            let p = s.parse::<u16>().ok()?;
            (p, p)
        }
    };
    (lo != 0 && lo <= hi).then_some((lo, hi))
}

/// A port as published: the host port is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `0.0.0.0` for every host address.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PublishedPort {
    /// Whether the two would take the same host port.
    pub fn clashes(&self, other: &PublishedPort) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

impl fmt::Display for PublishedPort {
    /// As `docker port` shows it: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port, self.protocol, self.host_ip, self.host_port
        )
    }
}

/// Tries to bind the host port as a program on the host would; Ok when it could.
fn try_bind(ip: Ipv4Addr, port: u16, protocol: Protocol) -> io::Result<u16> {
    let addr = SocketAddrV4::new(ip, port);
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Protocol::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

/// Binds a host port for [`choose`]: the chosen port, and the bound socket when the caller
/// keeps it (a rootless daemon's proxy serves it); a rootful daemon only checks.
pub(crate) type Binder<'a> =
    &'a dyn Fn(Ipv4Addr, u16, Protocol) -> io::Result<(u16, Option<OwnedFd>)>;

/// The rootful [`Binder`]: binds as a program on the host would, to see that the port is free.
pub(crate) fn check_bind(
    ip: Ipv4Addr,
    port: u16,
    protocol: Protocol,
) -> io::Result<(u16, Option<OwnedFd>)> {
    try_bind(ip, port, protocol).map(|p| (p, None))
}

/// Chooses host ports for `specs`, none of them clashing with `taken` (ports berth has
/// already published: DNAT rules hold no socket, so binding alone would not see them) nor
/// with each other, and each free on the host right now (checked by binding it with `bind`).
/// Each comes with the socket `bind` kept, if it kept one.
pub(crate) fn choose(
    specs: &[PortSpec],
    taken: &[PublishedPort],
    bind: Binder<'_>,
) -> Result<Vec<(PublishedPort, Option<OwnedFd>)>> {
    let mut chosen: Vec<(PublishedPort, Option<OwnedFd>)> = Vec::with_capacity(specs.len());
    for spec in specs {
        let host_ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let make = |host_port| PublishedPort {
            host_ip,
            host_port,
            container_port: spec.container_port,
            protocol: spec.protocol,
        };
        let in_use = |p: &PublishedPort| {
            taken
                .iter()
                .chain(chosen.iter().map(|(c, _)| c))
                .any(|t| t.clashes(p))
        };
        let allocated = |port: u16| NetError::PortAllocated {
            addr: format!("{host_ip}:{port}"),
        };
        let (port, socket) = match spec.host_port {
            HostPort::Fixed(port) => {
                if in_use(&make(port)) {
                    return Err(allocated(port));
                }
                match bind(host_ip, port, spec.protocol) {
                    Ok(bound) => bound,
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(allocated(port)),
                    Err(e) => return Err(NetError::io(format!("binding {host_ip}:{port}"), e)),
                }
            }
            HostPort::Range(lo, hi) => (lo..=hi)
                .filter(|&p| !in_use(&make(p)))
                .find_map(|p| bind(host_ip, p, spec.protocol).ok())
                .ok_or_else(|| allocated(lo))?,
            HostPort::Any => {
                let mut found = None;
                for _ in 0..64 {
                    let (p, socket) = bind(host_ip, 0, spec.protocol)
                        .map_err(|e| NetError::io(format!("binding {host_ip}:0"), e))?;
                    if !in_use(&make(p)) {
                        found = Some((p, socket));
                        break;
                    }
                }
                found.ok_or_else(|| allocated(0))?
            }
        };
        chosen.push((make(port), socket));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        let one = |s| PortSpec::parse(s).unwrap().remove(0);
        assert_eq!(one("80"), PortSpec::new(HostPort::Any, 80, Protocol::Tcp));
        assert_eq!(
            one("8080:80/udp"),
            PortSpec::new(HostPort::Fixed(8080), 80, Protocol::Udp)
        );
        let p = one("127.0.0.1:8080:80");
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.host_port, HostPort::Fixed(8080));
        assert_eq!(one("127.0.0.1::80").host_port, HostPort::Any);
        assert_eq!(one("8000-8010:80").host_port, HostPort::Range(8000, 8010));
        let r = PortSpec::parse("8000-8001:80-81").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].host_port, HostPort::Fixed(8001));
        assert_eq!(r[1].container_port, 81);
        for bad in [
            "",
            "x",
            "0",
            "80/sctp",
            "1:2:3:4",
            "8000-8002:80-81",
            "70000",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chooses_free_ports_and_refuses_clashes() {
        let hold = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = hold.local_addr().unwrap().port();
        let spec = PortSpec {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: HostPort::Fixed(busy),
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let err = choose(&[spec], &[], &check_bind).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{busy} failed: port is already allocated")
        );
        let any = PortSpec::new(HostPort::Any, 80, Protocol::Tcp);
        let got: Vec<PublishedPort> = choose(&[any, any], &[], &check_bind)
            .unwrap()
            .into_iter()
            .map(|(p, socket)| {
                assert!(socket.is_none(), "a rootful choice keeps no socket");
                p
            })
            .collect();
        assert_ne!(got[0].host_port, got[1].host_port);
        let err = choose(
            &[PortSpec::new(
                HostPort::Fixed(got[0].host_port),
                81,
                Protocol::Tcp,
            )],
            &got,
            &check_bind,
        )
        .unwrap_err();
        assert!(matches!(err, NetError::PortAllocated { .. }));
        // Same port number, other protocol: no clash with berth's own.
        let udp = PortSpec::new(HostPort::Fixed(got[0].host_port), 81, Protocol::Udp);
        assert!(choose(&[udp], &got, &check_bind).is_ok());
    }
}
