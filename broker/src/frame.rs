//! A response frame as the connection writes it: one buffer, or for a Fetch
//! the encoded fields with the stored record batches spliced in as they are.
//!
//! A Fetch response is mostly record batches the storage hands over as
//! `Bytes` (slices of the segment's memory map). Encoding them with the
//! protocol crate copies every byte into the response buffer; here each
//! large `records` field is swapped for a short marker before encoding,
//! and the encoded bytes are cut at the markers, so the frame is the
//! encoded fields (a few hundred bytes) interleaved with the batches
//! themselves, written with one vectored write and never copied in user
//! space on a plaintext connection (TLS copies once, into its records).
//!
//! The result is byte for byte what the protocol crate encodes (tested
//! against it for every Fetch version, one to many partitions, compact and
//! classic lengths); when a marker is not where it must be, the response is
//! encoded the ordinary way instead.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IoSlice;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Records fields shorter than this are encoded in place: splicing them
/// costs more (an extra slice in the write) than it saves.
const SPLICE_MIN: usize = 4096;

/// Stands in for a spliced records field: a 16-byte prefix drawn at random
/// once per process (records come from clients, so a fixed marker could be
/// planted in a small batch that is encoded in place; this one never leaves
/// the process), then the field's index.
const MARKER_PREFIX_LEN: usize = 16;
const MARKER_LEN: usize = MARKER_PREFIX_LEN + 4;

fn marker_prefix() -> &'static [u8; MARKER_PREFIX_LEN] {
    static PREFIX: OnceLock<[u8; MARKER_PREFIX_LEN]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        // SipHash keys of a fresh RandomState are random per process.
        let mut out = [0u8; MARKER_PREFIX_LEN];
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        out
    })
}

fn marker(index: u32) -> Bytes {
    let mut m = BytesMut::with_capacity(MARKER_LEN);
    m.extend_from_slice(marker_prefix());
    m.extend_from_slice(&index.to_be_bytes());
    m.freeze()
}

/// Fetch v12 is the first flexible version: compact (varint) lengths.
const FIRST_FLEXIBLE_FETCH: i16 = 12;

/// Writes spanning more slices than this are split into several writes.
const MAX_IOV: usize = 64;

/// A response frame, length prefix included, in one or more parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    parts: Vec<Bytes>,
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Self {
        Frame { parts: vec![bytes] }
    }
}

impl Frame {
    /// The parts, in order.
    #[cfg(test)]
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The frame as one buffer (copies when it has several parts).
    #[cfg(test)]
    pub fn to_bytes(&self) -> Bytes {
        if let [one] = self.parts.as_slice() {
            return one.clone();
        }
        let mut buf = BytesMut::with_capacity(self.parts.iter().map(Bytes::len).sum());
        for p in &self.parts {
            buf.extend_from_slice(p);
        }
        buf.freeze()
    }

    /// Writes the whole frame with vectored writes.
    ///
    /// # Errors
    /// The stream's.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, wr: &mut W) -> std::io::Result<()> {
        if let [one] = self.parts.as_slice() {
            return wr.write_all(one).await;
        }
        // (part index, offset into it) of the first byte not yet written.
        let (mut part, mut at) = (0usize, 0usize);
        while part < self.parts.len() {
            let end = (part + MAX_IOV).min(self.parts.len());
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(end - part);
            slices.push(IoSlice::new(&self.parts[part][at..]));
            slices.extend(self.parts[part + 1..end].iter().map(|p| IoSlice::new(p)));
            let mut written = wr.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            // Advance over what was written.
            while written > 0 && part < self.parts.len() {
                let left = self.parts[part].len() - at;
                if written >= left {
                    written -= left;
                    part += 1;
                    at = 0;
                } else {
                    at += written;
                    written = 0;
                }
            }
            // Skip empty parts so the next write starts on bytes.
            while part < self.parts.len() && self.parts[part].len() == at {
                part += 1;
                at = 0;
            }
        }
        Ok(())
    }
}

/// Our own response failed to encode (a bug, reported).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {key:?} v{version} response: {reason}")]
pub struct EncodeError {
    /// The API.
    pub key: ApiKey,
    /// The version.
    pub version: i16,
    /// The encoder's complaint.
    pub reason: String,
}

