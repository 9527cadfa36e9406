//! The in-broker [`TopicSink`]: writers' records are appended to this
//! broker's own partitions, without a network hop.
//!
//! Outputs are deterministic so that a restart neither loses nor repeats:
//! each output record carries a `starlog-source` header naming the input
//! record (`topic/partition/offset`) and goes to output partition
//! `source partition % output partitions`, in input order. After a crash
//! between an output append and the position commit, the runner replays from
//! the committed position and this sink drops every output already present
//! in its output partition (see [`BrokerSink::recover`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use starlog_processors::sink::Header;
use starlog_processors::{SinkError, TopicSink};
use tokio::runtime::Handle;

use crate::clock::now_ms;
use crate::topics::TopicRegistry;

/// Header naming the input record an output came from.
pub const SOURCE_HEADER: &str = "starlog-source";

/// Largest batch the sink appends at once.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One output partition.
pub type OutputPartition = (String, i32);

#[derive(Debug)]
struct Pending {
    key: Option<Bytes>,
    value: Bytes,
    headers: IndexMap<StrBytes, Option<Bytes>>,
}

#[derive(Debug, Default)]
struct State {
    /// The input record being handled: (partition, offset).
    current: Option<(i32, i64)>,
    /// Outputs waiting for `flush`, per output partition, in order.
    pending: BTreeMap<OutputPartition, Vec<Pending>>,
    /// Output partitions appended to since the last `take_written`.
    written: Vec<OutputPartition>,
    /// Per output partition: highest source offset per source partition
    /// already present (found by `recover`).
    present: HashMap<OutputPartition, HashMap<i32, i64>>,
}

/// Appends pipeline outputs to local partitions.
#[derive(Debug)]
pub struct BrokerSink {
    topics: Arc<TopicRegistry>,
    source_topic: String,
    default_partitions: i32,
    max_partitions: i32,
    runtime: Handle,
    state: Mutex<State>,
}

fn source_header(topic: &str, partition: i32, offset: i64) -> Bytes {
    Bytes::from(format!("{topic}/{partition}/{offset}"))
}

/// Parses a `starlog-source` header into (topic, partition, offset).
pub fn parse_source_header(value: &[u8]) -> Option<(String, i32, i64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (rest, offset) = text.rsplit_once('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((
        topic.to_string(),
        partition.parse().ok()?,
        offset.parse().ok()?,
    ))
}

impl BrokerSink {
    /// A sink for a pipeline reading `source_topic`; blocking calls run on `runtime`.
    pub fn new(
        topics: Arc<TopicRegistry>,
        source_topic: &str,
        default_partitions: i32,
        max_partitions: i32,
        runtime: Handle,
    ) -> Self {
        Self {
            topics,
            source_topic: source_topic.to_string(),
            default_partitions,
            max_partitions,
            runtime,
            state: Mutex::new(State::default()),
        }
    }

    /// Names the input record whose outputs follow.
    pub fn set_current(&self, partition: i32, offset: i64) {
        self.state.lock().current = Some((partition, offset));
    }

    /// Output partitions written since the last call, with their log end now.
    pub fn take_written(&self) -> Vec<(OutputPartition, i64)> {
        let written = std::mem::take(&mut self.state.lock().written);
        written
            .into_iter()
            .filter_map(|(topic, p)| {
                let end = self.topics.get(&topic)?.partition(p)?.high_watermark();
                Some(((topic, p), end))
            })
            .collect()
    }

