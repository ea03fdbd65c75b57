//! The known stream: batches whose every contact is known in advance, published with
//! publisher confirms; the results collected from a durable quorum queue bound to the
//! results exchange, surviving broker restarts; the dead letters read from
//! `contacts.import.dead`.

use crate::support;
use crate::support::broker::{
    confirm_channel, header_text, publish_mandatory, routed, webex_properties,
};
use contact_import::broker::ConnectError;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Names from docs/producer.md, "Broker topology" (the defaults: each scenario has its own broker).
pub const IMPORT_EXCHANGE: &str = "contacts.import";
pub const IMPORT_ROUTING_KEY: &str = "contacts.import";
pub const IMPORT_QUEUE: &str = "contacts.import";
pub const DEAD_LETTER_QUEUE: &str = "contacts.import.dead";
pub const RESULTS_EXCHANGE: &str = "contacts.results";
/// The test's own subscriber queue on the results exchange (bound with `#`).
pub const RESULTS_QUEUE: &str = "faults.results";

/// Two orgs, alternating, so that rows are also checked to land in their batch's org.
pub const ORGS: [&str; 2] = [
    "d23736ac-8055-433e-b85a-0fc55c96ead9",
    "7f1c2a9e-51b4-4d0b-9a53-2f0d6e8c1b44",
];

/// One published batch and what it must produce.
#[derive(Clone)]
pub struct Batch {
    pub id: String,
    pub org: String,
    pub body: Vec<u8>,
    /// Emails of the valid contacts, by index in the request: the rows this batch must leave.
    pub valid: BTreeMap<usize, String>,
    /// Indexes of the contacts with an invalid email: its result's `failedContacts`.
    pub invalid: Vec<usize>,
    pub contacts: usize,
}

/// `count` batches numbered from `first`, `size` contacts each; contact `i` of batch `n` has
/// the email `c<n>-<i>@example.test`, and every contact whose index ends in 7 has an invalid
/// email, so most results are `partial` with known `failedContacts`.
pub fn batches(first: usize, count: usize, size: usize) -> Vec<Batch> {
    (first..first + count)
        .map(|n| make(n, size, None, 0))
        .collect()
}

/// As [`batches`], with about 1.5 kB of text per contact (title, company, address).
pub fn big_batches(first: usize, count: usize, size: usize) -> Vec<Batch> {
    (first..first + count)
        .map(|n| make(n, size, None, 200))
        .collect()
}

/// Batch `n`, optionally with one more contact whose email is `extra_email`.
pub fn batch(n: usize, size: usize, extra_email: Option<&str>) -> Batch {
    make(n, size, extra_email, 0)
}

fn make(n: usize, size: usize, extra_email: Option<&str>, filler: usize) -> Batch {
    let text = |label: &str| format!("{label} {}", "x".repeat(filler));
    let org = ORGS[n % ORGS.len()].to_owned();
    let mut valid = BTreeMap::new();
    let mut invalid = Vec::new();
    let mut contacts: Vec<Value> = (0..size)
        .map(|i| {
            let email = if i % 10 == 7 {
                invalid.push(i);
                format!("c{n}-{i}-at-example.test")
            } else {
                let email = format!("c{n}-{i}@example.test");
                valid.insert(i, email.clone());
                email
            };
            let mut contact = json!({
                "displayName": format!("Contact {n}-{i}"),
                "firstName": format!("First{i}"),
                "lastName": format!("Batch{n}"),
                "companyName": text("Fault Injection Ltd"),
                "emails": [{"value": email, "type": "work", "primary": true}],
                "phoneNumbers": [{"value": format!("+1 400 {n:03} {i:04}"), "type": "work"}],
            });
            if filler > 0 {
                contact["title"] = json!(text("Title"));
                contact["address"] = json!({
                    "street": text("1 Street"), "city": text("City"), "state": text("State"),
                    "country": text("Country"), "zipCode": "12345",
                });
            }
            contact
        })
        .collect();
    if let Some(email) = extra_email {
        valid.insert(contacts.len(), email.to_owned());
        contacts.push(json!({
            "displayName": format!("Marked {n}"),
            "emails": [{"value": email, "type": "work", "primary": true}],
        }));
    }
    let body = json!({
        "schemas": "urn:cisco:codev:identity:contact:core:1.0",
        "orgId": org,
        "contacts": contacts,
    });
    Batch {
        id: format!("batch-{n}"),
        org,
        body: serde_json::to_vec(&body).unwrap(),
        contacts: contacts.len(),
        valid,
        invalid,
    }
}

