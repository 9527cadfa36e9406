//! The rustls client configuration of the database connections: the CA
//! file's certificates when `ca` is given, the web PKI roots otherwise, on
//! the `ring` provider (no OpenSSL).

use std::path::Path;
use std::sync::Arc;

use super::backend::DbError;

/// Reads the certificates of a PEM file.
pub(crate) fn ca_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, DbError> {
    let pem = std::fs::read(path)
        .map_err(|e| DbError::Tls(format!("cannot read CA file {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DbError::Tls(format!("CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(DbError::Tls(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A client configuration trusting `ca` (or the web PKI roots).
pub(crate) fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in ca_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| DbError::Tls(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DbError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}
