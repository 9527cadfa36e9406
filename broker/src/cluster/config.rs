//! The `cluster:` section of the broker YAML: who the peers are and how
//! fast Raft ticks. Without it the broker runs alone, unreplicated.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use starlog_security::tls::{CertPrincipal, ClientAuth, ClientTlsSettings, TlsSettings};
use starlog_security::Principal;

pub use super::peer_addr::{PeerAddr, PeerAddrError};

/// One broker of the cluster, as every member lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The broker's node id (its `node_id`), at least 1.
    pub id: i32,
    /// Host clients connect to (advertised in Metadata).
    pub host: String,
    /// Its Kafka port.
    pub port: u16,
    /// Its inter-broker (Raft) listener: `IP:PORT`, or `HOST:PORT` with a
    /// DNS name resolved at each connection (see [`PeerAddr`]).
    pub raft: PeerAddr,
    /// Its Kafka listeners by name, when it has several: a client is then
    /// given this broker's endpoint of the listener it came in on, and a
    /// broker without that listener is left out. Empty: `host:port` for
    /// every listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<PeerListener>,
}

/// One Kafka listener of a peer, as clients of that listener reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerListener {
    /// The listener's name (the same on every broker).
    pub name: String,
    /// Host advertised to its clients.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl PeerSettings {
    /// Where a client of `listener` reaches this peer: the listener of
    /// that name when the peer lists its listeners (none: not advertised
    /// to that listener's clients, as Kafka leaves such a broker out), else
    /// `host:port`.
    pub fn endpoint(&self, listener: &str) -> Option<(String, u16)> {
        if self.listeners.is_empty() {
            return Some((self.host.clone(), self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.clone(), l.port))
    }
}

/// Replication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Every broker of the cluster, this one included.
    pub peers: Vec<PeerSettings>,
    /// This broker joins a running cluster: the other peers are its current members, and
    /// it waits for `starlog cluster add-broker` to be added to every Raft group.
    pub join: bool,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomised up to twice this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Longest a produce waits for a quorum when the client's timeout is longer.
    pub max_commit_wait_ms: u64,
    /// fdatasync replicated data before acknowledging it (default). `false` relies on
    /// replication, as Kafka does by default: an entry counts once written to the OS on a
    /// quorum, which survives any process crash but not a power loss of a majority at once.
    pub sync_data: bool,
    /// Serve `POST /cluster/fault` (cut this broker off from its peers and heal it) on the
    /// HTTP port. For fault tests only; off by default.
    pub fault_injection: bool,
    /// Replicas per partition when a topic is created with replication factor -1 (as Kafka's
    /// `default.replication.factor`); capped at the number of brokers.
    pub default_replication_factor: usize,
    /// The controller writes a checkpoint of the cluster metadata (topics, placement, members,
    /// group offsets) once the metadata log has this many records after the last one; every
    /// broker then trims its metadata log before the checkpoint.
    pub metadata_checkpoint_records: i64,
    /// Mutual TLS on the inter-broker (Raft) listener and connections. Absent: plain TCP.
    pub tls: Option<ClusterTlsSettings>,
}

/// `cluster.tls`: brokers talk to each other over mutual TLS under the
/// cluster's CA. Each broker presents `cert` both as a server (to the
/// brokers dialing it) and as a client (when it dials them); a peer whose
/// certificate does not chain to `ca`, is expired, or names a principal
/// outside `broker_principals` (when given) is refused and logged.
/// Relative paths are taken against the YAML file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsSettings {
    /// This broker's certificate chain (PEM), leaf first. It must name the
    /// host peers dial it by (`cluster.peers[].host`, as a DNS name or an
    /// IP address; a broker added later is dialed by its Raft host).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster CA (PEM): every broker's certificate chains to it.
    pub ca: PathBuf,
    /// How a broker's principal is read from its certificate (`dn`, the
    /// default, or `cn`).
    #[serde(default)]
    pub principal: CertPrincipal,
    /// The brokers' principals (`User:CN=broker-1,O=...`). Empty: any
    /// certificate of the cluster CA is a broker.
    #[serde(default)]
    pub broker_principals: Vec<Principal>,
}

impl ClusterTlsSettings {
    /// The server side: this broker's certificate, a client certificate
    /// under the cluster CA required.
    pub fn server(&self) -> TlsSettings {
        TlsSettings {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: Some(self.ca.clone()),
            client_auth: ClientAuth::Required,
            principal: self.principal,
        }
    }

