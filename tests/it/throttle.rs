//! The per-account throttle of Save User Contacts credentials, across batches and workers:
//! a userName with too many failed verifications within the window is refused, unverified,
//! by every worker until its failures leave the window.

use crate::common::{ORG, TestEnv, failures, org_header};
use crate::support::worker::Worker;
use lapin::BasicProperties;
use serde_json::{Value, json};
use std::time::Duration;

const THROTTLED: &str = "contact_import_login_throttled_total";

/// A worker whose throttle locks a userName after `max_failures` within `window`.
async fn throttled_worker(env: &TestEnv, max_failures: &str, window: &str) -> Worker {
    env.spawn_worker_with(
        &[],
        &[
            ("CONTACT_IMPORT_LOGIN_MAX_FAILURES", max_failures),
            ("CONTACT_IMPORT_LOGIN_FAILURE_WINDOW", window),
        ],
    )
    .await
}

/// Publishes a Save User Contacts batch of one contact per (userName, password) and returns
/// its result.
async fn save(env: &TestEnv, message_id: &str, pairs: &[(&str, &str)]) -> Value {
    let contacts: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (user, password))| {
            json!({"userName": user, "password": password, "firstName": format!("F{i}"),
                   "lastName": "L", "mobileNumber": "4155550100"})
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "contacts": contacts })).unwrap();
    let props = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_type("user-contacts.save".into())
        .with_content_type("application/json".into())
        .with_headers(org_header(ORG));
    env.publish(&body, props).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["batchId"], message_id, "{result}");
    result
}

/// Asserts that the batch's one refused contact is its first, refused by the throttle, to be
/// retried later.
#[track_caller]
fn assert_locked(result: &Value, context: &str) {
    assert_eq!(
        failures(result),
        [("0".into(), "too.many.attempts".into(), 429)],
        "{context}{result}"
    );
    assert_eq!(result["failedContacts"][0]["retryable"], true, "{result}");
}

async fn recorded_failures(env: &TestEnv) -> i64 {
    env.db
        .query_one("SELECT count(*) FROM login_failures", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn too_many_failed_verifications_lock_a_user_name_for_every_worker_while_others_save() {
    let env = TestEnv::new().await;
    env.add_account("exampleUser", "examplePass").await;
    env.add_account("otherUser", "otherPass").await;
    let worker = throttled_worker(&env, "3", "10m").await;

    // Three wrong passwords in two batches: each an ordinary 401.
    let first = save(
        &env,
        "guess-1",
        &[("exampleUser", "guess1"), ("exampleUser", "guess2")],
    )
    .await;
    let second = save(&env, "guess-2", &[("exampleUser", "guess3")]).await;
    for result in [&first, &second] {
        assert!(
            failures(result)
                .iter()
                .all(|f| f.1 == "invalid.credentials" && f.2 == 401),
            "{result}"
        );
    }
    assert_eq!(recorded_failures(&env).await, 3);

    // Now even the right password is refused, unverified and retryable, and nothing is
    // stored for it; another user of the same org still saves.
    let locked = save(
        &env,
        "right-while-locked",
        &[("exampleUser", "examplePass"), ("otherUser", "otherPass")],
    )
    .await;
    assert_eq!(locked["status"], "partial", "{locked}");
    assert_locked(&locked, "");
    let message = locked["failedContacts"][0]["errorMessage"]
        .as_str()
        .unwrap();
    assert!(!message.contains("examplePass"), "{message}");
    assert!(locked["contacts"][0].is_null());
    assert_eq!(locked["contacts"][1]["firstName"], "F1");
    assert_eq!(env.contact_count().await, 1);
    worker.expect_metric(THROTTLED, 1.0).await;
    assert_eq!(
        recorded_failures(&env).await,
        3,
        "an unverified pair is no failure"
    );

    // A name that is no account is locked alike, and its refusal reads the same.
    for (i, guess) in ["a", "b", "c"].into_iter().enumerate() {
        save(&env, &format!("ghost-{i}"), &[("ghostUser", guess)]).await;
    }
    let ghost = save(&env, "ghost-locked", &[("ghostUser", "d")]).await;
    assert_locked(&ghost, "");
    assert_eq!(
        ghost["failedContacts"][0]["errorMessage"]
            .as_str()
            .unwrap()
            .replace("ghostUser", "?"),
        message.replace("exampleUser", "?")
    );

    // The lock is the database's, not the worker's: a fresh worker process keeps it.
    assert!(worker.terminate().await.success());
    let fresh = throttled_worker(&env, "3", "10m").await;
    let again = save(
        &env,
        "right-on-another-worker",
        &[("exampleUser", "examplePass")],
    )
    .await;
    assert_eq!(again["status"], "failed", "{again}");
    assert_locked(&again, "");
    fresh.expect_metric(THROTTLED, 1.0).await;
    assert_eq!(env.contact_count().await, 1);
}

#[tokio::test]
async fn a_locked_user_name_is_unlocked_once_its_failures_leave_the_window() {
    let env = TestEnv::new().await;
    env.add_account("exampleUser", "examplePass").await;
    let worker = throttled_worker(&env, "2", "3s").await;

    let guesses = save(
        &env,
        "guesses",
        &[("exampleUser", "guess1"), ("exampleUser", "guess2")],
    )
    .await;
    let failed_at = tokio::time::Instant::now();
    assert_eq!(failures(&guesses).len(), 2, "{guesses}");
    let locked = save(
        &env,
        "right-while-locked",
        &[("exampleUser", "examplePass")],
    )
    .await;
    let elapsed = failed_at.elapsed();
    assert_locked(
        &locked,
        &format!("{elapsed:?} after the failures were recorded (a 3 s window): "),
    );

    // Once the failures are older than the window the right password saves again.
    tokio::time::sleep_until(failed_at + Duration::from_millis(3_200)).await;
    let unlocked = save(
        &env,
        "right-after-the-window",
        &[("exampleUser", "examplePass")],
    )
    .await;
    assert_eq!(unlocked["status"], "succeeded", "{unlocked}");
    assert_eq!(env.contact_count().await, 1);
    worker.expect_metric(THROTTLED, 1.0).await;

    // Recording a new failure prunes the expired ones.
    save(&env, "one-more-guess", &[("exampleUser", "guess3")]).await;
    assert_eq!(recorded_failures(&env).await, 1);
}
