//! The Kafka listeners: each a name, an address, the address clients are
//! told to use, and a security protocol (Kafka's `PLAINTEXT`, `SSL`,
//! `SASL_PLAINTEXT`, `SASL_SSL`) with the SASL mechanisms it accepts.
//!
//! Without a `listeners:` list the broker has one plaintext listener named
//! `PLAINTEXT` at `listen` (advertised as `advertised_host` /
//! `advertised_port`), as before listeners existed. Metadata answers each
//! client with the brokers' endpoints of the listener it came in on, so a
//! client of a public listener is never sent to an internal SASL port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use kafka_protocol::protocol::StrBytes;
use serde::Deserialize;

/// The name of the listener a configuration without `listeners:` has.
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

/// How a listener's clients connect and prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum SecurityProtocol {
    /// TCP, every client `User:ANONYMOUS`.
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS; the client is `User:ANONYMOUS`, or its certificate's subject
    /// when the listener asks for client certificates.
    #[serde(rename = "SSL")]
    Ssl,
    /// TCP with a SASL login before any other request.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// TLS with a SASL login before any other request.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Parses Kafka's name (case-insensitive; `-` for `_` accepted), as
    /// command lines take it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| {
                format!(
                    "unknown security protocol `{s}` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
                )
            })
    }

    /// Whether clients log in with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Whether the connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The SASL mechanisms a listener accepts when none are listed.
pub const DEFAULT_SASL_MECHANISMS: [&str; 2] = ["SCRAM-SHA-512", "SCRAM-SHA-256"];

/// The SASL mechanisms Starlog serves.
pub const KNOWN_SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// One entry of `listeners:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSettings {
    /// Its name (Metadata answers with the brokers' endpoints of this name).
    pub name: String,
    /// The address it binds.
    pub listen: SocketAddr,
    /// `host` or `host:port` clients are told to use; defaults to the
    /// bound IP and port.
    #[serde(default)]
    pub advertised: Option<String>,
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    #[serde(default)]
    pub security: SecurityProtocol,
    /// The SASL mechanisms accepted (SASL listeners only), in the order
    /// the handshake lists them; default SCRAM-SHA-512 and SCRAM-SHA-256.
    #[serde(default)]
    pub sasl_mechanisms: Vec<String>,
    /// Certificate, key and client-certificate policy (SSL and SASL_SSL only).
    #[serde(default)]
    pub tls: Option<starlog_security::tls::TlsSettings>,
    /// Kafka's `connections.max.reauth.ms`: an authenticated SASL session
    /// lasts this long, then the client must log in again on the same
    /// connection (KIP-368) or be disconnected; 0 (default): no limit.
    #[serde(default)]
    pub reauthentication_ms: u64,
}

impl ListenerSettings {
    /// The plaintext listener of a configuration without `listeners:`.
    pub fn plaintext(listen: SocketAddr, advertised: Option<String>) -> Self {
        Self {
            name: DEFAULT_LISTENER.to_string(),
            listen,
            advertised,
            security: SecurityProtocol::Plaintext,
            sasl_mechanisms: Vec::new(),
            tls: None,
            reauthentication_ms: 0,
        }
    }

    /// The mechanisms this listener accepts (the default when none are listed).
    pub fn mechanisms(&self) -> Vec<String> {
        if !self.security.sasl() {
            return Vec::new();
        }
        if self.sasl_mechanisms.is_empty() {
            return DEFAULT_SASL_MECHANISMS
                .iter()
                .map(|m| m.to_string())
                .collect();
        }
        self.sasl_mechanisms.clone()
    }

    /// The host and port clients are told to use, once bound to `port`.
    pub fn advertised(&self, port: u16) -> (String, u16) {
        let ip = self.listen.ip();
        let default_host = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            ip.to_string()
        };
        match self.advertised.as_deref() {
            None => (default_host, port),
            Some(a) => match split_host_port(a) {
                Some((h, p)) => (h.to_string(), p),
                None => (a.to_string(), port),
            },
        }
    }

    /// Checks one entry; `at` is its YAML path (`listeners[1]`).
    pub fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let bad = |field: &str, reason: String| Err((format!("{at}.{field}"), reason));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad(
                "name",
                format!("`{}`: use letters, digits, `_` and `-`", self.name),
            );
        }
        if self.security.tls() && self.tls.is_none() {
            return bad(
                "tls",
                format!(
                    "a {} listener needs `tls: {{ cert, key }}`",
                    self.security.name()
                ),
            );
        }
        if !self.security.tls() && self.tls.is_some() {
            return bad(
                "tls",
                format!(
                    "a {} listener does not use TLS (use SSL or SASL_SSL)",
                    self.security.name()
                ),
            );
        }
        if !self.security.sasl() && !self.sasl_mechanisms.is_empty() {
            return bad(
                "sasl_mechanisms",
                format!(
                    "a {} listener has no SASL login (use SASL_PLAINTEXT or SASL_SSL)",
                    self.security.name()
                ),
            );
        }
        for (i, m) in self.sasl_mechanisms.iter().enumerate() {
            if !KNOWN_SASL_MECHANISMS.contains(&m.as_str()) {
                return bad(
                    &format!("sasl_mechanisms[{i}]"),
                    format!(
                        "unknown mechanism `{m}` (expected one of {})",
                        KNOWN_SASL_MECHANISMS.join(", ")
                    ),
                );
            }
        }
        if let Some(a) = &self.advertised {
            if a.is_empty() || (a.contains(':') && split_host_port(a).is_none()) {
                return bad(
                    "advertised",
                    format!("`{a}`: expected `host` or `host:port`"),
                );
            }
        }
        Ok(())
    }
}

fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse().ok()?;
    (!h.is_empty()).then_some((h, port))
}

/// Checks the whole list: each entry, unique names and addresses.
pub fn validate_all(listeners: &[ListenerSettings]) -> Result<(), (String, String)> {
    let mut names = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        l.validate(&at)?;
        if let Some(first) = names.insert(l.name.clone(), i) {
            return Err((
                format!("{at}.name"),
                format!("`{}` is also the name of listeners[{first}]", l.name),
            ));
        }
        if l.listen.port() != 0 {
            if let Some(first) = addrs.insert(l.listen, i) {
                return Err((
                    format!("{at}.listen"),
                    format!("{} is also the address of listeners[{first}]", l.listen),
                ));
            }
        }
    }
    Ok(())
}

/// Where clients reach one broker, by listener name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints(BTreeMap<String, (StrBytes, i32)>);

impl Endpoints {
    /// Adds (or replaces) a listener's endpoint.
    pub fn insert(&mut self, listener: &str, host: &str, port: u16) {
        self.0.insert(
            listener.to_string(),
            (StrBytes::from_string(host.to_string()), i32::from(port)),
        );
    }

    /// The endpoint of `listener`.
    pub fn get(&self, listener: &str) -> Option<(StrBytes, i32)> {
        self.0.get(listener).cloned()
    }

    /// Every (listener, host, port).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &StrBytes, i32)> {
        self.0.iter().map(|(n, (h, p))| (n.as_str(), h, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<ListenerSettings> {
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_issue_shape_parses_and_validates() {
        let l = parse(
            "- { name: internal, listen: 127.0.0.1:9092, security: SASL_PLAINTEXT, sasl_mechanisms: [SCRAM-SHA-512, SCRAM-SHA-256, PLAIN] }\n\
             - { name: public, listen: 127.0.0.1:9093, security: PLAINTEXT, advertised: alerts.example.org:19093 }\n",
        );
        assert_eq!(validate_all(&l), Ok(()));
        assert!(l[0].security.sasl());
        assert_eq!(l[0].mechanisms().len(), 3);
        assert_eq!(
            l[1].advertised(9093),
            ("alerts.example.org".to_string(), 19093)
        );
        assert_eq!(l[0].advertised(4000), ("127.0.0.1".to_string(), 4000));
    }

    #[test]
    fn mistakes_name_the_yaml_path() {
        let cases = [
            ("- { name: a, listen: 127.0.0.1:1, security: SSL }", "listeners[0].tls"),
            ("- { name: a, listen: 127.0.0.1:1, sasl_mechanisms: [PLAIN] }", "listeners[0].sasl_mechanisms"),
            ("- { name: a, listen: 127.0.0.1:1, security: SASL_PLAINTEXT, sasl_mechanisms: [GSSAPI] }", "listeners[0].sasl_mechanisms[0]"),
            ("- { name: a, listen: 127.0.0.1:1 }\n- { name: a, listen: 127.0.0.1:2 }", "listeners[1].name"),
            ("- { name: a, listen: 127.0.0.1:1 }\n- { name: b, listen: 127.0.0.1:1 }", "listeners[1].listen"),
            ("- { name: 'a b', listen: 127.0.0.1:1 }", "listeners[0].name"),
            ("- { name: a, listen: 127.0.0.1:1, advertised: 'h:notaport' }", "listeners[0].advertised"),
        ];
        for (text, field) in cases {
            let err = validate_all(&parse(text))
                .err()
                .unwrap_or_else(|| panic!("{text} passed"));
            assert_eq!(err.0, field, "{text}: {}", err.1);
        }
        assert!(serde_yaml::from_str::<Vec<ListenerSettings>>(
            "- { name: a, listen: 127.0.0.1:1, security: TLS }"
        )
        .is_err());
    }
}
