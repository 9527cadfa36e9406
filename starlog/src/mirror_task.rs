//! Mirrors that run inside the broker (`mirrors:` in the broker YAML): the
//! broker's [`MirrorLauncher`] as the `starlog` binary implements it.
//!
//! Each entry names a `mirror.yaml` (relative paths resolve against the
//! broker config's folder). The mirror runs as a tokio task with the mirror
//! crate's engine, exactly as `starlog mirror` would, and its live counters
//! ([`MirrorStatus`], seen as the broker's [`MirrorCounters`]) are rendered
//! on `/metrics`. When the file has no
//! `local:` section, the mirror writes into this broker: its Kafka listener
//! and, when enabled, its schema registry. A run that ends with an error is
//! started again after a back-off (1 s doubling to 30 s); the checkpoint
//! makes the restart exact. The broker stops its mirrors first on shutdown,
//! while it still serves their last writes and checkpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use starlog_broker::extensions::{
    ExtensionError, LocalAddrs, MirrorCounters, MirrorCountersSource, MirrorLauncher,
    MirrorTopicCounters, PreparedTask, RunningTask,
};
use starlog_mirror::{ConfigError, MirrorConfig, MirrorStatus};
use tokio::sync::watch;

/// Why the configured mirrors cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MirrorTaskError {
    /// The file could not be read or is not YAML.
    #[error("mirror {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The mirror configuration is invalid.
    #[error("mirror {path}: {source}")]
    Config {
        /// The file.
        path: String,
        /// The fault, with its YAML path.
        source: ConfigError,
    },
}

/// Runs the broker's configured mirrors with the mirror engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirrors;

impl MirrorLauncher for Mirrors {
    fn prepare(
        &self,
        paths: &[PathBuf],
        base_dir: &Path,
    ) -> Result<Vec<PreparedTask>, ExtensionError> {
        Ok(prepare(paths, base_dir)?
            .into_iter()
            .map(|p| PreparedTask {
                name: p.name.clone(),
                counters: Arc::new(Counters(Arc::clone(&p.status))),
                start: Box::new(move |local: LocalAddrs| start(p, local)),
            })
            .collect())
    }
}

/// A mirror's live status as the broker's `/metrics` view.
#[derive(Debug)]
struct Counters(Arc<MirrorStatus>);

impl MirrorCountersSource for Counters {
    fn counters(&self) -> MirrorCounters {
        let v = self.0.view();
        MirrorCounters {
            running: v.running,
            runs: v.runs,
            checkpoints: v.checkpoints,
            topics: v
                .topics
                .into_iter()
                .map(|(topic, t)| {
                    let c = t.counts;
                    let counters = MirrorTopicCounters {
                        target: c.target,
                        read: c.read,
                        written: c.mirrored,
                        rewritten: c.rewritten,
                        passed_through: c.passed_through,
                        dead_lettered: c.dead_lettered,
                        skipped: c.skipped,
                        already_present: c.already_present,
                        value_bytes: c.bytes,
                        lag: t.lag,
                    };
                    (topic, counters)
                })
                .collect(),
        }
    }
}

/// A mirror whose configuration was read and checked.
#[derive(Debug)]
struct PreparedMirror {
    name: String,
    status: Arc<MirrorStatus>,
    path: PathBuf,
    yaml: serde_yaml::Value,
}

/// Reads and checks every configured mirror (before anything listens).
fn prepare(paths: &[PathBuf], base_dir: &Path) -> Result<Vec<PreparedMirror>, MirrorTaskError> {
    let mut out = Vec::new();
    for p in paths {
        let path = base_dir.join(p);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| MirrorTaskError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| MirrorTaskError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let placeholder = SocketAddr::from(([127, 0, 0, 1], 9092));
        let checked = config_for(
            &path,
            &yaml,
            &LocalAddrs {
                kafka: placeholder,
                registry: Some(placeholder),
                login: None,
            },
        )
        .map_err(|source| MirrorTaskError::Config {
            path: shown.clone(),
            source,
        })?;
        out.push(PreparedMirror {
            name: checked.name,
            status: Arc::new(MirrorStatus::default()),
            path,
            yaml,
        });
    }
    Ok(out)
}

/// The mirror configuration, with this broker as `local` when the file
/// names none.
fn config_for(
    path: &Path,
    yaml: &serde_yaml::Value,
    addrs: &LocalAddrs,
) -> Result<MirrorConfig, ConfigError> {
    let mut yaml = yaml.clone();
    if let serde_yaml::Value::Mapping(m) = &mut yaml {
        let key = serde_yaml::Value::from("local");
        if !m.contains_key(&key) {
            let mut local = serde_yaml::Mapping::new();
            local.insert("bootstrap".into(), addrs.kafka.to_string().into());
            // On a SASL listener the mirror logs in as the broker's own
            // principal (User:starlog-internal, this run's password).
            if let Some(login) = &addrs.login {
                let mut sasl = serde_yaml::Mapping::new();
                sasl.insert("mechanism".into(), login.mechanism.clone().into());
                sasl.insert("username".into(), login.username.clone().into());
                sasl.insert("password".into(), login.password.clone().into());
                local.insert("sasl".into(), sasl.into());
            }
            let registry = addrs.registry;
            if let Some(r) = registry {
                let mut reg = serde_yaml::Mapping::new();
                reg.insert("url".into(), format!("http://{r}").into());
                // The same login on the HTTP listener (registry writes are
                // checked against the ACLs like produce requests).
                if let Some(login) = &addrs.login {
                    reg.insert("username".into(), login.username.clone().into());
                    reg.insert("password".into(), login.password.clone().into());
                }
                local.insert("registry".into(), reg.into());
            }
            m.insert(key, local.into());
        }
    }
    let text = serde_yaml::to_string(&yaml).map_err(|e| ConfigError::Yaml {
        reason: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cfg = MirrorConfig::from_yaml(&text, base)?;
    cfg.progress = false;
    Ok(cfg)
}

/// Starts a mirror, writing into this broker at `addrs` (its Kafka
/// listener, login and registry) unless its file says otherwise. Stopping it lets it write
/// its last acknowledgements and checkpoint, then waits for the task.
fn start(p: PreparedMirror, addrs: LocalAddrs) -> RunningTask {
    let (stop, stopped) = watch::channel(false);
    let name = p.name.clone();
    let handle = tokio::spawn(run(p, addrs, stopped));
    let shown = name.clone();
    RunningTask {
        name,
        stop: Box::new(move || {
            Box::pin(async move {
                let _ = stop.send(true);
                if let Err(e) = handle.await {
                    tracing::error!(mirror = %shown, error = %e, "mirror task failed");
                }
            })
        }),
    }
}

async fn wait_stop(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

async fn run(p: PreparedMirror, addrs: LocalAddrs, stopped: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let cfg = match config_for(&p.path, &p.yaml, &addrs) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(mirror = %p.name, path = %p.path.display(), error = %e, "mirror configuration refused");
                return;
            }
        };
        tracing::info!(mirror = %p.name, "in-broker mirror starting");
        let outcome =
            starlog_mirror::run_with_status(cfg, wait_stop(stopped.clone()), Arc::clone(&p.status))
                .await;
        match outcome {
            Ok(summary) => {
                tracing::info!(mirror = %p.name, %summary, "in-broker mirror stopped");
                return;
            }
            Err(e) => {
                tracing::error!(mirror = %p.name, error = %e, retry_in = ?backoff, "in-broker mirror ended with an error");
            }
        }
        tokio::select! {
            () = wait_stop(stopped.clone()) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
