//! The sender task: seals batches whose linger passed, picks what may be
//! sent (front of each partition queue, within the in-flight window) and
//! groups it by leader into produce requests. A worker task per leader
//! queues those requests on the connection strictly in order (idempotent
//! sequences must arrive in order) and awaits each response on its own
//! task, so several requests are in flight. Responses resolve delivery futures or put batches back for a
//! retry (after a backoff, with a metadata refresh when the leader moved).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use super::accumulator::{requeue, SealedBatch};
use super::{Acks, Shared};
use crate::connection::{encode, PendingResponse};
use crate::error::{ClientError, Result};
use crate::records::encode::{encode_batch, BatchMeta};

/// Runs until the producer is dropped (the task is aborted then).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut refreshing: HashSet<String> = HashSet::new();
    let (refreshed_tx, mut refreshed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut init_started = false;
    // One worker per leader writes that leader's requests in order, so a
    // partition's batches reach the broker in sequence order.
    let mut workers: HashMap<i32, tokio::sync::mpsc::UnboundedSender<Vec<SealedBatch>>> =
        HashMap::new();
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        while let Ok(t) = refreshed_rx.try_recv() {
            refreshing.remove(&t);
        }
        if shared.config.idempotent() && shared.producer_id.lock().is_none() && !init_started {
            init_started = true;
            tokio::spawn(init_producer_id(Arc::clone(&shared)));
        }
        let (next, need_refresh, by_leader) = step(&shared);
        for (leader, requests) in by_leader {
            let tx = workers.entry(leader).or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(leader_worker(Arc::clone(&shared), leader, rx));
                tx
            });
            for r in requests {
                if let Err(returned) = tx.send(r) {
                    // The worker is gone (cannot happen while we hold the
                    // sender); fail safe by retrying the batches later.
                    for b in returned.0 {
                        finish(
                            &shared,
                            b,
                            Err(ClientError::Closed("producer leader worker")),
                        );
                    }
                }
            }
        }
        for topic in need_refresh {
            if refreshing.insert(topic.clone()) {
                let s = Arc::clone(&shared);
                let tx = refreshed_tx.clone();
                tokio::spawn(async move {
                    s.cluster.invalidate(&topic);
                    if let Err(e) = s.cluster.topic(&topic, s.config.auto_create_topics).await {
                        debug!(%topic, error = %e, "metadata refresh for produce failed");
                    }
                    let _ = tx.send(topic);
                    s.wake.notify_one();
                });
            }
        }
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Gets the idempotent producer id, retrying until it succeeds.
async fn init_producer_id(shared: Arc<Shared>) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    loop {
        let res: Result<(i64, i16)> = async {
            let conn = shared.cluster.any_connection().await?;
            let resp = conn.call(&req).await?;
            crate::error::check(resp.error_code, || "InitProducerId".to_owned())?;
            Ok((resp.producer_id.0, resp.producer_epoch))
        }
        .await;
        match res {
            Ok(id) => {
                debug!(producer_id = id.0, epoch = id.1, "idempotent producer id");
                *shared.producer_id.lock() = Some(id);
                shared.wake.notify_one();
                return;
            }
            Err(e) => {
                warn!(error = %e, "InitProducerId failed; retrying");
                shared.cluster.backoff().await;
            }
        }
    }
}

/// Requests per leader, each a list of batches.
type Dispatch = HashMap<i32, Vec<Vec<SealedBatch>>>;

