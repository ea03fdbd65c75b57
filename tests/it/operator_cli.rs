//! The operator's commands against the real broker and database: `dlq` and `batches`.

use crate::common::{ORG, TestEnv, accept_contacts, batch, closed_cleanly, refuse_contacts};
use crate::support::env;
use crate::support::ports::random_u64;
use crate::support::servers::{RabbitMq, reap_abandoned};
use lapin::options::BasicGetOptions;
use serde_json::{Value, json};

#[tokio::test]
async fn a_dead_letter_is_listed_shown_and_replayed_once_its_cause_is_fixed() {
    let env = TestEnv::new().await;
    refuse_contacts(&env).await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "doomed",
        &batch(ORG, json!([{"displayName": "Doomed Person"}])),
    )
    .await;
    let (_, _, rejected) = env.next_result().await;
    assert_eq!(rejected["error"]["code"], "attempts.exhausted");

    let (ok, listed, stderr) = env.cli(&["dlq", "list"]).await;
    assert!(ok, "{stderr}");
    closed_cleanly(&stderr);
    let line = listed
        .lines()
        .find(|l| l.starts_with("doomed\t"))
        .unwrap_or_else(|| panic!("doomed not listed:\n{listed}"));
    let columns: Vec<&str> = line.split('\t').collect();
    assert_eq!(&columns[1..4], [ORG, "attempts.exhausted", "4"], "{line}");

    let (ok, shown, stderr) = env.cli(&["dlq", "show", "doomed"]).await;
    assert!(ok, "{stderr}");
    closed_cleanly(&stderr);
    assert!(shown.contains("Doomed Person"), "{shown}");
    assert!(shown.contains("contacts are read-only today"), "{shown}");
    env.expect_queue_depth(
        &env.broker.dead_letter_queue,
        1,
        "listing and showing removed nothing",
    )
    .await;

    accept_contacts(&env).await;
    let (ok, _, stderr) = env.cli(&["dlq", "replay", "--id", "doomed"]).await;
    assert!(ok, "{stderr}");
    closed_cleanly(&stderr);
    let (_, _, applied) = env.next_result().await;
    assert_eq!(applied["batchId"], "doomed");
    assert_eq!(applied["status"], "succeeded");
    assert_eq!(env.contact_count().await, 1);
    assert_eq!(env.queue_depth(&env.broker.dead_letter_queue).await, 0);
}

#[tokio::test]
async fn purge_needs_yes_and_batches_show_the_stored_results() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish(b"not json", env.props("broken")).await;
    let (_, _, rejected) = env.next_result().await;
    assert_eq!(rejected["status"], "rejected");
    let dead = &env.broker.dead_letter_queue;

    let (ok, _, said) = env
        .cli(&["dlq", "purge", "--older-than", "1h", "--yes"])
        .await;
    assert!(ok, "{said}");
    env.expect_queue_depth(dead, 1, "a fresh letter is kept")
        .await;
    let (ok, _, said) = env.cli(&["dlq", "purge", "--older-than", "0s"]).await;
    assert!(ok && said.contains("1 dead letter(s)"), "{said}");
    env.expect_queue_depth(dead, 1, "nothing removed without --yes")
        .await;
    let (ok, _, said) = env
        .cli(&["dlq", "purge", "--older-than", "0s", "--yes"])
        .await;
    assert!(ok, "{said}");
    assert_eq!(env.queue_depth(dead).await, 0);

    env.publish_json("good", &batch(ORG, json!([{"displayName": "Kept"}])))
        .await;
    let (_, _, published) = env.next_result().await;
    let (ok, shown, said) = env.cli(&["batches", "show", "good"]).await;
    assert!(ok, "{said}");
    let stored: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(stored, published, "the stored result is the one published");

    let (ok, listed, said) = env.cli(&["batches", "list", "--org", ORG]).await;
    assert!(ok, "{said}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("good\tsucceeded\t1\t1\t0\t0\t")),
        "{listed}"
    );
    let (ok, _, said) = env.cli(&["batches", "show", "missing"]).await;
    assert!(!ok && said.contains("no processed batch missing"), "{said}");
}

