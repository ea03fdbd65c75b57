//! Producers authorised per org (`CONTACT_IMPORT_AUTHORIZATION=grants`) with real broker
//! users: each test starts its own RabbitMQ node (`support::servers`), creates producer
//! users there with `rabbitmqctl`, and runs a real worker against it.

use crate::common::{ORG, batch};
use crate::support::broker::queue_depth;
use crate::support::broker::{confirm_channel, names};
use crate::support::database::FreshDatabase;
use crate::support::env;
use crate::support::ports::random_u64;
use crate::support::servers::{RabbitMq, reap_abandoned};
use crate::support::worker::{Worker, WorkerSettings};
use contact_import::broker::topology;
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "producer-password";
const OTHER_ORG: &str = "e1c0ffee-0000-4000-8000-000000000002";

/// A private broker with users `alice` and `bob`, a fresh database, and a worker in
/// `grants` mode over both.
struct Tenants {
    rabbit: RabbitMq,
    database: FreshDatabase,
    prefix: String,
    worker: Option<Worker>,
    /// The test's own view of the results exchange (what an org's subscribers receive).
    subscribers: Consumer,
    /// A channel of the broker's administrator (`guest`), who declared the topology.
    admin: Channel,
    _admin: Connection,
}

impl Tenants {
    async fn start(test: &str) -> Self {
        let base = env::target_tmpdir().join("grants");
        std::fs::create_dir_all(&base).unwrap();
        reap_abandoned(&base);
        let id = random_u64() % 1_000_000;
        let dir = base.join(format!("{test}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
        let rabbit = RabbitMq::start(dir.join("rabbitmq")).await;
        let prefix = format!("g{id}.");
        // As docs/operations.md tells operators: a producer writes to the import exchange
        // and may neither declare nor read anything (direct reply-to needs no queue).
        let import_exchange = format!("^g{id}\\.contacts\\.import$");
        for user in ["alice", "bob"] {
            rabbit.rabbitmqctl(&["add_user", user, PASSWORD]).await;
            rabbit
                .rabbitmqctl(&[
                    "set_permissions",
                    "-p",
                    "/",
                    user,
                    "^$",
                    &import_exchange,
                    "^$",
                ])
                .await;
        }
        let database =
            FreshDatabase::create(&env::bin(), &env::database_url(), &format!("grants_{id}"))
                .await
                .unwrap();
        let broker = names(&rabbit.url(), &prefix, 5);
        let admin = contact_import::broker::connect(&rabbit.url(), "test admin")
            .await
            .unwrap();
        let channel = confirm_channel(&admin).await.unwrap();
        topology::declare(&admin, &broker).await.unwrap();
        let subscribers = crate::support::broker::subscribe_results(&channel, &broker)
            .await
            .unwrap();
        let settings = WorkerSettings::new(
            env::bin(),
            broker,
            database.url.clone(),
            env::target_tmpdir(),
        )
        .env("CONTACT_IMPORT_AUTHORIZATION", "grants");
        let worker = Worker::spawn(&format!("grants-{test}-{id}"), &settings)
            .await
            .unwrap();
        Self {
            rabbit,
            database,
            prefix,
            worker: Some(worker),
            subscribers,
            admin: channel,
            _admin: admin,
        }
    }

    /// `contact-import grants …` on the test's database.
    async fn grants(&self, args: &[&str]) {
        let output = tokio::process::Command::new(env::bin())
            .arg("grants")
            .args(args)
            .env("DATABASE_URL", &self.database.url)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "grants {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A connection and channel logged in as `user`, answered through direct reply-to.
    async fn producer(&self, user: &str) -> Producer {
        let connection = contact_import::broker::connect(&self.producer_url(user), user)
            .await
            .unwrap();
        let channel = confirm_channel(&connection).await.unwrap();
        let replies = channel
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Producer {
            channel,
            reply_to: "amq.rabbitmq.reply-to".into(),
            replies,
            exchange: format!("{}contacts.import", self.prefix),
            _connection: connection,
        }
    }

    fn producer_url(&self, user: &str) -> String {
        format!(
            "amqp://{user}:{PASSWORD}@127.0.0.1:{}/%2f",
            self.rabbit.port
        )
    }

    /// `contact-import <args>` against the test's broker names, logged in at `amqp_url`.
    async fn cli(&self, amqp_url: &str, args: &[&str]) -> std::process::Output {
        let broker = names(amqp_url, &self.prefix, 5);
        tokio::process::Command::new(env::bin())
            .args(args)
            .envs(env::broker_env(&broker))
            .env("DATABASE_URL", &self.database.url)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }

    async fn contact_count(&self) -> i64 {
        let db = crate::support::database::connect(&self.database.url)
            .await
            .unwrap();
        db.query_one("SELECT count(*) FROM contacts", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Whether a result reached the results exchange within a second.
    async fn subscribers_received_something(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(1), self.subscribers.next())
            .await
            .is_ok()
    }

    /// Waits until the dead-letter queue holds `n` letters.
    async fn wait_for_dead_letters(&self, n: u32) {
        let queue = format!("{}contacts.import.dead", self.prefix);
        for _ in 0..300 {
            if queue_depth(&self.admin, &queue).await.unwrap() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{queue} never held {n} letter(s)");
    }

    async fn stop(mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = worker.stop().await;
        }
    }
}

struct Producer {
    channel: Channel,
    reply_to: String,
    replies: Consumer,
    exchange: String,
    _connection: Connection,
}

impl Producer {
    /// Publishes one contact for `org`, as `user_id` (or without one), and waits for the
    /// confirm; `Err` when the broker refuses it.
    async fn publish(&self, id: &str, org: &str, user_id: Option<&str>) -> lapin::Result<()> {
        let body = batch(org, json!([{"displayName": format!("Contact {id}")}]));
        let mut properties = BasicProperties::default()
            .with_message_id(id.into())
            .with_content_type("application/json".into())
            .with_reply_to(self.reply_to.as_str().into());
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                "contacts.import".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &serde_json::to_vec(&body).unwrap(),
                properties,
            )
            .await?
            .await?;
        Ok(())
    }

    async fn next_reply(&mut self) -> Value {
        let delivery = tokio::time::timeout(Duration::from_secs(30), self.replies.next())
            .await
            .expect("a reply within 30 s")
            .unwrap()
            .unwrap();
        serde_json::from_slice(&delivery.data).unwrap()
    }
}

#[tokio::test]
async fn a_granted_producer_imports_into_its_org() {
    let mut tenants = Tenants::start("granted").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", ORG])
        .await;
    let mut alice = tenants.producer("alice").await;
    alice.publish("a-1", ORG, Some("alice")).await.unwrap();
    let reply = alice.next_reply().await;
    assert_eq!(reply["status"], "succeeded", "{reply}");
    assert_eq!(tenants.contact_count().await, 1);
    assert!(tenants.subscribers_received_something().await);
    // A reply delivered through direct reply-to is not mistaken for an unroutable one
    // (read once the batch is settled: the broker returns a message before confirming it).
    let worker = tenants.worker.as_ref().unwrap();
    worker
        .expect_metric(r#"contact_import_batches_total{status="succeeded"}"#, 1.0)
        .await;
    worker
        .expect_metric(
            r#"contact_import_results_unroutable_total{target="reply-to"}"#,
            0.0,
        )
        .await;
    tenants.stop().await;
}

#[tokio::test]
async fn a_producer_without_a_grant_for_the_org_is_refused_and_nothing_is_written() {
    let mut tenants = Tenants::start("forbidden").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", ORG])
        .await;
    let mut bob = tenants.producer("bob").await;
    bob.publish("b-1", ORG, Some("bob")).await.unwrap();
    let reply = bob.next_reply().await;
    assert_eq!(reply["status"], "rejected", "{reply}");
    assert_eq!(reply["error"]["code"], "org.forbidden");
    assert_eq!(reply["error"]["statusCode"], 403);
    assert_eq!(tenants.contact_count().await, 0);
    // The org's subscribers never hear of it.
    assert!(!tenants.subscribers_received_something().await);
    let worker = tenants.worker.as_ref().unwrap();
    worker
        .expect_metric(
            r#"contact_import_unauthorized_total{reason="org.forbidden"}"#,
            1.0,
        )
        .await;
    tenants.stop().await;
}

#[tokio::test]
async fn a_batch_without_user_id_is_refused_as_missing_user_id() {
    let mut tenants = Tenants::start("no-user-id").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", "*"])
        .await;
    let mut alice = tenants.producer("alice").await;
    alice.publish("a-1", ORG, None).await.unwrap();
    let reply = alice.next_reply().await;
    assert_eq!(reply["error"]["code"], "missing.user.id", "{reply}");
    assert_eq!(reply["error"]["statusCode"], 401);
    assert_eq!(tenants.contact_count().await, 0);
    assert!(!tenants.subscribers_received_something().await);
    tenants.stop().await;
}

#[tokio::test]
async fn the_broker_refuses_a_user_id_that_is_not_the_publishers_own() {
    let tenants = Tenants::start("forged").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", "*"])
        .await;
    let bob = tenants.producer("bob").await;
    let forged = bob.publish("b-1", ORG, Some("alice")).await;
    assert!(forged.is_err(), "the broker took a forged user_id");
    assert!(
        !bob.channel.status().connected(),
        "the broker closes the channel"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(tenants.contact_count().await, 0);
    tenants.stop().await;
}

/// Batches on a lane carry their producer's user in a header the workers trust, so a
/// producer must not reach the lanes: with the permissions docs/operations.md gives (write on
/// the import exchange only) the broker refuses its publish to the lanes exchange.
#[tokio::test]
async fn a_producer_cannot_publish_to_the_lanes_to_pass_as_another_user() {
    let tenants = Tenants::start("lane-forger").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", "*"])
        .await;
    let mut bob = tenants.producer("bob").await;
    bob.exchange = format!("{}contacts.import.lanes", tenants.prefix);
    // The exchange exists (the worker declared it): a refusal below is a permission's.
    tenants
        .admin
        .exchange_declare(
            bob.exchange.as_str().into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the worker declared the lanes exchange");
    let mut headers = FieldTable::default();
    headers.insert(
        "x-contact-import-user-id".into(),
        lapin::types::AMQPValue::LongString("alice".into()),
    );
    let body = batch(ORG, json!([{"displayName": "Forged"}]));
    let forged = bob
        .channel
        .basic_publish(
            bob.exchange.as_str().into(),
            format!("{}contacts.import.interactive", tenants.prefix)
                .as_str()
                .into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&body).unwrap(),
            BasicProperties::default()
                .with_message_id("forged-1".into())
                .with_headers(headers),
        )
        .await;
    let refusal = match forged {
        Err(e) => Some(e),
        Ok(confirm) => confirm.await.err(),
    };
    let refusal = refusal.expect("the broker took a producer's publish to the lanes");
    assert!(
        refusal.to_string().contains("ACCESS_REFUSED"),
        "refused for another reason: {refusal}"
    );
    assert!(
        !bob.channel.status().connected(),
        "the broker closes the channel (ACCESS_REFUSED)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(tenants.contact_count().await, 0);
    tenants.stop().await;
}

#[tokio::test]
async fn a_grant_taken_back_stops_the_next_batch_without_a_restart() {
    let tenants = Tenants::start("revoked").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", "*"])
        .await;
    let mut alice = tenants.producer("alice").await;
    alice
        .publish("a-1", OTHER_ORG, Some("alice"))
        .await
        .unwrap();
    assert_eq!(alice.next_reply().await["status"], "succeeded");
    tenants
        .grants(&["remove", "--user", "alice", "--org", "*"])
        .await;
    alice
        .publish("a-2", OTHER_ORG, Some("alice"))
        .await
        .unwrap();
    let reply = alice.next_reply().await;
    assert_eq!(reply["error"]["code"], "org.forbidden", "{reply}");
    assert_eq!(tenants.contact_count().await, 1);
    tenants.stop().await;
}

#[tokio::test]
async fn a_reply_to_naming_a_queue_is_refused_and_nothing_reaches_that_queue() {
    let mut tenants = Tenants::start("reply-to").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", ORG])
        .await;
    // Another tenant's durable inbox, whose name alice has learnt.
    let inbox = format!("{}org-b-inbox", tenants.prefix);
    tenants
        .admin
        .queue_declare(
            inbox.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut alice = tenants.producer("alice").await;
    alice.reply_to = inbox.clone();
    alice.publish("a-1", ORG, Some("alice")).await.unwrap();
    tenants.wait_for_dead_letters(1).await;
    // Settled: whatever the worker would write anywhere is written by now.
    tenants
        .worker
        .as_ref()
        .unwrap()
        .expect_metric(r#"contact_import_batches_total{status="rejected"}"#, 1.0)
        .await;
    let shown = tenants
        .cli(&tenants.rabbit.url(), &["dlq", "show", "a-1"])
        .await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("reply.to.forbidden"), "{shown}");
    assert!(
        shown.contains(&inbox),
        "the letter names the refused queue: {shown}"
    );
    assert_eq!(queue_depth(&tenants.admin, &inbox).await.unwrap(), 0);
    assert_eq!(tenants.contact_count().await, 0);
    assert!(!tenants.subscribers_received_something().await);
    let worker = tenants.worker.as_ref().unwrap();
    worker
        .expect_metric(
            r#"contact_import_unauthorized_total{reason="reply.to.forbidden"}"#,
            1.0,
        )
        .await;
    tenants.stop().await;
}

#[tokio::test]
async fn a_replayed_dead_letter_is_sent_as_the_operator_and_checked_against_their_grant() {
    let mut tenants = Tenants::start("replay").await;
    let mut bob = tenants.producer("bob").await;
    bob.publish("b-1", ORG, Some("bob")).await.unwrap();
    assert_eq!(bob.next_reply().await["error"]["code"], "org.forbidden");
    tenants.wait_for_dead_letters(1).await;
    let admin_url = tenants.rabbit.url();
    let shown = tenants.cli(&admin_url, &["dlq", "show", "b-1"]).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("x-contact-import-user-id") && shown.contains("bob"),
        "the letter records who sent it: {shown}"
    );

    // A refused letter is not replayed unless asked for: sent as the operator, the
    // operator's grants would let in what bob's did not.
    let skipped = tenants.cli(&admin_url, &["dlq", "replay", "--all"]).await;
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(said.contains("skipped b-1 (org.forbidden"), "{said}");
    assert!(said.contains("0 dead letter(s) replayed"), "{said}");
    tenants.wait_for_dead_letters(1).await;
    // Replayed by an operator without a grant: refused again, now as the operator.
    let replayed = tenants
        .cli(&admin_url, &["dlq", "replay", "--all", "--include-refused"])
        .await;
    assert!(replayed.status.success(), "{replayed:?}");
    tenants.wait_for_dead_letters(1).await;
    let shown = tenants.cli(&admin_url, &["dlq", "show", "b-1"]).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("guest has no grant"), "{shown}");
    assert_eq!(tenants.contact_count().await, 0);

    // With a grant, the operator's replay imports it.
    tenants
        .grants(&["add", "--user", "guest", "--org", ORG])
        .await;
    let replayed = tenants
        .cli(&admin_url, &["dlq", "replay", "--all", "--include-refused"])
        .await;
    assert!(replayed.status.success(), "{replayed:?}");
    for _ in 0..300 {
        if tenants.contact_count().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tenants.contact_count().await, 1);
    assert!(tenants.subscribers_received_something().await);
    tenants.stop().await;
}

#[tokio::test]
async fn contact_import_publish_sends_as_its_broker_user_and_is_answered() {
    let tenants = Tenants::start("publish").await;
    tenants
        .grants(&["add", "--user", "alice", "--org", ORG])
        .await;
    let file = env::target_tmpdir().join(format!("{}batch.json", tenants.prefix));
    let body = batch(ORG, json!([{"displayName": "Ada Lovelace"}]));
    std::fs::write(&file, serde_json::to_vec(&body).unwrap()).unwrap();
    let file = file.display().to_string();
    let as_alice = tenants
        .cli(
            &tenants.producer_url("alice"),
            &["publish", "--wait", &file],
        )
        .await;
    let said = String::from_utf8_lossy(&as_alice.stdout);
    assert!(
        as_alice.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&as_alice.stderr)
    );
    assert_eq!(tenants.contact_count().await, 1);
    // bob has no grant: his run is answered, and says the batch was refused.
    let as_bob = tenants
        .cli(&tenants.producer_url("bob"), &["publish", "--wait", &file])
        .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&as_bob.stdout),
        String::from_utf8_lossy(&as_bob.stderr)
    );
    assert!(!as_bob.status.success(), "{said}");
    assert!(said.contains("1 answered, 1 rejected"), "{said}");
    assert_eq!(tenants.contact_count().await, 1);
    let _ = std::fs::remove_file(file);
    tenants.stop().await;
}
