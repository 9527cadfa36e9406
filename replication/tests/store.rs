//! `PartitionStore` directly: what it refuses (logs written outside Raft, batches removed
//! behind its back, damaged state files, replicas without a configuration), the `raft::Storage`
//! contract at the window's edges, and recovery of a torn tail after control entries.

// Test helpers outside #[test] functions unwrap too: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use bytes::Bytes;
use common::batches::batch;
use raft::Storage as _;
use starlog_replication::eraftpb::{Entry, EntryType, HardState};
use starlog_replication::{
    GroupId, PartitionStore, ReplicationError, StoreOptions, STATE_FILE_NAME,
};
use starlog_storage::{LogConfig, PartitionLog};

const G: GroupId = GroupId(1);

fn open(dir: &Path) -> Result<PartitionStore, ReplicationError> {
    PartitionStore::open(
        G,
        dir,
        "t",
        0,
        LogConfig::default(),
        &StoreOptions {
            bootstrap_voters: vec![1, 2, 3],
            track_synced_lengths: true,
            ..StoreOptions::default()
        },
    )
}

fn data(index: u64, term: u64, value: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(batch(0, &[value])),
        ..Entry::default()
    }
}

fn control(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Entry::default()
    }
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

#[test]
fn a_log_written_outside_raft_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, LogConfig::default()).unwrap();
    log.append(&batch(0, &[b"x"]), 0).unwrap();
    drop(log);
    let err = open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not written through Raft"), "{err}");
}

#[test]
fn a_new_replica_without_voters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = PartitionStore::open(
        G,
        dir.path(),
        "t",
        0,
        LogConfig::default(),
        &StoreOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("current voters"), "{err}");
}

#[test]
fn batches_removed_outside_raft_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.append_entries(
        &[control(1, 1), data(2, 1, b"a"), data(3, 1, b"b")],
        Some(&hs(1, 1, 0)),
    )
    .unwrap();
    s.close().unwrap();
    drop(s);
    let log = PartitionLog::open(dir.path(), "t", 0, LogConfig::default()).unwrap();
    log.advance_start(1).unwrap();
    drop(log);
    let err = open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("removed outside Raft"), "{err}");
}

#[test]
fn a_damaged_state_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let path = dir.path().join(STATE_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    match open(dir.path()) {
        Err(ReplicationError::CorruptState {
            path: p, reason, ..
        }) => {
            assert_eq!(p, path);
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected CorruptState, got {other:?}"),
    }
}

#[test]
fn entries_that_are_not_one_batch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    let mut two = batch(0, &[b"a"]);
    two.extend(batch(0, &[b"b"]));
    let e = Entry {
        index: 1,
        term: 1,
        data: Bytes::from(two),
        ..Entry::default()
    };
    let err = s.append_entries(&[e], None).unwrap_err().to_string();
    assert!(err.contains("one entry must be one batch"), "{err}");
    let e = Entry {
        index: 1,
        term: 1,
        data: Bytes::from_static(b"not a batch"),
        ..Entry::default()
    };
    let err = s.append_entries(&[e], None).unwrap_err().to_string();
    assert!(err.contains("not a record batch"), "{err}");
    assert_eq!(s.log().log_end_offset(), 0);
}