/// RabbitMQ 4.0 gave quorum queues a default delivery limit of 20: a letter returned to the
/// queue unacknowledged that often is dropped (the dead-letter queue has no dead-letter
/// exchange of its own). The broker here is 3.x, so a `delivery-limit` policy of 20 on the
/// dead-letter queue stands in for that default: 25 looks at a letter, then its replay
/// imports it.
#[tokio::test]
async fn a_dead_letter_looked_at_more_often_than_the_brokers_delivery_limit_is_still_replayed() {
    let base = env::target_tmpdir().join("dlq-limit");
    std::fs::create_dir_all(&base).unwrap();
    reap_abandoned(&base);
    let dir = base.join(format!("node-{}", random_u64() % 1_000_000));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
    let rabbit = RabbitMq::start(dir.join("rabbitmq")).await;
    let env = TestEnv::on(rabbit.url()).await;
    let dead = env.broker.dead_letter_queue.clone();
    rabbit
        .rabbitmqctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "four-oh-default",
            &format!("^{}$", dead.replace('.', "\\.")),
            r#"{"delivery-limit": 20}"#,
        ])
        .await;
    refuse_contacts(&env).await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json("worn", &batch(ORG, json!([{"displayName": "Looked At"}])))
        .await;
    let (_, _, rejected) = env.next_result().await;
    assert_eq!(rejected["error"]["code"], "attempts.exhausted");

    for look in 0..25 {
        let (ok, out, said) = if look % 2 == 0 {
            env.cli(&["dlq", "show", "worn"]).await
        } else {
            env.cli(&["dlq", "list"]).await
        };
        assert!(ok, "look {look}: {said}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("worn\t") || l == "batch id: worn"),
            "look {look}: the letter is gone:\n{out}"
        );
        if look % 2 == 0 {
            assert!(out.contains("attempts: 4\n"), "look {look}:\n{out}");
            // Each look reads a fresh copy: the broker's count never rises.
            assert!(!out.contains("x-delivery-count"), "look {look}:\n{out}");
        }
    }
    env.expect_queue_depth(&dead, 1, "looking removed nothing")
        .await;

    accept_contacts(&env).await;
    let (ok, _, said) = env.cli(&["dlq", "replay", "--id", "worn"]).await;
    assert!(ok && said.contains("1 dead letter(s) replayed"), "{said}");
    let (_, _, applied) = env.next_result().await;
    assert_eq!(
        (applied["batchId"].as_str(), applied["status"].as_str()),
        (Some("worn"), Some("succeeded")),
        "{applied}"
    );
    assert_eq!(env.contact_count().await, 1);
    assert_eq!(env.queue_depth(&dead).await, 0);
    drop(worker);
}

/// A letter that the broker handed out and got back (an earlier `dlq`, or one that crashed)
/// carries the broker's `x-delivery-count`: `show` names it for what it is, beside the
/// worker's own attempts.
#[tokio::test]
async fn show_labels_the_brokers_delivery_count_apart_from_the_batchs_attempts() {
    let env = TestEnv::new().await;
    refuse_contacts(&env).await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json("counted", &batch(ORG, json!([{"displayName": "Counted"}])))
        .await;
    assert_eq!(
        env.next_result().await.2["error"]["code"],
        "attempts.exhausted"
    );
    let dead = env.broker.dead_letter_queue.clone();
    for _ in 0..3 {
        // Read and returned unacknowledged, as `dlq` did before it put letters back.
        let connection = contact_import::broker::connect(&env.broker.amqp_url, "returner")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let got = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap();
        assert!(got.is_some(), "the letter is in {dead}");
        connection.close(200, "returning".into()).await.unwrap();
        env.expect_queue_depth(&dead, 1, "the letter came back")
            .await;
    }
    let (ok, shown, said) = env.cli(&["dlq", "show", "counted"]).await;
    assert!(ok, "{said}");
    assert!(shown.contains("attempts: 4\n"), "{shown}");
    assert!(
        shown.contains("returned to the dead-letter queue: 3 time(s)"),
        "{shown}"
    );
    assert!(!shown.contains("header x-delivery-count"), "{shown}");
    let (ok, listed, said) = env.cli(&["dlq", "list"]).await;
    assert!(ok, "{said}");
    let line = listed
        .lines()
        .find(|l| l.starts_with("counted\t"))
        .unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert_eq!(line.split('\t').nth(3), Some("4"), "{line}");
}

#[tokio::test]
async fn batches_prune_deletes_only_the_history_older_than_asked() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    for id in ["old", "recent"] {
        env.publish_json(id, &batch(ORG, json!([{"displayName": id}])))
            .await;
        env.next_result().await;
    }
    env.db
        .execute(
            "UPDATE import_batches SET processed_at = now() - interval '31 days' WHERE batch_id = 'old'",
            &[],
        )
        .await
        .unwrap();
    let (ok, _, stderr) = env.cli(&["batches", "prune", "--older-than", "30d"]).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("pruned 1 batch(es)"), "{stderr}");
    let left: Vec<String> = env
        .db
        .query("SELECT batch_id FROM import_batches", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["recent"]);
}
