//! What every target renders the same way: a buffer's broker
//! configuration, the pipelines and mirrors as documents, and where
//! each in-broker chain runs.

use std::fmt::Write as _;

use serde_yaml::{Mapping, Value as Yaml};

use super::{Addressing, RenderError};
use crate::site::{KafkaBuffer, Placement, ProcessingNode, Site, Upstream};

/// The Kafka listener of containers for clients outside (compose's
/// published ports, Kubernetes' per-pod Services): the first of 9094,
/// 9095, ... that the buffer does not use for anything else.
pub(super) fn external_port(b: &KafkaBuffer) -> u16 {
    let l = &b.listeners;
    (9094..=u16::MAX)
        .find(|p| ![l.kafka, l.raft, l.http].contains(p))
        .unwrap_or(9094)
}

/// Who a broker file is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Instance {
    /// Instance `i`: its node id is written (`i + 1`).
    One(u16),
    /// Every instance of a StatefulSet: `node_id: auto` (the pod's host
    /// name `<buffer>-<i>` gives node `i + 1`).
    Auto,
}

/// Where a broker's external listener is advertised, by instance.
pub(super) type External<'a> = &'a dyn Fn(u16) -> (String, u16);

/// A YAML scalar quoted safely.
pub(super) fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The broker configuration of `b` (see [`Instance`]): listeners (one
/// internal, plus the external one containers have), data, retention, the
/// registry and HTTP, the in-broker pipelines (as the broker sees their
/// files), and the Raft peers named as `addressing` names them.
pub(super) fn broker_yaml(
    site: &Site,
    b: &KafkaBuffer,
    addressing: Addressing,
    instance: Instance,
    data_dir: &str,
    pipelines: &[String],
    external: Option<External<'_>>,
) -> String {
    let l = &b.listeners;
    let mut y = String::new();
    let who = match instance {
        Instance::One(i) => format!("instance {i} of {}", b.instances),
        Instance::Auto => format!("every instance of {}", b.instances),
    };
    let _ = writeln!(
        y,
        "# Rendered by `starlog deploy render` from site {}: buffer {}, {who}.",
        site.name, b.name
    );
    match instance {
        Instance::One(i) => {
            let _ = writeln!(y, "node_id: {}", i + 1);
        }
        Instance::Auto => {
            let _ = writeln!(
                y,
                "node_id: auto       # the pod's host name {}-N is node N + 1",
                b.name
            );
        }
    }
    let one = match instance {
        Instance::One(i) => Some(i),
        Instance::Auto => None,
    };
    let bind_ip = match addressing {
        Addressing::Local => l.host.clone(),
        _ => "0.0.0.0".to_owned(),
    };
    let listen_port = |i: u16| addressing.kafka_port(b, i);
    let advertised = |i: u16| format!("{}:{}", addressing.host(b, i), listen_port(i));
    match external {
        None => {
            let i = one.unwrap_or(0);
            let _ = writeln!(y, "listen: {}", q(&format!("{bind_ip}:{}", listen_port(i))));
            if addressing != Addressing::Local {
                let _ = writeln!(y, "advertised_host: {}", q(&addressing.host(b, i)));
            }
        }
        Some(ext) => {
            let _ = writeln!(y, "listeners:");
            let port = listen_port(one.unwrap_or(0));
            let xport = external_port(b);
            match one {
                Some(i) => {
                    let (xh, xp) = ext(i);
                    let _ = writeln!(
                        y,
                        "  - {{ name: INTERNAL, listen: {}, advertised: {} }}",
                        q(&format!("{bind_ip}:{port}")),
                        q(&advertised(i))
                    );
                    let _ = writeln!(
                        y,
                        "  - {{ name: EXTERNAL, listen: {}, advertised: {} }}",
                        q(&format!("{bind_ip}:{xport}")),
                        q(&format!("{xh}:{xp}"))
                    );
                }
                None => {
                    // A cluster advertises its peers' listeners (below).
                    let _ = writeln!(
                        y,
                        "  - {{ name: INTERNAL, listen: {} }}",
                        q(&format!("{bind_ip}:{port}"))
                    );
                    let _ = writeln!(
                        y,
                        "  - {{ name: EXTERNAL, listen: {} }}",
                        q(&format!("{bind_ip}:{xport}"))
                    );
                }
            }
        }
    }
    let _ = writeln!(y, "data_dir: {}", q(data_dir));
    let _ = writeln!(y, "cluster_id: {}", q(&b.name));
    let _ = writeln!(y, "log:");
    let _ = writeln!(y, "  retention_ms: {}", b.retention.ms);
    let _ = writeln!(y, "  retention_bytes: {}", b.retention.bytes);
    if let Some(flush) = &b.storage.flush {
        let _ = writeln!(y, "  flush: {flush}");
    }
    let http = q(&format!(
        "{bind_ip}:{}",
        addressing.http_port(b, one.unwrap_or(0))
    ));
    let _ = writeln!(
        y,
        "schema_registry: {{ enabled: {}, listen: {http} }}",
        b.registry
    );
    let _ = writeln!(y, "http: {{ enabled: true, listen: {http} }}");
    if !pipelines.is_empty() {
        let _ = writeln!(y, "pipelines:");
        for p in pipelines {
            let _ = writeln!(y, "  - {{ file: {} }}", q(p));
        }
    }
    if b.instances > 1 {
        let _ = writeln!(y, "cluster:");
        let _ = writeln!(y, "  default_replication_factor: {}", b.instances.min(3));
        let _ = writeln!(y, "  peers:");
        for p in 0..b.instances {
            let host = addressing.host(b, p);
            let raft = format!("{host}:{}", addressing.raft_port(b, p));
            let _ = write!(
                y,
                "    - {{ id: {}, host: {}, port: {}, raft: {}",
                p + 1,
                q(&host),
                listen_port(p),
                q(&raft)
            );
            if let Some(ext) = external {
                let (xh, xp) = ext(p);
                let _ = write!(
                    y,
                    ", listeners: [ {{ name: INTERNAL, host: {}, port: {} }}, {{ name: EXTERNAL, host: {}, port: {xp} }} ]",
                    q(&host),
                    listen_port(p),
                    q(&xh)
                );
            }
            let _ = writeln!(y, " }}");
        }
    }
    y
}

/// The in-broker nodes running on `b`.
pub(super) fn in_broker_nodes<'a>(site: &'a Site, b: &KafkaBuffer) -> Vec<&'a ProcessingNode> {
    site.nodes
        .iter()
        .filter(|n| n.buffer == b.name && n.placement == Placement::InBroker)
        .collect()
}

