//! Summary results (`x-result-detail: summary`, `CONTACT_IMPORT_RESULT_DETAIL`): `contactIds`
//! in place of `contacts`, everything else as in the full result.

use crate::common::{ORG, TestEnv, batch, failures};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Value, json};

fn asking(env: &TestEnv, message_id: &str, detail: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-result-detail".into(),
        AMQPValue::LongString(LongString::from(detail)),
    );
    env.props(message_id).with_headers(headers)
}

/// The stored id of the contact named `name`.
async fn stored_id(env: &TestEnv, name: &str) -> String {
    env.db
        .query_one(
            "SELECT contact_id::text FROM contacts WHERE display_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

fn three_people(first: &str, last: &str) -> Vec<u8> {
    let body = batch(
        ORG,
        json!([
            {"displayName": first},
            {"displayName": "Bad Mail", "emails": [{"value": "not-an-email", "type": "work"}]},
            {"displayName": last}
        ]),
    );
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn a_summary_result_gives_each_request_contact_its_stored_id_and_a_redelivery_replays_it() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    let body = three_people("Ada Lovelace", "Alan Turing");
    env.publish(&body, asking(&env, "summary-1", "summary"))
        .await;
    let (_, _, result) = env.next_result().await;

    assert!(result.get("contacts").is_none(), "{result}");
    assert_eq!(
        result["contactIds"],
        json!([
            stored_id(&env, "Ada Lovelace").await,
            null,
            stored_id(&env, "Alan Turing").await
        ])
    );
    assert_eq!(result["status"], "partial");
    assert_eq!(
        result["counts"],
        json!({"received": 3, "created": 2, "updated": 0, "failed": 1})
    );
    assert_eq!(
        failures(&result),
        [("1".to_owned(), "invalid.email".to_owned(), 400)]
    );
    assert_eq!(
        result["failedContacts"][0]["errorMessage"]
            .as_str()
            .map(|m| m.contains("not-an-email")),
        Some(true),
        "{result}"
    );
    for kept in ["batchId", "orgId", "processedAt"] {
        assert!(result[kept].is_string(), "{kept} missing: {result}");
    }

    // Sent again under the same id, even asking for the full result: the stored summary is
    // replayed byte for byte, and nothing is imported twice.
    env.publish(&body, asking(&env, "summary-1", "full")).await;
    let (_, _, replayed) = env.next_result().await;
    assert_eq!(replayed, result);
    assert_eq!(env.contact_count().await, 2);

    // The full result, asked for in any case, lists the contacts as stored.
    env.publish(
        &three_people("Grace Hopper", "Edsger Dijkstra"),
        asking(&env, "full-1", "FULL"),
    )
    .await;
    let (_, _, full) = env.next_result().await;
    assert!(full.get("contactIds").is_none(), "{full}");
    assert_eq!(
        full["contacts"][0]["contactId"],
        Value::from(stored_id(&env, "Grace Hopper").await)
    );
    assert!(full["contacts"][1].is_null());
    assert!(worker.terminate().await.success());
}

#[tokio::test]
async fn the_workers_default_detail_applies_to_batches_that_do_not_say_or_say_nonsense() {
    let env = TestEnv::new().await;
    let worker = env
        .spawn_worker_with(&[], &[("CONTACT_IMPORT_RESULT_DETAIL", "summary")])
        .await;
    env.publish(&three_people("A One", "A Three"), env.props("silent"))
        .await;
    let (_, _, silent) = env.next_result().await;
    assert_eq!(
        silent["contactIds"].as_array().map(Vec::len),
        Some(3),
        "{silent}"
    );
    assert!(silent.get("contacts").is_none(), "{silent}");

    env.publish(
        &three_people("B One", "B Three"),
        asking(&env, "nonsense", "everything"),
    )
    .await;
    let (_, _, nonsense) = env.next_result().await;
    assert!(nonsense["contactIds"].is_array(), "{nonsense}");

    env.publish(
        &three_people("C One", "C Three"),
        asking(&env, "full", "full"),
    )
    .await;
    let (_, _, full) = env.next_result().await;
    assert!(
        full["contacts"].is_array() && full.get("contactIds").is_none(),
        "{full}"
    );
    assert!(worker.terminate().await.success());
}

#[tokio::test]
async fn publish_wait_asks_for_summaries_unless_told_full() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = |name: &str, person: &str| {
        let path = dir.join(format!("{}-{name}.json", env.id));
        let body = json!([{"displayName": person}, {"displayName": "No Mail", "emails": [{"value": "nope"}]}]);
        std::fs::write(&path, body.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let first = file("first", "Waited Summary");
    let (ok, summary, said) = env.cli(&["publish", &first, "--org", ORG, "--wait"]).await;
    assert!(
        !ok && summary.contains("1 created, 0 updated, 1 failed"),
        "{summary}{said}"
    );
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        result["contactIds"],
        json!([stored_id(&env, "Waited Summary").await, null]),
        "{result}"
    );

    let second = file("second", "Waited Full");
    let (_, summary, said) = env
        .cli(&[
            "publish",
            &second,
            "--org",
            ORG,
            "--wait",
            "--result-detail",
            "full",
        ])
        .await;
    assert!(
        summary.contains("1 created, 0 updated, 1 failed"),
        "{summary}{said}"
    );
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        result["contacts"][0]["displayName"], "Waited Full",
        "{result}"
    );
}
