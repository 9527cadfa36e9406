//! Reading an in-broker chain's output live, and judging it.
//!
//! One more consumer (its own group) follows the chain's output topic from
//! before the first input is due, like the run's other groups, and keeps
//! for each output record where it came from (its `starlog-source` header)
//! and when it became visible. Input headers are not copied to outputs, so
//! the output is tied to its input through the producer's ledger of where
//! each acknowledged message was written (partition, offset) → sequence
//! number; resolution happens after the run, because an output can be read
//! before its input's acknowledgement reaches the producer.
//!
//! The verdict: every input the chain should pass appears exactly once;
//! nothing else appears; each output sits in partition
//! `source partition % output partitions`, in input order per source
//! partition; every value is Confluent-framed (magic byte 0, schema id).
//! End-to-end latency is the input's due time → the output is read.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chain::{self, ChainKind};
use crate::client::{LoadConsumer, Received};
use crate::error::BenchError;
use crate::ledger::SeqSet;
use crate::pipeline_metrics::PipelineMetrics;
use crate::stats::{LatencyRecorder, LatencySummary};

/// One output record as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSeen {
    /// The input's partition (from `starlog-source`).
    pub source_partition: i32,
    /// The input's offset.
    pub source_offset: i64,
    /// Where the output sits.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When the consumer had it.
    pub at: Instant,
}

/// Everything the output reader saw.
#[derive(Debug, Default)]
pub struct OutputLog {
    /// Output records tied to an input of the source topic.
    pub seen: Vec<OutputSeen>,
    /// Records without a readable `starlog-source` naming the source topic.
    pub foreign: u64,
    /// Values that are not Confluent-framed Avro.
    pub not_framed: u64,
    /// The first problem, naming the record.
    pub first_problem: Option<String>,
    /// Errors the client reported while polling.
    pub client_errors: u64,
}

impl OutputLog {
    fn problem(&mut self, text: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(text());
        }
    }

    /// Notes one output record read at `now`.
    pub fn observe(&mut self, source_topic: &str, rec: Received<'_>, now: Instant) {
        let at = || {
            format!(
                "output {} partition {} offset {}",
                rec.topic, rec.partition, rec.offset
            )
        };
        if rec.value.len() < 5 || rec.value[0] != 0 {
            self.not_framed += 1;
            self.problem(|| format!("{}: value is not Confluent-framed Avro", at()));
        }
        match rec.source_header.and_then(chain::parse_source) {
            Some((topic, p, o)) if topic == source_topic => self.seen.push(OutputSeen {
                source_partition: p,
                source_offset: o,
                partition: rec.partition,
                offset: rec.offset,
                at: now,
            }),
            Some((topic, ..)) => {
                self.foreign += 1;
                self.problem(|| format!("{}: comes from topic {topic}", at()));
            }
            None => {
                self.foreign += 1;
                self.problem(|| format!("{}: no readable {} header", at(), chain::SOURCE_HEADER));
            }
        }
    }
}