/// One pass: seal, expire, pick. Returns the next deadline, the topics
/// whose leaders are unknown and the requests to send.
fn step(shared: &Arc<Shared>) -> (Option<Instant>, Vec<String>, Dispatch) {
    let cfg = &shared.config;
    let now = Instant::now();
    let idempotent = cfg.idempotent();
    let have_pid = !idempotent || shared.producer_id.lock().is_some();
    let mut by_leader: HashMap<i32, Vec<SealedBatch>> = HashMap::new();
    let mut expired = Vec::new();
    let mut poisoned: Vec<(SealedBatch, ClientError)> = Vec::new();
    let mut need_refresh = Vec::new();
    let next = {
        let mut acc = shared.acc.lock();
        let (_, mut next) = acc.seal_due(now, cfg.linger, idempotent, false);
        let earliest = |at: Instant, next: &mut Option<Instant>| {
            *next = Some(next.map_or(at, |n: Instant| n.min(at)));
        };
        for (tp, q) in acc.parts.iter_mut() {
            if let Some(err) = q.poisoned.clone() {
                // Nothing may land after a raw batch whose outcome is unknown.
                super::accumulator::seal(q, tp, idempotent);
                while let Some(b) = q.sealed.pop_front() {
                    poisoned.push((b, err.clone()));
                }
                continue;
            }
            while q
                .sealed
                .front()
                .is_some_and(|b| b.created + cfg.delivery_timeout <= now)
            {
                if let Some(b) = q.sealed.pop_front() {
                    expired.push(b);
                }
            }
            while q.in_flight < cfg.max_in_flight_per_partition && have_pid && !q.raw_in_flight {
                let Some(front) = q.sealed.front() else { break };
                // A raw batch is sent alone: after what is in flight has
                // resolved, and nothing follows it until it resolves.
                if front.raw.is_some() && q.in_flight > 0 {
                    break;
                }
                if let Some(at) = front.retry_at {
                    if at > now {
                        earliest(at, &mut next);
                        break;
                    }
                }
                let leader = shared
                    .cluster
                    .cached_topic(&tp.topic)
                    .and_then(|t| {
                        t.partitions
                            .iter()
                            .find(|p| p.partition == tp.partition)
                            .map(|p| p.leader)
                    })
                    .filter(|l| *l >= 0);
                let Some(leader) = leader else {
                    need_refresh.push(tp.topic.clone());
                    earliest(now + shared.cluster.config().retry_backoff, &mut next);
                    break;
                };
                if let Some(b) = q.sealed.pop_front() {
                    q.in_flight += 1;
                    q.raw_in_flight = b.raw.is_some();
                    by_leader.entry(leader).or_default().push(b);
                }
            }
            if let Some(front) = q.sealed.front() {
                earliest(front.created + cfg.delivery_timeout, &mut next);
            }
        }
        next
    };
    for b in expired {
        let err = ClientError::DeliveryTimeout {
            topic: b.tp.topic.clone(),
            partition: b.tp.partition,
            after: cfg.delivery_timeout,
            last: b.last_error.as_ref().map_or_else(
                || "never sent (no leader or producer id)".to_owned(),
                |e| e.to_string(),
            ),
        };
        let bytes = b.bytes;
        let n = b.fail(&err);
        release(shared, n, bytes);
    }
    for (b, err) in poisoned {
        let bytes = b.bytes;
        let n = b.fail(&err);
        release(shared, n, bytes);
    }
    let mut dispatch: Dispatch = HashMap::new();
    for (leader, batches) in by_leader {
        // Split into requests of at most max_request_size, with at most
        // one batch per partition in a request (the protocol's rule).
        let reqs = dispatch.entry(leader).or_default();
        let mut chunk: Vec<SealedBatch> = Vec::new();
        let mut size = 0usize;
        for b in batches {
            let same_partition = chunk.iter().any(|c| c.tp == b.tp);
            if !chunk.is_empty() && (size + b.bytes > cfg.max_request_size || same_partition) {
                reqs.push(std::mem::take(&mut chunk));
                size = 0;
            }
            size += b.bytes;
            chunk.push(b);
        }
        if !chunk.is_empty() {
            reqs.push(chunk);
        }
    }
    (next, need_refresh, dispatch)
}

/// Writes one leader's requests in order; responses are awaited on their
/// own tasks so several requests stay in flight.
async fn leader_worker(
    shared: Arc<Shared>,
    leader: i32,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<SealedBatch>>,
) {
    while let Some(batches) = rx.recv().await {
        send_request(&shared, leader, batches).await;
    }
}

/// Gives back buffer space and the outstanding count of resolved records.
fn release(shared: &Shared, records: usize, bytes: usize) {
    shared.buffer.add_permits(bytes);
    let idle = {
        let mut acc = shared.acc.lock();
        acc.outstanding = acc.outstanding.saturating_sub(records);
        acc.outstanding == 0
    };
    if idle {
        shared.idle.notify_waiters();
    }
}

