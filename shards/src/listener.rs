//! Accept loops: each shard accepts on the node's port (SO_REUSEPORT, the
//! kernel spreads connections over the shards) and on its own port
//! `port + 1 + shard` (shard-aware clients reach the owner directly), and,
//! unless it is 0, on the RESP port (SO_REUSEPORT too).
//!
//! Invariants: the node never holds more than `connections_max` client
//! connections (one over the limit gets an `Overloaded` error frame with id 0
//! and is closed); every connection runs inside the shard's gate, so stopping
//! waits for the batches in flight. With the `uring` network engine a
//! client connection (binary, after the internode check, or RESP) is handed
//! (socket and slot) to the shard's network loop, itself a task of the gate.

use crate::conn;
use crate::error::Error;
use crate::resp_exec::Session;
use crate::service::{encode_error, Scope};
use crate::shard::{Shard, ShardCounters};
use crate::stop::StopEvent;
use crate::uring::{NetLoop, Speaks};
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use ringkv_net::client_frame::Status;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Binds `host:port` for `shard` (SO_REUSEPORT is set by glommio).
pub fn bind(shard: u32, host: &str, port: u16) -> Result<TcpListener, Error> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(addr.as_str()).map_err(|e| Error::Bind {
        shard,
        addr,
        source: std::io::Error::other(e.to_string()),
    })
}

/// Releases one node-wide connection slot when the connection ends (held by
/// the connection's task, or by the network loop that serves it).
pub(crate) struct Slot(Rc<Shard>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.node.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ringkv's binary protocol, with its SCAN scope.
    Binary(Scope),
    /// The Redis protocol (RESP2/RESP3).
    Resp,
}

/// Accepts connections until `stop` fires; each runs in `gate`. With `net`,
/// client connections (binary and RESP) are handed to the shard's io_uring
/// network loop instead of getting a task each.
pub async fn accept_loop(
    shard: Rc<Shard>,
    protocol: Protocol,
    listener: TcpListener,
    gate: Rc<Gate>,
    stop: StopEvent,
    net: Option<Rc<NetLoop>>,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(shard = shard.id, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let open = shard.node.connections.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(shard.clone());
        if open >= shard.config.connections_max {
            ShardCounters::bump(&shard.counters.refused);
            let max = shard.config.connections_max;
            glommio::spawn_local(refuse(stream, protocol, max, slot)).detach();
            continue;
        }
        ShardCounters::bump(&shard.counters.accepted);
        let _ = stream.set_nodelay(true);
        let (shard2, stop2, net2) = (shard.clone(), stop.clone(), net.clone());
        let spawned = gate.spawn(async move {
            match protocol {
                // A shard's own port also takes internode links, told apart
                // by their preface (no client frame starts with it).
                Protocol::Binary(Scope::Shard) if is_internode(&stream, &stop2).await => {
                    crate::cluster::peer::serve(shard2, stream, stop2).await
                }
                Protocol::Binary(scope) => {
                    let speaks = |_: &TcpStream| Speaks::Binary(scope);
                    let Some((stream, slot)) = hand_to_loop(net2, stream, slot, speaks) else {
                        return;
                    };
                    conn::serve(shard2, scope, stream, stop2).await;
                    drop(slot);
                    return;
                }
                Protocol::Resp => {
                    let speaks = |s: &TcpStream| {
                        Speaks::Resp(Some(Box::new(Session::new(&shard2, peer_of(s)))))
                    };
                    let Some((stream, slot)) = hand_to_loop(net2, stream, slot, speaks) else {
                        return;
                    };
                    crate::resp_conn::serve(shard2, stream, stop2).await;
                    drop(slot);
                    return;
                }
            }
            drop(slot);
        });
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(_) => return, // the gate closed: the shard is stopping
        }
    }
}

/// Hands a client connection to the shard's network loop, when it has one,
/// speaking what `speaks` makes of the stream. Gives the connection back, to
/// be served by glommio, when there is no loop or it cannot take it; `None`
/// when the loop took it (or closed it: the shard is stopping).
fn hand_to_loop(
    net: Option<Rc<NetLoop>>,
    stream: TcpStream,
    slot: Slot,
    speaks: impl FnOnce(&TcpStream) -> Speaks,
) -> Option<(TcpStream, Slot)> {
    match net {
        None => Some((stream, slot)),
        Some(net) => {
            let speaks = speaks(&stream);
            net.adopt(stream, speaks, slot)
        }
    }
}

/// The peer address of `stream` as text (`?` when the socket has none).
pub(crate) fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
}

/// Waits for the first bytes of a connection (without consuming them) and
/// tells whether they are the internode preface. A client that sends fewer
/// bytes than the preface, or nothing, is treated as a client.
async fn is_internode(stream: &TcpStream, stop: &StopEvent) -> bool {
    use ringkv_net::internode::{sniff, Sniffed, PREFACE};
    let mut first = [0u8; PREFACE.len()];
    futures_lite::future::or(
        async {
            loop {
                match stream.peek(&mut first).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => match sniff(&first[..n]) {
                        Sniffed::Internode => return true,
                        Sniffed::Client => return false,
                        Sniffed::Incomplete => {
                            glommio::timer::sleep(Duration::from_millis(1)).await
                        }
                    },
                }
            }
        },
        async {
            stop.wait().await;
            false
        },
    )
    .await
}

async fn refuse(mut stream: TcpStream, protocol: Protocol, max: usize, slot: Slot) {
    let mut bytes = Vec::new();
    match protocol {
        Protocol::Binary(_) => {
            let msg = format!("the node is at its limit of {max} connections");
            encode_error(0, Status::Overloaded, &msg, &mut bytes);
        }
        // Redis's own line for this case.
        Protocol::Resp => bytes.extend_from_slice(b"-ERR max number of clients reached\r\n"),
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.close().await;
    drop(slot);
}
