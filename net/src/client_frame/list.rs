//! Zero-copy lists in frame bodies: MGET keys, MPUT pairs, MGET answers and
//! SCAN entries.
//!
//! A list is either *decoded* (a validated span of the receive buffer plus its
//! item count; iterating re-reads the items in place, no allocation) or
//! *borrowed* from a slice the caller built (for encoding). Both compare equal
//! when they yield the same items.
//!
//! Wire layout of every list: `u32 count` then `count` items back to back (the
//! item layouts are drawn in `client_frame/mod.rs`). Decoding checks the count
//! against its limit and against the bytes left (each item has a minimum size)
//! before reading any item, then validates every item, so iteration afterwards
//! cannot fail.

use std::fmt;

use super::status::Status;
use super::wire::{put_count, put_key, put_u8, put_value, put_version, BodyError, Reader};
use super::{ScanEntry, WireVersion};
use crate::limits::{BATCH_KEYS_MAX, SCAN_LIMIT_MAX};

#[derive(Clone, Copy)]
enum Repr<'a, T> {
    Wire { bytes: &'a [u8], count: usize },
    Slice(&'a [T]),
}

#[derive(Clone)]
enum IterRepr<'a, T> {
    Wire { reader: Reader<'a>, left: usize },
    Slice(std::slice::Iter<'a, T>),
}

/// An MGET key.
pub type KeyItem<'a> = &'a [u8];
/// An MPUT `(key, value)` pair.
pub type PairItem<'a> = (&'a [u8], &'a [u8]);
/// One MGET answer: the value and its version, or `None` if the key is absent.
pub type ValueItem<'a> = Option<(&'a [u8], WireVersion)>;

fn read_key<'a>(r: &mut Reader<'a>) -> Result<KeyItem<'a>, BodyError> {
    r.key("MGET key")
}
fn write_key(out: &mut Vec<u8>, item: &KeyItem<'_>) {
    put_key(out, item);
}

fn read_pair<'a>(r: &mut Reader<'a>) -> Result<PairItem<'a>, BodyError> {
    Ok((r.key("MPUT key")?, r.value("MPUT value")?))
}
fn write_pair(out: &mut Vec<u8>, item: &PairItem<'_>) {
    put_key(out, item.0);
    put_value(out, item.1);
}

fn read_value<'a>(r: &mut Reader<'a>) -> Result<ValueItem<'a>, BodyError> {
    if !r.flag("MGET answer presence")? {
        return Ok(None);
    }
    let version = r.version("MGET answer version")?;
    let value = r.value("MGET answer value")?;
    Ok(Some((value, version)))
}
fn write_value(out: &mut Vec<u8>, item: &ValueItem<'_>) {
    match item {
        None => put_u8(out, 0),
        Some((value, version)) => {
            put_u8(out, 1);
            put_version(out, *version);
            put_value(out, value);
        }
    }
}

fn read_entry<'a>(r: &mut Reader<'a>) -> Result<ScanEntry<'a>, BodyError> {
    let key = r.key("SCAN entry key")?;
    let version = r.version("SCAN entry version")?;
    let value = r.value("SCAN entry value")?;
    Ok(ScanEntry {
        key,
        value,
        version,
    })
}
fn write_entry(out: &mut Vec<u8>, item: &ScanEntry<'_>) {
    put_key(out, item.key);
    put_version(out, item.version);
    put_value(out, item.value);
}

