//! One run: a fresh topic, K consumer groups reading live, a paced producer.
//!
//! Order matters for honest figures. The topic is created first and every
//! group must hold its partitions before the first message is due, so
//! consumers read in real time rather than catching up on a backlog. The
//! clock starts (`epoch`) only then. The producer runs on this thread at
//! the pacer's schedule, recording due time → acknowledgement; each group
//! runs on its own thread, recording due time → receipt and checking every
//! record's value against the payload its sequence number selects. The run
//! ends when every group has every acknowledged message or the drain timeout
//! passes; what is missing then is reported, not waited for forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::broker_http;
use crate::chain::{self, ChainKind};
use crate::chain_output::{self, ChainResult, InputLedger, OutputLog};
use crate::client::{Delivery, LoadClient, LoadConsumer, OutRecord, SendOutcome};
use crate::error::BenchError;
use crate::ledger::{GroupLedger, SeqSet};
use crate::pacer::{Pacer, Rate};
use crate::payload::Payloads;
use crate::pipeline_metrics;
use crate::proc_stats;
use crate::progress::Progress;
use crate::results::{GroupResult, ProcessUsage, ProduceResult, RunResult};
use crate::stamp::{Location, Stamp};
use crate::stats::{mb_per_second, per_second, LatencyRecorder};
use crate::workload::Workload;

/// Who runs the workload against what.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    /// The client library, connected to the broker under test.
    pub client: &'a dyn LoadClient,
    /// The broker's process, to sample (None: not sampled).
    pub broker_pid: Option<u32>,
    /// The target's name for the report.
    pub label: &'a str,
    /// How the broker was started, for the report.
    pub broker: &'a str,
    /// Show a progress bar.
    pub progress: bool,
    /// The broker's HTTP address (`/metrics`), needed for an in-broker chain.
    pub http_addr: Option<&'a str>,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("client", &self.client.name())
            .field("bootstrap", &self.client.bootstrap())
            .field("broker_pid", &self.broker_pid)
            .field("label", &self.label)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

/// A fresh topic name for a run.
pub fn fresh_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

/// What a consumer thread hands back.
struct GroupOutcome {
    group: String,
    ledger: GroupLedger,
    e2e: LatencyRecorder,
    records: u64,
    bytes: u64,
    last_at: Option<Instant>,
    client_errors: u64,
    first_client_error: Option<String>,
}

/// State shared with the consumer threads.
struct Shared {
    stop: Arc<AtomicBool>,
    epoch: OnceLock<Instant>,
    planned: u64,
    payloads: Arc<Payloads>,
}

