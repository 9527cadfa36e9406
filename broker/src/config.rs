//! Broker configuration: the YAML file `starlog serve --config` reads, and the
//! embedded default used when no file is given.
//!
//! Every field has a default, so an empty file (or none) is a working broker on
//! `127.0.0.1:9092` with its data in `./starlog-data`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use starlog_storage::{FlushPolicy, LogConfig};

/// Errors found while loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML did not parse or had a field of the wrong type.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with the line and field at fault.
        source: serde_yaml::Error,
    },
    /// A value at a computed YAML path (`listeners[1].tls`) is not allowed.
    #[error("invalid config value `{path}`: {reason}")]
    InvalidAt {
        /// The YAML path of the field.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A value parsed but is not allowed.
    #[error("invalid config value `{field}`: {reason}")]
    Invalid {
        /// The YAML path of the field.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

/// The whole broker configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id, as reported in Metadata. In YAML a number, or
    /// `auto`: `STARLOG_NODE_ID`, else the host name's ordinal plus one
    /// (`starlog-2` is node 3; see `cluster::node_identity`).
    #[serde(deserialize_with = "crate::cluster::node_identity::deserialize")]
    pub node_id: i32,
    /// Address the Kafka listener binds to, when there is no `listeners:`
    /// list (one plaintext listener named `PLAINTEXT`).
    pub listen: SocketAddr,
    /// The Kafka listeners, each with its security protocol (see
    /// `listener.rs`); empty: one plaintext listener at `listen`.
    pub listeners: Vec<crate::listener::ListenerSettings>,
    /// Host name advertised to clients in Metadata; defaults to the listen IP.
    pub advertised_host: Option<String>,
    /// Port advertised to clients; defaults to the bound port.
    pub advertised_port: Option<u16>,
    /// Where partitions and metadata live.
    pub data_dir: PathBuf,
    /// Name reported as the cluster id.
    pub cluster_id: String,
    /// Defaults for every topic's log (overridable per topic).
    pub log: LogSettings,
    /// Topic defaults and auto-creation.
    pub topics: TopicSettings,
    /// Limits that protect the broker from clients.
    pub limits: Limits,
    /// Group coordinator settings.
    pub groups: GroupSettings,
    /// The Confluent-compatible schema registry.
    pub schema_registry: RegistrySettings,
    /// The HTTP listener (`/metrics`, `/cluster/*`, the registry's routes).
    /// Absent: the listener follows `schema_registry` (see
    /// [`BrokerConfig::http_listen`]).
    pub http: Option<HttpSettings>,
    /// In-broker processor pipelines: each entry is `{ file: pipeline.yaml }`
    /// or an inline component (the `component:` mapping of a pipeline file).
    pub pipelines: Vec<serde_yaml::Value>,
    /// Replication: the peers of a Raft cluster. Absent: a single unreplicated broker.
    pub cluster: Option<crate::cluster::config::ClusterSettings>,
    /// Who may do what: super users and the default when no ACL matches.
    pub security: SecuritySettings,
    /// Mirrors run inside the broker: `mirror.yaml` files, kept as paths; the
    /// program that starts the broker runs them (see `extensions::MirrorLauncher`).
    pub mirrors: Vec<PathBuf>,
    /// Directory that relative paths in `pipelines` are resolved against
    /// (the config file's directory; not a YAML key).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Schema registry settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// Serve the registry.
    pub enabled: bool,
    /// Its HTTP listener.
    pub listen: SocketAddr,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

/// The HTTP listener's own settings (the `http:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Its address; absent: `schema_registry.listen`.
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS with these PEM files (and, with `client_auth`, take the
    /// principal from the client's certificate). Absent: plain HTTP.
    pub tls: Option<starlog_security::tls::TlsSettings>,
    /// `none` (the default): clients are `User:ANONYMOUS` (or their
    /// certificate's principal); `basic`: HTTP basic authentication against
    /// the SCRAM users.
    pub authentication: HttpAuthentication,
    /// Let GETs without credentials (nor a client certificate) through
    /// unchecked: read-only anonymous access, as Rubin's registry allows.
    pub anonymous_read: bool,
}

/// How HTTP clients authenticate (`http.authentication`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuthentication {
    /// No authentication: `User:ANONYMOUS`, or the client certificate's
    /// principal over mutual TLS.
    #[default]
    None,
    /// HTTP basic authentication, checked against the SCRAM users
    /// (SCRAM-SHA-512's credential, else SCRAM-SHA-256's).
    Basic,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            tls: None,
            authentication: HttpAuthentication::None,
            anonymous_read: false,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            node_id: 0,
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            listeners: Vec::new(),
            advertised_host: None,
            advertised_port: None,
            data_dir: PathBuf::from("starlog-data"),
            cluster_id: "starlog".to_string(),
            log: LogSettings::default(),
            topics: TopicSettings::default(),
            limits: Limits::default(),
            groups: GroupSettings::default(),
            schema_registry: RegistrySettings::default(),
            http: None,
            pipelines: Vec::new(),
            cluster: None,
            mirrors: Vec::new(),
            security: SecuritySettings::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// The `security:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// Principals allowed everything (`User:admin`).
    pub super_users: Vec<starlog_security::Principal>,
    /// What happens when no ACL names a resource: true (the default) keeps
    /// a broker without ACLs open, as Kafka does with this setting.
    pub allow_everyone_if_no_acl_found: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: true,
        }
    }
}

