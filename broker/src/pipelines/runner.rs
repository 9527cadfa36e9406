//! One in-broker pipeline: a thread that follows the source topic's
//! partitions, runs the chain on every record, makes the outputs durable and
//! then commits its position, like a consumer group named after the
//! pipeline.
//!
//! The thread is woken by appends (the partitions' high-watermark channels),
//! never blocks produce, and works in chunks of at most `CHUNK_BYTES` per
//! partition so a slow chain only delays itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;
use starlog_processors::config::PipelineSpec;
use starlog_processors::{InputRecord, Pipeline, RecordOutcome};
use starlog_storage::CommittedOffset;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::sink::{BrokerSink, OutputPartition};

/// An output partition and its end offset at the last commit.
type OutputMark = (OutputPartition, i64);
use crate::clock::now_ms;
use crate::topics::TopicRegistry;

/// Bytes read from one partition per step.
const CHUNK_BYTES: usize = 1 << 20;
/// Longest sleep between checks for new data, shutdown or new partitions.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Pause after a failed step before retrying from the committed position.
const RETRY_WAIT: Duration = Duration::from_secs(1);
/// Marks committed entries that record an output partition's end.
const OUTPUT_MARK: &str = "starlog-pipeline-output";
/// Marks committed entries that are the pipeline's input position.
const SOURCE_MARK: &str = "starlog-pipeline-source";

/// Counters of one in-broker pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStatus {
    /// Pipeline name.
    pub name: String,
    /// Its committed-position group.
    pub group: String,
    /// Source topic.
    pub source: String,
    /// Input records handled.
    pub records_in: u64,
    /// Candidates that passed the whole chain.
    pub passed: u64,
    /// Candidates skipped by a step.
    pub skipped: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Steps that failed (retried from the committed position).
    pub failures: u64,
    /// Records between the committed position and the high watermark, summed over partitions.
    pub lag: i64,
}

/// Everything a pipeline thread needs.
pub(super) struct Runner {
    pub spec_name: String,
    pub group: String,
    pub source: String,
    pub pipeline: Pipeline,
    pub sink: Arc<BrokerSink>,
    pub topics: Arc<TopicRegistry>,
    pub runtime: Handle,
    pub status: Arc<Mutex<PipelineStatus>>,
    pub shutdown: watch::Receiver<bool>,
}

impl Runner {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Committed input positions by partition, and output marks.
    fn committed(&self) -> (HashMap<i32, i64>, Vec<OutputMark>) {
        let mut positions = HashMap::new();
        let mut markers = Vec::new();
        for c in self.topics.meta().committed_offsets(&self.group) {
            match c.metadata.as_deref() {
                Some(OUTPUT_MARK) => markers.push(((c.topic, c.partition), c.offset)),
                _ if c.topic == self.source => {
                    positions.insert(c.partition, c.offset);
                }
                _ => {}
            }
        }
        (positions, markers)
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let (mut positions, markers) = self.committed();
        self.sink.recover(&markers);
        tracing::info!(pipeline = %self.spec_name, source = %self.source, "in-broker pipeline started");
        while !self.stopping() {
            match self.step(&mut positions) {
                Ok(true) => {}
                Ok(false) => self.wait_for_data(),
                Err(e) => {
                    tracing::warn!(pipeline = %self.spec_name, error = %e, "pipeline step failed; retrying from the committed position");
                    self.status.lock().failures += 1;
                    std::thread::sleep(RETRY_WAIT);
                    // Replay from the committed position like a restart:
                    // outputs of the failed step that were not flushed are
                    // dropped, flushed ones are found again before the next
                    // append.
                    let (committed, markers) = self.committed();
                    positions = committed;
                    self.sink.recover(&markers);
                }
            }
        }
        if let Err(e) = self.pipeline.close() {
            tracing::warn!(pipeline = %self.spec_name, error = %e, "closing the pipeline failed");
        }
        tracing::info!(pipeline = %self.spec_name, "in-broker pipeline stopped");
    }

