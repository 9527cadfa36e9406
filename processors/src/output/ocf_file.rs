//! Writing Avro Object Container Files block by block, with explicit
//! durability points.
//!
//! `apache_avro::Writer` borrows its schema for its whole life, which does
//! not fit a long-lived writer whose schema arrives with the data; and it
//! offers no fsync point. The container format is small (magic, a metadata
//! map, a sync marker, then `count, size, data, sync` blocks), so it is
//! written here. A file is created as `<name>.part` and renamed to its final
//! name only when finished, so a reader of the directory never sees a file
//! that is still growing.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use apache_avro::{Codec, DeflateSettings};

use crate::decode::ocf::MAGIC;
use crate::decode::varint::{write_bytes, write_long};

/// Block size after which a block is written out.
const BLOCK_BYTES: usize = 1 << 20;

/// Compression of container blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcfCodec {
    /// Uncompressed.
    #[default]
    Null,
    /// Raw deflate (RFC 1951).
    Deflate,
}

impl OcfCodec {
    fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Deflate => "deflate",
        }
    }
}

/// The suffix of files being written.
pub const PART_SUFFIX: &str = ".part";

/// One container file being written.
#[derive(Debug)]
pub struct OcfFile {
    file: File,
    final_path: PathBuf,
    part_path: PathBuf,
    sync: [u8; 16],
    codec: OcfCodec,
    block: Vec<u8>,
    block_records: usize,
    /// Bytes written to the file so far (header and finished blocks).
    written: u64,
    records: u64,
}

fn sync_marker() -> [u8; 16] {
    // Random per file: RandomState is seeded from the OS per process and
    // varies per instance.
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

impl OcfFile {
    /// Creates `<final_path>.part` and writes the header.
    ///
    /// # Errors
    /// I/O errors.
    pub fn create(final_path: &Path, schema_json: &str, codec: OcfCodec) -> io::Result<Self> {
        let mut part = final_path.as_os_str().to_owned();
        part.push(PART_SUFFIX);
        let part_path = PathBuf::from(part);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)?;
        let sync = sync_marker();
        let mut header = Vec::with_capacity(schema_json.len() + 64);
        header.extend_from_slice(MAGIC);
        write_long(&mut header, 2);
        write_bytes(&mut header, b"avro.schema");
        write_bytes(&mut header, schema_json.as_bytes());
        write_bytes(&mut header, b"avro.codec");
        write_bytes(&mut header, codec.name().as_bytes());
        write_long(&mut header, 0);
        header.extend_from_slice(&sync);
        file.write_all(&header)?;
        Ok(OcfFile {
            file,
            final_path: final_path.to_owned(),
            part_path,
            sync,
            codec,
            block: Vec::with_capacity(BLOCK_BYTES),
            block_records: 0,
            written: header.len() as u64,
            records: 0,
        })
    }

    /// Appends one encoded record; writes a block when it is large enough.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append(&mut self, datum: &[u8]) -> io::Result<()> {
        self.block.extend_from_slice(datum);
        self.block_records += 1;
        self.records += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.block_records == 0 {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.block);
        if self.codec == OcfCodec::Deflate {
            Codec::Deflate(DeflateSettings::default())
                .compress(&mut data)
                .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        }
        let mut head = Vec::with_capacity(20);
        write_long(
            &mut head,
            i64::try_from(self.block_records).unwrap_or(i64::MAX),
        );
        write_long(&mut head, i64::try_from(data.len()).unwrap_or(i64::MAX));
        self.file.write_all(&head)?;
        self.file.write_all(&data)?;
        self.file.write_all(&self.sync)?;
        self.written += (head.len() + data.len() + self.sync.len()) as u64;
        data.clear();
        self.block = data;
        self.block_records = 0;
        Ok(())
    }

    /// Writes the pending block and fsyncs the file: everything appended
    /// so far is durable (in the `.part` file).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&mut self) -> io::Result<()> {
        self.write_block()?;
        self.file.sync_data()
    }

    /// Syncs, renames to the final name and syncs the directory.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        self.sync()?;
        std::fs::rename(&self.part_path, &self.final_path)?;
        if let Some(dir) = self.final_path.parent() {
            // Persist the rename; opening a directory read-only works on Unix.
            if let Ok(d) = File::open(dir) {
                d.sync_all()?;
            }
        }
        Ok(self.final_path)
    }

    /// Bytes in the file plus the pending block.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.written + self.block.len() as u64
    }

    /// Records appended.
    #[must_use]
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The name the file gets when finished.
    #[must_use]
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }
}