/// Reads the output topic on its own thread until `stop`; `counter` holds
/// the number of output records read so far.
pub fn spawn_reader(
    mut consumer: Box<dyn LoadConsumer>,
    source_topic: String,
    ready: mpsc::Sender<Result<(), BenchError>>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    assign_timeout: Duration,
) -> JoinHandle<OutputLog> {
    std::thread::spawn(move || {
        let mut log = OutputLog::default();
        let assigned = consumer.wait_assigned(assign_timeout);
        let failed = assigned.is_err();
        // The runner waits on this channel; if it is gone, the run is over.
        let _ = ready.send(assigned);
        if failed {
            return log;
        }
        while !stop.load(Ordering::Acquire) {
            let polled = consumer.poll(Duration::from_millis(100), &mut |rec| {
                log.observe(&source_topic, rec, Instant::now());
                counter.store((log.seen.len() as u64) + log.foreign, Ordering::Release);
                Ok(())
            });
            if let Err(e) = polled {
                log.client_errors += 1;
                tracing::warn!(
                    topic = chain::OUTPUT_TOPIC,
                    "chain output consumer error: {e}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        log
    })
}

/// What the producer knows, to tie outputs to inputs.
#[derive(Debug, Clone, Copy)]
pub struct InputLedger<'a> {
    /// The run's start; due times count from it.
    pub epoch: Instant,
    /// (partition, offset) → sequence number, for every acknowledged input.
    pub placed: &'a HashMap<(i32, i64), u64>,
    /// Due time of each sequence number, ns after `epoch`.
    pub due_ns: &'a [u64],
    /// The acknowledged sequence numbers.
    pub acked: &'a SeqSet,
}

/// The chain's side of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainResult {
    /// The chain's name.
    pub chain: String,
    /// Topic read and topic written.
    pub source_topic: String,
    /// The output topic.
    pub output_topic: String,
    /// Acknowledged inputs the chain must pass.
    pub expected: u64,
    /// Output records read (duplicates and strays included).
    pub outputs: u64,
    /// Distinct expected inputs seen in the output.
    pub delivered: u64,
    /// Expected inputs with no output.
    pub missing: u64,
    /// Outputs repeating an input already seen.
    pub duplicates: u64,
    /// Outputs of inputs the chain must not pass.
    pub unexpected: u64,
    /// Outputs naming no acknowledged input (or another topic, or no header).
    pub unknown: u64,
    /// Outputs in the wrong partition.
    pub misrouted: u64,
    /// Outputs behind a later input of the same source partition.
    pub out_of_order: u64,
    /// Values not Confluent-framed.
    pub not_framed: u64,
    /// The first problem found.
    pub first_problem: Option<String>,
    /// Input due time → output read.
    pub end_to_end: LatencySummary,
    /// The broker's counters for the pipeline at the end.
    pub metrics: Option<PipelineMetrics>,
    /// Why the counters are absent, or how they disagree with the output.
    pub metrics_problem: Option<String>,
    /// Output errors the client reported while polling.
    pub client_errors: u64,
    /// Exactly the expected outputs, once each, in place, and the broker's
    /// counters agree.
    pub complete: bool,
}

/// Judges the output against the inputs (metrics are added by `with_metrics`).
pub fn judge(
    kind: ChainKind,
    source_topic: &str,
    log: &OutputLog,
    inputs: InputLedger<'_>,
    output_partitions: i32,
) -> ChainResult {
    let mut first_problem = log.first_problem.clone();
    let mut problem = |text: String| {
        if first_problem.is_none() {
            first_problem = Some(text);
        }
    };
    let mut seen = SeqSet::default();
    let mut e2e = LatencyRecorder::new();
    let (mut duplicates, mut unexpected, mut unknown) = (0u64, 0u64, log.foreign);
    let (mut misrouted, mut out_of_order) = (0u64, 0u64);
    let mut last_source: HashMap<(i32, i32), i64> = HashMap::new();
    let mut expected_set = SeqSet::default();
    for seq in 0..u64::try_from(inputs.due_ns.len()).unwrap_or(0) {
        if inputs.acked.contains(seq) && kind.passes(seq) {
            expected_set.insert(seq);
        }
    }
    let mut unknown_places = HashSet::new();
    for o in &log.seen {
        let here = || format!("output partition {} offset {}", o.partition, o.offset);
        let Some(&seq) = inputs.placed.get(&(o.source_partition, o.source_offset)) else {
            unknown += 1;
            unknown_places.insert((o.source_partition, o.source_offset));
            problem(format!(
                "{}: source partition {} offset {} is no acknowledged input",
                here(),
                o.source_partition,
                o.source_offset
            ));
            continue;
        };
        if output_partitions > 0 && o.partition != o.source_partition % output_partitions {
            misrouted += 1;
            problem(format!(
                "{}: input partition {} belongs in output partition {}",
                here(),
                o.source_partition,
                o.source_partition % output_partitions
            ));
        }
        let key = (o.partition, o.source_partition);
        if let Some(&prev) = last_source.get(&key) {
            if o.source_offset < prev {
                out_of_order += 1;
                problem(format!(
                    "{}: input offset {} after input offset {prev}",
                    here(),
                    o.source_offset
                ));
            }
        }
        last_source.insert(
            key,
            o.source_offset
                .max(last_source.get(&key).copied().unwrap_or(-1)),
        );
        if !kind.passes(seq) {
            unexpected += 1;
            problem(format!("{}: input {seq} should not have passed", here()));
            continue;
        }
        if !seen.insert(seq) {
            duplicates += 1;
            problem(format!("{}: input {seq} written again", here()));
            continue;
        }
        if let Some(&due) = inputs
            .due_ns
            .get(usize::try_from(seq).unwrap_or(usize::MAX))
        {
            let due = inputs.epoch + Duration::from_nanos(due);
            e2e.record(o.at.saturating_duration_since(due));
        }
    }
    let (missing, first_missing) = expected_set.missing_from(&seen, 5);
    if missing > 0 {
        problem(format!(
            "{missing} expected inputs have no output (first: {first_missing:?})"
        ));
    }
    let complete = missing == 0
        && duplicates == 0
        && unexpected == 0
        && unknown == 0
        && misrouted == 0
        && out_of_order == 0
        && log.not_framed == 0;
    ChainResult {
        chain: kind.name().to_string(),
        source_topic: source_topic.to_string(),
        output_topic: chain::OUTPUT_TOPIC.to_string(),
        expected: expected_set.len(),
        outputs: log.seen.len() as u64 + log.foreign,
        delivered: seen.len(),
        missing,
        duplicates,
        unexpected,
        unknown,
        misrouted,
        out_of_order,
        not_framed: log.not_framed,
        first_problem,
        end_to_end: e2e.summary(),
        metrics: None,
        metrics_problem: None,
        client_errors: log.client_errors,
        complete,
    }
}

impl ChainResult {
    /// Adds the broker's counters: they must say every acknowledged input
    /// went in, exactly the expected ones passed, and nothing is left.
    pub fn with_metrics(
        mut self,
        metrics: Result<PipelineMetrics, BenchError>,
        acknowledged: u64,
    ) -> Self {
        match metrics {
            Err(e) => {
                self.metrics_problem = Some(e.to_string());
                self.complete = false;
            }
            Ok(m) => {
                let mut wrong = Vec::new();
                if m.records_in != acknowledged {
                    wrong.push(format!(
                        "records in {} != acknowledged {acknowledged}",
                        m.records_in
                    ));
                }
                if m.passed != self.expected {
                    wrong.push(format!("passed {} != expected {}", m.passed, self.expected));
                }
                if m.lag != 0 {
                    wrong.push(format!("final lag {}", m.lag));
                }
                if m.dead_lettered != 0 {
                    wrong.push(format!("{} dead-lettered", m.dead_lettered));
                }
                if !wrong.is_empty() {
                    self.metrics_problem = Some(wrong.join("; "));
                    self.complete = false;
                }
                self.metrics = Some(m);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(p: i32, o: i64, value: &'a [u8], src: Option<&'a [u8]>) -> Received<'a> {
        Received {
            topic: chain::OUTPUT_TOPIC,
            partition: p,
            offset: o,
            value,
            seq_header: None,
            sent_header: None,
            source_header: src,
        }
    }

    const V: &[u8] = &[0, 0, 0, 4, 76, 1, 2];

    /// Inputs 0..4 on partitions 0,1,0,1 at offsets 0,0,1,1, due 1 ms apart.
    type Ledger = (Instant, HashMap<(i32, i64), u64>, Vec<u64>, SeqSet);

    fn ledger() -> Ledger {
        let epoch = Instant::now();
        let mut placed = HashMap::new();
        let mut acked = SeqSet::default();
        for seq in 0..4u64 {
            placed.insert(((seq % 2) as i32, (seq / 2) as i64), seq);
            acked.insert(seq);
        }
        (
            epoch,
            placed,
            vec![0, 1_000_000, 2_000_000, 3_000_000],
            acked,
        )
    }

    #[test]
    fn every_input_once_in_place_is_complete_and_timed() {
        let (epoch, placed, due, acked) = ledger();
        let mut log = OutputLog::default();
        let at = epoch + Duration::from_millis(10);
        for (p, o) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let h = format!("{}/{p}/{o}", chain::SOURCE_TOPIC);
            log.observe(chain::SOURCE_TOPIC, rec(p, o, V, Some(h.as_bytes())), at);
        }
        let inputs = InputLedger {
            epoch,
            placed: &placed,
            due_ns: &due,
            acked: &acked,
        };
        let r = judge(ChainKind::PassAll, chain::SOURCE_TOPIC, &log, inputs, 2);
        assert!(r.complete, "{r:#?}");
        assert_eq!(
            (r.expected, r.delivered, r.outputs, r.missing),
            (4, 4, 4, 0)
        );
        assert_eq!(r.end_to_end.count, 4);
        // 10, 9, 8, 7 ms.
        assert!(
            (r.end_to_end.max_ms - 10.0).abs() < 0.1,
            "{:?}",
            r.end_to_end
        );
        assert!(
            (r.end_to_end.mean_ms - 8.5).abs() < 0.1,
            "{:?}",
            r.end_to_end
        );
    }

    #[test]
    fn missing_duplicate_misrouted_disordered_foreign_and_unframed_are_counted() {
        let (epoch, placed, due, acked) = ledger();
        let mut log = OutputLog::default();
        let at = epoch + Duration::from_millis(5);
        let s = |p: i32, o: i64| format!("{}/{p}/{o}", chain::SOURCE_TOPIC);
        // Input 2 (0/1) before input 0 (0/0) in output partition 0.
        log.observe(
            chain::SOURCE_TOPIC,
            rec(0, 0, V, Some(s(0, 1).as_bytes())),
            at,
        );
        log.observe(
            chain::SOURCE_TOPIC,
            rec(0, 1, V, Some(s(0, 0).as_bytes())),
            at,
        );
        // Input 0 again, in the wrong partition.
        log.observe(
            chain::SOURCE_TOPIC,
            rec(1, 0, V, Some(s(0, 0).as_bytes())),
            at,
        );
        // An offset never acknowledged; another topic; no header; unframed value.
        log.observe(
            chain::SOURCE_TOPIC,
            rec(1, 1, V, Some(s(1, 9).as_bytes())),
            at,
        );
        log.observe(chain::SOURCE_TOPIC, rec(1, 2, V, Some(b"other/1/0")), at);
        log.observe(chain::SOURCE_TOPIC, rec(1, 3, V, None), at);
        log.observe(
            chain::SOURCE_TOPIC,
            rec(1, 4, b"Obj\x01", Some(s(1, 0).as_bytes())),
            at,
        );
        let inputs = InputLedger {
            epoch,
            placed: &placed,
            due_ns: &due,
            acked: &acked,
        };
        let r = judge(ChainKind::PassAll, chain::SOURCE_TOPIC, &log, inputs, 2);
        assert!(!r.complete);
        assert_eq!(r.outputs, 7);
        assert_eq!(r.delivered, 3, "inputs 0, 1, 2");
        assert_eq!(r.missing, 1, "input 3");
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.misrouted, 1);
        assert_eq!(r.out_of_order, 1);
        assert_eq!(
            r.unknown, 3,
            "unacknowledged offset, other topic, no header"
        );
        assert_eq!(r.not_framed, 1);
        assert!(
            r.first_problem
                .as_deref()
                .unwrap()
                .contains("from topic other"),
            "{r:?}"
        );
    }

    #[test]
    fn counters_must_agree_with_the_output() {
        let (epoch, placed, due, acked) = ledger();
        let log = OutputLog::default();
        let inputs = InputLedger {
            epoch,
            placed: &placed,
            due_ns: &due,
            acked: &acked,
        };
        let base = judge(ChainKind::PassAll, chain::SOURCE_TOPIC, &log, inputs, 2);
        assert!(!base.complete, "nothing was output");
        assert_eq!(base.missing, 4);
        let m = PipelineMetrics {
            records_in: 4,
            passed: 4,
            lag: 0,
            ..PipelineMetrics::default()
        };
        let mut ok = base.clone();
        ok.complete = true;
        let r = ok.clone().with_metrics(Ok(m), 4);
        assert!(r.complete && r.metrics_problem.is_none(), "{r:?}");
        let r = ok.clone().with_metrics(
            Ok(PipelineMetrics {
                lag: 2,
                passed: 3,
                ..m
            }),
            4,
        );
        assert!(!r.complete);
        let p = r.metrics_problem.unwrap();
        assert!(
            p.contains("passed 3 != expected 4") && p.contains("final lag 2"),
            "{p}"
        );
        let r = ok.with_metrics(
            Err(BenchError::Metrics {
                addr: "h:1".into(),
                path: "/metrics".into(),
                reason: "refused".into(),
            }),
            4,
        );
        assert!(!r.complete);
        assert!(r.metrics_problem.unwrap().contains("refused"));
    }
}
