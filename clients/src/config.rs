//! Connection options shared by the producer, the consumer and the admin
//! client: where the cluster is, who we are, how long to wait, and how to
//! secure the connection.
//!
//! Defaults follow the Java client where it has one (`request.timeout.ms`
//! 30 s, `retry.backoff.ms` 100 ms, 5 requests in flight per connection).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Options for every connection a client opens.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` entries tried in order until one answers Metadata.
    pub bootstrap: Vec<String>,
    /// Sent in every request header; shows up in broker logs and quotas.
    pub client_id: String,
    /// Time to open a connection: TCP, TLS, ApiVersions and SASL together.
    pub connect_timeout: Duration,
    /// Time a request may wait for its response (long-poll fetches add their
    /// `max_wait` on top).
    pub request_timeout: Duration,
    /// Requests pipelined on one connection before callers wait.
    pub max_in_flight_per_connection: usize,
    /// Largest response frame accepted; bigger announcements are treated as
    /// garbage and close the connection.
    pub max_response_bytes: usize,
    /// Pause between attempts of a retriable request.
    pub retry_backoff: Duration,
    /// Cached metadata older than this is refreshed before use.
    pub metadata_max_age: Duration,
    /// TLS, if the listener speaks it.
    pub tls: Option<TlsConfig>,
    /// SASL, if the listener requires it.
    pub sasl: Option<SaslConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap: vec!["127.0.0.1:9092".to_owned()],
            client_id: "starlog-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight_per_connection: 5,
            max_response_bytes: 256 * 1024 * 1024,
            retry_backoff: Duration::from_millis(100),
            metadata_max_age: Duration::from_secs(300),
            tls: None,
            sasl: None,
        }
    }
}

impl ClientConfig {
    /// A configuration for one bootstrap list (`"host:port,host:port"`).
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            ..Self::default()
        }
    }

    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), crate::ClientError> {
        let bad = |m: &str| Err(crate::ClientError::Config(m.to_owned()));
        if self.bootstrap.is_empty() {
            return bad("bootstrap list is empty");
        }
        for b in &self.bootstrap {
            if crate::address::split_host_port(b).is_none() {
                return Err(crate::ClientError::Config(format!(
                    "bootstrap entry {b:?} is not host:port"
                )));
            }
        }
        if self.max_in_flight_per_connection == 0 {
            return bad("max_in_flight_per_connection must be at least 1");
        }
        if self.max_response_bytes < 1024 {
            return bad("max_response_bytes must be at least 1024");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("timeouts must be positive");
        }
        if let Some(s) = &self.sasl {
            if s.username.is_empty() {
                return bad("SASL username is empty");
            }
        }
        Ok(())
    }
}

/// TLS options (rustls).
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificates to trust; `None` trusts the Mozilla root set
    /// (`webpki-roots`).
    pub ca_pem: Option<Vec<u8>>,
    /// Name to verify in the server certificate instead of the host part of
    /// the address dialed.
    pub server_name: Option<String>,
    /// A fully built rustls configuration, overriding the two fields above
    /// (client certificates, custom verifiers).
    pub custom: Option<Arc<rustls::ClientConfig>>,
}

impl TlsConfig {
    /// Trust exactly the certificates in `pem`.
    pub fn with_ca_pem(pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: Some(pem.into()),
            server_name: None,
            custom: None,
        }
    }

    /// Trust the public web PKI roots.
    pub fn public_roots() -> Self {
        Self {
            ca_pem: None,
            server_name: None,
            custom: None,
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("server_name", &self.server_name)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

/// SASL mechanisms this client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// RFC 4616; only safe over TLS.
    Plain,
    /// RFC 5802 / 7677 with SHA-256.
    ScramSha256,
    /// RFC 5802 with SHA-512 (what most hosted Kafka services require).
    ScramSha512,
}

impl SaslMechanism {
    /// The name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials.
#[derive(Clone)]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password (never printed).
    pub password: String,
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_list_is_split_and_trimmed() {
        let c = ClientConfig::new(" a:1, b:2 ,,");
        assert_eq!(c.bootstrap, vec!["a:1", "b:2"]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(ClientConfig::new("").validate().is_err());
        assert!(ClientConfig::new("nohostport").validate().is_err());
        assert!(ClientConfig::new("h:notaport").validate().is_err());
        let mut c = ClientConfig::new("h:1");
        c.max_in_flight_per_connection = 0;
        assert!(c.validate().is_err());
        let mut c = ClientConfig::new("h:1");
        c.request_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn password_is_not_printed() {
        let s = SaslConfig {
            mechanism: SaslMechanism::Plain,
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
