//! The local platform: a site run on one machine as supervised processes
//! of the `starlog` executable itself.
//!
//! [`up`] writes the generated configuration under the run folder
//! ([`plan`]), starts every buffer's brokers (one Raft cluster per
//! buffer of several instances), creates the buffers' topics, then starts
//! the mirrors, the processing nodes' instances and the test data, and
//! stays in the foreground as their supervisor: a process that exits is
//! started again after a back-off (0.5 s doubling to 30 s, back to 0.5 s
//! once a run lasted 30 s); test data that finished is left done. When
//! `stop` is raised (the CLI raises it on SIGTERM or Ctrl-C, and
//! [`down`] sends SIGTERM) it stops the test data, nodes and mirrors,
//! then the brokers: SIGTERM, a bounded wait, then SIGKILL.
//!
//! The run folder holds `supervisor.pid`, `status.json` ([`RunStatus`]),
//! `config/` (broker, mirror and inline pipeline YAMLs), `logs/<process>.log`
//! and `data/<buffer>/<instance>/` (kept across `down` and `up`).

pub mod plan;
mod process;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use plan::{Plan, ProcessKind, ProcessSpec};
pub use status::{ProcessStatus, RunStatus};

use crate::site::{KafkaBuffer, Site, SiteError};
use process::Supervised;

/// The supervisor's pid file in the run folder.
pub const PID_FILE: &str = "supervisor.pid";

/// What can go wrong running a site.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The site file.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// A file of the run folder.
    #[error("{what}: {source}")]
    Io {
        /// The file or action.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A process could not be started or stopped.
    #[error("{process}: {reason}")]
    Process {
        /// The process name.
        process: String,
        /// What went wrong.
        reason: String,
    },
    /// The site is already up in this run folder.
    #[error("site already up in {state_dir} (supervisor pid {pid}): `starlog deploy down` first")]
    AlreadyUp {
        /// The run folder.
        state_dir: PathBuf,
        /// The running supervisor.
        pid: u32,
    },
    /// A buffer never became ready, or its topics could not be created.
    #[error("buffer {buffer}: {reason}")]
    Buffer {
        /// The buffer.
        buffer: String,
        /// What went wrong.
        reason: String,
    },
    /// `stop` was raised while the site was starting.
    #[error("stopped while starting")]
    Interrupted,
}

/// How to run the site.
#[derive(Debug, Clone)]
pub struct Options {
    /// The run folder.
    pub state_dir: PathBuf,
    /// The `starlog` executable every process runs.
    pub exe: PathBuf,
    /// How long a process gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// How long the brokers get to listen and take their topics.
    pub ready_timeout: Duration,
    /// `RUST_LOG` of the processes.
    pub log_filter: String,
}

impl Options {
    /// Defaults: 20 s to stop, 60 s to be ready, `info` logs.
    #[must_use]
    pub fn new(state_dir: PathBuf, exe: PathBuf) -> Self {
        Self {
            state_dir,
            exe,
            stop_timeout: Duration::from_secs(20),
            ready_timeout: Duration::from_secs(60),
            log_filter: "info".to_owned(),
        }
    }
}

/// The default run folder of a site: `.starlog-deploy/<site name>`.
#[must_use]
pub fn default_state_dir(site: &Site) -> PathBuf {
    Path::new(".starlog-deploy").join(&site.name)
}