/// Runs `workload` once on `topic` (which must not exist yet).
pub fn run(
    ctx: RunContext<'_>,
    workload: &Workload,
    payloads: Arc<Payloads>,
    topic: &str,
) -> Result<RunResult, BenchError> {
    workload.validate()?;
    if let Some(kind) = workload.in_broker_chain {
        if ctx.http_addr.is_none() {
            return Err(BenchError::Chain {
                chain: kind.name().to_string(),
                reason: "the broker's HTTP address (for /metrics) is unknown".into(),
            });
        }
    }
    ctx.client
        .create_topic(topic, workload.partitions, Duration::from_secs(30))?;
    if let (Some(_), Some(addr)) = (workload.in_broker_chain, ctx.http_addr) {
        // The alert payloads cycle through several schema versions (Rubin's
        // 15 samples), which the default BACKWARD rule would refuse to
        // register under one output subject.
        broker_http::allow_any_schema(
            addr,
            &format!("{}-value", chain::OUTPUT_TOPIC),
            Duration::from_secs(10),
        )?;
        // Created up front so the output reader can be assigned before the
        // first input; the pipeline writes into it as it is.
        ctx.client.create_topic(
            chain::OUTPUT_TOPIC,
            workload.partitions,
            Duration::from_secs(30),
        )?;
    }

    let shared = Arc::new(Shared {
        stop: Arc::new(AtomicBool::new(false)),
        epoch: OnceLock::new(),
        planned: workload.messages,
        payloads: Arc::clone(&payloads),
    });
    let mut groups: Vec<(Arc<AtomicU64>, JoinHandle<GroupOutcome>)> = Vec::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let started = (0..workload.groups).try_for_each(|g| {
        let group = format!("{topic}-g{g}");
        let consumer = ctx.client.consumer(&group, topic, &workload.consumer)?;
        let counter = Arc::new(AtomicU64::new(0));
        let handle = spawn_group(
            consumer,
            ready_tx.clone(),
            Arc::clone(&shared),
            Arc::clone(&counter),
            workload.assign_timeout,
        );
        groups.push((counter, handle));
        Ok::<(), BenchError>(())
    });
    let mut chain_reader: Option<(Arc<AtomicU64>, JoinHandle<OutputLog>)> = None;
    let started = started.and_then(|()| {
        if workload.in_broker_chain.is_none() {
            return Ok(());
        }
        let group = format!("{topic}-chain");
        let consumer = ctx
            .client
            .consumer(&group, chain::OUTPUT_TOPIC, &workload.consumer)?;
        let counter = Arc::new(AtomicU64::new(0));
        let handle = chain_output::spawn_reader(
            consumer,
            topic.to_string(),
            ready_tx.clone(),
            Arc::clone(&shared.stop),
            Arc::clone(&counter),
            workload.assign_timeout,
        );
        chain_reader = Some((counter, handle));
        Ok(())
    });
    let readers = workload.groups + usize::from(chain_reader.is_some());
    let stop_all =
        |groups: Vec<(Arc<AtomicU64>, JoinHandle<GroupOutcome>)>,
         chain_reader: Option<(Arc<AtomicU64>, JoinHandle<OutputLog>)>| {
            shared.stop.store(true, Ordering::Release);
            for (_, h) in groups {
                let _ = h.join();
            }
            if let Some((_, h)) = chain_reader {
                let _ = h.join();
            }
        };
    if let Err(e) = started {
        stop_all(groups, chain_reader);
        return Err(e);
    }
    for _ in 0..readers {
        let outcome = ready_rx
            .recv_timeout(workload.assign_timeout + Duration::from_secs(10))
            .unwrap_or_else(|_| {
                Err(BenchError::NotAssigned {
                    group: format!("{topic}-g*"),
                    topic: topic.to_string(),
                    waited: workload.assign_timeout,
                })
            });
        if let Err(e) = outcome {
            stop_all(groups, chain_reader);
            return Err(e);
        }
    }
    let chain_watch = workload
        .in_broker_chain
        .zip(chain_reader.as_ref().map(|(c, _)| c.as_ref()));

    let produced = match ctx.client.producer(&workload.producer) {
        Ok(producer) => produce(
            ctx,
            workload,
            &payloads,
            topic,
            producer,
            &shared,
            &groups,
            chain_watch,
        ),
        Err(e) => Err(e),
    };
    let produced = match produced {
        Ok(p) => p,
        Err(e) => {
            stop_all(groups, chain_reader);
            return Err(e);
        }
    };
    shared.stop.store(true, Ordering::Release);
    let mut outcomes = Vec::new();
    for (g, (_, h)) in groups.into_iter().enumerate() {
        let outcome = h.join().map_err(|_| BenchError::ConsumerPanicked {
            group: format!("{topic}-g{g}"),
        })?;
        outcomes.push(outcome);
    }
    let chain = match (workload.in_broker_chain, chain_reader) {
        (Some(kind), Some((_, h))) => {
            let log = h.join().map_err(|_| BenchError::ConsumerPanicked {
                group: format!("{topic}-chain"),
            })?;
            Some(judge_chain(ctx, workload, kind, topic, &log, &produced))
        }
        _ => None,
    };
    Ok(assemble(
        ctx, workload, &payloads, topic, produced, outcomes, chain,
    ))
}

/// Judges the chain's output and adds the broker's final counters, read once
/// the pipeline has caught up (or after a bounded wait).
fn judge_chain(
    ctx: RunContext<'_>,
    workload: &Workload,
    kind: ChainKind,
    topic: &str,
    log: &OutputLog,
    p: &Produced,
) -> ChainResult {
    let inputs = InputLedger {
        epoch: p.epoch,
        placed: &p.placed,
        due_ns: &p.due_ns,
        acked: &p.acked,
    };
    let result = chain_output::judge(kind, topic, log, inputs, workload.partitions);
    let Some(addr) = ctx.http_addr else {
        return result; // refused in `run` before anything started
    };
    let timeout = Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = pipeline_metrics::fetch(addr, timeout)
            .and_then(|page| pipeline_metrics::parse(&page, chain::PIPELINE_NAME, addr));
        let settled = matches!(&m, Ok(m) if m.lag == 0 && m.records_in >= p.acked.len());
        if settled || Instant::now() >= deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    result.with_metrics(metrics, p.acked.len())
}