    /// The client side: the server must chain to the cluster CA; this
    /// broker presents its own certificate.
    pub fn client(&self) -> ClientTlsSettings {
        ClientTlsSettings {
            ca: self.ca.clone(),
            cert: Some(self.cert.clone()),
            key: Some(self.key.clone()),
        }
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            join: false,
            tick_ms: 50,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_commit_wait_ms: 30_000,
            sync_data: true,
            fault_injection: false,
            default_replication_factor: 3,
            metadata_checkpoint_records: 20_000,
            tls: None,
        }
    }
}

impl ClusterSettings {
    /// One tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// This node's entry.
    pub fn me(&self, node_id: i32) -> Option<&PeerSettings> {
        self.peers.iter().find(|p| p.id == node_id)
    }

    /// Checks the section for `node_id`; the error names the field at fault.
    pub fn validate(&self, node_id: i32) -> Result<(), (&'static str, String)> {
        if self.peers.is_empty() {
            return Err((
                "cluster.peers",
                "must list every broker, this one included".into(),
            ));
        }
        let mut ids = BTreeSet::new();
        for p in &self.peers {
            if p.id < 1 {
                return Err((
                    "cluster.peers.id",
                    format!("{} is not a node id (at least 1)", p.id),
                ));
            }
            if !ids.insert(p.id) {
                return Err(("cluster.peers.id", format!("node {} is listed twice", p.id)));
            }
        }
        if self.me(node_id).is_none() {
            return Err((
                "node_id",
                format!("{node_id} is not among cluster.peers {ids:?}"),
            ));
        }
        if self.tick_ms == 0 || self.tick_ms > 10_000 {
            return Err(("cluster.tick_ms", "must be within 1..=10000".into()));
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err((
                "cluster.election_ticks",
                "must exceed heartbeat_ticks, which must be at least 1".into(),
            ));
        }
        if self.metadata_checkpoint_records < 10 {
            return Err((
                "cluster.metadata_checkpoint_records",
                "must be at least 10".into(),
            ));
        }
        if !(1..=32).contains(&self.default_replication_factor) {
            return Err((
                "cluster.default_replication_factor",
                "must be within 1..=32".into(),
            ));
        }
        Ok(())
    }

    /// Parses a `--peer` flag: `ID=HOST:PORT/RAFT_HOST:RAFT_PORT`.
    pub fn parse_peer(text: &str) -> Result<PeerSettings, String> {
        let bad =
            |why: &str| format!("--peer {text:?}: {why} (want ID=HOST:PORT/RAFT_HOST:RAFT_PORT)");
        let (id, rest) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| bad("the id is not a number"))?;
        let (kafka, raft) = rest.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let (host, port) = kafka.rsplit_once(':').ok_or_else(|| bad("no Kafka port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the Kafka port is not a number"))?;
        let raft = PeerAddr::parse(raft).map_err(|e| bad(&e.to_string()))?;
        Ok(PeerSettings {
            id,
            host: host.to_string(),
            port,
            raft,
            listeners: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_flags_parse_and_faults_are_named() {
        let p = ClusterSettings::parse_peer("2=127.0.0.1:9093/127.0.0.1:19093").unwrap();
        assert_eq!((p.id, p.host.as_str(), p.port), (2, "127.0.0.1", 9093));
        assert_eq!(p.raft.port(), 19093);
        let p = ClusterSettings::parse_peer("3=b3.starlog:9092/b3.starlog:9093").unwrap();
        assert_eq!((p.raft.host(), p.raft.port()), ("b3.starlog", 9093));
        for bad in ["2", "x=h:1/127.0.0.1:2", "2=h/127.0.0.1:2", "2=h:1/nowhere"] {
            let e = ClusterSettings::parse_peer(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = ClusterSettings {
            peers: vec![ClusterSettings::parse_peer("1=h:1/127.0.0.1:2").unwrap()],
            ..ClusterSettings::default()
        };
        assert!(c.validate(1).is_ok());
        assert_eq!(c.validate(2).unwrap_err().0, "node_id");
        c.peers.push(c.peers[0].clone());
        assert_eq!(c.validate(1).unwrap_err().0, "cluster.peers.id");
    }
}
