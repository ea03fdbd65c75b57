//! Producers authorised per org (`CONTACT_IMPORT_AUTHORIZATION=grants`) with real broker
//! users: each test starts its own RabbitMQ node (`support::servers`), creates producer
//! users there with `rabbitmqctl`, and runs a real worker against it.

use crate::common::{ORG, batch};
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
        for user in ["alice", "bob"] {
            rabbit.rabbitmqctl(&["add_user", user, PASSWORD]).await;
            rabbit
                .rabbitmqctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"])
                .await;
        }
        let database =
            FreshDatabase::create(&env::bin(), &env::database_url(), &format!("grants_{id}"))
                .await
                .unwrap();
        let prefix = format!("g{id}.");
        let broker = names(&rabbit.url(), &prefix, 5);
        let admin = contact_import::broker::connect(&rabbit.url(), "test admin")
            .await
            .unwrap();
        let channel = confirm_channel(&admin).await.unwrap();
        topology::declare(&channel, &broker).await.unwrap();
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

    /// A connection and channel logged in as `user`, with an exclusive reply queue.
    async fn producer(&self, user: &str) -> Producer {
        let url = format!(
            "amqp://{user}:{PASSWORD}@127.0.0.1:{}/%2f",
            self.rabbit.port
        );
        let connection = contact_import::broker::connect(&url, user).await.unwrap();
        let channel = confirm_channel(&connection).await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let replies = channel
            .basic_consume(
                queue.name().clone(),
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
            reply_to: queue.name().to_string(),
            replies,
            exchange: format!("{}contacts.import", self.prefix),
            _connection: connection,
        }
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
