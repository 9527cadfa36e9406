//! YAML → [`Site`]: every key read through [`Params`], so an unknown key,
//! a wrong type or a missing value is an error naming its YAML path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;
use starlog_processors::config::params::expected;
use starlog_processors::config::Params;

use super::model::{
    AlertFiles, Framing, KafkaBuffer, Listeners, Mirror, NamedSchema, PipelineSource, Placement,
    ProcessingNode, Retention, SampleSet, Storage, TestData, TopicSpec, Upstream,
};
use super::{Site, SiteError};

/// The component types a site may hold.
pub const COMPONENT_TYPES: [&str; 4] = ["kafka-buffer", "processing-node", "mirror", "testdata"];

fn invalid(path: impl Into<String>, message: impl Into<String>) -> SiteError {
    SiteError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// A component or site name: letters, digits, `-` (it becomes part of
/// file names, host names and Kubernetes object names).
fn check_name(path: &str, name: &str) -> Result<(), SiteError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "{name:?} is not a valid name: use 1 to 40 lower-case letters, digits and '-', \
                 not starting or ending with '-'"
            ),
        ))
    }
}

fn required_name(p: &mut Params<'_>, key: &str) -> Result<String, SiteError> {
    let name = p.required_str(key, "a name")?;
    check_name(&p.path_of(key), &name)?;
    Ok(name)
}

fn u16_in(
    p: &mut Params<'_>,
    key: &str,
    what: &str,
    default: u16,
    min: u16,
) -> Result<u16, SiteError> {
    let v = p.optional_u64(key, what, u64::from(default))?;
    match u16::try_from(v) {
        Ok(v) if v >= min => Ok(v),
        _ => Err(invalid(
            p.path_of(key),
            format!("expected {what} from {min} to {}, found {v}", u16::MAX),
        )),
    }
}

fn i64_or_minus_one(p: &mut Params<'_>, key: &str, default: i64) -> Result<i64, SiteError> {
    let path = p.path_of(key);
    match p.get(key) {
        None => Ok(default),
        Some(v @ Yaml::Number(n)) => match n.as_i64() {
            Some(x) if x >= -1 => Ok(x),
            _ => Err(expected(&path, "a non-negative integer or -1", v).into()),
        },
        Some(other) => Err(expected(&path, "a non-negative integer or -1", other).into()),
    }
}

/// Parses the document (already YAML) into a site, without cross-checks.
pub(super) fn site(doc: &Yaml, base_dir: &Path) -> Result<Site, SiteError> {
    let mut top = Params::new("", Some(doc), base_dir)?;
    if !doc.is_mapping() {
        return Err(expected("(document)", "a mapping with name and components", doc).into());
    }
    let name = required_name(&mut top, "name")?;
    let components_path = top.path_of("components");
    let Some(components) = top.get("components") else {
        return Err(invalid(
            components_path,
            "missing, expected a list of components",
        ));
    };
    top.finish()?;
    let Yaml::Sequence(items) = components else {
        return Err(expected(&components_path, "a list of components", components).into());
    };
    let mut site = Site {
        name,
        base_dir: base_dir.to_owned(),
        buffers: Vec::new(),
        nodes: Vec::new(),
        mirrors: Vec::new(),
        testdata: Vec::new(),
        paths: std::collections::BTreeMap::new(),
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("components[{i}]");
        if !item.is_mapping() {
            return Err(expected(&path, "a component mapping with a type", item).into());
        }
        let mut c = Params::new(path.clone(), Some(item), base_dir)?;
        let kind = c.choice("type", &COMPONENT_TYPES, None)?;
        known_keys(&path, item, &kind)?;
        let name = match kind.as_str() {
            "kafka-buffer" => {
                site.buffers.push(buffer(&mut c)?);
                site.buffers.last().map(|b| b.name.clone())
            }
            "processing-node" => {
                site.nodes.push(node(&mut c, base_dir)?);
                site.nodes.last().map(|n| n.name.clone())
            }
            "mirror" => {
                site.mirrors.push(mirror(&mut c)?);
                site.mirrors.last().map(|m| m.name.clone())
            }
            _ => {
                site.testdata.push(testdata(&mut c, base_dir)?);
                site.testdata.last().map(|t| t.name.clone())
            }
        };
        c.finish()?;
        let name = name.unwrap_or_default();
        if let Some(first) = site.paths.get(&name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("{name:?} is already the name of {first}"),
            ));
        }
        site.paths.insert(name, path);
    }
    Ok(site)
}

