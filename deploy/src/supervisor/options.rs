//! How the supervisor runs a site.

use std::path::PathBuf;
use std::time::Duration;

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
