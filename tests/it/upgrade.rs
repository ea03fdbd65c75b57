//! Upgrading a deployment: the broker must accept this release's declaration of queues an
//! earlier release declared, or every upgraded worker would stop at start. (Adding
//! `x-quorum-initial-group-size` did exactly that: RabbitMQ compares it on redeclaration.)
//! And a worker started before `migrate` waits for it instead of failing every batch.

use crate::common::{ORG, TestEnv};
use crate::support::broker::names;
use crate::support::database::{self, FreshDatabase};
use crate::support::env;
use crate::support::worker::{Worker, WorkerSettings};
use contact_import::broker::topology;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn queues_declared_without_an_initial_group_size_are_accepted_by_the_new_declaration() {
    let prefix = format!("t{}.", crate::support::ports::random_u64() % 1_000_000);
    let cfg = names(&env::amqp_url(), &prefix, 5);
    let connection = contact_import::broker::connect(&cfg.amqp_url, "upgrade test")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let text = |v: &str| AMQPValue::LongString(LongString::from(v));
    // The arguments the queues have had since V5 (the release before this one).
    let mut dead = FieldTable::default();
    dead.insert("x-queue-type".into(), text("quorum"));
    let mut import = dead.clone();
    import.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(5));
    import.insert(
        "x-dead-letter-exchange".into(),
        text(&cfg.dead_letter_exchange),
    );
    import.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    import.insert("x-overflow".into(), text("reject-publish"));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for (queue, args) in [(&cfg.dead_letter_queue, dead), (&cfg.import_queue, import)] {
        channel
            .queue_declare(queue.as_str().into(), durable, args)
            .await
            .unwrap();
    }
    let redeclared = topology::declare(&connection, &cfg).await;
    for queue in [&cfg.import_queue, &cfg.dead_letter_queue] {
        let cleanup = connection.create_channel().await.unwrap();
        let _ = cleanup
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    redeclared.expect("the queues of an earlier release are accepted as they are");
}

#[tokio::test]
async fn a_worker_started_before_migrate_takes_no_batch_until_the_schema_is_there() {
    let env = TestEnv::new().await;
    // The worker's database: created, never migrated.
    let empty = FreshDatabase::create_unmigrated(
        &env::database_url(),
        &format!("test_{}_unmigrated", env.id),
    )
    .await
    .unwrap();
    let settings = WorkerSettings::new(
        env::bin(),
        env.broker.clone(),
        empty.url.clone(),
        env::target_tmpdir(),
    );
    let mut worker = Worker::spawn_unready("unmigrated", &settings).unwrap();
    env.publish_json(
        "before-migrate",
        &json!({"orgId": ORG, "contacts": [{"displayName": "Early Bird"}]}),
    )
    .await;

    // Not ready, saying what to do; the batch stays queued (neither failed nor dead-lettered).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        worker.assert_running();
        if let Some((status, body)) = worker.try_get("/readyz").await {
            assert_ne!(status, 200, "ready without a schema: {body}");
            if body.contains("run `contact-import migrate`") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never named the missing schema"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.queue_depth(&env.broker.import_queue).await, 1);
    assert_eq!(env.queue_depth(&env.broker.dead_letter_queue).await, 0);
    let log = std::fs::read_to_string(&worker.log).unwrap();
    assert!(
        log.contains("no schema history") && log.contains("run `contact-import migrate`"),
        "{log}"
    );

    // Migrated: the worker finds the schema on its next probe and imports the batch.
    database::migrate(&env::bin(), &empty.url).await.unwrap();
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["batchId"], "before-migrate");
    assert_eq!(result["status"], "succeeded", "{result}");
    let stored: i64 = database::connect(&empty.url)
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    assert_eq!(worker.readyz().await, Some(200));
}
