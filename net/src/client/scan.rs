//! Merging per-shard SCAN pages into one node-wide page.
//!
//! Each shard returns its own smallest keys after `after`. The node-wide
//! page is the smallest `limit` keys of their union, cut at the smallest
//! continuation key of any shard that has more: past that key, that shard's
//! keys were not seen yet, so returning them would skip keys.

use super::{ScanEntryOwned, ScanPageOwned};

/// Merges one page per shard into one page of at most `limit` entries in key
/// order. Invariants of the result: entries ascend strictly; `next_after` is
/// empty only if every shard is done and nothing was cut.
pub(crate) fn merge_scan_pages(pages: Vec<ScanPageOwned>, limit: usize) -> ScanPageOwned {
    let bound: Option<Vec<u8>> = pages
        .iter()
        .filter(|p| !p.next_after.is_empty())
        .map(|p| p.next_after.clone())
        .min();
    let mut entries: Vec<ScanEntryOwned> = pages.into_iter().flat_map(|p| p.entries).collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries.dedup_by(|a, b| a.key == b.key);
    if let Some(bound) = &bound {
        entries.retain(|e| e.key <= *bound);
    }
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let next_after = if truncated || bound.is_some() {
        match entries.last() {
            Some(e) => e.key.clone(),
            None => bound.unwrap_or_default(),
        }
    } else {
        Vec::new()
    };
    ScanPageOwned {
        entries,
        next_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_frame::WireVersion;

    fn entry(key: &str) -> ScanEntryOwned {
        ScanEntryOwned {
            key: key.as_bytes().to_vec(),
            value: Vec::new(),
            version: WireVersion::ZERO,
        }
    }

    fn page(keys: &[&str], next: &str) -> ScanPageOwned {
        ScanPageOwned {
            entries: keys.iter().map(|k| entry(k)).collect(),
            next_after: next.as_bytes().to_vec(),
        }
    }

    fn keys(p: &ScanPageOwned) -> Vec<&str> {
        p.entries
            .iter()
            .map(|e| std::str::from_utf8(&e.key).unwrap())
            .collect()
    }

    #[test]
    fn merged_scan_pages_are_in_key_order_and_cut_at_the_limit() {
        let merged = merge_scan_pages(vec![page(&["a", "d"], ""), page(&["b", "c"], "")], 3);
        assert_eq!(keys(&merged), ["a", "b", "c"]);
        assert_eq!(merged.next_after, b"c");
    }

    #[test]
    fn merged_scan_is_done_when_every_shard_is_done_and_nothing_was_cut() {
        let merged = merge_scan_pages(vec![page(&["a"], ""), page(&["b"], "")], 3);
        assert_eq!(keys(&merged), ["a", "b"]);
        assert!(merged.next_after.is_empty());
    }

    #[test]
    fn merged_scan_never_skips_past_an_unfinished_shard() {
        // Shard 0 stopped at "b" (it has more); shard 1 returned up to "z".
        let merged = merge_scan_pages(vec![page(&["a", "b"], "b"), page(&["c", "z"], "")], 10);
        assert_eq!(keys(&merged), ["a", "b"]);
        assert_eq!(merged.next_after, b"b");
    }

    /// One shard's page: its keys after `after`, at most `min(limit, cut)`
    /// (a node may cut a page short), with a continuation if more remain.
    fn shard_page(keys: &[Vec<u8>], after: &[u8], limit: usize, cut: usize) -> ScanPageOwned {
        let rest: Vec<&Vec<u8>> = keys
            .iter()
            .filter(|k| after.is_empty() || k.as_slice() > after)
            .collect();
        let take = rest.len().min(limit).min(cut);
        let entries: Vec<ScanEntryOwned> = rest[..take]
            .iter()
            .map(|k| ScanEntryOwned {
                key: k.to_vec(),
                value: Vec::new(),
                version: WireVersion::ZERO,
            })
            .collect();
        let next_after = if take < rest.len() {
            rest[take - 1].clone()
        } else {
            Vec::new()
        };
        ScanPageOwned {
            entries,
            next_after,
        }
    }

    proptest::proptest! {
        #[test]
        fn paging_through_merged_pages_sees_every_key_once_in_order(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..4, 1..5), 0..60),
            shards in 1usize..5,
            limit in 1usize..10,
            cuts in proptest::collection::vec(1usize..10, 1..8),
            seed in 0u64..1000,
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let mut per_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards];
            for (i, k) in keys.iter().enumerate() {
                per_shard[(i as u64).wrapping_mul(seed + 7) as usize % shards].push(k.clone());
            }
            let mut after = Vec::new();
            let mut seen: Vec<Vec<u8>> = Vec::new();
            for round in 0..=keys.len() + 2 {
                let pages = per_shard
                    .iter()
                    .enumerate()
                    .map(|(s, ks)| shard_page(ks, &after, limit, cuts[(s + round) % cuts.len()]))
                    .collect();
                let page = merge_scan_pages(pages, limit);
                proptest::prop_assert!(page.entries.len() <= limit);
                seen.extend(page.entries.into_iter().map(|e| e.key));
                if page.next_after.is_empty() {
                    break;
                }
                proptest::prop_assert!(after.is_empty() || page.next_after > after, "no progress");
                after = page.next_after;
            }
            proptest::prop_assert_eq!(seen, keys);
        }
    }
}
