//! The run folder's `status.json`: what `starlog deploy status` shows and
//! `starlog deploy down` reads. Written by the supervisor (atomically:
//! a temporary file renamed) whenever a process changes state.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plan::ProcessKind;
use super::SupervisorError;

/// The status document's file name in the run folder.
pub const STATUS_FILE: &str = "status.json";

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunStatus {
    /// The site's name.
    pub site: String,
    /// The supervisor's process id.
    pub supervisor_pid: u32,
    /// `starting`, `running`, `stopping` or `stopped`.
    pub state: String,
    /// Each process.
    pub processes: Vec<ProcessStatus>,
}

/// One component instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessStatus {
    /// `<component>-<instance>`.
    pub name: String,
    /// Its component.
    pub component: String,
    /// What it is.
    pub kind: ProcessKind,
    /// `pending`, `running`, `backoff` (waiting to restart), `done`
    /// (test data sent), `stopped`.
    pub state: String,
    /// The current process id, while one runs.
    pub pid: Option<u32>,
    /// Restarts after a crash or failure.
    pub restarts: u32,
    /// How the last run ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub last_exit: Option<String>,
    /// Its log file.
    pub log: PathBuf,
    /// What it serves.
    pub addresses: Vec<String>,
}

impl RunStatus {
    /// Reads `status.json` from a run folder.
    ///
    /// # Errors
    /// Missing (the site was never brought up there) or not a status document.
    pub fn read(state_dir: &Path) -> Result<RunStatus, SupervisorError> {
        let file = state_dir.join(STATUS_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| SupervisorError::Io {
            what: format!(
                "{} (was the site brought up with this --state?)",
                file.display()
            ),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| SupervisorError::Io {
            what: file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Writes it atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, state_dir: &Path) -> Result<(), SupervisorError> {
        let file = state_dir.join(STATUS_FILE);
        let tmp = state_dir.join(format!("{STATUS_FILE}.tmp"));
        let io = |source| SupervisorError::Io {
            what: file.display().to_string(),
            source,
        };
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &file).map_err(io)
    }

    /// The status of one process by name.
    #[must_use]
    pub fn process(&self, name: &str) -> Option<&ProcessStatus> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// A table of the processes, each followed by the last `log_lines`
    /// lines of its log.
    #[must_use]
    pub fn render(&self, log_lines: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "site {}: {} (supervisor pid {})",
            self.site, self.state, self.supervisor_pid
        );
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<8} {:>8} {:>8}  {}",
            "PROCESS", "KIND", "STATE", "PID", "RESTARTS", "SERVES / LAST EXIT"
        );
        for p in &self.processes {
            let kind = match p.kind {
                ProcessKind::Broker => "broker",
                ProcessKind::Mirror => "mirror",
                ProcessKind::Node => "node",
                ProcessKind::Testdata => "testdata",
            };
            let pid = p.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let mut extra = p.addresses.join(", ");
            if let Some(exit) = &p.last_exit {
                if !extra.is_empty() {
                    extra.push_str("; ");
                }
                let _ = write!(extra, "last exit: {exit}");
            }
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:<8} {:>8} {:>8}  {}",
                p.name, kind, p.state, pid, p.restarts, extra
            );
            if log_lines > 0 {
                for line in tail_lines(&p.log, log_lines) {
                    let _ = writeln!(out, "    | {line}");
                }
            }
        }
        out
    }
}

/// The last `n` lines of a file (nothing when it cannot be read).
#[must_use]
pub fn tail_lines(file: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(file) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let window = 64 * 1024;
    let start = len.saturating_sub(window);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip_partial = usize::from(start > 0);
    let lines = &lines[skip_partial.min(lines.len())..];
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}
