//! Leader failover under load: `kill -9` of a partition's leader while a
//! producer sends steadily, timed to the first acknowledged produce after it.
//!
//! One thread paces an idempotent acks=all producer at a fixed rate into a
//! one-partition topic replicated on every node, and drains its
//! acknowledgements (each timestamped by the client library's delivery
//! thread). A round waits until acknowledgements flow, asks the nodes which
//! one leads the partition, SIGKILLs that process and notes the instant it
//! was reaped. The figure is the time from there to the first *successful*
//! acknowledgement of a message handed to the client *after* the kill: such
//! a message cannot have been acknowledged by the dead leader, so the
//! figure never counts a response that was already on its way before the
//! kill (the first acknowledgement of any message after the kill is
//! reported beside it). Then the killed node is restarted and the round
//! waits until all replicas hold the same high watermark at their log end
//! before the next kill. Every wait has a deadline.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Delivery, LoadClient, LoadProducer, OutRecord, ProducerSettings, SendOutcome};
use crate::cluster::SpawnedCluster;
use crate::compare::{spread, Spread};
use crate::error::BenchError;
use crate::pacer::{Pacer, Rate};
use crate::payload::Payloads;
use crate::stamp::Stamp;

/// The target: kill -9 to first successful produce.
pub const TARGET: Duration = Duration::from_secs(2);

/// How the failover measurement runs.
#[derive(Debug, Clone)]
pub struct FailoverSettings {
    /// Kills (each followed by a restart of the killed node).
    pub rounds: usize,
    /// Messages per second, steadily.
    pub rate: f64,
    /// Acknowledgements must have flowed this long before a kill.
    pub warmup: Duration,
    /// Longest wait for the first acknowledgement after a kill.
    pub max_wait: Duration,
    /// Longest wait for a restarted node to catch up.
    pub settle_timeout: Duration,
    /// The producer's settings (acks=all and idempotence expected).
    pub producer: ProducerSettings,
}

/// One kill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverRound {
    /// 1-based.
    pub round: usize,
    /// The node killed (the partition's leader).
    pub killed: i32,
    /// Its term as leader.
    pub killed_term: u64,
    /// Kill → first successful acknowledgement of a message sent after the
    /// kill, ms (`None`: none within `max_wait`).
    pub first_ack_ms: Option<f64>,
    /// Kill → first successful acknowledgement of any message, ms.
    pub first_any_ack_ms: Option<f64>,
    /// The leader after the kill, and its term.
    pub new_leader: Option<(i32, u64)>,
    /// Deliveries the client reported failed during the round.
    pub failed: u64,
    /// Restart of the killed node → all replicas caught up, ms.
    pub catch_up_ms: f64,
    /// Errors that ended the client's producer during the round (a fatal
    /// idempotence error, for one); the bench then carried on with a new
    /// producer, so `first_ack_ms` includes making it.
    pub producer_errors: Vec<String>,
}

/// The whole measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverResult {
    /// Cluster size.
    pub nodes: usize,
    /// The topic (one partition).
    pub topic: String,
    /// Messages per second offered.
    pub rate: f64,
    /// Producer settings beyond acks=all and idempotence.
    pub producer_extra: Vec<(String, String)>,
    /// Each kill.
    pub rounds: Vec<FailoverRound>,
    /// Spread of `first_ack_ms` over the rounds that had one.
    pub first_ack: Option<Spread>,
    /// Messages sent, acknowledged, failed over the whole measurement.
    pub sent: u64,
    /// Acknowledged.
    pub acknowledged: u64,
    /// Failed.
    pub failed: u64,
    /// The first failure's reason.
    pub first_failure: Option<String>,
    /// Messages handed to producers that then died, with no outcome.
    pub abandoned: u64,
    /// Every round had an acknowledgement within the target and no
    /// producer error.
    pub target_met: bool,
}

/// The producer side: paced sends, drained acknowledgements.
struct Pump<'a> {
    producer: Box<dyn LoadProducer>,
    make_producer: &'a dyn Fn() -> Result<Box<dyn LoadProducer>, BenchError>,
    /// Producers replaced, and the errors that ended them (this round).
    round_errors: Vec<String>,
    abandoned: u64,
    /// `sent` of the current producer when it was made.
    sent_at_make: u64,
    resolved_since_make: u64,
    payloads: &'a Payloads,
    topic: &'a str,
    pacer: Pacer,
    epoch: Instant,
    next_seq: u64,
    deliveries: Vec<Delivery>,
    sent: u64,
    acknowledged: u64,
    failed: u64,
    first_failure: Option<String>,
    last_ack: Option<Instant>,
    /// The round being timed: (kill instant, first seq sent after it).
    watch: Option<(Instant, u64)>,
    first_any: Option<Instant>,
    first_new: Option<Instant>,
    round_failed: u64,
}

