//! A pipeline: decoder, chain and dead-letter path, fed one message at a time.
//!
//! This is the seam the two runners use. The in-broker runner (fed by
//! partition appends) and the standalone node (a consumer-group member) both
//! loop: read a record, [`Pipeline::handle`] it, and periodically
//! [`Pipeline::flush`] then commit the position of the last handled record.
//! A [`RecordOutcome::Failed`] means an output could not be written: stop
//! committing, and re-deliver from the last committed position (outputs are
//! at-least-once; a repeat after a crash is possible, a loss is not).

use crate::candidate::Candidate;
use crate::chain::{Chain, Counters};
use crate::dead_letter::DeadLetter;
use crate::decode::AlertDecoder;
pub use crate::input::InputRecord;
use crate::processor::{CandidateProcessor, ProcessError, Response};

/// What happened to one message.
#[derive(Debug)]
#[must_use]
pub enum RecordOutcome {
    /// Decoded and run through the chain.
    Processed {
        /// Candidates that passed every step.
        passed: usize,
        /// Candidates some step skipped.
        skipped: usize,
        /// Candidates some step could never handle; the record was sent to
        /// the dead-letter topic with their reasons.
        dead_lettered: usize,
    },
    /// Undecodable; sent to the dead-letter topic.
    DeadLettered {
        /// Why it could not be decoded.
        reason: String,
    },
    /// A processor or the dead-letter sink failed: do not commit past this record.
    Failed(ProcessError),
}

/// What the chain did with one record's candidates ([`Pipeline::run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainRun {
    /// Candidates that passed every step.
    pub passed: usize,
    /// Candidates some step skipped.
    pub skipped: usize,
    /// Why some step could never handle a candidate, one per candidate.
    pub dead_letters: Vec<String>,
}

/// Counters of a pipeline (records, dead letters) plus its chain's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineCounters {
    /// Messages handled.
    pub records: u64,
    /// Messages sent to the dead-letter topic (undecodable, or a candidate a
    /// step dead-lettered).
    pub dead_lettered: u64,
    /// Messages whose handling failed.
    pub failed: u64,
    /// The chain's counters (per candidate).
    pub chain: Counters,
}

/// Decoder + chain + dead letters.
#[derive(Debug)]
pub struct Pipeline {
    name: String,
    decoder: AlertDecoder,
    chain: Chain,
    dead_letter: DeadLetter,
    records: u64,
    dead_lettered: u64,
    failed: u64,
}

impl Pipeline {
    /// Assembles a pipeline.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        decoder: AlertDecoder,
        chain: Chain,
        dead_letter: DeadLetter,
    ) -> Self {
        Pipeline {
            name: name.into(),
            decoder,
            chain,
            dead_letter,
            records: 0,
            dead_lettered: 0,
            failed: 0,
        }
    }

    /// The pipeline's name (from its configuration).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain (for per-step counters).
    #[must_use]
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The dead-letter path.
    #[must_use]
    pub fn dead_letter(&self) -> &DeadLetter {
        &self.dead_letter
    }

    /// The decoder.
    #[must_use]
    pub fn decoder(&self) -> &AlertDecoder {
        &self.decoder
    }

    /// Current counters.
    #[must_use]
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            records: self.records,
            dead_lettered: self.dead_lettered,
            failed: self.failed,
            chain: self.chain.counters(),
        }
    }

    /// Decodes one message and runs its candidates through the chain.
    pub fn handle(&mut self, record: &InputRecord<'_>) -> RecordOutcome {
        self.records += 1;
        let candidates = match self.decoder.decode(record.value) {
            Ok(c) => c,
            Err(e) => {
                let reason = format!(
                    "{}/{}@{}: {e}",
                    record.topic, record.partition, record.offset
                );
                return match self.dead_letter.send(record, &reason) {
                    Ok(()) => {
                        self.dead_lettered += 1;
                        RecordOutcome::DeadLettered { reason }
                    }
                    Err(source) => {
                        self.failed += 1;
                        RecordOutcome::Failed(ProcessError::Sink {
                            topic: self.dead_letter.topic().to_owned(),
                            source,
                        })
                    }
                };
            }
        };
        let ran = match self.run(candidates) {
            Ok(ran) => ran,
            Err(e) => return RecordOutcome::Failed(e),
        };
        if !ran.dead_letters.is_empty() {
            // One message to the dead-letter topic per record, with every
            // refused candidate's reason; the record's other candidates went on.
            let reason = format!(
                "{}/{}@{}: {}",
                record.topic,
                record.partition,
                record.offset,
                ran.dead_letters.join("; ")
            );
            if let Err(source) = self.dead_letter.send(record, &reason) {
                self.failed += 1;
                return RecordOutcome::Failed(ProcessError::Sink {
                    topic: self.dead_letter.topic().to_owned(),
                    source,
                });
            }
            self.dead_lettered += 1;
        }
        RecordOutcome::Processed {
            passed: ran.passed,
            skipped: ran.skipped,
            dead_lettered: ran.dead_letters.len(),
        }
    }

    /// Runs already-decoded candidates through the chain. The reasons of
    /// candidates a step dead-lettered are returned, not sent: only
    /// [`Pipeline::handle`] has the record to send.
    ///
    /// # Errors
    /// The first [`Response::Fail`]: the record must be retried.
    pub fn run(&mut self, candidates: Vec<Candidate>) -> Result<ChainRun, ProcessError> {
        let mut ran = ChainRun::default();
        for mut c in candidates {
            match self.chain.process(&mut c) {
                Response::Pass => ran.passed += 1,
                Response::Skip => ran.skipped += 1,
                Response::DeadLetter(reason) => ran
                    .dead_letters
                    .push(format!("alert {}: {reason}", c.alert_id())),
                Response::Fail(e) => {
                    self.failed += 1;
                    return Err(e);
                }
            }
        }
        Ok(ran)
    }

    /// Makes every output so far durable; commit the input position only after this succeeds.
    ///
    /// # Errors
    /// The first processor or dead-letter failure.
    pub fn flush(&mut self) -> Result<(), ProcessError> {
        self.chain.flush()?;
        self.dead_letter
            .flush()
            .map_err(|source| ProcessError::Sink {
                topic: self.dead_letter.topic().to_owned(),
                source,
            })
    }

    /// Flushes and closes every processor (finishes open files).
    ///
    /// # Errors
    /// The first failure.
    pub fn close(&mut self) -> Result<(), ProcessError> {
        self.chain.close()?;
        self.flush()
    }
}
