//! The in-broker [`TopicSink`]: writers' records are appended to this
//! broker's own partitions, without a network hop.
//!
//! Outputs are deterministic so that a restart neither loses nor repeats:
//! each output record carries a `starlog-source` header naming the input
//! record (`topic/partition/offset`) and goes to output partition
//! `source partition % output partitions`, in input order. After a crash
//! between an output append and the position commit, the runner replays from
//! the committed position and this sink drops every output already present
//! in its output partition: before its first append to an output partition
//! in a run, it scans that partition from the end recorded at the last
//! commit (its output mark), or from the log start when no commit recorded
//! one (see [`BrokerSink::recover`]).

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Per output partition: its end at the last commit (from `recover`),
    /// where the scan for outputs already present starts.
    marks: HashMap<OutputPartition, i64>,
    /// Output partitions scanned since the last `recover`.
    scanned: HashSet<OutputPartition>,
    /// Per scanned output partition: highest source offset per source
    /// partition already present.
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

    /// Starts a run from the committed position: forgets outputs not yet
    /// flushed and what earlier scans found, and records `markers` (each
    /// output partition's end at the last commit). Before its first append
    /// to an output partition after this, the sink scans that partition
    /// (from its marker, else from the log start) for outputs of this
    /// pipeline's inputs, so a replay after a crash does not write them
    /// again.
    pub fn recover(&self, markers: &[(OutputPartition, i64)]) {
        let mut state = self.state.lock();
        state.current = None;
        state.pending.clear();
        state.marks = markers.iter().cloned().collect();
        state.scanned.clear();
        state.present.clear();
    }

    /// Highest source offset per source partition of this pipeline's
    /// outputs in `out`, read from `mark` (or the log start) to the high
    /// watermark in steps of at most `MAX_BATCH_BYTES`.
    fn scan(
        &self,
        out: &OutputPartition,
        mark: Option<i64>,
    ) -> Result<HashMap<i32, i64>, SinkError> {
        let (topic, p) = out;
        let unavailable = |reason: String| SinkError::Unavailable { reason };
        let partition = self
            .topics
            .get(topic)
            .and_then(|t| t.partition(*p).cloned())
            .ok_or_else(|| SinkError::UnknownTopic {
                topic: topic.clone(),
            })?;
        let log_start = partition.log().log_start_offset();
        let from = mark.unwrap_or(log_start).max(log_start);
        let hw = partition.high_watermark();
        let mut present: HashMap<i32, i64> = HashMap::new();
        let mut found = 0u64;
        let mut offset = from;
        while offset < hw {
            let read = self
                .runtime
                .block_on(partition.read(offset, MAX_BATCH_BYTES))
                .map_err(|e| {
                    unavailable(format!(
                        "reading {topic}-{p}@{offset} for outputs already written: {e}"
                    ))
                })?;
            let mut next = offset;
            for mut chunk in read.chunks {
                let sets = RecordBatchDecoder::decode_all(&mut chunk).map_err(|e| {
                    unavailable(format!(
                        "{topic}-{p}@{next}: stored batch does not decode while looking for outputs already written: {e}"
                    ))
                })?;
                for r in sets.iter().flat_map(|s| s.records.iter()) {
                    next = next.max(r.offset + 1);
                    let source = r
                        .headers
                        .iter()
                        .find(|(k, _)| k.as_str() == SOURCE_HEADER)
                        .and_then(|(_, v)| v.as_ref())
                        .and_then(|v| parse_source_header(v));
                    // Other writers' records (clients, pipelines reading
                    // other topics) share the partition; only outputs of
                    // this pipeline's source topic count.
                    if let Some((t, sp, so)) = source {
                        if t == self.source_topic && r.offset >= from {
                            let slot = present.entry(sp).or_insert(so);
                            *slot = (*slot).max(so);
                            found += 1;
                        }
                    }
                }
            }
            if next <= offset {
                return Err(unavailable(format!(
                    "{topic}-{p}@{offset}: no records below the high watermark {hw} while looking for outputs already written"
                )));
            }
            offset = next;
        }
        if found > 0 {
            tracing::info!(
                source = %self.source_topic,
                output = %format!("{topic}-{p}"),
                from,
                to = hw,
                found,
                "pipeline outputs found beyond the last commit; they will not be written again"
            );
        } else {
            tracing::debug!(
                source = %self.source_topic,
                output = %format!("{topic}-{p}"),
                from,
                to = hw,
                "no pipeline outputs beyond the last commit"
            );
        }
        Ok(present)
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
        let out = (topic.to_string(), op);
        let mut state = self.state.lock();
        if !state.scanned.contains(&out) {
            // First output to this partition since the run started: find
            // what an earlier run wrote after its last commit.
            let mark = state.marks.get(&out).copied();
            drop(state);
            let present = self.scan(&out, mark)?;
            state = self.state.lock();
            state.scanned.insert(out.clone());
            state.present.insert(out.clone(), present);
        }
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// One broker's topics, kept across simulated pipeline restarts.
    struct Site {
        topics: Arc<TopicRegistry>,
        runtime: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    }

    impl Site {
        fn new(outputs: &[&str]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let meta =
                Arc::new(starlog_storage::MetaStore::open(&dir.path().join("__meta")).unwrap());
            let topics =
                Arc::new(TopicRegistry::open(dir.path(), Default::default(), meta).unwrap());
            for t in outputs {
                topics.create(t, 1, BTreeMap::new(), false, 10).unwrap();
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            Self {
                topics,
                runtime,
                _dir: dir,
            }
        }

        /// A fresh sink, as a (re)started pipeline reading `in` builds it.
        fn sink(&self) -> BrokerSink {
            BrokerSink::new(
                Arc::clone(&self.topics),
                "in",
                1,
                10,
                self.runtime.handle().clone(),
            )
        }

        /// What the runner does for input records `offsets` of source
        /// partition 0 after a (re)start from `markers`: each input's outputs
        /// go to `outputs`, then one flush. Returns the output marks the
        /// following commit would record.
        fn run(
            &self,
            sink: &BrokerSink,
            markers: Option<&[(OutputPartition, i64)]>,
            offsets: std::ops::Range<i64>,
            outputs: &[&str],
        ) -> Vec<(OutputPartition, i64)> {
            if let Some(markers) = markers {
                sink.recover(markers);
            }
            for o in offsets {
                sink.set_current(0, o);
                for t in outputs {
                    sink.send(t, None, format!("{t}:{o}").as_bytes(), &[])
                        .unwrap();
                }
            }
            sink.flush().unwrap();
            sink.take_written()
        }

        /// Appends a record as another writer would.
        fn append_foreign(&self, topic: &str, source: Option<&str>) {
            let mut headers = IndexMap::new();
            if let Some(s) = source {
                headers.insert(
                    StrBytes::from_static_str(SOURCE_HEADER),
                    Some(Bytes::copy_from_slice(s.as_bytes())),
                );
            }
            let batch = encode(&[Pending {
                key: None,
                value: Bytes::from_static(b"foreign"),
                headers,
            }])
            .unwrap();
            let partition = self
                .topics
                .get(topic)
                .unwrap()
                .partition(0)
                .cloned()
                .unwrap();
            self.runtime.block_on(partition.append(batch, 0)).unwrap();
        }

        /// The values in partition 0 of `topic`, in order.
        fn values(&self, topic: &str) -> Vec<String> {
            let partition = self
                .topics
                .get(topic)
                .unwrap()
                .partition(0)
                .cloned()
                .unwrap();
            let read = self
                .runtime
                .block_on(partition.read(0, usize::MAX / 2))
                .unwrap();
            let mut out = Vec::new();
            for mut chunk in read.chunks {
                for set in RecordBatchDecoder::decode_all(&mut chunk).unwrap() {
                    for r in set.records {
                        out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                    }
                }
            }
            out
        }
    }

    fn expected(topic: &str, offsets: std::ops::Range<i64>) -> Vec<String> {
        offsets.map(|o| format!("{topic}:{o}")).collect()
    }

    #[test]
    fn a_crash_before_the_first_commit_writes_nothing_twice() {
        let site = Site::new(&["out"]);
        // Another writer's records share the partition: a client's (no
        // header) and a pipeline reading another topic (whose source offsets
        // must not hide this pipeline's inputs).
        site.append_foreign("out", None);
        site.append_foreign("out", Some("other/0/100"));
        // First run: outputs for inputs 0..5 are durable, then the crash
        // comes before any commit recorded a position or an output mark.
        site.run(&site.sink(), Some(&[]), 0..5, &["out"]);
        // Restart: nothing committed, so the replay starts at the log start.
        site.run(&site.sink(), Some(&[]), 0..5, &["out"]);
        let mut want = vec!["foreign".to_string(), "foreign".to_string()];
        want.extend(expected("out", 0..5));
        assert_eq!(site.values("out"), want);
        // The run goes on: new inputs are written.
        let sink = site.sink();
        site.run(&sink, Some(&[]), 0..7, &["out"]);
        want.extend(expected("out", 5..7));
        assert_eq!(site.values("out"), want);
    }

    #[test]
    fn a_partition_without_a_mark_is_checked_beside_one_with_a_mark() {
        let site = Site::new(&["a", "b"]);
        let sink = site.sink();
        // Inputs 0..3 write to `a` only and are committed with a's mark.
        let marks = site.run(&sink, Some(&[]), 0..3, &["a"]);
        assert_eq!(marks, vec![(("a".to_string(), 0), 3)]);
        // Inputs 3..6 are the first to write to `b` too; the crash comes
        // before their commit.
        site.run(&sink, None, 3..6, &["a", "b"]);
        // Restart from the commit after input 2, with only a's mark.
        let sink = site.sink();
        let marks = site.run(&sink, Some(&marks), 3..6, &["a", "b"]);
        assert_eq!(site.values("a"), expected("a", 0..6));
        assert_eq!(site.values("b"), expected("b", 3..6));
        // Nothing was appended by the replay, so no new marks.
        assert!(marks.is_empty(), "{marks:?}");
        // Later inputs go to both.
        site.run(&sink, None, 6..8, &["a", "b"]);
        assert_eq!(site.values("a"), expected("a", 0..8));
        assert_eq!(site.values("b"), expected("b", 3..8));
    }

    #[test]
    fn a_retry_drops_unflushed_outputs_and_finds_flushed_ones() {
        let site = Site::new(&["a", "b"]);
        let sink = site.sink();
        sink.recover(&[]);
        // A step flushes outputs for inputs 0..2, then handles input 2 and
        // fails before flushing it.
        site.run(&sink, None, 0..2, &["a"]);
        sink.set_current(0, 2);
        sink.send("a", None, b"a:2", &[]).unwrap();
        sink.send("b", None, b"b:2", &[]).unwrap();
        // The runner retries from the committed position (nothing
        // committed) on the same sink.
        site.run(&sink, Some(&[]), 0..3, &["a", "b"]);
        assert_eq!(site.values("a"), expected("a", 0..3));
        assert_eq!(site.values("b"), expected("b", 0..3));
    }

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
