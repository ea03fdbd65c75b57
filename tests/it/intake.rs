//! Intake shards (`CONTACT_IMPORT_INTAKE_SHARDS`): the import exchange spreads batches over
//! several quorum queues, so that no single queue leader takes every batch of the fleet.
//! What was queued before stays on the import queue, the first intake queue; a tool or an
//! older configuration that declares the topology without the setting leaves the intake
//! spread (binding the import queue directly again would queue batches twice).

use crate::common::{Answers, ORG, TestEnv, batch};
use contact_import::broker::topology;
use contact_import::config::BrokerConfig;
use serde_json::{Value, json};

const SHARDS: u16 = 3;

fn contacts(batch: &str) -> Value {
    (0..20)
        .map(|i| json!({"firstName": format!("{batch}-{i}"), "emails": [{"value": format!("{batch}-{i}@intake.example"), "type": "work"}]}))
        .collect()
}

/// Spreads `env`'s intake over [`SHARDS`] queues, as a worker with the setting does: the
/// names with the setting, and the connection that declared them.
async fn spread_intake(env: &TestEnv) -> (BrokerConfig, lapin::Connection) {
    let spread = BrokerConfig {
        intake_shards: SHARDS,
        ..env.broker.clone()
    };
    let connection = contact_import::broker::connect(&env.broker.amqp_url, "intake test")
        .await
        .unwrap();
    topology::declare(&connection, &spread).await.unwrap();
    (spread, connection)
}

/// Publishes `count` batches named `<prefix>-<n>`.
async fn publish(env: &TestEnv, prefix: &str, count: usize) {
    for n in 0..count {
        let id = format!("{prefix}-{n}");
        env.publish_json(&id, &batch(ORG, contacts(&id))).await;
    }
}

/// The ready messages of each of `queues`.
async fn depths(env: &TestEnv, queues: &[String]) -> Vec<u32> {
    let mut depths = Vec::new();
    for queue in queues {
        depths.push(env.queue_depth(queue).await);
    }
    depths
}

#[tokio::test]
async fn the_intake_spreads_over_its_queues_and_every_batch_is_answered_once() {
    let env = TestEnv::new().await;
    publish(&env, "before", 5).await;
    let (spread, connection) = spread_intake(&env).await;
    // A tool without the setting declares the topology again.
    topology::declare(&connection, &env.broker).await.unwrap();
    const SPREAD: usize = 60;
    publish(&env, "spread", SPREAD).await;
    let queues = topology::intake_queues(&spread);
    let depths = depths(&env, &queues).await;
    assert!(
        depths.iter().all(|d| *d > 0),
        "every intake queue takes batches: {queues:?} hold {depths:?}"
    );
    assert_eq!(
        depths.iter().sum::<u32>() as usize,
        5 + SPREAD,
        "each batch is queued once: {queues:?} hold {depths:?}"
    );

    // A worker without the setting (an older configuration) finds every intake queue there
    // is and answers every batch.
    let plain = env.spawn_worker(&[]).await;
    let mut answers = Answers::default();
    answers.until(&env, 5 + SPREAD).await;
    plain.stop().await.unwrap();
    // Then one with the setting and one without, side by side.
    const MORE: usize = 30;
    let spread_worker = env
        .spawn_worker_with(&[], &[("CONTACT_IMPORT_INTAKE_SHARDS", "3")])
        .await;
    let plain = env.spawn_worker(&[]).await;
    publish(&env, "more", MORE).await;
    answers.until(&env, 5 + SPREAD + MORE).await;
    spread_worker.stop().await.unwrap();
    plain.stop().await.unwrap();
    answers.late(&env).await;
    answers.assert_each_once();
    assert_eq!(env.contact_count().await, ((5 + SPREAD + MORE) * 20) as i64);
    for queue in &queues {
        assert_eq!(env.queue_depth(queue).await, 0, "{queue} was drained");
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Going back to one queue as the operator guide says: bind the import queue directly
/// again, delete the intake exchange; new batches then go to the import queue alone, and a
/// worker set to 1 still drains the intake queues that remain, answering every batch once.
#[tokio::test]
async fn going_back_to_one_queue_loses_nothing_and_doubles_nothing() {
    use lapin::options::{ExchangeDeleteOptions, QueueBindOptions, QueueDeleteOptions};
    use lapin::types::FieldTable;

    let env = TestEnv::new().await;
    let (spread, connection) = spread_intake(&env).await;
    const SPREAD: usize = 30;
    publish(&env, "spread", SPREAD).await;
    let queues = topology::intake_queues(&spread);
    let spread_depths = depths(&env, &queues).await;

    let channel = connection.create_channel().await.unwrap();
    let bind_directly = async || {
        channel
            .queue_bind(
                env.broker.import_queue.as_str().into(),
                env.broker.import_exchange.as_str().into(),
                env.broker.import_routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap()
    };
    bind_directly().await;
    channel
        .exchange_delete(
            topology::intake_exchange(&spread).as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    bind_directly().await;

    const AFTER: usize = 10;
    publish(&env, "after", AFTER).await;
    let depths = depths(&env, &queues).await;
    assert_eq!(
        depths[0],
        spread_depths[0] + AFTER as u32,
        "new batches go to the import queue alone: {spread_depths:?} then {depths:?}"
    );
    assert_eq!(depths[1..], spread_depths[1..], "{queues:?}");

    let worker = env.spawn_worker(&[]).await;
    let mut answers = Answers::default();
    answers.until(&env, SPREAD + AFTER).await;
    worker.stop().await.unwrap();
    answers.late(&env).await;
    answers.assert_each_once();
    // Quorum queues refuse `if-empty` deletes: check first, as the guide says.
    for queue in queues.iter().skip(1) {
        assert_eq!(env.queue_depth(queue).await, 0, "{queue} was drained");
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
}
