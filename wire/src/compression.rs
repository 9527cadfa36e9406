//! The record batch compression codecs (attribute bits 0-2): decompression bounded in size,
//! and compression in the framings every Kafka client reads.
//!
//! Decoding reads bytes from the network: every codec is read through a size limit so a small
//! "zip bomb" batch cannot exhaust memory, and Kafka's two snappy framings (xerial-java blocks,
//! and raw snappy as librdkafka can send) are both accepted. Encoding writes what the Java
//! client writes: gzip at the default level, snappy in xerial blocks of 32 KiB, the LZ4 frame
//! format with independent 64 KiB blocks, zstd at level 3.

use std::io::{Read, Write};

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
    /// Every codec.
    pub const ALL: [Self; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

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

    /// The attribute bits 0-2 of this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Parses a `compression.type` name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The `compression.type` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Why a records section does not (de)compress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The output would pass the caller's limit.
    #[error("{codec}: decompressed size exceeds {limit} bytes")]
    TooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The input is not valid for the codec.
    #[error("{codec}: {reason}")]
    Corrupt {
        /// The codec's name.
        codec: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The encoder failed.
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec's name.
        codec: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

fn corrupt(codec: Compression, reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

/// Decompresses `data` (the records section of a batch), refusing output larger than `limit`
/// bytes.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), limit, codec),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit, codec),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(d, limit, codec)
        }
        Compression::Snappy => snappy(data, limit),
    }
}

fn read_bounded<R: Read>(
    r: R,
    limit: usize,
    codec: Compression,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge {
            codec: codec.name(),
            limit,
        });
    }
    Ok(out)
}

/// The xerial-java snappy stream header: magic, version 1, compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// Uncompressed bytes per xerial block on write.
const XERIAL_BLOCK: usize = 32 * 1024;

fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let c = Compression::Snappy;
    if data.len() >= 16 && data.get(..8) == XERIAL_HEADER.get(..8) {
        let mut rest = data.get(16..).unwrap_or_default();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let Some((n, tail)) = rest.split_first_chunk::<4>() else {
                return Err(corrupt(c, "truncated block length"));
            };
            let n = u32::from_be_bytes(*n) as usize;
            let Some((block, tail)) = tail.split_at_checked(n) else {
                return Err(corrupt(
                    c,
                    format!("block of {n} bytes, {} left", tail.len()),
                ));
            };
            raw_snappy_into(block, limit, &mut out)?;
            rest = tail;
        }
        Ok(out)
    } else {
        let mut out = Vec::new();
        raw_snappy_into(data, limit, &mut out)?;
        Ok(out)
    }
}

fn raw_snappy_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let c = Compression::Snappy;
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(c, e))?;
    if out.len().saturating_add(n) > limit {
        return Err(CompressionError::TooLarge {
            codec: c.name(),
            limit,
        });
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, out.get_mut(start..).unwrap_or_default())
        .map_err(|e| corrupt(c, e))?;
    Ok(())
}

/// Compresses a records section with `codec`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let failed = |e: &dyn std::fmt::Display| CompressionError::Compress {
        codec: codec.name(),
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            e.write_all(data).map_err(|e| failed(&e))?;
            e.finish().map_err(|e| failed(&e))
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(data.len() / 2 + 64);
            out.extend_from_slice(XERIAL_HEADER);
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = encoder.compress_vec(chunk).map_err(|e| failed(&e))?;
                let len = u32::try_from(block.len()).map_err(|e| failed(&e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2 + 64),
            );
            e.write_all(data).map_err(|e| failed(&e))?;
            e.finish().map_err(|e| failed(&e))
        }
        Compression::Zstd => {
            let mut out = Vec::with_capacity(data.len() / 2 + 64);
            zstd::stream::copy_encode(data, &mut out, 3).map_err(|e| failed(&e))?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let mut xerial = XERIAL_HEADER.to_vec();
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
            assert!(
                matches!(e, CompressionError::TooLarge { .. }),
                "{codec:?}: {e}"
            );
            assert!(e.to_string().contains("exceeds"), "{codec:?}: {e}");
        }
    }

    #[test]
    fn own_compression_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in Compression::ALL {
            let c = compress(codec, &data).unwrap();
            let back = decompress(codec, &c, 1 << 20).unwrap();
            assert_eq!(back, data, "{}", codec.name());
        }
        let snappy = compress(Compression::Snappy, &data).unwrap();
        assert_eq!(&snappy[..16], XERIAL_HEADER, "xerial framing on write");
    }

    #[test]
    fn expansion_is_bounded() {
        let data = vec![0u8; 100_000];
        let c = compress(Compression::Zstd, &data).unwrap();
        assert!(decompress(Compression::Zstd, &c, 1000).is_err());
        assert!(decompress(Compression::Gzip, b"not gzip", 1000).is_err());
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
            assert_eq!(Compression::from_attributes(c.attribute_bits()), Some(c));
            assert_eq!(Compression::from_name(c.name()), Some(c));
        }
        assert_eq!(Compression::from_name("zstd"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("brotli"), None);
        assert_eq!(Compression::from_attributes(5), None);
    }
}