/// The worker's own connect: a handshake that never completes (a node still booting, a
/// broker going down) is given up after a bound instead of hanging the test.
pub async fn connect(url: &str) -> Result<Connection, ConnectError> {
    contact_import::broker::connect(url, "faults test").await
}

/// Publishes every batch persistent and `mandatory` to the import exchange, pipelined, and
/// waits for every confirm: afterwards the broker holds them all. A batch whose publish is
/// not confirmed (the connection lost, a nack, returned unrouted, no confirm within 30 s)
/// is published again on a new connection, to whichever node of `amqp_url` answers (a
/// list is tried in random order): the worker applies a batch published twice once.
pub async fn publish(amqp_url: &str, batches: &[Batch]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<&Batch> = batches.iter().collect();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let outcome = publish_once(amqp_url, &pending).await;
        let (failed, problem) = match outcome {
            Ok(failed) => (failed, "not confirmed".to_owned()),
            Err(e) => (pending.clone(), e.to_string()),
        };
        if !failed.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} batches still unconfirmed after {attempt} attempts ({problem}), e.g. {}",
                failed.len(),
                failed[0].id
            );
            eprintln!(
                "publish: {} of {} batches unconfirmed ({problem}); publishing them again",
                failed.len(),
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        pending = failed;
    }
}

/// One connection's try at publishing `batches`: those left unconfirmed.
async fn publish_once<'a>(
    amqp_url: &str,
    batches: &[&'a Batch],
) -> Result<Vec<&'a Batch>, Box<dyn std::error::Error>> {
    let connection = connect(amqp_url).await?;
    let channel = confirm_channel(&connection).await?;
    let mut confirms = Vec::with_capacity(batches.len());
    let mut failed = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        let properties = webex_properties(&batch.id).with_delivery_mode(2);
        match publish_mandatory(
            &channel,
            IMPORT_EXCHANGE,
            IMPORT_ROUTING_KEY,
            &batch.body,
            properties,
        )
        .await
        {
            Ok(confirm) => confirms.push((*batch, confirm)),
            Err(_) => {
                failed.extend_from_slice(&batches[i..]);
                break;
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(30);
    for (batch, confirm) in confirms {
        let confirmed = match tokio::time::timeout_at(until, confirm).await {
            Ok(Ok(confirmation)) => routed(confirmation),
            _ => false,
        };
        if !confirmed {
            failed.push(batch);
        }
    }
    let closing = connection.close(200, "published".into());
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
    Ok(failed)
}

/// The import queue and the lane queues of the worker's default topology (lanes on, 4 bulk
/// shards): wherever a batch waits in the broker.
pub fn all_queues() -> Vec<String> {
    let broker = crate::support::broker::default_names("amqp://unused");
    let lanes = contact_import::broker::lanes::Lanes::new(
        &broker,
        &contact_import::config::LaneConfig::default(),
    );
    std::iter::once(IMPORT_QUEUE.to_owned())
        .chain(lanes.queues().map(str::to_owned))
        .collect()
}

/// How many messages `queue` holds ready for delivery (not counting unacked ones).
pub async fn ready_in(amqp_url: &str, queue: &str) -> u32 {
    let connection = connect(amqp_url).await.expect("connect");
    let channel = connection.create_channel().await.unwrap();
    let ready = support::broker::queue_depth(&channel, queue).await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    ready
}

/// How many messages wait in the broker, ready for delivery, in the import queue and every
/// lane (not counting unacked ones).
pub async fn ready_in_broker(amqp_url: &str) -> u32 {
    let connection = connect(amqp_url).await.expect("connect");
    let channel = connection.create_channel().await.unwrap();
    let mut ready = 0;
    for queue in all_queues() {
        ready += support::broker::queue_depth(&channel, &queue)
            .await
            .unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
    ready
}

/// One result message as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub processed_at: Option<SystemTime>,
}

impl Received {
    pub fn batch_id(&self) -> &str {
        self.body["batchId"].as_str().unwrap_or("")
    }
}

/// Consumes a queue in the background with manual acks, reconnecting whenever the broker
/// goes away (or until the queue exists); every message is kept, duplicates included.
pub struct Collector<T> {
    received: Arc<Mutex<Vec<T>>>,
    task: JoinHandle<()>,
}

/// How a collector reads its queue. Either way each message is taken and acknowledged once
/// kept.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// A queue the worker declares (the dead letters): one subscription kept for as long as
    /// its connection lives (a message delivered twice would read as a batch dead-lettered
    /// twice).
    Queue,
    /// The results queue, which the test declares: a subscription silent for [`IDLE`] while
    /// its queue holds ready messages is stuck, and is dropped and made again. Once, in CI,
    /// a subscription made while a restarted broker was recovering stayed open and silent
    /// while results piled up behind it. A result read twice is harmless (results are
    /// counted by batch).
    Results,
}

