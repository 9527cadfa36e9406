//! One supervised process: spawned with its output appended to its log,
//! reaped, restarted after a back-off, stopped with SIGTERM then SIGKILL.
//! Signals are sent with the system's `kill` command (the workspace
//! forbids `unsafe`, which calling `kill(2)` directly would need).

use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::plan::{Plan, ProcessKind, ProcessSpec};
use super::status::ProcessStatus;
use super::Options;

/// First restart delay; doubled per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Backoff(Instant),
    Done,
    Stopped,
}

#[derive(Debug)]
pub(super) struct Supervised {
    pub(super) spec: ProcessSpec,
    exe: PathBuf,
    log: PathBuf,
    log_filter: String,
    child: Option<Child>,
    state: State,
    started: Instant,
    restarts: u32,
    failures: u32,
    last_exit: Option<String>,
}

impl Supervised {
    pub(super) fn new(spec: ProcessSpec, state_dir: &Path, opts: &Options) -> Self {
        let log = Plan::log_file(state_dir, &spec.name);
        Self {
            spec,
            exe: opts.exe.clone(),
            log,
            log_filter: opts.log_filter.clone(),
            child: None,
            state: State::Pending,
            started: Instant::now(),
            restarts: 0,
            failures: 0,
            last_exit: None,
        }
    }

    pub(super) fn status(&self) -> ProcessStatus {
        ProcessStatus {
            name: self.spec.name.clone(),
            component: self.spec.component.clone(),
            kind: self.spec.kind,
            state: match self.state {
                State::Pending => "pending",
                State::Running => "running",
                State::Backoff(_) => "backoff",
                State::Done => "done",
                State::Stopped => "stopped",
            }
            .to_owned(),
            pid: self.child.as_ref().map(Child::id),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            log: self.log.clone(),
            addresses: self.spec.addresses.clone(),
        }
    }

    /// Marks it due to start at the next tick.
    pub(super) fn request_start(&mut self) {
        if self.state == State::Pending {
            self.state = State::Backoff(Instant::now());
        }
    }

    /// Reaps an exit, starts what is due. Returns whether anything changed.
    pub(super) fn tick(&mut self) -> bool {
        match self.state {
            State::Running => {
                let exited = match self.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status),
                    Some(Ok(None)) => None,
                    Some(Err(e)) => {
                        tracing::error!(process = %self.spec.name, error = %e, "cannot wait for it");
                        None
                    }
                    None => None,
                };
                let Some(status) = exited else { return false };
                self.child = None;
                self.on_exit(status);
                true
            }
            State::Backoff(at) if Instant::now() >= at => {
                self.spawn();
                true
            }
            _ => false,
        }
    }

    fn on_exit(&mut self, status: ExitStatus) {
        let how = describe(status);
        self.note(&format!("exited: {how}"));
        self.last_exit = Some(how.clone());
        if self.spec.kind == ProcessKind::Testdata && status.success() {
            tracing::info!(process = %self.spec.name, "test data sent");
            self.state = State::Done;
            return;
        }
        if self.started.elapsed() >= HEALTHY_RUN {
            self.failures = 0;
        }
        let delay = FIRST_BACKOFF
            .saturating_mul(1u32 << self.failures.min(10))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(process = %self.spec.name, exit = %how, ?delay, "exited; restarting after a back-off");
        self.state = State::Backoff(Instant::now() + delay);
    }

    /// A line from the supervisor in the process's log.
    fn note(&self, what: &str) {
        if let Ok(mut f) = File::options().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "--- starlog deploy: {} {what}", self.spec.name);
        }
    }

    fn spawn(&mut self) {
        let restart = self.last_exit.is_some();
        let open = || File::options().create(true).append(true).open(&self.log);
        let spawned = open().and_then(|out| {
            let err = out.try_clone()?;
            Command::new(&self.exe)
                .args(&self.spec.args)
                .env("RUST_LOG", &self.log_filter)
                .env("RUST_BACKTRACE", "0")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
        });
        if restart {
            self.restarts = self.restarts.saturating_add(1);
        }
        match spawned {
            Ok(child) => {
                self.note(&format!(
                    "started pid {} (restart {}): starlog {}",
                    child.id(),
                    self.restarts,
                    self.spec.args.join(" ")
                ));
                tracing::info!(process = %self.spec.name, pid = child.id(), "started");
                self.child = Some(child);
                self.started = Instant::now();
                self.state = State::Running;
            }
            Err(e) => {
                tracing::error!(process = %self.spec.name, error = %e, "cannot start it");
                self.last_exit = Some(format!("could not start: {e}"));
                self.failures = self.failures.saturating_add(1);
                let delay = FIRST_BACKOFF
                    .saturating_mul(1u32 << self.failures.min(10))
                    .min(MAX_BACKOFF);
                self.state = State::Backoff(Instant::now() + delay);
            }
        }
    }

    /// SIGTERM (a process waiting to restart is just not restarted).
    pub(super) fn terminate(&mut self) {
        match &self.child {
            Some(child) => {
                self.note("stopping (SIGTERM)");
                if let Err(e) = signal(child.id(), "TERM") {
                    tracing::error!(process = %self.spec.name, error = %e, "SIGTERM failed");
                }
            }
            None => {
                if self.state != State::Done {
                    self.state = State::Stopped;
                }
            }
        }
    }

    /// Waits for the exit until `deadline`, then SIGKILL.
    pub(super) fn wait_stopped(&mut self, deadline: Instant) {
        let name = self.spec.name.clone();
        let log = self.log.clone();
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) | Err(_) => break None,
            }
        };
        let status = match status {
            Some(s) => s,
            None => {
                tracing::warn!(process = %name, "did not stop after SIGTERM: SIGKILL");
                if let Ok(mut f) = File::options().create(true).append(true).open(&log) {
                    let _ = writeln!(
                        f,
                        "--- starlog deploy: {name} did not stop after SIGTERM: SIGKILL"
                    );
                }
                let _ = child.kill();
                match child.wait() {
                    Ok(s) => s,
                    Err(_) => ExitStatus::from_raw(9),
                }
            }
        };
        self.child = None;
        let how = describe(status);
        self.note(&format!("stopped: {how}"));
        self.last_exit = Some(how);
        if self.state != State::Done {
            self.state = State::Stopped;
        }
    }
}

impl Drop for Supervised {
    /// Whatever still runs when the supervisor goes away is killed: no
    /// process outlives an error.
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `exit status: 0`, `signal 9 (SIGKILL)`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal 9 (SIGKILL)".to_owned(),
        (None, Some(15)) => "signal 15 (SIGTERM)".to_owned(),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => status.to_string(),
    }
}

/// Sends a signal (`TERM`, `KILL`) with the `kill` command.
pub(super) fn signal(pid: u32, name: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid}: {status}"))
    }
}

/// Whether `pid` names a live process (a zombie is not alive).
pub(super) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name's closing parenthesis.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|s| s != 'Z' && s != 'X')
}
