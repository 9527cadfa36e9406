//! The `starlog` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use starlog_broker::{BrokerConfig, Server};
use tracing_subscriber::EnvFilter;

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
    },
    /// Print the embedded default configuration as YAML.
    DefaultConfig,
}

/// The embedded default configuration, with every key documented.
const DEFAULT_CONFIG: &str = include_str!("../starlog.default.yaml");

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = match &config {
                Some(path) => BrokerConfig::load(path)?,
                None => BrokerConfig::from_yaml(DEFAULT_CONFIG)?,
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(cfg))
        }
    }
}

async fn serve(cfg: BrokerConfig) -> anyhow::Result<()> {
    let server = Server::start(cfg).await?;
    wait_for_signal().await?;
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
