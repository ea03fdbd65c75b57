//! Lanes (`CONTACT_IMPORT_LANES=on`): a person never waits behind another org's bulk import.
//! The noisy-neighbour scenario in short: one org's backlog of bulk batches is draining when
//! four probes arrive: a chat-bot update for a quiet org, one for a person of the busy org, a
//! new org's 10-contact batch, and a new org's bulk batch whose shard is the busy org's (so
//! that hashing orgs onto shards alone would queue it behind the backlog). Each must be
//! answered before two thirds of the backlog (without lanes: after all of it; without the
//! heavy shards, the bulk probe after all of it).

use crate::common::{Answers, ORG, TestEnv, batch, org_header};
use crate::support::worker::Worker;
use contact_import::broker::lanes::Lanes;
use contact_import::config::LaneConfig;
use lapin::BasicProperties;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Bulk batches of the busy org, and contacts in each: well over the interactive limits.
const BACKLOG: usize = 40;
const CONTACTS_PER_BATCH: usize = 1000;
const SHARDS: u16 = 3;
const PROBES: [&str; 4] = [
    "probe-quiet-chat",
    "probe-busy-org-chat",
    "probe-new-org-batch",
    "probe-new-org-bulk",
];

fn contacts(n: usize, prefix: &str) -> Value {
    (0..n)
        .map(|i| {
            json!({
                "firstName": format!("{prefix}{i}"),
                "lastName": "Bulk",
                "emails": [{"value": format!("{prefix}{i}@bulk.example"), "type": "work"}],
            })
        })
        .collect()
}

fn chat_update(org: &str, message_id: &str) -> (Vec<u8>, BasicProperties) {
    let body = json!({"uuid": format!("chat-{message_id}"), "queryInfo": {"parameters": {"params":
        {"accountInfo": {"userContact": {"emailId": format!("{message_id}@chat.example")}}}}}});
    let props = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_type("user-contact.update".into())
        .with_content_type("application/json".into())
        .with_headers(org_header(org));
    (serde_json::to_vec(&body).unwrap(), props)
}

/// Publishes the busy org's backlog, starts the worker (`lanes`: `on` or `off`), sends the
/// probes as soon as it is ready, and returns the worker and the order in which batches
/// were answered (their ids).
async fn answer_order(env: &TestEnv, lanes: &str) -> (Worker, Vec<String>) {
    for n in 0..BACKLOG {
        env.publish_json(
            &format!("bulk-{n}"),
            &batch(ORG, contacts(CONTACTS_PER_BATCH, &format!("b{n}-"))),
        )
        .await;
    }
    let worker = env
        .spawn_worker_with(
            &["--concurrency", "2"],
            &[
                ("CONTACT_IMPORT_LANES", lanes),
                ("CONTACT_IMPORT_BULK_SHARDS", "3"),
            ],
        )
        .await;
    // The probes arrive behind the whole backlog, which the worker has just begun.
    let quiet_org = "0f5f1a4e-6a39-4d3c-9b1e-5b4f0e6c2a11";
    let new_org = "6c1b2f0e-1d2a-4b6e-8a0f-3e9c7d5b4a22";
    for (org, id) in [
        (quiet_org, "probe-quiet-chat"),
        (ORG, "probe-busy-org-chat"),
    ] {
        let (body, props) = chat_update(org, id);
        env.publish(&body, props).await;
    }
    env.publish_json("probe-new-org-batch", &batch(new_org, contacts(10, "n")))
        .await;
    let rules = LaneConfig {
        bulk_shards: SHARDS,
        ..LaneConfig::default()
    };
    let lanes = Lanes::new(&env.broker, &rules);
    let same_shard_org = (0..)
        .map(|n| format!("5e1d0c2b-0000-4000-8000-{n:012}"))
        .find(|org| lanes.shard_of(org) == lanes.shard_of(ORG))
        .unwrap();
    env.publish_json(
        "probe-new-org-bulk",
        &batch(&same_shard_org, contacts(CONTACTS_PER_BATCH, "nb")),
    )
    .await;
    let mut order = Vec::new();
    while order.len() < BACKLOG + PROBES.len() {
        let (_, _, result) = env.next_result().await;
        order.push(result["batchId"].as_str().unwrap().to_owned());
    }
    (worker, order)
}

