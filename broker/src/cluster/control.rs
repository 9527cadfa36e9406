//! The cluster's side of the mode seam: [`ClusterControl`] answers the
//! handlers' questions ([`Control`]) from this broker's [`Cluster`], and
//! [`start`] joins the cluster and gives the server the two things it picks
//! once at start-up (the control and the group coordinator's backend).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::node::{Cluster, ClusterError, Start};
use super::offsets::ClusterBackend;
use super::security::ClusterSecurityStore;
use super::{http, metrics};
use crate::control::{
    AdminChange, BrokerAddress, Control, Leadership, Mode, NewTopic, PipelineHosting, Reassignment,
};
use crate::listener::Endpoints;
use crate::topics::{Topic, TopicError, TopicRegistry};

/// How long Metadata waits for partitions without a known leader to get one.
pub(super) const LEADER_WAIT: Duration = Duration::from_millis(500);

/// Joins the cluster (see [`Cluster`]) and returns what the server runs on:
/// the control the handlers ask, the group coordinator's backend (offsets
/// replicated through the metadata group) and the users and ACLs (the
/// same). `me` is this broker as advertised to clients of each listener.
pub async fn start(
    start: Start,
    me: Endpoints,
    topics: Arc<TopicRegistry>,
    shutdown: watch::Receiver<bool>,
) -> Result<Mode, ClusterError> {
    let policy = start.policy.clone();
    let cluster = Cluster::start(start, Arc::clone(&topics), shutdown).await?;
    let backend = Arc::new(ClusterBackend::new(Arc::clone(&cluster), topics));
    let security = Arc::new(ClusterSecurityStore::new(Arc::clone(&cluster), policy));
    Ok(Mode {
        control: Arc::new(ClusterControl { cluster, me }),
        backend,
        security,
    })
}

/// A member of a replicated cluster (see the module docs).
#[derive(Debug)]
pub(super) struct ClusterControl {
    pub(super) cluster: Arc<Cluster>,
    pub(super) me: Endpoints,
}

/// The error for an admin change a cluster does not support yet.
fn unsupported(what: &str) -> Option<(ResponseError, String)> {
    Some((
        ResponseError::InvalidRequest,
        format!("{what} is not supported on a replicated cluster yet"),
    ))
}

impl Control for ClusterControl {
    fn brokers(&self, listener: &str) -> Vec<BrokerAddress> {
        self.cluster
            .brokers()
            .iter()
            .filter_map(|p| {
                let (host, port) = p.endpoint(listener)?;
                Some((BrokerId(p.id), StrBytes::from_string(host), i32::from(port)))
            })
            .collect()
    }

    fn controller(&self) -> BrokerId {
        BrokerId(self.cluster.controller().unwrap_or(-1))
    }

    fn coordinator(&self, listener: &str) -> Option<BrokerAddress> {
        let me = || {
            self.me
                .get(listener)
                .map(|(host, port)| (BrokerId(self.cluster.node), host, port))
        };
        let Some(id) = self.cluster.controller() else {
            return me();
        };
        self.brokers(listener)
            .into_iter()
            .find(|(b, _, _)| b.0 == id)
            .or_else(me)
    }

    fn coordinates(&self) -> bool {
        self.cluster.controller() == Some(self.cluster.node)
    }

    fn wait_in_touch(&self, limit: Duration) -> BoxFuture<'_, bool> {
        Box::pin(self.cluster.wait_in_touch(limit))
    }

    fn leader_wait(&self) -> Duration {
        LEADER_WAIT
    }

    fn leadership(&self, topic: &str, index: i32) -> Option<Leadership> {
        let l = self.cluster.leadership(topic, index)?;
        let ids =
            |v: &[u64]| -> Vec<i32> { v.iter().map(|&n| i32::try_from(n).unwrap_or(-1)).collect() };
        Some(Leadership {
            leader: l.leader.map(|n| i32::try_from(n).unwrap_or(-1)),
            epoch: l.epoch,
            replicas: ids(&l.replicas),
            isr: ids(&l.isr),
        })
    }

    fn check_replication_factor(&self, _topic: &str, _factor: i16) -> Result<(), TopicError> {
        // Checked against the cluster's size when the topic is created.
        Ok(())
    }

    fn create_topic<'a>(
        &'a self,
        topics: &'a TopicRegistry,
        request: NewTopic<'a>,
    ) -> BoxFuture<'a, Result<Arc<Topic>, TopicError>> {
        Box::pin(self.cluster.create_topic(topics, request))
    }

    fn reported_replication_factor(&self) -> i16 {
        i16::try_from(self.cluster.brokers().len()).unwrap_or(i16::MAX)
    }

    fn refuses(&self, change: AdminChange<'_>) -> Option<(ResponseError, String)> {
        match change {
            AdminChange::DeleteTopics => unsupported("deleting topics"),
            AdminChange::AddPartitions => unsupported("adding partitions"),
            AdminChange::AlterConfigs { topic } => Some((
                ResponseError::InvalidRequest,
                format!("topic {topic}: altering configs is not supported on a replicated cluster yet (set them at creation)"),
            )),
        }
    }

    fn check_reassignments(&self) -> Result<(), &'static str> {
        Ok(())
    }

    fn reassign<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        replicas: Option<Vec<i32>>,
        allow_factor_change: bool,
    ) -> BoxFuture<'a, Result<(), (ResponseError, String)>> {
        Box::pin(async move {
            let factor_changes = !allow_factor_change
                && replicas.as_ref().is_some_and(|r| {
                    self.cluster
                        .leadership(topic, partition)
                        .is_some_and(|l| l.replicas.len() != r.len())
                });
            if factor_changes {
                return Err((
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "{topic}-{partition}: the new replicas change the replication factor, which the request does not allow"
                    ),
                ));
            }
            self.cluster
                .reassign(topic, partition, replicas)
                .await
                .map_err(|e| (e.code, e.message))
        })
    }

    fn reassignments(&self) -> Vec<Reassignment> {
        self.cluster.reassignments()
    }

    fn encode_metrics(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        metrics::encode(encoder, &self.cluster.view.all(), &self.cluster.faults)
    }

    fn http_routes(&self) -> Option<axum::Router> {
        Some(http::router(Arc::clone(&self.cluster)))
    }

    fn pipeline_hosting(&self) -> PipelineHosting {
        PipelineHosting::GroupMember
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.cluster.shutdown())
    }
}
