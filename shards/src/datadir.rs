//! The node's data directory and its identity file.
//!
//! A key's shard is `shard_for(token, shard_count)`, so reopening a data
//! directory with another shard count would hide every key in the wrong
//! shard. The identity file records the shard count the directory was made
//! with, and a node refuses to start with another.
//!
//! File `<data-dir>/NODE` (text, written once, atomically: tmp + fsync + rename + fsync dir):
//! ```text
//! ringkv-node 1
//! shards <N>
//! node_id <ID>
//! ```

use crate::error::Error;
use std::io::Write;
use std::path::Path;

/// Name of the lock file: one node per data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Takes the data directory's exclusive lock (`flock` on `<dir>/LOCK`), held
/// until the returned file is dropped (or the process dies). A second node
/// on the same directory is refused instead of corrupting it.
pub fn lock(dir: &Path) -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::DataDir {
            path: path.clone(),
            reason: format!("cannot open the lock file: {e}"),
        })?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::DataDir {
            path,
            reason: format!(
                "another ringkv node is using this data directory ({})",
                std::io::Error::last_os_error()
            ),
        });
    }
    Ok(file)
}

/// Name of the identity file inside the data directory.
pub const NODE_FILE_NAME: &str = "NODE";
const MAGIC_LINE: &str = "ringkv-node 1";

/// What the identity file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Shard count the directory was created with.
    pub shards: u32,
    /// Node id the directory was created with.
    pub node_id: u32,
}

/// Creates the data directory and its identity file if missing; otherwise
/// checks that the recorded shard count equals `wanted.shards`. Returns the
/// identity on disk.
pub fn prepare(dir: &Path, wanted: NodeIdentity) -> Result<NodeIdentity, Error> {
    let io_err = |what: &str, e: std::io::Error| Error::DataDir {
        path: dir.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", e))?;
    let path = dir.join(NODE_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = parse(&text).map_err(|reason| Error::DataDir {
                path: path.clone(),
                reason,
            })?;
            if found.shards != wanted.shards {
                return Err(Error::DataDir {
                    path,
                    reason: format!(
                        "this data directory was created with {} shards; start with --shards {} \
                         (keys are assigned to shards by count, so it cannot change)",
                        found.shards, found.shards
                    ),
                });
            }
            Ok(found)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join(format!("{NODE_FILE_NAME}.tmp"));
            let text = format!(
                "{MAGIC_LINE}\nshards {}\nnode_id {}\n",
                wanted.shards, wanted.node_id
            );
            let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("create NODE.tmp", e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| io_err("write NODE.tmp", e))?;
            f.sync_all().map_err(|e| io_err("fsync NODE.tmp", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err("rename NODE", e))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("fsync data dir", e))?;
            Ok(wanted)
        }
        Err(e) => Err(io_err("read NODE", e)),
    }
}

fn parse(text: &str) -> Result<NodeIdentity, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC_LINE) {
        return Err(format!(
            "first line is not {MAGIC_LINE:?}; not a ringkv data directory?"
        ));
    }
    let (mut shards, mut node_id) = (None, None);
    for (n, line) in lines.enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "line {}: expected `key value`, got {line:?}",
                n + 2
            ));
        };
        let v: u32 = v
            .parse()
            .map_err(|_| format!("line {}: {v:?} is not a number", n + 2))?;
        match k {
            "shards" => shards = Some(v),
            "node_id" => node_id = Some(v),
            _ => {}
        }
    }
    match (shards, node_id) {
        (Some(shards), Some(node_id)) if shards > 0 => Ok(NodeIdentity { shards, node_id }),
        _ => Err("missing or zero `shards`, or missing `node_id`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap()
    }

    #[test]
    fn a_new_directory_records_its_shard_count_and_a_reopen_agrees() {
        let dir = tmp();
        let id = NodeIdentity {
            shards: 3,
            node_id: 9,
        };
        assert_eq!(prepare(dir.path(), id).unwrap(), id);
        assert_eq!(prepare(dir.path(), id).unwrap(), id);
    }

    #[test]
    fn reopening_with_another_shard_count_is_refused_with_the_fix() {
        let dir = tmp();
        prepare(
            dir.path(),
            NodeIdentity {
                shards: 2,
                node_id: 1,
            },
        )
        .unwrap();
        let err = prepare(
            dir.path(),
            NodeIdentity {
                shards: 4,
                node_id: 1,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--shards 2"), "{err}");
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_released() {
        let dir = tmp();
        let first = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err();
        assert!(err.to_string().contains("another ringkv node"), "{err}");
        drop(first);
        assert!(lock(dir.path()).is_ok());
    }

    #[test]
    fn a_garbled_identity_file_is_reported_not_trusted() {
        let dir = tmp();
        std::fs::write(dir.path().join(NODE_FILE_NAME), b"\xff\x00garbage").unwrap();
        assert!(prepare(
            dir.path(),
            NodeIdentity {
                shards: 1,
                node_id: 1
            }
        )
        .is_err());
        std::fs::write(dir.path().join(NODE_FILE_NAME), "ringkv-node 1\nshards x\n").unwrap();
        assert!(prepare(
            dir.path(),
            NodeIdentity {
                shards: 1,
                node_id: 1
            }
        )
        .is_err());
    }
}
