//! The operator's commands against the real broker and database: `dlq` and `batches`.

use crate::common::{ORG, TestEnv, batch};
use serde_json::{Value, json};

#[tokio::test]
async fn a_dead_letter_is_listed_shown_and_replayed_once_its_cause_is_fixed() {
    let env = TestEnv::new().await;
    // The database refuses every contact while the switch is on.
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
    let line = listed
        .lines()
        .find(|l| l.starts_with("doomed\t"))
        .unwrap_or_else(|| panic!("doomed not listed:\n{listed}"));
    let columns: Vec<&str> = line.split('\t').collect();
    assert_eq!(&columns[1..4], [ORG, "attempts.exhausted", "4"], "{line}");

    let (ok, shown, stderr) = env.cli(&["dlq", "show", "doomed"]).await;
    assert!(ok, "{stderr}");
    assert!(shown.contains("Doomed Person"), "{shown}");
    assert!(shown.contains("contacts are read-only today"), "{shown}");
    env.expect_queue_depth(
        &env.broker.dead_letter_queue,
        1,
        "listing and showing removed nothing",
    )
    .await;

    env.db
        .execute("UPDATE outage_switch SET refusing = false", &[])
        .await
        .unwrap();
    let (ok, _, stderr) = env.cli(&["dlq", "replay", "--id", "doomed"]).await;
    assert!(ok, "{stderr}");
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