/// A node's pipeline document as text (its `type` set from the placement).
pub(super) fn pipeline_text(site: &Site, n: &ProcessingNode) -> Result<String, RenderError> {
    let doc = site.pipeline_document(n)?;
    super::yaml_text(
        &format!(
            "# Rendered by `starlog deploy render` from site {}: pipeline of processing node {}.\n",
            site.name, n.name
        ),
        &doc,
        &format!("the pipeline of {}", n.name),
    )
}

/// A mirror's document: its name, the upstream (a buffer of the site as
/// `addressing` reaches it, or the mapping given), the local buffer, its
/// rules.
pub(super) fn mirror_text(
    site: &Site,
    m: &crate::site::Mirror,
    addressing: Addressing,
) -> Result<String, RenderError> {
    let key = |k: &str| Yaml::String(k.to_owned());
    let endpoint = |name: &str| -> Result<Yaml, RenderError> {
        let b = buffer(site, name)?;
        let mut e = Mapping::new();
        e.insert(key("bootstrap"), Yaml::String(addressing.bootstrap(b)));
        if b.registry {
            let mut r = Mapping::new();
            r.insert(key("url"), Yaml::String(addressing.registry_url(b)));
            e.insert(key("registry"), Yaml::Mapping(r));
        }
        Ok(Yaml::Mapping(e))
    };
    let mut doc = Mapping::new();
    doc.insert(key("name"), Yaml::String(m.name.clone()));
    let upstream = match &m.upstream {
        Upstream::Buffer(b) => endpoint(b)?,
        Upstream::External(node) => node.clone(),
    };
    doc.insert(key("upstream"), upstream);
    doc.insert(key("local"), endpoint(&m.buffer)?);
    for (k, v) in &m.rules {
        doc.insert(k.clone(), v.clone());
    }
    super::yaml_text(
        &format!(
            "# Rendered by `starlog deploy render` from site {}: mirror {}.\n",
            site.name, m.name
        ),
        &Yaml::Mapping(doc),
        &format!("mirror {}", m.name),
    )
}

/// The buffer named `name` (the site was checked: it exists).
pub(super) fn buffer<'a>(site: &'a Site, name: &str) -> Result<&'a KafkaBuffer, RenderError> {
    site.buffer(name).ok_or_else(|| {
        RenderError::Site(crate::SiteError::Invalid {
            path: "components".into(),
            message: format!("no buffer {name:?}"),
        })
    })
}

/// The arguments of `starlog deploy topics` creating `b`'s topics through
/// `bootstrap`; `None` when the buffer lists none.
pub(super) fn topics_args(b: &KafkaBuffer, bootstrap: &str) -> Option<Vec<String>> {
    if b.topics.is_empty() {
        return None;
    }
    let mut args = vec![
        "deploy".to_owned(),
        "topics".into(),
        "--bootstrap".into(),
        bootstrap.to_owned(),
    ];
    for t in &b.topics {
        args.push("--topic".into());
        args.push(format!("{}:{}:{}", t.name, t.partitions, t.replication));
    }
    for t in &b.topics {
        for (k, v) in &t.configs {
            args.push("--config".into());
            args.push(format!("{}:{k}={v}", t.name));
        }
    }
    Some(args)
}
