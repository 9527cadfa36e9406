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
use serde::Deserialize;
use serde_json::{json, Value};
use starlog_replication::{GroupStatus, Role};

use super::config::PeerSettings;
use super::node::Cluster;

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

fn group_json(s: &GroupStatus) -> Value {
    let replicas: Vec<Value> = s
        .replicas
        .iter()
        .map(|r| {
            json!({
                "node": r.node,
                "matched_index": r.matched_index,
                "lag_entries": r.lag_entries,
                "lag_offsets": r.lag_offsets,
                "recently_active": r.recently_active,
            })
        })
        .collect();
    json!({
        "group": s.group.0,
        "topic": s.topic,
        "partition": s.partition,
        "role": role_name(s.role),
        "leader": s.leader,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_index": s.last_index,
        "high_watermark": s.high_watermark,
        "log_start_offset": s.log_start_offset,
        "log_end_offset": s.log_end_offset,
        "voters": s.voters,
        "learners": s.learners,
        "replicas": replicas,
        "failed": s.failed,
    })
}

/// The whole status document.
pub fn status_json(c: &Cluster) -> Value {
    let peers: Vec<Value> = c
        .brokers()
        .iter()
        .map(|p| json!({ "id": p.id, "host": p.host, "port": p.port, "raft": p.raft.to_string() }))
        .collect();
    let groups: Vec<Value> = c.view.all().iter().map(group_json).collect();
    json!({
        "node": c.node,
        "controller": c.controller(),
        "isolated": c.faults.isolated(),
        "peers": peers,
        "groups": groups,
        "reassignments": c.reassignments(),
    })
}
