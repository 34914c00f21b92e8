//! Where a registry named in a reference is reached: Docker Hub (`docker.io`) at
//! `registry-1.docker.io`, others at their `host[:port]`; plain HTTP for loopback hosts and
//! the configured insecure registries, HTTPS otherwise.

use std::net::IpAddr;

/// The name Docker Hub has in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key Docker Hub's credentials have in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A registry and the base URL of its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As references name it (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// `scheme://host[:port]`, without a trailing slash.
    pub base: String,
}

impl Endpoint {
    pub fn resolve(registry: &str, insecure: &[String]) -> Endpoint {
        let registry = canonical_registry(registry);
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API.to_owned()
        } else {
            registry.clone()
        };
        let scheme = if is_insecure(&registry, insecure) {
            "http"
        } else {
            "https"
        };
        Endpoint {
            base: format!("{scheme}://{host}"),
            registry,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves a `Location` a registry answered with (absolute, or a path on this host).
    pub fn location(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            format!("{}/{location}", self.base)
        }
    }
}

/// Docker Hub's other names become `docker.io`; a scheme or path around a host is dropped
/// (`https://index.docker.io/v1/` → `docker.io`, `http://localhost:5000/` → `localhost:5000`).
pub fn canonical_registry(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        ""
        | "docker.io"
        | "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com" => DOCKER_HUB.to_owned(),
        _ => host,
    }
}

/// The host of `host[:port]` (brackets of an IPv6 literal removed).
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// Loopback hosts, and registries listed as insecure (as `host[:port]`, `host`, or a CIDR
/// network its address is in), are spoken to over plain HTTP.
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    let ip = host.parse::<IpAddr>().ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    insecure.iter().any(|entry| {
        let cidr = entry.trim().split_once('/').filter(|(net, bits)| {
            net.parse::<IpAddr>().is_ok() && bits.bytes().all(|b| b.is_ascii_digit())
        });
        if let Some((net, bits)) = cidr {
            return ip.is_some_and(|ip| in_network(ip, net, bits));
        }
        let entry = canonical_registry(entry);
        entry == registry || entry == host
    })
}

fn in_network(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= 128 || (a >> shift) == (b >> shift)
}

/// The key a registry's credentials have in `config.json`.
pub fn auth_key(registry: &str) -> String {
    let registry = canonical_registry(registry);
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_owned()
    } else {
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_and_others() {
        let e = Endpoint::resolve("docker.io", &[]);
        assert_eq!(e.base, "https://registry-1.docker.io");
        assert_eq!(e.registry, "docker.io");
        assert_eq!(
            Endpoint::resolve("index.docker.io", &[]).base,
            "https://registry-1.docker.io"
        );
        assert_eq!(Endpoint::resolve("ghcr.io", &[]).base, "https://ghcr.io");
        assert_eq!(
            Endpoint::resolve("localhost:5000", &[]).base,
            "http://localhost:5000"
        );
        assert_eq!(
            Endpoint::resolve("127.0.0.5:5000", &[]).base,
            "http://127.0.0.5:5000"
        );
        assert_eq!(
            Endpoint::resolve("[::1]:5000", &[]).base,
            "http://[::1]:5000"
        );
        assert_eq!(
            Endpoint::resolve("10.1.2.3:5000", &[]).base,
            "https://10.1.2.3:5000"
        );
    }

    #[test]
    fn insecure_registries() {
        let list = vec![
            "myreg:5000".to_owned(),
            "10.0.0.0/8".to_owned(),
            "http://plain.example".to_owned(),
        ];
        assert!(is_insecure("myreg:5000", &list));
        assert!(!is_insecure("myreg:5001", &list));
        assert!(is_insecure("10.1.2.3:5000", &list));
        assert!(!is_insecure("11.1.2.3:5000", &list));
        assert!(is_insecure("plain.example", &list));
        assert!(is_insecure("plain.example:443", &list));
        assert!(!is_insecure("example.com", &list));
    }

    #[test]
    fn credential_keys() {
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("https://index.docker.io/v1/"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key(""), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("http://localhost:5000/"), "localhost:5000");
        assert_eq!(
            canonical_registry("Registry.Example.com"),
            "registry.example.com"
        );
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("host:5000"), "host");
        assert_eq!(host_of("host"), "host");
    }
}
