//! Fair shares between orgs, the way Amazon SQS fair queues do it: an org that holds much
//! more than its share of the recent bulk traffic is *heavy*, and its batches go to the heavy
//! shards, which the dispatcher serves when the bulk shards are empty (and first for one bulk
//! slot in four). Nothing is dropped: a heavy org alone still gets every slot, and the other
//! orgs' batches, on the bulk shards, are no longer queued behind its backlog.
//!
//! The window is the router's own memory of the last [`WINDOW`] bulk batches it routed.
//! Losing it (a restart) loses no message, only the distinction for a while: the next few
//! hundred batches rebuild it. Each worker's router judges by what it routes itself, a
//! sample of the whole.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Bulk batches the window remembers.
pub const WINDOW: usize = 256;

/// An org is never heavy with this many batches in the window or fewer: a few batches are no
/// backlog worth setting apart. It is also how many of a heavy org's first batches may sit
/// on a bulk shard ahead of a newcomer's, so it is small.
pub const MIN_HEAVY: usize = 4;

/// How long an org stays heavy after it last was: its batches keep going where its backlog
/// is, so that a short pause does not send later batches ahead of earlier ones.
pub const HEAVY_FOR: Duration = Duration::from_secs(60);

/// The router's window of bulk traffic by org.
#[derive(Default)]
pub struct Shares {
    recent: VecDeque<String>,
    counts: HashMap<String, usize>,
    heavy_until: HashMap<String, Instant>,
}

impl Shares {
    /// Records a bulk batch of `org` and says whether `org` is heavy now: more than
    /// [`MIN_HEAVY`] batches in the window and more than the share of an org among the
    /// window's orgs plus one newcomer, or heavy within [`HEAVY_FOR`].
    pub fn record(&mut self, org: &str, now: Instant) -> bool {
        self.recent.push_back(org.to_owned());
        *self.counts.entry(org.to_owned()).or_default() += 1;
        if self.recent.len() > WINDOW
            && let Some(oldest) = self.recent.pop_front()
            && let Some(count) = self.counts.get_mut(&oldest)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&oldest);
            }
        }
        let count = self.counts.get(org).copied().unwrap_or_default();
        let fair = self.recent.len() / (self.counts.len() + 1);
        if count > MIN_HEAVY && count > fair {
            self.heavy_until.insert(org.to_owned(), now + HEAVY_FOR);
        }
        self.heavy_until.retain(|_, until| *until > now);
        self.heavy_until.contains_key(org)
    }

    /// How many orgs are heavy at `now`: also when no bulk batch came since, so the count
    /// falls back once the heavy orgs have been quiet for [`HEAVY_FOR`].
    pub fn heavy_orgs(&mut self, now: Instant) -> usize {
        self.heavy_until.retain(|_, until| *until > now);
        self.heavy_until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_alone_with_a_backlog_is_heavy_and_a_newcomer_is_not() {
        let mut shares = Shares::default();
        let now = Instant::now();
        let heavy: Vec<bool> = (0..40).map(|_| shares.record("big", now)).collect();
        assert!(
            !heavy[..MIN_HEAVY].iter().any(|h| *h),
            "a few batches are no backlog"
        );
        assert!(heavy[MIN_HEAVY + 1..].iter().all(|h| *h));
        assert!(
            !shares.record("new", now),
            "a newcomer's first batch is not heavy"
        );
        assert_eq!(shares.heavy_orgs(now), 1);
        assert_eq!(
            shares.heavy_orgs(now + HEAVY_FOR * 2),
            0,
            "quiet for long enough"
        );
    }

    #[test]
    fn two_big_orgs_are_both_heavy_and_orgs_with_a_few_batches_never() {
        let mut shares = Shares::default();
        let now = Instant::now();
        for _ in 0..100 {
            shares.record("a", now);
            shares.record("b", now);
        }
        assert!(shares.record("a", now) && shares.record("b", now));
        let mut small = Shares::default();
        let any_heavy = (0..1000).any(|n| small.record(&format!("org-{}", n / MIN_HEAVY), now));
        assert!(
            !any_heavy,
            "orgs of {MIN_HEAVY} batches each are never heavy"
        );
    }

    #[test]
    fn a_heavy_org_stays_heavy_for_a_while_after_it_slows_down() {
        let mut shares = Shares::default();
        let start = Instant::now();
        for _ in 0..40 {
            shares.record("big", start);
        }
        // Others fill the window; "big" sends one more batch within HEAVY_FOR, then after.
        for n in 0..WINDOW {
            shares.record(&format!("org-{}", n % 100), start);
        }
        assert!(shares.record("big", start + HEAVY_FOR / 2));
        assert!(!shares.record("big", start + HEAVY_FOR * 2));
    }
}
