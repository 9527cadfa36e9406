//! Security for the bench: the client side (librdkafka's SASL and TLS
//! properties) and a spawned Starlog with a secured listener.
//!
//! A broker given with `--bootstrap` is reached with the `ClientSecurity`
//! the command line names. A Starlog the bench starts itself with a secured
//! listener (`SecuredStarlog`) gets a test CA and a server certificate for
//! 127.0.0.1 (made once per invocation, in a temporary folder under the data
//! root, removed with it), one listener of the chosen protocol in its YAML,
//! and, for SASL, a SCRAM user written into each run's fresh data directory
//! before the broker starts (`LocalSecurityStore::change_now` on
//! `data_dir/__meta`, the offline bootstrap `starlog users set` uses). The
//! password is random per invocation and never appears in a command line or
//! report. Everything else is the plaintext arm's configuration, so the
//! `security` comparison differs only in the listener.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use starlog_broker::security::{LocalSecurityStore, Policy};
use starlog_security::{ScramCredential, ScramMechanism, SecurityChange, DEFAULT_ITERATIONS};
use starlog_testkit::pki::{LeafFiles, TestCa};

use crate::error::BenchError;

/// A Kafka listener's security protocol, in Kafka's spelling (the
/// broker's own type: the bench sets up the listeners it names).
pub use starlog_broker::listener::SecurityProtocol as Protocol;

/// What a client needs to reach a listener. `Debug` leaves the password out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    /// The listener's protocol.
    pub protocol: Protocol,
    /// The SASL mechanism (`SCRAM-SHA-512`, `SCRAM-SHA-256`, `PLAIN`).
    pub mechanism: String,
    /// The SASL user.
    pub username: Option<String>,
    /// The SASL password.
    pub password: Option<String>,
    /// The CA certificate (PEM) that signed the broker's certificate; none:
    /// the system's trust store.
    pub ca_location: Option<PathBuf>,
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ca_location", &self.ca_location)
            .finish()
    }
}

impl ClientSecurity {
    /// Checks that a SASL protocol has a user and a password.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.protocol.sasl() && (self.username.is_none() || self.password.is_none()) {
            return Err(BenchError::Security {
                what: format!("{} client", self.protocol),
                reason: "a SASL protocol needs a user name and a password".into(),
            });
        }
        Ok(())
    }

    /// librdkafka's properties for it (none for PLAINTEXT).
    pub fn rdkafka_settings(&self) -> Vec<(String, String)> {
        let mut s = Vec::new();
        if self.protocol == Protocol::Plaintext {
            return s;
        }
        let mut set = |k: &str, v: &str| s.push((k.to_string(), v.to_string()));
        set("security.protocol", self.protocol.name());
        if self.protocol.sasl() {
            set("sasl.mechanism", &self.mechanism);
            if let Some(u) = &self.username {
                set("sasl.username", u);
            }
            if let Some(p) = &self.password {
                set("sasl.password", p);
            }
        }
        if self.protocol.tls() {
            if let Some(ca) = &self.ca_location {
                set("ssl.ca.location", &ca.display().to_string());
            }
        }
        s
    }

    /// For reports: protocol, mechanism, user; never the password.
    pub fn describe(&self) -> String {
        match (self.protocol.sasl(), &self.username) {
            (true, Some(u)) => format!("{} {} as {u}", self.protocol, self.mechanism),
            (true, None) => format!("{} {}", self.protocol, self.mechanism),
            (false, _) => self.protocol.name().to_string(),
        }
    }
}

/// The user the bench logs in as on a Starlog it secures itself.
pub const BENCH_USER: &str = "bench";

/// A test CA, a server certificate and a SCRAM user for spawned Starlogs
/// with a secured listener (see the module documentation).
#[derive(Debug)]
pub struct SecuredStarlog {
    protocol: Protocol,
    mechanism: ScramMechanism,
    password: String,
    ca_pem: Option<PathBuf>,
    server: Option<LeafFiles>,
    /// Holds the CA and certificate files; removed on drop.
    _dir: tempfile::TempDir,
}

