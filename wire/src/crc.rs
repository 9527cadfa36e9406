//! The batch CRC-32C (Castagnoli): it covers the bytes from `attributes` (byte 21) to the end
//! of the batch, so the base offset, length, leader epoch and magic lie outside it.

use crate::header::{BatchError, BatchHeader, CRC_AT};

/// Where the CRC-covered bytes start (the attributes field).
pub const CRC_START: usize = 21;

/// The CRC-32C of the covered range of `batch` (which holds exactly one batch).
pub fn checksum(batch: &[u8]) -> Result<u32, BatchError> {
    let covered = batch.get(CRC_START..).ok_or(BatchError::TruncatedHeader {
        available: batch.len(),
    })?;
    Ok(crc32c::crc32c(covered))
}

/// Checks the stored CRC of `batch` (exactly one batch, header first) against its bytes.
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    let stored = BatchHeader::read(batch)?.crc;
    let computed = checksum(batch)?;
    if stored == computed {
        Ok(())
    } else {
        Err(BatchError::CrcMismatch { stored, computed })
    }
}

/// Recomputes the CRC of `batch` (exactly one batch, header first) and stores it in the header;
/// returns it.
pub fn recompute_crc(batch: &mut [u8]) -> Result<u32, BatchError> {
    BatchHeader::read(batch)?;
    let crc = checksum(batch)?;
    if let Some(field) = batch.get_mut(CRC_AT..CRC_AT + 4) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recompute_then_verify() {
        let mut b = vec![7u8; 80];
        assert!(matches!(
            verify_crc(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
        let crc = recompute_crc(&mut b).unwrap();
        assert_eq!(crc, crc32c::crc32c(&b[21..]));
        verify_crc(&b).unwrap();
        b[0] ^= 0xff; // base offset: not covered
        verify_crc(&b).unwrap();
        b[79] ^= 1;
        assert!(verify_crc(&b).is_err());
    }

    #[test]
    fn short_input_is_an_error() {
        assert_eq!(
            verify_crc(&[0; 20]),
            Err(BatchError::TruncatedHeader { available: 20 })
        );
        assert!(recompute_crc(&mut [0; 60]).is_err());
        assert!(checksum(&[0; 20]).is_err());
        assert_eq!(checksum(&[0; 21]).unwrap(), crc32c::crc32c(&[]));
    }
}
