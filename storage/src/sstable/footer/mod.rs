//! The footer (last 72 bytes of every table) and the properties section.
//!
//! ```text
//! footer (FOOTER_SIZE bytes, ends exactly at the end of the file)
//!  0  data_end       u64   end of the data blocks (4 KiB-aligned)
//!  8  index  offset u64 | len u32 | crc32c u32
//! 24  bloom  offset u64 | len u32 | crc32c u32
//! 40  props  offset u64 | len u32 | crc32c u32
//! 56  format_version u32
//! 60  footer_crc     u32   crc32c of bytes [0, 60) and [64, 72)
//! 64  magic          u64   "RINGKVST"
//!
//! properties section (its crc32c is in the footer)
//!  entry_count u64 | tombstone_count u64 | max_hlc u64 | max_node u32
//!  | smallest_len u16 | smallest key | largest_len u16 | largest key
//! ```
//!
//! [`decode`] checks magic, checksum and version, then that every section
//! lies between `data_end` and the footer, so the reader can slice them
//! without further checks.

use super::{check_crc, Cursor, DecodeError, FORMAT_VERSION, MAGIC};
use crate::limits::{BLOCK_SIZE, KEY_SIZE_MAX};
use crate::types::Version;

/// Size of the footer in bytes.
pub const FOOTER_SIZE: usize = 72;

/// Where a metadata section lives and its checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// crc32c of the section's bytes.
    pub crc: u32,
}

/// The decoded footer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footer {
    /// End of the data blocks (4 KiB-aligned).
    pub data_end: u64,
    /// The block index.
    pub index: Section,
    /// The bloom filter.
    pub bloom: Section,
    /// The properties.
    pub props: Section,
}

impl Footer {
    /// Encodes the footer (exactly [`FOOTER_SIZE`] bytes).
    pub fn encode(&self) -> [u8; FOOTER_SIZE] {
        let mut out = [0u8; FOOTER_SIZE];
        out[0..8].copy_from_slice(&self.data_end.to_le_bytes());
        for (i, s) in [self.index, self.bloom, self.props].iter().enumerate() {
            let at = 8 + 16 * i;
            out[at..at + 8].copy_from_slice(&s.offset.to_le_bytes());
            out[at + 8..at + 12].copy_from_slice(&s.len.to_le_bytes());
            out[at + 12..at + 16].copy_from_slice(&s.crc.to_le_bytes());
        }
        out[56..60].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[64..72].copy_from_slice(&MAGIC.to_le_bytes());
        let crc = footer_crc(&out);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

fn footer_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&bytes[0..60]), &bytes[64..72])
}

/// Decodes the footer from the last [`FOOTER_SIZE`] bytes of a file of
/// `file_size` bytes. Offsets in errors are relative to the footer start.
pub fn decode(bytes: &[u8], file_size: u64) -> Result<Footer, DecodeError> {
    if bytes.len() != FOOTER_SIZE {
        return Err(DecodeError::new(
            0,
            format!("footer of {} bytes, expected {FOOTER_SIZE}", bytes.len()),
        ));
    }
    let mut c = Cursor::new(bytes, 64);
    let magic = c.u64("magic")?;
    if magic != MAGIC {
        return Err(DecodeError::new(
            64,
            format!("bad magic {magic:#018x}: not a ringkv table"),
        ));
    }
    let stored = Cursor::new(bytes, 60).u32("footer checksum")?;
    let got = footer_crc(bytes);
    if stored != got {
        return Err(DecodeError::new(
            60,
            format!("footer checksum mismatch: expected {stored:#010x}, got {got:#010x}"),
        ));
    }
    let version = Cursor::new(bytes, 56).u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::new(
            56,
            format!("format version {version}, this build reads {FORMAT_VERSION}"),
        ));
    }
    let mut c = Cursor::new(bytes, 0);
    let data_end = c.u64("data end")?;
    let meta_end = file_size
        .checked_sub(FOOTER_SIZE as u64)
        .ok_or_else(|| DecodeError::new(0, "file smaller than a footer"))?;
    if data_end % BLOCK_SIZE as u64 != 0 || data_end > meta_end {
        return Err(DecodeError::new(
            0,
            format!("data end {data_end} unaligned or past the metadata end {meta_end}"),
        ));
    }
    let mut sections = [Section::default(); 3];
    for (i, s) in sections.iter_mut().enumerate() {
        let at = c.pos();
        *s = Section {
            offset: c.u64("section offset")?,
            len: c.u32("section length")?,
            crc: c.u32("section checksum")?,
        };
        let end = s.offset.checked_add(s.len as u64);
        if s.offset < data_end || end.is_none_or(|e| e > meta_end) {
            return Err(DecodeError::new(
                at,
                format!(
                    "section {i} at {} + {} outside [{data_end}, {meta_end})",
                    s.offset, s.len
                ),
            ));
        }
    }
    Ok(Footer {
        data_end,
        index: sections[0],
        bloom: sections[1],
        props: sections[2],
    })
}

/// The properties of a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// Number of entries.
    pub entry_count: u64,
    /// Number of tombstones among them.
    pub tombstone_count: u64,
    /// Highest version in the table.
    pub max_version: Version,
    /// Smallest key (empty when the table is empty).
    pub smallest_key: Vec<u8>,
    /// Largest key (empty when the table is empty).
    pub largest_key: Vec<u8>,
}

impl Properties {
    /// Encodes the properties section.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.entry_count.to_le_bytes());
        out.extend_from_slice(&self.tombstone_count.to_le_bytes());
        out.extend_from_slice(&self.max_version.hlc.to_le_bytes());
        out.extend_from_slice(&self.max_version.node.to_le_bytes());
        for key in [&self.smallest_key, &self.largest_key] {
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
        }
    }
}

/// Decodes and validates a properties section whose crc32c is `crc`.
pub fn decode_properties(bytes: &[u8], crc: u32) -> Result<Properties, DecodeError> {
    check_crc(bytes, crc, "properties")?;
    let mut c = Cursor::new(bytes, 0);
    let entry_count = c.u64("entry count")?;
    let tombstone_count = c.u64("tombstone count")?;
    let hlc = c.u64("max version")?;
    let node = c.u32("max version node")?;
    let mut keys = [Vec::new(), Vec::new()];
    for key in &mut keys {
        let at = c.pos();
        let len = c.u16("key length")? as usize;
        if len > KEY_SIZE_MAX {
            return Err(DecodeError::new(
                at,
                format!("key length {len} over the limit {KEY_SIZE_MAX}"),
            ));
        }
        *key = c.take(len, "key")?.to_vec();
    }
    if c.pos() != bytes.len() {
        return Err(DecodeError::new(
            c.pos(),
            "stray bytes after the properties",
        ));
    }
    let [smallest_key, largest_key] = keys;
    if tombstone_count > entry_count || (entry_count > 0 && smallest_key > largest_key) {
        return Err(DecodeError::new(
            0,
            "inconsistent properties (counts or key range)",
        ));
    }
    Ok(Properties {
        entry_count,
        tombstone_count,
        max_version: Version { hlc, node },
        smallest_key,
        largest_key,
    })
}

#[cfg(test)]
mod tests;