    fn wait_for_data(&mut self) {
        let Some(topic) = self.topics.get(&self.source) else {
            std::thread::sleep(IDLE_WAIT);
            return;
        };
        let mut receivers: Vec<_> = topic.hosted().map(|(_, p)| p.subscribe()).collect();
        let mut stop = self.shutdown.clone();
        self.runtime.block_on(async {
            let changed =
                futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
            tokio::select! {
                _ = changed => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(IDLE_WAIT) => {}
            }
        });
    }

    /// One pass over the source partitions; true when something was processed.
    fn step(&mut self, positions: &mut HashMap<i32, i64>) -> Result<bool, String> {
        let Some(topic) = self.topics.get(&self.source) else {
            return Ok(false);
        };
        let mut progressed = false;
        let mut lag = 0;
        for (p, partition) in topic.hosted() {
            let start = partition.log().log_start_offset();
            let pos = positions.get(&p).copied().unwrap_or(start).max(start);
            let hw = partition.high_watermark();
            if pos >= hw {
                continue;
            }
            let read = self
                .runtime
                .block_on(partition.read(pos, CHUNK_BYTES))
                .map_err(|e| format!("{}-{p}@{pos}: {e}", self.source))?;
            let mut last = None;
            for chunk in read.chunks {
                last = self.handle_chunk(chunk, p, pos)?.or(last);
            }
            let Some(last) = last else {
                continue;
            };
            self.pipeline
                .flush()
                .map_err(|e| format!("flushing outputs for {}-{p}@{last}: {e}", self.source))?;
            self.commit(p, last + 1)?;
            positions.insert(p, last + 1);
            lag += hw - (last + 1);
            progressed = true;
        }
        let counters = self.pipeline.counters();
        let mut s = self.status.lock();
        s.passed = counters.chain.passed;
        s.skipped = counters.chain.skipped;
        s.dead_lettered = counters.dead_lettered;
        s.records_in = counters.records;
        s.lag = lag;
        Ok(progressed)
    }

    /// Runs the records of one chunk at or after `from`; the last offset handled.
    fn handle_chunk(&mut self, mut chunk: Bytes, p: i32, from: i64) -> Result<Option<i64>, String> {
        let sets = RecordBatchDecoder::decode_all(&mut chunk).map_err(|e| {
            format!(
                "{}-{p}@{from}: stored batch does not decode: {e}",
                self.source
            )
        })?;
        let mut last = None;
        for r in sets.iter().flat_map(|s| s.records.iter()) {
            if r.offset < from {
                continue;
            }
            let headers: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
                .collect();
            self.sink.set_current(p, r.offset);
            let input = InputRecord {
                topic: &self.source,
                partition: p,
                offset: r.offset,
                key: r.key.as_deref(),
                value: r.value.as_deref().unwrap_or_default(),
                headers: &headers,
            };
            if let RecordOutcome::Failed(e) = self.pipeline.handle(&input) {
                return Err(format!("{}-{p}@{}: {e}", self.source, r.offset));
            }
            last = Some(r.offset);
        }
        Ok(last)
    }

    fn commit(&self, partition: i32, next: i64) -> Result<(), String> {
        let now = now_ms();
        let entry = |topic: String, partition, offset, mark: &str| CommittedOffset {
            topic,
            partition,
            offset,
            leader_epoch: -1,
            metadata: Some(mark.to_string()),
            commit_timestamp_ms: now,
        };
        let mut offsets = vec![entry(self.source.clone(), partition, next, SOURCE_MARK)];
        offsets.extend(
            self.sink
                .take_written()
                .into_iter()
                .map(|((t, p), end)| entry(t, p, end, OUTPUT_MARK)),
        );
        self.topics
            .meta()
            .commit_offsets(&self.group, &offsets)
            .map_err(|e| format!("committing {} position {next}: {e}", self.source))
    }
}

/// The group name under which a pipeline's position is committed.
pub fn group_name(spec: &PipelineSpec) -> String {
    spec.source
        .group
        .clone()
        .unwrap_or_else(|| format!("starlog-pipeline-{}", spec.name))
}
