//! The seam between the two modes of a broker: alone, or one member of a
//! replicated cluster. [`Control`] answers everything the handlers ask that
//! depends on the mode (brokers, controller, coordinator, fencing, topic
//! creation and the admin changes a mode refuses, leadership as Metadata
//! reports it, reassignment, `/metrics` and `/cluster/*` additions). The
//! server picks the implementation once at start-up: [`SingleBroker`] here,
//! or the cluster's (`cluster::start`), together with the group
//! coordinator's `GroupBackend` and the `SecurityStore` (users and ACLs) of
//! the same mode ([`Mode`]). No handler asks which mode it is in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::listener::Endpoints;
use crate::topics::{Topic, TopicError, TopicRegistry};

/// What the server runs on, picked once at start-up for its mode: a broker
/// alone's, or a cluster member's (`cluster::start`).
pub struct Mode {
    /// The answers that depend on the mode.
    pub control: Arc<dyn Control>,
    /// The group coordinator's backend (where committed offsets go).
    pub backend: Arc<dyn crate::groups::GroupBackend>,
    /// Users and ACLs.
    pub security: Arc<dyn crate::security::SecurityStore>,
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mode")
            .field("control", &self.control)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

/// A broker as clients are told of it: id, host, port.
pub type BrokerAddress = (BrokerId, StrBytes, i32);

/// What Metadata says of a partition: its leader, epoch, replicas and
/// in-sync replicas (broker ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The leader, if one is known.
    pub leader: Option<i32>,
    /// The leader's epoch; -1 when unknown.
    pub epoch: i32,
    /// The replicas.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

/// How this mode runs the configuration's in-broker pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineHosting {
    /// A thread per pipeline reads the local partitions, appends its
    /// outputs to local partitions and commits in the local meta store
    /// (`pipelines::runner`): a broker alone.
    Local,
    /// Each broker runs the pipeline as a member of the pipeline's consumer
    /// group, through its own Kafka listener: the group spreads the source
    /// partitions over the brokers, outputs are produced through the
    /// cluster (replicated, acknowledged by a quorum) and positions are the
    /// cluster's group offsets, committed after the outputs are
    /// acknowledged (the `PipelineLauncher` extension runs it).
    GroupMember,
}

/// A CreateTopics (or auto-create) request.
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    /// Topic name.
    pub name: &'a str,
    /// Partition count.
    pub partitions: i32,
    /// Replicas per partition: 1 up to the cluster size, or -1 for the default.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Check only.
    pub validate_only: bool,
    /// Upper bound on the partition count.
    pub max_partitions: i32,
}

/// A partition whose replicas are moving.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Reassignment {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replicas its group has now (as its leader last announced).
    pub current: Vec<i32>,
    /// The replicas it is moving to.
    pub target: Vec<i32>,
}

/// An admin change one mode may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminChange<'a> {
    /// DeleteTopics.
    DeleteTopics,
    /// CreatePartitions.
    AddPartitions,
    /// AlterConfigs / IncrementalAlterConfigs of this topic.
    AlterConfigs {
        /// The topic.
        topic: &'a str,
    },
}