/// Unknown keys first: a misspelt key is reported as such rather than as
/// the fault its default value causes later.
fn known_keys(path: &str, item: &Yaml, kind: &str) -> Result<(), SiteError> {
    let known: &[&str] = match kind {
        "kafka-buffer" => &[
            "type",
            "name",
            "instances",
            "listeners",
            "storage",
            "retention",
            "topics",
            "registry",
        ],
        "processing-node" => &[
            "type",
            "name",
            "buffer",
            "placement",
            "instances",
            "pipeline",
        ],
        "mirror" => &["type", "name", "upstream", "buffer", "rules"],
        _ => &[
            "type", "name", "buffer", "topic", "samples", "files", "framing", "rate", "count",
            "subject", "schema",
        ],
    };
    if let Yaml::Mapping(m) = item {
        for k in m.keys() {
            let name = k.as_str().unwrap_or("");
            if !known.contains(&name) {
                let mut sorted = known.to_vec();
                sorted.sort_unstable();
                return Err(invalid(
                    format!(
                        "{path}.{}",
                        serde_yaml::to_string(k).unwrap_or_default().trim()
                    ),
                    format!("unknown key for a {kind} (known: {})", sorted.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

fn buffer(c: &mut Params<'_>) -> Result<KafkaBuffer, SiteError> {
    let base_dir = c.base_dir();
    let name = required_name(c, "name")?;
    let instances = u16_in(c, "instances", "a number of brokers", 1, 1)?;
    let listeners = {
        let node = c.get("listeners");
        let mut l = Params::new(c.path_of("listeners"), node, base_dir)?;
        let d = Listeners::default();
        let host = l
            .optional_str("host", "a host name or IP")?
            .unwrap_or(d.host);
        let kafka = u16_in(&mut l, "kafka", "a port", d.kafka, 1)?;
        let raft = u16_in(&mut l, "raft", "a port", d.raft, 1)?;
        let http = u16_in(&mut l, "http", "a port", d.http, 1)?;
        l.finish()?;
        Listeners {
            host,
            kafka,
            raft,
            http,
        }
    };
    let storage = {
        let node = c.get("storage");
        let mut s = Params::new(c.path_of("storage"), node, base_dir)?;
        let data_dir = s.optional_str("data_dir", "a folder")?.map(PathBuf::from);
        let size = s.optional_str("size", "a volume size such as 10Gi")?;
        let flush_path = s.path_of("flush");
        let flush = match s.get("flush") {
            None => None,
            Some(Yaml::String(v)) if v == "always" || v == "never" => Some(v.clone()),
            Some(Yaml::Number(n)) if n.as_u64().is_some() => Some(n.to_string()),
            Some(other) => {
                return Err(expected(&flush_path, "always, never or milliseconds", other).into())
            }
        };
        s.finish()?;
        Storage {
            data_dir,
            size,
            flush,
        }
    };
    let retention = {
        let node = c.get("retention");
        let mut r = Params::new(c.path_of("retention"), node, base_dir)?;
        let d = Retention::default();
        let ms = i64_or_minus_one(&mut r, "ms", d.ms)?;
        let bytes = i64_or_minus_one(&mut r, "bytes", d.bytes)?;
        r.finish()?;
        Retention { ms, bytes }
    };
    let registry = c.optional_bool("registry", true)?;
    let topics_path = c.path_of("topics");
    let topics = match c.get("topics") {
        None => Vec::new(),
        Some(Yaml::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| topic(&format!("{topics_path}[{i}]"), t, base_dir, instances))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(expected(&topics_path, "a list of topics", other).into()),
    };
    Ok(KafkaBuffer {
        name,
        instances,
        listeners,
        storage,
        retention,
        topics,
        registry,
    })
}

fn topic(path: &str, node: &Yaml, base_dir: &Path, instances: u16) -> Result<TopicSpec, SiteError> {
    if !node.is_mapping() {
        return Err(expected(path, "a topic mapping with a name", node).into());
    }
    let mut t = Params::new(path, Some(node), base_dir)?;
    let name = t.required_str("name", "a topic name")?;
    let valid = name.len() <= 249
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid || name == "." || name == ".." {
        return Err(invalid(
            t.path_of("name"),
            format!("{name:?} is not a Kafka topic name (letters, digits, '.', '_', '-')"),
        ));
    }
    let partitions = t.optional_u64("partitions", "a number of partitions", 1)?;
    let partitions = match u32::try_from(partitions) {
        Ok(p) if (1..=10_000).contains(&p) => p,
        _ => {
            return Err(invalid(
                t.path_of("partitions"),
                format!("expected 1 to 10000 partitions, found {partitions}"),
            ))
        }
    };
    let replication = u16_in(
        &mut t,
        "replication",
        "a replication factor",
        instances.min(3),
        1,
    )?;
    if replication > instances {
        return Err(invalid(
            t.path_of("replication"),
            format!(
                "replication {replication} is above the buffer's {instances} instance{}",
                if instances == 1 { "" } else { "s" }
            ),
        ));
    }
    let configs_path = t.path_of("configs");
    let configs = match t.get("configs") {
        None => BTreeMap::new(),
        Some(Yaml::Mapping(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    return Err(expected(&configs_path, "config names as strings", k).into());
                };
                let at = format!("{configs_path}.{k}");
                let v = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(expected(&at, "a string or number", other).into()),
                };
                out.insert(k.to_owned(), v);
            }
            out
        }
        Some(other) => {
            return Err(expected(&configs_path, "a mapping of topic configs", other).into())
        }
    };
    t.finish()?;
    Ok(TopicSpec {
        name,
        partitions,
        replication,
        configs,
    })
}

fn node(c: &mut Params<'_>, base_dir: &Path) -> Result<ProcessingNode, SiteError> {
    let name = required_name(c, "name")?;
    let buffer = c.required_str("buffer", "the name of a kafka-buffer component")?;
    let placement_path = c.path_of("placement");
    let placement = c.choice(
        "placement",
        &["standalone", "in-broker"],
        Some("standalone"),
    )?;
    let instances_path = c.path_of("instances");
    let has_instances = c.get("instances").is_some();
    let placement = if placement == "in-broker" {
        if has_instances {
            return Err(invalid(
                instances_path,
                "an in-broker chain runs in the buffer's brokers: leave `instances` out",
            ));
        }
        Placement::InBroker
    } else {
        Placement::Standalone {
            instances: u16_in(c, "instances", "a number of node processes", 1, 1)?,
        }
    };
    let _ = placement_path;
    let pipeline_path = c.path_of("pipeline");
    let Some(pipeline) = c.get("pipeline") else {
        return Err(invalid(
            pipeline_path,
            "missing, expected { file: pipeline.yaml } or the pipeline's component mapping",
        ));
    };
    let (pipeline, source_topic) = pipeline_source(&pipeline_path, pipeline, base_dir)?;
    Ok(ProcessingNode {
        name,
        buffer,
        placement,
        pipeline,
        source_topic,
    })
}

/// The pipeline of a node, and the topic it reads (`source.topic`).
fn pipeline_source(
    path: &str,
    node: &Yaml,
    base_dir: &Path,
) -> Result<(PipelineSource, String), SiteError> {
    let Yaml::Mapping(map) = node else {
        return Err(expected(path, "{ file: pipeline.yaml } or a component mapping", node).into());
    };
    let file_key = Yaml::String("file".to_owned());
    if map.contains_key(&file_key) {
        let mut p = Params::new(path, Some(node), base_dir)?;
        let file = p.required_str("file", "a pipeline file")?;
        p.finish()?;
        let resolved = base_dir.join(&file);
        let text = std::fs::read_to_string(&resolved).map_err(|e| {
            invalid(
                format!("{path}.file"),
                format!("cannot read {}: {e}", resolved.display()),
            )
        })?;
        let doc: Yaml = serde_yaml::from_str(&text).map_err(|e| SiteError::Syntax {
            origin: resolved.display().to_string(),
            reason: e.to_string(),
        })?;
        let component = doc.get("component").unwrap_or(&doc);
        let topic = component
            .get("source")
            .and_then(|s| s.get("topic"))
            .and_then(Yaml::as_str)
            .ok_or_else(|| {
                invalid(
                    format!("{path}.file"),
                    format!("{}: component.source.topic: missing", resolved.display()),
                )
            })?;
        Ok((PipelineSource::File(PathBuf::from(file)), topic.to_owned()))
    } else {
        let topic = node
            .get("source")
            .and_then(|s| s.get("topic"))
            .and_then(Yaml::as_str)
            .ok_or_else(|| invalid(format!("{path}.source.topic"), "missing, expected a topic"))?;
        Ok((PipelineSource::Inline(node.clone()), topic.to_owned()))
    }
}

fn mirror(c: &mut Params<'_>) -> Result<Mirror, SiteError> {
    let base_dir = c.base_dir();
    let name = required_name(c, "name")?;
    let buffer = c.required_str("buffer", "the name of the kafka-buffer it writes into")?;
    let upstream_path = c.path_of("upstream");
    let upstream = match c.get("upstream") {
        None => {
            return Err(invalid(
                upstream_path,
                "missing, expected { buffer: NAME } or { bootstrap: HOST:PORT, ... }",
            ))
        }
        Some(node @ Yaml::Mapping(m)) => {
            if m.contains_key(Yaml::String("buffer".to_owned())) {
                let mut u = Params::new(upstream_path, Some(node), base_dir)?;
                let b = u.required_str("buffer", "the name of a kafka-buffer component")?;
                u.finish()?;
                Upstream::Buffer(b)
            } else if m.contains_key(Yaml::String("bootstrap".to_owned())) {
                Upstream::External(node.clone())
            } else {
                return Err(invalid(
                    upstream_path,
                    "expected { buffer: NAME } (a buffer of this site) or the mirror's upstream mapping with a bootstrap",
                ));
            }
        }
        Some(other) => return Err(expected(&upstream_path, "a mapping", other).into()),
    };
    let rules_path = c.path_of("rules");
    let rules = match c.get("rules") {
        Some(Yaml::Mapping(m)) => m.clone(),
        None => {
            return Err(invalid(
                rules_path,
                "missing, expected the mirror's rules (topics, start, bad_input, ...)",
            ))
        }
        Some(other) => return Err(expected(&rules_path, "a mapping", other).into()),
    };
    for reserved in ["name", "upstream", "local"] {
        if rules.contains_key(Yaml::String(reserved.to_owned())) {
            return Err(invalid(
                format!("{rules_path}.{reserved}"),
                "set by the site (the component's name, upstream and buffer): leave it out",
            ));
        }
    }
    if !rules.contains_key(Yaml::String("topics".to_owned())) {
        return Err(invalid(
            format!("{rules_path}.topics"),
            "missing, expected the topic rules (match, target, ...)",
        ));
    }
    Ok(Mirror {
        name,
        upstream,
        buffer,
        rules,
    })
}

fn testdata(c: &mut Params<'_>, base_dir: &Path) -> Result<TestData, SiteError> {
    let name = required_name(c, "name")?;
    let buffer = c.required_str("buffer", "the name of a kafka-buffer component")?;
    let topic = c.required_str("topic", "a topic name")?;
    let samples_path = c.path_of("samples");
    let samples = c.choice("samples", &["ztf", "lsst"], Some(""));
    let files = c.optional_str_list("files", "file or folder paths")?;
    let files = match (samples, files) {
        (Ok(s), None) if s.is_empty() => {
            return Err(invalid(
                samples_path,
                "missing: name `samples: ztf | lsst` or `files: [folder, ...]`",
            ))
        }
        (Ok(s), Some(_)) if !s.is_empty() => {
            return Err(invalid(
                samples_path,
                "give either samples or files, not both",
            ))
        }
        (Ok(s), None) => AlertFiles::Samples(if s == "ztf" {
            SampleSet::Ztf
        } else {
            SampleSet::Lsst
        }),
        (Ok(_), Some(paths)) => {
            AlertFiles::Paths(paths.into_iter().map(|p| base_dir.join(p)).collect())
        }
        (Err(e), _) => return Err(e.into()),
    };
    let framing = c.choice("framing", &Framing::NAMES, Some("ocf"))?;
    let framing = Framing::from_name(&framing).unwrap_or(Framing::Ocf);
    let rate = c.optional_f64("rate", "messages per second")?;
    if let Some(r) = rate {
        if r <= 0.0 {
            return Err(invalid(
                c.path_of("rate"),
                format!(
                    "expected messages per second above 0, found {r} (leave it out for flat out)"
                ),
            ));
        }
    }
    let count_path = c.path_of("count");
    let count = match c.get("count") {
        None => None,
        Some(v @ Yaml::Number(n)) => Some(
            n.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| expected(&count_path, "a positive number of messages", v))?,
        ),
        Some(other) => return Err(expected(&count_path, "a number of messages", other).into()),
    };
    let subject = c.optional_str("subject", "a registry subject")?;
    let schema_path = c.path_of("schema");
    let schema = match c.get("schema") {
        None => None,
        Some(node) => {
            let mut s = Params::new(schema_path.clone(), Some(node), base_dir)?;
            let name = s.required_str("name", "the schema's full name, e.g. ztf.alert")?;
            let files = s
                .optional_str_list("files", ".avsc files")?
                .ok_or_else(|| {
                    invalid(
                        format!("{schema_path}.files"),
                        "missing, expected a list of .avsc files",
                    )
                })?;
            s.finish()?;
            Some(NamedSchema {
                name,
                files: files.into_iter().map(|f| base_dir.join(f)).collect(),
            })
        }
    };
    if framing == Framing::Schemaless && schema.is_none() {
        return Err(invalid(
            schema_path,
            "missing: schemaless framing needs the static schema { name, files }",
        ));
    }
    if framing != Framing::Schemaless && schema.is_some() {
        return Err(invalid(
            schema_path,
            "only the schemaless framing takes a static schema",
        ));
    }
    if framing != Framing::Confluent && subject.is_some() {
        return Err(invalid(
            c.path_of("subject"),
            "only the confluent framing registers a subject",
        ));
    }
    Ok(TestData {
        name,
        buffer,
        topic,
        files,
        framing,
        rate,
        count,
        subject,
        schema,
    })
}
