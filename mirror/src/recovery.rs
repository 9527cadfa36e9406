//! After a restart: which upstream records are already in the local log?
//!
//! The last checkpoint names, per local partition, an offset below which
//! everything is covered by its upstream positions. Anything the mirror
//! wrote after that checkpoint (acknowledged or not when it died) sits at
//! or above it. Reading each partition from there to its current end and
//! collecting the upstream coordinates in the records' headers (see
//! `provenance`) gives the exact set of upstream records that must not be
//! written again. The window is small: it is bounded by what the mirror
//! writes between two checkpoints plus what it had in flight.
//!
//! One race needs care: produce requests a killed run had already sent can
//! still be appended after it died (the broker read them before the
//! connection closed). If the tails were read before they land, the new
//! run would write those records again. So the end offsets are read until
//! they stay still for `recovery_settle` (default 1 s), and only then are
//! the tails read. This assumes the local broker finishes a request it has
//! read within that time (it does within milliseconds when healthy); a
//! producer-fencing protocol (transactional ids) would remove the
//! assumption, and the broker does not offer one yet.

use std::collections::HashMap;
use std::time::Duration;

use starlog_clients::consumer::offsets::{list_offsets, LATEST};
use starlog_clients::records::decode::{decode_batch, BatchHeader};
use starlog_clients::{ClientConfig, Consumer, ConsumerConfig, OffsetReset, TopicPartition};

use crate::error::MirrorError;
use crate::passthrough::{fingerprint, Fingerprint};
use crate::provenance::Source;

/// A mirrored record found in the local log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it came from.
    pub source: Source,
    /// Where it is.
    pub at: (TopicPartition, i64),
}

/// Current end offsets of local partitions.
pub async fn end_offsets(
    local: &ClientConfig,
    tps: &[TopicPartition],
) -> Result<HashMap<TopicPartition, i64>, MirrorError> {
    if tps.is_empty() {
        return Ok(HashMap::new());
    }
    let cluster = starlog_clients::cluster::Cluster::new(local.clone())
        .map_err(|e| MirrorError::client("local cluster", e))?;
    let req: Vec<(TopicPartition, i64)> = tps.iter().map(|tp| (tp.clone(), LATEST)).collect();
    list_offsets(&cluster, &req)
        .await
        .map_err(|e| MirrorError::client("end offsets of the local partitions", e))
}

/// End offsets once they have not moved for `settle` (bounded: at most
/// 60 rounds).
pub async fn settled_end_offsets(
    local: &ClientConfig,
    tps: &[TopicPartition],
    settle: Duration,
) -> Result<HashMap<TopicPartition, i64>, MirrorError> {
    let mut ends = end_offsets(local, tps).await?;
    if settle.is_zero() {
        return Ok(ends);
    }
    for _ in 0..60 {
        tokio::time::sleep(settle).await;
        let again = end_offsets(local, tps).await?;
        if again == ends {
            return Ok(ends);
        }
        tracing::info!("local end offsets still moving after the previous run; waiting");
        ends = again;
    }
    Err(MirrorError::Checkpoint {
        group: String::new(),
        reason: format!(
            "local end offsets kept moving for 60 x {settle:?}: is another mirror writing?"
        ),
    })
}

/// A batch without provenance headers found in a local tail: a
/// pass-through batch of an earlier run (see `passthrough`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundBatch {
    /// Where it is (its base offset).
    pub at: (TopicPartition, i64),
    /// Its record count.
    pub records: i64,
    /// What identifies it.
    pub fingerprint: Fingerprint,
}

/// What the tails hold.
#[derive(Debug, Default)]
pub struct Scan {
    /// Records naming their upstream source.
    pub found: Vec<Found>,
    /// Whole batches without provenance.
    pub batches: Vec<FoundBatch>,
    /// Records read.
    pub read: u64,
}

