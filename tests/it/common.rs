//! Each test's world: its own database (migrated by the real `migrate` command, dropped when
//! the test ends), its own exchange and queue names, and real `contact-import worker`
//! processes configured for them (`support::worker`), so tests run in parallel against one
//! RabbitMQ and one PostgreSQL.

use crate::support::broker::{self as amqp, names, subscribe_results};
use crate::support::database::{self, FreshDatabase};
use crate::support::env::{self, broker_env};
use crate::support::worker::{Worker, WorkerSettings};
use contact_import::broker::topology;
use contact_import::config::BrokerConfig;
use futures_lite::StreamExt;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Mutex;
use tokio_postgres::Client;

pub use crate::support::broker::header;

pub const ORG: &str = "d23736ac-8055-433e-b85a-0fc55c96ead9";
const WAIT: Duration = Duration::from_secs(30);

pub struct TestEnv {
    pub id: String,
    pub broker: BrokerConfig,
    pub database_url: String,
    pub db: Client,
    channel: Channel,
    results: Mutex<Consumer>,
    workers_started: AtomicUsize,
    /// Queues the test declared itself ([`TestEnv::declare_queue`]), deleted with the world.
    own_queues: std::sync::Mutex<Vec<String>>,
    _connection: Connection,
    /// Last: dropped after the connections above, at the end of the test.
    _database: FreshDatabase,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::on(env::amqp_url()).await
    }

    /// A world on the broker of `amqp_url` (a node of the test's own, say, whose policies it
    /// may set) rather than the shared one.
    pub async fn on(amqp_url: String) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();

        let database =
            FreshDatabase::create(&env::bin(), &env::database_url(), &format!("test_{id}"))
                .await
                .unwrap_or_else(|e| panic!("create the test database: {e:#}"));
        let db = database::connect(&database.url)
            .await
            .expect("connect to test database");

        let broker = names(&amqp_url, &format!("t{id}."), 3);
        let connection = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .expect("connect to AMQP_URL");
        let channel = amqp::confirm_channel(&connection).await.unwrap();
        topology::declare(&connection, &broker)
            .await
            .expect("declare topology");
        let results = subscribe_results(&channel, &broker).await.unwrap();
        Self {
            id,
            broker,
            database_url: database.url.clone(),
            db,
            channel,
            results: Mutex::new(results),
            workers_started: AtomicUsize::new(0),
            own_queues: Default::default(),
            _connection: connection,
            _database: database,
        }
    }

    /// Starts a worker process for this test's names and database.
    pub async fn spawn_worker(&self, extra_args: &[&str]) -> Worker {
        self.spawn_worker_with(extra_args, &[]).await
    }

    /// A worker as [`TestEnv::spawn_worker`] makes, with these environment variables too.
    pub async fn spawn_worker_with(&self, extra_args: &[&str], vars: &[(&str, &str)]) -> Worker {
        let n = self.workers_started.fetch_add(1, Ordering::Relaxed);
        let mut settings = WorkerSettings::new(
            env::bin(),
            self.broker.clone(),
            self.database_url.clone(),
            env::target_tmpdir(),
        )
        .env("CONTACT_IMPORT_DB_RETRY_MIN_MS", 20)
        .env("CONTACT_IMPORT_DB_RETRY_MAX_MS", 200);
        for (name, value) in vars {
            settings = settings.env(name, value);
        }
        settings.args = extra_args.iter().map(|a| a.to_string()).collect();
        Worker::spawn(&format!("worker-{}-{n}", self.id), &settings)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `contact-import <subcommand>` configured for this test's broker names and database.
    pub fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env::bin());
        command
            .arg(subcommand)
            .envs(broker_env(&self.broker))
            .env("DATABASE_URL", &self.database_url);
        command
    }

    /// Runs a CLI command to its end: (success, stdout, stderr).
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let output = self
            .command(args[0])
            .args(&args[1..])
            .output()
            .await
            .expect("run contact-import");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn props(&self, message_id: &str) -> BasicProperties {
        amqp::webex_properties(message_id)
    }

    /// Publishes a batch to the import exchange and waits for the broker's confirm.
    pub async fn publish(&self, body: &[u8], properties: BasicProperties) {
        let confirm = amqp::publish_batch(&self.channel, &self.broker, body, properties)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(amqp::routed(confirm), "the batch was not routed");
    }

    pub async fn publish_json(&self, message_id: &str, body: &Value) {
        self.publish(&serde_json::to_vec(body).unwrap(), self.props(message_id))
            .await;
    }

    /// The next result from the results exchange, with its routing key and properties.
    pub async fn next_result(&self) -> (String, BasicProperties, Value) {
        let mut results = self.results.lock().await;
        let delivery = tokio::time::timeout(WAIT, results.next())
            .await
            .expect("no result within 30 s")
            .expect("results consumer ended")
            .unwrap();
        let body = serde_json::from_slice(&delivery.data).expect("result is JSON");
        (delivery.routing_key.to_string(), delivery.properties, body)
    }

    /// The next result's body, if one comes within `within`.
    pub async fn try_next_result(&self, within: Duration) -> Option<Value> {
        let mut results = self.results.lock().await;
        let delivery = tokio::time::timeout(within, results.next()).await.ok()?;
        let delivery = delivery.expect("results consumer ended").unwrap();
        Some(serde_json::from_slice(&delivery.data).expect("result is JSON"))
    }

    /// Declares a durable queue owned by this test.
    pub async fn declare_queue(&self, name: &str) {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(name.into(), durable, FieldTable::default())
            .await
            .unwrap();
        self.own_queues.lock().unwrap().push(name.to_owned());
    }

    /// Binds (`bound`) or unbinds `queue` and `exchange` under `key`, as an operator can.
    pub async fn set_binding(&self, queue: &str, exchange: &str, key: &str, bound: bool) {
        if bound {
            topology::bind(&self.channel, queue, exchange, key)
                .await
                .unwrap();
        } else {
            self.channel
                .queue_unbind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
    }

    /// Waits for the next message in the dead-letter queue.
    pub async fn next_dead_letter(&self) -> (BasicProperties, Vec<u8>) {
        self.next_message(&self.broker.dead_letter_queue).await
    }

    /// Waits for the next message in `queue` and takes it.
    pub async fn next_message(&self, queue: &str) -> (BasicProperties, Vec<u8>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if let Some(message) = got {
                return (
                    message.delivery.properties.clone(),
                    message.delivery.data.clone(),
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing arrived in {queue} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `queue` holds `expected` ready messages. Letters that a CLI read and did
    /// not remove go back to the (quorum) queue asynchronously after it exits, so a count
    /// taken at once can miss them.
    pub async fn expect_queue_depth(&self, queue: &str, expected: u32, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let depth = self.queue_depth(queue).await;
            if depth == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {queue} holds {depth} messages, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many messages `queue` holds now.
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        amqp::queue_depth(&self.channel, queue).await.unwrap()
    }

    /// Adds a Save User Contacts account to the test's org, as `contact-import accounts add`
    /// stores it.
    pub async fn add_account(&self, user: &str, password: &str) {
        let hash = contact_import::contact::credentials::hash(password).unwrap();
        self.db
            .execute(
                "INSERT INTO accounts (org_id, user_name, password_hash) VALUES ($1, $2, $3)",
                &[&ORG, &user, &hash],
            )
            .await
            .unwrap();
    }

    /// Deletes the import queue, which makes the broker cancel `worker`'s consumer
    /// (basic.cancel), and waits until the worker has reconnected and is ready again.
    pub async fn cancel_consumer_and_wait_for_resubscribe(&self, worker: &Worker) {
        self.channel
            .queue_delete(
                self.broker.import_queue.as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while worker
            .metric("contact_import_broker_reconnects_total")
            .await
            < 1.0
            || worker.get("/readyz").await.0 != 200
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not resubscribe"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn contact_count(&self) -> i64 {
        self.db
            .query_one("SELECT count(*) FROM contacts", &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// How many results each batch got, to check that every batch is answered exactly once.
#[derive(Default)]
pub struct Answers(std::collections::HashMap<String, usize>);

impl Answers {
    /// Takes results until `batches` distinct batches have been answered.
    pub async fn until(&mut self, env: &TestEnv, batches: usize) {
        while self.0.len() < batches {
            let (_, _, result) = env.next_result().await;
            self.count(&result);
        }
    }

    /// Takes the results that still come, each within a second of the last: after the
    /// workers stopped, a second answer would be among them.
    pub async fn late(&mut self, env: &TestEnv) {
        while let Some(result) = env.try_next_result(Duration::from_secs(1)).await {
            self.count(&result);
        }
    }

    fn count(&mut self, result: &Value) {
        *self
            .0
            .entry(result["batchId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }

    /// Asserts that no batch was answered more than once.
    pub fn assert_each_once(&self) {
        let twice: Vec<_> = self.0.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "answered more than once: {twice:?}");
    }
}

impl Drop for TestEnv {
    /// Deletes the world's queues, streams and exchanges, so that a broker shared by many
    /// runs does not pile them up (thousands of quorum queues stop a small node). `Drop`
    /// cannot await: a thread of its own, on its own runtime, over a fresh connection, as
    /// the database is dropped.
    fn drop(&mut self) {
        let broker = self.broker.clone();
        let own_queues =
            std::mem::take(&mut *self.own_queues.lock().unwrap_or_else(|e| e.into_inner()));
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    let connection =
                        Connection::connect(&broker.amqp_url, ConnectionProperties::default())
                            .await?;
                    let channel = connection.create_channel().await?;
                    for queue in own_queues {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    amqp::delete_topology(&connection, &broker).await;
                    connection.close(200, "test done".into()).await
                })
                .await;
            });
        })
        .join();
        if deleted.is_err() {
            eprintln!("deleting the test's broker topology panicked");
        }
    }
}

/// Asserts that a command wrote no ERROR line: one that does has closed its connection by
/// dropping the socket (lapin's "Connection error"), with acks the broker may not have read
/// (a replayed dead letter then stays in the queue).
pub fn closed_cleanly(stderr: &str) {
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains(" ERROR ") || l.contains(r#""level":"ERROR""#)),
        "the command logged an error:\n{stderr}"
    );
}

pub fn org_header(org: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "org-id".into(),
        AMQPValue::LongString(LongString::from(org)),
    );
    headers
}

/// A result's `failedContacts` as (index, errorCode, statusCode).
pub fn failures(result: &Value) -> Vec<(String, String, u64)> {
    result["failedContacts"]
        .as_array()
        .expect("failedContacts is a list")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["errorCode"].as_str().unwrap().to_owned(),
                f["statusCode"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A minimal valid Webex batch for `org` with the given contacts.
pub fn batch(org: &str, contacts: Value) -> Value {
    serde_json::json!({
        "schemas": "urn:cisco:codev:identity:contact:core:1.0",
        "orgId": org,
        "contacts": contacts,
    })
}

/// A file of `tests/fixtures/` (taken from the seed documents).
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Makes the database refuse every contact until [`accept_contacts`].
pub async fn refuse_contacts(env: &TestEnv) {
    env.db
        .batch_execute(
            "CREATE TABLE outage_switch (refusing boolean NOT NULL);
             INSERT INTO outage_switch VALUES (true);
             CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF (SELECT refusing FROM outage_switch) THEN
                     RAISE EXCEPTION 'contacts are read-only today' USING ERRCODE = '23514';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON contacts
                 FOR EACH STATEMENT EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
}

pub async fn accept_contacts(env: &TestEnv) {
    env.db
        .execute("UPDATE outage_switch SET refusing = false", &[])
        .await
        .unwrap();
}
