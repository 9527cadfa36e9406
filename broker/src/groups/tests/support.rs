//! Test doubles and request builders shared by the coordinator tests.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::groups::{CommittedOffset, GroupBackend, GroupConfig, GroupCoordinator};

/// group -> (topic, partition) -> offset.
type OffsetMap = BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>;

/// An offset store in memory, with topics `alerts` (4 partitions) and
/// `ztf-buffer` (2 partitions). `fail_writes` makes every write fail.
#[derive(Debug, Default)]
pub(crate) struct MemoryBackend {
    offsets: Mutex<OffsetMap>,
    topics: HashMap<String, i32>,
    pub(crate) fail_writes: AtomicBool,
}

impl MemoryBackend {
    pub(crate) fn new() -> Self {
        Self {
            offsets: Mutex::new(BTreeMap::new()),
            topics: HashMap::from([("alerts".to_owned(), 4), ("ztf-buffer".to_owned(), 2)]),
            fail_writes: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.fail_writes.store(failing, Ordering::SeqCst);
    }

    /// The stored offset of one partition.
    pub(crate) fn offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.offsets
            .lock()
            .get(group)
            .and_then(|g| g.get(&(topic.to_owned(), partition)))
            .cloned()
    }

    /// Groups that have offsets (the trait method, callable without the trait in scope).
    pub(crate) fn groups_with_offsets_for_test(&self) -> Vec<String> {
        GroupBackend::groups_with_offsets(self)
    }

    fn check_writable(&self) -> Result<(), String> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err("disk full (test double)".to_owned())
        } else {
            Ok(())
        }
    }
}

impl GroupBackend for MemoryBackend {
    fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), String> {
        self.check_writable()?;
        let mut all = self.offsets.lock();
        let entry = all.entry(group.to_owned()).or_default();
        for offset in offsets {
            entry.insert((offset.topic.clone(), offset.partition), offset.clone());
        }
        Ok(())
    }

    fn committed_offsets(&self, group: &str) -> Vec<CommittedOffset> {
        self.offsets
            .lock()
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    fn groups_with_offsets(&self) -> Vec<String> {
        self.offsets
            .lock()
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<(), String> {
        self.check_writable()?;
        let mut all = self.offsets.lock();
        if let Some(entry) = all.get_mut(group) {
            for key in partitions {
                entry.remove(key);
            }
            if entry.is_empty() {
                all.remove(group);
            }
        }
        Ok(())
    }

    fn delete_group(&self, group: &str) -> Result<(), String> {
        self.check_writable()?;
        self.offsets.lock().remove(group);
        Ok(())
    }

    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).copied()
    }
}

/// Kafka defaults, except no initial rebalance delay.
pub(crate) fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

pub(crate) fn setup(config: GroupConfig) -> (Arc<GroupCoordinator>, Arc<MemoryBackend>) {
    let backend = Arc::new(MemoryBackend::new());
    let coordinator = GroupCoordinator::new(Arc::clone(&backend) as Arc<dyn GroupBackend>, config);
    (coordinator, backend)
}

pub(crate) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

pub(crate) fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Fails the test unless `message` encodes at `version`.
pub(crate) fn assert_encodes<T: Encodable>(message: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(error) = message.encode(&mut buf, version) {
        panic!("response does not encode at v{version}: {error}");
    }
}

/// Session 10 s, rebalance 30 s.
pub(crate) fn join_request(
    group: &str,
    member: &str,
    protocols: &[(&str, &[u8])],
) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 30_000;
    req.protocol_type = s("consumer");
    req.protocols = protocols
        .iter()
        .map(|(name, metadata)| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s(name);
            p.metadata = Bytes::copy_from_slice(metadata);
            p
        })
        .collect();
    req
}

pub(crate) async fn join(
    c: &GroupCoordinator,
    req: JoinGroupRequest,
    version: i16,
    client: &str,
) -> JoinGroupResponse {
    let response = c.join_group(req, version, client, "/127.0.0.1").await;
    assert_encodes(&response, version);
    response
}

/// A new member's full JoinGroup at v5: MEMBER_ID_REQUIRED, then the rejoin.
/// Returns the final response (after the rebalance completes).
pub(crate) async fn join_new(
    c: &GroupCoordinator,
    group: &str,
    client: &str,
    protocols: &[(&str, &[u8])],
) -> JoinGroupResponse {
    let first = join(c, join_request(group, "", protocols), 5, client).await;
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    assert!(
        first.member_id.starts_with(&format!("{client}-")),
        "member id {:?}",
        first.member_id
    );
    join(
        c,
        join_request(group, first.member_id.as_str(), protocols),
        5,
        client,
    )
    .await
}

pub(crate) fn sync_request(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.generation_id = generation;
    req.assignments = assignments
        .iter()
        .map(|(member, bytes)| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = s(member);
            a.assignment = Bytes::copy_from_slice(bytes);
            a
        })
        .collect();
    req
}

