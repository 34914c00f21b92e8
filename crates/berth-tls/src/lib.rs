//! berth's TLS material, in one place for every side that speaks TLS: PEM certificates and
//! private keys read from files, and the rustls configurations (ring provider) of the API
//! server (`berth daemon --tls`/`--tlsverify`), the registry server (`berth registry serve
//! --tls-cert`) and the CLI's client (`berth --tls`/`--tlsverify`).
//!
//! Errors say which file they are about ([`PemRole`]), so each caller can name its own flag.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which of the PEM files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemRole {
    /// The CA certificates peers are checked against.
    Ca,
    /// Our own certificate chain.
    Cert,
    /// Our certificate's private key.
    Key,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (Go's words: `open PATH: no such file or directory`).
    #[error("open {}: {}", path.display(), go_io_text(source))]
    Open {
        role: PemRole,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but holds no usable PEM object.
    #[error("{}: {detail}", path.display())]
    Pem {
        role: PemRole,
        path: PathBuf,
        detail: String,
    },
    /// The private key is not the certificate's.
    #[error("the private key {} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// rustls refused the configuration.
    #[error("{0}")]
    Config(#[from] rustls::Error),
}

impl TlsError {
    /// The file the error is about, when it is about one.
    pub fn role(&self) -> Option<PemRole> {
        match self {
            TlsError::Open { role, .. } | TlsError::Pem { role, .. } => Some(*role),
            TlsError::KeyMismatch { .. } => Some(PemRole::Key),
            TlsError::Config(_) => None,
        }
    }
}

/// An io error as Go prints it: `no such file or directory`, without Rust's `(os error 2)`.
fn go_io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The ring provider every configuration here is built on.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, role: PemRole) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Open {
        role,
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file (a chain: leaf first), at least one.
pub fn certificates(path: &Path, role: PemRole) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, role)?;
    let bad = |detail: String| TlsError::Pem {
        role,
        path: path.to_owned(),
        detail,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, PemRole::Key)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        role: PemRole::Key,
        path: path.to_owned(),
        detail: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
            e => format!("not a PEM private key: {e}"),
        },
    })
}

/// The CA certificates of `path` as trust anchors.
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path, PemRole::Ca)? {
        store.add(cert).map_err(|e| TlsError::Pem {
            role: PemRole::Ca,
            path: path.to_owned(),
            detail: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

/// A certificate chain and its key, both files read and checked to belong together.
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((certificates(cert, PemRole::Cert)?, private_key(key)?))
}

/// rustls's key-mismatch error as ours, naming both files.
fn mismatch(cert: &Path, key: &Path) -> impl FnOnce(rustls::Error) -> TlsError {
    let (cert, key) = (cert.to_owned(), key.to_owned());
    move |e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch { cert, key },
        e => TlsError::Config(e),
    }
}

/// A server's configuration: `cert` (PEM chain, leaf first) and `key`; with `client_ca`,
/// every client must present a certificate signed by one of its CAs (mutual TLS), without
/// it none is asked for. HTTP/1.1 is offered by ALPN.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, private) = identity(cert, key)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Pem {
                role: PemRole::Ca,
                path: ca.to_owned(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(mismatch(cert, key))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How a client judges the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCheck {
    /// Signed by one of the CAs, and made out to the host name we dialled (`--tlsverify`).
    Verify,
    /// Anything (`--tls` alone, Go's InsecureSkipVerify): encrypted, not authenticated. The
    /// handshake's signatures are still checked.
    Skip,
}

/// A client's configuration: the server checked against `ca` as `check` says; `identity`
/// (certificate and key files) presented when the server asks for one.
pub fn client_config(
    ca: &Path,
    identity_files: Option<(&Path, &Path)>,
    check: ServerCheck,
) -> Result<rustls::ClientConfig, TlsError> {
    // The CA is read either way, as docker does: a missing file is an error even with --tls.
    let roots = roots(ca)?;
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match check {
        ServerCheck::Verify => builder.with_root_certificates(roots),
        ServerCheck::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider))),
    };
    let config = match identity_files {
        Some((cert, key)) => {
            let (chain, private) = identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(mismatch(cert, key))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The name a client checks the server's certificate against: an IP literal or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        TlsError::Config(rustls::Error::General(format!(
            "{host:?} is no host name: {e}"
        )))
    })
}

