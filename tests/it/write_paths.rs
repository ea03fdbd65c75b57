//! Both write paths (`WritePath`: unnest, COPY staging) answer the same outcomes and leave
//! the same rows, dry runs included.

use crate::common::{ORG, TestEnv};
use contact_import::contact::validate_batch;
use contact_import::dialect::{self, Answer, IncomingMessage, Limits};
use contact_import::ids::{self, BatchId};
use contact_import::result::ResultDetail;
use contact_import::store::upsert::WritePath;
use contact_import::store::{self, Applied, Mode, Store, connect};
use serde_json::{Value, json};
use std::time::Duration;

const LIMITS: Limits = Limits {
    max_message_bytes: 1 << 20,
    max_contacts: 100,
};

/// The result of applying `body` as Webex batch `id`, every timestamp replaced by one mark.
async fn apply(store: &Store, id: &str, body: &Value, mode: Mode) -> Value {
    let body = serde_json::to_vec(body).unwrap();
    let sha = ids::body_sha256(&body);
    let message = IncomingMessage {
        kind: Some(dialect::webex::MESSAGE_TYPE),
        content_type: Some("application/json"),
        org_id_header: None,
        account_id_header: None,
        body: &body,
    };
    let decoded = dialect::decode(&message, &LIMITS).unwrap();
    let batch = validate_batch(
        BatchId::for_message(Some(id), &sha),
        decoded.org_id,
        decoded.contacts,
    );
    let how = store::Apply {
        mode,
        detail: ResultDetail::Full,
        send_id: None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let body = match store
        .apply_batch(&batch, &sha, &Answer::Common, how, deadline)
        .await
        .unwrap()
    {
        Applied::Fresh { body, .. } | Applied::DryRun { body, .. } => body,
        other => panic!("batch {id} was not applied: {other:?}"),
    };
    without_times(serde_json::from_slice(&body).unwrap())
}

fn without_times(value: Value) -> Value {
    match value {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => json!("<time>"),
        Value::Array(items) => Value::Array(items.into_iter().map(without_times).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_times(v)))
                .collect(),
        ),
        other => other,
    }
}

async fn rows(env: &TestEnv) -> Vec<String> {
    env.db
        .query(
            "SELECT (to_jsonb(c) - 'created_at' - 'updated_at')::text FROM contacts c \
             ORDER BY contact_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Applies the same three batches by `path` and returns the results and the rows left.
async fn run(path: WritePath) -> (Vec<Value>, Vec<String>) {
    let env = TestEnv::new().await;
    let (pool, tls) = connect::pool_for(&env.database_url, 2, path).unwrap();
    let store = Store::new(pool, tls).with_write_path(path);
    let mut results = vec![
        apply(
            &store,
            "create",
            &json!({
                "schemas": "urn:cisco:codev:identity:contact:core:1.0",
                "orgId": ORG,
                "contacts": [
                    { "displayName": "Ada Lovelace", "title": "Analyst",
                      "emails": [{ "value": "Ada@Example.com", "type": "work", "primary": true }],
                      "groups": ["Math"] },
                    { "firstName": "Alan", "lastName": "Turing",
                      "ims": [{ "value": "Alan.T", "type": "xmpp" }] }
                ]
            }),
            Mode::Apply,
        )
        .await,
    ];
    let ids: Vec<String> = env
        .db
        .query(
            "SELECT contact_id::text FROM contacts ORDER BY display_name NULLS LAST",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let update = json!({
        "schemas": "urn:cisco:codev:identity:contact:core:1.0",
        "orgId": ORG,
        "contacts": [
            // Only the title: every other field keeps its stored value.
            { "contactId": ids[0], "title": "Countess" },
            // An empty list replaces the stored one (and its lookup keys).
            { "contactId": ids[1], "ims": [], "companyName": "Bletchley" },
            { "contactId": "6847ee0f-5e9c-4403-9f0e-0aa8552f7828", "title": "Unknown" },
            { "displayName": "Grace Hopper", "groups": ["Navy", "Math"] },
            { "displayName": "Bad Email", "emails": [{ "value": "not-an-email", "type": "work" }] }
        ]
    });
    // A dry run first: its staged rows are rolled back and must not reach the real run.
    results.push(apply(&store, "update", &update, Mode::DryRun).await);
    results.push(apply(&store, "update", &update, Mode::Apply).await);
    let left = rows(&env).await;
    (results, left)
}

#[tokio::test]
async fn copy_staging_answers_and_writes_like_unnest() {
    let (unnest_results, unnest_rows) = run(WritePath::Unnest).await;
    let (copy_results, copy_rows) = run(WritePath::CopyStaging).await;
    assert_eq!(unnest_rows.len(), 3, "{unnest_rows:#?}");
    assert_eq!(copy_rows, unnest_rows);
    assert_eq!(copy_results, unnest_results);
}