macro_rules! wire_list {
    (
        $(#[$doc:meta])*
        $name:ident, $iter:ident, $item:ident,
        read = $read:ident, write = $write:ident,
        count_max = $count_max:expr, too_many = $too_many:expr, item_size_min = $item_size_min:expr,
        what = $what:expr
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a> {
            repr: Repr<'a, $item<'a>>,
        }

        impl<'a> $name<'a> {
            /// A list borrowing `items` (for encoding).
            #[must_use]
            pub fn new(items: &'a [$item<'a>]) -> Self {
                $name { repr: Repr::Slice(items) }
            }

            /// Number of items.
            #[must_use]
            pub fn len(&self) -> usize {
                match self.repr {
                    Repr::Wire { count, .. } => count,
                    Repr::Slice(items) => items.len(),
                }
            }

            /// Whether the list has no items.
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The items in order, borrowed from the frame (or the slice).
            #[must_use]
            pub fn iter(&self) -> $iter<'a> {
                let inner = match self.repr {
                    Repr::Wire { bytes, count } => IterRepr::Wire {
                        reader: Reader::new(bytes),
                        left: count,
                    },
                    Repr::Slice(items) => IterRepr::Slice(items.iter()),
                };
                $iter { inner }
            }

            /// Reads `u32 count` and validates every item; the list borrows them.
            pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, BodyError> {
                let count = r.count($what, $count_max, $too_many, $item_size_min)?;
                let start = r.position();
                for _ in 0..count {
                    $read(r)?;
                }
                Ok($name {
                    repr: Repr::Wire { bytes: r.since(start), count },
                })
            }

            /// Writes `u32 count` then every item.
            pub(crate) fn encode(&self, out: &mut Vec<u8>) {
                put_count(out, self.len());
                for item in self.iter() {
                    $write(out, &item);
                }
            }
        }

        /// Iterator over the items of a list, in order.
        #[derive(Clone)]
        pub struct $iter<'a> {
            inner: IterRepr<'a, $item<'a>>,
        }

        impl<'a> Iterator for $iter<'a> {
            type Item = $item<'a>;

            fn next(&mut self) -> Option<Self::Item> {
                match &mut self.inner {
                    IterRepr::Wire { reader, left } => {
                        if *left == 0 {
                            return None;
                        }
                        *left -= 1;
                        // Every item was validated by `decode`; an error here
                        // would be a bug, and ends the iteration rather than panic.
                        $read(reader).ok()
                    }
                    IterRepr::Slice(items) => items.next().copied(),
                }
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                let n = match &self.inner {
                    IterRepr::Wire { left, .. } => *left,
                    IterRepr::Slice(items) => items.len(),
                };
                (n, Some(n))
            }
        }

        impl ExactSizeIterator for $iter<'_> {}

        impl<'a> IntoIterator for $name<'a> {
            type Item = $item<'a>;
            type IntoIter = $iter<'a>;
            fn into_iter(self) -> $iter<'a> {
                self.iter()
            }
        }

        impl<'a> IntoIterator for &$name<'a> {
            type Item = $item<'a>;
            type IntoIter = $iter<'a>;
            fn into_iter(self) -> $iter<'a> {
                self.iter()
            }
        }

        impl PartialEq for $name<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.len() == other.len() && self.iter().eq(other.iter())
            }
        }

        impl Eq for $name<'_> {}

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.iter()).finish()
            }
        }
    };
}

wire_list!(
    /// The keys of an MGET (at most `BATCH_KEYS_MAX`). Item: `u16 len | key`.
    KeyList, KeyListIter, KeyItem,
    read = read_key, write = write_key,
    count_max = BATCH_KEYS_MAX, too_many = Status::TooManyKeys, item_size_min = 2,
    what = "MGET key count"
);

wire_list!(
    /// The `(key, value)` pairs of an MPUT (at most `BATCH_KEYS_MAX`).
    /// Item: `u16 klen | key | u32 vlen | value`.
    PairList, PairListIter, PairItem,
    read = read_pair, write = write_pair,
    count_max = BATCH_KEYS_MAX, too_many = Status::TooManyKeys, item_size_min = 6,
    what = "MPUT pair count"
);

wire_list!(
    /// The answers of an MGET, one per requested key in request order.
    /// Item: `u8 present` then, if 1, `version (12) | u32 vlen | value`.
    ValueList, ValueListIter, ValueItem,
    read = read_value, write = write_value,
    count_max = BATCH_KEYS_MAX, too_many = Status::TooManyKeys, item_size_min = 1,
    what = "MGET answer count"
);

wire_list!(
    /// The entries of one SCAN page, in key order (at most `SCAN_LIMIT_MAX`).
    /// Item: `u16 klen | key | version (12) | u32 vlen | value`.
    EntryList, EntryListIter, ScanEntry,
    read = read_entry, write = write_entry,
    count_max = SCAN_LIMIT_MAX as usize, too_many = Status::BadRequest, item_size_min = 18,
    what = "SCAN entry count"
);
