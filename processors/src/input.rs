//! The record a runner feeds a pipeline: bytes and where they came from.

use crate::sink::Header;

/// One input message and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value (the alert bytes).
    pub value: &'a [u8],
    /// Record headers.
    pub headers: &'a [Header<'a>],
}