async fn send_request(shared: &Arc<Shared>, leader: i32, mut batches: Vec<SealedBatch>) {
    let cfg = &shared.config;
    let (pid, epoch) = shared.producer_id.lock().unwrap_or((-1, -1));
    let idempotent = cfg.idempotent();
    // Encode once; retries reuse the bytes.
    let mut ready = Vec::with_capacity(batches.len());
    for mut b in batches.drain(..) {
        if b.encoded.is_none() {
            let meta = if idempotent {
                BatchMeta {
                    producer_id: pid,
                    producer_epoch: epoch,
                    base_sequence: b.base_sequence,
                }
            } else {
                BatchMeta::plain()
            };
            match encode_batch(&b.records, cfg.compression, meta) {
                Ok(bytes) => b.encoded = Some(bytes),
                Err(reason) => {
                    let err = ClientError::Encode {
                        what: format!("record batch for {}", b.tp),
                        reason,
                    };
                    finish(shared, b, Err(err));
                    continue;
                }
            }
        }
        ready.push(b);
    }
    if ready.is_empty() {
        shared.wake.notify_one();
        return;
    }
    match submit(shared, leader, &ready).await {
        Ok(Submitted::Done) => {
            for b in ready {
                finish(shared, b, Ok(-1));
            }
            shared.wake.notify_one();
        }
        Ok(Submitted::Pending(pending)) => {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let outcome = await_produce(pending, &ready).await;
                match outcome {
                    Ok(per_batch) => {
                        for (b, r) in ready.into_iter().zip(per_batch) {
                            finish(&shared, b, r);
                        }
                    }
                    Err(e) => {
                        debug!(leader, error = %e, "produce request failed");
                        for b in ready {
                            finish(&shared, b, Err(e.clone()));
                        }
                    }
                }
                shared.wake.notify_one();
            });
        }
        Err(e) => {
            debug!(leader, error = %e, "produce request not sent");
            for b in ready {
                finish(shared, b, Err(e.clone()));
            }
            shared.wake.notify_one();
        }
    }
}

enum Submitted {
    /// acks=0: written, no response will come.
    Done,
    /// Waiting for the produce response.
    Pending(PendingResponse),
}