impl SecuredStarlog {
    /// Certificates (for a TLS protocol) under a temporary folder in
    /// `data_root`, and a random password for `BENCH_USER` (for a SASL one,
    /// with `mechanism`, a SCRAM mechanism).
    pub fn new(protocol: Protocol, mechanism: &str, data_root: &Path) -> Result<Self, BenchError> {
        let fail = |what: &str, reason: String| BenchError::Security {
            what: what.to_string(),
            reason,
        };
        if protocol == Protocol::Plaintext {
            return Err(fail(
                "secured listener",
                "PLAINTEXT is not secured: use the ordinary spawned Starlog".into(),
            ));
        }
        let mechanism = ScramMechanism::parse(mechanism).map_err(|e| {
            fail(
                "SASL mechanism",
                format!("{e} (the bench seeds SCRAM users only)"),
            )
        })?;
        std::fs::create_dir_all(data_root)
            .map_err(|e| fail("certificates", format!("{}: {e}", data_root.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("bench-pki-")
            .tempdir_in(data_root)
            .map_err(|e| fail("certificates", format!("temporary directory: {e}")))?;
        let (ca_pem, server) = if protocol.tls() {
            let pki = |e: starlog_testkit::pki::PkiError| fail("certificates", e.to_string());
            let ca = TestCa::new("starlog-bench test CA").map_err(pki)?;
            let ca_pem = ca.write_cert(&dir.path().join("ca.pem")).map_err(pki)?;
            let server = ca.write_leaf(dir.path(), "broker", "broker").map_err(pki)?;
            (Some(ca_pem), Some(server))
        } else {
            (None, None)
        };
        Ok(Self {
            protocol,
            mechanism,
            password: random_password().map_err(|e| fail("password", e.to_string()))?,
            ca_pem,
            server,
            _dir: dir,
        })
    }

    /// The protocol of its listener.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The `listeners:` section of the broker's YAML: one listener at
    /// `{host}:{port}` (filled in per run by `spawned::CommandTarget`).
    pub fn listeners_yaml(&self) -> String {
        let mut s = format!(
            "listeners:\n  - name: bench\n    listen: \"{{host}}:{{port}}\"\n    security: {}\n",
            self.protocol
        );
        if self.protocol.sasl() {
            s.push_str(&format!(
                "    sasl_mechanisms: [{}]\n",
                self.mechanism.name()
            ));
        }
        if let Some(leaf) = &self.server {
            s.push_str(&format!(
                "    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
                leaf.cert.display(),
                leaf.key.display()
            ));
        }
        s
    }

    /// Writes `BENCH_USER`'s credential into `data_dir/__meta` (before the
    /// broker's first start); nothing for a protocol without SASL.
    pub fn seed_user(&self, data_dir: &Path) -> Result<(), BenchError> {
        if !self.protocol.sasl() {
            return Ok(());
        }
        let fail = |reason: String| BenchError::Security {
            what: format!("user {BENCH_USER} in {}", data_dir.display()),
            reason,
        };
        // The spawned broker's own policy: no super users, everything
        // allowed when no ACL matches (the bench writes no ACLs).
        let policy = Policy {
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: true,
        };
        let store = LocalSecurityStore::open(&data_dir.join("__meta"), policy)
            .map_err(|e| fail(e.to_string()))?;
        let credential = ScramCredential::new(self.mechanism, &self.password, DEFAULT_ITERATIONS)
            .map_err(|e| fail(e.to_string()))?;
        store
            .change_now(&SecurityChange::SetCredential {
                user: BENCH_USER.into(),
                credential,
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// How the bench's clients reach it.
    pub fn client(&self) -> ClientSecurity {
        ClientSecurity {
            protocol: self.protocol,
            mechanism: self.mechanism.name().to_string(),
            username: self.protocol.sasl().then(|| BENCH_USER.to_string()),
            password: self.protocol.sasl().then(|| self.password.clone()),
            ca_location: self.ca_pem.clone(),
        }
    }
}

/// 24 random bytes from the kernel, hex.
fn random_password() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_in_kafka_spelling() {
        assert_eq!(Protocol::parse("SASL_SSL"), Ok(Protocol::SaslSsl));
        assert_eq!(
            Protocol::parse("sasl-plaintext"),
            Ok(Protocol::SaslPlaintext)
        );
        assert_eq!(Protocol::parse("ssl"), Ok(Protocol::Ssl));
        assert!(Protocol::parse("TLS").unwrap_err().contains("unknown"));
        assert!(Protocol::SaslSsl.sasl() && Protocol::SaslSsl.tls());
        assert!(!Protocol::Plaintext.sasl() && !Protocol::Plaintext.tls());
    }

    #[test]
    fn client_settings_name_everything_but_show_no_password() {
        let c = ClientSecurity {
            protocol: Protocol::SaslSsl,
            mechanism: "SCRAM-SHA-512".into(),
            username: Some("u".into()),
            password: Some("secret".into()),
            ca_location: Some(PathBuf::from("ca.pem")),
        };
        let s = c.rdkafka_settings();
        let get = |k: &str| s.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("u"));
        assert_eq!(get("sasl.password"), Some("secret"));
        assert_eq!(get("ssl.ca.location"), Some("ca.pem"));
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!c.describe().contains("secret"));
        assert!(ClientSecurity::default().rdkafka_settings().is_empty());
        let no_user = ClientSecurity {
            username: None,
            ..c
        };
        assert!(no_user.validate().is_err());
    }

    #[test]
    fn a_sasl_ssl_starlog_has_certificates_a_listener_and_a_seeded_user() {
        let root = tempfile::tempdir().unwrap();
        let s = SecuredStarlog::new(Protocol::SaslSsl, "SCRAM-SHA-512", root.path()).unwrap();
        let yaml = s.listeners_yaml();
        assert!(yaml.contains("security: SASL_SSL"), "{yaml}");
        assert!(yaml.contains("sasl_mechanisms: [SCRAM-SHA-512]"), "{yaml}");
        assert!(yaml.contains("tls: { cert: "), "{yaml}");
        let client = s.client();
        assert!(client.ca_location.as_ref().unwrap().is_file());
        assert_eq!(client.username.as_deref(), Some(BENCH_USER));
        let data = root.path().join("data");
        s.seed_user(&data).unwrap();
        let state = starlog_broker::security::read_state(
            &data
                .join("__meta")
                .join(starlog_broker::security::SECURITY_FILE),
        )
        .unwrap();
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(BENCH_USER), "{text}");
        assert!(!text.contains(client.password.as_deref().unwrap()));
        assert!(SecuredStarlog::new(Protocol::SaslSsl, "PLAIN", root.path()).is_err());
        assert!(SecuredStarlog::new(Protocol::Plaintext, "SCRAM-SHA-512", root.path()).is_err());
    }
}
