//! A three-node RabbitMQ cluster, the worker given every node's URL (`AMQP_URL` as a list):
//! a node dies (SIGKILL, as when its machine does), the import queue's leader dies, or two
//! of the three nodes stop for a while, under a stream of batches published with confirms
//! (an unconfirmed publish is published again on another node).

use crate::harness::Scenario;
use crate::stream::{self, IMPORT_QUEUE};
use contact_import::config::BrokerConfig;
use std::time::Duration;
use tokio::time::Instant;

const NODES: usize = 3;
/// The worker's consuming connection (src/worker/session.rs names it).
const CONSUME_CONNECTION: &str = "contact-import consume";

/// The node the worker consumes from, once it is connected.
async fn worker_node(s: &Scenario) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(node) = s
            .cluster
            .rabbits
            .node_of_connection(CONSUME_CONNECTION)
            .await
        {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's consume connection is on no node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node leading `queue` once it is another than `old`.
async fn new_leader(s: &Scenario, queue: &str, old: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match s.cluster.rabbits.leader_of(queue).await {
            Some(node) if node != old => return node,
            _ => assert!(Instant::now() < deadline, "no new leader for {queue}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_node_loss_moves_the_worker_to_another_node_with_nothing_lost() {
    let mut s = Scenario::start_on_nodes("rabbitmq_node_loss", NODES).await;
    let mut worker = s.spawn_worker("worker", &s.worker_settings()).await;
    // Asked before the stream: each rabbitmqctl call takes seconds, the stream not many more.
    let lost = worker_node(&s).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;
    eprintln!(
        "rabbitmq_node_loss: the worker consumes from {}; killing it",
        s.cluster.rabbits.node(lost).node_name
    );

    s.fault_began();
    s.cluster.rabbits.node_mut(lost).kill_node();
    // The node stays down: the worker must carry on with the others.
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    let now_on = s
        .cluster
        .rabbits
        .node_of_connection(CONSUME_CONNECTION)
        .await;
    summary.expect(
        now_on.is_some_and(|n| n != lost),
        format!("after the loss of node {lost} the worker consumes from {now_on:?}"),
    );
    summary.expect_reconnected(&worker).await;
    // Back again, the node rejoins the cluster and the queue.
    s.cluster.rabbits.node_mut(lost).start_again().await;
    summary.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_leader_loss_elects_a_new_leader_and_loses_nothing() {
    let mut s = Scenario::start_on_nodes("rabbitmq_leader_loss", NODES).await;
    let mut worker = s.spawn_worker("worker", &s.worker_settings()).await;
    // Asked before the stream: each rabbitmqctl call takes seconds, the stream not many more.
    let consumer = worker_node(&s).await;
    let leader = s
        .cluster
        .rabbits
        .leader_of(IMPORT_QUEUE)
        .await
        .expect("the import queue has a leader");
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;
    eprintln!(
        "rabbitmq_leader_loss: {IMPORT_QUEUE} is led by {}, the worker consumes from {}; killing the leader",
        s.cluster.rabbits.node(leader).node_name,
        s.cluster.rabbits.node(consumer).node_name
    );

    s.fault_began();
    s.cluster.rabbits.node_mut(leader).kill_node();
    let elected = new_leader(&s, IMPORT_QUEUE, leader).await;
    s.fault_ended();
    eprintln!(
        "rabbitmq_leader_loss: new leader {}",
        s.cluster.rabbits.node(elected).node_name
    );
    s.publish(stream::batches(200, 100, 30)).await;
    s.cluster.rabbits.node_mut(leader).start_again().await;

    let summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_majority_loss_makes_the_worker_wait_and_resume_without_dead_letters() {
    let mut s = Scenario::start_on_nodes("rabbitmq_majority_loss", NODES).await;
    let mut worker = s.spawn_worker("worker", &s.worker_settings()).await;
    // The worker's node stays up: it keeps its connection to a node that has lost the
    // queue's majority, which is the harder case (nothing tells it to move).
    let kept = worker_node(&s).await;
    let stopped: Vec<usize> = (0..NODES).filter(|&n| n != kept).collect();
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;

    s.fault_began();
    for &n in &stopped {
        s.cluster.rabbits.node_mut(n).stop().await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    for &n in &stopped {
        s.cluster.rabbits.node_mut(n).start_again().await;
    }
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.finish();
}

/// The lanes' quorum queues (the interactive lane, 4 bulk and 4 heavy shards) and the intake
/// queues beside the import queue (`.intake.1` and `.2`, with 3 intake shards) spread their
/// leaders over a 3-node cluster, so that no one node's Erlang process carries every batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_leaders_spread_over_the_cluster() {
    let s = Scenario::start_on_nodes("lanes_leaders", NODES).await;
    // With 3 intake shards: the intake queues the worker declares spread like the lanes.
    let settings = s.worker_settings().env("CONTACT_IMPORT_INTAKE_SHARDS", 3);
    let mut worker = s.spawn_worker("worker", &settings).await;
    let intake = contact_import::broker::topology::intake_queues(&BrokerConfig {
        intake_shards: 3,
        ..crate::support::broker::default_names("amqp://unused")
    });
    let lanes: Vec<String> = stream::all_queues()
        .into_iter()
        .skip(1)
        .chain(intake.into_iter().skip(1))
        .collect();
    let mut leaders = std::collections::BTreeMap::new();
    let asking = tokio::time::Instant::now();
    while leaders.len() < lanes.len() && asking.elapsed() < std::time::Duration::from_secs(60) {
        let all = s.cluster.rabbits.leaders().await;
        leaders = lanes
            .iter()
            .filter_map(|q| all.get(q).map(|node| (q.clone(), *node)))
            .collect();
    }
    worker.assert_running();
    assert_eq!(
        leaders.len(),
        lanes.len(),
        "every lane has a leader: {leaders:?}"
    );
    let nodes: std::collections::BTreeSet<usize> = leaders.values().copied().collect();
    eprintln!("lanes_leaders: leaders by queue {leaders:?}");
    assert!(
        nodes.len() >= 2,
        "the {} lane queues are all led by one node: {leaders:?}",
        lanes.len()
    );
}
