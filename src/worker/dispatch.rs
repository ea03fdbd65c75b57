//! Which delivery runs next (README, "Lanes"). Without lanes: the import queue's, in order.
//! With lanes: the interactive lane first, with slots of its own beyond the concurrency that
//! bulk work may not take (`CONTACT_IMPORT_INTERACTIVE_SLOTS`), so a request a person waits
//! on starts at once even when bulk batches hold every other slot; then the bulk shards in
//! turn, so an org whose batches sit on one shard does not hold back the orgs on the others.
//!
//! Every consumer has a prefetch of its own (`global = false`), as large as the worker's
//! concurrency, so that one org alone, on one shard, can still fill every slot. Nothing is
//! scheduled from memory: what is not taken stays unacked at the broker and returns to its
//! queue if the worker dies.

use crate::broker::consume;
use crate::broker::lanes::{self, Lane, Lanes};
use crate::metrics;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::{Channel, Consumer};
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A delivery taken, and the bulk slot it holds (bulk deliveries only).
pub struct Taken {
    pub delivery: Delivery,
    pub bulk_slot: Option<OwnedSemaphorePermit>,
}

/// The consumers of the session and the turn of the shards.
pub struct Dispatch {
    /// The interactive lane's consumer, with lanes.
    interactive: Option<Consumer>,
    /// The bulk shards' consumers; without lanes, the import queue's alone.
    bulk: Vec<Consumer>,
    /// The shard asked first next time.
    next_shard: usize,
    /// Slots bulk deliveries may hold: the concurrency (the session's slots add the
    /// interactive lane's own).
    bulk_slots: Arc<Semaphore>,
    /// Every consumer's tag and queue, for cancelling and for messages.
    pub consumers: Vec<(String, String)>,
}

impl Dispatch {
    /// Subscribes to the import queue, or with `lanes` to the interactive lane and every
    /// shard, on `channel`, `prefetch` unacked deliveries per consumer.
    pub async fn subscribe(
        channel: &Channel,
        import_queue: &str,
        lanes: Option<&Lanes>,
        concurrency: u16,
        prefetch: u16,
    ) -> Result<Self, String> {
        let tag = |queue: &str| {
            format!(
                "contact-import-{}-{}-{queue}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )
        };
        let mut consumers = Vec::new();
        let mut subscribe = async |queue: &str| {
            let tag = tag(queue);
            let consumer = consume::subscribe(channel, queue, &tag, prefetch)
                .await
                .map_err(|e| format!("subscribing to {queue}: {e}"))?;
            consumers.push((tag, queue.to_owned()));
            Ok::<_, String>(consumer)
        };
        let Some(lanes) = lanes else {
            let only = subscribe(import_queue).await?;
            return Ok(Self {
                interactive: None,
                bulk: vec![only],
                next_shard: 0,
                bulk_slots: Arc::new(Semaphore::new(usize::from(concurrency))),
                consumers,
            });
        };
        let interactive = subscribe(&lanes.interactive).await?;
        let mut bulk = Vec::new();
        for shard in &lanes.shards {
            bulk.push(subscribe(shard).await?);
        }
        Ok(Self {
            interactive: Some(interactive),
            bulk,
            next_shard: 0,
            bulk_slots: Arc::new(Semaphore::new(usize::from(concurrency))),
            consumers,
        })
    }

    /// The next delivery to run, interactive first; `Err` names a consumer that failed or
    /// that the broker cancelled (queue deleted, node lost). Cancel-safe: a delivery is
    /// taken from a consumer only when it is returned.
    pub async fn next(&mut self) -> Result<Taken, String> {
        // Consumers are listed interactive lane first, then the shards.
        let offset = usize::from(self.interactive.is_some());
        let Self {
            interactive,
            bulk,
            next_shard,
            bulk_slots,
            consumers,
        } = self;
        let interactive_next = async {
            match interactive {
                Some(consumer) => consumer.next().await,
                None => std::future::pending().await,
            }
        };
        let bulk_next = async {
            let slot = bulk_slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (shard, next) = std::future::poll_fn(|cx| {
                for k in 0..bulk.len() {
                    let shard = (*next_shard + k) % bulk.len();
                    if let Poll::Ready(next) = bulk[shard].poll_next(cx) {
                        *next_shard = shard + 1;
                        return Poll::Ready((shard, next));
                    }
                }
                Poll::Pending
            })
            .await;
            (slot, shard, next)
        };
        let (next, bulk_slot, index) = tokio::select! {
            biased;
            next = interactive_next => (next, None, 0),
            (slot, shard, next) = bulk_next => (next, Some(slot), offset + shard),
        };
        let queue = &consumers[index].1;
        match next {
            Some(Ok(delivery)) => {
                let lane = if bulk_slot.is_some() {
                    Lane::Bulk((index - offset) as u16)
                } else {
                    Lane::Interactive
                };
                if let Some(routed_at) = lanes::routed_at_ms(&delivery) {
                    metrics::lane_dwell(lane.label(), routed_at);
                }
                Ok(Taken {
                    delivery,
                    bulk_slot,
                })
            }
            Some(Err(e)) => Err(format!("the consumer of {queue} failed: {e}")),
            None => Err(format!("the broker cancelled the consumer of {queue}")),
        }
    }
}