pub(crate) async fn sync(
    c: &GroupCoordinator,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let response = c.sync_group(req, version).await;
    assert_encodes(&response, version);
    response
}

pub(crate) async fn heartbeat(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
) -> i16 {
    let mut req = HeartbeatRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.generation_id = generation;
    let response = c.heartbeat(req, 4).await;
    assert_encodes(&response, 4);
    response.error_code
}

pub(crate) async fn leave(
    c: &GroupCoordinator,
    group: &str,
    members: &[&str],
    version: i16,
) -> LeaveGroupResponse {
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(s(group));
    if version >= 3 {
        req.members = members
            .iter()
            .map(|m| {
                let mut identity = MemberIdentity::default();
                identity.member_id = s(m);
                identity
            })
            .collect();
    } else {
        req.member_id = s(members.first().copied().unwrap_or(""));
    }
    let response = c.leave_group(req, version).await;
    assert_encodes(&response, version);
    response
}

/// Commit `offsets` (topic, partition, offset) at OffsetCommit v8; returns
/// (topic, partition, error code) in request order.
pub(crate) async fn commit(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
) -> Vec<(String, i32, i16)> {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.generation_id_or_member_epoch = generation;
    for (topic, partition, offset) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = 7;
        p.committed_metadata = Some(s("meta"));
        let existing = req.topics.iter_mut().find(|t| t.name.as_str() == *topic);
        match existing {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    let response = c.offset_commit(req, 8).await;
    assert_encodes(&response, 8);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.as_str().to_owned(), p.partition_index, p.error_code))
        })
        .collect()
}

/// OffsetFetch v7 of one group; `None` topics fetches everything. Returns
/// (top-level error, [(topic, partition, offset, metadata, error)]).
pub(crate) async fn fetch(
    c: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> (i16, Vec<(String, i32, i64, String, i16)>) {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(s(group));
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|(name, partitions)| {
                let mut t = OffsetFetchRequestTopic::default();
                t.name = TopicName(s(name));
                t.partition_indexes = partitions.to_vec();
                t
            })
            .collect()
    });
    let response = c.offset_fetch(req, 7).await;
    assert_encodes(&response, 7);
    let partitions = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.as_str().to_owned(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default(),
                    p.error_code,
                )
            })
        })
        .collect();
    (response.error_code, partitions)
}

/// The protocols most tests use.
pub(crate) const RANGE: &[(&str, &[u8])] = &[("range", b"m")];

/// Two members `a` (leader) and `b` in a Stable group, formed the way real
/// clients get there with no initial delay: `a` forms generation 1 alone,
/// `b`'s join starts a rebalance, `a` notices through its heartbeat and
/// rejoins, both land in generation 2. Returns (leader, follower, generation).
pub(crate) async fn stable_pair(c: &Arc<GroupCoordinator>, group: &str) -> (String, String, i32) {
    let a = join_new(c, group, "a", RANGE).await;
    assert_eq!(a.error_code, 0);
    assert_eq!(a.generation_id, 1);
    assert_eq!(a.leader, a.member_id);
    let leader = a.member_id.as_str().to_owned();

    let b_task = {
        let c = Arc::clone(c);
        let group = group.to_owned();
        tokio::spawn(async move { join_new(&c, &group, "b", RANGE).await })
    };
    wait_for_heartbeat(c, group, &leader, 1, ResponseError::RebalanceInProgress).await;
    let a2 = join(c, join_request(group, &leader, RANGE), 5, "a").await;
    let b = b_task.await.unwrap();
    assert_eq!(a2.error_code, 0);
    assert_eq!(b.error_code, 0);
    assert_eq!(a2.generation_id, 2);
    assert_eq!(b.generation_id, 2);
    assert_eq!(a2.leader.as_str(), leader);
    assert_eq!(a2.members.len(), 2);
    assert!(b.members.is_empty());
    let follower = b.member_id.as_str().to_owned();

    let assignments: Vec<(&str, &[u8])> = vec![(leader.as_str(), b"L"), (follower.as_str(), b"F")];
    let (sl, sf) = tokio::join!(
        sync(c, sync_request(group, &leader, 2, &assignments), 5),
        sync(c, sync_request(group, &follower, 2, &[]), 5)
    );
    assert_eq!(sl.error_code, 0);
    assert_eq!(sf.error_code, 0);
    assert_eq!(sl.assignment.as_ref(), b"L");
    assert_eq!(sf.assignment.as_ref(), b"F");
    (leader, follower, 2)
}

/// Heartbeats (yielding in between, at most 1000 times) until the answer is
/// `expected`; fails the test otherwise.
pub(crate) async fn wait_for_heartbeat(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    expected: ResponseError,
) {
    let mut last = 0;
    for _ in 0..1000 {
        last = heartbeat(c, group, member, generation).await;
        if last == expected.code() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("heartbeat never returned {expected:?}; last code {last}");
}