/// Encodes a response (header and length prefix included) into one buffer.
///
/// # Errors
/// [`EncodeError`] when the response cannot be encoded (a bug).
pub fn encode(
    response: ResponseKind,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, EncodeError> {
    encode_ref(&response, key, version, correlation_id)
}

fn encode_ref(
    response: &ResponseKind,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, EncodeError> {
    let fail = |reason: String| EncodeError {
        key,
        version,
        reason,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| fail(format!("{e:#}")))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| fail(format!("{e:#}")))?;
    let len =
        i32::try_from(buf.len() - 4).map_err(|_| fail("response larger than 2 GiB".into()))?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a response into a frame; a Fetch's large records fields are
/// spliced in rather than copied.
///
/// # Errors
/// [`EncodeError`] when the response cannot be encoded (a bug).
pub fn encode_frame(
    response: ResponseKind,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<Frame, EncodeError> {
    match response {
        ResponseKind::Fetch(fetch) => encode_fetch(fetch, version, correlation_id),
        other => encode(other, key, version, correlation_id).map(Frame::from),
    }
}

fn encode_fetch(
    mut fetch: FetchResponse,
    version: i16,
    correlation_id: i32,
) -> Result<Frame, EncodeError> {
    // Take the large records out, in encoding order, leaving markers.
    let mut spliced: Vec<Bytes> = Vec::new();
    let mut from: Vec<(usize, usize)> = Vec::new();
    for (t, topic) in fetch.responses.iter_mut().enumerate() {
        for (p, partition) in topic.partitions.iter_mut().enumerate() {
            let Some(records) = partition.records.as_mut() else {
                continue;
            };
            if records.len() < SPLICE_MIN {
                continue;
            }
            let Ok(index) = u32::try_from(spliced.len()) else {
                continue;
            };
            spliced.push(std::mem::replace(records, marker(index)));
            from.push((t, p));
        }
    }
    let mut kind = ResponseKind::Fetch(fetch);
    let encoded = encode_ref(&kind, ApiKey::Fetch, version, correlation_id)?;
    if spliced.is_empty() {
        return Ok(Frame::from(encoded));
    }
    match splice(&encoded, &spliced, version) {
        Some(frame) => Ok(frame),
        None => {
            let ResponseKind::Fetch(fetch) = &mut kind else {
                return Ok(Frame::from(encoded));
            };
            // A marker was not where it must be: put the records back and
            // encode the ordinary way (always correct, one copy).
            tracing::warn!(
                version,
                "fetch response splice check failed; encoding by copy"
            );
            for ((t, p), records) in from.into_iter().zip(spliced) {
                if let Some(partition) = fetch
                    .responses
                    .get_mut(t)
                    .and_then(|topic| topic.partitions.get_mut(p))
                {
                    partition.records = Some(records);
                }
            }
            encode_ref(&kind, ApiKey::Fetch, version, correlation_id).map(Frame::from)
        }
    }
}

/// The length prefix of a records field of `len` bytes at `version`.
fn length_prefix(len: usize, version: i16) -> Option<Vec<u8>> {
    if version >= FIRST_FLEXIBLE_FETCH {
        // Compact bytes: unsigned varint of length + 1.
        let mut v = u32::try_from(len).ok()?.checked_add(1)?;
        let mut out = Vec::with_capacity(5);
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return Some(out);
            }
            out.push(byte | 0x80);
        }
    }
    Some(i32::try_from(len).ok()?.to_be_bytes().to_vec())
}

/// Cuts `encoded` at each marker (in order) and puts the records there with
/// their real length prefix; patches the frame's length. `None` when a
/// marker or its length prefix is not found as expected.
fn splice(encoded: &Bytes, spliced: &[Bytes], version: i16) -> Option<Frame> {
    // Every marker must occur exactly once: a records field encoded in place
    // that happened to hold the marker would otherwise be cut instead.
    if count(encoded, marker_prefix()) != spliced.len() {
        return None;
    }
    let marker_prefix = length_prefix(MARKER_LEN, version)?;
    let mut parts = Vec::with_capacity(spliced.len() * 3 + 1);
    let mut cursor = 0usize;
    let mut total = 0usize;
    for (index, records) in spliced.iter().enumerate() {
        let marker = marker(u32::try_from(index).ok()?);
        let found = find(&encoded[cursor..], &marker)? + cursor;
        let prefix_at = found.checked_sub(marker_prefix.len())?;
        if prefix_at < cursor || encoded[prefix_at..found] != marker_prefix[..] {
            return None;
        }
        let before = encoded.slice(cursor..prefix_at);
        let prefix = Bytes::from(length_prefix(records.len(), version)?);
        total += before.len() + prefix.len() + records.len();
        parts.push(before);
        parts.push(prefix);
        parts.push(records.clone());
        cursor = found + MARKER_LEN;
    }
    let tail = encoded.slice(cursor..);
    total += tail.len();
    parts.push(tail);
    // The first part starts with the frame's length prefix: rewrite it.
    let size = i32::try_from(total.checked_sub(4)?).ok()?;
    let first = parts.first_mut()?;
    if first.len() < 4 {
        return None;
    }
    let mut head = BytesMut::from(&first[..]);
    head[0..4].copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    Some(Frame { parts })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[cfg(test)]
mod tests;
