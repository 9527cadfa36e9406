//! `GET /cluster/status` (what `starlog cluster status` prints) and, when
//! `cluster.fault_injection` is on, `POST /cluster/fault`, on the broker's
//! HTTP port.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use starlog_replication::{GroupStatus, Role};

use super::config::PeerSettings;
use super::node::Cluster;
use crate::control::Reassignment;

/// The cluster routes.
pub(super) fn router(cluster: Arc<Cluster>) -> Router {
    let mut r = Router::new()
        .route("/cluster/status", get(status))
        .route("/cluster/brokers", post(add_broker))
        .route("/cluster/brokers/remove", post(remove_broker))
        .route("/cluster/reassign", post(reassign));
    if cluster.settings.fault_injection {
        r = r.route("/cluster/fault", post(fault));
    }
    r.with_state(cluster)
}

/// The body of `POST /cluster/fault`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fault {
    /// Cut this broker off from its peers (`true`) or heal it (`false`).
    isolated: bool,
}

fn json_response(status: StatusCode, body: &Value) -> impl IntoResponse {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn fault(State(c): State<Arc<Cluster>>, body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            c.faults.set_isolated(f.isolated);
            json_response(StatusCode::OK, &json!({ "isolated": c.faults.isolated() }))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("want {{\"isolated\": true|false}}: {e}") }),
        ),
    }
}

/// The body of `POST /cluster/brokers/remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Remove {
    /// The broker to remove.
    id: i32,
}

/// The body of `POST /cluster/reassign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reassign {
    topic: String,
    partition: i32,
    /// The replicas to end with, preferred leader first; `null` cancels a move.
    replicas: Option<Vec<i32>>,
}

async fn reassign(State(c): State<Arc<Cluster>>, body: Bytes) -> impl IntoResponse {
    let r = match serde_json::from_slice::<Reassign>(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": format!("want {{\"topic\", \"partition\", \"replicas\": [ids] or null}}: {e}") }),
            )
        }
    };
    match c.reassign(&r.topic, r.partition, r.replicas.clone()).await {
        Ok(()) => json_response(
            StatusCode::OK,
            &json!({ "topic": r.topic, "partition": r.partition, "replicas": r.replicas }),
        ),
        Err(e) => json_response(StatusCode::CONFLICT, &json!({ "error": e.message })),
    }
}

async fn add_broker(State(c): State<Arc<Cluster>>, body: Bytes) -> impl IntoResponse {
    let peer = match serde_json::from_slice::<PeerSettings>(&body) {
        Ok(p) => p,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": format!("want {{\"id\", \"host\", \"port\", \"raft\"}}: {e}") }),
            )
        }
    };
    let id = peer.id;
    match c.add_broker(peer).await {
        Ok(()) => json_response(StatusCode::OK, &json!({ "added": id })),
        Err(e) => json_response(
            StatusCode::CONFLICT,
            &json!({ "error": format!("broker {id}: {e}") }),
        ),
    }
}

async fn remove_broker(State(c): State<Arc<Cluster>>, body: Bytes) -> impl IntoResponse {
    let id = match serde_json::from_slice::<Remove>(&body) {
        Ok(r) => r.id,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": format!("want {{\"id\"}}: {e}") }),
            )
        }
    };
    match c.remove_broker(id).await {
        Ok(()) => json_response(StatusCode::OK, &json!({ "removed": id })),
        Err(e) => json_response(
            StatusCode::CONFLICT,
            &json!({ "error": format!("broker {id}: {e}") }),
        ),
    }
}

async fn status(State(c): State<Arc<Cluster>>) -> impl IntoResponse {
    json_response(StatusCode::OK, &status_json(&c))
}

/// A role as text.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// The `GET /cluster/status` document, typed: what `starlog cluster
/// status`, the test kit's process-cluster harness and `starlog-bench
/// cluster` read. Every field has a default, so a document with fields
/// missing still parses (all but `node`, without which a document is no
/// status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The broker that answered.
    pub node: i32,
    /// The controller it knows of (the metadata group's leader).
    #[serde(default)]
    pub controller: Option<i32>,
    /// Whether fault injection cut it off from its peers.
    #[serde(default)]
    pub isolated: bool,
    /// The brokers of the cluster.
    #[serde(default)]
    pub peers: Vec<PeerState>,
    /// Every Raft group it hosts (the metadata group and each partition's).
    #[serde(default)]
    pub groups: Vec<GroupState>,
    /// The partitions whose replicas are moving.
    #[serde(default)]
    pub reassignments: Vec<Reassignment>,
    /// The users and ACLs this broker has applied from the metadata log.
    #[serde(default)]
    pub security: SecuritySummary,
}

