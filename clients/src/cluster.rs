//! The client's view of the cluster: brokers, topic/partition leaders, group
//! coordinators, and one pooled connection per broker address.
//!
//! Metadata is cached and refreshed on demand: when it is older than
//! `metadata_max_age`, when a caller reports a stale-metadata error
//! (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, a dead connection),
//! or when a topic is missing. Requests that may go to any broker try the
//! known brokers and then the bootstrap list, so a restarted or replaced
//! broker is found again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use tracing::debug;

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// A partition as the last metadata described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: i32,
    /// Leader broker id, -1 when none.
    pub leader: i32,
    /// Leader epoch, -1 when unknown.
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica ids.
    pub isr: Vec<i32>,
    /// Partition-level error, if any.
    pub error: Option<ResponseError>,
}

/// A topic as the last metadata described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Partitions, sorted by number.
    pub partitions: Vec<PartitionInfo>,
    /// Internal topic (e.g. `__consumer_offsets`).
    pub is_internal: bool,
}

impl TopicInfo {
    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Partitions that have a leader now.
    pub fn available(&self) -> impl Iterator<Item = &PartitionInfo> {
        self.partitions.iter().filter(|p| p.leader >= 0)
    }
}

#[derive(Default, Debug)]
struct Cache {
    brokers: BTreeMap<i32, String>,
    topics: HashMap<String, (TopicInfo, Instant)>,
    stale: std::collections::HashSet<String>,
    controller: Option<i32>,
    cluster_id: Option<String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Shared cluster state; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Cluster {
    config: Arc<ClientConfig>,
    pool: Mutex<HashMap<String, Slot>>,
    cache: RwLock<Cache>,
    coordinators: Mutex<HashMap<String, String>>,
}

impl Cluster {
    /// A cluster handle; nothing is dialed until first use.
    pub fn new(config: ClientConfig) -> Result<Arc<Self>> {
        config.validate()?;
        Ok(Arc::new(Self {
            config: Arc::new(config),
            pool: Mutex::new(HashMap::new()),
            cache: RwLock::new(Cache::default()),
            coordinators: Mutex::new(HashMap::new()),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The pooled connection to `addr`, opened (again) when needed.
    pub async fn connect(&self, addr: &str) -> Result<Connection> {
        let slot = Arc::clone(self.pool.lock().entry(addr.to_owned()).or_default());
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.is_alive() {
                return Ok(c.clone());
            }
        }
        let c = Connection::open(addr, &self.config).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Address of broker `id`, from the cache.
    pub fn broker_addr(&self, id: i32) -> Option<String> {
        self.cache.read().brokers.get(&id).cloned()
    }

    /// Known brokers, `id -> host:port`.
    pub fn brokers(&self) -> BTreeMap<i32, String> {
        self.cache.read().brokers.clone()
    }

    /// The controller id from the last metadata.
    pub fn controller(&self) -> Option<i32> {
        self.cache.read().controller
    }

    /// The cluster id from the last metadata.
    pub fn cluster_id(&self) -> Option<String> {
        self.cache.read().cluster_id.clone()
    }

    /// A connection to broker `id`, refreshing metadata once if it is unknown.
    pub async fn connection_to(&self, id: i32) -> Result<Connection> {
        let addr = match self.broker_addr(id) {
            Some(a) => a,
            None => {
                self.refresh(&[], false).await?;
                self.broker_addr(id)
                    .ok_or_else(|| ClientError::NoBrokerAvailable {
                        tried: vec![],
                        last: format!("broker id {id} is not in the metadata"),
                    })?
            }
        };
        self.connect(&addr).await
    }

    /// A connection to any broker: known ones first, then the bootstrap list.
    pub async fn any_connection(&self) -> Result<Connection> {
        let mut candidates: Vec<String> = self.cache.read().brokers.values().cloned().collect();
        for b in &self.config.bootstrap {
            if !candidates.contains(b) {
                candidates.push(b.clone());
            }
        }
        let mut last = String::from("no address to try");
        for addr in &candidates {
            match self.connect(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    debug!(%addr, error = %e, "broker unreachable");
                    last = e.to_string();
                }
            }
        }
        Err(ClientError::NoBrokerAvailable {
            tried: candidates,
            last,
        })
    }

    /// Fetches metadata for `topics` (all topics when empty) from any broker
    /// and merges it into the cache.
    pub async fn refresh(&self, topics: &[String], auto_create: bool) -> Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                        })
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(auto_create);
        let mut last = None;
        // Two rounds over the brokers: a dead pooled connection is replaced
        // on the second.
        for _ in 0..2 {
            let conn = match self.any_connection().await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let v = conn.version(kafka_protocol::messages::ApiKey::Metadata)?;
            let req = if v >= 4 {
                req.clone()
            } else {
                req.clone().with_allow_auto_topic_creation(true)
            };
            match conn.call(&req).await {
                Ok(resp) => {
                    self.merge(&resp, topics);
                    return Ok(resp);
                }
                Err(e) => {
                    debug!(addr = conn.addr(), error = %e, "metadata request failed");
                    conn.close();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ClientError::NoBrokerAvailable {
            tried: vec![],
            last: "metadata".into(),
        }))
    }

    fn merge(&self, resp: &MetadataResponse, asked: &[String]) {
        let mut cache = self.cache.write();
        let brokers: BTreeMap<i32, String> = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        if !brokers.is_empty() {
            cache.brokers = brokers;
        }
        cache.controller = (resp.controller_id.0 >= 0).then_some(resp.controller_id.0);
        if let Some(id) = &resp.cluster_id {
            cache.cluster_id = Some(id.to_string());
        }
        let now = Instant::now();
        let mut seen = std::collections::HashSet::new();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            seen.insert(name.clone());
            cache.stale.remove(&name);
            match ResponseError::try_from_code(t.error_code) {
                None => {
                    let mut partitions: Vec<PartitionInfo> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                            isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                            error: ResponseError::try_from_code(p.error_code),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    let info = TopicInfo {
                        name: name.clone(),
                        partitions,
                        is_internal: t.is_internal,
                    };
                    cache.topics.insert(name, (info, now));
                }
                Some(_) => {
                    cache.topics.remove(&name);
                }
            }
        }
        for t in asked {
            if !seen.contains(t) {
                cache.topics.remove(t);
            }
        }
    }

