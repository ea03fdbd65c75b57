//! Which delivery runs next (docs/operations.md, "Lanes"). Without lanes: the import queue's, in order.
//! With lanes: the interactive lane first, with slots of its own beyond the concurrency that
//! bulk work may not take (`CONTACT_IMPORT_INTERACTIVE_SLOTS`), so a request a person waits
//! on starts at once even when bulk batches hold every other slot, and never on the last
//! slot, so that a flood of interactive requests slows bulk work but cannot stop it
//! ([`Dispatch::subscribe`]); then the bulk shards in
//! turn, so an org whose batches sit on one shard does not hold back the orgs on the others;
//! then the heavy shards in turn, where the router puts the batches of orgs with more than
//! their share of the bulk traffic (see `shares`), so that a new org's bulk batch does not
//! wait behind another org's backlog; one bulk slot in [`HEAVY_SHARE`] tries them first.
//!
//! Every consumer has a prefetch of its own (`global = false`): 2 per interactive and bulk
//! queue at concurrency 4 (`lane_prefetch` in config.rs), small because a worker holds it on
//! every one of them; the concurrency per heavy shard, so that one heavy org alone, on its
//! heavy shard, still fills every slot.
//! Nothing is scheduled from memory: what is not taken stays unacked at the broker and returns to its
//! queue if the worker dies.

use crate::broker::consume::{self, Turns};
use crate::broker::lanes::{self, Lane, Lanes};
use crate::metrics;
use lapin::Channel;
use lapin::message::Delivery;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One bulk delivery in this many is taken from the heavy shards first: heavy orgs yield to
/// the others, but are never stopped (their prefetched deliveries would otherwise age
/// towards the broker's `consumer_timeout` while other orgs keep the bulk shards busy).
const HEAVY_SHARE: usize = 4;

/// A delivery taken, and the slot of its kind (interactive or bulk) it holds until it settles.
pub struct Taken {
    pub delivery: Delivery,
    pub lane_slot: OwnedSemaphorePermit,
}

/// Consumers served in turn, labelled with their lane.
type Tier = Turns<Lane>;

/// The consumers of the session and whose turn it is.
pub struct Dispatch {
    /// The interactive lane, with lanes; served first, on any slot.
    interactive: Option<Tier>,
    /// The bulk shards; without lanes, the import queue alone.
    bulk: Tier,
    /// The heavy shards, with lanes: served when the bulk shards have nothing, and first for
    /// one bulk slot in [`HEAVY_SHARE`], so that heavy orgs are slowed, never stopped.
    heavy: Option<Tier>,
    /// Bulk deliveries taken so far, for the heavy shards' share.
    picks: usize,
    /// Slots bulk and heavy deliveries may hold: the concurrency (the session's slots add
    /// the interactive lane's own).
    bulk_slots: Arc<Semaphore>,
    /// Slots interactive deliveries may hold: all the session's but one.
    interactive_slots: Arc<Semaphore>,
    /// Every consumer's tag and queue, for cancelling and for messages.
    pub consumers: Vec<(String, String)>,
}

