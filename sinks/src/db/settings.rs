//! The parameters both database writers share, read and checked at load
//! with YAML-path errors: connection (`url`, `password_env` /
//! `password_file`, `tls`, `ca`), table and mapping (`table`, `columns`,
//! `key`), batching (`batch_size`) and retries.

use std::path::PathBuf;
use std::time::Duration;

use starlog_processors::config::{ConfigError, Params};

use super::columns::{is_identifier, is_table_name, parse_columns, Mapping};

/// TLS to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or no connection.
    Require,
}

/// Where the password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PasswordSource {
    /// No password.
    None,
    /// An environment variable (its name).
    Env(String),
    /// A file (first line).
    File(PathBuf),
}

/// Why the password could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasswordError {
    /// The variable is not set (or not Unicode).
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The file cannot be read.
    #[error("cannot read password file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PasswordSource {
    /// Reads the password (at build time).
    pub(crate) fn read(&self) -> Result<Option<String>, PasswordError> {
        match self {
            Self::None => Ok(None),
            Self::Env(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| PasswordError::EnvMissing(var.clone())),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.lines().next().unwrap_or_default().to_owned()))
                .map_err(|source| PasswordError::File {
                    path: path.clone(),
                    source,
                }),
        }
    }

    /// The YAML key the password comes from (for errors).
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Self::None => "url",
            Self::Env(_) => "password_env",
            Self::File(_) => "password_file",
        }
    }
}

/// Retry policy while the database is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// First back-off.
    pub initial: Duration,
    /// Longest back-off.
    pub max: Duration,
    /// How long to keep retrying one batch before failing the record.
    pub give_up_after: Duration,
}

/// Everything a database writer is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Connection URL, without password.
    pub url: String,
    pub password: PasswordSource,
    pub tls: TlsMode,
    /// CA certificates (PEM) to verify the server with; the web PKI roots otherwise.
    pub ca: Option<PathBuf>,
    pub table: String,
    pub mapping: Mapping,
    /// Key column name (`None`: the alert id).
    pub key: Option<String>,
    pub batch_size: usize,
    pub retry: Retry,
    pub connect_timeout: Duration,
    /// Where refused rows go.
    pub dead_letter_topic: String,
}

impl Settings {
    /// Reads the shared parameters. `scheme` is the URL scheme the class
    /// expects (`postgresql` / `mysql`), for the error message.
    pub(crate) fn parse(p: &mut Params<'_>, schemes: &[&str]) -> Result<Self, ConfigError> {
        let url = p.required_str("url", "a connection URL without password")?;
        let scheme = url.split("://").next().unwrap_or("");
        if !url.contains("://") || !schemes.contains(&scheme) {
            return Err(p.error(
                "url",
                format!(
                    "expected a URL starting with {}://",
                    schemes.join(":// or ")
                ),
            ));
        }
        if url_has_password(&url) {
            return Err(p.error(
                "url",
                "the URL carries a password: give it through password_env or password_file instead",
            ));
        }
        let env = p.optional_str("password_env", "an environment variable name")?;
        let file = p.optional_str("password_file", "a file holding the password")?;
        let password = match (env, file) {
            (Some(_), Some(_)) => {
                return Err(p.error(
                    "password_file",
                    "give either password_env or password_file, not both",
                ))
            }
            (Some(v), None) => PasswordSource::Env(v),
            (None, Some(f)) => PasswordSource::File(p.base_dir().join(f)),
            (None, None) => PasswordSource::None,
        };
        let tls = match p
            .choice("tls", &["disable", "prefer", "require"], Some("prefer"))?
            .as_str()
        {
            "disable" => TlsMode::Disable,
            "require" => TlsMode::Require,
            _ => TlsMode::Prefer,
        };
        let ca = p
            .optional_str("ca", "a PEM file of CA certificates")?
            .map(|c| p.base_dir().join(c));
        if ca.is_some() && tls == TlsMode::Disable {
            return Err(p.error("ca", "a CA file is given but tls is disable"));
        }
        let table = p.required_str("table", "a table name")?;
        if !is_table_name(&table) {
            return Err(p.error(
                "table",
                format!("{table:?} is not a plain SQL table name (letters, digits, _; optionally schema.table)"),
            ));
        }
        let mapping = parse_columns(p)?;
        let key = p.optional_str("key", "the key column's name")?;
        if let Some(k) = &key {
            if !is_identifier(k) {
                return Err(p.error("key", format!("{k:?} is not a plain SQL identifier")));
            }
            if let Mapping::Columns(cols) = &mapping {
                if !cols.iter().any(|c| &c.name == k) {
                    return Err(p.error(
                        "key",
                        format!(
                            "{k:?} is not one of the columns ({})",
                            cols.iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let batch_size = p.optional_u64("batch_size", "a positive number of rows", 500)?;
        if batch_size == 0 || batch_size > 100_000 {
            return Err(p.error(
                "batch_size",
                format!("expected a number of rows from 1 to 100000, found {batch_size}"),
            ));
        }
        let initial = p.optional_u64("retry_backoff_ms", "milliseconds", 100)?;
        let max = p.optional_u64("retry_max_backoff_ms", "milliseconds", 5_000)?;
        let give_up = p.optional_u64("retry_timeout_ms", "milliseconds", 30_000)?;
        if initial == 0 || max < initial {
            return Err(p.error(
                "retry_max_backoff_ms",
                format!("expected retry_backoff_ms > 0 and retry_max_backoff_ms >= it, found {initial} and {max}"),
            ));
        }
        let connect_timeout = p.optional_u64("connect_timeout_ms", "milliseconds", 10_000)?;
        if connect_timeout == 0 {
            return Err(p.error(
                "connect_timeout_ms",
                "expected a positive number of milliseconds, found 0",
            ));
        }
        let dead_letter_topic = p
            .optional_str("dead_letter_topic", "a topic name")?
            .unwrap_or_else(|| format!("{}-dead-letter", table.replace('.', "-")));
        Ok(Settings {
            url,
            password,
            tls,
            ca,
            table,
            mapping,
            key,
            batch_size: usize::try_from(batch_size).unwrap_or(500),
            retry: Retry {
                initial: Duration::from_millis(initial),
                max: Duration::from_millis(max),
                give_up_after: Duration::from_millis(give_up),
            },
            connect_timeout: Duration::from_millis(connect_timeout),
            dead_letter_topic,
        })
    }
}

/// True when the URL's authority has `user:password@`.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::url_has_password;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(url_has_password("postgresql://u:p@h:5432/db"));
        assert!(!url_has_password("postgresql://u@h:5432/db"));
        assert!(!url_has_password("postgresql://h:5432/db"));
        assert!(!url_has_password("mysql://u@127.0.0.1:3306/db?x=a:b@c"));
    }
}
