//! Record batch compression codecs, and decompression bounded in size.
//!
//! Encoding is left to `kafka_protocol`'s batch encoder (it applies the
//! codec named in the batch attributes). Decoding is ours because the bytes
//! come from the network: every codec is read through a size limit so a
//! small "zip bomb" batch cannot exhaust memory, and Kafka's two snappy
//! framings (xerial-java blocks, and raw snappy as librdkafka can send) are
//! both accepted.

use std::io::Read;

use kafka_protocol::records::Compression as KpCompression;

/// The codecs of the Kafka record batch attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// snappy (xerial framing on write).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec of attribute bits 0-2, if known.
    pub fn from_attributes(attributes: i16) -> Option<Self> {
        match attributes & 0x7 {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Parses a `compression.type` name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            "snappy" => Some(Self::Snappy),
            "lz4" => Some(Self::Lz4),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Every codec.
    pub const ALL: [Self; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    pub(crate) fn to_kp(self) -> KpCompression {
        match self {
            Self::None => KpCompression::None,
            Self::Gzip => KpCompression::Gzip,
            Self::Snappy => KpCompression::Snappy,
            Self::Lz4 => KpCompression::Lz4,
            Self::Zstd => KpCompression::Zstd,
        }
    }
}

/// Decompresses `data` (the records section of a batch), refusing output
/// larger than `limit` bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), limit, "gzip"),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit, "lz4"),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?;
            read_bounded(d, limit, "zstd")
        }
        Compression::Snappy => snappy(data, limit),
    }
}

fn read_bounded<R: Read>(r: R, limit: usize, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    if out.len() > limit {
        return Err(format!("{name}: decompressed size exceeds {limit} bytes"));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    if data.len() >= 16 && &data[..8] == XERIAL_MAGIC {
        let mut rest = &data[16..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err("snappy: truncated block length".into());
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if n > rest.len() {
                return Err(format!("snappy: block of {n} bytes, {} left", rest.len()));
            }
            raw_snappy_into(&rest[..n], limit, &mut out)?;
            rest = &rest[n..];
        }
        Ok(out)
    } else {
        let mut out = Vec::new();
        raw_snappy_into(data, limit, &mut out)?;
        Ok(out)
    }
}

fn raw_snappy_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let n = snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"))?;
    if out.len().saturating_add(n) > limit {
        return Err(format!("snappy: decompressed size exceeds {limit} bytes"));
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| format!("snappy: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_codec_round_trips_and_is_bounded() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let lz = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zs = zstd::encode_all(&data[..], 1).unwrap();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in data.chunks(32 * 1024) {
            let c = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&u32::try_from(c.len()).unwrap().to_be_bytes());
            xerial.extend_from_slice(&c);
        }
        for (codec, bytes) in [
            (Compression::Gzip, &gz),
            (Compression::Lz4, &lz),
            (Compression::Zstd, &zs),
            (Compression::Snappy, &raw_snappy),
            (Compression::Snappy, &xerial),
        ] {
            assert_eq!(
                decompress(codec, bytes, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            let e = decompress(codec, bytes, data.len() - 1).unwrap_err();
            assert!(e.contains("exceeds"), "{codec:?}: {e}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in Compression::ALL {
            if codec == Compression::None {
                continue;
            }
            for junk in [
                &b""[..],
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff",
                b"garbage garbage garbage",
            ] {
                assert!(
                    decompress(codec, junk, 1 << 20).is_err() || junk.is_empty(),
                    "{codec:?} {junk:?}"
                );
            }
        }
    }

    #[test]
    fn names_and_attributes() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_attributes(c.to_kp() as i16), Some(c));
        }
        assert_eq!(Compression::from_name("zstd"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("brotli"), None);
        assert_eq!(Compression::from_attributes(5), None);
    }
}
