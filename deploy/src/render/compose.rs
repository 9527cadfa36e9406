//! `docker-compose.yaml`: one service per broker instance (`<buffer>-<i>`,
//! its own named volume, a health check on its HTTP listener), per
//! processing-node instance (`<node>-<i>`), per mirror and per test-data
//! component, with the configuration files they mount under `config/`.
//!
//! Inside the compose network the brokers are reached by service name on
//! the buffer's ports; from the host, each broker's external listener is
//! published on the local platform's port (`kafka + i`, on
//! `listeners.host`) and advertised there, and its HTTP listener on
//! `http + i`.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::broker::{self, external_port, Instance};
use super::{comment, relative_to, yaml_text, Addressing, Options, RenderError, Rendered};
use crate::site::{AlertFiles, Placement, Site};

const A: Addressing = Addressing::Compose;

/// Where the configuration files are mounted in the containers.
const ETC: &str = "/etc/starlog";

pub(super) fn render(site: &Site, out: &Path, opts: &Options) -> Result<Rendered, RenderError> {
    let mut files = Rendered::default();
    let mut services = Map::new();
    let mut volumes = Map::new();
    // What a buffer's clients wait for: its brokers healthy, its topics
    // created.
    let healthy = |buffer: &str| -> Result<Value, RenderError> {
        let b = broker::buffer(site, buffer)?;
        let mut deps = Map::new();
        for i in 0..b.instances {
            deps.insert(
                format!("{}-{i}", b.name),
                json!({ "condition": "service_healthy" }),
            );
        }
        if !b.topics.is_empty() {
            deps.insert(
                format!("{}-topics", b.name),
                json!({ "condition": "service_completed_successfully" }),
            );
        }
        Ok(Value::Object(deps))
    };
    for b in &site.buffers {
        let in_broker = broker::in_broker_nodes(site, b);
        let mut mounts = Vec::new();
        let mut pipelines = Vec::new();
        for n in &in_broker {
            let file = format!("{}.pipeline.yaml", n.name);
            files.add(format!("config/{file}"), broker::pipeline_text(site, n)?);
            mounts.push(json!(format!("./config/{file}:{ETC}/{file}:ro")));
            pipelines.push(format!("{ETC}/{file}"));
        }
        let l = &b.listeners;
        let xport = external_port(b);
        let published = |i: u16| (l.host.clone(), l.kafka_port(i));
        for i in 0..b.instances {
            let name = format!("{}-{i}", b.name);
            let file = format!("{name}.yaml");
            files.add(
                format!("config/{file}"),
                broker::broker_yaml(
                    site,
                    b,
                    A,
                    Instance::One(i),
                    "/data",
                    &pipelines,
                    Some(&published),
                ),
            );
            let volume = format!("{name}-data");
            volumes.insert(volume.clone(), json!({}));
            let mut vols = vec![
                json!(format!("{volume}:/data")),
                json!(format!("./config/{file}:{ETC}/{file}:ro")),
            ];
            vols.extend(mounts.iter().cloned());
            services.insert(
                name.clone(),
                json!({
                    "image": opts.image,
                    "hostname": name,
                    "command": ["serve", "--config", format!("{ETC}/{file}")],
                    "volumes": vols,
                    "ports": [
                        format!("{}:{}:{xport}", l.host, l.kafka_port(i)),
                        format!("{}:{}:{}", l.host, l.http_port(i), l.http),
                    ],
                    "healthcheck": {
                        "test": ["CMD", "/starlog", "deploy", "probe",
                                 format!("http://127.0.0.1:{}/metrics", l.http)],
                        "interval": "10s",
                        "timeout": "5s",
                        "retries": 6,
                        "start_period": "30s",
                    },
                    "restart": "unless-stopped",
                    "stop_grace_period": "30s",
                }),
            );
        }
    }
    for b in &site.buffers {
        let Some(args) = broker::topics_args(b, &A.bootstrap(b)) else {
            continue;
        };
        let mut deps = Map::new();
        for i in 0..b.instances {
            deps.insert(
                format!("{}-{i}", b.name),
                json!({ "condition": "service_healthy" }),
            );
        }
        services.insert(
            format!("{}-topics", b.name),
            json!({
                "image": opts.image,
                "command": args,
                "depends_on": deps,
                "restart": "on-failure",
            }),
        );
    }
    for m in &site.mirrors {
        let file = format!("{}.mirror.yaml", m.name);
        files.add(format!("config/{file}"), broker::mirror_text(site, m, A)?);
        let mut deps = healthy(&m.buffer)?;
        if let crate::site::Upstream::Buffer(up) = &m.upstream {
            if let (Value::Object(d), Value::Object(u)) = (&mut deps, healthy(up)?) {
                d.extend(u);
            }
        }
        services.insert(
            m.name.clone(),
            json!({
                "image": opts.image,
                "command": ["mirror", format!("{ETC}/{file}"), "--no-progress"],
                "volumes": [format!("./config/{file}:{ETC}/{file}:ro")],
                "depends_on": deps,
                "restart": "unless-stopped",
                "stop_grace_period": "30s",
            }),
        );
    }
    for n in &site.nodes {
        let Placement::Standalone { instances } = n.placement else {
            continue;
        };
        let b = broker::buffer(site, &n.buffer)?;
        let file = format!("{}.pipeline.yaml", n.name);
        files.add(format!("config/{file}"), broker::pipeline_text(site, n)?);
        for i in 0..instances {
            services.insert(
                format!("{}-{i}", n.name),
                json!({
                    "image": opts.image,
                    "command": ["process", format!("{ETC}/{file}"), "--bootstrap", A.bootstrap(b)],
                    "volumes": [format!("./config/{file}:{ETC}/{file}:ro")],
                    "depends_on": healthy(&n.buffer)?,
                    "restart": "unless-stopped",
                    "stop_grace_period": "30s",
                }),
            );
        }
    }
    for t in &site.testdata {
        let b = broker::buffer(site, &t.buffer)?;
        let mut command = vec![
            json!("testdata"),
            json!("--bootstrap"),
            json!(A.bootstrap(b)),
            json!("--topic"),
            json!(t.topic),
            json!("--framing"),
            json!(t.framing.name()),
            json!("--no-progress"),
        ];
        let mut vols = Vec::new();
        let mut mount = |host: &Path, k: usize| {
            let inside = format!("/testdata/{k}");
            let rel = relative_to(host, out);
            let rel = rel.display().to_string();
            let rel = if rel.starts_with('.') {
                rel
            } else {
                format!("./{rel}")
            };
            vols.push(json!(format!("{rel}:{inside}:ro")));
            inside
        };
        match &t.files {
            AlertFiles::Samples(set) => {
                let dir = crate::testdata::find_testdata_dir(&site.base_dir).ok_or_else(|| {
                    RenderError::Site(crate::SiteError::Invalid {
                        path: format!(
                            "{}.samples",
                            site.component_path(&t.name).unwrap_or("components")
                        ),
                        message: "no testdata/ folder (with manifest.csv) above the site file: use `files:`"
                            .into(),
                    })
                })?;
                let inside = mount(&dir.join(set.folder()), 0);
                command.extend([json!("--files"), json!(inside)]);
            }
            AlertFiles::Paths(paths) => {
                for (k, p) in paths.iter().enumerate() {
                    // Already resolved against the site file's folder.
                    let inside = mount(p, k);
                    command.extend([json!("--files"), json!(inside)]);
                }
            }
        }
        if let Some(rate) = t.rate {
            command.extend([json!("--rate"), json!(rate.to_string())]);
        }
        if let Some(count) = t.count {
            command.extend([json!("--count"), json!(count.to_string())]);
        }
        if b.registry {
            command.extend([json!("--registry"), json!(A.registry_url(b))]);
        }
        if let Some(subject) = &t.subject {
            command.extend([json!("--subject"), json!(subject)]);
        }
        if let Some(schema) = &t.schema {
            command.extend([json!("--schema-name"), json!(schema.name)]);
            for (k, f) in schema.files.iter().enumerate() {
                let host = f;
                let name = f
                    .file_name()
                    .map_or_else(|| format!("{k}.avsc"), |n| n.to_string_lossy().into_owned());
                let inside = format!("/schemas/{k}/{name}");
                let rel = relative_to(host, out).display().to_string();
                vols.push(json!(format!("{rel}:{inside}:ro")));
                command.extend([json!("--schema-file"), json!(inside)]);
            }
        }
        services.insert(
            t.name.clone(),
            json!({
                "image": opts.image,
                "command": command,
                "volumes": vols,
                "depends_on": healthy(&t.buffer)?,
                // It runs once: restarted only when it fails.
                "restart": "on-failure",
            }),
        );
    }
    let doc = json!({
        "services": services,
        "volumes": volumes,
    });
    let header = comment(&[
        format!(
            "Rendered by `starlog deploy render --target compose` from site {}.",
            site.name
        ),
        "Run it from this folder: docker-compose up -d   (the image: deploy/Dockerfile)".into(),
        "Kafka clients on this host: each broker's published port (see `ports`).".into(),
    ]);
    files.add(
        "docker-compose.yaml",
        yaml_text(&header, &doc, "the compose file")?,
    );
    Ok(files)
}
