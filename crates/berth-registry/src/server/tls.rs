//! TLS for the registry: berth-tls's server configuration (no client certificates) as a
//! tokio acceptor.

use std::path::Path;
use std::sync::Arc;

use super::ServerError;

/// Builds the acceptor for `cert` (PEM, leaf first) and `key` (PEM: PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    let config =
        berth_tls::server_config(cert, key, None).map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
