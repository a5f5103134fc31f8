//! Static membership: every shard dials the seeds it does not know yet (on
//! the seed's shard-0 port, preface + HELLO), learns each node's id, address,
//! shard count and tokens, and installs the ring once every seed is known.
//! What was learned is kept in the peers file (`<data-dir>/cluster-peers`),
//! so a restarted node has its ring at once, even with a peer down.

use super::link::dial;
use super::ClusterShard;
use crate::limits::SEED_RETRY_INTERVAL;
use ringkv_net::routing::shard_port;
use std::rc::Rc;

/// Resolves the seeds (retrying every `SEED_RETRY_INTERVAL`), then installs
/// the ring. Returns once the ring is installed or cannot be built.
pub async fn resolve_seeds(cluster: Rc<ClusterShard>) {
    let mut reported = false;
    loop {
        let unresolved: Vec<String> = cluster
            .membership
            .borrow()
            .unresolved()
            .into_iter()
            .map(str::to_string)
            .collect();
        if unresolved.is_empty() {
            break;
        }
        for seed in &unresolved {
            let Some(addr) = shard0_addr(seed) else {
                continue;
            };
            match dial(&addr, &cluster.hello_batch()).await {
                Ok((_, _, hello)) => cluster.learn_seed(seed, &hello),
                Err(e) if !reported => {
                    tracing::info!(shard = cluster.shard_id, "waiting for seed {seed}: {e}");
                }
                Err(_) => {}
            }
        }
        reported = true;
        if cluster.membership.borrow().unresolved().is_empty() {
            break;
        }
        glommio::timer::sleep(SEED_RETRY_INTERVAL).await;
    }
    let rf = cluster.config.cluster.replication_factor;
    let ring = cluster.membership.borrow().ring(rf);
    match ring {
        Some(Ok(ring)) => cluster.install_ring(ring),
        Some(Err(e)) => tracing::error!(
            shard = cluster.shard_id,
            "the ring cannot be built: {e}; requests are refused"
        ),
        None => tracing::error!(shard = cluster.shard_id, "seeds resolved but no ring"),
    }
}

/// `host:port+1` (shard 0's own port) of a seed given as `host:port`.
fn shard0_addr(seed: &str) -> Option<String> {
    let (host, port) = seed.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!("{host}:{}", shard_port(port, 0)))
}
