use crate::common::{ORG, TestEnv, batch};
use serde_json::json;

#[tokio::test]
async fn a_consumer_cancelled_by_the_broker_subscribes_again_without_a_restart() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json("before", &batch(ORG, json!([{"displayName": "Before"}])))
        .await;
    assert_eq!(env.next_result().await.2["status"], "succeeded");

    env.cancel_consumer_and_wait_for_resubscribe(&worker).await;

    worker.expect_metric("contact_import_ready", 1.0).await;

    // The worker declared the queue again and consumes it: a new batch gets its result.
    env.publish_json("after", &batch(ORG, json!([{"displayName": "After"}])))
        .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        (result["batchId"].as_str(), result["status"].as_str()),
        (Some("after"), Some("succeeded"))
    );
    assert_eq!(env.contact_count().await, 2);
    let status = worker.terminate().await;
    assert!(
        status.success(),
        "the same process kept running and exits cleanly: {status:?}"
    );
}

#[tokio::test]
async fn a_worker_given_several_nodes_connects_to_one_that_answers_whichever_it_tries_first() {
    let env = TestEnv::new().await;
    // A node that is down (nothing listens there) beside the real one: every connection
    // tries the two in a random order, so over several starts both orders occur.
    let down = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        crate::support::ports::free_port()
    );
    let nodes = format!("{down},{}", env.broker.amqp_url);
    for start in 0..3 {
        let worker = env.spawn_worker_with(&[], &[("AMQP_URL", &nodes)]).await;
        let id = format!("nodes-{start}");
        env.publish_json(&id, &batch(ORG, json!([{"displayName": id}])))
            .await;
        let (_, _, result) = env.next_result().await;
        assert_eq!(
            (result["batchId"].as_str(), result["status"].as_str()),
            (Some(id.as_str()), Some("succeeded")),
            "{result}"
        );
        assert!(worker.terminate().await.success());
    }
    assert_eq!(env.contact_count().await, 3);
}
