//! Docker's TLS flags, with the meaning both of Docker's programs give them, for the CLI and
//! for `berth daemon` alike:
//!
//! - `--tls`: speak TLS; the peer's certificate is not checked (the daemon asks for none, the
//!   CLI takes any the daemon shows).
//! - `--tlsverify` (implies `--tls`): the daemon requires client certificates signed by
//!   `--tlscacert`; the CLI checks the daemon's against it, and the host name it dialled.
//! - `--tlscacert`, `--tlscert`, `--tlskey`: default `ca.pem`, `cert.pem`, `key.pem` in
//!   `$DOCKER_CERT_PATH`, else in `~/.docker`.
//! - `DOCKER_TLS_VERIFY` (any non-empty value) and `DOCKER_TLS` turn them on from the
//!   environment.

use std::path::{Path, PathBuf};

use berth_tls::PemRole;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Use TLS; implied by --tlsverify.
    #[arg(long, global = true)]
    pub tls: bool,
    /// Use TLS and verify the remote (daemon: verify client, client: verify daemon).
    #[arg(long, global = true)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA (default "~/.docker/ca.pem").
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default "~/.docker/cert.pem").
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file (default "~/.docker/key.pem").
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

/// Whether and how TLS is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    /// `--tls`: encrypted, the peer unchecked.
    On,
    /// `--tlsverify`: the peer's certificate checked against the CA.
    Verify,
}

impl TlsMode {
    pub fn enabled(self) -> bool {
        self != TlsMode::Off
    }
}

/// The three files, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether `--tlscert`/`--tlskey` were given (the CLI drops missing defaults, not these).
    pub cert_given: bool,
    pub key_given: bool,
}

/// The environment, as a lookup (tests give their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn set(env: Env<'_>, name: &str) -> bool {
    env(name).is_some_and(|v| !v.is_empty())
}

impl TlsFlags {
    /// The mode the flags and the environment ask for.
    pub fn mode(&self) -> TlsMode {
        self.mode_in(&process_env)
    }

    pub fn mode_in(&self, env: Env<'_>) -> TlsMode {
        if self.tlsverify || set(env, "DOCKER_TLS_VERIFY") {
            TlsMode::Verify
        } else if self.tls || set(env, "DOCKER_TLS") {
            TlsMode::On
        } else {
            TlsMode::Off
        }
    }

    /// The files, given or defaulted.
    pub fn files(&self) -> TlsFiles {
        self.files_in(&process_env)
    }

    pub fn files_in(&self, env: Env<'_>) -> TlsFiles {
        let dir = cert_dir(env);
        TlsFiles {
            ca: self.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem")),
            cert: self.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem")),
            key: self.tlskey.clone().unwrap_or_else(|| dir.join("key.pem")),
            cert_given: self.tlscert.is_some(),
            key_given: self.tlskey.is_some(),
        }
    }
}

impl TlsFiles {
    /// The client's certificate and key, as the docker CLI picks them: a default file that
    /// does not exist is dropped (no client certificate), a given one never is; when one of
    /// the two is used the other must be there too (a missing one is then an error at load).
    pub fn client_identity(&self) -> Option<(&Path, &Path)> {
        let cert = self.cert_given || self.cert.exists();
        let key = self.key_given || self.key.exists();
        (cert || key).then_some((self.cert.as_path(), self.key.as_path()))
    }
}

/// The flag that names a file of `role`, for errors.
pub fn flag_of(role: PemRole) -> &'static str {
    match role {
        PemRole::Ca => "--tlscacert",
        PemRole::Cert => "--tlscert",
        PemRole::Key => "--tlskey",
    }
}

/// `$DOCKER_CERT_PATH`, else `~/.docker`.
pub fn cert_dir(env: Env<'_>) -> PathBuf {
    match env("DOCKER_CERT_PATH").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env("HOME").unwrap_or_else(|| "/".into())).join(".docker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        tls: TlsFlags,
    }

    fn flags(args: &[&str]) -> TlsFlags {
        Cmd::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .tls
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn modes_from_flags() {
        let none = env_of(&[]);
        assert_eq!(flags(&[]).mode_in(&none), TlsMode::Off);
        assert_eq!(flags(&["--tls"]).mode_in(&none), TlsMode::On);
        assert_eq!(flags(&["--tlsverify"]).mode_in(&none), TlsMode::Verify);
        assert_eq!(
            flags(&["--tls", "--tlsverify"]).mode_in(&none),
            TlsMode::Verify
        );
        // Files alone turn nothing on, as with docker.
        assert_eq!(
            flags(&["--tlscacert", "/c.pem"]).mode_in(&none),
            TlsMode::Off
        );
    }

    #[test]
    fn modes_from_the_environment() {
        assert_eq!(
            flags(&[]).mode_in(&env_of(&[("DOCKER_TLS_VERIFY", "1")])),
            TlsMode::Verify
        );
        // Any non-empty value counts, "0" too (docker tests for non-empty).
        assert_eq!(
            flags(&[]).mode_in(&env_of(&[("DOCKER_TLS_VERIFY", "0")])),
            TlsMode::Verify
        );
        assert_eq!(
            flags(&[]).mode_in(&env_of(&[("DOCKER_TLS_VERIFY", "")])),
            TlsMode::Off
        );
        assert_eq!(
            flags(&[]).mode_in(&env_of(&[("DOCKER_TLS", "1")])),
            TlsMode::On
        );
        assert_eq!(
            flags(&["--tls"]).mode_in(&env_of(&[("DOCKER_TLS_VERIFY", "1")])),
            TlsMode::Verify
        );
    }

    #[test]
    fn files_default_to_the_cert_path_then_home() {
        let f = flags(&[]).files_in(&env_of(&[("HOME", "/home/u")]));
        assert_eq!(f.ca, Path::new("/home/u/.docker/ca.pem"));
        assert_eq!(f.cert, Path::new("/home/u/.docker/cert.pem"));
        assert_eq!(f.key, Path::new("/home/u/.docker/key.pem"));
        let env = env_of(&[("HOME", "/home/u"), ("DOCKER_CERT_PATH", "/certs")]);
        let f = flags(&["--tlskey", "/k.pem"]).files_in(&env);
        assert_eq!(f.ca, Path::new("/certs/ca.pem"));
        assert_eq!(f.cert, Path::new("/certs/cert.pem"));
        assert_eq!(f.key, Path::new("/k.pem"));
        assert!(!f.cert_given && f.key_given);
    }

    #[test]
    fn the_client_drops_missing_default_identity_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let env = move |name: &str| (name == "DOCKER_CERT_PATH").then(|| d.clone());
        // Neither default exists: no client certificate.
        assert_eq!(flags(&[]).files_in(&env).client_identity(), None);
        // Given files are used even when missing (loading them then fails, naming them).
        let f = flags(&["--tlscert", "/nope/cert.pem"]).files_in(&env);
        assert_eq!(
            f.client_identity(),
            Some((
                Path::new("/nope/cert.pem"),
                dir.path().join("key.pem").as_path()
            ))
        );
        // Both defaults there: used.
        std::fs::write(dir.path().join("cert.pem"), "").unwrap();
        std::fs::write(dir.path().join("key.pem"), "").unwrap();
        assert!(flags(&[]).files_in(&env).client_identity().is_some());
    }
}