impl SecuritySettings {
    /// The ACL policy these settings give.
    pub fn policy(&self) -> crate::security::Policy {
        crate::security::Policy {
            super_users: self.super_users.clone(),
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }
    }
}

/// Log defaults: segment size, retention, flush policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `always`, `never`, or a number of milliseconds between group fsyncs.
    pub flush: FlushSetting,
    /// Segment size before a roll.
    pub segment_bytes: u64,
    /// Segment age before a roll.
    pub segment_ms: u64,
    /// Age after which whole segments are deleted; -1 keeps forever.
    pub retention_ms: i64,
    /// Size beyond which the oldest segments are deleted; -1 means no limit.
    pub retention_bytes: i64,
    /// How often the retention task runs.
    pub retention_check_interval_ms: u64,
    /// Largest record batch a producer may send.
    pub max_message_bytes: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        let base = LogConfig::default();
        Self {
            flush: FlushSetting::IntervalMs(5),
            segment_bytes: base.segment_bytes,
            segment_ms: base.segment_ms,
            retention_ms: base
                .retention_ms
                .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)),
            retention_bytes: base
                .retention_bytes
                .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)),
            retention_check_interval_ms: 60_000,
            max_message_bytes: base.max_batch_bytes,
        }
    }
}

/// The flush policy as written in YAML: `always`, `never` or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FlushSetting {
    /// Milliseconds between group fsyncs.
    IntervalMs(u64),
    /// `always` or `never`.
    Named(FlushNamed),
}

/// Named flush policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushNamed {
    /// fsync before every acknowledgement (shared by concurrent appends).
    Always,
    /// Leave flushing to the OS (or to replication).
    Never,
}

impl FlushSetting {
    /// The storage policy this setting names.
    pub fn policy(self) -> FlushPolicy {
        match self {
            FlushSetting::IntervalMs(ms) => FlushPolicy::Interval(Duration::from_millis(ms)),
            FlushSetting::Named(FlushNamed::Always) => FlushPolicy::Always,
            FlushSetting::Named(FlushNamed::Never) => FlushPolicy::Never,
        }
    }
}

/// Topic creation defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSettings {
    /// Create a topic when a client asks Metadata for one that does not exist.
    pub auto_create: bool,
    /// Partitions of an auto-created topic, and of CreateTopics with -1.
    pub default_partitions: i32,
    /// Upper bound on a topic's partition count.
    pub max_partitions: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            auto_create: true,
            default_partitions: 1,
            max_partitions: 10_000,
        }
    }
}

/// Protective limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: u32,
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// A connection idle for this long is closed.
    pub idle_timeout_ms: u64,
    /// Longest a fetch may wait (caps the client's `max_wait_ms`).
    pub max_fetch_wait_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 4096,
            idle_timeout_ms: 600_000,
            max_fetch_wait_ms: 30_000,
        }
    }
}

/// Group coordinator settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSettings {
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
        }
    }
}

