//! `mirror.yaml`: what to mirror, from where, to where, and what to do with
//! records that cannot be mirrored.
//!
//! ```yaml
//! name: ztf                      # consumer group "starlog-mirror.ztf" holds the checkpoint
//! upstream:
//!   bootstrap: kafka.example.org:9094
//!   client_id: my-broker
//!   tls: { ca_file: ca.pem }     # present = TLS on (public roots without ca_file)
//!   sasl: { mechanism: SCRAM-SHA-512, username: me, password_env: UPSTREAM_PASSWORD }
//!   registry: { url: https://registry.example.org, username: me, password_env: REG_PW }
//! local:
//!   bootstrap: 127.0.0.1:9092
//!   registry: { url: http://127.0.0.1:8081 }
//! topics:
//!   - match: 'ztf_(\d{8})_programid(\d)'   # whole-name regex
//!     target: ztf-buffer                    # may use $1, ${2}; default: the same name
//!     partitions: 16                        # of the target (created if absent)
//!     retention_ms: 604800000               # of the target
//!     subject: '{target}-value'             # local subject the schemas go under
//!     schema_ids: rewrite                   # or: keep
//!     partitioning: hash                    # or: preserve (see below)
//! start: earliest                # first run only: earliest | latest
//! bad_input: { policy: dead-letter, topic: ztf-buffer-dead-letters }   # or skip / stop
//! # optional tuning (defaults shown)
//! validate_bodies: true          # decode each body with its writer schema
//! alert_id_fields: [candid, diaSourceId, alertId]
//! checkpoint_interval_ms: 500
//! discovery_interval_ms: 30000
//! recovery_settle_ms: 1000
//! max_in_flight_records: 5000
//! linger_ms: 5
//! batch_bytes: 1048576
//! compression: none
//! max_record_bytes: 8388608
//! progress: true
//! ```
//!
//! Everything is validated here, before any connection: a fault names its
//! YAML path; relative file paths are resolved against the file's folder.
//!
//! `partitioning` of a rule: `hash` (the default) places each record by its
//! key, else a hash of its alert id, else a hash of its value, over the
//! target's `partitions`. `preserve` keeps each record in its upstream
//! partition number (upstream partition N → target partition N; the target
//! needs at least as many partitions as every upstream topic the rule
//! matches, else the mirror stops naming the partition). With `preserve`,
//! an upstream batch whose values need no schema-id change (ids kept, or
//! every upstream id equal to its local id) is copied into the target as
//! bytes, without provenance headers (see `passthrough`); other batches are
//! re-produced record by record, still into partition N.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use starlog_clients::{ClientConfig, Compression, SaslConfig, SaslMechanism, TlsConfig};

use crate::error::ConfigError;
use crate::yaml::{fault, item_string, Node};

/// Where a topic seen for the first time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The log start.
    Earliest,
    /// The log end (only new records).
    Latest,
}

/// What to do with a record that cannot be mirrored as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadInputPolicy {
    /// Produce the original record to this local topic, with the reason and
    /// the upstream coordinates in headers.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
    /// Drop it, counted in the summary and logged.
    Skip,
    /// End the run with an error naming the record; nothing after it is
    /// mirrored, so a restart after a fix resumes exactly there.
    Stop,
}

/// What to do with Confluent schema ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaIds {
    /// Map each upstream id to the local id of the same schema.
    Rewrite,
    /// Copy values unchanged (no registry calls; values need no framing).
    Keep,
}

/// Where records go in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// By key, else alert id, else value hash, over the target's partitions.
    Hash,
    /// The upstream partition number; batches needing no change pass
    /// through as bytes.
    Preserve,
}

/// A schema registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Base URL (`http://` or `https://`).
    pub url: String,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// TLS trust for `https` (public roots when absent).
    pub tls: Option<TlsConfig>,
    /// Time for one request.
    pub timeout: Duration,
}

