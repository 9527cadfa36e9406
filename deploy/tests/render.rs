//! The renderings of `examples/site.yaml` checked in under
//! `deploy/rendered/` are what the renderers make now (so they cannot
//! rot), every broker configuration in them loads as the broker reads it,
//! and the real tools accept them: `docker-compose config`,
//! `kubernetes-validate --strict` against Kubernetes 1.33, and
//! `systemd-analyze verify`. A missing tool fails with a message naming
//! its install (`scripts/deps/deploy.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use starlog_deploy::render::{self, Options, Rendered, Target};
use starlog_deploy::Site;

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn checked_in(target: Target) -> PathBuf {
    repo().join("deploy/rendered").join(target.name())
}

fn example_site() -> Site {
    Site::load(repo().join("examples/site.yaml")).unwrap()
}

fn rendering(target: Target) -> Rendered {
    render::render(
        &example_site(),
        target,
        &checked_in(target),
        &Options::default(),
    )
    .unwrap()
}

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(path.strip_prefix(dir).unwrap().to_owned(), text);
            }
        }
    }
    out
}

/// Runs a validator; a missing tool is a failure naming its install.
fn run(tool: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} cannot run ({e}): install it (scripts/deps/deploy.sh, or scripts/test)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{tool} {args:?} in {} refused it:\n{text}",
        dir.display()
    );
    text
}

#[test]
fn the_checked_in_renderings_are_what_the_renderers_make() {
    for target in [Target::Compose, Target::Kubernetes, Target::Systemd] {
        let fresh = rendering(target).files;
        let stored = files_under(&checked_in(target));
        let fresh_names: Vec<_> = fresh.keys().collect();
        let stored_names: Vec<_> = stored.keys().collect();
        assert_eq!(
            fresh_names,
            stored_names,
            "deploy/rendered/{}: re-render it with `starlog deploy render --target {0} examples/site.yaml --out deploy/rendered/{0}` (after removing the folder)",
            target.name()
        );
        for (name, text) in &fresh {
            assert!(
                stored[name] == *text,
                "deploy/rendered/{}/{} differs from a fresh rendering: re-render it",
                target.name(),
                name.display()
            );
        }
    }
}

#[test]
fn every_rendered_broker_configuration_loads_as_the_broker_reads_it() {
    let mut configs = Vec::new();
    for target in [Target::Compose, Target::Systemd] {
        for (name, text) in rendering(target).files {
            let file = name.display().to_string();
            if file.starts_with("config/")
                && !file.ends_with(".pipeline.yaml")
                && !file.ends_with(".mirror.yaml")
            {
                configs.push((format!("{}/{file}", target.name()), text));
            }
        }
    }
    let k8s = &rendering(Target::Kubernetes).files[Path::new("kubernetes.yaml")];
    for doc in serde_yaml::Deserializer::from_str(k8s) {
        let doc = serde_yaml::Value::deserialize(doc).unwrap();
        if let Some(broker) = doc.get("data").and_then(|d| d.get("broker.yaml")) {
            let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
            configs.push((
                format!("kubernetes/{name}"),
                broker.as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(configs.len(), 2 * 4 + 2, "{configs:?}");
    for (name, text) in configs {
        // `node_id: auto` reads the pod's host name: stand in pod 1 (node 2)
        // of a cluster, pod 0 of a single broker.
        let clustered = text.contains("cluster:");
        let text = text.replace(
            "node_id: auto",
            if clustered {
                "node_id: 2"
            } else {
                "node_id: 1"
            },
        );
        let c = starlog_broker::BrokerConfig::from_yaml(&text)
            .unwrap_or_else(|e| panic!("{name} does not load: {e}\n{text}"));
        if let Some(cluster) = &c.cluster {
            let me = cluster.me(c.node_id).unwrap();
            assert!(me.raft.ip().is_some() || me.raft.bind_addr().ip().is_unspecified());
        }
    }
    let k8s_alerts = k8s.contains("node_id: auto");
    assert!(k8s_alerts, "the StatefulSet's brokers share one file");
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let dir = checked_in(Target::Compose);
    run(
        "docker-compose",
        &["-f", "docker-compose.yaml", "config", "-q"],
        &dir,
    );
    let services = run(
        "docker-compose",
        &["-f", "docker-compose.yaml", "config", "--services"],
        &dir,
    );
    let mut services: Vec<&str> = services.lines().collect();
    services.sort_unstable();
    assert_eq!(
        services,
        [
            "alerts-0",
            "alerts-1",
            "alerts-2",
            "alerts-topics",
            "bright-0",
            "bright-1",
            "edge-0",
            "edge-topics",
            "to-edge",
            "ztf-samples"
        ]
    );
}

#[test]
fn kubernetes_validate_accepts_the_manifests_strictly() {
    let dir = checked_in(Target::Kubernetes);
    let out = run(
        "kubernetes-validate",
        &["--strict", "-k", KUBERNETES_VERSION, "kubernetes.yaml"],
        &dir,
    );
    for resource in [
        "statefulset/alerts",
        "service/alerts-headless",
        "service/alerts-2-external",
        "poddisruptionbudget/alerts",
        "deployment/bright",
        "configmap/alerts-config",
    ] {
        assert!(
            out.contains(&format!("passed for resource {resource} ")),
            "{resource} was validated:\n{out}"
        );
    }
    assert!(!out.contains("failed"), "{out}");
    let text = std::fs::read_to_string(dir.join("kubernetes.yaml")).unwrap();
    for needed in [
        "podManagementPolicy: Parallel",
        "publishNotReadyAddresses: true",
        "volumeClaimTemplates:",
        "readinessProbe:",
        "livenessProbe:",
        "raft: \"alerts-2.alerts-headless:19192\"",
    ] {
        assert!(text.contains(needed), "kubernetes.yaml has {needed}");
    }
}

#[test]
fn systemd_analyze_verifies_every_unit() {
    // verify checks that ExecStart's program exists: this test's own
    // executable stands in for the installed `starlog`.
    let exe = std::env::current_exe().unwrap();
    let opts = Options {
        starlog_bin: exe.display().to_string(),
        ..Options::default()
    };
    let out = tempfile::tempdir().unwrap();
    let rendered = render::render(&example_site(), Target::Systemd, out.path(), &opts).unwrap();
    rendered.write(out.path()).unwrap();
    let units: Vec<String> = rendered
        .files
        .keys()
        .filter(|f| f.starts_with("units"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(units.len(), 10, "{units:?}");
    let mut args = vec!["verify"];
    args.extend(units.iter().map(String::as_str));
    run("systemd-analyze", &args, &out.path().join("units"));
    // A broken unit is refused: the check can fail.
    std::fs::write(
        out.path().join("units/broken.service"),
        "[Service]\nExecStart=relative/starlog\n",
    )
    .unwrap();
    let refused = Command::new("systemd-analyze")
        .args(["verify", "broken.service"])
        .current_dir(out.path().join("units"))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a broken unit is refused");
}

use serde::Deserialize as _;
