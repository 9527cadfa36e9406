//! Kubernetes manifests (`kubernetes.yaml`, one multi-document file):
//!
//! * per buffer `b`: a StatefulSet `b` (one pod per instance,
//!   `podManagementPolicy: Parallel` so every broker starts at once and the
//!   Raft peers find each other, a volume claim template per pod, readiness
//!   and liveness probes on the HTTP listener); the headless Service
//!   `b-headless` with `publishNotReadyAddresses: true` (the peers'
//!   DNS names `b-N.b-headless` resolve before the pods are ready); the
//!   client Service `b` (Kafka bootstrap and HTTP); one Service
//!   `b-N-external` (a LoadBalancer) per pod for clients outside the
//!   cluster; the ConfigMap `b-config` (the broker YAML, shared by every
//!   pod thanks to `node_id: auto`, and the in-broker pipelines); a
//!   PodDisruptionBudget (at most one broker down at a time);
//! * per standalone processing node: a ConfigMap with its pipeline and a
//!   Deployment with its replica count;
//! * per mirror: a ConfigMap and a Deployment of one replica (the upstream
//!   takes one connection), replaced rather than rolled.

use serde_json::{json, Value};

use super::broker::{self, external_port, Instance};
use super::{
    comment, headless, k8s_name, left_out, yaml_text, Addressing, Options, RenderError, Rendered,
    Target,
};
use crate::site::{KafkaBuffer, Placement, Site};

const A: Addressing = Addressing::Kubernetes;

/// Where the configuration is mounted in the containers.
const ETC: &str = "/etc/starlog";

/// The image's unprivileged user (see deploy/Dockerfile).
const UID: u32 = 65_532;

fn labels(site: &Site, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "starlog",
        "app.kubernetes.io/part-of": k8s_name(&site.name),
        "app.kubernetes.io/component": k8s_name(component),
    })
}

fn meta(site: &Site, name: &str, component: &str) -> Value {
    json!({ "name": name, "labels": labels(site, component) })
}

fn security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": { "drop": ["ALL"] },
    })
}

pub(super) fn render(site: &Site, opts: &Options) -> Result<Rendered, RenderError> {
    let mut docs: Vec<Value> = Vec::new();
    for b in &site.buffers {
        buffer_docs(site, b, opts, &mut docs)?;
    }
    for n in &site.nodes {
        let Placement::Standalone { instances } = n.placement else {
            continue;
        };
        let b = broker::buffer(site, &n.buffer)?;
        let name = k8s_name(&n.name);
        let cm = format!("{name}-pipeline");
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(site, &cm, &n.name),
            "data": { "pipeline.yaml": broker::pipeline_text(site, n)? },
        }));
        docs.push(deployment(
            site,
            &name,
            &n.name,
            instances,
            json!([
                "process",
                format!("{ETC}/pipeline.yaml"),
                "--bootstrap",
                A.bootstrap(b)
            ]),
            &cm,
            opts,
            "RollingUpdate",
            &[b],
        ));
    }
    for m in &site.mirrors {
        let name = k8s_name(&m.name);
        let cm = format!("{name}-mirror");
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(site, &cm, &m.name),
            "data": { "mirror.yaml": broker::mirror_text(site, m, A)? },
        }));
        let mut buffers = vec![broker::buffer(site, &m.buffer)?];
        if let crate::site::Upstream::Buffer(up) = &m.upstream {
            buffers.push(broker::buffer(site, up)?);
        }
        docs.push(deployment(
            site,
            &name,
            &m.name,
            1,
            json!(["mirror", format!("{ETC}/mirror.yaml"), "--no-progress"]),
            &cm,
            opts,
            "Recreate",
            &buffers,
        ));
    }
    let mut lines = vec![
        format!(
            "Rendered by `starlog deploy render --target kubernetes` from site {}.",
            site.name
        ),
        "Apply it in a namespace of your choice: kubectl apply -n NAMESPACE -f kubernetes.yaml"
            .into(),
        "The image: deploy/Dockerfile. Clients outside the cluster: the `<buffer>-N-external`"
            .into(),
        "Services, whose names the brokers advertise on their EXTERNAL listener.".into(),
    ];
    lines.extend(left_out(site, Target::Kubernetes));
    let mut text = comment(&lines);
    for doc in &docs {
        text.push_str("---\n");
        text.push_str(&yaml_text("", doc, "a Kubernetes manifest")?);
    }
    let mut files = Rendered::default();
    files.add("kubernetes.yaml", text);
    Ok(files)
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    site: &Site,
    name: &str,
    component: &str,
    replicas: u16,
    args: Value,
    config_map: &str,
    opts: &Options,
    strategy: &str,
    buffers: &[&KafkaBuffer],
) -> Value {
    // Each buffer's topics exist before the chain starts (else a reader
    // would auto-create one with the default partitions).
    let init: Vec<Value> = buffers
        .iter()
        .filter_map(|b| {
            broker::topics_args(b, &A.bootstrap(b)).map(|args| {
                json!({
                    "name": format!("{}-topics", k8s_name(&b.name)),
                    "image": opts.image,
                    "args": args,
                    "securityContext": security_context(),
                })
            })
        })
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(site, name, component),
        "spec": {
            "replicas": replicas,
            "strategy": { "type": strategy },
            "selector": { "matchLabels": labels(site, component) },
            "template": {
                "metadata": { "labels": labels(site, component) },
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "initContainers": init,
                    "containers": [{
                        "name": "starlog",
                        "image": opts.image,
                        "args": args,
                        "securityContext": security_context(),
                        "volumeMounts": [{ "name": "config", "mountPath": ETC, "readOnly": true }],
                    }],
                    "volumes": [{ "name": "config", "configMap": { "name": config_map } }],
                },
            },
        },
    })
}