#[tokio::test]
async fn probes_are_answered_before_most_of_another_orgs_bulk_backlog() {
    let env = TestEnv::new().await;
    let (worker, order) = answer_order(&env, "on").await;
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for probe in PROBES {
        let bulk_before = order[..position[probe]]
            .iter()
            .filter(|id| id.starts_with("bulk-"))
            .count();
        assert!(
            bulk_before <= BACKLOG / 3,
            "{probe} was answered after {bulk_before} of the {BACKLOG} bulk batches: it waited \
             behind the backlog (order: {order:?})"
        );
    }
    // Nothing was lost or doubled on the way through the lanes.
    assert_eq!(order.len(), BACKLOG + PROBES.len());
    let contacts: i64 = env
        .db
        .query_one("SELECT count(*) FROM contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(contacts, ((BACKLOG + 1) * CONTACTS_PER_BATCH + 10) as i64);
    for lane in ["interactive", "bulk"] {
        let series = format!("contact_import_lane_dwell_seconds_count{{lane=\"{lane}\"}}");
        assert!(
            worker.metric(&series).await > 0.0,
            "no dwell time recorded on the {lane} lane"
        );
    }
}

/// A worker stopped while its router moves a backlog to the lanes finishes what it is routing
/// before it closes: no message is left both on its lane and back on the import queue, so
/// every batch is answered once, by the stopped worker or by the next.
#[tokio::test]
async fn a_worker_stopped_while_routing_answers_every_batch_once() {
    // Enough that the router is still at it when the worker, just ready, gets SIGTERM.
    const BATCHES: usize = 1200;
    let env = TestEnv::new().await;
    for n in 0..BATCHES {
        // 20 contacts: over the interactive limit, so routed to the bulk shards.
        env.publish_json(
            &format!("bulk-{n}"),
            &batch(ORG, contacts(20, &format!("s{n}-"))),
        )
        .await;
    }
    let lanes = [("CONTACT_IMPORT_LANES", "on")];
    let first = env.spawn_worker_with(&[], &lanes).await;
    assert!(first.terminate().await.success());
    let unrouted = env.queue_depth(&env.broker.import_queue).await;
    assert!(
        unrouted > 0 && unrouted < BATCHES as u32,
        "the worker was to stop while routing, with part of the backlog routed ({unrouted} left)"
    );
    let second = env.spawn_worker_with(&[], &lanes).await;
    let mut answers = Answers::default();
    answers.until(&env, BATCHES).await;
    second.stop().await.unwrap();
    answers.late(&env).await;
    answers.assert_each_once();
    assert_eq!(env.contact_count().await, (BATCHES * 20) as i64);
}

#[tokio::test]
async fn a_lane_that_takes_no_messages_for_a_while_loses_none_of_them() {
    // Chat updates (interactive) and bulk batches in turn, so that the router has both kinds
    // in flight when the interactive lane, unbound, returns every message routed to it.
    const EACH: usize = 150;
    let env = TestEnv::new().await;
    let worker = env
        .spawn_worker_with(&[], &[("CONTACT_IMPORT_LANES", "on")])
        .await;
    let lanes = Lanes::new(&env.broker, &LaneConfig::default());
    let interactive = lanes.interactive.as_str();
    env.set_binding(interactive, &lanes.exchange, interactive, false)
        .await;
    for n in 0..EACH {
        let (body, props) = chat_update(ORG, &format!("chat-{n}"));
        env.publish(&body, props).await;
        env.publish_json(
            &format!("bulk-{n}"),
            &batch(ORG, contacts(20, &format!("u{n}-"))),
        )
        .await;
    }
    // Bulk batches get through while the interactive lane refuses its messages.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while worker
        .metric_sum(contact_import::metrics::ROUTED)
        .await
        .unwrap()
        < 10.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was routed while the interactive lane was unbound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    env.set_binding(interactive, &lanes.exchange, interactive, true)
        .await;
    let mut answers = Answers::default();
    answers.until(&env, 2 * EACH).await;
    answers.late(&env).await;
    answers.assert_each_once();
    assert_eq!(env.contact_count().await, (EACH * 20) as i64);
    worker.stop().await.unwrap();
}