    /// Scans each output partition from `from` (the end recorded at the
    /// last commit) and remembers which inputs already have their outputs
    /// there, so a replay after a crash does not write them again.
    pub fn recover(&self, markers: &[(OutputPartition, i64)]) {
        let mut present: HashMap<OutputPartition, HashMap<i32, i64>> = HashMap::new();
        for ((topic, p), from) in markers {
            let Some(partition) = self
                .topics
                .get(topic)
                .and_then(|t| t.partition(*p).cloned())
            else {
                continue;
            };
            let mut offset = *from;
            while offset < partition.high_watermark() {
                let Ok(read) = self
                    .runtime
                    .block_on(partition.read(offset, MAX_BATCH_BYTES))
                else {
                    break;
                };
                let mut next = offset;
                for chunk in read.chunks {
                    let mut bytes = chunk;
                    let Ok(sets) = RecordBatchDecoder::decode_all(&mut bytes) else {
                        break;
                    };
                    for r in sets.iter().flat_map(|s| s.records.iter()) {
                        next = next.max(r.offset + 1);
                        let found = r
                            .headers
                            .iter()
                            .find(|(k, _)| k.as_str() == SOURCE_HEADER)
                            .and_then(|(_, v)| v.as_ref())
                            .and_then(|v| parse_source_header(v));
                        if let Some((t, sp, so)) = found {
                            if t == self.source_topic {
                                let slot = present
                                    .entry((topic.clone(), *p))
                                    .or_default()
                                    .entry(sp)
                                    .or_insert(so);
                                *slot = (*slot).max(so);
                            }
                        }
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
        }
        if !present.is_empty() {
            tracing::info!(
                outputs = present.len(),
                "pipeline outputs found beyond the last commit; they will not be written again"
            );
        }
        self.state.lock().present = present;
    }

    fn output_partition(&self, topic: &str, source_partition: i32) -> Result<i32, SinkError> {
        let t = match self.topics.get(topic) {
            Some(t) => t,
            None => {
                match self.topics.create(
                    topic,
                    self.default_partitions,
                    BTreeMap::new(),
                    false,
                    self.max_partitions,
                ) {
                    Ok(t) => t,
                    Err(_) => self
                        .topics
                        .get(topic)
                        .ok_or_else(|| SinkError::UnknownTopic {
                            topic: topic.to_string(),
                        })?,
                }
            }
        };
        let n = t.partition_count().max(1);
        Ok(source_partition.rem_euclid(n))
    }
}

fn encode(records: &[Pending]) -> Result<Bytes, SinkError> {
    let now = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                // The codec keeps records in one batch while offset minus
                // sequence is constant; -1 is the base sequence of a
                // non-idempotent batch.
                sequence: i32::try_from(i).unwrap_or(i32::MAX).wrapping_sub(1),
                timestamp: now,
                key: p.key.clone(),
                value: Some(p.value.clone()),
                headers: p.headers.clone(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| SinkError::Unavailable {
        reason: format!("cannot encode output batch: {e}"),
    })?;
    Ok(buf.freeze())
}

impl TopicSink for BrokerSink {
    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError> {
        let (sp, so) = self.state.lock().current.unwrap_or((0, -1));
        let op = self.output_partition(topic, sp)?;
        let mut state = self.state.lock();
        let out = (topic.to_string(), op);
        if state
            .present
            .get(&out)
            .and_then(|m| m.get(&sp))
            .is_some_and(|&max| so <= max)
        {
            return Ok(()); // written before a restart
        }
        let mut h: IndexMap<StrBytes, Option<Bytes>> = headers
            .iter()
            .map(|(k, v)| {
                (
                    StrBytes::from_string((*k).to_string()),
                    Some(Bytes::copy_from_slice(v)),
                )
            })
            .collect();
        h.insert(
            StrBytes::from_static_str(SOURCE_HEADER),
            Some(source_header(&self.source_topic, sp, so)),
        );
        state.pending.entry(out).or_default().push(Pending {
            key: key.map(Bytes::copy_from_slice),
            value: Bytes::copy_from_slice(value),
            headers: h,
        });
        Ok(())
    }

    fn flush(&self) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.state.lock().pending);
        for ((topic, p), records) in pending {
            let partition = self
                .topics
                .get(&topic)
                .and_then(|t| t.partition(p).cloned())
                .ok_or_else(|| SinkError::UnknownTopic {
                    topic: topic.clone(),
                })?;
            let mut start = 0;
            while start < records.len() {
                let mut end = start;
                let mut size = 0;
                while end < records.len()
                    && (end == start || size + records[end].value.len() < MAX_BATCH_BYTES)
                {
                    size += records[end].value.len();
                    end += 1;
                }
                let batch = encode(&records[start..end])?;
                self.runtime
                    .block_on(partition.append(batch, 0))
                    .map_err(|e| SinkError::Unavailable {
                        reason: format!("append to {topic}-{p}: {e}"),
                    })?;
                start = end;
            }
            let mut state = self.state.lock();
            if !state.written.contains(&(topic.clone(), p)) {
                state.written.push((topic, p));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_header_round_trips() {
        let h = source_header("ztf_2019.a-b", 3, 1234);
        assert_eq!(
            parse_source_header(&h),
            Some(("ztf_2019.a-b".to_string(), 3, 1234))
        );
        assert_eq!(parse_source_header(b"nonsense"), None);
        assert_eq!(parse_source_header(b"t/x/1"), None);
    }
}