fn buffer_docs(
    site: &Site,
    b: &KafkaBuffer,
    opts: &Options,
    docs: &mut Vec<Value>,
) -> Result<(), RenderError> {
    let name = k8s_name(&b.name);
    let l = &b.listeners;
    let xport = external_port(b);
    let mut data = serde_json::Map::new();
    let mut pipelines = Vec::new();
    for n in broker::in_broker_nodes(site, b) {
        let file = format!("{}.pipeline.yaml", n.name);
        data.insert(file.clone(), json!(broker::pipeline_text(site, n)?));
        pipelines.push(format!("{ETC}/{file}"));
    }
    let external = |i: u16| (format!("{name}-{i}-external"), xport);
    // One instance: no cluster, its id written; more: one file for all.
    let instance = if b.instances > 1 {
        Instance::Auto
    } else {
        Instance::One(0)
    };
    data.insert(
        "broker.yaml".into(),
        json!(broker::broker_yaml(
            site,
            b,
            A,
            instance,
            "/data",
            &pipelines,
            Some(&external)
        )),
    );
    let cm = format!("{name}-config");
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(site, &cm, &b.name),
        "data": data,
    }));
    let ports = json!([
        { "name": "kafka", "port": l.kafka, "targetPort": "kafka" },
        { "name": "raft", "port": l.raft, "targetPort": "raft" },
        { "name": "http", "port": l.http, "targetPort": "http" },
    ]);
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(site, &headless(b), &b.name),
        "spec": {
            "clusterIP": "None",
            // Raft peers resolve each other before any is ready.
            "publishNotReadyAddresses": true,
            "selector": labels(site, &b.name),
            "ports": ports,
        },
    }));
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(site, &name, &b.name),
        "spec": {
            "selector": labels(site, &b.name),
            "ports": [
                { "name": "kafka", "port": l.kafka, "targetPort": "kafka" },
                { "name": "http", "port": l.http, "targetPort": "http" },
            ],
        },
    }));
    for i in 0..b.instances {
        let mut selector = labels(site, &b.name);
        if let Value::Object(s) = &mut selector {
            s.insert(
                "statefulset.kubernetes.io/pod-name".into(),
                json!(format!("{name}-{i}")),
            );
        }
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(site, &format!("{name}-{i}-external"), &b.name),
            "spec": {
                "type": "LoadBalancer",
                "selector": selector,
                "ports": [{ "name": "kafka-external", "port": xport, "targetPort": "kafka-external" }],
            },
        }));
    }
    let probe = |initial: u32, period: u32, failures: u32| {
        json!({
            "httpGet": { "path": "/metrics", "port": "http" },
            "initialDelaySeconds": initial,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        })
    };
    docs.push(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(site, &name, &b.name),
        "spec": {
            "serviceName": headless(b),
            "replicas": b.instances,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": labels(site, &b.name) },
            "template": {
                "metadata": { "labels": labels(site, &b.name) },
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": { "fsGroup": UID },
                    "containers": [{
                        "name": "starlog",
                        "image": opts.image,
                        "args": ["serve", "--config", format!("{ETC}/broker.yaml")],
                        "ports": [
                            { "name": "kafka", "containerPort": l.kafka },
                            { "name": "kafka-external", "containerPort": xport },
                            { "name": "raft", "containerPort": l.raft },
                            { "name": "http", "containerPort": l.http },
                        ],
                        "readinessProbe": probe(5, 5, 3),
                        "livenessProbe": probe(30, 10, 6),
                        "securityContext": security_context(),
                        "volumeMounts": [
                            { "name": "data", "mountPath": "/data" },
                            { "name": "config", "mountPath": ETC, "readOnly": true },
                        ],
                    }],
                    "volumes": [{ "name": "config", "configMap": { "name": cm } }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data", "labels": labels(site, &b.name) },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": {
                        "storage": b.storage.size.clone().unwrap_or_else(|| "10Gi".into()),
                    } },
                },
            }],
        },
    }));
    if let Some(args) = broker::topics_args(b, &A.bootstrap(b)) {
        docs.push(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta(site, &format!("{name}-topics"), &b.name),
            "spec": {
                "backoffLimit": 20,
                "template": {
                    "metadata": { "labels": { "app.kubernetes.io/name": "starlog" } },
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{
                            "name": "topics",
                            "image": opts.image,
                            "args": args,
                            "securityContext": security_context(),
                        }],
                    },
                },
            },
        }));
    }
    docs.push(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(site, &name, &b.name),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": labels(site, &b.name) },
        },
    }));
    Ok(())
}