fn spawn_group(
    mut consumer: Box<dyn LoadConsumer>,
    ready: mpsc::Sender<Result<(), BenchError>>,
    shared: Arc<Shared>,
    counter: Arc<AtomicU64>,
    assign_timeout: Duration,
) -> JoinHandle<GroupOutcome> {
    std::thread::spawn(move || {
        let mut out = GroupOutcome {
            group: consumer.group().to_string(),
            ledger: GroupLedger::default(),
            e2e: LatencyRecorder::new(),
            records: 0,
            bytes: 0,
            last_at: None,
            client_errors: 0,
            first_client_error: None,
        };
        let assigned = consumer.wait_assigned(assign_timeout);
        let failed = assigned.is_err();
        // The runner waits on this channel; if it is gone, the run is over.
        let _ = ready.send(assigned);
        if failed {
            return out;
        }
        while !shared.stop.load(Ordering::Acquire) {
            let polled = consumer.poll(Duration::from_millis(100), &mut |rec| {
                let now = Instant::now();
                observe(&mut out, &shared, rec, now);
                counter.store(out.ledger.consumed(), Ordering::Release);
                Ok(())
            });
            if let Err(e) = polled {
                out.client_errors += 1;
                tracing::warn!(group = %out.group, "consumer error: {e}");
                if out.first_client_error.is_none() {
                    out.first_client_error = Some(e.to_string());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        out
    })
}

/// Checks and times one consumed record.
fn observe(
    out: &mut GroupOutcome,
    shared: &Shared,
    rec: crate::client::Received<'_>,
    now: Instant,
) {
    out.records += 1;
    out.bytes += rec.value.len() as u64;
    out.last_at = Some(now);
    let at = Location {
        topic: rec.topic,
        partition: rec.partition,
        offset: rec.offset,
    };
    match Stamp::decode(rec.seq_header, rec.sent_header, at) {
        Err(e) => out.ledger.foreign(e.to_string()),
        Ok(stamp) => {
            let content_ok = stamp.seq < shared.planned
                && *rec.value == *shared.payloads.for_seq(stamp.seq).bytes;
            out.ledger
                .observe(stamp.seq, shared.planned, content_ok, || {
                    format!(
                        "topic {} partition {} offset {}",
                        rec.topic, rec.partition, rec.offset
                    )
                });
            if let Some(epoch) = shared.epoch.get() {
                let due = *epoch + Duration::from_nanos(stamp.sent_ns);
                out.e2e.record(now.saturating_duration_since(due));
            }
        }
    }
}

/// The producer side's raw figures.
struct Produced {
    epoch: Instant,
    /// (partition, offset) → sequence number of every acknowledged message.
    placed: HashMap<(i32, i64), u64>,
    /// Due time of each sequence number, ns after `epoch`.
    due_ns: Vec<u64>,
    end: Instant,
    sent: u64,
    acked: SeqSet,
    acked_bytes: u64,
    failed: u64,
    unresolved: u64,
    first_failure: Option<String>,
    latency: LatencyRecorder,
    last_send: Instant,
    last_ack: Option<Instant>,
    max_lag: Duration,
    before: Option<proc_stats::ProcSample>,
    after: Option<proc_stats::ProcSample>,
    self_before: Option<proc_stats::ProcSample>,
    self_after: Option<proc_stats::ProcSample>,
}

/// Bookkeeping for acknowledgements.
struct Acks<'a> {
    epoch: Instant,
    placed: HashMap<(i32, i64), u64>,
    due_ns: Vec<u64>,
    acked: SeqSet,
    acked_bytes: u64,
    failed: u64,
    first_failure: Option<String>,
    latency: LatencyRecorder,
    last_ack: Option<Instant>,
    payloads: &'a Payloads,
    topic: &'a str,
}

impl Acks<'_> {
    fn take(&mut self, deliveries: &mut Vec<Delivery>) {
        for d in deliveries.drain(..) {
            let Some(&due_ns) = self.due_ns.get(d.seq as usize) else {
                continue; // not a number we sent: cannot happen with our own opaque
            };
            match d.result {
                Ok(place) => {
                    self.placed.insert(place, d.seq);
                    if self.acked.insert(d.seq) {
                        self.acked_bytes += self.payloads.for_seq(d.seq).bytes.len() as u64;
                    }
                    let due = self.epoch + Duration::from_nanos(due_ns);
                    self.latency.record(d.at.saturating_duration_since(due));
                    self.last_ack = Some(self.last_ack.map_or(d.at, |l| l.max(d.at)));
                }
                Err(reason) => {
                    self.failed += 1;
                    if self.first_failure.is_none() {
                        self.first_failure =
                            Some(format!("topic {} message {}: {reason}", self.topic, d.seq));
                    }
                }
            }
        }
    }

    fn resolved(&self) -> u64 {
        self.acked.len() + self.failed
    }
}

fn slowest(groups: &[(Arc<AtomicU64>, JoinHandle<GroupOutcome>)]) -> Option<u64> {
    groups.iter().map(|(c, _)| c.load(Ordering::Acquire)).min()
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn produce(
    ctx: RunContext<'_>,
    workload: &Workload,
    payloads: &Payloads,
    topic: &str,
    mut producer: Box<dyn crate::client::LoadProducer>,
    shared: &Shared,
    groups: &[(Arc<AtomicU64>, JoinHandle<GroupOutcome>)],
    chain_watch: Option<(ChainKind, &AtomicU64)>,
) -> Result<Produced, BenchError> {
    let planned = workload.messages;
    let progress = Progress::new(ctx.progress, planned, ctx.label);
    let sample = |pid: Option<u32>| -> Result<Option<proc_stats::ProcSample>, BenchError> {
        pid.map(|p| proc_stats::sample(p, proc_stats::clock_ticks()))
            .transpose()
    };
    let before = sample(ctx.broker_pid)?;
    let me = Some(std::process::id());
    let self_before = sample(me)?;
    let epoch = Instant::now();
    // Set once, here, before any message exists.
    let _ = shared.epoch.set(epoch);
    let pacer = Pacer::new(epoch, workload.rate);
    let mut acks = Acks {
        epoch,
        placed: HashMap::new(),
        due_ns: Vec::with_capacity(usize::try_from(planned.min(1 << 20)).unwrap_or(0)),
        acked: SeqSet::default(),
        acked_bytes: 0,
        failed: 0,
        first_failure: None,
        latency: LatencyRecorder::new(),
        last_ack: None,
        payloads,
        topic,
    };
    let mut deliveries = Vec::with_capacity(1024);
    let mut max_lag = Duration::ZERO;
    let mut last_send = epoch;
    let stop_sending_at = workload.send_for.map(|d| epoch + d);
    // Messages actually sent: `planned`, or fewer when the send time ran out.
    let mut n = planned;
    for seq in 0..planned {
        if stop_sending_at.is_some_and(|t| Instant::now() >= t) {
            n = seq;
            break;
        }
        let due = pacer.due(seq, Instant::now());
        Pacer::wait_until(due);
        let due_ns =
            u64::try_from(due.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
        acks.due_ns.push(due_ns);
        let record = OutRecord {
            topic,
            value: &payloads.for_seq(seq).bytes,
            stamp: Stamp {
                seq,
                sent_ns: due_ns,
            },
        };
        let full_since = Instant::now();
        loop {
            match producer.send(record)? {
                SendOutcome::Queued => break,
                SendOutcome::QueueFull => {
                    if full_since.elapsed() > workload.flush_timeout {
                        return Err(BenchError::Produce {
                            topic: topic.to_string(),
                            seq,
                            reason: format!(
                                "client queue still full after {:?}",
                                workload.flush_timeout
                            ),
                        });
                    }
                    producer.drain(&mut deliveries, Duration::from_millis(1));
                    acks.take(&mut deliveries);
                }
            }
        }
        last_send = Instant::now();
        max_lag = max_lag.max(last_send.saturating_duration_since(due));
        producer.drain(&mut deliveries, Duration::ZERO);
        acks.take(&mut deliveries);
        if seq % 256 == 0 {
            progress.update(seq + 1, acks.acked.len(), slowest(groups));
        }
    }
    // Every message gets an outcome, or the flush timeout runs out.
    let deadline = Instant::now() + workload.flush_timeout;
    while acks.resolved() < n && Instant::now() < deadline {
        producer.drain(&mut deliveries, Duration::from_millis(100));
        acks.take(&mut deliveries);
        progress.update(n, acks.acked.len(), slowest(groups));
    }
    // Consumers catch up on everything acknowledged (everything sent, when
    // some sends failed: a failed send may still have been written).
    let want = if acks.failed > 0 { n } else { acks.acked.len() };
    // The chain's reader waits for one output per acknowledged input it passes.
    let chain_want = chain_watch.map(|(kind, counter)| {
        let expected = (0..n)
            .filter(|&s| acks.acked.contains(s) && kind.passes(s))
            .count() as u64;
        (expected, counter)
    });
    let chain_behind = || chain_want.is_some_and(|(e, c)| c.load(Ordering::Acquire) < e);
    let deadline = Instant::now() + workload.drain_timeout;
    while (slowest(groups).is_some_and(|c| c < want) || chain_behind()) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        progress.update(n, acks.acked.len(), slowest(groups));
    }
    let end = Instant::now();
    let after = sample(ctx.broker_pid)?;
    let self_after = sample(me)?;
    progress.finish();
    let unresolved = n - acks.resolved().min(n);
    Ok(Produced {
        epoch,
        placed: acks.placed,
        due_ns: acks.due_ns,
        end,
        sent: n,
        acked: acks.acked,
        acked_bytes: acks.acked_bytes,
        failed: acks.failed,
        unresolved,
        first_failure: acks.first_failure,
        latency: acks.latency,
        last_send,
        last_ack: acks.last_ack,
        max_lag,
        before,
        after,
        self_before,
        self_after,
    })
}

fn assemble(
    ctx: RunContext<'_>,
    workload: &Workload,
    payloads: &Payloads,
    topic: &str,
    p: Produced,
    outcomes: Vec<GroupOutcome>,
    chain: Option<ChainResult>,
) -> RunResult {
    let since_epoch =
        |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t.saturating_duration_since(p.epoch));
    let produce_time = since_epoch(p.last_ack);
    let send_time = p.last_send.saturating_duration_since(p.epoch);
    let offered_per_s = if p.sent > 1 {
        per_second(p.sent - 1, send_time)
    } else {
        0.0
    };
    let produce = ProduceResult {
        sent: p.sent,
        acknowledged: p.acked.len(),
        failed: p.failed,
        unresolved: p.unresolved,
        first_failure: p.first_failure,
        acknowledged_bytes: p.acked_bytes,
        seconds: produce_time.as_secs_f64(),
        offered_per_s,
        acknowledged_per_s: per_second(p.acked.len(), produce_time),
        acknowledged_mb_per_s: mb_per_second(p.acked_bytes, produce_time),
        latency: p.latency.summary(),
        max_schedule_lag_ms: p.max_lag.as_secs_f64() * 1000.0,
    };
    let mut all_e2e = LatencyRecorder::new();
    let groups: Vec<GroupResult> = outcomes
        .into_iter()
        .map(|o| {
            all_e2e.merge(&o.e2e);
            let verdict = o.ledger.verdict(&p.acked);
            let t = since_epoch(o.last_at);
            GroupResult {
                group: o.group,
                consumed_per_s: per_second(verdict.consumed, t),
                consumed_mb_per_s: mb_per_second(o.bytes, t),
                verdict,
                records: o.records,
                bytes: o.bytes,
                seconds: t.as_secs_f64(),
                end_to_end: o.e2e.summary(),
                client_errors: o.client_errors,
                first_client_error: o.first_client_error,
            }
        })
        .collect();
    let wall = p.end.saturating_duration_since(p.epoch).as_secs_f64();
    let broker_usage = usage(ctx.broker_pid, p.before, p.after, wall);
    let load_generator = usage(Some(std::process::id()), p.self_before, p.self_after, wall);
    let complete = produce.failed == 0
        && produce.unresolved == 0
        && groups.iter().all(|g| g.verdict.complete)
        && chain.as_ref().is_none_or(|c| c.complete);
    let kept_up = match workload.rate {
        Rate::Fixed(target) => {
            let ok = |r: f64| r >= 0.95 * target;
            Some(
                ok(produce.offered_per_s)
                    && ok(produce.acknowledged_per_s)
                    && groups.iter().all(|g| ok(g.consumed_per_s)),
            )
        }
        Rate::Max => None,
    };
    RunResult {
        label: ctx.label.to_string(),
        broker: ctx.broker.to_string(),
        bootstrap: ctx.client.bootstrap().to_string(),
        client: ctx.client.name(),
        topic: topic.to_string(),
        workload: workload.summary(payloads.len(), payloads.mean_bytes()),
        produce,
        groups,
        end_to_end: all_e2e.summary(),
        broker_usage,
        load_generator,
        in_broker_chain: chain::status(workload.in_broker_chain),
        chain,
        complete,
        kept_up,
    }
}

/// CPU used between two samples of `pid`, and its peak memory.
fn usage(
    pid: Option<u32>,
    before: Option<proc_stats::ProcSample>,
    after: Option<proc_stats::ProcSample>,
    wall: f64,
) -> Option<ProcessUsage> {
    let (pid, b, a) = (pid?, before?, after?);
    let cpu_seconds = (a.cpu_seconds - b.cpu_seconds).max(0.0);
    Some(ProcessUsage {
        pid,
        cpu_seconds,
        wall_seconds: wall,
        cpu_cores: if wall > 0.0 { cpu_seconds / wall } else { 0.0 },
        peak_rss_bytes: a.peak_rss_bytes,
    })
}