/// Users and ACLs as the status shows them: names, mechanisms and ACLs,
/// never a salt or key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySummary {
    /// `name (MECHANISM, ...)` per user, by name.
    pub users: Vec<String>,
    /// Each ACL as `Allow User:alice Read on Topic:Prefixed:alerts- from *`.
    pub acls: Vec<String>,
}

impl ClusterStatus {
    /// The group of `topic`/`partition`, if this broker hosts one.
    pub fn group(&self, topic: &str, partition: i32) -> Option<&GroupState> {
        self.groups
            .iter()
            .find(|g| g.topic == topic && g.partition == partition)
    }
}

/// One broker of the cluster, as the status lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerState {
    /// Broker id.
    pub id: i32,
    /// Advertised Kafka host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: u16,
    /// Its Raft address.
    pub raft: String,
}

/// One Raft group as the answering broker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupState {
    /// The group's id.
    pub group: u64,
    /// Its topic (empty for the metadata group).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: String,
    /// The leader this broker knows of.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The Raft commit index.
    pub commit_index: u64,
    /// The last applied index.
    pub applied_index: u64,
    /// The last index in the Raft log.
    pub last_index: u64,
    /// The Kafka high watermark.
    pub high_watermark: i64,
    /// The Kafka log start offset.
    pub log_start_offset: i64,
    /// The Kafka log end offset.
    pub log_end_offset: i64,
    /// The voting replicas.
    pub voters: Vec<u64>,
    /// The learners (replicas catching up).
    pub learners: Vec<u64>,
    /// On the leader: each replica's progress.
    pub replicas: Vec<ReplicaState>,
    /// Why the group stopped, when it did.
    pub failed: Option<String>,
}

impl GroupState {
    /// The leader, when one is known (raft's "no leader" is 0).
    pub fn known_leader(&self) -> Option<u64> {
        self.leader.filter(|&l| l > 0)
    }
}

/// A replica's progress as its group's leader tracks it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaState {
    /// The replica's broker.
    pub node: u64,
    /// The highest Raft index known to be on it.
    pub matched_index: u64,
    /// How many entries it is behind.
    pub lag_entries: u64,
    /// How many Kafka offsets it is behind, when known.
    pub lag_offsets: Option<i64>,
    /// Whether it answered recently.
    pub recently_active: bool,
}

fn group_state(s: &GroupStatus) -> GroupState {
    GroupState {
        group: s.group.0,
        topic: s.topic.clone(),
        partition: s.partition,
        role: role_name(s.role).to_string(),
        leader: s.leader,
        term: s.term,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        last_index: s.last_index,
        high_watermark: s.high_watermark,
        log_start_offset: s.log_start_offset,
        log_end_offset: s.log_end_offset,
        voters: s.voters.clone(),
        learners: s.learners.clone(),
        replicas: s
            .replicas
            .iter()
            .map(|r| ReplicaState {
                node: r.node,
                matched_index: r.matched_index,
                lag_entries: r.lag_entries,
                lag_offsets: r.lag_offsets,
                recently_active: r.recently_active,
            })
            .collect(),
        failed: s.failed.clone(),
    }
}

/// The whole status document.
pub fn status_document(c: &Cluster) -> ClusterStatus {
    ClusterStatus {
        node: c.node,
        controller: c.controller(),
        isolated: c.faults.isolated(),
        peers: c
            .brokers()
            .iter()
            .map(|p| PeerState {
                id: p.id,
                host: p.host.clone(),
                port: p.port,
                raft: p.raft.to_string(),
            })
            .collect(),
        groups: c.view.all().iter().map(group_state).collect(),
        reassignments: c.reassignments(),
        security: {
            let s = c.state.lock();
            SecuritySummary {
                users: s
                    .security
                    .users
                    .iter()
                    .map(|(name, creds)| {
                        let mechanisms: Vec<&str> = creds.keys().map(|m| m.name()).collect();
                        format!("{name} ({})", mechanisms.join(", "))
                    })
                    .collect(),
                acls: s.security.acls.iter().map(ToString::to_string).collect(),
            }
        },
    }
}

/// The whole status document as JSON.
pub fn status_json(c: &Cluster) -> Value {
    serde_json::to_value(status_document(c)).unwrap_or(Value::Null)
}
