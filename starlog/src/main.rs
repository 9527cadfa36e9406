//! The `starlog` command: composes the broker library with the mirror and
//! the clients (the in-broker mirrors and the schema-id rule's upstream
//! registry client are plugged into the broker through its
//! `extensions`, see the `starlog` library), and adds the processing node
//! and the cluster, user and ACL commands.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use starlog::cluster_cli;
use starlog_broker::{BrokerConfig, Server};
use tracing_subscriber::EnvFilter;

mod deploy_cli;
mod deploy_render_cli;
mod security_cli;

/// Survives absurd allocation sizes decoded from client bytes
/// (see `starlog_alloc`).
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

/// Starlog: a Kafka-compatible log broker for astronomical alert streams.
#[derive(Debug, Parser)]
#[command(name = "starlog", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker. Without --config it listens on 127.0.0.1:9092 and keeps
    /// its data in ./starlog-data (7-day retention, auto-created topics).
    Serve {
        /// YAML configuration file (see `starlog default-config`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the listen address, e.g. 0.0.0.0:9092.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override the data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Override the HTTP listener's address and turn it on (`http.listen`:
        /// /metrics, /cluster, and the schema registry when enabled), e.g. 127.0.0.1:8082.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Override the node id (in a cluster: this broker's entry in the peers).
        #[arg(long)]
        node_id: Option<i32>,
        /// A cluster peer, this broker included: ID=HOST:PORT/RAFT_HOST:RAFT_PORT
        /// (repeat per broker; replaces `cluster.peers` of the YAML).
        #[arg(long = "peer")]
        peers: Vec<String>,
    },
    /// Inspect a replicated cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Run a processing node: join the pipeline's consumer group on a Kafka
    /// cluster (Starlog or any other), run its processor chain, write its
    /// outputs, commit after they are acknowledged; SIGTERM leaves the group.
    Process {
        /// The pipeline YAML (`component: { source, processors, ... }`).
        pipeline: PathBuf,
        /// Kafka bootstrap servers.
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
    },
    /// Mirror an upstream Kafka alert stream into this buffer: re-partition,
    /// rewrite schema ids to the local registry, merge daily topics.
    Mirror {
        /// The mirror YAML.
        config: PathBuf,
        /// Do not draw the progress display.
        #[arg(long)]
        no_progress: bool,
    },
    /// SCRAM users: offline with --config (the broker stopped; also how the
    /// first administrator is made before the first start), or online with
    /// --bootstrap-server. Passwords are read from stdin.
    Users {
        #[command(subcommand)]
        command: security_cli::UsersCommand,
    },
    /// ACLs in Kafka's terms: offline with --config (the broker stopped), or
    /// online with --bootstrap-server.
    Acls {
        #[command(subcommand)]
        command: security_cli::AclsCommand,
    },
    /// Run a site (a YAML file of components: buffers, processing nodes,
    /// mirrors, test data) on this machine: check, up, status, down.
    Deploy {
        #[command(subcommand)]
        command: deploy_cli::DeployCommand,
    },
    /// Fill a topic from alert files (the shipped samples or a folder), at
    /// a fixed rate or flat out, in a framing real streams use.
    Testdata(deploy_cli::TestdataArgs),
    /// Print the embedded default configuration as YAML.
    DefaultConfig,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Print every partition's leader, term, commit index, high watermark and
    /// replica lag as one broker sees them.
    Status {
        #[command(flatten)]
        http: HttpTarget,
        /// Print the raw JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a broker (started with `cluster.join: true`) to a running
    /// cluster: it joins the metadata group; move partitions onto it with
    /// `cluster reassign`.
    AddBroker {
        #[command(flatten)]
        http: HttpTarget,
        /// The new broker: ID=HOST:PORT/RAFT_HOST:RAFT_PORT.
        #[arg(long)]
        peer: String,
    },
    /// Remove a broker from a running cluster: each partition it replicates
    /// gets another broker in its place, leadership moves off it and every
    /// group drops it; stop it once `cluster status` on it lists no groups.
    RemoveBroker {
        #[command(flatten)]
        http: HttpTarget,
        /// The broker's node id.
        #[arg(long)]
        id: i32,
    },
    /// Move a partition's replicas (as Kafka's AlterPartitionReassignments):
    /// the new brokers copy it and join its Raft group, then the old ones
    /// leave and delete their copy; producers and consumers keep going.
    Reassign {
        #[command(flatten)]
        http: HttpTarget,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition index.
        #[arg(long)]
        partition: i32,
        /// The replicas to end with, preferred leader first: e.g. `2,3,4`.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<i32>,
        /// Stop a move in progress: keep the replicas the partition has now.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
    },
}

/// Where a broker's HTTP listener is, and how to reach it (the `cluster`
/// commands).
#[derive(Debug, clap::Args)]
struct HttpTarget {
    /// The broker's HTTP address (its `http.listen`, or `schema_registry.listen`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: SocketAddr,
    /// Speak HTTPS, trusting the CA certificates in this PEM file (the
    /// broker's `http.tls`).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// With --ca: the name the broker's certificate must carry (default:
    /// the --http address's IP).
    #[arg(long, requires = "ca")]
    server_name: Option<String>,
    /// HTTP basic authentication as this SCRAM user (`http.authentication:
    /// basic`); the password is read from the STARLOG_PASSWORD environment
    /// variable.
    #[arg(long)]
    user: Option<String>,
}

