//! Renderers: a checked [`Site`] written out as the files of a real tool —
//! a docker-compose file ([`Target::Compose`]), Kubernetes manifests
//! ([`Target::Kubernetes`]) or systemd units ([`Target::Systemd`]).
//!
//! Every renderer returns a [`Rendered`] set of files (relative path →
//! text), written under the folder the user names; nothing is run. The
//! files are deterministic (no time, no absolute path of this machine), so
//! a rendering checked in can be compared with a fresh one.
//!
//! What the three share ([`broker`]): each buffer's broker configuration,
//! the pipelines as documents, the mirrors' documents, the addresses
//! components reach each other by. Each target names hosts its own way
//! ([`Addressing`]): compose services by name, Kubernetes pods by their
//! StatefulSet DNS names behind a headless Service, systemd units on one
//! machine with the local platform's ports (`port + instance`).
//!
//! `testdata` components read files from the researcher's checkout: the
//! compose rendering mounts them; Kubernetes and systemd leave them out
//! (listed in each rendering's header) — run `starlog testdata` against
//! the buffer there.

mod broker;
mod compose;
mod kubernetes;
mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::site::{KafkaBuffer, Site, SiteError};

/// What a site is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A docker-compose file and the configuration files it mounts.
    Compose,
    /// Kubernetes manifests (one multi-document YAML file).
    Kubernetes,
    /// systemd units, one per component instance, and their configuration.
    Systemd,
}

impl Target {
    /// The names used on the command line.
    pub const NAMES: [&'static str; 3] = ["compose", "kubernetes", "systemd"];

    /// Its name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Compose => "compose",
            Self::Kubernetes => "kubernetes",
            Self::Systemd => "systemd",
        }
    }

    /// Parses a name of [`Self::NAMES`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "compose" => Some(Self::Compose),
            "kubernetes" => Some(Self::Kubernetes),
            "systemd" => Some(Self::Systemd),
            _ => None,
        }
    }
}

/// Why a site could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The site's files (pipelines) could not be read.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// A document could not be written as YAML.
    #[error("cannot write {what} as YAML: {reason}")]
    Yaml {
        /// The document.
        what: String,
        /// The serializer's reason.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write {file}: {source}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// How a rendering is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The container image (compose, Kubernetes).
    pub image: String,
    /// Where the `starlog` executable is installed (systemd).
    pub starlog_bin: String,
    /// The folder the systemd rendering's configuration is installed in;
    /// the units name their files there.
    pub config_dir: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            image: format!("starlog:{}", env!("CARGO_PKG_VERSION")),
            starlog_bin: "/usr/local/bin/starlog".to_owned(),
            config_dir: "/etc/starlog".to_owned(),
        }
    }
}

/// The files of a rendering: path relative to the output folder → text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The files.
    pub files: BTreeMap<PathBuf, String>,
}

impl Rendered {
    fn add(&mut self, path: impl Into<PathBuf>, text: String) {
        self.files.insert(path.into(), text);
    }

