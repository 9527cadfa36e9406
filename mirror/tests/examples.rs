//! The repository's `examples/mirror.yaml` loads with the mirror's real
//! configuration loader, so it cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use starlog_mirror::{BadInputPolicy, MirrorConfig, Partitioning, SchemaIds, StartFrom};

#[test]
fn the_example_mirror_merges_ztf_nights_into_one_buffer() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mirror.yaml");
    // The upstream password comes from the environment, never from the file.
    std::env::remove_var("UPSTREAM_PASSWORD");
    let err = MirrorConfig::load(&file).unwrap_err().to_string();
    assert!(
        err.contains("upstream.sasl.password_env") && err.contains("UPSTREAM_PASSWORD"),
        "{err}"
    );
    std::env::set_var("UPSTREAM_PASSWORD", "example-secret");
    let c = MirrorConfig::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));

    assert_eq!(c.group(), "starlog-mirror.ztf");
    assert!(c.upstream.tls.is_some());
    let sasl = c.upstream.sasl.as_ref().expect("SASL configured");
    assert_eq!(sasl.password, "example-secret");
    assert!(c.upstream_registry.is_some() && c.local_registry.is_some());
    assert_eq!(c.local.bootstrap, ["127.0.0.1:9092"]);
    assert_eq!(c.start, StartFrom::Earliest);
    assert_eq!(
        c.bad_input,
        BadInputPolicy::DeadLetter {
            topic: "ztf-buffer-dead-letters".into()
        }
    );

    let [rule] = c.topics.as_slice() else {
        panic!("one rule expected, found {}", c.topics.len());
    };
    assert_eq!(rule.partitions, 16);
    assert_eq!(rule.retention_ms, Some(604_800_000));
    assert_eq!(rule.schema_ids, SchemaIds::Rewrite);
    assert_eq!(rule.partitioning, Partitioning::Hash);
    // Every nightly topic of either program lands in the one buffer topic.
    for night in ["ztf_20191123_programid1", "ztf_20250102_programid2"] {
        assert_eq!(
            c.route(night).map(|(_, t)| t).as_deref(),
            Some("ztf-buffer")
        );
        assert_eq!(rule.subject_of(night, "ztf-buffer"), "ztf-buffer-value");
    }
    for other in [
        "ztf_2019112_programid1",
        "lsst-alerts",
        "__consumer_offsets",
    ] {
        assert_eq!(c.route(other), None, "{other} is not mirrored");
    }
}