/// One rule: which upstream topics, and where they go.
#[derive(Debug, Clone)]
pub struct TopicRule {
    /// The pattern as written.
    pub pattern: String,
    /// Anchored regex.
    pub regex: Regex,
    /// Target name template (`$1`, `${name}`); `None` keeps the name.
    pub target: Option<String>,
    /// Target partition count.
    pub partitions: i32,
    /// Target `retention.ms`, when set.
    pub retention_ms: Option<i64>,
    /// Local subject template; `{target}` and `{upstream}` are replaced.
    pub subject: String,
    /// Rewrite or keep schema ids.
    pub schema_ids: SchemaIds,
    /// Hash or preserve partitions.
    pub partitioning: Partitioning,
}

impl TopicRule {
    /// The target topic of `upstream`, if this rule matches it.
    pub fn target_of(&self, upstream: &str) -> Option<String> {
        let caps = self.regex.captures(upstream)?;
        Some(match &self.target {
            None => upstream.to_owned(),
            Some(t) => {
                let mut out = String::new();
                caps.expand(t, &mut out);
                out
            }
        })
    }

    /// The local subject for records of `upstream` mirrored to `target`.
    pub fn subject_of(&self, upstream: &str, target: &str) -> String {
        self.subject
            .replace("{target}", target)
            .replace("{upstream}", upstream)
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Mirror name; the checkpoint group is `starlog-mirror.<name>`.
    pub name: String,
    /// Upstream cluster connection.
    pub upstream: ClientConfig,
    /// Upstream registry (needed when a rule rewrites ids).
    pub upstream_registry: Option<RegistryConfig>,
    /// Local cluster connection.
    pub local: ClientConfig,
    /// Local registry (needed when a rule rewrites ids).
    pub local_registry: Option<RegistryConfig>,
    /// Rules, first match wins.
    pub topics: Vec<TopicRule>,
    /// First-run start.
    pub start: StartFrom,
    /// Bad-input policy.
    pub bad_input: BadInputPolicy,
    /// Partitions of the dead-letter topic when it is created.
    pub dead_letter_partitions: i32,
    /// Decode every body with its writer schema (catches non-Avro bodies).
    pub validate_bodies: bool,
    /// Fields tried, in order, for the alert id of keyless records.
    pub alert_id_fields: Vec<String>,
    /// Time between checkpoints.
    pub checkpoint_interval: Duration,
    /// Time between looks for new upstream topics.
    pub discovery_interval: Duration,
    /// Records produced but not yet acknowledged before reading pauses.
    pub max_in_flight_records: usize,
    /// Producer linger.
    pub linger: Duration,
    /// Producer batch size in bytes.
    pub batch_bytes: usize,
    /// Codec of the produced batches.
    pub compression: Compression,
    /// Largest record accepted, both ways (bytes).
    pub max_record_bytes: usize,
    /// Show the progress display (only drawn on a terminal).
    pub progress: bool,
    /// At a restart, how long the local end offsets must stay still before
    /// the tails are read back (produce requests a killed run had already
    /// sent may still be landing).
    pub recovery_settle: Duration,
}

impl MirrorConfig {
    /// The consumer group that holds the checkpoint.
    pub fn group(&self) -> String {
        format!("starlog-mirror.{}", self.name)
    }

