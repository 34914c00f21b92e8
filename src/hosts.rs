//! The daemon's sockets: every `-H` read with berth-core's parser, checked against the TLS
//! flags and `--insecure-tcp`, the TLS configuration loaded once for every tcp socket, and
//! each address bound.
//!
//! The rules, dockerd's where it has them: TLS applies to tcp sockets only (unix sockets are
//! guarded by their file mode); a tcp address without a port gets 2375, or 2376 with TLS;
//! plain TCP is served on loopback addresses (127.0.0.0/8, ::1) only, unless
//! `--insecure-tcp` says otherwise (then with a warning), since whoever reaches the API is
//! root on the host; `--tls` without `--tlsverify` on any other address is allowed with a
//! warning (it authenticates nobody).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_cli::tls_flags::{flag_of, TlsFiles, TlsMode};
use berth_core::host::{all_loopback, Host};

/// One socket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp {
        /// As the user wrote it, parsed and printed back (`tcp://0.0.0.0:2376`).
        host: String,
        addr: SocketAddr,
    },
}

/// What `-H`, the TLS mode and `--insecure-tcp` together ask for.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub listen: Vec<Listen>,
    /// Said in the log once it is up.
    pub warnings: Vec<String>,
}

impl Checked {
    fn any_tcp(&self) -> bool {
        self.listen.iter().any(|l| matches!(l, Listen::Tcp { .. }))
    }
}

/// Reads and judges the `-H` values.
pub fn check(hosts: &[String], mode: TlsMode, insecure_tcp: bool) -> Result<Checked> {
    let mut checked = Checked {
        listen: Vec::new(),
        warnings: Vec::new(),
    };
    for text in hosts {
        let host = Host::parse(text, mode.enabled()).with_context(|| format!("-H {text}"))?;
        let addr = match &host {
            Host::Unix(path) => {
                checked.listen.push(Listen::Unix(path.clone()));
                continue;
            }
            Host::Tcp { .. } => host.socket_addrs().with_context(|| format!("-H {text}"))?,
        };
        let loopback = all_loopback(&addr);
        match mode {
            TlsMode::Off if !loopback && !insecure_tcp => bail!(
                "-H {host}: refusing to serve the API in plain text on a non-loopback address: \
                 whoever reaches it is root on this host. Use --tlsverify with --tlscacert, \
                 --tlscert and --tlskey (mutual TLS), or pass --insecure-tcp to serve it anyway"
            ),
            TlsMode::Off if !loopback => checked.warnings.push(format!(
                "serving the API in plain text on {host} (--insecure-tcp): whoever reaches it is root on this host"
            )),
            TlsMode::On if !loopback => checked.warnings.push(format!(
                "{host}: --tls without --tlsverify asks clients for no certificate: whoever reaches it is root on this host"
            )),
            _ => {}
        }
        checked.listen.push(Listen::Tcp {
            host: host.to_string(),
            addr: addr[0],
        });
    }
    Ok(checked)
}

/// The server's TLS configuration when a tcp socket needs one; errors name the flag and file.
pub fn server_tls(
    checked: &Checked,
    mode: TlsMode,
    files: &TlsFiles,
) -> Result<Option<Arc<rustls::ServerConfig>>> {
    if !mode.enabled() || !checked.any_tcp() {
        return Ok(None);
    }
    let client_ca = (mode == TlsMode::Verify).then_some(files.ca.as_path());
    match berth_tls::server_config(&files.cert, &files.key, client_ca) {
        Ok(config) => Ok(Some(Arc::new(config))),
        Err(e) => match e.role() {
            Some(role) => bail!("{}: {e}", flag_of(role)),
            None => bail!("TLS: {e}"),
        },
    }
}

