//! Reading YAML with paths: every fault names where it is
//! (`topics[1].partitions: expected an integer, found "four"`), and
//! unknown keys are faults too, so a typo never silently falls back to a
//! default.

use serde_yaml::{Mapping, Value};

use crate::error::ConfigError;

/// A mapping being read, with its path.
#[derive(Debug)]
pub struct Node<'a> {
    path: String,
    map: &'a Mapping,
    seen: Vec<&'static str>,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

/// Joins a path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A fault at `path`.
pub fn fault(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

impl<'a> Node<'a> {
    /// Wraps `v`, which must be a mapping.
    pub fn new(path: impl Into<String>, v: &'a Value) -> Result<Self, ConfigError> {
        let path = path.into();
        match v {
            Value::Mapping(map) => Ok(Self {
                path,
                map,
                seen: Vec::new(),
            }),
            other => Err(fault(
                if path.is_empty() {
                    "(top level)".into()
                } else {
                    path
                },
                format!("expected a mapping, found {}", describe(other)),
            )),
        }
    }

    /// Path of `key` in this mapping.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value of `key`, if present and not null.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A string.
    pub fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        let p = self.path_of(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(fault(
                p,
                format!("expected a string, found {}", describe(other)),
            )),
        }
    }

    /// A required string.
    pub fn required_string(&mut self, key: &'static str) -> Result<String, ConfigError> {
        let p = self.path_of(key);
        self.string(key)?.ok_or_else(|| fault(p, "is required"))
    }

    /// An integer within `range`.
    pub fn int(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        let p = self.path_of(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if range.contains(&i) => Ok(Some(i)),
                _ => Err(fault(
                    p,
                    format!(
                        "expected an integer from {} to {}, found {n}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
            Some(other) => Err(fault(
                p,
                format!("expected an integer, found {}", describe(other)),
            )),
        }
    }

    /// A boolean.
    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        let p = self.path_of(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(fault(
                p,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    /// A nested mapping.
    pub fn child(&mut self, key: &'static str) -> Result<Option<Node<'a>>, ConfigError> {
        let p = self.path_of(key);
        self.get(key).map(|v| Node::new(p, v)).transpose()
    }

    /// A list; each item with its path.
    pub fn list(&mut self, key: &'static str) -> Result<Vec<(String, &'a Value)>, ConfigError> {
        let p = self.path_of(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{p}[{i}]"), v))
                .collect()),
            Some(other) => Err(fault(
                p,
                format!("expected a list, found {}", describe(other)),
            )),
        }
    }

    /// Fails on keys that were never asked for (typos).
    pub fn finish(self) -> Result<(), ConfigError> {
        for k in self.map.keys() {
            let name = match k {
                Value::String(s) => s.clone(),
                other => describe(other),
            };
            if !self.seen.iter().any(|s| *s == name) {
                let mut known: Vec<&str> = self.seen.clone();
                known.sort_unstable();
                known.dedup();
                return Err(fault(
                    join(&self.path, &name),
                    format!("unknown key (known here: {})", known.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// A string list item.
pub fn item_string(path: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(fault(
            path,
            format!("expected a string, found {}", describe(other)),
        )),
    }
}
