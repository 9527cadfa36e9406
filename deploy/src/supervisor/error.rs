//! What can go wrong running a site.

use std::path::PathBuf;

use crate::site::SiteError;

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
