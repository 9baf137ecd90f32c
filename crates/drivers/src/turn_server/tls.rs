//! TLS for the stream listeners (RFC 8656 §3.1: TURN over TLS): the server configuration
//! from PEM files, with rustls and its ring provider.

use rustls::crypto::ring;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A rustls server configuration from a PEM certificate chain (the server's certificate
/// first, then its intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1), with
/// TLS 1.2 and 1.3 and no client authentication. No ALPN protocol is set, so clients that
/// offer one (RFC 7443's `stun.turn`, or none) are all accepted.
///
/// Fails with a message that names the file when a file cannot be read, holds no
/// certificate or key, or the key does not match the certificate.
pub fn tls_config_from_pem(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad = |path: &Path, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| bad(cert, format!("cannot read a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("cannot read a PEM private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(key, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("floe-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.join("missing.pem");
        let err = tls_config_from_pem(&missing, &empty).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = tls_config_from_pem(&empty, &empty).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
