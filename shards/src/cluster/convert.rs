//! Conversions between the three forms of a record: the storage engine's
//! ([`ringkv_storage::Record`]), the coordinator's ([`ringkv_cluster::Record`])
//! and the internode wire's ([`WireRecord`], owned or archived in place).

use ringkv_cluster::record::{Record as ClusterRecord, Version as ClusterVersion};
use ringkv_net::internode::{ArchivedWireRecord, WireRecord};
use ringkv_storage::{Record as StoreRecord, Version as StoreVersion};

/// Storage version → coordinator version.
pub fn cluster_version(v: StoreVersion) -> ClusterVersion {
    ClusterVersion {
        hlc: v.hlc,
        node: v.node,
    }
}

/// Coordinator version → storage version.
pub fn store_version(v: ClusterVersion) -> StoreVersion {
    StoreVersion {
        hlc: v.hlc,
        node: v.node,
    }
}

/// Storage record → coordinator record.
pub fn cluster_record(r: StoreRecord) -> ClusterRecord {
    ClusterRecord {
        value: r.value,
        version: cluster_version(r.version),
        expires_at_ms: r.expires_at_ms,
    }
}

/// Coordinator record → storage record.
pub fn store_record(r: ClusterRecord) -> StoreRecord {
    StoreRecord {
        value: r.value,
        version: store_version(r.version),
        expires_at_ms: r.expires_at_ms,
    }
}

/// Coordinator record → wire record (one copy of the value).
pub fn wire_record(r: &ClusterRecord) -> WireRecord {
    WireRecord {
        value: r.value.clone(),
        hlc: r.version.hlc,
        node: r.version.node,
        expires_at_ms: r.expires_at_ms,
    }
}

/// Storage record → wire record (moves the value).
pub fn wire_from_store(r: StoreRecord) -> WireRecord {
    WireRecord {
        value: r.value,
        hlc: r.version.hlc,
        node: r.version.node,
        expires_at_ms: r.expires_at_ms,
    }
}

/// The version of an archived wire record.
pub fn archived_version(r: &ArchivedWireRecord) -> StoreVersion {
    StoreVersion {
        hlc: r.hlc.to_native(),
        node: r.node.to_native(),
    }
}

/// Archived wire record → coordinator record (copies the value out of the
/// receive buffer: the coordinator keeps it beyond the buffer's life).
pub fn cluster_from_archived(r: &ArchivedWireRecord) -> ClusterRecord {
    ClusterRecord {
        value: r.value.as_ref().map(|v| v.as_slice().to_vec()),
        version: cluster_version(archived_version(r)),
        expires_at_ms: r.expires_at_ms.to_native(),
    }
}
