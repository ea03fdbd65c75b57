//! Test harness: each test gets its own database (migrated by the real `migrate` command),
//! its own exchange and queue names, and a real `contact-import worker` process configured
//! for them, so tests run in parallel against one RabbitMQ and one PostgreSQL.

use contact_import::broker::topology;
use contact_import::config::BrokerConfig;
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

pub const BIN: &str = env!("CARGO_BIN_EXE_contact-import");
pub const ORG: &str = "d23736ac-8055-433e-b85a-0fc55c96ead9";
const WAIT: Duration = Duration::from_secs(30);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test (or `source .local/services.env` after scripts/services up)")
    })
}

pub struct TestEnv {
    pub id: String,
    pub broker: BrokerConfig,
    pub database_url: String,
    pub db: Client,
    channel: Channel,
    results: Mutex<Consumer>,
    _connection: Connection,
}

impl TestEnv {
    pub async fn new() -> Self {
        let amqp_url = required_env("AMQP_URL");
        let base_url = required_env("DATABASE_URL");
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();

        let database = format!("test_{id}");
        let (admin, connection) = tokio_postgres::connect(&base_url, NoTls)
            .await
            .expect("connect to DATABASE_URL");
        tokio::spawn(connection);
        admin
            .execute(&format!("CREATE DATABASE {database}"), &[])
            .await
            .expect("create test database");
        let database_url = with_database(&base_url, &database);
        let migrate = Command::new(BIN)
            .arg("migrate")
            .env("DATABASE_URL", &database_url)
            .output()
            .await
            .expect("run contact-import migrate");
        assert!(
            migrate.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let (db, connection) = tokio_postgres::connect(&database_url, NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(connection);

        let prefix = format!("t{id}.");
        let broker = BrokerConfig {
            amqp_url: amqp_url.clone(),
            import_exchange: format!("{prefix}contacts.import"),
            import_queue: format!("{prefix}contacts.import"),
            import_routing_key: "contacts.import".into(),
            dead_letter_exchange: format!("{prefix}contacts.import.dlx"),
            dead_letter_queue: format!("{prefix}contacts.import.dead"),
            results_exchange: format!("{prefix}contacts.results"),
            delivery_limit: 3,
        };
        let connection = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .expect("connect to AMQP_URL");
        let channel = connection.create_channel().await.unwrap();
        topology::declare(&channel, &broker)
            .await
            .expect("declare topology");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let results_queue = channel
            .queue_declare("".into(), exclusive, FieldTable::default())
            .await
            .unwrap();
        channel
            .queue_bind(
                results_queue.name().clone(),
                broker.results_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let results = channel
            .basic_consume(
                results_queue.name().clone(),
                "".into(),
                no_ack,
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            id,
            broker,
            database_url,
            db,
            channel,
            results: Mutex::new(results),
            _connection: connection,
        }
    }

    /// Starts a worker process for this test's names and database.
    pub async fn spawn_worker(&self, extra_args: &[&str]) -> Worker {
        // The HTTP port is free when picked but may be taken before the worker binds it
        // (outgoing connections draw from the same range): then the worker exits, try again.
        for _ in 0..3 {
            let mut worker = self.start_worker(extra_args);
            if worker.wait_ready().await {
                return worker;
            }
        }
        panic!("the worker did not start three times");
    }

    fn start_worker(&self, extra_args: &[&str]) -> Worker {
        let port = free_port();
        let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("worker-{}-{port}.log", self.id));
        let child = self
            .command("worker")
            .args(extra_args)
            .env("CONTACT_IMPORT_HTTP_ADDR", http.to_string())
            .env("CONTACT_IMPORT_DB_RETRY_MIN_MS", "20")
            .env("CONTACT_IMPORT_DB_RETRY_MAX_MS", "200")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker");
        Worker { child, http, log }
    }

    /// `contact-import <subcommand>` configured for this test's broker names and database.
    pub fn command(&self, subcommand: &str) -> Command {
        let b = &self.broker;
        let mut command = Command::new(BIN);
        command
            .arg(subcommand)
            .env("AMQP_URL", &b.amqp_url)
            .env("DATABASE_URL", &self.database_url)
            .env("CONTACT_IMPORT_EXCHANGE", &b.import_exchange)
            .env("CONTACT_IMPORT_QUEUE", &b.import_queue)
            .env("CONTACT_IMPORT_ROUTING_KEY", &b.import_routing_key)
            .env(
                "CONTACT_IMPORT_DEAD_LETTER_EXCHANGE",
                &b.dead_letter_exchange,
            )
            .env("CONTACT_IMPORT_DEAD_LETTER_QUEUE", &b.dead_letter_queue)
            .env("CONTACT_IMPORT_RESULTS_EXCHANGE", &b.results_exchange)
            .env(
                "CONTACT_IMPORT_DELIVERY_LIMIT",
                b.delivery_limit.to_string(),
            );
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

    /// The test's own confirm-mode channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    pub fn props(&self, message_id: &str) -> BasicProperties {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_type("webex.contacts.bulk".into())
            .with_message_id(message_id.into())
    }

    /// Publishes a batch to the import exchange and waits for the broker's confirm.
    pub async fn publish(&self, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.broker.import_exchange.as_str().into(),
                self.broker.import_routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            confirm.is_ack() && confirm.take_message().is_none(),
            "the batch was not routed"
        );
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
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    pub async fn contact_count(&self) -> i64 {
        self.db
            .query_one("SELECT count(*) FROM contacts", &[])
            .await
            .unwrap()
            .get(0)
    }
}

pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

pub fn org_header(org: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "org-id".into(),
        AMQPValue::LongString(LongString::from(org)),
    );
    headers
}

pub struct Worker {
    child: Child,
    http: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Worker {
    /// `false` if the process exited before it was ready.
    async fn wait_ready(&mut self) -> bool {
        let url = format!("http://{}/readyz", self.http);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!(
                    "worker exited with {status} before it was ready; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                return false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker not ready within 30 s; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The value of one series from `/metrics`, e.g. `contact_import_batches_total{status="succeeded"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
    }

    /// Where the worker serves `/metrics`, `/healthz` and `/readyz`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Asserts that `series` reaches `expected`. Settlement metrics move just after the
    /// result is published (the delivery is acked in between), so a test that has the result
    /// may read them a moment early.
    pub async fn expect_metric(&self, series: &str, expected: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.metric(series).await;
            if value == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} is {value}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("worker running").to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("worker did not exit within 30 s")
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{database}{query}")
}

/// A minimal valid Webex batch for `org` with the given contacts.
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

pub fn batch(org: &str, contacts: Value) -> Value {
    serde_json::json!({
        "schemas": "urn:cisco:codev:identity:contact:core:1.0",
        "orgId": org,
        "contacts": contacts,
    })
}
