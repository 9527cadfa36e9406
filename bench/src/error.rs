//! The one error type of the bench library.
//!
//! Every variant names what was at fault — the file, the topic, the
//! partition and offset of a consumed record, the broker command — so a
//! failed benchmark run says where to look without a debugger. The binary
//! wraps these in `anyhow` for context; the library never does.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while preparing, running or reporting a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An alert file could not be read.
    #[error("alert file {path}: {source}")]
    ReadAlert {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// An alert file does not start with the Avro container magic `Obj\x01`.
    #[error("alert file {path}: not an Avro object container file (no `Obj\\x01` magic)")]
    NotAvro {
        /// The file.
        path: PathBuf,
    },

    /// No alert files where they were expected.
    #[error("no alert files ({pattern}) under {dir}")]
    NoAlerts {
        /// The folder searched.
        dir: PathBuf,
        /// What was looked for.
        pattern: &'static str,
    },

    /// The workload asked for is not runnable (zero messages, zero partitions...).
    #[error("invalid workload: {0}")]
    InvalidWorkload(String),

    /// A Kafka client (producer, consumer, admin) could not be created.
    #[error("creating the {role} for {bootstrap}: {reason}")]
    Client {
        /// `producer`, `consumer group <id>` or `admin client`.
        role: String,
        /// The bootstrap address.
        bootstrap: String,
        /// The client library's message.
        reason: String,
    },

    /// The benchmark topic could not be created.
    #[error("creating topic {topic} ({partitions} partitions): {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// The broker's or client's message.
        reason: String,
    },

    /// A message could not be handed to the producer or was not acknowledged.
    #[error("producing message {seq} to topic {topic}: {reason}")]
    Produce {
        /// The topic.
        topic: String,
        /// The bench sequence number of the message.
        seq: u64,
        /// Why.
        reason: String,
    },

    /// The producer did not finish (acknowledge or fail) everything in time.
    #[error("topic {topic}: {outstanding} messages still unacknowledged after {waited:?}")]
    FlushTimeout {
        /// The topic.
        topic: String,
        /// Messages neither acknowledged nor failed.
        outstanding: u64,
        /// How long we waited.
        waited: Duration,
    },

    /// The consumer reported an error.
    #[error("consumer group {group}, topic {topic}: {reason}")]
    Consume {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// The client library's message.
        reason: String,
    },

    /// A consumed record lacks a bench header or carries a malformed one.
    #[error("topic {topic} partition {partition} offset {offset}: header `{header}` {problem}")]
    BadHeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// Which header.
        header: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// A consumer group got no partitions in time.
    #[error("consumer group {group}: no partition of topic {topic} assigned within {waited:?}")]
    NotAssigned {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// How long we waited.
        waited: Duration,
    },

    /// A consumer thread panicked (a bug in the bench or a client library).
    #[error("consumer group {group}: its thread panicked")]
    ConsumerPanicked {
        /// The group.
        group: String,
    },

    /// A broker process could not be started, watched or stopped.
    #[error("broker process `{command}`: {reason}")]
    Process {
        /// The command line as run.
        command: String,
        /// What went wrong.
        reason: String,
    },

    /// A spawned broker never accepted a TCP connection.
    #[error("broker process `{command}` did not accept connections on {addr} within {waited:?}")]
    NotListening {
        /// The command line as run.
        command: String,
        /// The address we tried.
        addr: String,
        /// How long we waited.
        waited: Duration,
    },

    /// `/proc/<pid>/...` could not be read or parsed.
    #[error("/proc/{pid}/{file}: {reason}")]
    ProcStats {
        /// The process.
        pid: u32,
        /// `stat` or `status`.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },

    /// A machine-limit measurement failed.
    #[error("measuring the {what} limit: {source}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A report file could not be written.
    #[error("writing report {path}: {reason}")]
    WriteReport {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A side-by-side comparison could not be formed.
    #[error("comparison: {0}")]
    Compare(String),

    /// The in-broker chain asked for is unknown or cannot run against this target.
    #[error("in-broker chain `{chain}`: {reason}")]
    Chain {
        /// The chain's name as given.
        chain: String,
        /// Why it cannot run.
        reason: String,
    },

    /// The failover measurement could not go on.
    #[error("failover on topic {topic}: {reason}")]
    Failover {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },

    /// A secured listener or a client's security settings could not be set up.
    #[error("security ({what}): {reason}")]
    Security {
        /// What was being set up.
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// A request to the broker's HTTP port (`/metrics`, the registry) failed.
    #[error("http://{addr}{path}: {reason}")]
    Metrics {
        /// The HTTP address.
        addr: String,
        /// The request's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl From<starlog_testkit::cluster::ClusterError> for BenchError {
    fn from(e: starlog_testkit::cluster::ClusterError) -> Self {
        use starlog_testkit::cluster::ClusterError;
        match e {
            ClusterError::Process { command, reason } => Self::Process { command, reason },
            ClusterError::NotListening {
                command,
                addr,
                waited,
            } => Self::NotListening {
                command,
                addr,
                waited,
            },
            ClusterError::Http { addr, path, reason } => Self::Metrics { addr, path, reason },
        }
    }
}