    /// The rule for `upstream` and the target it maps to.
    pub fn route(&self, upstream: &str) -> Option<(usize, String)> {
        if upstream.starts_with("__") {
            return None;
        }
        self.topics
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.target_of(upstream).map(|t| (i, t)))
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, base)
    }

    /// Parses and validates YAML text; relative paths resolve against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
            reason: e.to_string(),
        })?;
        let mut top = Node::new("", &v)?;
        let name = top.required_string("name")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(fault(
                "name",
                "must be non-empty and use only letters, digits, '.', '_' and '-'",
            ));
        }
        let mut up = top
            .child("upstream")?
            .ok_or_else(|| fault("upstream", "is required"))?;
        let (upstream, upstream_registry) = cluster(&mut up, base, "starlog-mirror")?;
        up.finish()?;
        let mut lo = top
            .child("local")?
            .ok_or_else(|| fault("local", "is required"))?;
        let (local, local_registry) = cluster(&mut lo, base, "starlog-mirror")?;
        lo.finish()?;

        let items = top.list("topics")?;
        if items.is_empty() {
            return Err(fault("topics", "needs at least one rule"));
        }
        let mut topics = Vec::new();
        for (path, item) in items {
            let mut n = Node::new(path.clone(), item)?;
            topics.push(rule(&mut n)?);
            n.finish()?;
        }
        let start = match top.string("start")?.as_deref() {
            None | Some("earliest") => StartFrom::Earliest,
            Some("latest") => StartFrom::Latest,
            Some(other) => {
                return Err(fault(
                    "start",
                    format!("expected earliest or latest, found {other:?}"),
                ))
            }
        };
        let (bad_input, dead_letter_partitions) = match top.child("bad_input")? {
            None => (BadInputPolicy::Stop, 1),
            Some(mut b) => {
                let policy = b.required_string("policy")?;
                let topic = b.string("topic")?;
                let parts = b.int("partitions", 1..=10_000)?;
                let p = match policy.as_str() {
                    "dead-letter" => BadInputPolicy::DeadLetter {
                        topic: topic.ok_or_else(|| {
                            fault(b.path_of("topic"), "is required with policy dead-letter")
                        })?,
                    },
                    "skip" | "stop" if topic.is_some() => {
                        return Err(fault(
                            b.path_of("topic"),
                            format!("only applies to policy dead-letter, not {policy}"),
                        ))
                    }
                    "skip" => BadInputPolicy::Skip,
                    "stop" => BadInputPolicy::Stop,
                    other => {
                        return Err(fault(
                            b.path_of("policy"),
                            format!("expected dead-letter, skip or stop, found {other:?}"),
                        ))
                    }
                };
                b.finish()?;
                (p, i32::try_from(parts.unwrap_or(1)).unwrap_or(1))
            }
        };
        let validate_bodies = top.bool("validate_bodies")?.unwrap_or(true);
        let alert_id_fields = match top.get("alert_id_fields") {
            None => crate::alert_id::default_fields(),
            Some(_) => top
                .list("alert_id_fields")?
                .into_iter()
                .map(|(p, v)| item_string(&p, v))
                .collect::<Result<_, _>>()?,
        };
        let ms = |v: Option<i64>, d: u64| Duration::from_millis(v.map_or(d, |x| x.unsigned_abs()));
        let checkpoint_interval = ms(top.int("checkpoint_interval_ms", 10..=3_600_000)?, 500);
        let discovery_interval = ms(top.int("discovery_interval_ms", 100..=86_400_000)?, 30_000);
        let max_in_flight_records = usize::try_from(
            top.int("max_in_flight_records", 1..=1_000_000)?
                .unwrap_or(5_000),
        )
        .unwrap_or(5_000);
        let linger = ms(top.int("linger_ms", 0..=60_000)?, 5);
        let batch_bytes = usize::try_from(
            top.int("batch_bytes", 1024..=64 * 1024 * 1024)?
                .unwrap_or(1 << 20),
        )
        .unwrap_or(1 << 20);
        let max_record_bytes = usize::try_from(
            top.int("max_record_bytes", 1024..=256 * 1024 * 1024)?
                .unwrap_or(8 * 1024 * 1024),
        )
        .unwrap_or(8 * 1024 * 1024);
        let compression = match top.string("compression")? {
            None => Compression::None,
            Some(c) => Compression::from_name(&c).ok_or_else(|| {
                fault(
                    "compression",
                    format!("expected none, gzip, snappy, lz4 or zstd, found {c:?}"),
                )
            })?,
        };
        let progress = top.bool("progress")?.unwrap_or(true);
        let recovery_settle = ms(top.int("recovery_settle_ms", 0..=600_000)?, 1_000);
        top.finish()?;

        let rewrites = topics.iter().any(|t| t.schema_ids == SchemaIds::Rewrite);
        if rewrites && upstream_registry.is_none() {
            return Err(fault(
                "upstream.registry",
                "is required when a topic rule rewrites schema ids",
            ));
        }
        if rewrites && local_registry.is_none() {
            return Err(fault(
                "local.registry",
                "is required when a topic rule rewrites schema ids",
            ));
        }
        Ok(Self {
            name,
            upstream,
            upstream_registry,
            local,
            local_registry,
            topics,
            start,
            bad_input,
            dead_letter_partitions,
            validate_bodies,
            alert_id_fields,
            checkpoint_interval,
            discovery_interval,
            max_in_flight_records,
            linger,
            batch_bytes,
            compression,
            max_record_bytes,
            progress,
            recovery_settle,
        })
    }
}

