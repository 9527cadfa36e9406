//! The byte stream under a connection: plain TCP or TLS (rustls) over TCP.
//!
//! Both are turned into one boxed `AsyncRead + AsyncWrite` so the connection
//! task does not care which it has.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::address::split_host_port;
use crate::config::TlsConfig;
use crate::error::{ClientError, Result};

/// A bidirectional byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Opens TCP to `addr` and, when `tls` is set, runs the TLS handshake.
pub async fn open(addr: &str, tls: Option<&TlsConfig>) -> Result<Box<dyn Stream>> {
    let (host, port) = split_host_port(addr)
        .ok_or_else(|| ClientError::Config(format!("address {addr:?} is not host:port")))?;
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| ClientError::Connect {
            addr: addr.to_owned(),
            source: Arc::new(e),
        })?;
    // Small requests (heartbeats, commits) must not wait for Nagle.
    tcp.set_nodelay(true).map_err(|e| ClientError::Connect {
        addr: addr.to_owned(),
        source: Arc::new(e),
    })?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let rustls_config = rustls_config(tls, addr)?;
    let name = tls.server_name.as_deref().unwrap_or(host).to_owned();
    let server_name = ServerName::try_from(name.clone()).map_err(|e| ClientError::Tls {
        addr: addr.to_owned(),
        reason: format!("{name:?} is not a valid server name: {e}"),
    })?;
    let connector = tokio_rustls::TlsConnector::from(rustls_config);
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| ClientError::Tls {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Box::new(stream))
}

/// Builds the rustls client configuration from the options.
fn rustls_config(tls: &TlsConfig, addr: &str) -> Result<Arc<rustls::ClientConfig>> {
    if let Some(custom) = &tls.custom {
        return Ok(Arc::clone(custom));
    }
    let tls_err = |reason: String| ClientError::Tls {
        addr: addr.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| tls_err(format!("CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("CA certificate refused: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(tls_err("CA PEM holds no certificate".to_owned()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_bad_ca_pem_is_a_tls_error() {
        let e = rustls_config(&TlsConfig::with_ca_pem(b"nothing".to_vec()), "h:1");
        assert!(matches!(e, Err(ClientError::Tls { .. })), "{e:?}");
    }
}
