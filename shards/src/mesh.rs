//! The cross-shard mesh: every shard can call every other shard and await its
//! answer. Built on one glommio full channel mesh carrying both directions.
//!
//! ```text
//!   shard A                                   shard B
//!   call(B, req) ──► Msg::Call{from:A,id,req} ──► receiver task ─► spawn handler(req)
//!   pending[id] ◄── receiver task ◄── Msg::Reply{id,resp} ◄──────── handler done
//! ```
//!
//! Invariants: a receiver task never awaits anything but its channel (calls
//! are handled in spawned tasks and replies complete a local one-shot), so no
//! cycle of full channels can deadlock; payloads are owned values (`Send`),
//! never references into another shard's memory; a call whose peer stopped
//! resolves to `None` instead of hanging (the pending entry is dropped when
//! the mesh stops).

use crate::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

/// One message on the mesh.
pub enum Msg<Req, Resp> {
    /// A request from shard `from`, to be answered with `Reply { id }`.
    Call {
        /// The calling shard.
        from: usize,
        /// The caller's id for this call.
        id: u64,
        /// The request.
        req: Req,
    },
    /// The answer to call `id`.
    Reply {
        /// The id the caller chose.
        id: u64,
        /// The answer.
        resp: Resp,
    },
}

/// What a mesh needs to build: the glommio builder shared by all shards.
pub type MeshHandle<Req, Resp> = MeshBuilder<Msg<Req, Resp>, Full>;

/// Creates the builder to hand (cloned) to each of `shards` executors.
pub fn builder<Req: Send + 'static, Resp: Send + 'static>(
    shards: usize,
    capacity: usize,
) -> MeshHandle<Req, Resp> {
    MeshBuilder::full(shards, capacity)
}

/// One shard's end of the mesh.
pub struct Mesh<Req: Send + 'static, Resp: Send + 'static> {
    senders: Senders<Msg<Req, Resp>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Resp>>>,
    next_id: Cell<u64>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Mesh<Req, Resp> {
    /// Joins the mesh (waits for every shard to join), then starts one
    /// receiver task per peer on `queue`. `handler` answers the calls this
    /// shard receives. Returns this shard's end and the receiver tasks.
    pub async fn join<H, F>(
        builder: MeshHandle<Req, Resp>,
        queue: glommio::TaskQueueHandle,
        handler: H,
    ) -> Result<(Rc<Self>, Vec<glommio::Task<()>>), String>
    where
        H: Fn(Req) -> F + Clone + 'static,
        F: Future<Output = Resp> + 'static,
    {
        let (senders, mut receivers): (Senders<_>, Receivers<_>) = builder
            .join()
            .await
            .map_err(|e| format!("joining the shard mesh failed: {e}"))?;
        let mesh = Rc::new(Mesh {
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        });
        let mut tasks = Vec::new();
        for (_peer, stream) in receivers.streams() {
            let mesh = mesh.clone();
            let handler = handler.clone();
            let task = glommio::spawn_local_into(
                async move {
                    while let Some(msg) = stream.recv().await {
                        match msg {
                            Msg::Call { from, id, req } => {
                                let mesh = mesh.clone();
                                let fut = handler(req);
                                glommio::spawn_local(async move {
                                    let resp = fut.await;
                                    // A send fails only when the caller's shard
                                    // stopped; its caller is gone too.
                                    let _ =
                                        mesh.senders.send_to(from, Msg::Reply { id, resp }).await;
                                })
                                .detach();
                            }
                            Msg::Reply { id, resp } => {
                                let waiter = mesh.pending.borrow_mut().remove(&id);
                                if let Some(tx) = waiter {
                                    tx.send(resp);
                                }
                            }
                        }
                    }
                },
                queue,
            )
            .map_err(|e| format!("spawning a mesh receiver: {e}"))?;
            tasks.push(task);
        }
        Ok((mesh, tasks))
    }

    /// This shard's index.
    pub fn me(&self) -> usize {
        self.senders.peer_id()
    }

    /// Sends `req` to shard `to` (not this one) and waits for its answer.
    /// `None` when the peer stopped before answering.
    pub async fn call(&self, to: usize, req: Req) -> Option<Resp> {
        assert!(
            to != self.me(),
            "a shard does not call itself over the mesh"
        );
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let msg = Msg::Call {
            from: self.me(),
            id,
            req,
        };
        if self.senders.send_to(to, msg).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return None;
        }
        rx.await
    }

    /// Calls still waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Stops the mesh: closes the senders and fails every pending call.
    pub fn close(&self) {
        self.senders.close();
        self.pending.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};

    #[test]
    fn every_shard_calls_every_other_shard_and_gets_its_answer() {
        let shards = 3;
        let mesh: MeshHandle<u64, u64> = builder(shards, 16);
        let handles: Vec<_> = (0..shards)
            .map(|_| {
                let mesh = mesh.clone();
                LocalExecutorBuilder::new(Placement::Unbound)
                    .spawn(move || async move {
                        let q = glommio::executor().current_task_queue();
                        let (m, tasks) = Mesh::join(mesh, q, |x: u64| async move { x * 10 })
                            .await
                            .unwrap();
                        let me = m.me();
                        let mut sum = 0;
                        for round in 0..50u64 {
                            for peer in 0..shards {
                                if peer != me {
                                    sum += m.call(peer, round).await.unwrap();
                                }
                            }
                        }
                        // Wait until every peer finished calling us, then stop.
                        glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
                        m.close();
                        for t in tasks {
                            t.cancel().await;
                        }
                        sum
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            let sum = h.join().unwrap();
            assert_eq!(sum, (0..50u64).sum::<u64>() * 10 * 2);
        }
    }
}
