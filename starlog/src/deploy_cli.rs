//! `starlog deploy check|up|status|down SITE.yaml` and `starlog testdata`
//! (a module of the binary): the CLI over `starlog-deploy`, with this
//! binary's processor classes ([`starlog::processors`]) for the pipelines
//! and the mirror's own validation for the mirrors.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use starlog_deploy::site::{Framing, NamedSchema, Placement, Site};
use starlog_deploy::supervisor::{self, Options, RunStatus};
use starlog_deploy::testdata;

/// `starlog deploy ...`.
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Validate a site file: keys, types, references between components,
    /// pipelines (processor classes and parameters) and mirrors.
    Check {
        /// The site file.
        site: PathBuf,
    },
    /// Run the site on this machine, in the foreground, as the supervisor
    /// of its processes (brokers, mirrors, processing nodes, test data);
    /// SIGTERM or Ctrl-C stops everything (as `deploy down` does).
    Up {
        /// The site file.
        site: PathBuf,
        #[command(flatten)]
        state: StateDir,
        /// Seconds the brokers get to listen and take their topics.
        #[arg(long, default_value_t = 60)]
        ready_timeout: u64,
        /// Seconds a process gets between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 20)]
        stop_timeout: u64,
        /// RUST_LOG of the processes.
        #[arg(long, default_value = "info")]
        log: String,
    },
    /// Each process of a running (or stopped) site: state, pid, restarts,
    /// addresses, and its log's last lines.
    Status {
        /// The site file.
        site: PathBuf,
        #[command(flatten)]
        state: StateDir,
        /// Log lines shown per process (0: none).
        #[arg(long, default_value_t = 5)]
        lines: usize,
        /// Print the status document as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a site brought up with `deploy up`: SIGTERM to its supervisor,
    /// which stops every process (SIGTERM, then SIGKILL after its bound),
    /// and wait. Data stays in the run folder.
    Down {
        /// The site file.
        site: PathBuf,
        #[command(flatten)]
        state: StateDir,
        /// Seconds to wait for the supervisor.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
    },
    /// Render the site for a real tool (compose, kubernetes, systemd) into a folder.
    Render(crate::deploy_render_cli::RenderArgs),
    /// GET a URL, succeed on 2xx: the health check of images without a shell.
    Probe(crate::deploy_render_cli::ProbeArgs),
    /// Create a buffer's missing topics, retrying while it comes up (the rendered sites' topic step).
    Topics(crate::deploy_render_cli::TopicsArgs),
}

/// The run folder option.
#[derive(Debug, clap::Args)]
pub struct StateDir {
    /// The run folder (pids, status, generated configuration, logs, data);
    /// default `.starlog-deploy/<site name>`.
    #[arg(long)]
    state: Option<PathBuf>,
}

impl StateDir {
    fn resolve(&self, site: &Site) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| supervisor::default_state_dir(site))
    }
}

/// `starlog testdata`.
#[derive(Debug, clap::Args)]
pub struct TestdataArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The topic to fill.
    #[arg(long)]
    topic: String,
    /// Alert files or folders of them (`*.avro`, one alert per file; repeatable).
    #[arg(long = "files", required_unless_present = "samples")]
    files: Vec<PathBuf>,
    /// The shipped samples instead: `ztf` or `lsst` (the repository's
    /// testdata/, found above the current folder, or STARLOG_TESTDATA).
    #[arg(long, value_parser = ["ztf", "lsst"], conflicts_with = "files")]
    samples: Option<String>,
    /// ocf | confluent | schemaless | schema-key.
    #[arg(long, default_value = "ocf", value_parser = Framing::NAMES)]
    framing: String,
    /// Messages per second (default: flat out).
    #[arg(long)]
    rate: Option<f64>,
    /// Messages to send, cycling over the files (default: each file once).
    #[arg(long)]
    count: Option<u64>,
    /// The schema registry (confluent framing), e.g. http://127.0.0.1:8081.
    #[arg(long)]
    registry: Option<String>,
    /// Registry subject (default: <topic>-value).
    #[arg(long)]
    subject: Option<String>,
    /// The static schema's full name (schemaless framing), e.g. ztf.alert.
    #[arg(long, requires = "schema_file")]
    schema_name: Option<String>,
    /// The static schema's .avsc files, dependencies first (repeatable).
    #[arg(long)]
    schema_file: Vec<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    no_progress: bool,
}

fn load(site: &Path) -> anyhow::Result<Site> {
    let loaded = Site::load(site).with_context(|| format!("site {}", site.display()))?;
    loaded
        .check_pipelines(&starlog::processors())
        .with_context(|| format!("site {}", site.display()))?;
    for m in &loaded.mirrors {
        let doc = supervisor::plan::mirror_document(&loaded, m)?;
        let text = serde_yaml::to_string(&doc).context("the mirror's YAML")?;
        let at = loaded.component_path(&m.name).unwrap_or("components");
        starlog_mirror::MirrorConfig::from_yaml(&text, &loaded.base_dir)
            .map_err(|e| anyhow::anyhow!("{at}.rules: {e}"))
            .with_context(|| format!("site {}", site.display()))?;
    }
    Ok(loaded)
}

