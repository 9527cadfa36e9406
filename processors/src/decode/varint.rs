//! Avro's zig-zag variable-length longs, read from a byte slice.
//!
//! Only the object-container framing is parsed by hand (to cache header
//! schemas, see `ocf`); record bodies are decoded by `apache-avro`.

/// Reads a zig-zag varint long, advancing `input`. `None` on truncation or
/// on an encoding longer than 10 bytes.
pub(crate) fn read_long(input: &mut &[u8]) -> Option<i64> {
    let mut acc: u64 = 0;
    for (i, &b) in input.iter().enumerate().take(10) {
        acc |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *input = &input[i + 1..];
            // zig-zag: (n >> 1) ^ -(n & 1); the casts reinterpret bits.
            #[allow(clippy::cast_possible_wrap)]
            return Some(((acc >> 1) as i64) ^ -((acc & 1) as i64));
        }
    }
    None
}

/// Reads a length-prefixed byte string, advancing `input`.
pub(crate) fn read_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(read_long(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (head, tail) = input.split_at(len);
    *input = tail;
    Some(head)
}

/// Appends a zig-zag varint long.
pub(crate) fn write_long(out: &mut Vec<u8>, n: i64) {
    // zig-zag then base-128; the casts reinterpret bits.
    #[allow(clippy::cast_sign_loss)]
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        // Truncation to the low 7 bits is the point.
        #[allow(clippy::cast_possible_truncation)]
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a length-prefixed byte string.
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        for (n, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
            let mut s = &bytes[..];
            assert_eq!(read_long(&mut s), Some(n));
            assert!(s.is_empty());
        }
    }

    #[test]
    fn truncated_and_overlong_are_rejected() {
        assert_eq!(read_long(&mut &[0x80u8][..]), None);
        assert_eq!(read_long(&mut &[0xffu8; 11][..]), None);
        assert_eq!(read_bytes(&mut &[0x04u8, 1][..]), None);
        assert_eq!(read_bytes(&mut &[0x03u8][..]), None, "negative length");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(n in any::<i64>()) {
            let mut out = Vec::new();
            write_long(&mut out, n);
            let mut s = &out[..];
            prop_assert_eq!(read_long(&mut s), Some(n));
            prop_assert!(s.is_empty());
        }
    }
}
