//! A peer's inter-broker (Raft) address: `IP:PORT` as before, or
//! `HOST:PORT` with a DNS name (`starlog-1.starlog:9093`, `localhost:7001`).
//!
//! A name is resolved each time the peer is dialed, never once at start-up:
//! a Kubernetes pod comes back with another IP after a restart, and its
//! name then points at the new one. A broker whose own entry is a name
//! listens on every interface (`0.0.0.0`) at that port, since its name may
//! not resolve yet when it starts (a pod's DNS record appears with the pod).
//!
//! In YAML and in the replicated metadata the address is one string, as a
//! `SocketAddr` was, so existing files and metadata logs read unchanged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a Raft address (HOST:PORT or IP:PORT): {reason}")]
pub struct PeerAddrError {
    text: String,
    reason: &'static str,
}

/// An inter-broker address: an IP or a DNS name, and a port (see the
/// module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddr {
    /// The IP (without brackets) or the DNS name.
    host: String,
    port: u16,
}

impl PeerAddr {
    /// Parses `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT`.
    pub fn parse(text: &str) -> Result<Self, PeerAddrError> {
        let bad = |reason| PeerAddrError {
            text: text.to_string(),
            reason,
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::from(addr));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.len() > 253 {
            return Err(bad("the host name is longer than 253 characters"));
        }
        let labels_ok = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !labels_ok {
            return Err(bad(
                "the host is neither an IP address nor a DNS name (letters, digits, '-', '.')",
            ));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }

    /// The IP or the DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IP, when the host is one (no resolution needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Where this broker's inter-broker listener binds when this is its
    /// own address: the IP itself, or every interface for a name.
    pub fn bind_addr(&self) -> SocketAddr {
        let ip = self.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.port)
    }

    /// Resolves the address now (an IP resolves to itself): every address
    /// the name has, in the resolver's order.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.ip() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no address", self.host),
            ));
        }
        Ok(found)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip() {
            Some(ip) => SocketAddr::new(ip, self.port).fmt(f),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl Serialize for PeerAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_names_parse_and_print_as_written() {
        for text in [
            "127.0.0.1:9093",
            "[::1]:9093",
            "localhost:7001",
            "starlog-2.starlog.alerts.svc.cluster.local:9093",
        ] {
            let a = PeerAddr::parse(text).unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{text}\""));
        }
        let v6 = PeerAddr::parse("[::1]:9093").unwrap();
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.bind_addr(), "[::1]:9093".parse().unwrap());
        let named = PeerAddr::parse("starlog-0.starlog:9093").unwrap();
        assert_eq!((named.host(), named.port()), ("starlog-0.starlog", 9093));
        assert_eq!(named.ip(), None);
        assert_eq!(named.bind_addr(), "0.0.0.0:9093".parse().unwrap());
    }

    #[test]
    fn what_a_metadata_log_holds_still_reads() {
        // A SocketAddr serialized by an older broker.
        let old = serde_json::to_string(&"10.0.0.7:9093".parse::<SocketAddr>().unwrap()).unwrap();
        let a: PeerAddr = serde_json::from_str(&old).unwrap();
        assert_eq!(
            a,
            PeerAddr::from("10.0.0.7:9093".parse::<SocketAddr>().unwrap())
        );
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        for (text, why) in [
            ("starlog-0", "no port"),
            ("starlog-0:x", "not a number"),
            ("starlog-0:70000", "not a number"),
            (":9093", "no host"),
            ("bad host:1", "neither"),
            ("a..b:1", "neither"),
            ("-a:1", "neither"),
            ("::1:1", "neither"),
        ] {
            let e = PeerAddr::parse(text).unwrap_err().to_string();
            assert!(e.contains(text) && e.contains(why), "{text}: {e}");
        }
    }

    #[tokio::test]
    async fn a_name_resolves_when_asked() {
        let a = PeerAddr::parse("localhost:7001").unwrap();
        let found = a.resolve().await.unwrap();
        assert!(
            found
                .iter()
                .all(|s| s.ip().is_loopback() && s.port() == 7001),
            "{found:?}"
        );
        let ip = PeerAddr::parse("127.0.0.1:7001").unwrap();
        assert_eq!(
            ip.resolve().await.unwrap(),
            vec!["127.0.0.1:7001".parse().unwrap()]
        );
    }
}
