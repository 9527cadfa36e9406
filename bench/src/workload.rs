//! What one run does: which values, how many, how fast, to how many groups.
//!
//! The same `Workload` is run against every broker of a comparison, so it
//! holds everything that shapes the traffic (payloads, rate, count,
//! partitions, consumer groups, client settings) and nothing about the
//! broker. `validate` refuses runs that could not mean anything before any
//! broker is started.

use std::time::Duration;

use serde::Serialize;

use crate::chain::ChainKind;
use crate::client::{Acks, ConsumerSettings, ProducerSettings};
use crate::error::BenchError;
use crate::pacer::Rate;
use crate::payload::PayloadSource;

/// One run's traffic.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The values sent.
    pub payload: PayloadSource,
    /// How fast they are offered.
    pub rate: Rate,
    /// How many messages.
    pub messages: u64,
    /// Partitions of the (fresh) topic.
    pub partitions: i32,
    /// Consumer groups reading in real time (0: produce only).
    pub groups: usize,
    /// Producer settings.
    pub producer: ProducerSettings,
    /// Consumer settings.
    pub consumer: ConsumerSettings,
    /// How long a group may take to get its partitions.
    pub assign_timeout: Duration,
    /// How long the producer may take to get every acknowledgement after the last send.
    pub flush_timeout: Duration,
    /// How long consumers may take to catch up after the last acknowledgement.
    pub drain_timeout: Duration,
    /// The in-broker chain to run in Starlog and check (Starlog only).
    pub in_broker_chain: Option<ChainKind>,
    /// Stop sending after this long even if fewer than `messages` were sent
    /// (`messages` is then a cap): a throughput run of bounded duration.
    pub send_for: Option<Duration>,
}

/// The workload as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadSummary {
    /// The values sent.
    pub payload: PayloadSource,
    /// Different values cycled through.
    pub distinct_values: usize,
    /// Mean value size in bytes.
    pub mean_value_bytes: f64,
    /// The offered rate.
    pub rate: Rate,
    /// Messages.
    pub messages: u64,
    /// Partitions.
    pub partitions: i32,
    /// Consumer groups.
    pub groups: usize,
    /// `acks`.
    pub acks: Acks,
    /// Compression.
    pub compression: String,
    /// Idempotent producer.
    pub idempotent: bool,
    /// Extra producer settings.
    pub producer_extra: Vec<(String, String)>,
    /// Extra consumer settings.
    pub consumer_extra: Vec<(String, String)>,
    /// Seconds after which sending stopped, when bounded by time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_for_secs: Option<f64>,
}

impl Workload {
    /// A workload with the bench's defaults: Rubin sample alerts, acks=all,
    /// no compression, 4 partitions, 2 groups.
    pub fn alerts(rate: Rate, messages: u64) -> Self {
        Self {
            payload: PayloadSource::RubinSamples,
            rate,
            messages,
            partitions: 4,
            groups: 2,
            producer: ProducerSettings {
                acks: Acks::All,
                compression: "none".into(),
                idempotent: false,
                extra: Vec::new(),
            },
            consumer: ConsumerSettings::default(),
            assign_timeout: Duration::from_secs(60),
            flush_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(120),
            in_broker_chain: None,
            send_for: None,
        }
    }

    /// Refuses workloads that cannot run or mean nothing.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidWorkload(m));
        if self.messages == 0 {
            return bad("zero messages".into());
        }
        if self.partitions < 1 {
            return bad(format!("{} partitions (need at least 1)", self.partitions));
        }
        if self.groups > 64 {
            return bad(format!("{} consumer groups (at most 64)", self.groups));
        }
        if self.send_for.is_some_and(|d| d.is_zero()) {
            return bad("zero send duration".into());
        }
        if let Rate::Fixed(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad(format!("rate {r} (need a positive number)"));
            }
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.producer.compression.as_str())
        {
            return bad(format!(
                "compression `{}` (none, gzip, snappy, lz4 or zstd)",
                self.producer.compression
            ));
        }
        Ok(())
    }

    /// The reported form, given the loaded values' count and mean size.
    pub fn summary(&self, distinct_values: usize, mean_value_bytes: f64) -> WorkloadSummary {
        WorkloadSummary {
            payload: self.payload.clone(),
            distinct_values,
            mean_value_bytes,
            rate: self.rate,
            messages: self.messages,
            partitions: self.partitions,
            groups: self.groups,
            acks: self.producer.acks,
            compression: self.producer.compression.clone(),
            idempotent: self.producer.idempotent,
            producer_extra: self.producer.extra.clone(),
            consumer_extra: self.consumer.extra.clone(),
            send_for_secs: self.send_for.map(|d| d.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Workload::alerts(Rate::Fixed(1000.0), 10)
            .validate()
            .unwrap();
        Workload::alerts(Rate::Max, 1).validate().unwrap();
    }

    #[test]
    fn nonsense_is_refused() {
        let base = Workload::alerts(Rate::Max, 10);
        let cases: Vec<(Workload, &str)> = vec![
            (
                Workload {
                    messages: 0,
                    ..base.clone()
                },
                "zero messages",
            ),
            (
                Workload {
                    partitions: 0,
                    ..base.clone()
                },
                "0 partitions",
            ),
            (
                Workload {
                    groups: 65,
                    ..base.clone()
                },
                "65 consumer groups",
            ),
            (
                Workload {
                    rate: Rate::Fixed(-1.0),
                    ..base.clone()
                },
                "rate -1",
            ),
            (
                Workload {
                    producer: ProducerSettings {
                        compression: "brotli".into(),
                        ..base.producer.clone()
                    },
                    ..base.clone()
                },
                "compression `brotli`",
            ),
        ];
        for (w, expect) in cases {
            let err = w.validate().unwrap_err().to_string();
            assert!(err.contains(expect), "{err} should mention {expect}");
        }
    }
}
