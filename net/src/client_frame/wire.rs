//! Little-endian primitives shared by the request and response codecs: a
//! bounds-checked [`Reader`] over one frame body and the matching writers.
//!
//! Invariant: a `Reader` never reads past the slice it was given; every length
//! it reads is checked against its limit and against the bytes that remain
//! before any slicing, and a failure says which field, how big and what limit.

use super::status::Status;
use super::WireVersion;
use crate::limits::{ERROR_MESSAGE_SIZE_MAX, KEY_SIZE_MAX, VALUE_SIZE_MAX};

/// Why a body failed to decode: the status to answer with and a message
/// with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyError {
    pub status: Status,
    pub message: String,
}

impl BodyError {
    #[cold]
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        BodyError {
            status,
            message: message.into(),
        }
    }

    #[cold]
    #[inline(never)]
    fn short(what: &str, needed: usize, remaining: usize) -> Self {
        BodyError::new(
            Status::BadRequest,
            format!("{what} needs {needed} bytes but only {remaining} remain in the frame"),
        )
    }
}

/// A cursor over one frame body. Reads borrow from the body (zero-copy).
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes between `start` (an earlier position) and the current one.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    #[inline]
    pub(crate) fn bytes(&mut self, len: usize, what: &str) -> Result<&'a [u8], BodyError> {
        if len > self.remaining() {
            return Err(BodyError::short(what, len, self.remaining()));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BodyError> {
        let bytes = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, BodyError> {
        Ok(self.array::<1>(what)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, BodyError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, BodyError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, BodyError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, BodyError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn version(&mut self, what: &str) -> Result<WireVersion, BodyError> {
        let hlc = self.u64(what)?;
        let node = self.u32(what)?;
        Ok(WireVersion { hlc, node })
    }

    /// A boolean byte: 0 or 1, anything else is malformed.
    pub(crate) fn flag(&mut self, what: &str) -> Result<bool, BodyError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(BodyError::new(
                Status::BadRequest,
                format!("{what} must be 0 or 1, got {other}"),
            )),
        }
    }

    /// A key: `u16` length (at most `KEY_SIZE_MAX`) then the bytes.
    #[inline]
    pub(crate) fn key(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = usize::from(self.u16(what)?);
        if len > KEY_SIZE_MAX {
            return Err(too_large(Status::KeyTooLarge, what, len, KEY_SIZE_MAX));
        }
        self.bytes(len, what)
    }

    /// A value: `u32` length (at most `VALUE_SIZE_MAX`) then the bytes.
    #[inline]
    pub(crate) fn value(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = self.u32(what)? as usize;
        if len > VALUE_SIZE_MAX {
            return Err(too_large(Status::ValueTooLarge, what, len, VALUE_SIZE_MAX));
        }
        self.bytes(len, what)
    }

    /// Free text (stats): `u32` length then the bytes, bounded by the frame.
    pub(crate) fn text(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = self.u32(what)? as usize;
        self.bytes(len, what)
    }

    /// An error message: `u16` length (at most `ERROR_MESSAGE_SIZE_MAX`).
    pub(crate) fn message(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = usize::from(self.u16(what)?);
        if len > ERROR_MESSAGE_SIZE_MAX {
            return Err(BodyError::new(
                Status::BadRequest,
                format!(
                    "{what} of {len} bytes exceeds the limit of {ERROR_MESSAGE_SIZE_MAX} bytes"
                ),
            ));
        }
        self.bytes(len, what)
    }

    /// A list count: `u32`, at most `count_max`, and each item needs at least
    /// `item_size_min` bytes, so a hostile count is refused before iterating.
    pub(crate) fn count(
        &mut self,
        what: &str,
        count_max: usize,
        too_many: Status,
        item_size_min: usize,
    ) -> Result<usize, BodyError> {
        let count = self.u32(what)? as usize;
        if count > count_max {
            return Err(BodyError::new(
                too_many,
                format!("{what} of {count} exceeds the limit of {count_max}"),
            ));
        }
        if count.saturating_mul(item_size_min) > self.remaining() {
            return Err(BodyError::short(
                what,
                count * item_size_min,
                self.remaining(),
            ));
        }
        Ok(count)
    }

    /// Fails unless the whole body was consumed.
    pub(crate) fn finish(&self, what: &str) -> Result<(), BodyError> {
        if self.remaining() != 0 {
            return Err(BodyError::new(
                Status::BadRequest,
                format!(
                    "{} trailing bytes after the body of {what}",
                    self.remaining()
                ),
            ));
        }
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn too_large(status: Status, what: &str, len: usize, len_max: usize) -> BodyError {
    BodyError::new(
        status,
        format!("{what} of {len} bytes exceeds the limit of {len_max} bytes"),
    )
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_version(out: &mut Vec<u8>, v: WireVersion) {
    put_u64(out, v.hlc);
    put_u32(out, v.node);
}

/// Writes a key. Panics if it cannot be represented (over `u16::MAX` bytes):
/// callers check keys against `KEY_SIZE_MAX` before encoding.
pub(crate) fn put_key(out: &mut Vec<u8>, key: &[u8]) {
    let len = u16::try_from(key.len());
    assert!(len.is_ok(), "key of {} bytes cannot be encoded", key.len());
    put_u16(out, len.unwrap_or(u16::MAX));
    out.extend_from_slice(key);
}

/// Writes a value or text. Panics over `u32::MAX` bytes (frames are smaller).
pub(crate) fn put_value(out: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len());
    assert!(
        len.is_ok(),
        "value of {} bytes cannot be encoded",
        value.len()
    );
    put_u32(out, len.unwrap_or(u32::MAX));
    out.extend_from_slice(value);
}

/// Writes a list count. Panics over `u32::MAX` items.
pub(crate) fn put_count(out: &mut Vec<u8>, count: usize) {
    let len = u32::try_from(count);
    assert!(len.is_ok(), "list of {count} items cannot be encoded");
    put_u32(out, len.unwrap_or(u32::MAX));
}

/// Writes an error message, truncated to `ERROR_MESSAGE_SIZE_MAX` bytes.
pub(crate) fn put_message(out: &mut Vec<u8>, message: &[u8]) {
    let message = &message[..message.len().min(ERROR_MESSAGE_SIZE_MAX)];
    // ERROR_MESSAGE_SIZE_MAX <= u16::MAX is checked in limits.rs.
    put_u16(out, message.len() as u16);
    out.extend_from_slice(message);
}
