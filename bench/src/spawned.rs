//! A broker started as a separate process from a command template.
//!
//! The broker under test runs in its own process so its CPU time and peak
//! memory can be read from `/proc` apart from the load generator's. The
//! command is a template run by `sh -c "exec ..."` (so the process id we
//! hold *is* the broker's, and shell quoting works as users expect), with
//! `{port}`, `{host}` and `{data_dir}` replaced per run; it runs in the
//! bench's working directory, so relative paths work. Each run gets a
//! fresh temporary directory holding the broker's data (`data/`, created
//! empty before the broker starts) and its
//! combined output (`broker.log`, whose tail is quoted if it dies early).
//! Stopping sends SIGTERM (a graceful broker flushes and exits), waits, and
//! only then kills.
//!
//! A broker that needs a second port (Starlog's HTTP listener, for the schema
//! registry and `/metrics`) gets `{http_port}`, a free port per run; a
//! configuration file template (`with_config`) is filled in the same way and
//! written into the run's directory, its path replacing `{config}`.
//!
//! A target may also prepare each run's fresh data directory before the
//! broker starts (`with_prepare`: a secured Starlog's SCRAM user is written
//! there) and name the client properties its listener needs
//! (`with_client_config`).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::target::{BrokerTarget, RunningBroker};

/// Called with a run's data directory before its broker starts.
pub type PrepareDataDir = Arc<dyn Fn(&Path) -> Result<(), BenchError> + Send + Sync>;

/// Starts a broker process per run from a command template.
#[derive(Clone)]
pub struct CommandTarget {
    name: String,
    template: String,
    host: String,
    port: Option<u16>,
    data_root: PathBuf,
    /// A configuration file template written per run (see `with_config`).
    config: Option<String>,
    /// Run before each start (see `with_prepare`).
    prepare: Option<PrepareDataDir>,
    /// What clients need to reach its listener.
    client_config: Vec<(String, String)>,
    /// How long to wait for the port to accept connections.
    pub ready_timeout: Duration,
    /// How long to wait after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

impl CommandTarget {
    /// A target named `name` run from `template`, listening on `host` and
    /// `port` (a free port per run when `None`), data under `data_root`.
    pub fn new(
        name: impl Into<String>,
        template: impl Into<String>,
        host: impl Into<String>,
        port: Option<u16>,
        data_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            template: template.into(),
            host: host.into(),
            port,
            data_root: data_root.into(),
            config: None,
            prepare: None,
            client_config: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for CommandTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandTarget")
            .field("name", &self.name)
            .field("template", &self.template)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_root", &self.data_root)
            .field("config", &self.config)
            .field("prepare", &self.prepare.as_ref().map(|_| "<fn>"))
            // Values left out: they may hold a password.
            .field(
                "client_config",
                &self
                    .client_config
                    .iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>(),
            )
            .field("ready_timeout", &self.ready_timeout)
            .field("stop_timeout", &self.stop_timeout)
            .finish()
    }
}

impl CommandTarget {
    /// Calls `prepare` with each run's fresh, empty data directory before
    /// the broker starts (an error ends the start).
    #[must_use]
    pub fn with_prepare(mut self, prepare: PrepareDataDir) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// Clients reach its brokers with these properties (see
    /// `RunningBroker::client_config`).
    #[must_use]
    pub fn with_client_config(mut self, config: Vec<(String, String)>) -> Self {
        self.client_config = config;
        self
    }

