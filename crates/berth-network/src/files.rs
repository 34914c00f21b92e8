//! A container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, as Docker writes
//! them. The engine writes these into `containers/<id>/` and bind-mounts them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{NetError, Result};

/// `/etc/hostname`.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// One `--add-host` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

impl ExtraHost {
    /// Parses `name:ip` or `name=ip`; the address `host-gateway` becomes `host_gateway` (the
    /// engine passes the default bridge's gateway, as Docker does).
    pub fn parse(s: &str, host_gateway: Option<IpAddr>) -> Result<Self> {
        let bad = || NetError::invalid(format!("invalid argument {s:?} for \"--add-host\" flag"));
        let (name, ip) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .ok_or_else(bad)?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let ip = if ip == "host-gateway" {
            host_gateway.ok_or_else(|| {
                NetError::invalid("unable to derive the IP value for host-gateway")
            })?
        } else {
            ip.parse().map_err(|_| bad())?
        };
        Ok(ExtraHost {
            name: name.to_string(),
            ip,
        })
    }
}

/// What goes into `/etc/hosts`.
#[derive(Clone, Debug, Default)]
pub struct HostsOptions {
    pub hostname: String,
    /// `--domainname`: the hostname line also gets `hostname.domainname`.
    pub domainname: Option<String>,
    /// The container's addresses (one per network); empty with `--network none` or `host`.
    pub addresses: Vec<Ipv4Addr>,
    /// Its IPv6 addresses on dual-stack networks: a line each after the IPv4 ones, with the
    /// same names (as Docker writes them).
    pub addresses6: Vec<Ipv6Addr>,
    /// Network aliases of the container, listed beside its hostname (as Docker does on
    /// user-defined networks).
    pub aliases: Vec<String>,
    /// `--add-host` entries, in order.
    pub extra: Vec<ExtraHost>,
}

/// `/etc/hosts`: Docker's fixed lines, the `--add-host` entries, then the container's own.
pub fn hosts_file(opts: &HostsOptions) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::\tip6-localnet\n\
         ff00::\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for e in &opts.extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    let mut names = Vec::new();
    if let Some(domain) = opts.domainname.as_deref().filter(|d| !d.is_empty()) {
        names.push(format!("{}.{domain}", opts.hostname));
    }
    names.push(opts.hostname.clone());
    for a in &opts.aliases {
        if !names.contains(a) {
            names.push(a.clone());
        }
    }
    for ip in &opts.addresses {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    for ip in &opts.addresses6 {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    out
}

/// The host's resolver settings (what `/etc/resolv.conf` says).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> Self {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A zone index (fe80::1%eth0) is dropped with the address.
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        rc.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => {
                    rc.search = words.map(str::to_string).collect();
                }
                Some("options") => rc.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        rc
    }

    /// The host's `/etc/resolv.conf`; empty when it cannot be read.
    pub fn host() -> Self {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }
}

/// What the container asked for and where its resolver is.
#[derive(Clone, Debug, Default)]
pub struct ResolvOptions {
    /// `--dns`.
    pub dns: Vec<IpAddr>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// The embedded DNS's address (the network's gateway) on a user-defined network;
    /// `--dns` servers then go to that server as its upstreams instead of into the file.
    pub embedded_dns: Option<Ipv4Addr>,
    /// `--network host`: the host's file as it is, loopback servers included.
    pub host_network: bool,
}

/// Docker's fallback when the host has nothing a container could reach.
const FALLBACK_DNS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
];

