use crate::common::{ORG, TestEnv, batch};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const CONTACTS: usize = 60;
const ROUNDS: usize = 30;

/// Two workers, four batches each at a time, every batch updating the same 60 contacts listed
/// in a different order. Rows are locked in contact-id order whatever the input order, so
/// the transactions queue behind each other instead of deadlocking, and the last one to commit
/// wins on every row alike.
#[tokio::test]
async fn concurrent_batches_updating_the_same_contacts_neither_deadlock_nor_lose_updates() {
    let env = TestEnv::new().await;
    let first = env.spawn_worker(&["--concurrency", "4"]).await;
    let second = env.spawn_worker(&["--concurrency", "4"]).await;

    let people: Vec<Value> = (0..CONTACTS)
        .map(|i| json!({"displayName": format!("Person {i}")}))
        .collect();
    env.publish_json("people", &batch(ORG, Value::Array(people)))
        .await;
    let (_, _, created) = env.next_result().await;
    let ids: Vec<String> = created["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contactId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), CONTACTS);

    for round in 0..ROUNDS {
        // Each round lists the contacts rotated, and every other round reversed.
        let mut order: Vec<&String> = ids.iter().cycle().skip(round * 7).take(CONTACTS).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let updates: Vec<Value> = order
            .into_iter()
            .map(|id| json!({"contactId": id, "title": format!("round {round}")}))
            .collect();
        env.publish_json(
            &format!("round-{round}"),
            &batch(ORG, Value::Array(updates)),
        )
        .await;
    }

    let mut answered = BTreeSet::new();
    while answered.len() < ROUNDS {
        let (_, _, result) = env.next_result().await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["counts"]["updated"], CONTACTS, "{result}");
        answered.insert(result["batchId"].as_str().unwrap().to_owned());
    }

    let titles: BTreeSet<String> = env
        .db
        .query("SELECT title FROM contacts WHERE org_id = $1", &[&ORG])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        titles.len(),
        1,
        "every contact ends with the last committed round: {titles:?}"
    );
    assert_eq!(env.contact_count().await, CONTACTS as i64);
    let retries = first.metric("contact_import_db_retries_total").await
        + second.metric("contact_import_db_retries_total").await;
    assert_eq!(retries, 0.0, "no deadlock had to be retried");
    let succeeded = r#"contact_import_batches_total{status="succeeded"}"#;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let applied = first.metric(succeeded).await + second.metric(succeeded).await;
        if applied == (ROUNDS + 1) as f64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{applied} batches counted as succeeded, expected {}",
            ROUNDS + 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