/// Queues one produce request on the leader's connection, in order.
async fn submit(shared: &Shared, leader: i32, batches: &[SealedBatch]) -> Result<Submitted> {
    let cfg = &shared.config;
    let conn = shared.cluster.connection_to(leader).await?;
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for b in batches {
        let data = PartitionProduceData::default()
            .with_index(b.tp.partition)
            .with_records(b.encoded.clone());
        match topics.iter_mut().find(|t| t.name.0.as_str() == b.tp.topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(b.tp.topic.clone())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let timeout_ms = i32::try_from(cfg.client.request_timeout.as_millis()).unwrap_or(i32::MAX);
    let req = ProduceRequest::default()
        .with_acks(cfg.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics);
    let version = conn.version(ApiKey::Produce)?;
    let body: Bytes = encode(&req, ApiKey::Produce, version)?;
    if cfg.acks == Acks::None {
        conn.send_oneway(ApiKey::Produce, version, body).await?;
        return Ok(Submitted::Done);
    }
    Ok(Submitted::Pending(
        conn.submit_raw(ApiKey::Produce, version, body, std::time::Duration::ZERO)
            .await?,
    ))
}

/// Waits for a produce response; returns each batch's base offset or error.
async fn await_produce(
    pending: PendingResponse,
    batches: &[SealedBatch],
) -> Result<Vec<Result<i64>>> {
    let conn = pending.connection().clone();
    let (api, version) = pending.api_version();
    let bytes = match pending.wait().await {
        Ok(b) => b,
        Err(e) => {
            if matches!(e, ClientError::Timeout { .. }) {
                // Responses on this connection are now in doubt; start afresh.
                conn.close();
            }
            return Err(e);
        }
    };
    let resp: ProduceResponse = conn.decode_response(api, version, bytes)?;
    Ok(batches
        .iter()
        .map(|b| {
            let p = resp
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == b.tp.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == b.tp.partition);
            let Some(p) = p else {
                return Err(ClientError::Garbage {
                    addr: conn.addr().to_owned(),
                    api: ApiKey::Produce,
                    reason: format!("no result for {}", b.tp),
                });
            };
            match ResponseError::try_from_code(p.error_code) {
                None => Ok(p.base_offset),
                // Already written by an earlier attempt: success.
                Some(ResponseError::DuplicateSequenceNumber) => Ok(p.base_offset),
                Some(error) => Err(ClientError::Broker {
                    context: format!(
                        "produce to {}{}",
                        b.tp,
                        p.error_message
                            .as_ref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    ),
                    error,
                }),
            }
        })
        .collect())
}

/// Resolves or requeues one batch after its request ended.
fn finish(shared: &Shared, mut b: SealedBatch, result: Result<i64>) {
    let cfg = &shared.config;
    let idempotent = cfg.idempotent();
    let now = Instant::now();
    match result {
        Ok(base) => {
            {
                let mut acc = shared.acc.lock();
                if let Some(q) = acc.parts.get_mut(&b.tp) {
                    q.in_flight = q.in_flight.saturating_sub(1);
                    if b.raw.is_some() {
                        q.raw_in_flight = false;
                    }
                }
            }
            let bytes = b.bytes;
            let n = b.complete(base);
            release(shared, n, bytes);
        }
        Err(e) => {
            if e.invalidates_metadata() {
                shared.cluster.invalidate(&b.tp.topic);
            }
            let mut acc = shared.acc.lock();
            let Some(q) = acc.parts.get_mut(&b.tp) else {
                drop(acc);
                let bytes = b.bytes;
                let n = b.fail(&e);
                release(shared, n, bytes);
                return;
            };
            q.in_flight = q.in_flight.saturating_sub(1);
            if b.raw.is_some() {
                q.raw_in_flight = false;
                // A raw batch has no sequence: only an answer that says it
                // was not appended allows sending it again.
                let in_time = b.created + cfg.delivery_timeout > now;
                if refused_before_append(&e) && b.attempts < cfg.retries && in_time {
                    debug!(tp = %b.tp, attempt = b.attempts + 1, error = %e, "retrying raw batch");
                    b.attempts += 1;
                    b.retry_at = Some(now + cfg.client.retry_backoff);
                    b.last_error = Some(e);
                    requeue(q, b, idempotent);
                    return;
                }
                let e = ClientError::RawBatchFailed {
                    topic: b.tp.topic.clone(),
                    partition: b.tp.partition,
                    reason: e.to_string(),
                };
                q.poisoned = Some(e.clone());
                drop(acc);
                warn!(tp = %b.tp, error = %e, "raw batch failed; the partition's later batches fail too");
                let bytes = b.bytes;
                let n = b.fail(&e);
                release(shared, n, bytes);
                shared.wake.notify_one();
                return;
            }
            let out_of_order = e.response_error() == Some(ResponseError::OutOfOrderSequenceNumber);
            // An earlier batch of this partition failed and is being
            // retried: ours was refused only because it came too early.
            let earlier_pending = q.in_flight > 0 || !q.sealed.is_empty();
            let retriable = e.is_retriable()
                || (idempotent && out_of_order && (earlier_pending || b.attempts < 3));
            let in_time = b.created + cfg.delivery_timeout > now;
            if retriable && b.attempts < cfg.retries && in_time {
                debug!(tp = %b.tp, attempt = b.attempts + 1, error = %e, "retrying batch");
                b.attempts += 1;
                b.retry_at = Some(now + cfg.client.retry_backoff);
                b.last_error = Some(e);
                requeue(q, b, idempotent);
            } else {
                drop(acc);
                let e = if retriable && !in_time {
                    ClientError::DeliveryTimeout {
                        topic: b.tp.topic.clone(),
                        partition: b.tp.partition,
                        after: cfg.delivery_timeout,
                        last: e.to_string(),
                    }
                } else {
                    e
                };
                warn!(tp = %b.tp, error = %e, "batch failed");
                let bytes = b.bytes;
                let n = b.fail(&e);
                release(shared, n, bytes);
            }
        }
    }
}

/// True when `e` proves the batch was not appended (it was never sent, or
/// the broker answered that it did not take it), so sending it again
/// cannot duplicate it.
fn refused_before_append(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. }
        | ClientError::ConnectTimeout { .. }
        | ClientError::NoBrokerAvailable { .. }
        | ClientError::NoLeader { .. }
        | ClientError::UnknownTopic { .. } => true,
        ClientError::Broker { error, .. } => matches!(
            error,
            ResponseError::NotLeaderOrFollower
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::LeaderNotAvailable
                | ResponseError::NotEnoughReplicas
        ),
        _ => false,
    }
}
