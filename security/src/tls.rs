//! TLS configuration from PEM files, with rustls on the `ring` provider.
//!
//! * [`TlsSettings`] is the YAML shape of a TLS server (a listener's `tls:`):
//!   certificate chain, private key, and optionally the CA that client
//!   certificates must chain to (mTLS), whether a client certificate is
//!   requested or required, and how the principal is read from it.
//! * [`ServerTls`] holds the current [`rustls::ServerConfig`] built from those
//!   files; [`ServerTls::reload`] re-reads them and swaps the configuration
//!   atomically (connections already open keep theirs; a broken file leaves
//!   the old configuration in place). [`ServerTls::principal`] names the
//!   client of a connection from its verified certificate.
//! * [`ClientTlsSettings`] and [`client_config`]: a broker dialing another
//!   broker (the cluster CA, and its own certificate for mutual TLS).
//!
//! Certificate checks (expiry, not-yet-valid, chain to the configured CA) are
//! rustls's own (webpki); this module only loads files and reads the
//! subject of a certificate the verifier already accepted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Deserialize;

use crate::Principal;

/// Whether a TLS server asks its clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for (Kafka's `ssl.client.auth=none`).
    #[default]
    None,
    /// A certificate is asked for; a client without one is still accepted
    /// (its principal then comes from SASL, or is `User:ANONYMOUS`), but a
    /// certificate that does not verify is refused.
    Requested,
    /// A valid client certificate is required (mutual TLS).
    Required,
}

/// How the principal is read from a client certificate's subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertPrincipal {
    /// The whole subject distinguished name as Kafka prints it (RFC 2253,
    /// most specific first): `User:CN=x,OU=y,O=z`.
    #[default]
    Dn,
    /// The subject's common name only: `User:x`.
    Cn,
}

/// A TLS server's settings (the `tls:` of a listener in the YAML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file with the CA certificates client certificates must chain to.
    /// Needed when `client_auth` is `requested` or `required`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is asked for.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How the principal is read from a client certificate.
    #[serde(default)]
    pub principal: CertPrincipal,
}

/// A TLS client's settings: a broker dialing another broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// PEM file with the CA certificates the server must chain to.
    pub ca: PathBuf,
    /// PEM file with this client's certificate chain (mutual TLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM file with this client's private key (with `cert`).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Why a TLS configuration could not be built; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid PEM, or holds no item of the kind expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from the CA file.
    #[error("{}: {source}", path.display())]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate and key do not make a usable identity (for example,
    /// the key does not match the certificate).
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// A setting is inconsistent (for example `client_auth: required`
    /// without `client_ca`).
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// A TLS server configuration loaded from PEM files, reloadable in place.
pub struct ServerTls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// The modification times of the files the current config was built
    /// from (cert, key, client CA).
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.settings.cert)
            .field("key", &self.settings.key)
            .field("client_ca", &self.settings.client_ca)
            .field("client_auth", &self.settings.client_auth)
            .field("principal", &self.settings.principal)
            .finish()
    }
}

impl ServerTls {
    /// Loads the PEM files named in `settings` (relative paths are taken
    /// against `base_dir`, normally the YAML file's directory).
    pub fn load(settings: &TlsSettings, base_dir: &Path) -> Result<Self, TlsError> {
        let settings = TlsSettings {
            cert: resolve(base_dir, &settings.cert),
            key: resolve(base_dir, &settings.key),
            client_ca: settings.client_ca.as_deref().map(|p| resolve(base_dir, p)),
            ..settings.clone()
        };
        if settings.client_auth != ClientAuth::None && settings.client_ca.is_none() {
            return Err(TlsError::Settings(
                "client_auth `requested` or `required` needs `client_ca`".to_string(),
            ));
        }
        let stamps = stamps(&settings);
        let config = build_server_config(&settings)?;
        Ok(Self {
            settings,
            current: RwLock::new(config),
            stamps: Mutex::new(stamps),
        })
    }

    /// The settings, with paths resolved.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The current configuration (an `Arc` clone: take it per connection).
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the PEM files and swaps the configuration; on error the old
    /// one stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.settings);
        let config = build_server_config(&self.settings)?;
        match self.current.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        match self.stamps.lock() {
            Ok(mut guard) => *guard = stamps,
            Err(poisoned) => *poisoned.into_inner() = stamps,
        }
        Ok(())
    }

    /// Reloads when a file's modification time changed since the last load.
    /// `Ok(true)` when the configuration was swapped.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamps(&self.settings);
        let changed = match self.stamps.lock() {
            Ok(guard) => *guard != now,
            Err(poisoned) => *poisoned.into_inner() != now,
        };
        if !changed {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// The principal a client certificate names (`peer_certs` as rustls
    /// gives them after the handshake, leaf first), read as `principal:`
    /// says. `None` without a certificate or when its subject cannot be
    /// read (the verifier has already checked the chain).
    pub fn principal(&self, peer_certs: Option<&[CertificateDer<'_>]>) -> Option<Principal> {
        let leaf = peer_certs?.first()?;
        cert_principal(leaf, self.settings.principal)
    }
}

/// The principal of a certificate (its subject as DN or CN).
pub fn cert_principal(cert: &CertificateDer<'_>, how: CertPrincipal) -> Option<Principal> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = match how {
        CertPrincipal::Dn => rfc2253(subject),
        CertPrincipal::Cn => subject
            .iter_common_name()
            .next()
            .map(|cn| attribute_value(cn))?,
    };
    if name.is_empty() {
        return None;
    }
    Some(Principal::user(name))
}