/// Reads `[from, to)` of each local partition and returns every record
/// that names an upstream source, every batch whose records name none, and
/// the number of records read.
pub async fn scan(
    local: &ClientConfig,
    ranges: &[(TopicPartition, i64, i64)],
    max_record_bytes: usize,
    time_limit: Duration,
) -> Result<Scan, MirrorError> {
    let todo: Vec<&(TopicPartition, i64, i64)> = ranges.iter().filter(|r| r.1 < r.2).collect();
    if todo.is_empty() {
        return Ok(Scan::default());
    }
    let mut cfg = ConsumerConfig {
        client: local.clone(),
        group_id: None,
        enable_auto_commit: false,
        auto_offset_reset: OffsetReset::None,
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    cfg.max_partition_fetch_bytes =
        i32::try_from(max_record_bytes.max(8 << 20)).unwrap_or(i32::MAX);
    cfg.client.client_id = format!("{}-recovery", cfg.client.client_id);
    let mut consumer =
        Consumer::new(cfg).map_err(|e| MirrorError::client("recovery consumer", e))?;
    let tps: Vec<TopicPartition> = todo.iter().map(|r| r.0.clone()).collect();
    consumer
        .assign(&tps)
        .map_err(|e| MirrorError::client("recovery consumer", e))?;
    let mut ends: HashMap<TopicPartition, i64> = HashMap::new();
    for (tp, from, to) in &todo {
        consumer
            .seek(tp, *from)
            .map_err(|e| MirrorError::client("recovery consumer", e))?;
        ends.insert(tp.clone(), *to);
    }
    let mut out = Scan::default();
    let mut starts: HashMap<TopicPartition, i64> = HashMap::new();
    for (tp, from, _) in &todo {
        starts.insert(tp.clone(), *from);
    }
    let deadline = tokio::time::Instant::now() + time_limit;
    loop {
        let pending: Vec<&TopicPartition> = ends
            .iter()
            .filter(|(tp, end)| consumer.position(tp).is_none_or(|p| p < **end))
            .map(|(tp, _)| tp)
            .collect();
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MirrorError::Checkpoint {
                group: String::new(),
                reason: format!(
                    "reading back the local tails did not finish within {time_limit:?} ({} partitions left, e.g. {})",
                    pending.len(),
                    pending[0]
                ),
            });
        }
        let batches = consumer
            .poll_batches(Duration::from_millis(200))
            .await
            .map_err(|e| MirrorError::client("reading back the local tails", e))?;
        for b in batches {
            let tp = TopicPartition::new(b.topic.clone(), b.partition);
            let (Some(end), Some(from)) = (ends.get(&tp).copied(), starts.get(&tp).copied()) else {
                continue;
            };
            let corrupt = |reason: String| MirrorError::Checkpoint {
                group: String::new(),
                reason: format!(
                    "local batch at {}/{} offset {}: {reason}",
                    b.topic, b.partition, b.base_offset
                ),
            };
            let header =
                BatchHeader::read(&b.bytes).map_err(|_| corrupt("shorter than a header".into()))?;
            let limit = max_record_bytes.max(8 << 20) * 8;
            let records = decode_batch(&b.topic, b.partition, &header, &b.bytes, from, limit)
                .map_err(|e| corrupt(e.to_string()))?;
            let records: Vec<_> = records.into_iter().filter(|r| r.offset < end).collect();
            out.read += records.len() as u64;
            let sources: Vec<Option<Source>> = records
                .iter()
                .map(|r| Source::from_headers(&r.headers))
                .collect();
            if sources.iter().any(Option::is_some) {
                for (r, s) in records.iter().zip(sources) {
                    if let Some(source) = s {
                        out.found.push(Found {
                            source,
                            at: (tp.clone(), r.offset),
                        });
                    }
                }
            } else if b.base_offset >= from && b.last_offset < end && !records.is_empty() {
                if let Some(fp) = fingerprint(&b.bytes) {
                    out.batches.push(FoundBatch {
                        at: (tp, b.base_offset),
                        records: i64::from(header.record_count),
                        fingerprint: fp,
                    });
                }
            }
        }
    }
    Ok(out)
}