/// How long a results subscription may stay silent before the queue is checked for ready
/// messages it should have delivered.
const IDLE: Duration = Duration::from_secs(5);

/// How long an ack may take before the subscription is given up and made again.
const ACK_WITHIN: Duration = Duration::from_secs(5);

impl<T: Clone + Send + 'static> Collector<T> {
    fn start(amqp_url: &str, queue: &'static str, how: Reading, read: fn(&Delivery) -> T) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let url = amqp_url.to_owned();
        let sink = received.clone();
        let task = tokio::spawn(async move {
            let mut last_error = String::new();
            loop {
                // Each new kind of failure is printed once: a collector that stops
                // collecting must say why in the test's output.
                let error = match consume(&url, queue, how, read, &sink).await {
                    Ok(()) => "subscription ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                if error != last_error {
                    eprintln!("collector of {queue}: {error}");
                    last_error = error;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self { received, task }
    }

    pub fn snapshot(&self) -> Vec<T> {
        self.received.lock().unwrap().clone()
    }
}

impl<T> Drop for Collector<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Declares the results exchange (as the worker does) and the test's durable quorum queue
/// bound to it with `#`, then collects every result.
pub async fn collect_results(amqp_url: &str) -> Collector<Received> {
    let connection = connect(amqp_url).await.expect("connect");
    let channel = connection.create_channel().await.unwrap();
    declare_results_queue(&channel).await.unwrap();
    let _ = connection.close(200, "declared".into()).await;
    Collector::start(amqp_url, RESULTS_QUEUE, Reading::Results, read_result)
}

/// Collects every dead letter from `contacts.import.dead` (the test owns it), once the
/// worker has declared it. A consumer rather than polling with `basic.get`: a poll that
/// hangs on a busy broker would hang the test.
pub fn collect_dead_letters(amqp_url: &str) -> Collector<DeadLetter> {
    Collector::start(
        amqp_url,
        DEAD_LETTER_QUEUE,
        Reading::Queue,
        read_dead_letter,
    )
}

async fn declare_results_queue(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            RESULTS_EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    // A quorum queue, not a stream: on RabbitMQ 3.10 a stream whose writer moved to another
    // node while a majority was lost (rabbitmq_majority_loss) was seen to confirm results to
    // the worker that no replica ever stored (every replica ended at the same offset, and the
    // collector had read all of it), failing the scenario for results the worker did publish.
    // A quorum queue confirms a message only once a majority has written it.
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            RESULTS_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await?;
    channel
        .queue_bind(
            RESULTS_QUEUE.into(),
            RESULTS_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// One subscription: keeps what it reads until its connection fails (or, for the results,
/// it is stuck: see [`Reading::Results`]).
async fn consume<T>(
    url: &str,
    queue: &str,
    how: Reading,
    read: fn(&Delivery) -> T,
    sink: &Mutex<Vec<T>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let connection = connect(url).await?;
    // As text: the error is not `Send`, and the close below is awaited.
    let outcome = subscription(&connection, queue, how, read, sink)
        .await
        .map_err(|e| e.to_string());
    // Every way out closes the connection, which requeues what it held unacked: one left
    // open keeps its subscription (even a `basic.consume` that timed out here, during a
    // majority loss, completes once the queue has a leader again), and the broker then
    // hands results to a consumer nobody reads. If the close never completes, the broker
    // requeues them once it gives the connection up.
    let _ = tokio::time::timeout(IDLE, connection.close(200, "resubscribing".into())).await;
    Ok(outcome?)
}

async fn subscription<T>(
    connection: &Connection,
    queue: &str,
    how: Reading,
    read: fn(&Delivery) -> T,
    sink: &Mutex<Vec<T>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let subscribe = async {
        let channel = connection.create_channel().await?;
        channel.basic_qos(500, BasicQosOptions::default()).await?;
        channel
            .basic_consume(
                queue.into(),
                "faults-collector".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    };
    let mut consumer = match how {
        Reading::Queue => subscribe.await?,
        Reading::Results => tokio::time::timeout(IDLE, subscribe).await??,
    };
    loop {
        let delivery = match how {
            Reading::Queue => consumer.next().await,
            Reading::Results => match tokio::time::timeout(IDLE, consumer.next()).await {
                Ok(delivery) => delivery,
                Err(_) if stuck(connection, queue).await => break,
                Err(_) => continue,
            },
        };
        let Some(delivery) = delivery else { break };
        let delivery = delivery?;
        sink.lock().unwrap().push(read(&delivery));
        // Bounded: an ack in flight when the broker goes down was seen (under load) never
        // to complete, which left the collector stuck for good after a broker restart.
        tokio::time::timeout(ACK_WITHIN, delivery.acker.ack(BasicAckOptions::default()))
            .await
            .map_err(|_| "an ack did not complete")??;
    }
    Ok(())
}

/// Whether a silent subscription on `connection` is stuck: `queue` holds ready messages that
/// it was not given (or the broker cannot even say, within [`IDLE`]).
async fn stuck(connection: &Connection, queue: &str) -> bool {
    let ready = async {
        let channel = connection.create_channel().await?;
        let ready = support::broker::queue_depth(&channel, queue).await;
        let _ = channel.close(200, "checked".into()).await;
        ready
    };
    !matches!(tokio::time::timeout(IDLE, ready).await, Ok(Ok(0)))
}

fn read_result(delivery: &Delivery) -> Received {
    let body: Value = serde_json::from_slice(&delivery.data)
        .unwrap_or_else(|_| json!({"unparseable": String::from_utf8_lossy(&delivery.data)}));
    let processed_at = body["processedAt"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(SystemTime::from);
    Received { body, processed_at }
}

/// One dead letter, taken from `contacts.import.dead`.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub batch_id: String,
    pub headers: BTreeMap<String, String>,
    pub at: Instant,
}

fn read_dead_letter(delivery: &Delivery) -> DeadLetter {
    let properties = &delivery.properties;
    let headers = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(k, v)| (k.to_string(), header_text(v)))
                .collect()
        })
        .unwrap_or_default();
    DeadLetter {
        batch_id: properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        headers,
        at: Instant::now(),
    }
}