/// A failed handshake in the words Go's crypto/tls gives it (what the docker CLI prints):
/// `tls: failed to verify certificate: x509: certificate signed by unknown authority`,
/// `remote error: tls: certificate required`, …
pub fn go_error_text(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C};
    let verify = |what: &str| format!("tls: failed to verify certificate: x509: {what}");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            // A CA of the same name but another key fails on the signature; Go says the same.
            C::UnknownIssuer | C::BadSignature => verify("certificate signed by unknown authority"),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                verify("certificate is not valid for the host name dialled")
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => verify("certificate has expired or is not yet valid"),
            other => verify(&format!("{other:?}")),
        },
        rustls::Error::AlertReceived(alert) => {
            let words = match alert {
                A::BadCertificate => "bad certificate".to_owned(),
                A::CertificateRequired => "certificate required".to_owned(),
                A::UnknownCA => "unknown certificate authority".to_owned(),
                A::HandshakeFailure => "handshake failure".to_owned(),
                A::CertificateExpired => "expired certificate".to_owned(),
                A::DecryptError => "error decrypting message".to_owned(),
                other => format!("{other:?}").to_lowercase(),
            };
            format!("remote error: tls: {words}")
        }
        rustls::Error::InvalidMessage(_) => {
            "tls: first record does not look like a TLS handshake".to_owned()
        }
        other => format!("tls: {other}"),
    }
}

/// Accepts any server certificate; checks only that the handshake is signed by its key.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, a leaf it signed for 127.0.0.1, and the leaf's key, as PEM files in `dir`.
    fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        (
            write("ca.pem", ca.pem()),
            write("cert.pem", leaf.pem()),
            write("key.pem", key.serialize_pem()),
        )
    }

    #[test]
    fn a_server_and_a_client_configuration_build() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = files(dir.path());
        server_config(&cert, &key, Some(&ca)).unwrap();
        server_config(&cert, &key, None).unwrap();
        client_config(&ca, Some((&cert, &key)), ServerCheck::Verify).unwrap();
        client_config(&ca, None, ServerCheck::Skip).unwrap();
    }

    #[test]
    fn a_missing_file_is_named_in_gos_words() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, key) = files(dir.path());
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &key, Some(&ca)).unwrap_err();
        assert_eq!(e.role(), Some(PemRole::Cert));
        assert_eq!(
            e.to_string(),
            format!("open {}: no such file or directory", missing.display())
        );
        let e = client_config(&missing, None, ServerCheck::Skip).unwrap_err();
        assert_eq!(e.role(), Some(PemRole::Ca));
    }

    #[test]
    fn bad_pem_is_refused_with_the_files_name() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = files(dir.path());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let e = server_config(&junk, &key, None).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Pem {
                    role: PemRole::Cert,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("junk.pem"), "{e}");
        let e = server_config(&cert, &junk, None).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Pem {
                    role: PemRole::Key,
                    ..
                }
            ),
            "{e}"
        );
        // A certificate where the key should be is no key either.
        let e = server_config(&cert, &ca, None).unwrap_err();
        assert_eq!(e.role(), Some(PemRole::Key), "{e}");
        let e = server_config(&cert, &key, Some(&junk)).unwrap_err();
        assert_eq!(e.role(), Some(PemRole::Ca), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, _) = files(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (_, _, other_key) = files(other.path());
        let e = server_config(&cert, &other_key, None).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn handshake_failures_in_gos_words() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            go_error_text(&e),
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
        let e = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(go_error_text(&e), "remote error: tls: certificate required");
    }

    #[test]
    fn go_io_text_drops_rusts_suffix() {
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(go_io_text(&e), "permission denied");
    }
}
