//! TLS for connections to TURN servers (RFC 8656 §3.1: TURN over TLS, often on port 443
//! where nothing else gets out): trust anchors and server names, with rustls and its `ring`
//! provider.
//!
//! The platform's trust store is not consulted: a driver trusts exactly the certificate
//! authorities it is given, as a PEM file ([`client_config_from_pem`]) or as a ready
//! [`rustls::ClientConfig`]. The server's certificate is checked against a DNS name when one
//! is given, else against the server's IP address (an `iPAddress` subjectAltName).
//!
//! A server certificate that is itself in the PEM file (a self-signed certificate, as
//! `openssl req -x509` makes them, is marked as a CA) is accepted as pinned, once its
//! validity period and its name have been checked: webpki alone would refuse a CA
//! certificate as the server's own (`CaUsedAsEndEntity`).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// How a TLS client trusts a TURN server: the rustls configuration (trust anchors, protocol
/// versions) and, optionally, the name to send in SNI and to verify the certificate against.
#[derive(Clone, Debug)]
pub struct TlsTrust {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl TlsTrust {
    /// Trusts the certificate authorities of a PEM file (one or more `CERTIFICATE` blocks;
    /// a self-signed server certificate is its own authority).
    pub fn from_pem_file(path: impl AsRef<Path>) -> io::Result<TlsTrust> {
        Ok(TlsTrust::from_config(client_config_from_pem(path)?))
    }

    /// Uses a rustls configuration as it is (its own roots, verifier and versions).
    pub fn from_config(config: impl Into<Arc<ClientConfig>>) -> TlsTrust {
        TlsTrust {
            config: config.into(),
            server_name: None,
        }
    }

    /// The DNS name to send in SNI and to find in the certificate. Without one the
    /// certificate must name the server's IP address.
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsTrust {
        self.server_name = Some(name.into());
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name the certificate is checked against, if not the address.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) that trusts exactly the
/// certificates in the PEM file at `path`.
pub fn client_config_from_pem(path: impl AsRef<Path>) -> io::Result<Arc<ClientConfig>> {
    let path = path.as_ref();
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!("{}: no certificate", path.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let verifier = Arc::new(PinningVerifier {
        webpki,
        pinned: certs,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// webpki's verification, plus the pinned case: a server certificate found as it is among
/// the trust anchors, refused by webpki only for being a CA, is accepted once its name
/// matches (webpki has checked its validity period before it got to the CA flag).
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match result {
            Err(e) if is_ca_used_as_end_entity(&e) && self.pinned.contains(end_entity) => {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// rustls reports webpki's `CaUsedAsEndEntity` as an "other" certificate error.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if format!("{other:?}").contains("CaUsedAsEndEntity")
    )
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> io::Error {
    let kind = match e {
        rustls_pki_types::pem::Error::Io(ref e) => e.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, format!("{}: {e}", path.display()))
}

/// The name a TLS connection to `server` verifies: `name` if given (a DNS name, or an IP
/// address written out), else the server's IP address.
pub(crate) fn server_name(
    name: Option<&str>,
    server: SocketAddr,
) -> io::Result<ServerName<'static>> {
    match name {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("server name {n:?}: {e}"),
            )
        }),
        None => Ok(ServerName::IpAddress(server.ip().into())),
    }
}

/// A rustls error as an I/O error (a failed handshake or certificate check).
pub(crate) fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_names_or_the_address() {
        let server: SocketAddr = "192.0.2.1:443".parse().unwrap();
        assert!(matches!(
            server_name(None, server).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name(Some("turn.example.org"), server).unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name(Some("not a name!"), server).is_err());
    }

    #[test]
    fn a_missing_or_empty_pem_file_is_an_error() {
        let missing = client_config_from_pem("/nonexistent/ca.pem").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
        let dir = std::env::temp_dir().join(format!("floe-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let err = client_config_from_pem(&empty).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
