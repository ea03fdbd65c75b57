//! Every metric name and label, in one place. Names follow Prometheus conventions and are
//! listed in docs/reference/metrics.md; changing one breaks operators' dashboards and alerts.

use crate::dialect::MessageType;
use crate::rejection::RejectCode;
use crate::result::BatchStatus;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::{Duration, Instant};

/// Counter: batches finished, by `status`.
pub const BATCHES: &str = "contact_import_batches_total";
/// Counter: contacts of applied batches, by `outcome` (`created`, `updated`, `failed`).
pub const CONTACTS: &str = "contact_import_contacts_total";
/// Histogram, seconds: from delivery to settlement of a batch.
pub const BATCH_DURATION: &str = "contact_import_batch_duration_seconds";
/// Counter: database attempts retried after a transient error.
pub const DB_RETRIES: &str = "contact_import_db_retries_total";
/// Gauge: batches being processed now.
pub const IN_FLIGHT: &str = "contact_import_batches_in_flight";
/// Counter: messages this worker dead-lettered, by `reason` (a [`RejectCode`]).
pub const DEAD_LETTERED: &str = "contact_import_dead_lettered_total";
/// Counter: redelivered batches answered with their stored result.
pub const REPLAYED: &str = "contact_import_batches_replayed_total";
/// Counter: deliveries returned to the queue, by `reason` (a [`RequeueReason`]).
pub const REQUEUED: &str = "contact_import_batches_requeued_total";
/// Counter: confirmed results no queue received, by `target` (an [`UnroutableTarget`]).
pub const RESULTS_UNROUTABLE: &str = "contact_import_results_unroutable_total";
/// Counter: broker sessions lost and reconnected.
pub const BROKER_RECONNECTS: &str = "contact_import_broker_reconnects_total";
/// Gauge: 1 while the broker blocks this worker's publishing (memory or disk alarm).
pub const BROKER_BLOCKED: &str = "contact_import_broker_blocked";
/// Gauge: 0 while the database is unavailable and no new batches are taken, else 1.
pub const DATABASE_UP: &str = "contact_import_database_up";
/// Counter: batches answered as dry runs (`x-dry-run`); not in [`CONTACTS`].
pub const DRY_RUNS: &str = "contact_import_dry_runs_total";
/// Gauge: 1 while `/readyz` would answer ready (without its database round trip).
pub const READY: &str = "contact_import_ready";
/// Gauge: always 1; its `version` label names the build.
pub const BUILD_INFO: &str = "contact_import_build_info";
/// Counter: messages taken from the import queue, by `type` (`unknown` for no dialect); redeliveries count again.
pub const MESSAGES: &str = "contact_import_messages_total";
/// Batches refused because their publisher may not write into the org, by reason.
pub const UNAUTHORIZED: &str = "contact_import_unauthorized_total";
/// Counter: Save User Contacts userName/password pairs refused unverified by the per-account
/// throttle (`too.many.attempts`).
pub const LOGIN_THROTTLED: &str = "contact_import_login_throttled_total";
/// Histogram, seconds: from a batch's arrival on its lane (routed there) to the start of its
/// work, by `lane` (`interactive`, `bulk`, `heavy`).
pub const LANE_DWELL: &str = "contact_import_lane_dwell_seconds";
/// Counter: messages routed from the import queue to a lane, by `lane`.
pub const ROUTED: &str = "contact_import_routed_total";
/// Gauge: messages ready in the import queue and in each lane queue, by `queue` (one per
/// lane and shard: bounded by `CONTACT_IMPORT_BULK_SHARDS`), sampled every 5 s with lanes on.
pub const QUEUE_READY: &str = "contact_import_queue_messages_ready";
/// Gauge: orgs the router counts as heavy now (more than their share of the recent bulk
/// traffic; their batches wait on the heavy shards).
pub const HEAVY_ORGS: &str = "contact_import_heavy_orgs";
/// Gauge, seconds: how long the oldest batch in flight has been in flight (0 with none).
pub const BATCH_OLDEST: &str = "contact_import_batches_in_flight_oldest_age_seconds";
/// Gauge: batches whose COMMIT was sent and has not returned.
pub const COMMITTING: &str = "contact_import_batches_committing";
/// Gauge, seconds: how long the oldest COMMIT has waited, this worker's or any of the
/// database's waiting for the synchronous standby (0 with none).
pub const COMMIT_WAIT_OLDEST: &str = "contact_import_commit_wait_oldest_seconds";
/// Counter: commits that ended without a definite answer (the connection closed under the
/// COMMIT, or its wait for the synchronous standby was cancelled); each is resolved by
/// reading back and confirming before its batch is answered.
pub const COMMIT_OUTCOME_UNKNOWN: &str = "contact_import_commit_outcome_unknown_total";
/// Counter: commits whose wait for the synchronous standby was cancelled (by an operator's
/// `pg_cancel_backend`, a pooler, a server shutdown): committed on the primary only.
pub const SYNC_WAIT_CANCELLED: &str = "contact_import_sync_wait_cancelled_total";

