//! Codec of a manifest record's payload (a group of edits) and the rules that
//! apply edits to a [`ManifestState`]. Plain functions, no I/O.
//!
//! ```text
//! u32 edit_count
//! edit_count times, a tag then its fields:
//!   1 AddTable           u64 id, u32 level, u64 size, u64 entry_count, u64 tombstone_count,
//!                        u64 max_version.hlc, u32 max_version.node,
//!                        u32 smallest_len, smallest_key, u32 largest_len, largest_key
//!   2 RemoveTable        u64 id, u32 level
//!   3 NextFileId         u64 id
//!   4 WalRetiredThrough  u64 segment id
//! ```
//! All integers little endian; key lengths are checked against
//! [`KEY_SIZE_MAX`], levels against [`LEVEL_COUNT_MAX`], file ids against
//! [`FILE_ID_MAX`] and segment ids against [`WAL_SEGMENT_ID_MAX`] before use
//! (so `id + 1` never overflows, here or in the engine).

use super::{ManifestEdit, ManifestState};
use crate::limits::{FILE_ID_MAX, KEY_SIZE_MAX, WAL_SEGMENT_ID_MAX};
use crate::types::{FileId, TableMeta, Version};

// The limit lives in `crate::limits`; re-exported at its old path.
pub use crate::limits::LEVEL_COUNT_MAX;

const TAG_ADD_TABLE: u8 = 1;
const TAG_REMOVE_TABLE: u8 = 2;
const TAG_NEXT_FILE_ID: u8 = 3;
const TAG_WAL_RETIRED_THROUGH: u8 = 4;

/// Appends the encoding of `edits` to `out`.
pub fn encode_edits(edits: &[ManifestEdit], out: &mut Vec<u8>) {
    assert!(
        u32::try_from(edits.len()).is_ok(),
        "{} edits in one record",
        edits.len()
    );
    out.extend_from_slice(&(edits.len() as u32).to_le_bytes());
    for edit in edits {
        match edit {
            ManifestEdit::AddTable(t) => {
                out.push(TAG_ADD_TABLE);
                out.extend_from_slice(&t.id.to_le_bytes());
                out.extend_from_slice(&t.level.to_le_bytes());
                out.extend_from_slice(&t.size.to_le_bytes());
                out.extend_from_slice(&t.entry_count.to_le_bytes());
                out.extend_from_slice(&t.tombstone_count.to_le_bytes());
                out.extend_from_slice(&t.max_version.hlc.to_le_bytes());
                out.extend_from_slice(&t.max_version.node.to_le_bytes());
                for key in [&t.smallest_key, &t.largest_key] {
                    assert!(
                        key.len() <= KEY_SIZE_MAX,
                        "table {} has a key of {} bytes",
                        t.id,
                        key.len()
                    );
                    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    out.extend_from_slice(key);
                }
            }
            ManifestEdit::RemoveTable { id, level } => {
                out.push(TAG_REMOVE_TABLE);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&level.to_le_bytes());
            }
            ManifestEdit::NextFileId(id) => {
                out.push(TAG_NEXT_FILE_ID);
                out.extend_from_slice(&id.to_le_bytes());
            }
            ManifestEdit::WalRetiredThrough(id) => {
                out.push(TAG_WAL_RETIRED_THROUGH);
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
}

/// The edits that rebuild `state` from an empty state (a snapshot record).
pub fn snapshot_edits(state: &ManifestState) -> Vec<ManifestEdit> {
    let mut edits: Vec<ManifestEdit> = state
        .tables
        .iter()
        .cloned()
        .map(ManifestEdit::AddTable)
        .collect();
    edits.push(ManifestEdit::NextFileId(state.next_file_id));
    edits.push(ManifestEdit::WalRetiredThrough(state.wal_retired_through));
    edits
}

/// Decodes a record payload: `Err((offset in payload, reason))` on bad bytes. Never panics.
pub fn decode_edits(payload: &[u8]) -> Result<Vec<ManifestEdit>, (usize, String)> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let count = r.u32()? as usize;
    // Every edit takes at least 9 bytes: a hostile count cannot over-reserve.
    let mut edits = Vec::with_capacity(count.min(payload.len() / 9));
    for _ in 0..count {
        let at = r.pos;
        let edit = match r.u8()? {
            TAG_ADD_TABLE => {
                let id = r.file_id()?;
                let level = r.level()?;
                let size = r.u64()?;
                let entry_count = r.u64()?;
                let tombstone_count = r.u64()?;
                let hlc = r.u64()?;
                let node = r.u32()?;
                let smallest_key = r.key()?;
                let largest_key = r.key()?;
                ManifestEdit::AddTable(TableMeta {
                    id,
                    level,
                    size,
                    entry_count,
                    tombstone_count,
                    smallest_key,
                    largest_key,
                    max_version: Version { hlc, node },
                })
            }
            TAG_REMOVE_TABLE => ManifestEdit::RemoveTable {
                id: r.file_id()?,
                level: r.level()?,
            },
            TAG_NEXT_FILE_ID => ManifestEdit::NextFileId(r.file_id()?),
            TAG_WAL_RETIRED_THROUGH => {
                let at = r.pos;
                let id = r.u64()?;
                if id > WAL_SEGMENT_ID_MAX {
                    return Err((
                        at,
                        format!("WAL segment id {id} over the limit {WAL_SEGMENT_ID_MAX}"),
                    ));
                }
                ManifestEdit::WalRetiredThrough(id)
            }
            tag => return Err((at, format!("unknown edit tag {tag}"))),
        };
        edits.push(edit);
    }
    if r.pos != payload.len() {
        return Err((
            r.pos,
            format!(
                "{} trailing bytes after the last edit",
                payload.len() - r.pos
            ),
        ));
    }
    Ok(edits)
}

/// Applies a record's edits to `state` in order, refusing edits that
/// contradict it (see [`apply_edit`]) and a result that holds one table id
/// twice. Within a record a table may be added at its new level before it is
/// removed from its old one (a move).
pub fn apply_record(state: &mut ManifestState, edits: &[ManifestEdit]) -> Result<(), String> {
    for edit in edits {
        apply_edit(state, edit)?;
    }
    let mut ids: Vec<FileId> = state.tables.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("table {} is live at two levels", w[0]));
    }
    Ok(())
}