    /// Marks `topic`'s metadata stale so the next use refreshes it.
    pub fn invalidate(&self, topic: &str) {
        self.cache.write().stale.insert(topic.to_owned());
    }

    /// The topic's metadata: cached when fresh, else fetched (auto-creating
    /// it when asked), waiting a bounded time for partitions to get leaders.
    pub async fn topic(&self, topic: &str, auto_create: bool) -> Result<TopicInfo> {
        if let Some(t) = self.cached_topic(topic) {
            return Ok(t);
        }
        let names = [topic.to_owned()];
        let mut last_err = None;
        for attempt in 0..20u32 {
            if attempt > 0 {
                tokio::time::sleep(self.config.retry_backoff).await;
            }
            let resp = match self.refresh(&names, auto_create).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let code = resp
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                .map(|t| t.error_code);
            match code.and_then(ResponseError::try_from_code) {
                None if code.is_some() => {
                    if let Some(t) = self.cache.read().topics.get(topic) {
                        if !t.0.partitions.is_empty()
                            && t.0.partitions.iter().all(|p| p.leader >= 0)
                        {
                            return Ok(t.0.clone());
                        }
                    }
                    last_err = Some(ClientError::NoLeader {
                        topic: topic.to_owned(),
                        partition: -1,
                    });
                }
                None => {
                    last_err = Some(ClientError::UnknownTopic {
                        topic: topic.to_owned(),
                    })
                }
                Some(ResponseError::UnknownTopicOrPartition) if !auto_create => {
                    return Err(ClientError::UnknownTopic {
                        topic: topic.to_owned(),
                    })
                }
                Some(e) if e.is_retriable() || e == ResponseError::UnknownTopicOrPartition => {
                    last_err = Some(ClientError::Broker {
                        context: format!("metadata of {topic}"),
                        error: e,
                    })
                }
                Some(e) => {
                    return Err(ClientError::Broker {
                        context: format!("metadata of {topic}"),
                        error: e,
                    })
                }
            }
        }
        Err(last_err.unwrap_or(ClientError::UnknownTopic {
            topic: topic.to_owned(),
        }))
    }

    /// The topic's partition count, from the cache without copying the
    /// topic's metadata when fresh (the producer's per-record path).
    pub async fn partition_count(&self, topic: &str, auto_create: bool) -> Result<i32> {
        {
            let cache = self.cache.read();
            if !cache.stale.contains(topic) {
                if let Some((t, at)) = cache.topics.get(topic) {
                    if at.elapsed() < self.config.metadata_max_age {
                        return Ok(t.partition_count());
                    }
                }
            }
        }
        Ok(self.topic(topic, auto_create).await?.partition_count())
    }

    /// The cached topic, if fresh and not marked stale.
    pub fn cached_topic(&self, topic: &str) -> Option<TopicInfo> {
        let cache = self.cache.read();
        if cache.stale.contains(topic) {
            return None;
        }
        cache
            .topics
            .get(topic)
            .filter(|(_, at)| at.elapsed() < self.config.metadata_max_age)
            .map(|(t, _)| t.clone())
    }

    /// The leader of a partition (refreshing when unknown).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        let info = self.topic(topic, false).await?;
        let p = info
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| ClientError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })?;
        if p.leader < 0 {
            self.invalidate(topic);
            return Err(ClientError::NoLeader {
                topic: topic.to_owned(),
                partition,
            });
        }
        Ok(p.leader)
    }

    /// The group coordinator's connection (FindCoordinator, cached).
    pub async fn coordinator(&self, group: &str) -> Result<Connection> {
        let cached = self.coordinators.lock().get(group).cloned();
        if let Some(addr) = cached {
            match self.connect(&addr).await {
                Ok(c) => return Ok(c),
                Err(_) => {
                    self.coordinators.lock().remove(group);
                }
            }
        }
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let mut last = None;
        for attempt in 0..10u32 {
            if attempt > 0 {
                tokio::time::sleep(self.config.retry_backoff).await;
            }
            let conn = match self.any_connection().await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let resp = match conn.call(&req).await {
                Ok(r) => r,
                Err(e) => {
                    conn.close();
                    last = Some(e);
                    continue;
                }
            };
            if let Some(e) = ClientError::broker(
                format!("FindCoordinator for group {group}"),
                resp.error_code,
            ) {
                if e.is_retriable() {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
            let addr = format!("{}:{}", resp.host, resp.port);
            let c = self.connect(&addr).await?;
            self.coordinators.lock().insert(group.to_owned(), addr);
            return Ok(c);
        }
        Err(last.unwrap_or(ClientError::Group {
            group: group.to_owned(),
            reason: "no coordinator".into(),
        }))
    }

    /// Forgets the cached coordinator of `group` (after NOT_COORDINATOR).
    pub fn forget_coordinator(&self, group: &str) {
        self.coordinators.lock().remove(group);
    }

    /// Sleeps the retry backoff.
    pub async fn backoff(&self) {
        tokio::time::sleep(self.config.retry_backoff).await;
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }
}
