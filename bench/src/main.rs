//! The `starlog-bench` command: `run`, `compare`, `security`, `cluster` and `limits`.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Survives absurd allocation sizes decoded from a peer's bytes
/// (see `starlog_alloc`).
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
use starlog_bench::chain::{self, ChainKind};
use starlog_bench::client::{Acks, ConsumerSettings, LoadClient, ProducerSettings};
use starlog_bench::cluster::{ClusterSpec, RunningCluster, SpawnedCluster};
use starlog_bench::compare;
use starlog_bench::failover::{self, FailoverSettings};
use starlog_bench::limits::{self, LimitSizes, MachineLimits};
use starlog_bench::machine;
use starlog_bench::pacer::Rate;
use starlog_bench::payload::{testdata_dir, PayloadSource, Payloads};
use starlog_bench::rdkafka_client::RdKafkaClient;
use starlog_bench::replication::{self, ReplicationReport};
use starlog_bench::report::BenchReport;
use starlog_bench::results::RunResult;
use starlog_bench::run::{fresh_topic, run, RunContext};
use starlog_bench::security::{ClientSecurity, Protocol, SecuredStarlog};
use starlog_bench::security_cost::{RateCost, SecurityCost};
use starlog_bench::spawned::{parse_host_port, CommandTarget};
use starlog_bench::target::{BrokerTarget, ExternalBroker, RunningBroker};
use starlog_bench::workload::Workload;
use tracing_subscriber::EnvFilter;