impl BrokerConfig {
    /// Reads and validates a YAML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_yaml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })?;
        if let Some(dir) = path.parent() {
            config.base_dir = dir.to_path_buf();
        }
        Ok(config)
    }

    /// Parses and validates YAML text (an empty document is the default).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: BrokerConfig = if text.trim().is_empty() {
            BrokerConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                path: PathBuf::new(),
                source,
            })?
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value (after command-line overrides too).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_string(),
            })
        };
        if self.topics.default_partitions < 1 {
            return invalid("topics.default_partitions", "must be at least 1");
        }
        if self.topics.max_partitions < self.topics.default_partitions {
            return invalid("topics.max_partitions", "must be >= default_partitions");
        }
        if self.log.segment_bytes < 1024 {
            return invalid("log.segment_bytes", "must be at least 1024");
        }
        if self.log.max_message_bytes < 1024 {
            return invalid("log.max_message_bytes", "must be at least 1024");
        }
        if self.limits.max_request_bytes < self.log.max_message_bytes {
            return invalid(
                "limits.max_request_bytes",
                "must be at least log.max_message_bytes",
            );
        }
        if self.groups.min_session_timeout_ms > self.groups.max_session_timeout_ms {
            return invalid(
                "groups.min_session_timeout_ms",
                "must not exceed max_session_timeout_ms",
            );
        }
        if !self.listeners.is_empty() {
            if self.listen != BrokerConfig::default().listen
                || self.advertised_host.is_some()
                || self.advertised_port.is_some()
            {
                return invalid(
                    "listen",
                    "`listen` / `advertised_host` / `advertised_port` describe the one listener of a \
                     file without `listeners:`; with `listeners:`, give each its `listen` and `advertised`",
                );
            }
            crate::listener::validate_all(&self.listeners)
                .map_err(|(path, reason)| ConfigError::InvalidAt { path, reason })?;
        }
        if let Some(cluster) = &self.cluster {
            cluster
                .validate(self.node_id)
                .map_err(|(field, reason)| ConfigError::Invalid { field, reason })?;
        }
        Ok(())
    }

    /// The log configuration every topic starts from.
    pub fn base_log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log.segment_bytes,
            segment_ms: self.log.segment_ms,
            retention_ms: u64::try_from(self.log.retention_ms).ok(),
            retention_bytes: u64::try_from(self.log.retention_bytes).ok(),
            max_batch_bytes: self.log.max_message_bytes,
            flush: self.log.flush.policy(),
            ..LogConfig::default()
        }
    }

    /// Where the HTTP listener binds, or `None` when it is off. With an
    /// `http:` section, that section decides (on when `enabled`, at
    /// `http.listen`, else at `schema_registry.listen`), whether the
    /// registry is enabled or not. Without one, the listener is on exactly
    /// when the registry is, at `schema_registry.listen`.
    pub fn http_listen(&self) -> Option<SocketAddr> {
        match &self.http {
            Some(h) => h
                .enabled
                .then(|| h.listen.unwrap_or(self.schema_registry.listen)),
            None => self
                .schema_registry
                .enabled
                .then_some(self.schema_registry.listen),
        }
    }

    /// Turns the HTTP listener on at `addr` (the `--http` flag).
    pub fn set_http_listen(&mut self, addr: SocketAddr) {
        let mut http = self.http.take().unwrap_or_default();
        http.enabled = true;
        http.listen = Some(addr);
        self.http = Some(http);
    }

    /// The Kafka listeners: the `listeners:` list, or the one plaintext
    /// listener at `listen` of a file without it.
    pub fn kafka_listeners(&self) -> Vec<crate::listener::ListenerSettings> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        let advertised = match (&self.advertised_host, self.advertised_port) {
            (None, None) => None,
            (host, Some(port)) => Some(format!(
                "{}:{port}",
                host.clone().unwrap_or_else(|| self.advertised_host())
            )),
            (Some(host), None) => Some(host.clone()),
        };
        vec![crate::listener::ListenerSettings::plaintext(
            self.listen,
            advertised,
        )]
    }

    /// Moves the first Kafka listener to `addr` (the `--listen` flag).
    pub fn set_listen(&mut self, addr: SocketAddr) {
        match self.listeners.first_mut() {
            Some(first) => first.listen = addr,
            None => self.listen = addr,
        }
    }

    /// Host clients are told to connect to.
    pub fn advertised_host(&self) -> String {
        self.advertised_host
            .clone()
            .unwrap_or_else(|| self.listen.ip().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default() {
        let c = BrokerConfig::from_yaml("").unwrap();
        assert_eq!(c.listen.port(), 9092);
        assert_eq!(c.data_dir, PathBuf::from("starlog-data"));
        assert_eq!(c.log.retention_ms, 604_800_000);
    }

    #[test]
    fn flush_policies_parse() {
        for (text, want) in [
            ("log: { flush: always }", FlushPolicy::Always),
            ("log: { flush: never }", FlushPolicy::Never),
            (
                "log: { flush: 20 }",
                FlushPolicy::Interval(Duration::from_millis(20)),
            ),
        ] {
            let c = BrokerConfig::from_yaml(text).unwrap();
            assert_eq!(
                format!("{:?}", c.base_log_config().flush),
                format!("{want:?}")
            );
        }
    }

    #[test]
    fn http_and_inter_broker_security_parse() {
        use starlog_security::tls::{CertPrincipal, ClientAuth};
        let c = BrokerConfig::from_yaml(
            "http:\n  listen: 127.0.0.1:8443\n  tls: { cert: h.pem, key: h.key, client_ca: ca.pem, client_auth: requested }\n  authentication: basic\n  anonymous_read: true\n\
             node_id: 1\ncluster:\n  peers: [ { id: 1, host: b1, port: 9092, raft: 127.0.0.1:9192 } ]\n  tls: { cert: b1.pem, key: b1.key, ca: ca.pem, principal: cn, broker_principals: [User:b1] }\n",
        )
        .unwrap();
        let http = c.http.clone().unwrap();
        assert_eq!(http.authentication, HttpAuthentication::Basic);
        assert!(http.anonymous_read);
        let tls = http.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Requested);
        assert_eq!(tls.principal, CertPrincipal::Dn);
        let peer = c.cluster.unwrap().tls.unwrap();
        assert_eq!(peer.server().client_auth, ClientAuth::Required);
        assert_eq!(peer.server().client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(peer.client().cert, Some(PathBuf::from("b1.pem")));
        assert_eq!(peer.broker_principals[0].to_string(), "User:b1");
        // The --http flag keeps the section's security.
        let mut c = BrokerConfig::from_yaml("http: { authentication: basic }").unwrap();
        c.set_http_listen("127.0.0.1:1".parse().unwrap());
        assert_eq!(c.http.unwrap().authentication, HttpAuthentication::Basic);
        // The default: no TLS, no authentication.
        let d = HttpSettings::default();
        assert!(d.tls.is_none() && d.authentication == HttpAuthentication::None);
        assert!(BrokerConfig::from_yaml("http: { authentication: digest }").is_err());
    }

    #[test]
    fn unknown_field_is_named() {
        let err = BrokerConfig::from_yaml("lisen: 127.0.0.1:1").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn http_listener_follows_the_registry_without_its_own_section() {
        let c = BrokerConfig::from_yaml("schema_registry: { listen: 127.0.0.1:8090 }").unwrap();
        assert_eq!(c.http_listen(), Some("127.0.0.1:8090".parse().unwrap()));
        let c = BrokerConfig::from_yaml("schema_registry: { enabled: false }").unwrap();
        assert_eq!(
            c.http_listen(),
            None,
            "no registry, no section: no listener"
        );
    }

    #[test]
    fn http_section_decides_when_present() {
        let c = BrokerConfig::from_yaml(
            "schema_registry: { enabled: false }\nhttp: { listen: 127.0.0.1:8091 }",
        )
        .unwrap();
        assert_eq!(c.http_listen(), Some("127.0.0.1:8091".parse().unwrap()));
        let c = BrokerConfig::from_yaml(
            "schema_registry: { listen: 127.0.0.1:8090 }\nhttp: { listen: 127.0.0.1:8091 }",
        )
        .unwrap();
        assert_eq!(
            c.http_listen(),
            Some("127.0.0.1:8091".parse().unwrap()),
            "http.listen wins over schema_registry.listen"
        );
        let c = BrokerConfig::from_yaml("schema_registry: { listen: 127.0.0.1:8090 }\nhttp: {}")
            .unwrap();
        assert_eq!(c.http_listen(), Some("127.0.0.1:8090".parse().unwrap()));
        let c = BrokerConfig::from_yaml("http: { enabled: false }").unwrap();
        assert_eq!(c.http_listen(), None);
        let err = BrokerConfig::from_yaml("http: { port: 1 }").unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn http_flag_turns_the_listener_on() {
        let mut c = BrokerConfig::from_yaml("schema_registry: { enabled: false }").unwrap();
        c.set_http_listen("127.0.0.1:8092".parse().unwrap());
        assert_eq!(c.http_listen(), Some("127.0.0.1:8092".parse().unwrap()));
        let mut c = BrokerConfig::from_yaml("http: { enabled: false }").unwrap();
        c.set_http_listen("127.0.0.1:8093".parse().unwrap());
        assert_eq!(c.http_listen(), Some("127.0.0.1:8093".parse().unwrap()));
    }

    #[test]
    fn invalid_value_is_named() {
        let err = BrokerConfig::from_yaml("topics: { default_partitions: 0 }").unwrap_err();
        assert!(
            err.to_string().contains("topics.default_partitions"),
            "{err}"
        );
    }
}