    /// Writes `text` (with `{host}`, `{port}`, `{http_port}` and `{data_dir}`
    /// filled in) to `broker.yaml` in each run's directory; `{config}` in the
    /// command names that file.
    #[must_use]
    pub fn with_config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    fn needs_http_port(&self) -> bool {
        self.template.contains("{http_port}")
            || self
                .config
                .as_deref()
                .is_some_and(|c| c.contains("{http_port}"))
    }
}

/// Replaces `{port}`, `{host}` and `{data_dir}` in a command template.
pub fn expand(template: &str, host: &str, port: u16, data_dir: &Path) -> String {
    template
        .replace("{port}", &port.to_string())
        .replace("{host}", host)
        .replace("{data_dir}", &data_dir.display().to_string())
}

/// Splits `host:port` (the port must be a number; IPv6 hosts in brackets).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not host:port"))?;
    if host.is_empty() {
        return Err(format!("`{s}` has no host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{s}`: `{port}` is not a port number"))?;
    Ok((host.to_string(), port))
}

/// A port on 127.0.0.1 that was free a moment ago (the test kit's).
pub use starlog_testkit::try_free_port as free_port;

impl BrokerTarget for CommandTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError> {
        let fail = |command: &str, reason: String| BenchError::Process {
            command: command.to_string(),
            reason,
        };
        let port = match self.port {
            Some(p) => p,
            None => free_port().map_err(|e| fail(&self.template, format!("no free port: {e}")))?,
        };
        std::fs::create_dir_all(&self.data_root).map_err(|e| {
            fail(
                &self.template,
                format!("creating {}: {e}", self.data_root.display()),
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.name))
            .tempdir_in(&self.data_root)
            .map_err(|e| fail(&self.template, format!("temporary directory: {e}")))?;
        // Relative to the working directory when inside it, so reports name
        // no machine-specific absolute path.
        let cwd = std::env::current_dir().unwrap_or_default();
        let run_dir = dir.path().strip_prefix(&cwd).unwrap_or(dir.path());
        let data_dir = run_dir.join("data");
        // Created up front: some brokers (SQLite-backed ones) will not make it.
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            fail(
                &self.template,
                format!("creating {}: {e}", data_dir.display()),
            )
        })?;
        if let Some(prepare) = &self.prepare {
            prepare(&data_dir)?;
        }
        let http_port = if self.needs_http_port() {
            Some(free_port().map_err(|e| fail(&self.template, format!("no free port: {e}")))?)
        } else {
            None
        };
        let fill = |text: &str| {
            let text = expand(text, &self.host, port, &data_dir);
            match http_port {
                Some(h) => text.replace("{http_port}", &h.to_string()),
                None => text,
            }
        };
        let mut command = fill(&self.template);
        if let Some(config) = &self.config {
            let path = run_dir.join("broker.yaml");
            std::fs::write(&path, fill(config))
                .map_err(|e| fail(&self.template, format!("writing {}: {e}", path.display())))?;
            command = command.replace("{config}", &path.display().to_string());
        }
        let log_path = dir.path().join("broker.log");
        let log = File::create(&log_path)
            .map_err(|e| fail(&command, format!("creating {}: {e}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| fail(&command, format!("{}: {e}", log_path.display())))?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| fail(&command, format!("spawning: {e}")))?;
        let addr = format!("{}:{port}", self.host);
        let mut broker = SpawnedBroker {
            child,
            command,
            addr,
            http_addr: http_port.map(|h| format!("{}:{h}", self.host)),
            client_config: self.client_config.clone(),
            log_path,
            stop_timeout: self.stop_timeout,
            _dir: dir,
        };
        broker.wait_ready(self.ready_timeout)?;
        Ok(Box::new(broker))
    }
}

/// A broker process we started; killed on drop if still running.
pub struct SpawnedBroker {
    child: Child,
    command: String,
    addr: String,
    http_addr: Option<String>,
    client_config: Vec<(String, String)>,
    log_path: PathBuf,
    stop_timeout: Duration,
    /// Removed (with the broker's data) when the broker is dropped.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for SpawnedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnedBroker")
            .field("pid", &self.child.id())
            .field("command", &self.command)
            .field("addr", &self.addr)
            .field("http_addr", &self.http_addr)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl SpawnedBroker {
    /// The last `max` bytes of the broker's output.
    fn log_tail(&self, max: usize) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        let from = text.len().saturating_sub(max);
        String::from_utf8_lossy(&text[from..]).trim().to_string()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(self.addr.as_str())
            .map_err(|e| BenchError::Process {
                command: self.command.clone(),
                reason: format!("address {}: {e}", self.addr),
            })?
            .collect();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Process {
                    command: self.command.clone(),
                    reason: format!(
                        "exited ({status}) before accepting connections; its output ends with:\n{}",
                        self.log_tail(2000)
                    ),
                });
            }
            let up = addrs
                .iter()
                .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::NotListening {
                    command: self.command.clone(),
                    addr: self.addr.clone(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl RunningBroker for SpawnedBroker {
    fn bootstrap(&self) -> String {
        self.addr.clone()
    }

    fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    fn http_addr(&self) -> Option<String> {
        self.http_addr.clone()
    }

    fn client_config(&self) -> Vec<(String, String)> {
        self.client_config.clone()
    }

    fn describe(&self) -> String {
        self.command.clone()
    }

    fn stop(mut self: Box<Self>) -> Result<(), BenchError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(BenchError::Process {
                command: self.command.clone(),
                reason: format!(
                    "had already exited ({status}) before the run ended; its output ends with:\n{}",
                    self.log_tail(2000)
                ),
            });
        }
        // SIGTERM through kill(1): no unsafe libc call for one signal.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + self.stop_timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(command = %self.command, "no exit within {:?} of SIGTERM: killing", self.stop_timeout);
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:9093"),
            Ok(("127.0.0.1".into(), 9093))
        );
        assert_eq!(parse_host_port("[::1]:9093"), Ok(("[::1]".into(), 9093)));
        assert!(parse_host_port("127.0.0.1")
            .unwrap_err()
            .contains("not host:port"));
        assert!(parse_host_port(":9093").unwrap_err().contains("no host"));
        assert!(parse_host_port("h:99999")
            .unwrap_err()
            .contains("not a port"));
    }

    #[test]
    fn templates_expand() {
        let t = "tansu broker --listener-url tcp://{host}:{port} --storage-engine sqlite://{data_dir}/t.db";
        assert_eq!(
            expand(t, "127.0.0.1", 9093, Path::new("/d/x")),
            "tansu broker --listener-url tcp://127.0.0.1:9093 --storage-engine sqlite:///d/x/t.db"
        );
    }
}
