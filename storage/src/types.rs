//! Value types shared by every part of the engine: versions, records, table
//! metadata. Plain data, no I/O.

/// The version of a write: a hybrid-logical-clock timestamp and the id of the
/// node that stamped it. Ordered by `(hlc, node)`; the higher version wins
/// (last-write-wins), whatever order writes arrive in.
///
/// `hlc` packs physical milliseconds since the Unix epoch in its upper 48 bits
/// and a logical counter in its lower 16 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Hybrid logical clock: `physical_ms << 16 | logical`.
    pub hlc: u64,
    /// Id of the node whose coordinator stamped the write (tie breaker).
    pub node: u32,
}

impl Version {
    /// The lowest version; every real write is above it.
    pub const ZERO: Version = Version { hlc: 0, node: 0 };
    /// Bits of `hlc` used by the logical counter.
    pub const LOGICAL_BITS: u32 = 16;

    /// Builds a version from physical milliseconds, a logical counter and a node id.
    pub fn new(physical_ms: u64, logical: u16, node: u32) -> Self {
        Version {
            hlc: (physical_ms << Self::LOGICAL_BITS) | u64::from(logical),
            node,
        }
    }

    /// The physical-time part of the clock, in milliseconds since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        self.hlc >> Self::LOGICAL_BITS
    }
}

/// What is stored for one key at one version: a value (with an optional expiry)
/// or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The write's version; the highest version of a key is the live one.
    pub version: Version,
    /// Absolute expiry in milliseconds since the Unix epoch; 0 means never.
    pub expires_at_ms: u64,
    /// The value, or `None` for a tombstone (a delete).
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// A value record.
    pub fn put(version: Version, value: Vec<u8>, expires_at_ms: u64) -> Self {
        Record {
            version,
            expires_at_ms,
            value: Some(value),
        }
    }

    /// A tombstone record.
    pub fn tombstone(version: Version) -> Self {
        RecordRef::tombstone(version).to_record()
    }

    /// Whether this record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether this record reads as absent at `now_ms`: a tombstone, or a value
    /// whose expiry has passed.
    pub fn is_dead_at(&self, now_ms: u64) -> bool {
        RecordRef::from(self).is_dead_at(now_ms)
    }

    /// Bytes this record accounts for in memory budgets (value plus fixed overhead).
    pub fn size_estimate(&self) -> usize {
        self.value.as_ref().map_or(0, Vec::len) + 24
    }
}

/// A key and its record, as returned by scans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Its highest-version record.
    pub record: Record,
}

/// Identifier of an SSTable file, unique within one shard's directory, never reused.
pub type FileId = u64;

/// What the manifest and the engine know about one SSTable without opening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    /// The table's id; its file is `<dir>/<id:020>.sst`.
    pub id: FileId,
    /// Level in the LSM tree (0 = freshly flushed, may overlap).
    pub level: u32,
    /// File size in bytes (a multiple of the block size).
    pub size: u64,
    /// Number of entries (values and tombstones).
    pub entry_count: u64,
    /// Number of tombstones among them.
    pub tombstone_count: u64,
    /// Smallest key in the table.
    pub smallest_key: Vec<u8>,
    /// Largest key in the table.
    pub largest_key: Vec<u8>,
    /// Highest version of any record in the table; a read that already holds a
    /// higher version for its key can skip this table.
    pub max_version: Version,
}

/// A record borrowed from where it is stored (a cache entry), for a caller
/// that only encodes it: no copy of the value, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Version of the write.
    pub version: Version,
    /// Expiry in ms since the epoch, 0 = never.
    pub expires_at_ms: u64,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(r: &'a Record) -> Self {
        RecordRef {
            version: r.version,
            expires_at_ms: r.expires_at_ms,
            value: r.value.as_deref(),
        }
    }
}

impl RecordRef<'_> {
    /// A tombstone of `version`: no expiry, no value (the one place that
    /// says so; [`Record::tombstone`] is its owned copy).
    pub fn tombstone(version: Version) -> Self {
        RecordRef {
            version,
            expires_at_ms: 0,
            value: None,
        }
    }

    /// Whether this record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// An owned copy (the value copied).
    pub fn to_record(&self) -> Record {
        Record {
            version: self.version,
            expires_at_ms: self.expires_at_ms,
            value: self.value.map(<[u8]>::to_vec),
        }
    }

    /// Whether this record reads as absent at `now_ms`: a tombstone, or a
    /// value whose expiry has passed. The one place that rule is written.
    pub fn is_dead_at(&self, now_ms: u64) -> bool {
        self.value.is_none() || (self.expires_at_ms != 0 && self.expires_at_ms <= now_ms)
    }
}
