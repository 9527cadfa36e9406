//! `starlog-mirror mirror.yaml`: runs the mirror until SIGINT or SIGTERM,
//! then prints the summary. Exit status 0 after a clean stop, 1 when the
//! mirror ended with an error (the summary of what was done is not
//! available then; the error names the record, partition or setting).

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use starlog_mirror::{run, MirrorConfig};

/// Survives absurd allocation sizes decoded from a peer's bytes
/// (see `starlog_alloc`).
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

/// Mirror an upstream Kafka alert stream into the local Starlog buffer.
#[derive(Debug, Parser)]
#[command(name = "starlog-mirror", version)]
struct Args {
    /// The mirror configuration (YAML).
    config: PathBuf,
    /// Do not draw the progress display.
    #[arg(long)]
    no_progress: bool,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log sent to a file or pipe stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let mut config = MirrorConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    if args.no_progress {
        config.progress = false;
    }
    let shutdown = Box::pin(shutdown_signal());
    let summary = run(config, shutdown).await.context("mirror stopped")?;
    #[allow(clippy::print_stdout)]
    {
        println!("{summary}");
    }
    Ok(())
}
