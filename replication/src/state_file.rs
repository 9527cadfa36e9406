//! The Raft state file of one partition (`<partition dir>/raft-state`): what Raft needs besides
//! the data batches, written atomically.
//!
//! It holds the `HardState` (term, vote, commit), the `ConfState`, the applied index, the anchor
//! of the Raft window over the partition log (first Raft index, the term before it, the Kafka
//! offset where it starts) and every control entry of the window (see `translator`). All of it
//! is small: control entries are one per leader election plus configuration changes, and the
//! window moves up with retention. So the whole file is rewritten on every change — new file,
//! fsync, rename over the old one, fsync of the directory — and a crash leaves either the old or
//! the new state, never a mix. A CRC-32C over the body catches a damaged file.
//!
//! Layout (big-endian): magic `SLRAFT01`, body length (u32), body, CRC-32C of the body (u32).
//! Body: term, vote, commit, applied, first index, previous term (u64 each), start offset
//! (i64), `ConfState` (u32 length + protobuf bytes), control entry count (u32), then per entry:
//! index, term (u64), entry type (i32), data and context (u32 length + bytes each).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protobuf::{Message as _, ProtobufEnum as _};
use raft::eraftpb::{ConfState, EntryType, HardState};

use crate::error::ReplicationError;
use crate::translator::ControlEntry;

/// File name inside the partition directory.
pub const STATE_FILE_NAME: &str = "raft-state";
const MAGIC: &[u8; 8] = b"SLRAFT01";

/// Everything the Raft state file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersistedState {
    /// Term, vote and (possibly stale) commit index.
    pub hard_state: HardState,
    /// Voters and learners.
    pub conf_state: ConfState,
    /// Entries up to this index were applied (configuration changes in `conf_state`).
    pub applied: u64,
    /// Raft index of the first entry of the window.
    pub first_index: u64,
    /// Term of the entry before the window.
    pub prev_term: u64,
    /// Kafka offset of the first data entry of the window.
    pub start_offset: i64,
    /// Control entries of the window, by index.
    pub controls: Vec<ControlEntry>,
}