/// `/etc/resolv.conf` for a container, from the host's settings and the container's flags.
/// Without the embedded DNS the host's loopback servers are dropped (a container cannot
/// reach the host's 127.0.0.53) and Google's servers stand in when none is left, as Docker
/// does.
pub fn resolv_conf(host: &ResolvConf, opts: &ResolvOptions) -> String {
    let search = if opts.dns_search.is_empty() {
        host.search.clone()
    } else {
        opts.dns_search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect()
    };
    let mut options = if opts.dns_options.is_empty() {
        host.options.clone()
    } else {
        opts.dns_options.clone()
    };
    let mut out = String::new();
    if let Some(gw) = opts.embedded_dns {
        out.push_str("# Generated by berth: the embedded DNS on this network's gateway\n");
        let ext: Vec<String> = if opts.dns.is_empty() {
            host.nameservers.iter().map(|i| i.to_string()).collect()
        } else {
            opts.dns.iter().map(|i| i.to_string()).collect()
        };
        out.push_str(&format!("# ExtServers: [{}]\n", ext.join(" ")));
        out.push_str(&format!("nameserver {gw}\n"));
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".to_string());
        }
    } else {
        let servers: Vec<IpAddr> = if !opts.dns.is_empty() {
            opts.dns.clone()
        } else if opts.host_network {
            host.nameservers.clone()
        } else {
            let usable: Vec<IpAddr> = host
                .nameservers
                .iter()
                .copied()
                .filter(|ip| !ip.is_loopback())
                .collect();
            if usable.is_empty() {
                FALLBACK_DNS.to_vec()
            } else {
                usable
            }
        };
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_docker() {
        let gw: IpAddr = "10.88.0.1".parse().unwrap();
        let opts = HostsOptions {
            hostname: "abc123".into(),
            domainname: None,
            addresses: vec![Ipv4Addr::new(10, 88, 0, 2)],
            addresses6: vec!["fd00:1::2".parse().unwrap()],
            aliases: vec!["web".into()],
            extra: vec![
                ExtraHost::parse("db:10.0.0.5", None).unwrap(),
                ExtraHost::parse("host.docker.internal:host-gateway", Some(gw)).unwrap(),
                ExtraHost::parse("v6=::1", None).unwrap(),
            ],
        };
        let text = hosts_file(&opts);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost"));
        assert!(text.contains("10.0.0.5\tdb\n10.88.0.1\thost.docker.internal\n::1\tv6\n"));
        assert!(text.ends_with("10.88.0.2\tabc123 web\nfd00:1::2\tabc123 web\n"));
        assert!(ExtraHost::parse("nohost", None).is_err());
        assert!(ExtraHost::parse("x:host-gateway", None).is_err());
        assert_eq!(hostname_file("abc"), "abc\n");
    }

    #[test]
    fn resolv_conf_variants() {
        let host = ResolvConf::parse(
            "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example\noptions edns0 trust-ad\n",
        );
        assert_eq!(host.nameservers.len(), 2);
        let plain = resolv_conf(&host, &ResolvOptions::default());
        assert_eq!(
            plain,
            "nameserver 192.0.2.1\nsearch corp.example\noptions edns0 trust-ad\n"
        );
        let only_loopback = ResolvConf::parse("nameserver 127.0.0.53\n");
        assert!(resolv_conf(&only_loopback, &ResolvOptions::default())
            .starts_with("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"));
        let flags = ResolvOptions {
            dns: vec!["192.0.2.9".parse().unwrap()],
            dns_search: vec!["a.example".into()],
            dns_options: vec!["ndots:2".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&host, &flags),
            "nameserver 192.0.2.9\nsearch a.example\noptions ndots:2\n"
        );
        let embedded = ResolvOptions {
            embedded_dns: Some(Ipv4Addr::new(10, 210, 0, 1)),
            ..Default::default()
        };
        let text = resolv_conf(&host, &embedded);
        assert!(text.contains("\nnameserver 10.210.0.1\n"));
        assert!(text.contains("# ExtServers: [127.0.0.53 192.0.2.1]"));
        assert!(text.ends_with("options edns0 trust-ad ndots:0\n"));
        let hostnet = ResolvOptions {
            host_network: true,
            ..Default::default()
        };
        assert!(resolv_conf(&host, &hostnet).starts_with("nameserver 127.0.0.53\n"));
    }
}