/// Everything a handler asks that depends on the broker's mode (see the
/// module docs).
pub trait Control: Send + Sync + std::fmt::Debug + 'static {
    /// The brokers to advertise (Metadata, DescribeCluster) to a client of
    /// `listener`: each broker's endpoint of that listener (a broker
    /// without one is left out, as Kafka does).
    fn brokers(&self, listener: &str) -> Vec<BrokerAddress>;

    /// The controller to advertise (-1 when none is known).
    fn controller(&self) -> BrokerId;

    /// The group coordinator every client of `listener` is sent to
    /// (`None`: it has no endpoint of that listener, or none is known).
    fn coordinator(&self, listener: &str) -> Option<BrokerAddress>;

    /// Whether this broker coordinates consumer groups now.
    fn coordinates(&self) -> bool;

    /// Waits (at most `limit`) until this broker is in touch with its
    /// cluster; false when it is cut off (its view of the leaders may be
    /// stale, so Metadata is refused and the connection closed).
    fn wait_in_touch(&self, limit: Duration) -> BoxFuture<'_, bool>;

    /// How long Metadata holds a response with a leaderless partition for
    /// an election to end (zero: answer at once).
    fn leader_wait(&self) -> Duration;

    /// What Metadata says of a partition this broker does not lead alone
    /// (`None`: nothing is known, LEADER_NOT_AVAILABLE).
    fn leadership(&self, topic: &str, index: i32) -> Option<Leadership>;

    /// Refuses a replication factor this mode cannot give before anything
    /// else about a CreateTopics entry is checked.
    fn check_replication_factor(&self, topic: &str, factor: i16) -> Result<(), TopicError>;

    /// Creates a topic (or checks it, when `validate_only`).
    fn create_topic<'a>(
        &'a self,
        topics: &'a TopicRegistry,
        request: NewTopic<'a>,
    ) -> BoxFuture<'a, Result<Arc<Topic>, TopicError>>;

    /// The replication factor CreateTopics reports for a created topic.
    fn reported_replication_factor(&self) -> i16;

    /// The refusal of an admin change this mode does not make, if any.
    fn refuses(&self, change: AdminChange<'_>) -> Option<(ResponseError, String)>;

    /// Refuses AlterPartitionReassignments as a whole (a broker with no
    /// replicas to move), with the reason.
    fn check_reassignments(&self) -> Result<(), &'static str>;

    /// Moves a partition's replicas (`None` cancels a move in progress).
    fn reassign<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        replicas: Option<Vec<i32>>,
        allow_factor_change: bool,
    ) -> BoxFuture<'a, Result<(), (ResponseError, String)>>;

    /// The partitions whose replicas are moving.
    fn reassignments(&self) -> Vec<Reassignment>;

    /// Writes this mode's metric families on the `/metrics` page (read
    /// live, at each scrape).
    fn encode_metrics(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result;

    /// This mode's HTTP routes (`/cluster/*`), if any.
    fn http_routes(&self) -> Option<axum::Router>;

    /// How in-broker pipelines run in this mode.
    fn pipeline_hosting(&self) -> PipelineHosting;

    /// Stops what this mode runs (after the listeners and pipelines).
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// A broker alone: it leads every partition, coordinates every group, and
/// has no replicas to move.
#[derive(Debug, Clone)]
pub struct SingleBroker {
    id: BrokerId,
    endpoints: Endpoints,
}

impl SingleBroker {
    /// This broker, as advertised to clients of each listener.
    pub fn new(node_id: i32, endpoints: Endpoints) -> Self {
        Self {
            id: BrokerId(node_id),
            endpoints,
        }
    }

    fn me(&self, listener: &str) -> Option<BrokerAddress> {
        self.endpoints
            .get(listener)
            .map(|(host, port)| (self.id, host, port))
    }
}

/// Why a single broker refuses reassignments.
const SINGLE: &str = "this broker is not part of a cluster: it has no replicas to move";

impl Control for SingleBroker {
    fn brokers(&self, listener: &str) -> Vec<BrokerAddress> {
        self.me(listener).into_iter().collect()
    }

    fn controller(&self) -> BrokerId {
        self.id
    }

    fn coordinator(&self, listener: &str) -> Option<BrokerAddress> {
        self.me(listener)
    }

    fn coordinates(&self) -> bool {
        true
    }

    fn wait_in_touch(&self, _limit: Duration) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }

    fn leader_wait(&self) -> Duration {
        Duration::ZERO
    }

    fn leadership(&self, _topic: &str, _index: i32) -> Option<Leadership> {
        None
    }

    fn check_replication_factor(&self, topic: &str, factor: i16) -> Result<(), TopicError> {
        if factor == -1 || factor == 1 {
            return Ok(());
        }
        Err(TopicError::new(
            ResponseError::InvalidReplicationFactor,
            format!("topic {topic}: replication factor {factor} exceeds the 1 available broker"),
        ))
    }

    fn create_topic<'a>(
        &'a self,
        topics: &'a TopicRegistry,
        request: NewTopic<'a>,
    ) -> BoxFuture<'a, Result<Arc<Topic>, TopicError>> {
        let NewTopic {
            name,
            partitions,
            configs,
            validate_only,
            max_partitions,
            ..
        } = request;
        Box::pin(std::future::ready(topics.create(
            name,
            partitions,
            configs,
            validate_only,
            max_partitions,
        )))
    }

    fn reported_replication_factor(&self) -> i16 {
        1
    }

    fn refuses(&self, _change: AdminChange<'_>) -> Option<(ResponseError, String)> {
        None
    }

    fn check_reassignments(&self) -> Result<(), &'static str> {
        Err(SINGLE)
    }

    fn reassign<'a>(
        &'a self,
        _topic: &'a str,
        _partition: i32,
        _replicas: Option<Vec<i32>>,
        _allow_factor_change: bool,
    ) -> BoxFuture<'a, Result<(), (ResponseError, String)>> {
        Box::pin(std::future::ready(Err((
            ResponseError::InvalidRequest,
            SINGLE.to_string(),
        ))))
    }

    fn reassignments(&self) -> Vec<Reassignment> {
        Vec::new()
    }

    fn encode_metrics(
        &self,
        _encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        Ok(())
    }

    fn http_routes(&self) -> Option<axum::Router> {
        None
    }

    fn pipeline_hosting(&self) -> PipelineHosting {
        PipelineHosting::Local
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single() -> SingleBroker {
        let mut endpoints = Endpoints::default();
        endpoints.insert("internal", "host", 9092);
        endpoints.insert("public", "alerts.example.org", 19093);
        SingleBroker::new(7, endpoints)
    }

    #[tokio::test]
    async fn a_single_broker_is_its_own_controller_coordinator_and_leader() {
        let c = single();
        let me = (BrokerId(7), StrBytes::from_static_str("host"), 9092);
        assert_eq!(c.brokers("internal"), vec![me.clone()]);
        assert_eq!(c.controller(), BrokerId(7));
        assert_eq!(c.coordinator("internal"), Some(me));
        // A client of another listener is given that listener's endpoint.
        let public = (
            BrokerId(7),
            StrBytes::from_static_str("alerts.example.org"),
            19093,
        );
        assert_eq!(c.brokers("public"), vec![public.clone()]);
        assert_eq!(c.coordinator("public"), Some(public));
        assert!(c.brokers("other").is_empty());
        assert!(c.coordinates());
        assert!(c.wait_in_touch(Duration::ZERO).await);
        assert_eq!(c.leader_wait(), Duration::ZERO);
        // It knows nothing of partitions it does not host itself.
        assert_eq!(c.leadership("t", 0), None);
        assert_eq!(c.reported_replication_factor(), 1);
        assert!(c.reassignments().is_empty());
        assert_eq!(c.refuses(AdminChange::DeleteTopics), None);
        assert_eq!(c.refuses(AdminChange::AlterConfigs { topic: "t" }), None);
        assert!(c.http_routes().is_none());
        assert_eq!(c.pipeline_hosting(), PipelineHosting::Local);
    }

    #[tokio::test]
    async fn a_single_broker_refuses_replicas_it_does_not_have() {
        let c = single();
        assert!(c.check_replication_factor("t", -1).is_ok());
        assert!(c.check_replication_factor("t", 1).is_ok());
        let e = c.check_replication_factor("t", 3).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor);
        assert_eq!(
            e.message,
            "topic t: replication factor 3 exceeds the 1 available broker"
        );
        assert_eq!(c.check_reassignments(), Err(SINGLE));
        let (code, message) = c.reassign("t", 0, Some(vec![7]), true).await.unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest);
        assert_eq!(message, SINGLE);
    }

    #[tokio::test]
    async fn a_single_broker_creates_topics_in_its_registry() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(starlog_storage::MetaStore::open(&dir.path().join("__meta")).unwrap());
        let topics = TopicRegistry::open(dir.path(), Default::default(), meta).unwrap();
        let request = |validate_only| NewTopic {
            name: "alerts",
            partitions: 2,
            replication_factor: -1,
            configs: BTreeMap::new(),
            validate_only,
            max_partitions: 10,
        };
        let checked = single().create_topic(&topics, request(true)).await.unwrap();
        assert!(checked.partitions.is_empty());
        assert!(topics.get("alerts").is_none());
        let created = single()
            .create_topic(&topics, request(false))
            .await
            .unwrap();
        assert_eq!(created.partition_count(), 2);
        assert!(created.hosted().all(|(_, p)| p.leads_alone()));
        let again = single().create_topic(&topics, request(false)).await;
        assert_eq!(again.unwrap_err().code, ResponseError::TopicAlreadyExists);
    }
}