impl Pump<'_> {
    /// Sends what is due and drains acknowledgements until `until`.
    fn run_until(&mut self, until: Instant) -> Result<(), BenchError> {
        loop {
            let now = Instant::now();
            let due = self.pacer.due(self.next_seq, now);
            if due <= now {
                let record = OutRecord {
                    topic: self.topic,
                    value: &self.payloads.for_seq(self.next_seq).bytes,
                    stamp: Stamp {
                        seq: self.next_seq,
                        sent_ns: u64::try_from(
                            due.saturating_duration_since(self.epoch).as_nanos(),
                        )
                        .unwrap_or(u64::MAX),
                    },
                };
                match self.producer.send(record) {
                    Ok(SendOutcome::Queued) => {
                        self.next_seq += 1;
                        self.sent += 1;
                    }
                    Ok(SendOutcome::QueueFull) => {}
                    Err(e) => self.replace_producer(e.to_string())?,
                }
            }
            let now = Instant::now();
            if now >= until {
                self.drain(Duration::ZERO);
                return Ok(());
            }
            let next = self.pacer.due(self.next_seq, now).max(now);
            let wait = next
                .min(until)
                .saturating_duration_since(now)
                .min(Duration::from_millis(5));
            self.drain(wait);
        }
    }

    /// The client refused a send (its producer is dead: a fatal error):
    /// notes why and carries on with a new producer. What the old one had
    /// not resolved is counted as abandoned.
    fn replace_producer(&mut self, reason: String) -> Result<(), BenchError> {
        tracing::warn!("producer replaced after: {reason}");
        self.drain(Duration::ZERO);
        let in_old = self.sent - self.sent_at_make;
        self.abandoned += in_old.saturating_sub(self.resolved_since_make);
        self.round_errors.push(reason);
        self.producer = (self.make_producer)()?;
        self.sent_at_make = self.sent;
        self.resolved_since_make = 0;
        Ok(())
    }

    fn drain(&mut self, wait: Duration) {
        self.producer.drain(&mut self.deliveries, wait);
        self.resolved_since_make += self.deliveries.len() as u64;
        for d in self.deliveries.drain(..) {
            match d.result {
                Ok(_) => {
                    self.acknowledged += 1;
                    self.last_ack = Some(self.last_ack.map_or(d.at, |l| l.max(d.at)));
                    if let Some((kill, first_seq)) = self.watch {
                        if d.at > kill && self.first_any.is_none_or(|f| d.at < f) {
                            self.first_any = Some(d.at);
                        }
                        if d.seq >= first_seq && self.first_new.is_none_or(|f| d.at < f) {
                            self.first_new = Some(d.at);
                        }
                    }
                }
                Err(reason) => {
                    self.failed += 1;
                    self.round_failed += 1;
                    if self.first_failure.is_none() {
                        self.first_failure = Some(format!("message {}: {reason}", d.seq));
                    }
                }
            }
        }
    }

    /// Pumps until acknowledgements have flowed for `warmup` (the last one
    /// less than 250 ms old), or `limit` passes.
    fn warm(&mut self, warmup: Duration, limit: Duration) -> Result<bool, BenchError> {
        let start = Instant::now();
        let deadline = start + limit;
        let from = self.acknowledged;
        while Instant::now() < deadline {
            self.run_until(Instant::now() + Duration::from_millis(50))?;
            let flowing = self
                .last_ack
                .is_some_and(|l| l.elapsed() < Duration::from_millis(250));
            if start.elapsed() >= warmup && flowing && self.acknowledged > from {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs the rounds against `cluster` (which must have at least 3 nodes for
/// a quorum to survive a kill); `client` must reach the cluster and create
/// topics with the cluster's replication factor.
pub fn measure(
    cluster: &mut SpawnedCluster,
    client: &dyn LoadClient,
    payloads: &Payloads,
    settings: &FailoverSettings,
    topic: &str,
    progress: bool,
) -> Result<FailoverResult, BenchError> {
    let nodes = cluster.ids().len();
    let fail = |reason: String| BenchError::Failover {
        topic: topic.to_string(),
        reason,
    };
    if nodes < 3 {
        return Err(fail(format!(
            "{nodes} nodes: a kill leaves no quorum (need at least 3)"
        )));
    }
    if !(settings.rate.is_finite() && settings.rate > 0.0) {
        return Err(fail(format!(
            "rate {} (need a positive number)",
            settings.rate
        )));
    }
    client.create_topic(topic, 1, Duration::from_secs(30))?;
    let make_producer = || client.producer(&settings.producer);
    let producer = make_producer()?;
    let epoch = Instant::now();
    let mut pump = Pump {
        producer,
        make_producer: &make_producer,
        round_errors: Vec::new(),
        abandoned: 0,
        sent_at_make: 0,
        resolved_since_make: 0,
        payloads,
        topic,
        pacer: Pacer::new(epoch, Rate::Fixed(settings.rate)),
        epoch,
        next_seq: 0,
        deliveries: Vec::with_capacity(256),
        sent: 0,
        acknowledged: 0,
        failed: 0,
        first_failure: None,
        last_ack: None,
        watch: None,
        first_any: None,
        first_new: None,
        round_failed: 0,
    };
    let bar = crate::progress::Progress::new(progress, settings.rounds as u64, "failover");
    let mut rounds = Vec::with_capacity(settings.rounds);
    for round in 1..=settings.rounds {
        bar.update(round as u64 - 1, pump.acknowledged, None);
        if !pump.warm(settings.warmup, settings.warmup + settings.settle_timeout)? {
            return Err(fail(format!(
                "round {round}: no acknowledgements flowing within {:?} (first failure: {})",
                settings.warmup + settings.settle_timeout,
                pump.first_failure.as_deref().unwrap_or("none")
            )));
        }
        let Some((killed, killed_term)) = cluster.leader_of(topic, 0) else {
            return Err(fail(format!(
                "round {round}: no node reports leading partition 0"
            )));
        };
        pump.first_any = None;
        pump.first_new = None;
        pump.round_failed = 0;
        let mut producer_errors = std::mem::take(&mut pump.round_errors);
        let kill_at = cluster.kill9(killed)?;
        pump.watch = Some((kill_at, pump.next_seq));
        let deadline = kill_at + settings.max_wait;
        while pump.first_new.is_none() && Instant::now() < deadline {
            pump.run_until((Instant::now() + Duration::from_millis(20)).min(deadline))?;
        }
        pump.watch = None;
        let ms = |t: Option<Instant>| {
            t.map(|t| t.saturating_duration_since(kill_at).as_secs_f64() * 1000.0)
        };
        let first_ack_ms = ms(pump.first_new);
        let first_any_ack_ms = ms(pump.first_any);
        let new_leader = cluster.leader_of(topic, 0);
        // The restart blocks the pump for as long as the node takes to
        // listen; the pacer catches up afterwards, and the next round waits
        // for steady acknowledgements again.
        cluster.spawn(killed)?;
        let restarted = Instant::now();
        let settle_deadline = restarted + settings.settle_timeout;
        let mut caught_up = false;
        while Instant::now() < settle_deadline {
            pump.run_until(Instant::now() + Duration::from_millis(200))?;
            if cluster.caught_up(topic, 0) {
                caught_up = true;
                break;
            }
        }
        if !caught_up {
            return Err(fail(format!(
                "round {round}: node {killed} restarted but the replicas of partition 0 \
                 did not catch up within {:?}",
                settings.settle_timeout
            )));
        }
        let r = FailoverRound {
            round,
            killed,
            killed_term,
            first_ack_ms,
            first_any_ack_ms,
            new_leader,
            failed: pump.round_failed,
            catch_up_ms: restarted.elapsed().as_secs_f64() * 1000.0,
            producer_errors: {
                producer_errors.append(&mut pump.round_errors);
                producer_errors
            },
        };
        eprintln!(
            "failover round {round}: kill -9 of node {killed} (leader, term {killed_term}) -> \
             first ack of a message sent after the kill {} (of any message {}), new leader {}",
            r.first_ack_ms
                .map_or("NONE".into(), |m| format!("{m:.0} ms")),
            r.first_any_ack_ms
                .map_or("none".into(), |m| format!("{m:.0} ms")),
            r.new_leader
                .map_or("unknown".into(), |(n, t)| format!("node {n} term {t}")),
        );
        for e in &r.producer_errors {
            eprintln!("  producer error in round {round} (a new producer carried on): {e}");
        }
        rounds.push(r);
    }
    bar.finish();
    // Everything sent gets an outcome (bounded by the settle timeout).
    let deadline = Instant::now() + settings.settle_timeout;
    while pump.acknowledged + pump.failed < pump.sent && Instant::now() < deadline {
        pump.drain(Duration::from_millis(100));
    }
    let times: Vec<f64> = rounds.iter().filter_map(|r| r.first_ack_ms).collect();
    let target_ms = TARGET.as_secs_f64() * 1000.0;
    let target_met = !rounds.is_empty()
        && rounds
            .iter()
            .all(|r| r.producer_errors.is_empty() && r.first_ack_ms.is_some_and(|m| m < target_ms));
    Ok(FailoverResult {
        nodes,
        topic: topic.to_string(),
        rate: settings.rate,
        producer_extra: settings.producer.extra.clone(),
        first_ack: spread(&times),
        rounds,
        sent: pump.sent,
        acknowledged: pump.acknowledged,
        failed: pump.failed,
        first_failure: pump.first_failure,
        abandoned: pump.abandoned,
        target_met,
    })
}
