//! One scenario's world: its private services, the migrated database, the result
//! collector, the batches published so far, and the end of the fault (to time recovery).

use crate::check::{self, Summary};
use crate::cluster::Cluster;
use crate::stream::{self, Batch, Collector, DeadLetter, Received};
use crate::support::broker::default_names;
use crate::support::database::migrate;
use crate::support::env;
use crate::support::worker::{Worker, WorkerSettings};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long the whole stream may take to be accounted for after the fault.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(120);

pub struct Scenario {
    pub name: &'static str,
    pub cluster: Cluster,
    pub results: Collector<Received>,
    pub published: Vec<Batch>,
    pub dead_letters: Collector<DeadLetter>,
    started: Instant,
    /// (batches answered, batches published) when the fault began.
    at_fault: Option<(usize, usize)>,
    fault_ended: Option<SystemTime>,
    /// Set by scenarios whose recovery is not "first batch applied after the fault".
    pub recovery: Option<Duration>,
}

impl Scenario {
    /// Starts the services, migrates the database with `contact-import migrate` and starts
    /// collecting results.
    pub async fn start(name: &'static str) -> Self {
        Self::start_on_nodes(name, 1).await
    }

    /// As [`Scenario::start`], with a RabbitMQ cluster of `nodes` nodes: the worker, the
    /// producer and the collectors are given every node's URL.
    pub async fn start_on_nodes(name: &'static str, nodes: usize) -> Self {
        let started = Instant::now();
        let cluster = Cluster::start(name, nodes).await;
        migrate(&env::bin(), &cluster.postgres.url())
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let results = stream::collect_results(&cluster.amqp_url()).await;
        let dead_letters = stream::collect_dead_letters(&cluster.amqp_url());
        eprintln!(
            "{name}: services up in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            cluster.dir.display()
        );
        Self {
            name,
            cluster,
            results,
            published: Vec::new(),
            dead_letters,
            started,
            at_fault: None,
            fault_ended: None,
            recovery: None,
        }
    }

    /// Production settings pointed at this scenario's services, except the heartbeat (2 s,
    /// so that a silent network is noticed in seconds). Worker logs go to the scenario's folder.
    pub fn worker_settings(&self) -> WorkerSettings {
        let mut settings = WorkerSettings::new(
            env::bin(),
            default_names(&self.cluster.amqp_url()),
            self.cluster.postgres.url(),
            self.cluster.dir.clone(),
        );
        settings.heartbeat_secs = Some(2);
        settings
    }

