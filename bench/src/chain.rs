//! The in-broker processing chain option: which chains exist, the broker
//! YAML that runs one, and what its output must be.
//!
//! A chain is only worth timing if its output can be checked, so only chains
//! whose expected output set the bench can compute on its own are offered:
//! `pass-all` (an `ExpressionFilter` on `true`, then a `KafkaTopicWriter`
//! writing Avro) must write every input exactly once. The pipeline reads a
//! fixed source topic and writes a fixed output topic: a chain run always
//! gets a freshly started broker, so the fixed names cannot collide with an
//! earlier run's data.

use serde::Serialize;

use crate::error::BenchError;

/// The header the broker puts on every pipeline output: `topic/partition/offset`
/// of the input record it came from.
pub const SOURCE_HEADER: &str = "starlog-source";
/// The pipeline's name in the broker (and in its `/metrics` labels).
pub const PIPELINE_NAME: &str = "bench-chain";
/// The topic the pipeline reads (the run's produced topic).
pub const SOURCE_TOPIC: &str = "starlog-bench-chain-in";
/// The topic the pipeline writes.
pub const OUTPUT_TOPIC: &str = "starlog-bench-chain-out";

/// A chain the bench knows how to configure and check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChainKind {
    /// `ExpressionFilter` on `true`, then Avro out: every input, once.
    PassAll,
}

impl ChainKind {
    /// Every chain name accepted by `--in-broker-chain`.
    pub const NAMES: &'static [&'static str] = &["pass-all"];

    /// The chain called `name`.
    pub fn parse(name: &str) -> Result<Self, BenchError> {
        match name {
            "pass-all" => Ok(Self::PassAll),
            _ => Err(BenchError::Chain {
                chain: name.to_string(),
                reason: format!("unknown chain (known: {})", Self::NAMES.join(", ")),
            }),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PassAll => "pass-all",
        }
    }

    /// Whether the input numbered `seq` must appear in the output.
    pub fn passes(self, _seq: u64) -> bool {
        match self {
            Self::PassAll => true,
        }
    }

    /// The broker YAML's `pipelines:` section running this chain from
    /// `source` to `output`.
    pub fn pipelines_yaml(self, source: &str, output: &str) -> String {
        let filter = match self {
            Self::PassAll => {
                "      - class: ExpressionFilter\n        params: { expression: \"true\" }\n"
            }
        };
        format!(
            "pipelines:\n  - type: in-broker\n    name: {PIPELINE_NAME}\n    \
             source: {{ topic: {source} }}\n    processors:\n{filter}      \
             - class: KafkaTopicWriter\n        \
             params: {{ topic: {output}, format: avro, key: alert_id }}\n"
        )
    }
}

impl ChainKind {
    /// The whole Starlog configuration for a chain run, with `{host}` and
    /// `{http_port}` left to fill per run: the broker's defaults, the schema
    /// registry on (Avro output registers its schemas there; `/metrics` is
    /// served on the same listener) and this chain from [`SOURCE_TOPIC`] to
    /// [`OUTPUT_TOPIC`].
    pub fn broker_config_template(self) -> String {
        format!(
            "# Written by starlog-bench: Starlog's defaults, the registry on a free port,\n\
             # and the in-broker chain `{}`.\n\
             schema_registry:\n  enabled: true\n  listen: \"{{host}}:{{http_port}}\"\n{}",
            self.name(),
            self.pipelines_yaml(SOURCE_TOPIC, OUTPUT_TOPIC)
        )
    }
}

/// Reads a `starlog-source` header: (topic, partition, offset). The topic may
/// itself contain `/`, so the two numbers are taken from the right.
pub fn parse_source(value: &[u8]) -> Option<(&str, i32, i64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (rest, offset) = text.rsplit_once('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    if topic.is_empty() {
        return None;
    }
    Some((topic, partition.parse().ok()?, offset.parse().ok()?))
}

/// Report text for the chain option.
pub fn status(requested: Option<ChainKind>) -> String {
    match requested {
        None => "not requested".to_string(),
        Some(chain) => format!(
            "`{}` ({PIPELINE_NAME}: {SOURCE_TOPIC} -> {OUTPUT_TOPIC})",
            chain.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for n in ChainKind::NAMES {
            assert_eq!(ChainKind::parse(n).unwrap().name(), *n);
        }
        let err = ChainKind::parse("solar-system").unwrap_err().to_string();
        assert!(err.contains("`solar-system`"), "{err}");
        assert!(err.contains("known: pass-all"), "{err}");
    }

    #[test]
    fn yaml_names_the_topics_and_parses() {
        let y = ChainKind::PassAll.pipelines_yaml("in-t", "out-t");
        assert!(y.starts_with("pipelines:\n  - type: in-broker\n"), "{y}");
        assert!(y.contains("source: { topic: in-t }"), "{y}");
        assert!(y.contains("class: ExpressionFilter"), "{y}");
        assert!(y.contains("expression: \"true\""), "{y}");
        assert!(
            y.contains("params: { topic: out-t, format: avro, key: alert_id }"),
            "{y}"
        );
        assert!(y.contains(&format!("name: {PIPELINE_NAME}")), "{y}");
    }

    #[test]
    fn source_headers() {
        assert_eq!(parse_source(b"alerts/3/42"), Some(("alerts", 3, 42)));
        assert_eq!(parse_source(b"a/b/0/7"), Some(("a/b", 0, 7)));
        assert_eq!(parse_source(b"alerts/3"), None);
        assert_eq!(parse_source(b"/3/42"), None);
        assert_eq!(parse_source(b"alerts/x/42"), None);
        assert_eq!(parse_source(b"alerts/3/-"), None);
        assert_eq!(parse_source(&[0xff, b'/', b'1', b'/', b'2']), None);
    }

    #[test]
    fn status_text() {
        assert_eq!(status(None), "not requested");
        let s = status(Some(ChainKind::PassAll));
        assert!(s.contains("`pass-all`") && s.contains(OUTPUT_TOPIC), "{s}");
    }
}