#[test]
fn storage_contract_at_the_edges_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.append_entries(
        &[
            control(1, 1),
            data(2, 1, b"a"),
            data(3, 2, b"b"),
            data(4, 2, b"c"),
        ],
        Some(&hs(2, 1, 0)),
    )
    .unwrap();
    s.flush().unwrap();
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.term(0).unwrap(), 0);
    assert_eq!(s.term(3).unwrap(), 2);
    assert!(matches!(
        s.term(5),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
    let all = s
        .entries(1, 5, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].get_entry_type(), EntryType::EntryNormal);
    assert!(all[0].data.is_empty());
    // Stored batches carry their offset and the term as leader epoch.
    assert_eq!(&all[2].data[0..8], &1i64.to_be_bytes());
    assert_eq!(&all[2].data[12..16], &2i32.to_be_bytes());
    let limited = s
        .entries(2, 5, Some(1), raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(limited.len(), 1, "a size limit still returns one entry");
    assert!(s
        .entries(2, 6, None, raft::GetEntriesContext::empty(false))
        .is_err());
    // The snapshot is the window start: index 0 (nothing compacted yet), offset 0.
    let snap = s.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 0);
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
    assert_eq!(snap.data.as_ref(), &0i64.to_be_bytes());
    s.set_applied(4);
    s.set_commit(4);
    assert_eq!(s.high_watermark(4), 3);
    assert_eq!(s.high_watermark(2), 1);
    assert_eq!(s.compact_to_offset(1).unwrap(), 1);
    assert_eq!(s.first_index().unwrap(), 3);
    assert!(matches!(
        s.entries(2, 4, None, raft::GetEntriesContext::empty(false)),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    assert_eq!(s.term(2).unwrap(), 1, "the term before the window is kept");
    assert!(matches!(
        s.term(1),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
}

/// Cuts every segment file back to its synced length (a crash losing all unsynced bytes).
fn lose_unsynced(s: PartitionStore) {
    let lens = s.synced_log_lengths().unwrap().clone();
    drop(s);
    for (path, len) in lens {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len).unwrap();
    }
}

#[test]
fn a_control_entry_after_lost_data_is_dropped_not_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.append_entries(&[control(1, 1), data(2, 1, b"a")], Some(&hs(1, 1, 0)))
        .unwrap();
    s.flush().unwrap();
    // Data at 3 then a control entry at 4; the crash loses the unsynced batch.
    s.append_entries(&[data(3, 2, b"b"), control(4, 2)], Some(&hs(2, 2, 2)))
        .unwrap();
    lose_unsynced(s);
    let mut s = open(dir.path()).unwrap();
    assert_eq!(
        s.last_index().unwrap(),
        2,
        "index 4 must not slide down to 3"
    );
    assert_eq!(s.translator().controls().count(), 1);
    // New data at 3 and 4, then a restart: 4 is data, not the stale control entry.
    s.append_entries(&[data(3, 3, b"c"), data(4, 3, b"d")], Some(&hs(3, 3, 2)))
        .unwrap();
    s.flush().unwrap();
    drop(s);
    let s = open(dir.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 4);
    let e = s
        .entries(4, 5, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert!(!e[0].data.is_empty());
    assert_eq!(s.term(4).unwrap(), 3);
    assert_eq!(s.log().log_end_offset(), 3);
}

#[test]
fn a_conflicting_suffix_is_truncated_in_the_log_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.append_entries(
        &[
            control(1, 1),
            data(2, 1, b"a"),
            control(3, 2),
            data(4, 2, b"b"),
            data(5, 2, b"c"),
        ],
        Some(&hs(2, 2, 2)),
    )
    .unwrap();
    s.flush().unwrap();
    // A new leader of term 3 replaces everything from index 3.
    s.append_entries(&[control(3, 3), data(4, 3, b"x")], Some(&hs(3, 3, 2)))
        .unwrap();
    s.flush().unwrap();
    assert_eq!(s.log().log_end_offset(), 2);
    drop(s);
    let s = open(dir.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.term(3).unwrap(), 3);
    assert_eq!(s.term(4).unwrap(), 3);
    let e = s
        .entries(4, 5, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    let value_at = e[0].data.len() - 2;
    assert_eq!(e[0].data[value_at], b'x');
    // Replacing committed entries is refused.
    let mut s = s;
    let err = s
        .append_entries(&[data(2, 4, b"y")], Some(&hs(4, 4, 4)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at or below the commit index"), "{err}");
}

fn snapshot_at(index: u64, term: u64, start_offset: i64) -> starlog_replication::eraftpb::Snapshot {
    let mut snap = starlog_replication::eraftpb::Snapshot {
        data: Bytes::copy_from_slice(&start_offset.to_be_bytes()),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.mut_conf_state().voters = vec![1, 2, 3];
    snap
}

#[test]
fn a_snapshot_restarts_the_log_and_an_interrupted_install_completes_on_open() {
    // A replica holding offsets 0..5 (entries 1..=5) installs a snapshot at index 40.
    let behind = tempfile::tempdir().unwrap();
    let mut store = open(behind.path()).unwrap();
    let entries: Vec<Entry> = (1..=5).map(|i| data(i, 1, b"old")).collect();
    store.append_entries(&entries, Some(&hs(1, 1, 5))).unwrap();
    store.flush().unwrap();
    store.apply_snapshot(&snapshot_at(40, 3, 100)).unwrap();
    assert_eq!(store.first_index().unwrap(), 41);
    assert_eq!(store.term(40).unwrap(), 3);
    assert_eq!(
        (store.log().log_start_offset(), store.log().log_end_offset()),
        (100, 100)
    );
    store
        .append_entries(&[data(41, 3, b"new")], Some(&hs(3, 0, 41)))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.high_watermark(41), 101);
    store.close().unwrap();
    drop(store);
    let reopened = open(behind.path()).unwrap();
    assert_eq!(reopened.translator().first_index(), 41);
    assert_eq!(reopened.log().log_end_offset(), 101);
    drop(reopened);

    // Interrupted: the state file names the new window but the log was not reset yet.
    let interrupted = tempfile::tempdir().unwrap();
    let mut old = open(interrupted.path()).unwrap();
    old.append_entries(&entries, Some(&hs(1, 1, 5))).unwrap();
    old.close().unwrap();
    drop(old);
    let fresh = tempfile::tempdir().unwrap();
    let mut other = open(fresh.path()).unwrap();
    other.apply_snapshot(&snapshot_at(40, 3, 100)).unwrap();
    other.close().unwrap();
    drop(other);
    std::fs::copy(
        fresh.path().join(STATE_FILE_NAME),
        interrupted.path().join(STATE_FILE_NAME),
    )
    .unwrap();
    let completed = open(interrupted.path()).unwrap();
    assert_eq!(completed.translator().first_index(), 41);
    assert_eq!(
        (
            completed.log().log_start_offset(),
            completed.log().log_end_offset()
        ),
        (100, 100)
    );

    // A snapshot that is not a start offset is refused.
    let mut bad = snapshot_at(60, 3, 0);
    bad.data = Bytes::from_static(b"xx");
    let mut store = open(behind.path()).unwrap();
    assert!(matches!(
        store.apply_snapshot(&bad),
        Err(ReplicationError::Inconsistent { .. })
    ));
}

#[test]
fn without_data_sync_appended_entries_count_as_persisted_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = PartitionStore::open(
        G,
        dir.path(),
        "t",
        0,
        LogConfig::default(),
        &StoreOptions {
            bootstrap_voters: vec![1, 2, 3],
            skip_data_sync: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store
        .append_entries(&[data(1, 1, b"a"), data(2, 1, b"b")], Some(&hs(1, 1, 0)))
        .unwrap();
    assert!(store.needs_flush());
    assert!(!store.flush().unwrap(), "no fdatasync was made");
    assert!(!store.needs_flush());
    assert_eq!(store.persisted_last_index(), 2);
    assert_eq!(store.high_watermark(2), 2);
}

/// Invariant: the commit index translated to an offset never exposes what is not durable here.
/// A commit index beyond the synced entries gives the offset after the last synced one; the
/// rest shows once a sync covers it (and never beyond the entries stored).
#[test]
fn the_high_watermark_stops_at_what_is_durable_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.append_entries(&[data(1, 1, b"a")], Some(&hs(1, 1, 0)))
        .unwrap();
    s.flush().unwrap();
    s.append_entries(&[data(2, 1, b"b"), data(3, 1, b"c")], Some(&hs(1, 1, 3)))
        .unwrap();
    assert_eq!(s.persisted_last_index(), 1);
    assert_eq!(s.high_watermark(3), 1, "unsynced entries are not exposed");
    s.mark_persisted(99);
    assert_eq!(s.persisted_last_index(), 3, "never more than is stored");
    s.flush().unwrap();
    assert_eq!(s.high_watermark(3), 3);
    assert_eq!(s.high_watermark(99), 3);
    assert_eq!(s.log().log_end_offset(), 3);
}