    /// Writes every file under `out` (folders made as needed; files of
    /// the same name replaced, others left alone).
    ///
    /// # Errors
    /// A folder or file cannot be written.
    pub fn write(&self, out: &Path) -> Result<(), RenderError> {
        for (rel, text) in &self.files {
            let file = out.join(rel);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|source| RenderError::Write {
                    file: dir.to_owned(),
                    source,
                })?;
            }
            std::fs::write(&file, text).map_err(|source| RenderError::Write {
                file: file.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Renders `site` for `target`. `out` is the folder the files will be
/// written in (compose mounts the test-data files by their path relative
/// to it).
///
/// # Errors
/// A pipeline file cannot be read, or a document cannot be serialized.
pub fn render(
    site: &Site,
    target: Target,
    out: &Path,
    opts: &Options,
) -> Result<Rendered, RenderError> {
    match target {
        Target::Compose => compose::render(site, out, opts),
        Target::Kubernetes => kubernetes::render(site, opts),
        Target::Systemd => systemd::render(site, opts),
    }
}

/// How a target names a buffer's brokers and what ports they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressing {
    /// Compose services `<buffer>-<i>`, every container on the buffer's ports.
    Compose,
    /// StatefulSet pods `<buffer>-<i>.<buffer>-headless`, every pod on the
    /// buffer's ports.
    Kubernetes,
    /// One machine: the site's `listeners.host`, ports plus the instance.
    Local,
}

impl Addressing {
    /// The host instance `i` of `b` is reached at by the site's components.
    fn host(self, b: &KafkaBuffer, i: u16) -> String {
        match self {
            Self::Compose => format!("{}-{i}", b.name),
            Self::Kubernetes => format!("{}-{i}.{}", k8s_name(&b.name), headless(b)),
            Self::Local => b.listeners.host.clone(),
        }
    }

    fn kafka_port(self, b: &KafkaBuffer, i: u16) -> u16 {
        match self {
            Self::Local => b.listeners.kafka_port(i),
            _ => b.listeners.kafka,
        }
    }

    fn raft_port(self, b: &KafkaBuffer, i: u16) -> u16 {
        match self {
            Self::Local => b.listeners.raft_port(i),
            _ => b.listeners.raft,
        }
    }

    fn http_port(self, b: &KafkaBuffer, i: u16) -> u16 {
        match self {
            Self::Local => b.listeners.http_port(i),
            _ => b.listeners.http,
        }
    }

    /// The bootstrap list of a buffer for the site's components.
    fn bootstrap(self, b: &KafkaBuffer) -> String {
        match self {
            // The client Service spreads the first connection over the pods.
            Self::Kubernetes => format!("{}:{}", b.name, b.listeners.kafka),
            _ => (0..b.instances)
                .map(|i| format!("{}:{}", self.host(b, i), self.kafka_port(b, i)))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The registry URL of a buffer (its first broker's HTTP listener, or
    /// the client Service).
    fn registry_url(self, b: &KafkaBuffer) -> String {
        match self {
            Self::Kubernetes => format!("http://{}:{}", b.name, b.listeners.http),
            _ => format!("http://{}:{}", self.host(b, 0), self.http_port(b, 0)),
        }
    }
}

/// A Kubernetes name for a component (DNS-1123: lower case).
fn k8s_name(name: &str) -> String {
    name.to_lowercase()
}

/// The headless Service of a buffer's StatefulSet.
fn headless(b: &KafkaBuffer) -> String {
    format!("{}-headless", k8s_name(&b.name))
}

/// A YAML (or JSON) document as text; the header comment goes first.
fn yaml_text(header: &str, doc: &impl serde::Serialize, what: &str) -> Result<String, RenderError> {
    let body = serde_yaml::to_string(doc).map_err(|e| RenderError::Yaml {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(format!("{header}{body}"))
}

/// A `# ...` comment block, one line per entry.
fn comment(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| {
            if l.is_empty() {
                "#\n".to_owned()
            } else {
                format!("# {l}\n")
            }
        })
        .collect()
}

/// The components a target leaves out, as header lines.
fn left_out(site: &Site, target: Target) -> Vec<String> {
    if target == Target::Compose || site.testdata.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "Left out (test data is read from a checkout; run `starlog testdata` against the buffer):"
    )];
    for t in &site.testdata {
        lines.push(format!(
            "  testdata {} (buffer {}, topic {})",
            t.name, t.buffer, t.topic
        ));
    }
    lines
}

/// `path` relative to the folder `base` (both made absolute against the
/// current directory), as compose wants its bind mounts.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        // Lexically drop `.` and fold `..` (the paths need not exist).
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    };
    let (path, base) = (abs(path), abs(base));
    let common = path
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in base.components().skip(common) {
        rel.push("..");
    }
    for c in path.components().skip(common) {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let r = relative_to(
            Path::new("/a/repo/testdata/ztf"),
            Path::new("/a/repo/deploy/rendered/compose"),
        );
        assert_eq!(r, PathBuf::from("../../../testdata/ztf"));
        let r = relative_to(
            Path::new("/a/repo/examples/../testdata/x"),
            Path::new("/a/repo/out"),
        );
        assert_eq!(r, PathBuf::from("../testdata/x"));
        assert_eq!(
            relative_to(Path::new("/a"), Path::new("/a")),
            PathBuf::from(".")
        );
    }

    #[test]
    fn target_names_round_trip() {
        for name in Target::NAMES {
            assert_eq!(Target::from_name(name).map(Target::name), Some(name));
        }
        assert_eq!(Target::from_name("nomad"), None);
    }
}
