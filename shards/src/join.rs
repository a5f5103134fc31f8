//! `join_all` for one executor: runs a set of futures concurrently on the
//! current task and returns their outputs in input order. Used so that the
//! requests of one pipelined batch (and the per-shard parts of a multi-key
//! request) wait for their storage and mesh calls together, not one by one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls every future until all are done; outputs in input order.
pub async fn join_all<F: Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    let mut slots: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = slots.iter().map(|_| None).collect();
    let mut left = slots.len();
    std::future::poll_fn(|cx: &mut Context<'_>| {
        for (slot, output) in slots.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                if let Poll::Ready(v) = Pin::new(f).poll(cx) {
                    *output = Some(v);
                    *slot = None;
                    left -= 1;
                }
            }
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_come_back_in_input_order() {
        futures_lite::future::block_on(async {
            let futs: Vec<Pin<Box<dyn Future<Output = u32>>>> = (0..5u32)
                .map(|i| {
                    Box::pin(async move {
                        for _ in 0..(5 - i) {
                            futures_lite::future::yield_now().await;
                        }
                        i
                    }) as Pin<Box<dyn Future<Output = u32>>>
                })
                .collect();
            assert_eq!(join_all(futs).await, vec![0, 1, 2, 3, 4]);
        });
    }
}