impl HttpTarget {
    fn endpoint(&self) -> anyhow::Result<cluster_cli::Endpoint> {
        let endpoint = match &self.ca {
            Some(ca) => cluster_cli::Endpoint::https(self.http, ca, self.server_name.as_deref())
                .with_context(|| format!("loading the CA {}", ca.display()))?,
            None => cluster_cli::Endpoint::plain(self.http),
        };
        Ok(match &self.user {
            Some(user) => {
                let password = std::env::var("STARLOG_PASSWORD").map_err(|_| {
                    anyhow::anyhow!("--user {user}: set STARLOG_PASSWORD to the password")
                })?;
                endpoint.with_user(user, &password)
            }
            None => endpoint,
        })
    }
}

/// The embedded default configuration, with every key documented.
const DEFAULT_CONFIG: &str = starlog_broker::DEFAULT_CONFIG_YAML;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log sent to a file or pipe stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            use std::io::Write;
            std::io::stdout()
                .write_all(DEFAULT_CONFIG.as_bytes())
                .context("writing the default configuration")?;
            Ok(())
        }
        Command::Deploy { command } => deploy_cli::deploy(command),
        Command::Testdata(args) => deploy_cli::testdata(args),
        Command::Users { command } => security_cli::print(&security_cli::users(command)?),
        Command::Acls { command } => security_cli::print(&security_cli::acls(command)?),
        Command::Process {
            pipeline,
            bootstrap,
        } => runtime()?.block_on(async {
            let stats = starlog_clients::pipeline::run_pipeline_file(
                &pipeline,
                &starlog::processors(),
                &bootstrap,
                async {
                    if let Err(e) = wait_for_signal().await {
                        tracing::error!(error = %e, "cannot wait for signals; stopping");
                    }
                },
            )
            .await
            .with_context(|| format!("processing node {}", pipeline.display()))?;
            tracing::info!(records = stats.records, commits = stats.commits, "done");
            Ok(())
        }),
        Command::Mirror {
            config,
            no_progress,
        } => runtime()?.block_on(async {
            let mut cfg = starlog_mirror::MirrorConfig::load(&config)
                .with_context(|| format!("loading {}", config.display()))?;
            if no_progress {
                cfg.progress = false;
            }
            let summary = starlog_mirror::run(cfg, async {
                if let Err(e) = wait_for_signal().await {
                    tracing::error!(error = %e, "cannot wait for signals; stopping");
                }
            })
            .await
            .context("mirror stopped")?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{summary}").context("writing the summary")?;
            Ok(())
        }),
        Command::Cluster {
            command: ClusterCommand::Status { http, json },
        } => {
            let at = http.endpoint()?;
            let http = http.http;
            let doc = cluster_cli::fetch_status(&at)
                .with_context(|| format!("asking {http} for /cluster/status"))?;
            let text = if json {
                format!("{doc:#}\n")
            } else {
                let typed = serde_json::from_value(doc).with_context(|| {
                    format!("{http} answered /cluster/status with an unexpected document")
                })?;
                cluster_cli::render_status(&typed)
            };
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing the status")?;
            Ok(())
        }
        Command::Cluster {
            command: ClusterCommand::AddBroker { http, peer },
        } => {
            let peer = starlog_broker::cluster::ClusterSettings::parse_peer(&peer)
                .map_err(anyhow::Error::msg)?;
            let (at, http) = (http.endpoint()?, http.http);
            let answer = cluster_cli::add_broker(&at, &peer)
                .with_context(|| format!("adding broker {} through {http}", peer.id))?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{answer}").context("writing the answer")?;
            Ok(())
        }
        Command::Cluster {
            command: ClusterCommand::RemoveBroker { http, id },
        } => {
            let (at, http) = (http.endpoint()?, http.http);
            let answer = cluster_cli::remove_broker(&at, id)
                .with_context(|| format!("removing broker {id} through {http}"))?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{answer}").context("writing the answer")?;
            Ok(())
        }
        Command::Cluster {
            command:
                ClusterCommand::Reassign {
                    http,
                    topic,
                    partition,
                    replicas,
                    cancel,
                },
        } => {
            let target = (!cancel).then_some(replicas.as_slice());
            let (at, http) = (http.endpoint()?, http.http);
            let answer = cluster_cli::reassign(&at, &topic, partition, target)
                .with_context(|| format!("reassigning {topic}-{partition} through {http}"))?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{answer}").context("writing the answer")?;
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            data_dir,
            http,
            node_id,
            peers,
        } => {
            let mut cfg = match &config {
                Some(path) => BrokerConfig::load(path)?,
                None => BrokerConfig::from_yaml(DEFAULT_CONFIG)?,
            };
            if let Some(l) = listen {
                cfg.set_listen(l);
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(h) = http {
                cfg.set_http_listen(h);
            }
            if let Some(id) = node_id {
                cfg.node_id = id;
            }
            if !peers.is_empty() {
                let mut cluster = cfg.cluster.take().unwrap_or_default();
                cluster.peers = peers
                    .iter()
                    .map(|p| starlog_broker::cluster::ClusterSettings::parse_peer(p))
                    .collect::<Result<_, _>>()
                    .map_err(anyhow::Error::msg)?;
                cfg.cluster = Some(cluster);
            }
            cfg.validate()?;
            runtime()?.block_on(serve(cfg))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn serve(cfg: BrokerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // The handlers are installed before the broker starts: its listeners
    // accept connections before the start is over, and a SIGTERM sent then
    // stops it gracefully once it has started instead of killing it.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // SIGHUP: re-read every TLS listener's certificate and key (a file that
    // does not load is logged and its listener keeps the old one).
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let server = Server::start_with(cfg, starlog::extensions()).await?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading TLS certificates and keys");
                let failed = server.reload_tls();
                if !failed.is_empty() {
                    tracing::error!(failed = failed.len(), "some TLS listeners keep their previous certificate");
                }
            }
        }
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
