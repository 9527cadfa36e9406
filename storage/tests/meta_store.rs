//! `MetaStore`: durable topics, configs and committed offsets.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use starlog_storage::{CommittedOffset, MetaStore, StorageError, TopicMeta};

fn topic(name: &str, partitions: i32) -> TopicMeta {
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_owned(), "86400000".to_owned());
    TopicMeta {
        name: name.to_owned(),
        id: [partitions as u8; 16],
        partitions,
        configs,
    }
}

fn off(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: topic.to_owned(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: Some(format!("m{offset}")),
        commit_timestamp_ms: 1_700_000_000_000 + offset,
    }
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let meta_dir = dir.path().join("__meta");
    {
        let m = MetaStore::open(&meta_dir).unwrap();
        assert!(m.topics().is_empty());
        m.put_topic(topic("ztf", 4)).unwrap();
        m.put_topic(topic("lsst", 2)).unwrap();
        m.put_topic(topic("ztf", 8)).unwrap(); // replace
        m.commit_offsets("g1", &[off("ztf", 0, 10), off("ztf", 1, 11)])
            .unwrap();
        m.commit_offsets("g1", &[off("ztf", 0, 12)]).unwrap();
        m.commit_offsets("g2", &[off("lsst", 0, 5)]).unwrap();
    }
    let m = MetaStore::open(&meta_dir).unwrap();
    assert_eq!(m.topics(), vec![topic("lsst", 2), topic("ztf", 8)]);
    assert_eq!(m.topic("ztf"), Some(topic("ztf", 8)));
    assert_eq!(m.topic("nope"), None);
    assert_eq!(
        m.committed_offsets("g1"),
        vec![off("ztf", 0, 12), off("ztf", 1, 11)]
    );
    assert_eq!(m.groups(), vec!["g1".to_owned(), "g2".to_owned()]);
}

#[test]
fn deletes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = MetaStore::open(dir.path()).unwrap();
        m.put_topic(topic("a", 1)).unwrap();
        m.put_topic(topic("b", 1)).unwrap();
        m.commit_offsets("g", &[off("a", 0, 1), off("b", 0, 2), off("b", 1, 3)])
            .unwrap();
        m.commit_offsets("only-a", &[off("a", 0, 4)]).unwrap();
        m.commit_offsets("h", &[off("b", 0, 9)]).unwrap();
        m.delete_topic("a").unwrap();
        m.delete_offsets("g", &[("b".to_owned(), 1)]).unwrap();
        m.delete_group("h").unwrap();
    }
    let m = MetaStore::open(dir.path()).unwrap();
    assert_eq!(m.topics(), vec![topic("b", 1)]);
    assert_eq!(m.committed_offsets("g"), vec![off("b", 0, 2)]);
    // A group whose only offsets were for the deleted topic disappears.
    assert_eq!(m.groups(), vec!["g".to_owned()]);
    assert!(m.committed_offsets("h").is_empty());
}

#[test]
fn leftover_temp_file_from_interrupted_write_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = MetaStore::open(dir.path()).unwrap();
        m.put_topic(topic("a", 1)).unwrap();
    }
    // A crash between writing the new file and renaming it leaves meta.json.tmp behind.
    std::fs::write(dir.path().join("meta.json.tmp"), b"{\"version\":1,\"top").unwrap();
    let m = MetaStore::open(dir.path()).unwrap();
    assert_eq!(m.topics(), vec![topic("a", 1)]);
    assert!(!dir.path().join("meta.json.tmp").exists());
}

#[test]
fn corrupt_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meta.json"), b"not json").unwrap();
    match MetaStore::open(dir.path()) {
        Err(StorageError::MetaEncoding { path, .. }) => assert!(path.ends_with("meta.json")),
        other => panic!("expected MetaEncoding, got {other:?}"),
    }
}