/// Load generator and side-by-side benchmarks for Kafka-compatible brokers.
#[derive(Debug, Parser)]
#[command(name = "starlog-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload against one broker (spawned fresh per run, or --bootstrap).
    Run {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run the same workload against Starlog and a peer, alternately A B A B.
    Compare {
        /// Command that starts Starlog ({host}, {port}, {data_dir} are filled in).
        /// Default: `<--starlog-bin> serve --listen {host}:{port} --data-dir {data_dir}`.
        #[arg(long)]
        starlog_cmd: Option<String>,
        /// The starlog binary for the default --starlog-cmd.
        #[arg(long, default_value = "target/release/starlog")]
        starlog_bin: PathBuf,
        /// Command that starts the peer broker ({host}, {port}, {data_dir} are filled in).
        #[arg(long)]
        peer_cmd: String,
        /// Where the peer listens; its port fills {port}. Default: a free port on 127.0.0.1.
        #[arg(long)]
        peer_bootstrap: Option<String>,
        /// The peer's name in reports.
        #[arg(long, default_value = "peer")]
        peer_name: String,
        /// Number of A B pairs per rate.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
        /// Seconds to wait for a started broker to accept connections.
        #[arg(long, default_value_t = 60)]
        ready_timeout_secs: u64,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Security's cost (issue 14): the same Starlog with a PLAINTEXT listener
    /// (A) and a secured one (B: SASL_SSL with SCRAM-SHA-512 by default, a
    /// test CA and server certificate made for the run, a user written before
    /// each start), alternately A B A B at each --rate.
    Security {
        /// The starlog binary (`cargo build --release -p starlog`).
        #[arg(long, default_value = "target/release/starlog")]
        starlog_bin: PathBuf,
        /// The secured arm's listener.
        #[arg(long, value_parser = Protocol::parse, default_value = "SASL_SSL")]
        security_protocol: Protocol,
        /// The secured arm's SASL mechanism (SCRAM-SHA-512 or SCRAM-SHA-256).
        #[arg(long, default_value = "SCRAM-SHA-512")]
        sasl_mechanism: String,
        /// Number of A B pairs per rate.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
        /// Seconds to wait for a started broker to accept connections.
        #[arg(long, default_value_t = 60)]
        ready_timeout_secs: u64,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Replication (issue 7): acks=all throughput of a 1-node and an N-node
    /// Starlog Raft cluster alternately (RF 1, RF N, RF 1, RF N ...), then
    /// leader failover time (kill -9 of the leader to the first acknowledged
    /// produce) on an N-node cluster.
    Cluster {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Measure only the machine's limits (disk, loopback TCP, memory copy).
    Limits {
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// Use the broker already listening here instead of starting one.
    #[arg(long, conflicts_with = "broker_cmd")]
    bootstrap: Option<String>,
    /// With --bootstrap: the broker's process id, to report its CPU and memory.
    #[arg(long, requires = "bootstrap")]
    broker_pid: Option<u32>,
    /// Command that starts the broker per run ({host}, {port}, {data_dir} are
    /// filled in). Default: Starlog from --starlog-bin.
    #[arg(long)]
    broker_cmd: Option<String>,
    /// The target's name in reports.
    #[arg(long, default_value = "starlog")]
    name: String,
    /// The starlog binary (`cargo build --release -p starlog`).
    #[arg(long, default_value = "target/release/starlog")]
    starlog_bin: PathBuf,
    /// Seconds to wait for a started broker to accept connections.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// Replication factor of the topic each run creates (e.g. 3 against an
    /// external 3-node Starlog cluster given with --bootstrap).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Debug, Args)]
struct SecurityArgs {
    /// The listener's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or
    /// SASL_SSL. With --bootstrap, how the clients connect (with the --sasl-*
    /// and --ssl-* settings); otherwise the Starlog the bench starts gets one
    /// listener of this protocol (a test CA and server certificate made for
    /// the invocation, a SCRAM user written before each start) and the
    /// clients use it.
    #[arg(long, value_parser = Protocol::parse, default_value = "PLAINTEXT")]
    security_protocol: Protocol,
    /// The SASL mechanism (SCRAM-SHA-512, SCRAM-SHA-256; PLAIN with --bootstrap).
    #[arg(long, default_value = "SCRAM-SHA-512")]
    sasl_mechanism: String,
    /// With --bootstrap: the SASL user.
    #[arg(long, requires = "bootstrap")]
    sasl_username: Option<String>,
    /// With --bootstrap: the environment variable that holds the SASL
    /// password (kept out of the command line and the report).
    #[arg(long, default_value = "STARLOG_BENCH_SASL_PASSWORD")]
    sasl_password_env: String,
    /// With --bootstrap: the CA certificate (PEM) that signed the broker's
    /// (default: the system's trust store).
    #[arg(long, requires = "bootstrap")]
    ssl_ca_location: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The starlog binary (`cargo build --release -p starlog`).
    #[arg(long, default_value = "target/release/starlog")]
    starlog_bin: PathBuf,
    /// Size of the replicated cluster (= its replication factor), measured
    /// against a 1-node cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Number of (RF 1, RF N) throughput pairs.
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// Seconds of sending per throughput run.
    #[arg(long, default_value_t = 20.0)]
    duration_secs: f64,
    /// Messages per second for the throughput runs, or `max`.
    #[arg(long, value_parser = Rate::parse, default_value = "max")]
    rate: Rate,
    /// Most messages per throughput run (the duration usually ends it first).
    #[arg(long, default_value_t = 2_000_000)]
    max_messages: u64,
    /// Values to send.
    #[arg(long, value_enum, default_value = "ztf")]
    payload: PayloadKind,
    /// Value size for --payload synthetic.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Partitions of each throughput run's topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Consumer groups reading the throughput runs live (0: produce only).
    #[arg(long, default_value_t = 0)]
    groups: usize,
    /// Extra producer setting for librdkafka, key=value (repeatable; applied
    /// after the bench's own: `queue.buffering.max.kbytes=65536` for
    /// throughput, the fault tests' timeouts for failover).
    #[arg(long = "producer-config", short = 'P', value_parser = key_value)]
    producer_config: Vec<(String, String)>,
    /// Kill -9 rounds of the failover measurement.
    #[arg(long, default_value_t = 5)]
    failover_rounds: usize,
    /// Messages per second sent steadily during the failover measurement.
    #[arg(long, default_value_t = 200.0)]
    failover_rate: f64,
    /// Seconds of steady acknowledgements before each kill. The default puts kills more than
    /// librdkafka's `reconnect.backoff.max.ms` (10 s) apart: a client that saw a broker die a few
    /// seconds earlier still backs off reconnecting to it (up to seconds) when it becomes the
    /// new leader, which measures the client's backoff rather than the failover.
    #[arg(long, default_value_t = 11.0)]
    failover_warmup_secs: f64,
    /// Longest wait for the first acknowledgement after a kill.
    #[arg(long, default_value_t = 30)]
    failover_max_wait_secs: u64,
    /// Longest wait for a restarted node's replicas to catch up.
    #[arg(long, default_value_t = 120)]
    settle_timeout_secs: u64,
    /// Skip the throughput runs.
    #[arg(long)]
    no_throughput: bool,
    /// Skip the failover measurement.
    #[arg(long)]
    no_failover: bool,
    /// Start the brokers with `cluster.sync_data: false` (rely on replication,
    /// no fdatasync before acknowledging), for RF 1 and RF N alike.
    #[arg(long)]
    no_sync_data: bool,
    /// `RUST_LOG` of the spawned brokers (e.g. `info` to see elections).
    #[arg(long, default_value = "warn")]
    node_log: String,
    /// Keep every spawned broker's log in this directory (by default they go
    /// with the cluster's temporary directory).
    #[arg(long)]
    node_log_dir: Option<PathBuf>,
    /// Seconds to wait for a node to listen and the cluster to elect a controller.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// The alert data folder (default: the repository's testdata/).
    #[arg(long)]
    data_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PayloadKind {
    /// Rubin's sample alerts (15 files, 33-56 KB, ~42 KB for schema 11.1).
    Rubin,
    /// The 114 real ZTF alerts of testdata/.
    Ztf,
    /// Rubin samples and ZTF alerts.
    Alerts,
    /// Pseudo-random values of --message-bytes.
    Synthetic,
}

#[derive(Debug, Args)]
struct WorkloadArgs {
    /// Values to send.
    #[arg(long, value_enum, default_value = "rubin")]
    payload: PayloadKind,
    /// Value size for --payload synthetic.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Messages per second, or `max`; repeat for several runs (e.g. --rate 1000 --rate 10000).
    #[arg(long, value_parser = Rate::parse, default_value = "1000")]
    rate: Vec<Rate>,
    /// Seconds of traffic at a fixed rate (messages = rate x seconds).
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Number of messages (overrides --duration-secs; required sense for --rate max).
    #[arg(long)]
    messages: Option<u64>,
    /// Partitions of the run's fresh topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Consumer groups reading in real time.
    #[arg(long, default_value_t = 2)]
    groups: usize,
    /// Producer acks.
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    /// Producer compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Idempotent producer.
    #[arg(long)]
    idempotent: bool,
    /// Extra producer setting for the client library, key=value (repeatable).
    #[arg(long = "producer-config", short = 'P', value_parser = key_value)]
    producer_config: Vec<(String, String)>,
    /// Extra consumer setting for the client library, key=value (repeatable).
    #[arg(long = "consumer-config", short = 'C', value_parser = key_value)]
    consumer_config: Vec<(String, String)>,
    /// Seconds consumers may take to catch up after the last acknowledgement.
    #[arg(long, default_value_t = 120)]
    drain_timeout_secs: u64,
    /// In-broker processor chain to run inside the spawned Starlog and check
    /// (`pass-all`); Starlog runs only.
    #[arg(long, value_parser = parse_chain)]
    in_broker_chain: Option<ChainKind>,
    /// The alert data folder (default: the repository's testdata/).
    #[arg(long)]
    data_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Where the JSON and Markdown reports go.
    #[arg(long, default_value = "target/starlog-bench")]
    out_dir: PathBuf,
    /// Where spawned brokers keep their data (and the disk limit is measured).
    #[arg(long, default_value = "target/starlog-bench/data")]
    data_dir: PathBuf,
    /// Skip measuring the machine's limits.
    #[arg(long)]
    no_limits: bool,
    /// MiB written for the disk limit.
    #[arg(long, default_value_t = 1024)]
    limit_disk_mib: u64,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn parse_chain(s: &str) -> Result<ChainKind, String> {
    ChainKind::parse(s).map_err(|e| e.to_string())
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got `{s}`")),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log sent to a file or pipe stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    kill_nodes_on_signal();
    // The program's own path is left out: reports name the tool, not this machine's layout.
    let command_line =
        shell_line(std::iter::once("starlog-bench".to_string()).chain(std::env::args().skip(1)));
    let report = match cli.command {
        Command::Limits { output } => {
            let limits = measure_limits(&output)?;
            let machine = machine::describe(&output.data_dir);
            finish(
                BenchReport::new(command_line, machine, limits, Vec::new(), Vec::new()),
                &output,
            )?
        }
        Command::Run {
            target,
            workload,
            output,
        } => {
            let limits = measure_limits(&output)?;
            let machine = machine::describe(&output.data_dir);
            let payloads = load_payloads(&workload)?;
            let mut broker_target = make_target(&target, &output, workload.in_broker_chain)?;
            let mut runs = Vec::new();
            for &rate in &workload.rate {
                let w = build_workload(&workload, rate)?;
                let r = compare::run_on(broker_target.as_mut(), &mut |broker, name| {
                    run_against(
                        broker,
                        name,
                        &w,
                        &payloads,
                        !output.no_progress,
                        target.replication_factor,
                    )
                })
                .with_context(|| format!("run at {rate} against {}", target.name))?;
                eprintln_summary(&r);
                runs.push(r);
            }
            finish(
                BenchReport::new(command_line, machine, limits, runs, Vec::new()),
                &output,
            )?
        }
        Command::Cluster { cluster, output } => {
            let limits = measure_limits(&output)?;
            let machine = machine::describe(&output.data_dir);
            let (runs, comparisons, replication) = run_cluster(&cluster, &output)?;
            let report = BenchReport::new(command_line, machine, limits, runs, comparisons)
                .with_replication(replication);
            let met = report
                .replication
                .as_ref()
                .map(|r| (r.throughput_met, r.failover.as_ref().map(|f| f.target_met)));
            let report = finish(report, &output)?;
            if let Some((tp, fo)) = met {
                let verdict = |v: Option<bool>| match v {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "not measured",
                };
                eprintln!(
                    "targets: RF{n}/RF1 throughput >= {:.0}%: {}; failover < {:?}: {}",
                    starlog_bench::replication::THROUGHPUT_TARGET * 100.0,
                    verdict(tp),
                    starlog_bench::failover::TARGET,
                    verdict(fo),
                    n = cluster.nodes
                );
            }
            report
        }
        Command::Security {
            starlog_bin,
            security_protocol,
            sasl_mechanism,
            pairs,
            ready_timeout_secs,
            workload,
            output,
        } => {
            let report = run_security(
                command_line,
                &starlog_bin,
                security_protocol,
                &sasl_mechanism,
                pairs,
                Duration::from_secs(ready_timeout_secs),
                &workload,
                &output,
            )?;
            let report = finish(report, &output)?;
            let verdict = |v: Option<bool>| match v {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            };
            let met = report
                .security
                .as_ref()
                .map_or((None, None), |c| (c.throughput_met, c.latency_met));
            eprintln!(
                "targets: {security_protocol} flat-out throughput >= {:.0}% of PLAINTEXT: {}; \
                 p50 added at a fixed rate <= {:.0} ms: {}",
                starlog_bench::security_cost::THROUGHPUT_TARGET * 100.0,
                verdict(met.0),
                starlog_bench::security_cost::P50_ADDED_TARGET_MS,
                verdict(met.1)
            );
            report
        }
        Command::Compare {
            starlog_cmd,
            starlog_bin,
            peer_cmd,
            peer_bootstrap,
            peer_name,
            pairs,
            ready_timeout_secs,
            workload,
            output,
        } => {
            if let Some(kind) = workload.in_broker_chain {
                bail!(
                    "--in-broker-chain {} is refused for `compare`: the peer ({peer_name}) \
                     has no in-broker processors, so the runs would not be alike; \
                     run the chain with `run` against Starlog",
                    kind.name()
                );
            }
            let limits = measure_limits(&output)?;
            let machine = machine::describe(&output.data_dir);
            let payloads = load_payloads(&workload)?;
            let starlog_cmd = match starlog_cmd {
                Some(c) => c,
                None => starlog_template(&starlog_bin, &output.data_dir, None)?.0,
            };
            let ready = Duration::from_secs(ready_timeout_secs);
            let mut a =
                CommandTarget::new("starlog", starlog_cmd, "127.0.0.1", None, &output.data_dir);
            a.ready_timeout = ready;
            let (host, port) = match &peer_bootstrap {
                Some(b) => {
                    let (h, p) =
                        parse_host_port(b).map_err(|e| anyhow::anyhow!("--peer-bootstrap {e}"))?;
                    (h, Some(p))
                }
                None => ("127.0.0.1".to_string(), None),
            };
            let mut b = CommandTarget::new(peer_name, peer_cmd, host, port, &output.data_dir);
            b.ready_timeout = ready;
            let mut runs = Vec::new();
            let mut comparisons = Vec::new();
            for &rate in &workload.rate {
                let w = build_workload(&workload, rate)?;
                let (a_runs, b_runs) =
                    compare::alternate(&mut a, &mut b, pairs, &mut |broker, name| {
                        let r = run_against(broker, name, &w, &payloads, !output.no_progress, 1)?;
                        eprintln_summary(&r);
                        Ok(r)
                    })
                    .with_context(|| format!("side-by-side at {rate}"))?;
                comparisons.push(compare::compare(&a_runs, &b_runs)?);
                // Report runs in the order they ran: A1 B1 A2 B2 ...
                for (x, y) in a_runs.into_iter().zip(b_runs) {
                    runs.push(x);
                    runs.push(y);
                }
            }
            finish(
                BenchReport::new(command_line, machine, limits, runs, comparisons),
                &output,
            )?
        }
    };
    if !report.all_complete() {
        eprintln!("starlog-bench: at least one run did NOT deliver every acknowledged message (see the report)");
        std::process::exit(2);
    }
    Ok(())
}

/// The command that starts Starlog per run. It uses the broker's defaults
/// (5 ms group commit, 7-day retention) except the schema registry, which is
/// off: it is not on the produce/fetch path, and its fixed HTTP port would
/// collide with any other broker on the machine. With an in-broker chain the
/// registry is on (Avro output registers its schemas there, and `/metrics`
/// is served on the same listener) at a free port per run, and the chain's
/// pipeline is in a configuration file written per run: the command and that
/// file's template are returned.
fn starlog_template(
    bin: &Path,
    data_dir: &Path,
    chain: Option<ChainKind>,
) -> anyhow::Result<(String, Option<String>)> {
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p starlog`, \
             or pass --starlog-bin / --starlog-cmd",
            bin.display()
        );
    }
    if let Some(kind) = chain {
        let config = kind.broker_config_template();
        let command = format!(
            "{} serve --config {{config}} --listen {{host}}:{{port}} --data-dir {{data_dir}}",
            bin.display()
        );
        return Ok((command, Some(config)));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let config = data_dir.join("starlog-bench.yaml");
    std::fs::write(
        &config,
        "# Written by starlog-bench: Starlog's defaults without the schema registry.\n\
         schema_registry:\n  enabled: false\n",
    )
    .with_context(|| format!("writing {}", config.display()))?;
    Ok((
        format!(
            "{} serve --config {} --listen {{host}}:{{port}} --data-dir {{data_dir}}",
            bin.display(),
            config.display()
        ),
        None,
    ))
}

fn make_target(
    t: &TargetArgs,
    output: &OutputArgs,
    chain: Option<ChainKind>,
) -> anyhow::Result<Box<dyn BrokerTarget>> {
    if let Some(kind) = chain {
        if t.bootstrap.is_some() || t.broker_cmd.is_some() {
            bail!(
                "--in-broker-chain {} needs a Starlog that starlog-bench starts itself \
                 (it writes the pipeline into the broker's configuration): \
                 drop --bootstrap / --broker-cmd",
                kind.name()
            );
        }
    }
    let sec = &t.security;
    if let Some(b) = &t.bootstrap {
        let client = ClientSecurity {
            protocol: sec.security_protocol,
            mechanism: sec.sasl_mechanism.clone(),
            username: sec.sasl_username.clone(),
            password: if sec.security_protocol.sasl() {
                Some(std::env::var(&sec.sasl_password_env).with_context(|| {
                    format!(
                        "--security-protocol {}: the SASL password is read from ${}",
                        sec.security_protocol, sec.sasl_password_env
                    )
                })?)
            } else {
                None
            },
            ca_location: sec.ssl_ca_location.clone(),
        };
        client.validate()?;
        return Ok(Box::new(
            ExternalBroker::new(t.name.clone(), b.clone(), t.broker_pid)
                .with_client_config(client.rdkafka_settings()),
        ));
    }
    if sec.security_protocol != Protocol::Plaintext {
        if t.broker_cmd.is_some() || chain.is_some() {
            bail!(
                "--security-protocol {} with a broker the bench starts: only its own Starlog \
                 (no --broker-cmd, no --in-broker-chain); for another broker start it yourself \
                 and pass --bootstrap with the client settings",
                sec.security_protocol
            );
        }
        let (c, _) = secured_starlog_target(
            &t.name,
            &t.starlog_bin,
            &output.data_dir,
            sec.security_protocol,
            &sec.sasl_mechanism,
            Duration::from_secs(t.ready_timeout_secs),
        )?;
        return Ok(Box::new(c));
    }
    let (template, config) = match &t.broker_cmd {
        Some(c) => (c.clone(), None),
        None => starlog_template(&t.starlog_bin, &output.data_dir, chain)?,
    };
    let mut c = CommandTarget::new(
        t.name.clone(),
        template,
        "127.0.0.1",
        None,
        &output.data_dir,
    );
    c.ready_timeout = Duration::from_secs(t.ready_timeout_secs);
    if let Some(config) = config {
        c = c.with_config(config);
    }
    Ok(Box::new(c))
}

/// Starlog from `bin` with one listener of `protocol` (see
/// `starlog_bench::security`); otherwise the same configuration as
/// `starlog_template`'s (no schema registry).
fn secured_starlog_target(
    name: &str,
    bin: &Path,
    data_root: &Path,
    protocol: Protocol,
    mechanism: &str,
    ready: Duration,
) -> anyhow::Result<(CommandTarget, String)> {
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p starlog`, or pass --starlog-bin",
            bin.display()
        );
    }
    let secured = Arc::new(SecuredStarlog::new(protocol, mechanism, data_root)?);
    let config = format!(
        "# Written by starlog-bench: Starlog's defaults without the schema registry,\n\
         # one {protocol} listener.\n\
         schema_registry:\n  enabled: false\n{}",
        secured.listeners_yaml()
    );
    let command = format!(
        "{} serve --config {{config}} --data-dir {{data_dir}}",
        bin.display()
    );
    let login = secured.client().describe();
    let client = secured.client().rdkafka_settings();
    // The closure owns the certificates' folder: it lives as long as the target.
    let seed = Arc::clone(&secured);
    let mut c = CommandTarget::new(name, command, "127.0.0.1", None, data_root)
        .with_config(config)
        .with_prepare(Arc::new(move |data_dir: &Path| seed.seed_user(data_dir)))
        .with_client_config(client);
    c.ready_timeout = ready;
    Ok((c, login))
}

/// `starlog-bench security`: PLAINTEXT (A) and `protocol` (B) A B A B at
/// each rate.
#[allow(clippy::too_many_arguments)]
fn run_security(
    command_line: String,
    starlog_bin: &Path,
    protocol: Protocol,
    mechanism: &str,
    pairs: usize,
    ready: Duration,
    workload: &WorkloadArgs,
    output: &OutputArgs,
) -> anyhow::Result<BenchReport> {
    if let Some(kind) = workload.in_broker_chain {
        bail!(
            "--in-broker-chain {} is refused for `security`: it measures the listener alone",
            kind.name()
        );
    }
    if protocol == Protocol::Plaintext {
        bail!("--security-protocol PLAINTEXT: the secured arm must be SSL, SASL_PLAINTEXT or SASL_SSL");
    }
    // Every workload is checked before anything is measured.
    let workloads = workload
        .rate
        .iter()
        .map(|&rate| build_workload(workload, rate).map(|w| (rate, w)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limits = measure_limits(output)?;
    let machine = machine::describe(&output.data_dir);
    let payloads = load_payloads(workload)?;
    let (template, _) = starlog_template(starlog_bin, &output.data_dir, None)?;
    let mut a = CommandTarget::new("plaintext", template, "127.0.0.1", None, &output.data_dir);
    a.ready_timeout = ready;
    let secured_name = protocol.name().to_ascii_lowercase();
    let (mut b, login) = secured_starlog_target(
        &secured_name,
        starlog_bin,
        &output.data_dir,
        protocol,
        mechanism,
        ready,
    )?;
    let mut runs = Vec::new();
    let mut comparisons = Vec::new();
    let mut costs = Vec::new();
    let total = workloads.len() * pairs * 2;
    let mut done = 0usize;
    for (rate, w) in &workloads {
        let (a_runs, b_runs) = compare::alternate(&mut a, &mut b, pairs, &mut |broker, name| {
            done += 1;
            eprintln!("run {done} of {total}: {name} at {rate} ...");
            let r = run_against(broker, name, w, &payloads, !output.no_progress, 1)?;
            eprintln_summary(&r);
            Ok(r)
        })
        .with_context(|| format!("PLAINTEXT against {protocol} at {rate}"))?;
        // Ratios read "secured ÷ plaintext".
        comparisons.push(compare::compare(&b_runs, &a_runs)?);
        costs.push(RateCost::new(*rate, &a_runs, &b_runs));
        for (x, y) in a_runs.into_iter().zip(b_runs) {
            runs.push(x);
            runs.push(y);
        }
    }
    let cost = SecurityCost::new(protocol, login, costs);
    Ok(BenchReport::new(command_line, machine, limits, runs, comparisons).with_security(cost))
}

fn measure_limits(output: &OutputArgs) -> anyhow::Result<Option<MachineLimits>> {
    // Also makes the folder exist for `machine::describe` to name its filesystem.
    std::fs::create_dir_all(&output.data_dir)
        .with_context(|| format!("creating {}", output.data_dir.display()))?;
    if output.no_limits {
        return Ok(None);
    }
    eprintln!(
        "measuring machine limits (disk in {}) ...",
        output.data_dir.display()
    );
    let sizes = LimitSizes {
        disk_bytes: output.limit_disk_mib << 20,
        ..LimitSizes::default()
    };
    Ok(Some(limits::measure(&output.data_dir, sizes)?))
}

fn load_payloads(w: &WorkloadArgs) -> anyhow::Result<Arc<Payloads>> {
    let source = payload_source(w);
    let root = w.data_root.clone().unwrap_or_else(testdata_dir);
    Ok(Arc::new(Payloads::load(&source, &root)?))
}

fn payload_source(w: &WorkloadArgs) -> PayloadSource {
    match w.payload {
        PayloadKind::Rubin => PayloadSource::RubinSamples,
        PayloadKind::Ztf => PayloadSource::ZtfAlerts,
        PayloadKind::Alerts => PayloadSource::AllAlerts,
        PayloadKind::Synthetic => PayloadSource::Synthetic {
            bytes: w.message_bytes,
            distinct: 16,
        },
    }
}

fn build_workload(a: &WorkloadArgs, rate: Rate) -> anyhow::Result<Workload> {
    let messages = match (a.messages, rate) {
        (Some(n), _) => n,
        (None, Rate::Fixed(r)) => (r * a.duration_secs).round() as u64,
        (None, Rate::Max) => bail!("--rate max needs --messages N"),
    };
    let mut w = Workload::alerts(rate, messages);
    w.payload = payload_source(a);
    w.partitions = a.partitions;
    w.groups = a.groups;
    w.producer = ProducerSettings {
        acks: a.acks,
        compression: a.compression.clone(),
        idempotent: a.idempotent,
        extra: a.producer_config.clone(),
    };
    w.consumer = ConsumerSettings {
        extra: a.consumer_config.clone(),
    };
    w.drain_timeout = Duration::from_secs(a.drain_timeout_secs);
    w.in_broker_chain = a.in_broker_chain;
    w.validate()?;
    Ok(w)
}

fn run_against(
    broker: &dyn RunningBroker,
    name: &str,
    w: &Workload,
    payloads: &Arc<Payloads>,
    progress: bool,
    replication_factor: i32,
) -> Result<RunResult, starlog_bench::BenchError> {
    let client = RdKafkaClient::new(broker.bootstrap())
        .with_replication_factor(replication_factor)
        .with_common_config(broker.client_config());
    let describe = broker.describe();
    let http = broker.http_addr();
    let ctx = RunContext {
        client: &client as &dyn LoadClient,
        broker_pid: broker.pid(),
        label: name,
        broker: &describe,
        progress,
        http_addr: http.as_deref(),
    };
    // The chain's pipeline was configured with its source topic before the
    // broker started (a fresh broker per run, so the name is fresh too).
    let topic = match w.in_broker_chain {
        Some(_) => chain::SOURCE_TOPIC.to_string(),
        None => fresh_topic("bench"),
    };
    run(ctx, w, Arc::clone(payloads), &topic)
}

/// On SIGINT or SIGTERM: kill (by process id) the cluster nodes this
/// process started, then exit. Without it an interrupted `cluster` run would
/// leave its brokers running (destructors do not run on a signal).
fn kill_nodes_on_signal() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return false;
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                _ = term.recv() => true,
            }
        });
        if signalled {
            let n = starlog_bench::cluster::kill_all_nodes();
            eprintln!("starlog-bench: interrupted; killed {n} cluster node(s) it had started");
            std::process::exit(130);
        }
    });
}

/// Settings set before the user's `-P` ones (which override them).
fn with_defaults(defaults: &[(&str, &str)], user: &[(String, String)]) -> Vec<(String, String)> {
    defaults
        .iter()
        .filter(|(k, _)| !user.iter().any(|(u, _)| u == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(user.iter().cloned())
        .collect()
}

type ClusterOutcome = (
    Vec<RunResult>,
    Vec<starlog_bench::compare::Comparison>,
    ReplicationReport,
);

/// `starlog-bench cluster`: the throughput pairs, then the failover rounds.
fn run_cluster(a: &ClusterArgs, output: &OutputArgs) -> anyhow::Result<ClusterOutcome> {
    if a.nodes < 3 {
        bail!(
            "--nodes {}: the replicated cluster needs at least 3 nodes \
             (a kill -9 must leave a quorum)",
            a.nodes
        );
    }
    if !(a.duration_secs.is_finite() && a.duration_secs > 0.0) {
        bail!(
            "--duration-secs {} (need a positive number)",
            a.duration_secs
        );
    }
    let w_args = WorkloadArgs {
        payload: a.payload,
        message_bytes: a.message_bytes,
        rate: vec![a.rate],
        duration_secs: a.duration_secs,
        messages: None,
        partitions: a.partitions,
        groups: a.groups,
        acks: Acks::All,
        compression: "none".into(),
        idempotent: true,
        producer_config: Vec::new(),
        consumer_config: Vec::new(),
        drain_timeout_secs: 120,
        in_broker_chain: None,
        data_root: a.data_root.clone(),
    };
    let payloads = load_payloads(&w_args)?;
    let ready = Duration::from_secs(a.ready_timeout_secs);
    let spec = |name: &str, nodes: usize| {
        let mut s = ClusterSpec::new(name, nodes, &a.starlog_bin);
        s.data_root = Some(output.data_dir.clone());
        s.ready_timeout = ready;
        s.sync_data = Some(!a.no_sync_data);
        s.node_log.clone_from(&a.node_log);
        s.node_log_dir.clone_from(&a.node_log_dir);
        s
    };
    let rf1 = spec("rf1", 1);
    let rfn = spec(&format!("rf{}", a.nodes), a.nodes);
    let mut runs = Vec::new();
    let mut comparisons = Vec::new();
    let mut usage = Vec::new();
    if !a.no_throughput {
        let mut w = Workload::alerts(a.rate, a.max_messages);
        w.payload = payload_source(&w_args);
        w.partitions = a.partitions;
        w.groups = a.groups;
        w.producer = ProducerSettings {
            acks: Acks::All,
            compression: "none".into(),
            idempotent: true,
            extra: with_defaults(
                &[("queue.buffering.max.kbytes", "65536")],
                &a.producer_config,
            ),
        };
        w.send_for = Some(Duration::from_secs_f64(a.duration_secs));
        if let Rate::Fixed(r) = a.rate {
            w.messages = ((r * a.duration_secs).round() as u64).clamp(1, a.max_messages);
        }
        w.validate()?;
        let progress = !output.no_progress;
        let (r, comparison, u) =
            replication::throughput_pairs(&rf1, &rfn, a.pairs, &mut |cluster, name| {
                let n = cluster.ids().len();
                let client = RdKafkaClient::new(cluster.bootstrap())
                    .with_replication_factor(i32::try_from(n).unwrap_or(i32::MAX));
                let running = RunningCluster::describe_cluster(cluster);
                let http = cluster.http_addr(1);
                let ctx = RunContext {
                    client: &client as &dyn LoadClient,
                    broker_pid: cluster.pids().first().map(|&(_, p)| p),
                    label: name,
                    broker: &running,
                    progress,
                    http_addr: http.as_deref(),
                };
                let r = run(ctx, &w, Arc::clone(&payloads), &fresh_topic("rep"))?;
                eprintln_summary(&r);
                Ok(r)
            })
            .context("throughput runs")?;
        runs = r;
        comparisons.push(comparison);
        usage = u;
    }
    let failover = if a.no_failover {
        None
    } else {
        let mut spec = spec("failover", a.nodes);
        spec.name = format!("failover-rf{}", a.nodes);
        let mut cluster = SpawnedCluster::start(spec).context("starting the failover cluster")?;
        let client = RdKafkaClient::new(cluster.bootstrap())
            .with_replication_factor(i32::try_from(a.nodes).unwrap_or(i32::MAX));
        let settings = FailoverSettings {
            rounds: a.failover_rounds,
            rate: a.failover_rate,
            warmup: Duration::from_secs_f64(a.failover_warmup_secs.max(0.0)),
            max_wait: Duration::from_secs(a.failover_max_wait_secs),
            settle_timeout: Duration::from_secs(a.settle_timeout_secs),
            producer: ProducerSettings {
                acks: Acks::All,
                compression: "none".into(),
                idempotent: true,
                extra: with_defaults(
                    &[
                        ("message.timeout.ms", "120000"),
                        ("request.timeout.ms", "5000"),
                        ("retry.backoff.ms", "100"),
                        ("topic.metadata.refresh.interval.ms", "1000"),
                    ],
                    &a.producer_config,
                ),
            },
        };
        let measured = failover::measure(
            &mut cluster,
            &client,
            &payloads,
            &settings,
            &fresh_topic("failover"),
            !output.no_progress,
        );
        let stopped = cluster.stop();
        let measured = measured.context("failover measurement")?;
        stopped.context("stopping the failover cluster")?;
        Some(measured)
    };
    let replication = ReplicationReport::new(a.nodes, usage, comparisons.first(), failover);
    Ok((runs, comparisons, replication))
}

fn eprintln_summary(r: &RunResult) {
    eprintln!(
        "{}: {} msgs, {:.0} acked msgs/s ({:.1} MB/s), produce p99 {:.1} ms, e2e p99 {:.1} ms, delivered: {}",
        r.label,
        r.produce.sent,
        r.produce.acknowledged_per_s,
        r.produce.acknowledged_mb_per_s,
        r.produce.latency.p99_ms,
        r.end_to_end.p99_ms,
        if r.complete { "all" } else { "NOT all" }
    );
    if let Some(c) = &r.chain {
        eprintln!(
            "  in-broker chain {}: {} of {} expected outputs, chain e2e p50 {:.1} ms p99 {:.1} ms, {}",
            c.chain,
            c.delivered,
            c.expected,
            c.end_to_end.p50_ms,
            c.end_to_end.p99_ms,
            if c.complete { "exact" } else { "NOT exact" }
        );
    }
}

fn finish(report: BenchReport, output: &OutputArgs) -> anyhow::Result<BenchReport> {
    let stem = format!(
        "run-{}",
        report
            .machine
            .date_utc
            .replace([' ', ':'], "-")
            .trim_end_matches('Z')
    );
    let (json, md) = report.write(&output.out_dir, &stem)?;
    std::io::stdout()
        .write_all(report.markdown().as_bytes())
        .context("writing the report to stdout")?;
    eprintln!("report: {} and {}", md.display(), json.display());
    Ok(report)
}

/// The command line, quoted so it can be pasted back into a shell.
fn shell_line(args: impl Iterator<Item = String>) -> String {
    args.map(|a| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    })
    .collect::<Vec<_>>()
    .join(" ")
}