/// Why a delivery went back to the queue: the `reason` of [`REQUEUED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueReason {
    /// The database refused or failed the batch.
    Database,
    /// The batch ran past its time limit.
    Timeout,
    /// Its result could not be published.
    Publish,
    /// It was to be dead-lettered, and the dead letter was not confirmed.
    DeadLetter,
}

impl RequeueReason {
    /// Every reason.
    pub const ALL: [RequeueReason; 4] = [
        Self::Database,
        Self::Timeout,
        Self::Publish,
        Self::DeadLetter,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Timeout => "timeout",
            Self::Publish => "publish",
            Self::DeadLetter => "dead-letter",
        }
    }
}

/// Where a result found no queue: the `target` of [`RESULTS_UNROUTABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnroutableTarget {
    /// No queue is bound to the results exchange for the org.
    ResultsExchange,
    /// The request's `reply_to` queue does not exist.
    ReplyTo,
}

impl UnroutableTarget {
    /// Every target.
    pub const ALL: [UnroutableTarget; 2] = [Self::ResultsExchange, Self::ReplyTo];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResultsExchange => "results-exchange",
            Self::ReplyTo => "reply-to",
        }
    }
}

/// What a metric is, for Prometheus and for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// A value now.
    Gauge,
    /// A distribution, in seconds.
    Histogram,
}

impl MetricKind {
    /// Prometheus's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One exported metric: registered from this table at start ([`install`]), and listed from
/// it in docs/reference/metrics.md.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// Its labels (bounded: none per org or batch).
    pub labels: &'static [&'static str],
    /// Its help text.
    pub help: &'static str,
}

