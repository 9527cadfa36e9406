//! The Starlog broker: a Kafka-wire-compatible server over `starlog-storage`.

pub mod groups;
