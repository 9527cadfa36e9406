//! Compatibility levels and the checks behind them, on Avro schema
//! resolution (`apache_avro::schema_compatibility`).
//!
//! BACKWARD: the new schema can read data written with the old one.
//! FORWARD: the old schema can read data written with the new one.
//! FULL: both. The `_TRANSITIVE` forms check every live version, not only
//! the latest. NONE: anything goes.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// A compatibility level, spelled as Confluent spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// New reads old (the Confluent default).
    #[default]
    Backward,
    /// New reads every older version.
    BackwardTransitive,
    /// Old reads new.
    Forward,
    /// Every older version reads new.
    ForwardTransitive,
    /// Both ways with the latest.
    Full,
    /// Both ways with every version.
    FullTransitive,
    /// No check.
    None,
}

impl Compatibility {
    /// Whether every live version is checked.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Parses the Confluent spelling.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }

    /// The Confluent spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
            Self::None => "NONE",
        }
    }
}

/// Checks `new` against one `old` schema at `level`; the error says why not.
pub fn check(level: Compatibility, old: &Schema, new: &Schema) -> Result<(), String> {
    let backward = || {
        SchemaCompatibility::can_read(old, new)
            .map(|_| ())
            .map_err(|e| format!("the new schema cannot read data written with the old one: {e}"))
    };
    let forward = || {
        SchemaCompatibility::can_read(new, old)
            .map(|_| ())
            .map_err(|e| format!("the old schema cannot read data written with the new one: {e}"))
    };
    match level {
        Compatibility::None => Ok(()),
        Compatibility::Backward | Compatibility::BackwardTransitive => backward(),
        Compatibility::Forward | Compatibility::ForwardTransitive => forward(),
        Compatibility::Full | Compatibility::FullTransitive => backward().and_then(|()| forward()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    #[test]
    fn adding_a_field_with_a_default_is_backward_and_forward() {
        let v1 = s(r#"{"type":"record","name":"a","fields":[{"name":"x","type":"int"}]}"#);
        let v2 = s(
            r#"{"type":"record","name":"a","fields":[{"name":"x","type":"int"},{"name":"y","type":"string","default":""}]}"#,
        );
        assert!(check(Compatibility::Full, &v1, &v2).is_ok());
    }

    #[test]
    fn adding_a_field_without_default_is_not_backward() {
        let v1 = s(r#"{"type":"record","name":"a","fields":[{"name":"x","type":"int"}]}"#);
        let v2 = s(
            r#"{"type":"record","name":"a","fields":[{"name":"x","type":"int"},{"name":"y","type":"string"}]}"#,
        );
        assert!(check(Compatibility::Backward, &v1, &v2).is_err());
        assert!(check(Compatibility::Forward, &v1, &v2).is_ok());
        assert!(check(Compatibility::None, &v1, &v2).is_ok());
    }

    #[test]
    fn levels_parse_in_confluent_spelling() {
        assert_eq!(
            Compatibility::parse("full_transitive"),
            Some(Compatibility::FullTransitive)
        );
        assert_eq!(
            Compatibility::parse("BACKWARD"),
            Some(Compatibility::Backward)
        );
        assert_eq!(Compatibility::parse("sideways"), None);
        assert_eq!(Compatibility::Forward.as_str(), "FORWARD");
    }
}