/// Every metric the worker exports.
pub const METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: BATCHES,
        kind: MetricKind::Counter,
        labels: &["status"],
        help: "Batches finished, by status (succeeded, partial, failed, rejected).",
    },
    MetricDoc {
        name: CONTACTS,
        kind: MetricKind::Counter,
        labels: &["outcome"],
        help: "Contacts of applied batches, by outcome (created, updated, failed).",
    },
    MetricDoc {
        name: BATCH_DURATION,
        kind: MetricKind::Histogram,
        labels: &[],
        help: "Time from delivery to settlement of a batch.",
    },
    MetricDoc {
        name: DB_RETRIES,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Database attempts retried after a transient error.",
    },
    MetricDoc {
        name: IN_FLIGHT,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Batches being processed now.",
    },
    MetricDoc {
        name: DEAD_LETTERED,
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "Messages this worker dead-lettered, by reason.",
    },
    MetricDoc {
        name: REPLAYED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Redelivered batches answered with their stored result.",
    },
    MetricDoc {
        name: REQUEUED,
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "Deliveries returned to the queue for another attempt, by reason.",
    },
    MetricDoc {
        name: RESULTS_UNROUTABLE,
        kind: MetricKind::Counter,
        labels: &["target"],
        help: "Results the broker could not route to any queue, by target.",
    },
    MetricDoc {
        name: BROKER_RECONNECTS,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Broker sessions lost (connection, channel or consumer) and reconnected.",
    },
    MetricDoc {
        name: BROKER_BLOCKED,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "1 while the broker blocks this worker's publishing (memory or disk alarm).",
    },
    MetricDoc {
        name: DATABASE_UP,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "0 while the database is unavailable and no new batches are taken, else 1.",
    },
    MetricDoc {
        name: DRY_RUNS,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Batches answered as dry runs (x-dry-run): checked, nothing written. Also counted in contact_import_batches_total, not in contact_import_contacts_total.",
    },
    MetricDoc {
        name: READY,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "1 while the worker consumes on open channels, unblocked, with the database available (what /readyz reports, without its database round trip).",
    },
    MetricDoc {
        name: BUILD_INFO,
        kind: MetricKind::Gauge,
        labels: &["version"],
        help: "Always 1; the version label says which build runs.",
    },
    MetricDoc {
        name: MESSAGES,
        kind: MetricKind::Counter,
        labels: &["type"],
        help: "Messages taken from the import queue, by AMQP type (the dialect; \"unknown\" for a type no dialect reads). Redeliveries count again.",
    },
    MetricDoc {
        name: UNAUTHORIZED,
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "Batches refused because their publisher may not write into the org, by reason \
         (missing.user.id, org.forbidden, reply.to.forbidden).",
    },
    MetricDoc {
        name: LOGIN_THROTTLED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Save User Contacts userName/password pairs refused with too.many.attempts, unverified: \
         their userName had too many failed verifications within the window \
         (CONTACT_IMPORT_LOGIN_MAX_FAILURES, CONTACT_IMPORT_LOGIN_FAILURE_WINDOW).",
    },
    MetricDoc {
        name: LANE_DWELL,
        kind: MetricKind::Histogram,
        labels: &["lane"],
        help: "Time from a batch's arrival on its lane to the start of its work, by lane (interactive, bulk, heavy); with CONTACT_IMPORT_LANES on.",
    },
    MetricDoc {
        name: ROUTED,
        kind: MetricKind::Counter,
        labels: &["lane"],
        help: "Messages routed from the import queue to a lane, by lane (interactive, bulk, heavy).",
    },
    MetricDoc {
        name: QUEUE_READY,
        kind: MetricKind::Gauge,
        labels: &["queue"],
        help: "Messages ready in the import queue and in each lane queue, by queue; sampled every 5 s with CONTACT_IMPORT_LANES on.",
    },
    MetricDoc {
        name: HEAVY_ORGS,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Orgs this worker's router counts as heavy now: more than their share of the recent bulk traffic, so their batches wait on the heavy shards while other orgs' bulk batches run first.",
    },
    MetricDoc {
        name: BATCH_OLDEST,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "How long the oldest batch in flight has been in flight; 0 with none. Unlike the latency histogram, it grows while batches hang.",
    },
    MetricDoc {
        name: COMMITTING,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Batches whose COMMIT was sent and has not returned (with a synchronous standby away, they wait for it).",
    },
    MetricDoc {
        name: COMMIT_WAIT_OLDEST,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "How long the oldest COMMIT has waited: this worker's, or any of the database's (same role) waiting for the synchronous standby; 0 with none.",
    },
    MetricDoc {
        name: COMMIT_OUTCOME_UNKNOWN,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Commits that ended without a definite answer (connection lost under the COMMIT, or its wait for the synchronous standby cancelled); their batches are answered only once the commit is read back and confirmed replicated.",
    },
    MetricDoc {
        name: SYNC_WAIT_CANCELLED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Commits whose wait for the synchronous standby was cancelled (pg_cancel_backend, a pooler, a server shutdown): committed on the primary only, so not answered.",
    },
];

