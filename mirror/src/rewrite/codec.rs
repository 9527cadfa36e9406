//! Decompressing and recompressing a batch's records section.
//!
//! Decompression goes through the client's bounded decoders (a small
//! hostile batch cannot expand without limit; both snappy framings are
//! read). Recompression uses `kafka_protocol`'s compressors, the same ones
//! the producer's batch encoder uses, so a rewritten batch is framed the
//! way every Kafka client expects. Only the records section is touched:
//! record boundaries, headers and offsets stay byte-identical.

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use starlog_clients::compression::{decompress, Compression};

/// Codec name for messages.
pub fn name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Decompresses a records section, refusing more than `limit` bytes.
pub fn expand(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    decompress(codec, data, limit)
}

/// Compresses a records section with `codec`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::with_capacity(data.len() / 2 + 64);
    let fill = |b: &mut BytesMut| {
        b.put_slice(data);
        Ok(())
    };
    let r = match codec {
        Compression::None => {
            out.put_slice(data);
            Ok(())
        }
        Compression::Gzip => <Gzip as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Snappy => <Snappy as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Lz4 => <Lz4 as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Zstd => <Zstd as Compressor<BytesMut>>::compress(&mut out, fill),
    };
    r.map_err(|e| format!("{e:#}"))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in Compression::ALL {
            let c = compress(codec, &data).unwrap();
            let back = expand(codec, &c, 1 << 20).unwrap();
            assert_eq!(back, data, "{}", name(codec));
        }
    }

    #[test]
    fn expansion_is_bounded() {
        let data = vec![0u8; 100_000];
        let c = compress(Compression::Zstd, &data).unwrap();
        assert!(expand(Compression::Zstd, &c, 1000).is_err());
        assert!(expand(Compression::Gzip, b"not gzip", 1000).is_err());
    }
}