    pub async fn spawn_worker(&self, name: &str, settings: &WorkerSettings) -> Worker {
        Worker::spawn(name, settings)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A fresh connection to the scenario's database (the old one dies with a restart).
    pub async fn db(&self) -> tokio_postgres::Client {
        self.cluster.postgres.client().await
    }

    /// Makes every batch wait `seconds` in PostgreSQL (a trigger on `import_batches`, named
    /// `slow`, that a scenario may drop to end the slowness).
    pub async fn slow_down_batches(&self, seconds: f64) {
        self.db()
            .await
            .batch_execute(&format!(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$;
                 CREATE TRIGGER slow BEFORE INSERT ON import_batches
                   FOR EACH ROW EXECUTE FUNCTION slow();"
            ))
            .await
            .unwrap();
    }

    /// Ends [`Scenario::slow_down_batches`]: batches run at full speed again.
    pub async fn end_slowness(&self) {
        self.db()
            .await
            .batch_execute("DROP TRIGGER slow ON import_batches")
            .await
            .unwrap();
    }

    pub async fn publish(&mut self, batches: Vec<Batch>) {
        stream::publish(&self.cluster.amqp_url(), &batches).await;
        self.published.extend(batches);
    }

    /// Batches with at least one result so far.
    pub fn batches_with_results(&self) -> usize {
        self.results
            .snapshot()
            .iter()
            .map(|r| r.batch_id().to_owned())
            .collect::<HashSet<_>>()
            .len()
    }

    /// The batches with at least one result so far, by id.
    pub fn answered(&self) -> BTreeSet<String> {
        self.results
            .snapshot()
            .iter()
            .map(|r| r.batch_id().to_owned())
            .collect()
    }

    /// Waits until `count` batches have a result: the point "mid-stream" where a fault
    /// is injected.
    pub async fn wait_for_results(&self, count: usize) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        while self.batches_with_results() < count {
            assert!(
                Instant::now() < deadline,
                "{}: only {} of {count} batches had a result after {SETTLE_WITHIN:?}",
                self.name,
                self.batches_with_results()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks the start of the fault, recording how far the stream had got: a fault is only
    /// "mid-stream" if published batches were still unanswered.
    pub fn fault_began(&mut self) {
        self.at_fault = Some((self.batches_with_results(), self.published.len()));
    }

    /// Marks the end of the fault: time to recover runs from here to the first batch
    /// applied afterwards.
    pub fn fault_ended(&mut self) {
        self.fault_ended = Some(SystemTime::now());
    }

    /// Time from the end of the fault to the first result produced after it (its
    /// `processedAt`; worker and test share the host's clock).
    fn time_to_recover(&self) -> Option<Duration> {
        if self.recovery.is_some() {
            return self.recovery;
        }
        let end = self.fault_ended?;
        self.results
            .snapshot()
            .iter()
            .filter_map(|r| r.processed_at?.duration_since(end).ok())
            .min()
    }

    /// What the broker says of the queues and their consumers: tells a collector that stopped
    /// reading (results ready or unacknowledged in its queue) from results never routed.
    async fn broker_view(&self) -> String {
        let Some(node) = self.cluster.rabbits.running_node() else {
            return "no broker node is running".into();
        };
        let mut view = String::new();
        for args in [
            &[
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ][..],
            &[
                "list_consumers",
                "queue_name",
                "channel_pid",
                "ack_required",
                "prefetch_count",
            ][..],
            &["list_connections", "name", "user", "state"][..],
        ] {
            match node.try_rabbitmqctl(args).await {
                Ok(out) | Err(out) => view.push_str(&out),
            }
        }
        view
    }

    /// Waits until every published batch has a result or a dead letter, then checks the
    /// invariants. `must_dead_letter` names the batches that must end dead-lettered. The
    /// scenario adds its own checks to the summary, then calls [`Summary::finish`].
    pub async fn settle_and_check(&mut self, must_dead_letter: &[&str]) -> Summary {
        let url = self.cluster.amqp_url();
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let mut accounted: HashSet<String> = self
                .results
                .snapshot()
                .iter()
                .map(|r| r.batch_id().to_owned())
                .collect();
            accounted.extend(self.dead_letters.snapshot().into_iter().map(|d| d.batch_id));
            let missing: Vec<&str> = self
                .published
                .iter()
                .filter(|b| !accounted.contains(&b.id))
                .map(|b| b.id.as_str())
                .collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "{}: {} batches neither answered nor dead-lettered after {SETTLE_WITHIN:?}, e.g. {:?}\n{}",
                    self.name,
                    missing.len(),
                    &missing[..missing.len().min(5)],
                    self.broker_view().await,
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let late duplicates (replays) arrive so that they are compared too.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let must: BTreeSet<String> = must_dead_letter.iter().map(|s| s.to_string()).collect();
        let depth = stream::ready_in_broker(&url).await;
        let mut summary = check::verify(
            &self.db().await,
            &self.published,
            &self.results.snapshot(),
            &self.dead_letters.snapshot(),
            &must,
            depth,
        )
        .await;
        summary.scenario = self.name.to_owned();
        summary.recovery = self.time_to_recover();
        summary.at_fault = self.at_fault;
        if let Some((answered, published)) = self.at_fault {
            summary.expect(
                answered < published,
                format!("all {published} published batches were answered before the fault: it did not hit mid-stream"),
            );
        }
        summary.duration = self.started.elapsed();
        if summary.recovery.is_none() && self.fault_ended.is_some() {
            summary
                .problems
                .push("no batch was applied after the fault ended".into());
        }
        summary
    }
}

/// Polls `condition` until it holds, failing with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
