//! The processing contract: what a processor returns and how it fails.
//!
//! From the design note: a processor sees a mutable [`Candidate`] and
//! answers [`Response::Pass`] (go on) or [`Response::Skip`] (stop the chain
//! for this candidate). Writers can also fail — a full disk, a producer that
//! cannot deliver — and a silent failure would lose data, so there is a
//! third answer, [`Response::Fail`]: the runner must then not commit the
//! input position past this record, and retry from the last commit. A
//! candidate a processor can never handle is [`Response::DeadLetter`]: its
//! record goes to the dead-letter topic with the reason, and the chain goes on.

use std::path::PathBuf;

use crate::candidate::Candidate;
use crate::decode::SchemaSourceError;
use crate::sink::SinkError;

/// What a processor decided for one candidate.
#[derive(Debug)]
#[must_use]
pub enum Response {
    /// Continue with the next processor.
    Pass,
    /// Stop the chain for this candidate (filtered out).
    Skip,
    /// The processor could not do its work; the record must be retried.
    Fail(ProcessError),
    /// The processor can never handle this candidate (a row the database
    /// refuses, a stamp that does not decode, a value too large): the
    /// record goes to the pipeline's dead-letter topic with this reason,
    /// and the chain stops for this candidate and goes on with the next.
    /// A failure that may succeed later is [`Response::Fail`] instead.
    DeadLetter(String),
}

impl Response {
    /// `Pass` when `keep`, else `Skip`.
    pub fn pass_if(keep: bool) -> Self {
        if keep {
            Self::Pass
        } else {
            Self::Skip
        }
    }
}

/// Why a processor failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The injected Kafka producer refused or could not deliver.
    #[error("sending to topic {topic}: {source}")]
    Sink {
        /// The output topic.
        topic: String,
        /// Why.
        #[source]
        source: SinkError,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output record could not be encoded.
    #[error("encoding alert {alert_id} with schema {schema}: {reason}")]
    Encode {
        /// The alert.
        alert_id: i64,
        /// The output schema name.
        schema: String,
        /// Why.
        reason: String,
    },
    /// The output schema could not be registered.
    #[error("registering the output schema under subject {subject}: {source}")]
    Registry {
        /// The subject.
        subject: String,
        /// Why.
        #[source]
        source: SchemaSourceError,
    },
    /// Any other failure (for processors outside this crate).
    #[error("{processor}: {reason}")]
    Other {
        /// The processor class.
        processor: String,
        /// Why.
        reason: String,
    },
}

/// A step of a chain.
///
/// Implementations are `Send` so that a runner can move a chain onto its own
/// task or thread; they are driven by one thread at a time.
pub trait CandidateProcessor: Send {
    /// Looks at (and possibly annotates) one candidate.
    fn process(&mut self, candidate: &mut Candidate) -> Response;

    /// Makes everything accepted so far durable (written, fsynced,
    /// acknowledged). The runner calls it before committing its input
    /// position. Filters have nothing to flush.
    ///
    /// # Errors
    /// [`ProcessError`] when the output cannot be made durable.
    fn flush(&mut self) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Flushes and releases resources (e.g. finishes the current file).
    ///
    /// # Errors
    /// As [`CandidateProcessor::flush`].
    fn close(&mut self) -> Result<(), ProcessError> {
        self.flush()
    }
}