/// Binds every socket (inside the runtime); returns them and the unix paths to remove at exit.
/// TCP first: an address that cannot be had (taken, not ours) fails before any socket file
/// is made.
pub fn bind(
    checked: &Checked,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Vec<berth_api::listen::Bound>, Vec<PathBuf>)> {
    use berth_api::listen::Bound;
    let mut bound = Vec::new();
    for l in &checked.listen {
        if let Listen::Tcp { host, addr } = l {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("-H {host}: listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            bound.push(match &tls {
                Some(config) => Bound::Tls(listener, config.clone()),
                None => Bound::Tcp(listener),
            });
        }
    }
    let mut paths = Vec::new();
    for l in &checked.listen {
        if let Listen::Unix(path) = l {
            let listener = bind_socket(path)?;
            listener.set_nonblocking(true)?;
            paths.push(path.clone());
            bound.push(Bound::Unix(tokio::net::UnixListener::from_std(listener)?));
        }
    }
    Ok((bound, paths))
}

/// Binds the API socket: refuses to steal one a live daemon listens on, replaces a stale one,
/// and makes it mode 0660, group `berth` when that group exists (as Docker does with `docker`).
fn bind_socket(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
        let _ = nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group.gid));
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn tcp(host: &str, addr: &str) -> Listen {
        Listen::Tcp {
            host: host.into(),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn unix_and_tcp_together() {
        let c = check(
            &hosts(&["unix:///tmp/b.sock", "tcp://127.0.0.1"]),
            TlsMode::Verify,
            false,
        )
        .unwrap();
        assert_eq!(
            c.listen,
            vec![
                Listen::Unix("/tmp/b.sock".into()),
                tcp("tcp://127.0.0.1:2376", "127.0.0.1:2376")
            ]
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn plain_tcp_on_loopback_is_allowed() {
        for h in [
            "tcp://127.0.0.1:2375",
            "tcp://127.1.2.3",
            "tcp://[::1]:2375",
        ] {
            let c = check(&hosts(&[h]), TlsMode::Off, false).unwrap();
            assert!(c.warnings.is_empty(), "{h}");
        }
        let c = check(&hosts(&["tcp://127.0.0.1"]), TlsMode::Off, false).unwrap();
        assert_eq!(
            c.listen,
            vec![tcp("tcp://127.0.0.1:2375", "127.0.0.1:2375")]
        );
    }

    #[test]
    fn plain_tcp_elsewhere_needs_insecure_tcp() {
        for h in ["tcp://0.0.0.0:2375", "tcp://[::]:2375", "tcp://192.0.2.1"] {
            let e = check(&hosts(&[h]), TlsMode::Off, false).unwrap_err();
            assert!(e.to_string().contains("--insecure-tcp"), "{e}");
            let c = check(&hosts(&[h]), TlsMode::Off, true).unwrap();
            assert_eq!(c.warnings.len(), 1, "{h}");
            assert!(c.warnings[0].contains("plain text"), "{:?}", c.warnings);
        }
    }

    #[test]
    fn tls_elsewhere_is_allowed_and_tls_without_verify_warned_about() {
        let c = check(&hosts(&["tcp://0.0.0.0"]), TlsMode::Verify, false).unwrap();
        assert!(c.warnings.is_empty());
        assert_eq!(c.listen, vec![tcp("tcp://0.0.0.0:2376", "0.0.0.0:2376")]);
        let c = check(&hosts(&["tcp://0.0.0.0"]), TlsMode::On, false).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("--tlsverify"));
    }

    #[test]
    fn bad_hosts_name_the_flag() {
        let e = check(&hosts(&["ssh://me@there"]), TlsMode::Off, false).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "-H ssh://me@there: invalid bind address format: ssh://me@there"
        );
    }

    #[test]
    fn no_tls_configuration_without_a_tcp_socket() {
        // The files do not exist: they are not even read when nothing needs them.
        let files = TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            cert_given: false,
            key_given: false,
        };
        let unix = check(&hosts(&["unix:///tmp/b.sock"]), TlsMode::Verify, false).unwrap();
        assert!(server_tls(&unix, TlsMode::Verify, &files)
            .unwrap()
            .is_none());
        let tcp = check(&hosts(&["tcp://127.0.0.1"]), TlsMode::Verify, false).unwrap();
        let e = server_tls(&tcp, TlsMode::Verify, &files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tlscert: open /nonexistent/cert.pem: no such file or directory"
        );
    }
}
