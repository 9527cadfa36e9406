//! What the local platform runs for a site: one [`ProcessSpec`] per
//! component instance, with the files it reads (broker YAMLs forming each
//! buffer's Raft cluster, mirror YAMLs, inline pipelines) written under the
//! run folder's `config/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value as Yaml};

use super::SupervisorError;
use crate::site::{
    AlertFiles, KafkaBuffer, PipelineSource, Placement, ProcessingNode, Site, Upstream,
};

/// What kind of process an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessKind {
    /// `starlog serve`: one broker of a buffer.
    Broker,
    /// `starlog mirror`.
    Mirror,
    /// `starlog process`: one instance of a processing node.
    Node,
    /// `starlog testdata`: runs once; restarted only when it fails.
    Testdata,
}

/// One process to run and keep running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// `<component>-<instance>`: names its log file and its status line.
    pub name: String,
    /// The site component it belongs to.
    pub component: String,
    /// Its ordinal among the component's instances.
    pub instance: u16,
    /// What it is.
    pub kind: ProcessKind,
    /// Arguments after the `starlog` executable.
    pub args: Vec<String>,
    /// Addresses it serves (brokers: Kafka and HTTP).
    pub addresses: Vec<String>,
}

/// The processes of a site and the buffers' bootstrap lists.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The site.
    pub site: Site,
    /// The run folder (absolute).
    pub state_dir: PathBuf,
    /// Every process, brokers first (the start order).
    pub processes: Vec<ProcessSpec>,
}