fn secret(
    n: &mut Node<'_>,
    what: &'static str,
    env_key: &'static str,
) -> Result<Option<String>, ConfigError> {
    let direct = n.string(what)?;
    let env = n.string(env_key)?;
    match (direct, env) {
        (Some(_), Some(_)) => Err(fault(
            n.path_of(env_key),
            format!("give either {what} or {env_key}, not both"),
        )),
        (Some(p), None) => Ok(Some(p)),
        (None, Some(var)) => std::env::var(&var).map(Some).map_err(|_| {
            fault(
                n.path_of(env_key),
                format!("environment variable {var} is not set"),
            )
        }),
        (None, None) => Ok(None),
    }
}

fn tls(n: &mut Node<'_>, base: &Path) -> Result<Option<TlsConfig>, ConfigError> {
    let p = n.path_of("tls");
    match n.get("tls") {
        None => Ok(None),
        Some(serde_yaml::Value::Bool(false)) => Ok(None),
        Some(serde_yaml::Value::Bool(true)) => Ok(Some(TlsConfig::public_roots())),
        Some(v) => {
            let mut t = Node::new(p, v)?;
            let mut cfg = TlsConfig::public_roots();
            if let Some(file) = t.string("ca_file")? {
                let path: PathBuf = base.join(&file);
                let pem = std::fs::read(&path).map_err(|e| {
                    fault(
                        t.path_of("ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                cfg.ca_pem = Some(pem);
            }
            cfg.server_name = t.string("server_name")?;
            t.finish()?;
            Ok(Some(cfg))
        }
    }
}

fn registry(n: &mut Node<'_>, base: &Path) -> Result<Option<RegistryConfig>, ConfigError> {
    let Some(mut r) = n.child("registry")? else {
        return Ok(None);
    };
    let url = r.required_string("url")?;
    starlog_clients::registry::BaseUrl::parse(&url)
        .map_err(|e| fault(r.path_of("url"), e.to_string()))?;
    let username = r.string("username")?;
    let password = secret(&mut r, "password", "password_env")?;
    if password.is_some() != username.is_some() {
        return Err(fault(
            r.path_of("username"),
            "username and password go together",
        ));
    }
    let tls = tls(&mut r, base)?;
    let timeout = Duration::from_millis(
        r.int("timeout_ms", 100..=600_000)?
            .map_or(10_000, i64::unsigned_abs),
    );
    r.finish()?;
    Ok(Some(RegistryConfig {
        url,
        username,
        password,
        tls,
        timeout,
    }))
}

fn cluster(
    n: &mut Node<'_>,
    base: &Path,
    default_client_id: &str,
) -> Result<(ClientConfig, Option<RegistryConfig>), ConfigError> {
    let bootstrap = n.required_string("bootstrap")?;
    let mut c = ClientConfig::new(&bootstrap);
    c.client_id = n
        .string("client_id")?
        .unwrap_or_else(|| default_client_id.to_owned());
    c.tls = tls(n, base)?;
    if let Some(mut s) = n.child("sasl")? {
        let mech = s.required_string("mechanism")?;
        let mechanism = match mech.to_ascii_uppercase().as_str() {
            "PLAIN" => SaslMechanism::Plain,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            _ => {
                return Err(fault(
                    s.path_of("mechanism"),
                    format!("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, found {mech:?}"),
                ))
            }
        };
        let username = s.required_string("username")?;
        let password = secret(&mut s, "password", "password_env")?
            .ok_or_else(|| fault(s.path_of("password"), "is required (or password_env)"))?;
        s.finish()?;
        c.sasl = Some(SaslConfig {
            mechanism,
            username,
            password,
        });
    }
    if let Some(ms) = n.int("request_timeout_ms", 100..=600_000)? {
        c.request_timeout = Duration::from_millis(ms.unsigned_abs());
    }
    c.validate()
        .map_err(|e| fault(n.path_of("bootstrap"), e.to_string()))?;
    let reg = registry(n, base)?;
    Ok((c, reg))
}

fn rule(n: &mut Node<'_>) -> Result<TopicRule, ConfigError> {
    let pattern = n.required_string("match")?;
    let regex = Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| fault(n.path_of("match"), format!("not a valid regex: {e}")))?;
    let target = n.string("target")?;
    if let Some(t) = &target {
        if t.is_empty() {
            return Err(fault(n.path_of("target"), "is empty"));
        }
        let literal = regex::Regex::new(r"\$(\d+|\{\w+\})")
            .map(|r| r.replace_all(t, "x").into_owned())
            .unwrap_or_else(|_| t.clone());
        if !valid_topic(&literal) {
            return Err(fault(
                n.path_of("target"),
                format!("{t:?} is not a valid topic name (letters, digits, '.', '_', '-')"),
            ));
        }
    }
    let partitions = n
        .int("partitions", 1..=10_000)?
        .ok_or_else(|| fault(n.path_of("partitions"), "is required"))?;
    let retention_ms = n.int("retention_ms", -1..=i64::MAX)?;
    if retention_ms == Some(0) {
        return Err(fault(
            n.path_of("retention_ms"),
            "0 would delete everything; use -1 for no limit",
        ));
    }
    let subject = n
        .string("subject")?
        .unwrap_or_else(|| "{target}-value".to_owned());
    let schema_ids = match n.string("schema_ids")?.as_deref() {
        None | Some("rewrite") => SchemaIds::Rewrite,
        Some("keep") => SchemaIds::Keep,
        Some(other) => {
            return Err(fault(
                n.path_of("schema_ids"),
                format!("expected rewrite or keep, found {other:?}"),
            ))
        }
    };
    let partitioning = match n.string("partitioning")?.as_deref() {
        None | Some("hash") => Partitioning::Hash,
        Some("preserve") => Partitioning::Preserve,
        Some(other) => {
            return Err(fault(
                n.path_of("partitioning"),
                format!("expected hash or preserve, found {other:?}"),
            ))
        }
    };
    Ok(TopicRule {
        partitioning,
        pattern,
        regex,
        target,
        partitions: i32::try_from(partitions).unwrap_or(1),
        retention_ms,
        subject,
        schema_ids,
    })
}

/// Kafka's topic name rule.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: ztf
upstream:
  bootstrap: "up:9092"
  client_id: me
  registry: { url: "http://up:8081" }
local:
  bootstrap: "127.0.0.1:9092"
  registry: { url: "http://127.0.0.1:8081" }
topics:
  - match: 'ztf_(\d{8})_programid(\d)'
    target: ztf-buffer
    partitions: 4
    retention_ms: 604800000
  - match: 'lsst-(.*)'
    target: 'rubin-$1'
    partitions: 2
    schema_ids: keep
    partitioning: preserve
bad_input: { policy: dead-letter, topic: dlq }
"#;

    fn parse(text: &str) -> Result<MirrorConfig, ConfigError> {
        MirrorConfig::from_yaml(text, Path::new("."))
    }

    #[test]
    fn a_full_config_parses_and_routes() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.group(), "starlog-mirror.ztf");
        assert_eq!(c.upstream.client_id, "me");
        assert_eq!(
            c.route("ztf_20191123_programid1"),
            Some((0, "ztf-buffer".into()))
        );
        assert_eq!(c.route("lsst-alerts"), Some((1, "rubin-alerts".into())));
        assert_eq!(c.route("ztf_2019112_programid1"), None, "anchored");
        assert_eq!(c.route("xztf_20191123_programid1"), None, "anchored");
        assert_eq!(c.route("__consumer_offsets"), None);
        assert_eq!(c.topics[0].retention_ms, Some(604_800_000));
        assert_eq!(c.topics[1].schema_ids, SchemaIds::Keep);
        assert_eq!(c.topics[0].partitioning, Partitioning::Hash);
        assert_eq!(c.topics[1].partitioning, Partitioning::Preserve);
        assert_eq!(
            c.topics[0].subject_of("u", "ztf-buffer"),
            "ztf-buffer-value"
        );
        assert_eq!(
            c.bad_input,
            BadInputPolicy::DeadLetter {
                topic: "dlq".into()
            }
        );
        assert_eq!(c.start, StartFrom::Earliest);
        assert!(c.validate_bodies);
    }

    fn fault_path(text: &str) -> String {
        match parse(text) {
            Err(e) => e.path().map_or_else(|| format!("<{e}>"), str::to_owned),
            Ok(_) => "<parsed>".into(),
        }
    }

    #[test]
    fn faults_name_their_path() {
        let cases: Vec<(String, &str)> = vec![
            (GOOD.replace("partitions: 4", "partitions: four"), "topics[0].partitions"),
            (GOOD.replace("partitions: 4", "partitions: 0"), "topics[0].partitions"),
            (GOOD.replace("ztf_(\\d{8})", "ztf_((\\d{8})"), "topics[0].match"),
            (GOOD.replace("target: ztf-buffer", "target: 'ztf buffer'"), "topics[0].target"),
            (GOOD.replace("retention_ms: 604800000", "retention_ms: 0"), "topics[0].retention_ms"),
            (GOOD.replace("schema_ids: keep", "schema_ids: maybe"), "topics[1].schema_ids"),
            (GOOD.replace("partitioning: preserve", "partitioning: keep"), "topics[1].partitioning"),
            (GOOD.replace("policy: dead-letter", "policy: drop"), "bad_input.policy"),
            (GOOD.replace("policy: dead-letter, topic: dlq", "policy: dead-letter"), "bad_input.topic"),
            (GOOD.replace("policy: dead-letter, topic: dlq", "policy: skip, topic: dlq"), "bad_input.topic"),
            (GOOD.replace("client_id: me", "client_idd: me"), "upstream.client_idd"),
            (GOOD.replace("bootstrap: \"up:9092\"", "bootstrap: \"up\""), "upstream.bootstrap"),
            (GOOD.replace("http://up:8081", "ftp://up"), "upstream.registry.url"),
            (GOOD.replace("registry: { url: \"http://up:8081\" }", ""), "upstream.registry"),
            (GOOD.replace("name: ztf", "name: 'a b'"), "name"),
            (GOOD.replace("name: ztf", ""), "name"),
            (format!("{GOOD}start: middle\n"), "start"),
            (format!("{GOOD}compression: brotli\n"), "compression"),
            (format!("{GOOD}validate_bodies: 3\n"), "validate_bodies"),
            (format!("{GOOD}extra: 1\n"), "extra"),
            (
                GOOD.replace("client_id: me", "client_id: me\n  sasl: { mechanism: KERBEROS, username: u, password: p }"),
                "upstream.sasl.mechanism",
            ),
            (
                GOOD.replace("client_id: me", "client_id: me\n  sasl: { mechanism: SCRAM-SHA-512, username: u }"),
                "upstream.sasl.password",
            ),
            (
                GOOD.replace("client_id: me", "client_id: me\n  sasl: { mechanism: SCRAM-SHA-512, username: u, password_env: STARLOG_MIRROR_TEST_UNSET_VAR }"),
                "upstream.sasl.password_env",
            ),
            (
                GOOD.replace("client_id: me", "client_id: me\n  tls: { ca_file: /nonexistent/ca.pem }"),
                "upstream.tls.ca_file",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(fault_path(&text), want, "for:\n{text}");
        }
        assert!(matches!(
            parse("name: [unclosed"),
            Err(ConfigError::Yaml { .. })
        ));
        assert!(matches!(
            parse("- a\n- b\n"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn security_settings_pass_through() {
        let text = GOOD.replace(
            "client_id: me",
            "client_id: me\n  tls: true\n  sasl: { mechanism: scram-sha-512, username: alice, password: secret }",
        );
        let c = parse(&text).unwrap();
        let sasl = c.upstream.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.username, "alice");
        assert_eq!(sasl.password, "secret");
        assert!(c.upstream.tls.is_some());
        assert!(c.local.tls.is_none());
    }

    #[test]
    fn topic_names_are_checked() {
        assert!(valid_topic("ztf-buffer_1.x"));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic(".."));
        assert!(!valid_topic(&"a".repeat(250)));
    }
}