/// Applies one edit to `state`, refusing edits that contradict it (adding a
/// table already live at that level, removing a table that is not live at the
/// given level, ids over [`FILE_ID_MAX`] / [`WAL_SEGMENT_ID_MAX`]). File ids
/// never go backwards: adding table `id` raises `next_file_id` above it.
pub fn apply_edit(state: &mut ManifestState, edit: &ManifestEdit) -> Result<(), String> {
    let id_over = match edit {
        ManifestEdit::AddTable(TableMeta { id, .. })
        | ManifestEdit::RemoveTable { id, .. }
        | ManifestEdit::NextFileId(id) => (*id > FILE_ID_MAX).then_some(("file", *id, FILE_ID_MAX)),
        ManifestEdit::WalRetiredThrough(id) => {
            (*id > WAL_SEGMENT_ID_MAX).then_some(("WAL segment", *id, WAL_SEGMENT_ID_MAX))
        }
    };
    if let Some((what, id, max)) = id_over {
        return Err(format!("{what} id {id} over the limit {max}"));
    }
    match edit {
        ManifestEdit::AddTable(t) => {
            if state
                .tables
                .iter()
                .any(|x| x.id == t.id && x.level == t.level)
            {
                return Err(format!(
                    "table {} added at level {} while already live there",
                    t.id, t.level
                ));
            }
            // `t.id <= FILE_ID_MAX < u64::MAX` (checked above): no overflow.
            state.next_file_id = state.next_file_id.max(t.id + 1);
            state.tables.push(t.clone());
        }
        ManifestEdit::RemoveTable { id, level } => {
            let Some(i) = state
                .tables
                .iter()
                .position(|x| x.id == *id && x.level == *level)
            else {
                return Err(format!(
                    "removing table {id} at level {level}, which is not live"
                ));
            };
            state.tables.swap_remove(i);
        }
        ManifestEdit::NextFileId(id) => state.next_file_id = state.next_file_id.max(*id),
        ManifestEdit::WalRetiredThrough(id) => {
            state.wal_retired_through = state.wal_retired_through.max(*id)
        }
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], (usize, String)> {
        match self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()) {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err((
                self.pos,
                format!("{n} bytes needed, {} left", self.bytes.len() - self.pos),
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, (usize, String)> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, (usize, String)> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, (usize, String)> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn file_id(&mut self) -> Result<u64, (usize, String)> {
        let at = self.pos;
        let id = self.u64()?;
        if id > FILE_ID_MAX {
            return Err((at, format!("file id {id} over the limit {FILE_ID_MAX}")));
        }
        Ok(id)
    }

    fn level(&mut self) -> Result<u32, (usize, String)> {
        let at = self.pos;
        let level = self.u32()?;
        if level >= LEVEL_COUNT_MAX {
            return Err((
                at,
                format!("level {level} over the limit {LEVEL_COUNT_MAX}"),
            ));
        }
        Ok(level)
    }

    fn key(&mut self) -> Result<Vec<u8>, (usize, String)> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > KEY_SIZE_MAX {
            return Err((
                at,
                format!("key of {len} bytes over the limit {KEY_SIZE_MAX}"),
            ));
        }
        Ok(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: u64, level: u32) -> TableMeta {
        TableMeta {
            id,
            level,
            size: 4096 * id,
            entry_count: 10,
            tombstone_count: 1,
            smallest_key: b"a".to_vec(),
            largest_key: vec![b'z'; 30],
            max_version: Version::new(9, 1, 2),
        }
    }

    fn sample() -> Vec<ManifestEdit> {
        vec![
            ManifestEdit::AddTable(table(3, 0)),
            ManifestEdit::AddTable(table(4, 1)),
            ManifestEdit::RemoveTable { id: 3, level: 0 },
            ManifestEdit::NextFileId(9),
            ManifestEdit::WalRetiredThrough(5),
        ]
    }

    #[test]
    fn edits_round_trip() {
        let mut out = Vec::new();
        encode_edits(&sample(), &mut out);
        assert_eq!(decode_edits(&out).unwrap(), sample());
    }

    #[test]
    fn every_truncation_and_byte_change_of_edits_is_handled_without_panic() {
        let mut out = Vec::new();
        encode_edits(&sample(), &mut out);
        for cut in 0..out.len() {
            assert!(decode_edits(&out[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..out.len() {
            for v in [0u8, 0xff, 0x41] {
                let mut b = out.clone();
                b[i] = v;
                let _ = decode_edits(&b);
            }
        }
    }

    #[test]
    fn applying_edits_tracks_tables_and_refuses_contradictions() {
        let mut state = ManifestState::default();
        for e in sample() {
            apply_edit(&mut state, &e).unwrap();
        }
        assert_eq!(state.tables, vec![table(4, 1)]);
        assert_eq!((state.next_file_id, state.wal_retired_through), (9, 5));
        assert!(apply_edit(&mut state, &ManifestEdit::AddTable(table(4, 1))).is_err());
        assert!(apply_record(&mut state.clone(), &[ManifestEdit::AddTable(table(4, 2))]).is_err());
        let moved = [
            ManifestEdit::AddTable(table(4, 2)),
            ManifestEdit::RemoveTable { id: 4, level: 1 },
        ];
        let mut after_move = state.clone();
        apply_record(&mut after_move, &moved).unwrap();
        assert_eq!(after_move.tables, vec![table(4, 2)]);
        assert!(apply_edit(&mut state, &ManifestEdit::RemoveTable { id: 4, level: 0 }).is_err());
        let mut rebuilt = ManifestState::default();
        for e in snapshot_edits(&state) {
            apply_edit(&mut rebuilt, &e).unwrap();
        }
        assert_eq!(rebuilt, state);
    }
}
