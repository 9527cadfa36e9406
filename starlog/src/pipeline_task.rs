//! In-broker pipelines of a cluster member: the broker's
//! [`PipelineLauncher`] as the `starlog` binary implements it, on top of the
//! clients' processing node ([`PipelineNode`]).
//!
//! Each broker of the cluster runs the pipeline as a member of the
//! pipeline's consumer group (`starlog-pipeline-<name>` unless its source
//! names a group) through its own Kafka listener, logged in as the broker's
//! internal principal when that listener is SASL. The group spreads the
//! source partitions over the brokers; outputs are produced with acks=all
//! through the cluster (replicated, acknowledged by a quorum) and positions
//! are committed as the group's offsets once the outputs are acknowledged,
//! so a broker that dies loses its member and the others resume its
//! partitions from the committed positions (at-least-once: outputs written
//! after the last commit are written again).
//!
//! The pipeline gets no schema registry (each broker's registry is its own,
//! not replicated): Avro output and Confluent-framed input are refused at
//! start with their YAML path; JSON output must be used. A run that ends
//! with an error (a chain failure, the broker's listener going away) is
//! started again after a back-off (1 s doubling to 30 s), from the
//! committed positions. The counters are fed to the broker's
//! `PipelineStatus` (the `starlog_pipeline_*` families of `/metrics`).

use std::sync::Arc;
use std::time::Duration;

use starlog_broker::extensions::{
    ExtensionError, LocalAddrs, PipelineLauncher, RunningTask, SharedPipelineStatus as SharedStatus,
};
use starlog_clients::config::{ClientConfig, SaslConfig, SaslMechanism};
use starlog_clients::pipeline::{PipelineNode, PipelineObserver};
use starlog_processors::config::PipelineSpec;
use starlog_processors::pipeline::PipelineCounters;
use tokio::sync::watch;

/// The member's session timeout: a dead broker's partitions are taken over
/// this long after its last heartbeat.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeats of the member.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a rebalance waits for the live members to rejoin.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a pipeline cannot run as a group member.
#[derive(Debug, thiserror::Error)]
pub enum PipelineTaskError {
    /// The broker's internal login names a mechanism the clients lack.
    #[error("the internal login's SASL mechanism {0} is not supported by the Kafka client")]
    Mechanism(String),
    /// The pipeline cannot be built (the message names the YAML path).
    #[error(
        "pipeline {name} (cluster mode: run as a member of group {group}, without a schema \
         registry, so Avro output and Confluent input are refused; use JSON): {source}"
    )]
    Build {
        /// The pipeline.
        name: String,
        /// Its group.
        group: String,
        /// The fault.
        source: Box<starlog_clients::pipeline::ProcessNodeError>,
    },
}

/// Runs a cluster member's pipelines with the clients' processing node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipelines;

impl PipelineLauncher for Pipelines {
    fn start(
        &self,
        spec: &PipelineSpec,
        group: &str,
        status: SharedStatus,
        local: &LocalAddrs,
    ) -> Result<RunningTask, ExtensionError> {
        Ok(start(spec, group, status, local)?)
    }
}

/// The client settings of an in-broker client of this broker.
fn client_config(local: &LocalAddrs, name: &str) -> Result<ClientConfig, PipelineTaskError> {
    let mut client = ClientConfig::new(&local.kafka.to_string());
    client.client_id = format!("starlog-pipeline-{name}");
    if let Some(login) = &local.login {
        let mechanism = match login.mechanism.as_str() {
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "PLAIN" => SaslMechanism::Plain,
            other => return Err(PipelineTaskError::Mechanism(other.to_owned())),
        };
        client.sasl = Some(SaslConfig {
            mechanism,
            username: login.username.clone(),
            password: login.password.clone(),
        });
    }
    Ok(client)
}

/// Feeds the node's counters into the broker's status.
#[derive(Debug)]
struct Status(SharedStatus);

impl PipelineObserver for Status {
    fn counters(&self, c: &PipelineCounters) {
        let mut s = self.0.lock();
        s.records_in = c.records;
        s.passed = c.chain.passed;
        s.skipped = c.chain.skipped;
        s.dead_lettered = c.dead_lettered;
    }

    fn lag(&self, lag: i64) {
        self.0.lock().lag = lag;
    }
}

fn start(
    spec: &PipelineSpec,
    group: &str,
    status: SharedStatus,
    local: &LocalAddrs,
) -> Result<RunningTask, PipelineTaskError> {
    let client = client_config(local, &spec.name)?;
    let node = PipelineNode::new(spec, client, group)
        .map_err(|source| PipelineTaskError::Build {
            name: spec.name.clone(),
            group: group.to_owned(),
            source: Box::new(source),
        })?
        .with_group_timeouts(SESSION_TIMEOUT, HEARTBEAT_INTERVAL, REBALANCE_TIMEOUT)
        .with_observer(Arc::new(Status(Arc::clone(&status))));
    let (stop, stopped) = watch::channel(false);
    let name = spec.name.clone();
    let handle = tokio::spawn(run(node, name.clone(), status, stopped));
    let shown = name.clone();
    Ok(RunningTask {
        name,
        stop: Box::new(move || {
            Box::pin(async move {
                let _ = stop.send(true);
                if let Err(e) = handle.await {
                    tracing::error!(pipeline = %shown, error = %e, "pipeline task failed");
                }
            })
        }),
    })
}

async fn wait_stop(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

async fn run(
    node: PipelineNode,
    name: String,
    status: SharedStatus,
    stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match node.run(wait_stop(stopped.clone())).await {
            Ok(stats) => {
                tracing::info!(pipeline = %name, records = stats.records, commits = stats.commits, "in-broker pipeline left its group");
                break;
            }
            Err(e) => {
                status.lock().failures += 1;
                tracing::warn!(pipeline = %name, error = %e, retry_in = ?backoff, "in-broker pipeline run failed; resuming from the committed positions");
            }
        }
        tokio::select! {
            () = wait_stop(stopped.clone()) => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    node.close().await;
}