/// Runs a `deploy` command.
pub fn deploy(command: DeployCommand) -> anyhow::Result<()> {
    match command {
        DeployCommand::Render(args) => crate::deploy_render_cli::render(args),
        DeployCommand::Probe(args) => crate::deploy_render_cli::probe(args),
        DeployCommand::Topics(args) => crate::deploy_render_cli::topics(args),
        DeployCommand::Check { site } => {
            let s = load(&site)?;
            let brokers: u32 = s.buffers.iter().map(|b| u32::from(b.instances)).sum();
            let nodes: u32 = s
                .nodes
                .iter()
                .map(|n| match n.placement {
                    Placement::Standalone { instances } => u32::from(instances),
                    Placement::InBroker => 0,
                })
                .sum();
            let in_broker = s
                .nodes
                .iter()
                .filter(|n| n.placement == Placement::InBroker)
                .count();
            writeln!(
                std::io::stdout(),
                "site {}: ok ({} buffers with {brokers} brokers, {} processing nodes: {nodes} node processes and {in_broker} in-broker chains, {} mirrors, {} test-data components)",
                s.name,
                s.buffers.len(),
                s.nodes.len(),
                s.mirrors.len(),
                s.testdata.len()
            )
            .context("writing the result")?;
            Ok(())
        }
        DeployCommand::Up {
            site,
            state,
            ready_timeout,
            stop_timeout,
            log,
        } => {
            let s = load(&site)?;
            let exe = std::env::current_exe().context("finding the starlog executable")?;
            let mut opts = Options::new(state.resolve(&s), exe);
            opts.ready_timeout = Duration::from_secs(ready_timeout);
            opts.stop_timeout = Duration::from_secs(stop_timeout);
            opts.log_filter = log;
            let stop = Arc::new(AtomicBool::new(false));
            watch_signals(Arc::clone(&stop))?;
            supervisor::up(&s, &opts, &stop).with_context(|| format!("site {}", s.name))?;
            Ok(())
        }
        DeployCommand::Status {
            site,
            state,
            lines,
            json,
        } => {
            let s = Site::load(&site).with_context(|| format!("site {}", site.display()))?;
            let dir = state.resolve(&s);
            let status = RunStatus::read(&dir)?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&status)?)
            } else {
                let mut text = status.render(lines);
                if status.state != "stopped" && supervisor::running_supervisor(&dir).is_none() {
                    text.push_str(&format!(
                        "note: the supervisor (pid {}) is not running: these are its last states; \
                         `starlog deploy down` stops what is left\n",
                        status.supervisor_pid
                    ));
                }
                text
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing the status")?;
            Ok(())
        }
        DeployCommand::Down {
            site,
            state,
            timeout,
        } => {
            let s = Site::load(&site).with_context(|| format!("site {}", site.display()))?;
            let status = supervisor::down(&state.resolve(&s), Duration::from_secs(timeout))?;
            std::io::stdout()
                .write_all(status.render(0).as_bytes())
                .context("writing the status")?;
            Ok(())
        }
    }
}

/// SIGTERM and SIGINT raise `stop` (a thread with its own runtime).
fn watch_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let handlers = signal(SignalKind::terminate())
                    .and_then(|t| signal(SignalKind::interrupt()).map(|i| (t, i)));
                let (mut term, mut int) = match handlers {
                    Ok(h) => {
                        let _ = ready_tx.send(Ok(()));
                        h
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("stop requested: stopping the site");
                stop.store(true, Ordering::SeqCst);
            });
        })
        .context("starting the signal thread")?;
    ready_rx
        .recv()
        .context("the signal thread ended")?
        .context("installing the signal handlers")
}

/// Runs `starlog testdata`.
pub fn testdata(args: TestdataArgs) -> anyhow::Result<()> {
    let files = match &args.samples {
        Some(set) => {
            let cwd = std::env::current_dir().context("the current folder")?;
            let dir = testdata::find_testdata_dir(&cwd).ok_or_else(|| {
                anyhow::anyhow!(
                    "--samples {set}: no testdata/ folder with manifest.csv above {}; set STARLOG_TESTDATA or use --files",
                    cwd.display()
                )
            })?;
            let sub = if set == "ztf" {
                "ztf/alerts"
            } else {
                "lsst/alerts"
            };
            vec![dir.join(sub)]
        }
        None => args.files.clone(),
    };
    let job = testdata::Job {
        bootstrap: args.bootstrap,
        topic: args.topic,
        files,
        framing: Framing::from_name(&args.framing).unwrap_or(Framing::Ocf),
        rate: args.rate,
        count: args.count,
        registry: args.registry,
        subject: args.subject,
        schema: args.schema_name.map(|name| NamedSchema {
            name,
            files: args.schema_file,
        }),
        progress: !args.no_progress,
    };
    if job.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        anyhow::bail!("--rate: expected messages per second above 0");
    }
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime
        .block_on(testdata::run(&job, &stop))
        .with_context(|| format!("filling {}", job.topic))?;
    writeln!(std::io::stdout(), "{summary}").context("writing the summary")?;
    if summary.interrupted {
        anyhow::bail!("stopped before the end");
    }
    Ok(())
}