/// A TLS client configuration for a broker dialing another broker: the
/// server must chain to `ca`; with `cert` and `key` the client presents its
/// own certificate (mutual TLS).
pub fn client_config(
    s: &ClientTlsSettings,
    base_dir: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = resolve(base_dir, &s.ca);
    let roots = load_roots(&ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::BadCa {
            path: ca.clone(),
            source,
        })?
        .with_root_certificates(roots);
    let config = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => {
            let cert = resolve(base_dir, cert);
            let key = resolve(base_dir, key);
            let chain = load_certs(&cert)?;
            let private = load_key(&key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsError::Identity { cert, key, source })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Settings(
                "a client certificate needs both `cert` and `key`".to_string(),
            ))
        }
    };
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's provider: ring's suites with AES-128-GCM first. A broker
/// encrypts every byte it serves (a fetch of a 40-100 KB alert per
/// consumer group), and AES-128-GCM costs about a third less CPU per byte
/// than AES-256-GCM with the same AES-NI; the server's order is used
/// (`ignore_client_order`), since OpenSSL clients list AES-256 first.
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn stamps(s: &TlsSettings) -> Vec<Option<SystemTime>> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut v = vec![mtime(&s.cert), mtime(&s.key)];
    if let Some(ca) = &s.client_ca {
        v.push(mtime(ca));
    }
    v
}

fn build_server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs(&s.cert)?;
    let key = load_key(&s.key)?;
    let verifier = match (&s.client_ca, s.client_auth) {
        (_, ClientAuth::None) => WebPkiClientVerifier::no_client_auth(),
        (Some(ca), auth) => {
            let roots = Arc::new(load_roots(ca)?);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let builder = if auth == ClientAuth::Requested {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|source| TlsError::Verifier {
                path: ca.clone(),
                source,
            })?
        }
        (None, _) => {
            return Err(TlsError::Settings(
                "client_auth `requested` or `required` needs `client_ca`".to_string(),
            ))
        }
    };
    let mut config = ServerConfig::builder_with_provider(server_provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Identity {
            cert: s.cert.clone(),
            key: s.key.clone(),
            source,
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Identity {
            cert: s.cert.clone(),
            key: s.key.clone(),
            source,
        })?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE in the file".to_string(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY in the file".to_string(),
            e => format!("bad PEM: {e}"),
        },
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// The subject DN as Java's `X500Principal.getName()` (RFC 2253) prints it,
/// which is what Kafka's SSL principal is: RDNs most specific first, joined
/// by `,`, multi-valued RDNs joined by `+`, special characters escaped.
/// Attribute types outside RFC 2253's short names are printed as dotted
/// OIDs with `#` and the hex of the value's DER encoding, as Java does;
/// values that are not strings likewise.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        // Types without an RFC 2253 keyword: the dotted OID
                        // and `#` with the hex of the value's DER encoding.
                        _ => return format!("{oid}={}", der_hex(atv.attr_value())),
                    };
                    format!("{key}={}", attribute_value(atv))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute_value(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    let any = atv.attr_value();
    match atv.as_str() {
        Ok(s) => escape_rfc2253(s),
        // BMPString (UTF-16BE), which Java decodes too.
        Err(_) if any.header.tag().0 == 30 && any.data.len() % 2 == 0 => {
            let units = any
                .data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            match char::decode_utf16(units).collect::<Result<String, _>>() {
                Ok(s) => escape_rfc2253(&s),
                Err(_) => der_hex(any),
            }
        }
        Err(_) => der_hex(any),
    }
}

/// `#` and the hex of a value's DER encoding (tag, length, content), as
/// RFC 2253 writes a value of a type it has no keyword for.
fn der_hex(any: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    let mut der = Vec::with_capacity(any.data.len() + 6);
    let class = any.header.class() as u8;
    let tag = any.header.tag().0;
    match u8::try_from(tag) {
        Ok(t) if t < 31 => {
            der.push((class << 6) | (u8::from(any.header.is_constructed()) << 5) | t)
        }
        // A high tag number: its raw encoding, as read.
        _ => der.extend_from_slice(any.header.raw_tag().unwrap_or_default()),
    }
    let len = any.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend_from_slice(&bytes);
    }
    der.extend_from_slice(any.data);
    let mut out = String::from("#");
    for b in der {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn escape_rfc2253(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
