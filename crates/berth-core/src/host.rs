//! Daemon addresses as Docker writes them (`-H`, `DOCKER_HOST`, `BERTH_HOST`):
//! `unix:///path/to.sock`, `tcp://host:port`, or a bare `host:port` (tcp). A tcp address
//! without a port gets Docker's: 2375 in plain text, 2376 with TLS; without a host, localhost.
//! The daemon and the CLI read them with this one parser.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Docker's port for the API in plain text.
pub const PLAIN_PORT: u16 = 2375;
/// Docker's port for the API over TLS.
pub const TLS_PORT: u16 = 2376;

/// A parsed daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address: a host name or IP literal (no brackets) and a port.
    Tcp { host: String, port: u16 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    /// Docker's words for a scheme it does not know or an address it cannot read.
    #[error("invalid bind address format: {0}")]
    Format(String),
    #[error("invalid port in {0:?}: want 1 to 65535")]
    Port(String),
    #[error("unix:// needs the socket's path: {0:?}")]
    NoPath(String),
    #[error("{0:?}: berth serves the API at /, not under a path")]
    Path(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
}

impl Host {
    /// Reads `text`; `tls` picks the default port of a tcp address that names none.
    pub fn parse(text: &str, tls: bool) -> Result<Host, HostError> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None if !text.is_empty() => ("tcp", text),
            None => return Err(HostError::Format(text.to_owned())),
        };
        match scheme {
            "unix" if rest.is_empty() => Err(HostError::NoPath(text.to_owned())),
            "unix" => Ok(Host::Unix(PathBuf::from(rest))),
            "tcp" => parse_tcp(text, rest, tls),
            _ => Err(HostError::Format(text.to_owned())),
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Host::Tcp { .. })
    }

    /// `host:port` (an IPv6 literal in brackets), as a socket address string for connect.
    pub fn authority(&self) -> Option<String> {
        match self {
            Host::Unix(_) => None,
            Host::Tcp { host, port } if host.contains(':') => Some(format!("[{host}]:{port}")),
            Host::Tcp { host, port } => Some(format!("{host}:{port}")),
        }
    }

    /// The addresses a tcp host stands for (a name resolved, IPv4 first); none for unix.
    pub fn socket_addrs(&self) -> Result<Vec<SocketAddr>, HostError> {
        let Host::Tcp { host, port } = self else {
            return Ok(Vec::new());
        };
        let mut addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, *port)],
            Err(_) => (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| HostError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(HostError::Resolve {
                host: host.clone(),
                reason: "no address".into(),
            });
        }
        addrs.sort_by_key(|a| a.is_ipv6());
        Ok(addrs)
    }
}

/// Whether every address `addrs` holds is a loopback one (127.0.0.0/8, ::1, or 127/8 mapped
/// into IPv6). The unspecified address (0.0.0.0, ::) is every interface, so it is not.
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|a| a.ip().to_canonical().is_loopback())
}

fn parse_tcp(text: &str, rest: &str, tls: bool) -> Result<Host, HostError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(HostError::Path(text.to_owned()));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        // [v6]:port or [v6]
        let (ip, after) = inner
            .split_once(']')
            .ok_or_else(|| HostError::Format(text.to_owned()))?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostError::Format(text.to_owned()));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| HostError::Format(text.to_owned()))?,
            ),
        };
        (ip, port)
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 literal cannot carry a port.
        return Err(HostError::Format(text.to_owned()));
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") if tls => TLS_PORT,
        None | Some("") => PLAIN_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(HostError::Port(text.to_owned())),
        },
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Ok(Host::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp { .. } => write!(f, "tcp://{}", self.authority().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Host {
        Host::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn unix_sockets() {
        assert_eq!(
            Host::parse("unix:///run/berth/berth.sock", false),
            Ok(Host::Unix("/run/berth/berth.sock".into()))
        );
        assert_eq!(
            Host::parse("unix://", false),
            Err(HostError::NoPath("unix://".into()))
        );
    }

    #[test]
    fn tcp_ports_default_as_dockers() {
        assert_eq!(
            Host::parse("tcp://127.0.0.1", false),
            Ok(tcp("127.0.0.1", 2375))
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1", true),
            Ok(tcp("127.0.0.1", 2376))
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:", true),
            Ok(tcp("127.0.0.1", 2376))
        );
        assert_eq!(
            Host::parse("tcp://example.com:4243/", true),
            Ok(tcp("example.com", 4243))
        );
        assert_eq!(Host::parse("tcp://", false), Ok(tcp("localhost", 2375)));
        assert_eq!(Host::parse("tcp://:99", true), Ok(tcp("localhost", 99)));
    }

    #[test]
    fn a_bare_address_is_tcp() {
        assert_eq!(
            Host::parse("10.0.0.2:2376", false),
            Ok(tcp("10.0.0.2", 2376))
        );
        assert_eq!(Host::parse("docker", true), Ok(tcp("docker", 2376)));
    }

    #[test]
    fn ipv6_literals_are_bracketed() {
        let h = Host::parse("tcp://[::1]:2376", false).unwrap();
        assert_eq!(h, tcp("::1", 2376));
        assert_eq!(h.to_string(), "tcp://[::1]:2376");
        assert_eq!(Host::parse("tcp://[::1]", false), Ok(tcp("::1", 2375)));
        assert!(Host::parse("tcp://::1:2376", false).is_err());
        assert!(Host::parse("tcp://[nope]:1", false).is_err());
    }

    #[test]
    fn refused_addresses() {
        for bad in [
            "ssh://me@host",
            "http://127.0.0.1:2375",
            "fd://",
            "npipe:////./pipe/x",
            "",
        ] {
            assert!(
                matches!(Host::parse(bad, false), Err(HostError::Format(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Host::parse("tcp://h:0", false),
            Err(HostError::Port(_))
        ));
        assert!(matches!(
            Host::parse("tcp://h:70000", false),
            Err(HostError::Port(_))
        ));
        assert!(matches!(
            Host::parse("tcp://h:x", false),
            Err(HostError::Port(_))
        ));
        assert!(matches!(
            Host::parse("tcp://h:1/v1.45", false),
            Err(HostError::Path(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in ["unix:///tmp/b.sock", "tcp://127.0.0.1:2376", "tcp://host:1"] {
            assert_eq!(Host::parse(text, false).unwrap().to_string(), text);
        }
    }

    #[test]
    fn loopback_is_127_8_and_v6_one() {
        let addrs = |h: &str| Host::parse(h, false).unwrap().socket_addrs().unwrap();
        assert!(all_loopback(&addrs("tcp://127.0.0.1:1")));
        assert!(all_loopback(&addrs("tcp://127.9.8.7:1")));
        assert!(all_loopback(&addrs("tcp://[::1]:1")));
        assert!(all_loopback(&addrs("tcp://[::ffff:127.0.0.1]:1")));
        assert!(!all_loopback(&addrs("tcp://0.0.0.0:1")));
        assert!(!all_loopback(&addrs("tcp://[::]:1")));
        assert!(!all_loopback(&addrs("tcp://192.0.2.1:1")));
        assert!(!all_loopback(&[]));
    }
}