/// Path of the state file in partition directory `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE_NAME)
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> ReplicationError {
    ReplicationError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Control entries and configuration states are tiny; a u32 length is plenty.
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

/// Encodes `state` into the file format.
pub fn encode(state: &PersistedState) -> Vec<u8> {
    let mut body = Vec::with_capacity(128);
    for v in [
        state.hard_state.term,
        state.hard_state.vote,
        state.hard_state.commit,
        state.applied,
        state.first_index,
        state.prev_term,
    ] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.extend_from_slice(&state.start_offset.to_be_bytes());
    // Encoding a fully initialised in-memory message cannot fail.
    let cs = state.conf_state.write_to_bytes().unwrap_or_default();
    put_bytes(&mut body, &cs);
    let n = u32::try_from(state.controls.len()).unwrap_or(u32::MAX);
    body.extend_from_slice(&n.to_be_bytes());
    for c in &state.controls {
        body.extend_from_slice(&c.index.to_be_bytes());
        body.extend_from_slice(&c.term.to_be_bytes());
        body.extend_from_slice(&c.entry_type.value().to_be_bytes());
        put_bytes(&mut body, &c.data);
        put_bytes(&mut body, &c.context);
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn corrupt(&self, reason: impl Into<String>) -> ReplicationError {
        ReplicationError::CorruptState {
            path: self.path.to_owned(),
            position: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], ReplicationError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.corrupt(format!(
                "{what} needs {n} bytes, {} left",
                self.buf.len() - self.pos
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReplicationError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ReplicationError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ReplicationError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn bytes(&mut self, what: &str) -> Result<Bytes, ReplicationError> {
        let n = self.u32(what)? as usize;
        Ok(Bytes::copy_from_slice(self.take(n, what)?))
    }
}

/// Decodes a state file's bytes (`path` only names it in errors).
pub fn decode(buf: &[u8], path: &Path) -> Result<PersistedState, ReplicationError> {
    let mut r = Reader { buf, pos: 0, path };
    if r.take(8, "magic")? != MAGIC {
        r.pos = 0;
        return Err(r.corrupt("bad magic (not a Starlog raft state file)"));
    }
    let len = r.u32("body length")? as usize;
    let body_start = r.pos;
    let body = r.take(len, "body")?;
    let computed = crc32c::crc32c(body);
    let stored = r.u32("crc")?;
    if stored != computed {
        return Err(r.corrupt(format!(
            "CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    if r.pos != buf.len() {
        return Err(r.corrupt(format!("{} trailing bytes", buf.len() - r.pos)));
    }
    let mut r = Reader {
        buf: &buf[..body_start + len],
        pos: body_start,
        path,
    };
    let hard_state = HardState {
        term: r.u64("term")?,
        vote: r.u64("vote")?,
        commit: r.u64("commit")?,
        ..HardState::default()
    };
    let applied = r.u64("applied")?;
    let first_index = r.u64("first index")?;
    let prev_term = r.u64("previous term")?;
    let start_offset = i64::from_be_bytes(r.array("start offset")?);
    let cs_bytes = r.bytes("conf state")?;
    let conf_state = ConfState::parse_from_bytes(&cs_bytes)
        .map_err(|e| r.corrupt(format!("conf state: {e}")))?;
    let n = r.u32("control count")?;
    let mut controls = Vec::new();
    let mut prev_index = None;
    for _ in 0..n {
        let index = r.u64("control index")?;
        let term = r.u64("control term")?;
        let raw_type = i32::from_be_bytes(r.array("entry type")?);
        let entry_type = EntryType::from_i32(raw_type)
            .ok_or_else(|| r.corrupt(format!("unknown entry type {raw_type}")))?;
        let data = r.bytes("control data")?;
        let context = r.bytes("control context")?;
        if prev_index.is_some_and(|p| p >= index) || index < first_index {
            return Err(r.corrupt(format!(
                "control entry index {index} out of order (previous {prev_index:?}, first index {first_index})"
            )));
        }
        prev_index = Some(index);
        controls.push(ControlEntry {
            index,
            term,
            entry_type,
            data,
            context,
        });
    }
    if r.pos != r.buf.len() {
        return Err(r.corrupt("trailing bytes in body"));
    }
    if first_index == 0 {
        return Err(r.corrupt("first index 0 (Raft indexes start at 1)"));
    }
    Ok(PersistedState {
        hard_state,
        conf_state,
        applied,
        first_index,
        prev_term,
        start_offset,
        controls,
    })
}

/// Reads the state file in `dir`; `None` if there is none yet.
pub fn read(dir: &Path) -> Result<Option<PersistedState>, ReplicationError> {
    let path = state_path(dir);
    match std::fs::read(&path) {
        Ok(buf) => decode(&buf, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", &path, e)),
    }
}

/// Replaces the state file in `dir` with `state`, durably (write new, fsync, rename, fsync dir).
pub fn write(dir: &Path, state: &PersistedState) -> Result<(), ReplicationError> {
    let path = state_path(dir);
    let tmp = dir.join(format!("{STATE_FILE_NAME}.tmp"));
    let bytes = encode(state);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io("create", &tmp, e))?;
    f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
    f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        let hs = HardState {
            term: 7,
            vote: 2,
            commit: 40,
            ..HardState::default()
        };
        PersistedState {
            hard_state: hs,
            conf_state: ConfState::from((vec![1, 2, 3], vec![4])),
            applied: 39,
            first_index: 5,
            prev_term: 3,
            start_offset: 100,
            controls: vec![
                ControlEntry {
                    index: 6,
                    term: 4,
                    entry_type: EntryType::EntryNormal,
                    data: Bytes::new(),
                    context: Bytes::new(),
                },
                ControlEntry {
                    index: 9,
                    term: 7,
                    entry_type: EntryType::EntryConfChangeV2,
                    data: Bytes::from_static(b"cc"),
                    context: Bytes::from_static(b"ctx"),
                },
            ],
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &sample()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(sample()));
        let mut next = sample();
        next.hard_state.term = 8;
        write(dir.path(), &next).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(next));
        assert!(!dir.path().join("raft-state.tmp").exists());
    }

    #[test]
    fn every_flipped_byte_or_truncation_is_reported() {
        let bytes = encode(&sample());
        let path = Path::new("p/raft-state");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                matches!(decode(&b, path), Err(ReplicationError::CorruptState { .. })),
                "flip at {i} not detected"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode(&bytes[..len], path),
                    Err(ReplicationError::CorruptState { .. })
                ),
                "truncation to {len} not detected"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long, path).is_err());
    }

    #[test]
    fn structurally_bad_bodies_are_rejected_with_a_reason() {
        let path = Path::new("p/raft-state");
        let mut s = sample();
        s.controls.swap(0, 1);
        let err = decode(&encode(&s), path).unwrap_err().to_string();
        assert!(err.contains("out of order"), "{err}");
        let mut s = sample();
        s.first_index = 0;
        s.controls.clear();
        let err = decode(&encode(&s), path).unwrap_err().to_string();
        assert!(err.contains("first index 0"), "{err}");
        let mut s = sample();
        s.controls[0].index = 2;
        let err = decode(&encode(&s), path).unwrap_err().to_string();
        assert!(err.contains("out of order"), "{err}");
    }
}
