//! A chain: processors applied in order, stopping at the first `Skip`.
//!
//! The chain keeps the counters a runner exposes (candidates in, passed,
//! skipped, failed, and per step), so every runner reports the same numbers
//! without instrumenting processors itself.

use std::fmt;

use crate::candidate::Candidate;
use crate::processor::{CandidateProcessor, ProcessError, Response};

/// Counters of a chain or of one of its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Candidates that reached this point.
    pub input: u64,
    /// Candidates passed on.
    pub passed: u64,
    /// Candidates skipped (filtered out).
    pub skipped: u64,
    /// Candidates on which a processor failed.
    pub failed: u64,
    /// Candidates a processor sent to the dead-letter topic.
    pub dead_lettered: u64,
}

impl Counters {
    fn count(&mut self, response: &Response) {
        self.input += 1;
        match response {
            Response::Pass => self.passed += 1,
            Response::Skip => self.skipped += 1,
            Response::Fail(_) => self.failed += 1,
            Response::DeadLetter(_) => self.dead_lettered += 1,
        }
    }
}

struct Step {
    label: String,
    processor: Box<dyn CandidateProcessor>,
    counters: Counters,
}

/// An ordered list of processors.
#[derive(Default)]
pub struct Chain {
    steps: Vec<Step>,
    counters: Counters,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field(
                "steps",
                &self
                    .steps
                    .iter()
                    .map(|s| s.label.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("counters", &self.counters)
            .finish()
    }
}

impl Chain {
    /// An empty chain (passes everything).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a processor; `label` names it in counters and errors.
    pub fn push(&mut self, label: impl Into<String>, processor: Box<dyn CandidateProcessor>) {
        self.steps.push(Step {
            label: label.into(),
            processor,
            counters: Counters::default(),
        });
    }

    /// Builder form of [`Chain::push`].
    #[must_use]
    pub fn with(
        mut self,
        label: impl Into<String>,
        processor: Box<dyn CandidateProcessor>,
    ) -> Self {
        self.push(label, processor);
        self
    }

    /// Number of steps.
    #[must_use]
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when the chain has no steps.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Counters of the whole chain.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Counters per step, with their labels, in chain order.
    #[must_use]
    pub fn step_counters(&self) -> Vec<(&str, Counters)> {
        self.steps
            .iter()
            .map(|s| (s.label.as_str(), s.counters))
            .collect()
    }
}

impl CandidateProcessor for Chain {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        let mut response = Response::Pass;
        for step in &mut self.steps {
            response = step.processor.process(candidate);
            step.counters.count(&response);
            if !matches!(response, Response::Pass) {
                break;
            }
        }
        self.counters.count(&response);
        response
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        // Flush every step even if one fails, then report the first failure.
        let mut first = None;
        for step in &mut self.steps {
            if let Err(e) = step.processor.flush() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn close(&mut self) -> Result<(), ProcessError> {
        let mut first = None;
        for step in &mut self.steps {
            if let Err(e) = step.processor.close() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