/// Runs `site` until `stop` is raised (see the module docs).
///
/// # Errors
/// The run folder cannot be written, the site is already up there, a
/// buffer does not become ready within `ready_timeout`; the processes
/// started are stopped before the error is returned.
pub fn up(site: &Site, opts: &Options, stop: &AtomicBool) -> Result<(), SupervisorError> {
    let state_dir = plan::absolute(&opts.state_dir);
    std::fs::create_dir_all(&state_dir).map_err(|source| SupervisorError::Io {
        what: state_dir.display().to_string(),
        source,
    })?;
    if let Some(pid) = read_pid(&state_dir) {
        if process::alive(pid) && pid != std::process::id() {
            return Err(SupervisorError::AlreadyUp { state_dir, pid });
        }
    }
    let pid_file = state_dir.join(PID_FILE);
    std::fs::write(&pid_file, std::process::id().to_string()).map_err(|source| {
        SupervisorError::Io {
            what: pid_file.display().to_string(),
            source,
        }
    })?;
    let plan = Plan::write(site, &state_dir)?;
    let mut sup = Supervisor {
        site: site.name.clone(),
        state_dir: state_dir.clone(),
        procs: plan
            .processes
            .iter()
            .map(|p| Supervised::new(p.clone(), &state_dir, opts))
            .collect(),
        state: "starting".to_owned(),
        opts: opts.clone(),
    };
    sup.write_status();
    let started = sup.start(site, stop);
    if started.is_ok() {
        sup.state = "running".to_owned();
        sup.write_status();
        tracing::info!(site = %site.name, "site up");
        while !stop.load(Ordering::SeqCst) {
            sup.tick();
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    sup.shutdown();
    let _ = std::fs::remove_file(&pid_file);
    started
}

/// Stops the site running in `state_dir`: SIGTERM to its supervisor and a
/// wait (bounded by `timeout`) until it has stopped every process; when no
/// supervisor runs, the processes `status.json` lists as running are
/// stopped directly (SIGTERM, then SIGKILL after `timeout`).
///
/// # Errors
/// The run folder has no status, or the supervisor did not finish in time.
pub fn down(state_dir: &Path, timeout: Duration) -> Result<RunStatus, SupervisorError> {
    let status = RunStatus::read(state_dir)?;
    match read_pid(state_dir).filter(|pid| process::alive(*pid)) {
        Some(pid) => {
            process::signal(pid, "TERM").map_err(|reason| SupervisorError::Process {
                process: format!("supervisor {pid}"),
                reason,
            })?;
            let deadline = Instant::now() + timeout;
            while process::alive(pid) {
                if Instant::now() >= deadline {
                    return Err(SupervisorError::Process {
                        process: format!("supervisor {pid}"),
                        reason: format!("still running {timeout:?} after SIGTERM"),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        None => {
            let pids: Vec<u32> = status
                .processes
                .iter()
                .filter_map(|p| p.pid)
                .filter(|pid| process::alive(*pid))
                .collect();
            for pid in &pids {
                let _ = process::signal(*pid, "TERM");
            }
            let deadline = Instant::now() + timeout;
            while pids.iter().any(|p| process::alive(*p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            for pid in pids.iter().filter(|p| process::alive(**p)) {
                let _ = process::signal(*pid, "KILL");
            }
            let mut status = status;
            for p in &mut status.processes {
                p.pid = None;
                p.state = "stopped".to_owned();
            }
            status.state = "stopped".to_owned();
            status.write(state_dir)?;
        }
    }
    RunStatus::read(state_dir)
}

fn read_pid(state_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(state_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

struct Supervisor {
    site: String,
    state_dir: PathBuf,
    procs: Vec<Supervised>,
    state: String,
    opts: Options,
}

impl Supervisor {
    fn write_status(&self) {
        let status = RunStatus {
            site: self.site.clone(),
            supervisor_pid: std::process::id(),
            state: self.state.clone(),
            processes: self.procs.iter().map(Supervised::status).collect(),
        };
        if let Err(e) = status.write(&self.state_dir) {
            tracing::error!(error = %e, "cannot write the status");
        }
    }

    /// Reaps exits and starts what is due; writes the status on a change.
    fn tick(&mut self) {
        let mut changed = false;
        for p in &mut self.procs {
            changed |= p.tick();
        }
        if changed {
            self.write_status();
        }
    }

    /// Runs `tick` until `done` or the deadline.
    fn wait_until(
        &mut self,
        stop: &AtomicBool,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool, SupervisorError> {
        loop {
            self.tick();
            if done(self) {
                return Ok(true);
            }
            if stop.load(Ordering::SeqCst) {
                return Err(SupervisorError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start(&mut self, site: &Site, stop: &AtomicBool) -> Result<(), SupervisorError> {
        let deadline = Instant::now() + self.opts.ready_timeout;
        for p in &mut self.procs {
            if p.spec.kind == ProcessKind::Broker {
                p.request_start();
            }
        }
        for b in &site.buffers {
            let addrs: Vec<String> = (0..b.instances)
                .map(|i| format!("{}:{}", b.listeners.host, b.listeners.kafka_port(i)))
                .collect();
            let listening = self.wait_until(stop, deadline, |_| {
                addrs.iter().all(|a| {
                    a.parse::<std::net::SocketAddr>().is_ok_and(|a| {
                        std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
                    })
                })
            })?;
            if !listening {
                return Err(SupervisorError::Buffer {
                    buffer: b.name.clone(),
                    reason: format!(
                        "its brokers did not all listen on {} within {:?}; see {}",
                        addrs.join(", "),
                        self.opts.ready_timeout,
                        self.state_dir.join("logs").display()
                    ),
                });
            }
            self.create_topics(b, stop, deadline)?;
        }
        for p in &mut self.procs {
            if p.spec.kind != ProcessKind::Broker {
                p.request_start();
            }
        }
        self.tick();
        Ok(())
    }

    fn create_topics(
        &mut self,
        b: &KafkaBuffer,
        stop: &AtomicBool,
        deadline: Instant,
    ) -> Result<(), SupervisorError> {
        if b.topics.is_empty() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SupervisorError::Io {
                what: "starting an async runtime".into(),
                source,
            })?;
        let bootstrap = Plan::bootstrap(b);
        loop {
            let attempt = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), create_missing(&bootstrap, b))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 10 s".to_owned()))
            });
            let last = match attempt {
                Ok(created) => {
                    if !created.is_empty() {
                        tracing::info!(buffer = %b.name, topics = ?created, "topics created");
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            if !self.wait_until(stop, Instant::now() + Duration::from_millis(500), |_| false)?
                && Instant::now() >= deadline
            {
                return Err(SupervisorError::Buffer {
                    buffer: b.name.clone(),
                    reason: format!("its topics could not be created: {last}"),
                });
            }
        }
    }

    /// Test data, nodes and mirrors first (they write into the brokers),
    /// then the brokers.
    fn shutdown(&mut self) {
        self.state = "stopping".to_owned();
        self.write_status();
        let timeout = self.opts.stop_timeout;
        for brokers in [false, true] {
            let group: Vec<usize> = (0..self.procs.len())
                .filter(|i| (self.procs[*i].spec.kind == ProcessKind::Broker) == brokers)
                .collect();
            for i in &group {
                self.procs[*i].terminate();
            }
            let deadline = Instant::now() + timeout;
            for i in &group {
                self.procs[*i].wait_stopped(deadline);
            }
            self.write_status();
        }
        self.state = "stopped".to_owned();
        self.write_status();
        tracing::info!(site = %self.site, "site down");
    }
}

/// Creates the buffer's topics that do not exist yet; returns their names.
async fn create_missing(bootstrap: &str, b: &KafkaBuffer) -> Result<Vec<String>, String> {
    use starlog_clients::admin::NewTopic;
    use starlog_clients::{Admin, ClientConfig};
    let admin = Admin::new(ClientConfig::new(bootstrap)).map_err(|e| e.to_string())?;
    let existing = admin.list_topics().await.map_err(|e| e.to_string())?;
    let missing: Vec<NewTopic> = b
        .topics
        .iter()
        .filter(|t| !existing.contains(&t.name))
        .map(|t| {
            let mut n = NewTopic::new(&t.name, i32::try_from(t.partitions).unwrap_or(i32::MAX));
            n.replication_factor = i16::try_from(t.replication).unwrap_or(i16::MAX);
            for (k, v) in &t.configs {
                n = n.config(k, v);
            }
            n
        })
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    admin
        .create_topics(&missing)
        .await
        .map_err(|e| e.to_string())?;
    Ok(missing.into_iter().map(|t| t.name).collect())
}