impl Plan {
    /// The bootstrap list of a buffer on the local platform.
    #[must_use]
    pub fn bootstrap(buffer: &KafkaBuffer) -> String {
        (0..buffer.instances)
            .map(|i| {
                format!(
                    "{}:{}",
                    buffer.listeners.host,
                    buffer.listeners.kafka_port(i)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The registry URL of a buffer (its first instance's HTTP listener).
    #[must_use]
    pub fn registry_url(buffer: &KafkaBuffer) -> String {
        format!(
            "http://{}:{}",
            buffer.listeners.host,
            buffer.listeners.http_port(0)
        )
    }

    /// The log file of a process.
    #[must_use]
    pub fn log_file(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join("logs").join(format!("{name}.log"))
    }

    /// Writes the generated files under `state_dir/config` and lists the
    /// processes. `testdata_dir` is where the shipped samples are.
    ///
    /// # Errors
    /// A file cannot be written, or a pipeline file cannot be read.
    pub fn write(site: &Site, state_dir: &Path) -> Result<Plan, SupervisorError> {
        let io = |what: &Path, e: std::io::Error| SupervisorError::Io {
            what: what.display().to_string(),
            source: e,
        };
        let config = state_dir.join("config");
        for dir in [
            config.clone(),
            state_dir.join("logs"),
            state_dir.join("data"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        let base_dir = absolute(&site.base_dir);
        let mut processes = Vec::new();
        // Pipelines: a file is used where it is (its relative paths stay
        // right); an inline one is written out.
        let mut pipeline_files = Vec::new();
        for n in &site.nodes {
            let file = match &n.pipeline {
                PipelineSource::File(f) => base_dir.join(f),
                PipelineSource::Inline(_) => {
                    let doc = site.pipeline_document(n)?;
                    let file = config.join(format!("{}.pipeline.yaml", n.name));
                    write_yaml(
                        &file,
                        &doc,
                        &format!("pipeline of processing node {}", n.name),
                    )?;
                    file
                }
            };
            pipeline_files.push((n, file));
        }
        for b in &site.buffers {
            let in_broker: Vec<&PathBuf> = pipeline_files
                .iter()
                .filter(|(n, _)| n.buffer == b.name && n.placement == Placement::InBroker)
                .map(|(_, f)| f)
                .collect();
            let data = b.storage.data_dir.as_ref().map_or_else(
                || state_dir.join("data").join(&b.name),
                |d| state_dir.join(d),
            );
            for i in 0..b.instances {
                let name = format!("{}-{i}", b.name);
                let file = config.join(format!("{name}.yaml"));
                let text = broker_yaml(b, i, &data.join(i.to_string()), &in_broker);
                std::fs::write(&file, text).map_err(|e| io(&file, e))?;
                let h = &b.listeners.host;
                processes.push(ProcessSpec {
                    name,
                    component: b.name.clone(),
                    instance: i,
                    kind: ProcessKind::Broker,
                    args: vec!["serve".into(), "--config".into(), path_arg(&file)],
                    addresses: vec![
                        format!("kafka {h}:{}", b.listeners.kafka_port(i)),
                        format!("http {h}:{}", b.listeners.http_port(i)),
                    ],
                });
            }
        }
        for m in &site.mirrors {
            let doc = mirror_document(site, m)?;
            let file = config.join(format!("{}.mirror.yaml", m.name));
            write_yaml(&file, &doc, &format!("mirror {}", m.name))?;
            processes.push(ProcessSpec {
                name: format!("{}-0", m.name),
                component: m.name.clone(),
                instance: 0,
                kind: ProcessKind::Mirror,
                args: vec!["mirror".into(), path_arg(&file), "--no-progress".into()],
                addresses: Vec::new(),
            });
        }
        for (n, file) in &pipeline_files {
            let Placement::Standalone { instances } = n.placement else {
                continue;
            };
            let bootstrap = buffer_of(site, &n.buffer).map(Plan::bootstrap)?;
            for i in 0..instances {
                processes.push(ProcessSpec {
                    name: format!("{}-{i}", n.name),
                    component: n.name.clone(),
                    instance: i,
                    kind: ProcessKind::Node,
                    args: vec![
                        "process".into(),
                        path_arg(file),
                        "--bootstrap".into(),
                        bootstrap.clone(),
                    ],
                    addresses: Vec::new(),
                });
            }
        }
        for t in &site.testdata {
            let b = buffer_of(site, &t.buffer)?;
            let mut args = vec![
                "testdata".to_owned(),
                "--bootstrap".into(),
                Plan::bootstrap(b),
                "--topic".into(),
                t.topic.clone(),
                "--framing".into(),
                t.framing.name().into(),
                "--no-progress".into(),
            ];
            match &t.files {
                AlertFiles::Samples(set) => {
                    let dir = crate::testdata::find_testdata_dir(&base_dir).ok_or_else(|| {
                        SupervisorError::Site(crate::SiteError::Invalid {
                            path: format!(
                                "{}.samples",
                                site.component_path(&t.name).unwrap_or("components")
                            ),
                            message: format!(
                                "no testdata/ folder (with manifest.csv) above {}: use `files:`",
                                base_dir.display()
                            ),
                        })
                    })?;
                    args.push("--files".into());
                    args.push(path_arg(&dir.join(set.folder())));
                }
                AlertFiles::Paths(paths) => {
                    for p in paths {
                        args.push("--files".into());
                        args.push(path_arg(&absolute(p)));
                    }
                }
            }
            if let Some(rate) = t.rate {
                args.extend(["--rate".into(), rate.to_string()]);
            }
            if let Some(count) = t.count {
                args.extend(["--count".into(), count.to_string()]);
            }
            if b.registry {
                args.extend(["--registry".into(), Plan::registry_url(b)]);
            }
            if let Some(subject) = &t.subject {
                args.extend(["--subject".into(), subject.clone()]);
            }
            if let Some(schema) = &t.schema {
                args.extend(["--schema-name".into(), schema.name.clone()]);
                for f in &schema.files {
                    args.extend(["--schema-file".into(), path_arg(&absolute(f))]);
                }
            }
            processes.push(ProcessSpec {
                name: format!("{}-0", t.name),
                component: t.name.clone(),
                instance: 0,
                kind: ProcessKind::Testdata,
                args,
                addresses: Vec::new(),
            });
        }
        Ok(Plan {
            site: site.clone(),
            state_dir: state_dir.to_owned(),
            processes,
        })
    }
}

fn buffer_of<'a>(site: &'a Site, name: &str) -> Result<&'a KafkaBuffer, SupervisorError> {
    site.buffer(name).ok_or_else(|| {
        SupervisorError::Site(crate::SiteError::Invalid {
            path: "components".into(),
            message: format!("no buffer {name:?}"),
        })
    })
}

/// An absolute path (relative ones against the current directory).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

fn write_yaml(file: &Path, doc: &Yaml, what: &str) -> Result<(), SupervisorError> {
    let text = serde_yaml::to_string(doc).map_err(|e| SupervisorError::Io {
        what: format!("{what} as YAML"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let text = format!("# Written by `starlog deploy up`: {what}.\n{text}");
    std::fs::write(file, text).map_err(|e| SupervisorError::Io {
        what: file.display().to_string(),
        source: e,
    })
}

/// A YAML scalar quoted safely.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The broker YAML of instance `i` of a buffer.
fn broker_yaml(b: &KafkaBuffer, i: u16, data: &Path, pipelines: &[&PathBuf]) -> String {
    let l = &b.listeners;
    let h = &l.host;
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Written by `starlog deploy up`: buffer {}, instance {i} of {}.",
        b.name, b.instances
    );
    let _ = writeln!(y, "node_id: {}", i + 1);
    let _ = writeln!(y, "listen: {}", q(&format!("{h}:{}", l.kafka_port(i))));
    let _ = writeln!(y, "data_dir: {}", q(&data.display().to_string()));
    let _ = writeln!(y, "cluster_id: {}", q(&b.name));
    let _ = writeln!(y, "log:");
    let _ = writeln!(y, "  retention_ms: {}", b.retention.ms);
    let _ = writeln!(y, "  retention_bytes: {}", b.retention.bytes);
    if let Some(flush) = &b.storage.flush {
        let _ = writeln!(y, "  flush: {flush}");
    }
    let http = q(&format!("{h}:{}", l.http_port(i)));
    let _ = writeln!(
        y,
        "schema_registry: {{ enabled: {}, listen: {http} }}",
        b.registry
    );
    let _ = writeln!(y, "http: {{ enabled: true, listen: {http} }}");
    if !pipelines.is_empty() {
        let _ = writeln!(y, "pipelines:");
        for p in pipelines {
            let _ = writeln!(y, "  - {{ file: {} }}", q(&p.display().to_string()));
        }
    }
    if b.instances > 1 {
        let _ = writeln!(y, "cluster:");
        let _ = writeln!(y, "  default_replication_factor: {}", b.instances.min(3));
        let _ = writeln!(y, "  peers:");
        for p in 0..b.instances {
            let _ = writeln!(
                y,
                "    - {{ id: {}, host: {}, port: {}, raft: {} }}",
                p + 1,
                q(h),
                l.kafka_port(p),
                q(&format!("{h}:{}", l.raft_port(p)))
            );
        }
    }
    y
}

/// The mirror YAML of a mirror component: its name, the upstream (a
/// buffer of the site or the given mapping), the local buffer, the rules.
pub fn mirror_document(site: &Site, m: &crate::site::Mirror) -> Result<Yaml, SupervisorError> {
    let key = |k: &str| Yaml::String(k.to_owned());
    let endpoint = |b: &KafkaBuffer| {
        let mut e = Mapping::new();
        e.insert(key("bootstrap"), Yaml::String(Plan::bootstrap(b)));
        if b.registry {
            let mut r = Mapping::new();
            r.insert(key("url"), Yaml::String(Plan::registry_url(b)));
            e.insert(key("registry"), Yaml::Mapping(r));
        }
        Yaml::Mapping(e)
    };
    let mut doc = Mapping::new();
    doc.insert(key("name"), Yaml::String(m.name.clone()));
    let upstream = match &m.upstream {
        Upstream::Buffer(b) => endpoint(buffer_of(site, b)?),
        Upstream::External(node) => node.clone(),
    };
    doc.insert(key("upstream"), upstream);
    doc.insert(key("local"), endpoint(buffer_of(site, &m.buffer)?));
    for (k, v) in &m.rules {
        doc.insert(k.clone(), v.clone());
    }
    Ok(Yaml::Mapping(doc))
}

/// The bootstrap of a node's buffer (for tests and status).
#[must_use]
pub fn node_bootstrap(site: &Site, node: &ProcessingNode) -> Option<String> {
    site.buffer(&node.buffer).map(Plan::bootstrap)
}
