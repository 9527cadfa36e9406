//! Typed access to a processor's `params` mapping, with errors that carry
//! the YAML path of the fault (`component.processors[1].params.radius:
//! expected a number of arcsec, found a string ("ten")`).
//!
//! Every key read is recorded, and [`Params::finish`] rejects the keys
//! nobody read, so a misspelt parameter fails at load instead of being
//! silently ignored.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value as Yaml};

use super::ConfigError;

/// Joins a YAML path and a key.
#[must_use]
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Describes a YAML value for an error message.
#[must_use]
pub fn describe(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".to_owned(),
        Yaml::Bool(b) => format!("a boolean ({b})"),
        Yaml::Number(n) => format!("the number {n}"),
        Yaml::String(s) => format!("a string ({s:?})"),
        Yaml::Sequence(_) => "a list".to_owned(),
        Yaml::Mapping(_) => "a mapping".to_owned(),
        Yaml::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The error for a value of the wrong type or range.
#[must_use]
pub fn expected(path: &str, what: &str, found: &Yaml) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        message: format!("expected {what}, found {}", describe(found)),
    }
}

/// A mapping being read key by key.
#[derive(Debug)]
pub struct Params<'a> {
    path: String,
    map: Option<&'a Mapping>,
    used: Vec<String>,
    base_dir: &'a Path,
}

impl<'a> Params<'a> {
    /// Wraps `node` (absent or null means "no parameters") found at `path`.
    ///
    /// # Errors
    /// When `node` is not a mapping.
    pub fn new(
        path: impl Into<String>,
        node: Option<&'a Yaml>,
        base_dir: &'a Path,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        let map = match node {
            None | Some(Yaml::Null) => None,
            Some(Yaml::Mapping(m)) => Some(m),
            Some(other) => return Err(expected(&path, "a mapping", other)),
        };
        Ok(Params {
            path,
            map,
            used: Vec::new(),
            base_dir,
        })
    }

    /// The YAML path of this mapping.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The YAML path of one key.
    #[must_use]
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Directory relative file paths are resolved against.
    #[must_use]
    pub fn base_dir(&self) -> &'a Path {
        self.base_dir
    }

    /// An error about `key`.
    #[must_use]
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path_of(key),
            message: message.into(),
        }
    }

    /// The raw value of `key` (null counts as absent); marks it read.
    pub fn get(&mut self, key: &str) -> Option<&'a Yaml> {
        self.used.push(key.to_owned());
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str, what: &str) -> ConfigError {
        self.error(key, format!("missing, expected {what}"))
    }

    /// A string.
    ///
    /// # Errors
    /// Missing or not a string.
    pub fn required_str(&mut self, key: &str, what: &str) -> Result<String, ConfigError> {
        self.optional_str(key, what)?
            .ok_or_else(|| self.missing(key, what))
    }

    /// An optional string.
    ///
    /// # Errors
    /// Not a string.
    pub fn optional_str(&mut self, key: &str, what: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Yaml::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(expected(&self.path_of(key), what, other)),
        }
    }

    /// A number.
    ///
    /// # Errors
    /// Missing or not a number.
    pub fn required_f64(&mut self, key: &str, what: &str) -> Result<f64, ConfigError> {
        self.optional_f64(key, what)?
            .ok_or_else(|| self.missing(key, what))
    }

    /// An optional number.
    ///
    /// # Errors
    /// Not a number.
    pub fn optional_f64(&mut self, key: &str, what: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Yaml::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| expected(&self.path_of(key), what, v)),
            Some(other) => Err(expected(&self.path_of(key), what, other)),
        }
    }

    /// A positive number (e.g. a radius).
    ///
    /// # Errors
    /// Missing, not a number, or not > 0.
    pub fn required_positive(&mut self, key: &str, what: &str) -> Result<f64, ConfigError> {
        let v = self.required_f64(key, what)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(self.error(key, format!("expected {what} greater than 0, found {v}")))
        }
    }

    /// An optional non-negative integer with a default.
    ///
    /// # Errors
    /// Not a non-negative integer.
    pub fn optional_u64(
        &mut self,
        key: &str,
        what: &str,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v @ Yaml::Number(n)) => n
                .as_u64()
                .ok_or_else(|| expected(&self.path_of(key), what, v)),
            Some(other) => Err(expected(&self.path_of(key), what, other)),
        }
    }

    /// An optional boolean with a default.
    ///
    /// # Errors
    /// Not a boolean.
    pub fn optional_bool(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Yaml::Bool(b)) => Ok(*b),
            Some(other) => Err(expected(&self.path_of(key), "true or false", other)),
        }
    }

    /// One of `choices`; `default` when absent (or an error if `None`).
    ///
    /// # Errors
    /// Missing without default, or not one of the choices.
    pub fn choice(
        &mut self,
        key: &str,
        choices: &[&str],
        default: Option<&str>,
    ) -> Result<String, ConfigError> {
        let what = format!("one of {}", choices.join(", "));
        match self.get(key) {
            None => default
                .map(str::to_owned)
                .ok_or_else(|| self.missing(key, &what)),
            Some(Yaml::String(s)) if choices.contains(&s.as_str()) => Ok(s.clone()),
            Some(other) => Err(expected(&self.path_of(key), &what, other)),
        }
    }

    /// An optional list of strings.
    ///
    /// # Errors
    /// Not a list, or an item is not a string.
    pub fn optional_str_list(
        &mut self,
        key: &str,
        what: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let path = self.path_of(key);
        match self.get(key) {
            None => Ok(None),
            Some(Yaml::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Yaml::String(s) => Ok(s.clone()),
                    Yaml::Number(n) => Ok(n.to_string()),
                    other => Err(expected(&format!("{path}[{i}]"), what, other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(expected(&path, &format!("a list of {what}"), other)),
        }
    }

    /// A file path, resolved against the pipeline file's directory.
    ///
    /// # Errors
    /// Missing or not a string.
    pub fn required_path(&mut self, key: &str, what: &str) -> Result<PathBuf, ConfigError> {
        let p = self.required_str(key, what)?;
        Ok(self.base_dir.join(p))
    }

    /// Rejects keys that were never read.
    ///
    /// # Errors
    /// The first unknown key, listing the known ones.
    pub fn finish(self) -> Result<(), ConfigError> {
        let Some(map) = self.map else { return Ok(()) };
        for k in map.keys() {
            let name = k.as_str().unwrap_or("");
            if !self.used.iter().any(|u| u == name) {
                let mut known = self.used.clone();
                known.sort();
                known.dedup();
                return Err(ConfigError::Invalid {
                    path: join(
                        &self.path,
                        serde_yaml::to_string(k).unwrap_or_default().trim(),
                    ),
                    message: format!("unknown parameter (known: {})", known.join(", ")),
                });
            }
        }
        Ok(())
    }
}