impl Dispatch {
    /// Subscribes to the intake queues (the import queue, and any intake shards), or with
    /// `lanes` to every lane queue, on `channel`,
    /// `prefetch` unacked deliveries per consumer (`heavy_prefetch` on a heavy shard).
    ///
    /// Interactive deliveries may hold every slot of the session (the concurrency plus the
    /// interactive lane's own) but one: under a flood of them, one bulk batch still runs.
    /// With a single slot in all there is nothing to keep, and that one slot serves both.
    pub async fn subscribe(
        channel: &Channel,
        intake: &[String],
        lanes: Option<&Lanes>,
        concurrency: u16,
        prefetch: u16,
        heavy_prefetch: u16,
    ) -> Result<Self, String> {
        let mut consumers = Vec::new();
        let mut subscribe = async |queue: &str, lane: Lane| {
            let prefetch = match lane {
                Lane::Heavy(_) => heavy_prefetch,
                _ => prefetch,
            };
            let tag = format!(
                "contact-import-{}-{}-{queue}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            let consumer = consume::subscribe(channel, queue, &tag, prefetch)
                .await
                .map_err(|e| format!("subscribing to {queue}: {e}"))?;
            consumers.push((tag, queue.to_owned()));
            Ok::<_, String>((consumer, lane))
        };
        let bulk_slots = Arc::new(Semaphore::new(usize::from(concurrency)));
        let interactive_slots = Arc::new(Semaphore::new(lanes.map_or(0, |lanes| {
            interactive_slot_count(concurrency, lanes.rules.interactive_slots)
        })));
        let Some(lanes) = lanes else {
            let mut queues = Vec::new();
            for (n, queue) in intake.iter().enumerate() {
                queues.push(subscribe(queue, Lane::Bulk(n as u16)).await?);
            }
            return Ok(Self {
                interactive: None,
                bulk: Tier::new(queues),
                heavy: None,
                picks: 0,
                bulk_slots,
                interactive_slots,
                consumers,
            });
        };
        let interactive = subscribe(&lanes.interactive, Lane::Interactive).await?;
        let mut bulk = Vec::new();
        for (n, shard) in lanes.shards.iter().enumerate() {
            bulk.push(subscribe(shard, Lane::Bulk(n as u16)).await?);
        }
        let mut heavy = Vec::new();
        for (n, shard) in lanes.heavy.iter().enumerate() {
            heavy.push(subscribe(shard, Lane::Heavy(n as u16)).await?);
        }
        Ok(Self {
            interactive: Some(Tier::new(vec![interactive])),
            bulk: Tier::new(bulk),
            heavy: Some(Tier::new(heavy)),
            picks: 0,
            bulk_slots,
            interactive_slots,
            consumers,
        })
    }

    /// The next delivery to run: interactive first, then the bulk shards in turn, then the
    /// heavy ones in turn. `Err` names a consumer that failed or that the broker cancelled
    /// (queue deleted, node lost). Cancel-safe: a delivery is taken from a consumer only when
    /// it is returned.
    pub async fn next(&mut self) -> Result<Taken, String> {
        let Self {
            interactive,
            bulk,
            heavy,
            picks,
            bulk_slots,
            interactive_slots,
            ..
        } = self;
        let interactive_next = async {
            let Some(tier) = interactive else {
                return std::future::pending().await;
            };
            let slot = interactive_slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (i, next) = std::future::poll_fn(|cx| tier.poll_turn(cx)).await;
            (slot, (*tier.label(i), next))
        };
        let bulk_next = async {
            let slot = bulk_slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let heavy_first = *picks % HEAVY_SHARE == HEAVY_SHARE - 1;
            let next = std::future::poll_fn(|cx| {
                let mut tiers = [Some(&mut *bulk), heavy.as_mut()];
                if heavy_first {
                    tiers.reverse();
                }
                for tier in tiers.into_iter().flatten() {
                    if let Poll::Ready((i, next)) = tier.poll_turn(cx) {
                        return Poll::Ready((*tier.label(i), next));
                    }
                }
                Poll::Pending
            })
            .await;
            *picks += 1;
            (slot, next)
        };
        let (lane_slot, (lane, next)) = tokio::select! {
            biased;
            taken = interactive_next => taken,
            taken = bulk_next => taken,
        };
        let queue = || match (self.interactive.is_some(), lane) {
            (true, _) => lane_name(&self.consumers, lane),
            (false, Lane::Bulk(n)) => self.consumers[usize::from(n)].1.clone(),
            (false, _) => self.consumers[0].1.clone(),
        };
        match next {
            Some(Ok(delivery)) => {
                if let Some(routed_at) = lanes::routed_at_ms(&delivery) {
                    metrics::lane_dwell(lane.label(), routed_at);
                }
                Ok(Taken {
                    delivery,
                    lane_slot,
                })
            }
            Some(Err(e)) => Err(format!("the consumer of {} failed: {e}", queue())),
            None => Err(format!("the broker cancelled the consumer of {}", queue())),
        }
    }
}

/// Slots interactive deliveries may hold: every slot of the session (the concurrency plus the
/// interactive lane's own) but one, and at least one.
fn interactive_slot_count(concurrency: u16, own: u16) -> usize {
    usize::from(concurrency.saturating_add(own).saturating_sub(1).max(1))
}

/// The queue of `lane` among `consumers` (listed interactive, bulk shards, heavy shards).
fn lane_name(consumers: &[(String, String)], lane: Lane) -> String {
    let shards = (consumers.len() - 1) / 2;
    let index = match lane {
        Lane::Interactive => 0,
        Lane::Bulk(n) => 1 + usize::from(n),
        Lane::Heavy(n) => 1 + shards + usize::from(n),
    };
    consumers[index].1.clone()
}

#[cfg(test)]
mod tests {
    use super::interactive_slot_count;

    #[test]
    fn interactive_requests_leave_bulk_work_one_slot_when_there_are_two_or_more() {
        assert_eq!(interactive_slot_count(4, 1), 4, "5 slots: 4 for a flood");
        assert_eq!(interactive_slot_count(1, 1), 1);
        assert_eq!(interactive_slot_count(4, 0), 3);
        assert_eq!(interactive_slot_count(1, 0), 1, "a single slot serves both");
    }
}
