//! What one measured mode produced, and the arithmetic on it.

use std::time::Duration;

/// CPU seconds spent during a measured interval, per process group. `None` where the
/// process could not be observed (e.g. a database on another host).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub worker: Option<f64>,
    pub postgres: Option<f64>,
    pub broker: Option<f64>,
    /// This benchmark process itself (publisher, result reader; in the direct modes, the
    /// caller of the storage code).
    pub bench: f64,
    /// The whole machine's busy CPU in the same interval: what is not ours above is other
    /// work sharing the machine (it disturbs the numbers).
    pub machine: f64,
}

impl CpuUse {
    pub fn add(&mut self, other: &CpuUse) {
        fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        self.worker = sum(self.worker, other.worker);
        self.postgres = sum(self.postgres, other.postgres);
        self.broker = sum(self.broker, other.broker);
        self.bench += other.bench;
        self.machine += other.machine;
    }

    /// Busy CPU of processes other than the ones measured.
    pub fn others(&self) -> f64 {
        (self.machine - self.total()).max(0.0)
    }

    pub fn total(&self) -> f64 {
        self.worker.unwrap_or(0.0)
            + self.postgres.unwrap_or(0.0)
            + self.broker.unwrap_or(0.0)
            + self.bench
    }
}

/// One mode (end to end, ceiling or naive) over one dataset.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    pub contacts: usize,
    pub batches: usize,
    /// First publish (or first apply) to last result (or last commit).
    pub wall: Duration,
    /// Per batch: publish → result, or apply call → commit.
    pub latencies: Vec<Duration>,
    pub cpu: CpuUse,
    /// Highest resident set of each worker process (VmHWM), KiB.
    pub peak_rss_kib: Vec<u64>,
    /// Deepest the import queue was seen (sampled every 200 ms).
    pub max_queue_depth: u32,
    /// Batches each worker settled (its own /metrics).
    pub batches_per_worker: Vec<u64>,
    /// Transactions the workers retried (deadlocks, serialization failures).
    pub db_retries: u64,
    /// Batches published to achieve the pace, contacts/s; `None` when publishing flat out.
    pub paced_at: Option<f64>,
    /// What `perf` saw during the run, when recorded.
    pub perf: Option<crate::perf::Summary>,
}

impl Measurement {
    pub fn contacts_per_s(&self) -> f64 {
        self.contacts as f64 / self.wall.as_secs_f64()
    }

    pub fn batches_per_s(&self) -> f64 {
        self.batches as f64 / self.wall.as_secs_f64()
    }

    /// Latency percentile in milliseconds (nearest rank).
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies, p).as_secs_f64() * 1e3
    }

    /// CPU seconds per 1,000 contacts of one part.
    pub fn per_1k(&self, seconds: Option<f64>) -> Option<f64> {
        seconds.map(|s| s * 1_000.0 / self.contacts as f64)
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_kib
            .iter()
            .max()
            .map(|kib| *kib as f64 / 1024.0)
    }
}

/// Nearest-rank percentile; zero for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&ms, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&ms, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&ms[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
