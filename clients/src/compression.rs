//! Record batch compression: the codecs are `starlog-wire`'s (decompression bounded in size,
//! both snappy framings read). Encoding is left to `kafka_protocol`'s batch encoder, which
//! applies the codec named in the batch attributes; this maps our codec to its.

use kafka_protocol::records::Compression as KpCompression;

pub use starlog_wire::Compression;

/// The `kafka_protocol` codec of `c`, for its batch encoder.
pub(crate) fn to_kp(c: Compression) -> KpCompression {
    match c {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_protocol_codecs_have_the_same_attribute_bits() {
        for c in Compression::ALL {
            assert_eq!(to_kp(c) as i16, c.attribute_bits());
            assert_eq!(Compression::from_attributes(to_kp(c) as i16), Some(c));
        }
    }
}