/// A person waits on the interactive lane: fine below 1 s; bulk work waits minutes.
const DWELL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the global recorder and describes every metric; the handle renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BATCH_DURATION.into()), DURATION_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(LANE_DWELL.into()), DWELL_BUCKETS)?
        .install_recorder()?;
    for m in METRICS {
        let (name, help) = (m.name, m.help);
        match m.kind {
            MetricKind::Counter => describe_counter!(name, help),
            MetricKind::Gauge if name.ends_with("_seconds") => {
                describe_gauge!(name, metrics::Unit::Seconds, help)
            }
            MetricKind::Gauge => describe_gauge!(name, help),
            MetricKind::Histogram => describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
    // Zero-valued series exist from the start, so that rate() and alerts see them.
    for status in BatchStatus::ALL {
        counter!(BATCHES, "status" => status.as_str()).increment(0);
    }
    for outcome in ["created", "updated", "failed"] {
        counter!(CONTACTS, "outcome" => outcome).increment(0);
    }
    counter!(DB_RETRIES).increment(0);
    // Labelled series too: increase() cannot see the first event of a series that appears
    // with it, so alerts would miss a new reason's first dead letter.
    for code in RejectCode::ALL {
        counter!(DEAD_LETTERED, "reason" => code.as_str()).increment(0);
    }
    for reason in RequeueReason::ALL {
        counter!(REQUEUED, "reason" => reason.as_str()).increment(0);
    }
    for target in UnroutableTarget::ALL {
        counter!(RESULTS_UNROUTABLE, "target" => target.as_str()).increment(0);
    }
    for kind in MessageType::all() {
        counter!(MESSAGES, "type" => kind.as_str()).increment(0);
    }
    counter!(MESSAGES, "type" => "unknown").increment(0);
    counter!(BROKER_RECONNECTS).increment(0);
    counter!(DRY_RUNS).increment(0);
    counter!(LOGIN_THROTTLED).increment(0);
    counter!(COMMIT_OUTCOME_UNKNOWN).increment(0);
    counter!(SYNC_WAIT_CANCELLED).increment(0);
    gauge!(BATCH_OLDEST).set(0.0);
    gauge!(COMMITTING).set(0.0);
    gauge!(COMMIT_WAIT_OLDEST).set(0.0);
    for reason in RejectCode::ALL.into_iter().filter(|c| c.requester_only()) {
        counter!(UNAUTHORIZED, "reason" => reason.as_str()).increment(0);
    }
    gauge!(IN_FLIGHT).set(0.0);
    gauge!(BROKER_BLOCKED).set(0.0);
    gauge!(READY).set(0.0);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Keeps the exporter's histograms bounded; the recorder needs this called periodically.
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// Counts a settled batch and its time from delivery to settlement.
pub fn batch_finished(status: BatchStatus, elapsed: Duration) {
    counter!(BATCHES, "status" => status.as_str()).increment(1);
    histogram!(BATCH_DURATION).record(elapsed.as_secs_f64());
}

/// Counts the contacts of an applied batch, by outcome.
pub fn contacts(created: usize, updated: usize, failed: usize) {
    counter!(CONTACTS, "outcome" => "created").increment(created as u64);
    counter!(CONTACTS, "outcome" => "updated").increment(updated as u64);
    counter!(CONTACTS, "outcome" => "failed").increment(failed as u64);
}

/// Counts one retried database attempt.
pub fn db_retry() {
    counter!(DB_RETRIES).increment(1);
}

/// Counts a batch the worker dead-lettered, by its rejection code.
pub fn dead_lettered(reason: RejectCode) {
    counter!(DEAD_LETTERED, "reason" => reason.as_str()).increment(1);
}

/// Counts a broker session lost and reconnected.
pub fn broker_reconnect() {
    counter!(BROKER_RECONNECTS).increment(1);
}

/// Sets [`BROKER_BLOCKED`].
pub fn broker_blocked(blocked: bool) {
    gauge!(BROKER_BLOCKED).set(f64::from(u8::from(blocked)));
}

/// Sets [`DATABASE_UP`].
pub fn database_up(up: bool) {
    gauge!(DATABASE_UP).set(f64::from(u8::from(up)));
}

/// Sets [`READY`].
pub fn ready(ready: bool) {
    gauge!(READY).set(f64::from(u8::from(ready)));
}

/// Counts a message taken from the queue, by its dialect.
pub fn message(kind: Option<MessageType>) {
    let kind = kind.map_or("unknown", MessageType::as_str);
    counter!(MESSAGES, "type" => kind).increment(1);
}

/// Counts a batch answered as a dry run.
pub fn dry_run() {
    counter!(DRY_RUNS).increment(1);
}

/// Counts a redelivered batch answered with its stored result.
pub fn replayed() {
    counter!(REPLAYED).increment(1);
}

/// Counts a batch refused by the authorization (`missing.user.id`, `org.forbidden`).
pub fn unauthorized(reason: RejectCode) {
    counter!(UNAUTHORIZED, "reason" => reason.as_str()).increment(1);
}

/// Counts userName/password pairs the login throttle refused.
pub fn login_throttled(pairs: usize) {
    counter!(LOGIN_THROTTLED).increment(pairs as u64);
}

/// Counts a delivery given back to the queue.
pub fn requeued(reason: RequeueReason) {
    counter!(REQUEUED, "reason" => reason.as_str()).increment(1);
}

/// Counts a confirmed result that no queue received.
pub fn result_unroutable(target: UnroutableTarget) {
    counter!(RESULTS_UNROUTABLE, "target" => target.as_str()).increment(1);
}

/// Counts a batch in flight for as long as it lives, and remembers since when (see
/// [`Started`]).
pub struct InFlight(u64);

/// The batches in flight and when each started: [`BATCH_OLDEST`].
static BATCHES_IN_FLIGHT: Started = Started::new();

impl InFlight {
    /// Counts one more batch in flight until the guard is dropped.
    pub fn enter() -> Self {
        gauge!(IN_FLIGHT).increment(1.0);
        Self(BATCHES_IN_FLIGHT.enter())
    }

    /// How long the oldest batch in flight has been in flight.
    pub fn oldest() -> Option<Duration> {
        BATCHES_IN_FLIGHT.oldest()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        BATCHES_IN_FLIGHT.leave(self.0);
        gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// Things in flight, each with the instant it started, for an "oldest" gauge: a histogram
/// sees only what finishes, so it stays quiet while something hangs.
pub struct Started {
    since: std::sync::Mutex<std::collections::BTreeMap<u64, Instant>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Started {
    /// Nothing in flight.
    pub const fn new() -> Self {
        Self {
            since: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// One more in flight, from now; the number given back is what [`Started::leave`] takes.
    pub fn enter(&self) -> u64 {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.since
            .lock()
            .expect("started lock")
            .insert(id, Instant::now());
        id
    }

    /// `id` is no longer in flight.
    pub fn leave(&self, id: u64) {
        self.since.lock().expect("started lock").remove(&id);
    }

    /// How long the oldest one in flight has been in flight.
    pub fn oldest(&self) -> Option<Duration> {
        // Ids grow with time, so the first entry is the oldest.
        let since = self.since.lock().expect("started lock");
        since.values().next().map(Instant::elapsed)
    }
}

impl Default for Started {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the gauges of what is oldest in flight: batches, and commits in flight (`commits`).
pub fn oldest_in_flight(commits: Option<Duration>) {
    gauge!(BATCH_OLDEST).set(InFlight::oldest().unwrap_or_default().as_secs_f64());
    gauge!(COMMIT_WAIT_OLDEST).set(commits.unwrap_or_default().as_secs_f64());
}

/// Counts a COMMIT sent (`1.0`) or returned (`-1.0`) in [`COMMITTING`].
pub fn committing(change: f64) {
    gauge!(COMMITTING).increment(change);
}

/// Counts a commit whose outcome is unknown (see [`COMMIT_OUTCOME_UNKNOWN`]).
pub fn commit_outcome_unknown() {
    counter!(COMMIT_OUTCOME_UNKNOWN).increment(1);
}

/// Counts a commit whose wait for the synchronous standby was cancelled (see
/// [`SYNC_WAIT_CANCELLED`]).
pub fn sync_wait_cancelled() {
    counter!(SYNC_WAIT_CANCELLED).increment(1);
}

/// Records a batch's dwell on `lane` (its label), routed there at `routed_at_ms` (Unix
/// milliseconds).
pub fn lane_dwell(lane: &'static str, routed_at_ms: i64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let seconds = (now_ms - routed_at_ms).max(0) as f64 / 1000.0;
    histogram!(LANE_DWELL, "lane" => lane).record(seconds);
}

/// Counts a message routed to `lane` (its label).
pub fn routed(lane: &'static str) {
    counter!(ROUTED, "lane" => lane).increment(1);
}

/// Sets [`QUEUE_READY`] of `queue`.
pub fn queue_ready(queue: &str, ready: u32) {
    gauge!(QUEUE_READY, "queue" => queue.to_owned()).set(f64::from(ready));
}

/// Sets [`HEAVY_ORGS`].
pub fn heavy_orgs(count: usize) {
    gauge!(HEAVY_ORGS).set(count as f64);
}
