//! The PostgreSQL primary's machine dies (kill -9) and its streaming standby is promoted,
//! with the worker given both hosts the way libpq takes them
//! (`postgres://…@primary,standby/…?target_session_attrs=read-write`).
//!
//! With synchronous replication every batch the worker answered is on the standby, so the
//! failover loses nothing. With asynchronous replication a batch can be committed and
//! answered on the primary and never reach the standby: the second test shows that loss, so
//! that the operator guide's advice to replicate synchronously rests on a measurement.

use crate::harness::Scenario;
use crate::proxy::Proxy;
use crate::stream;
use crate::support::database::migrate;
use crate::support::env;
use crate::support::servers::Postgres;
use crate::support::worker::WorkerSettings;
use std::collections::BTreeSet;
use std::time::Duration;

/// `DATABASE_URL` naming both servers, writable one wanted.
fn both_hosts(primary: &Postgres, standby: &Postgres) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/contact_import?target_session_attrs=read-write",
        primary.port, standby.port
    )
}

/// The ids of the batches stored on a server (`client`'s).
pub(super) async fn batch_ids(client: tokio_postgres::Client) -> BTreeSet<String> {
    client
        .query("SELECT batch_id FROM import_batches", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Scenario `name` on a primary whose every commit waits for its streaming standby
/// (`synchronous_standby_names = '*'`), and worker settings naming both hosts.
pub(super) async fn with_synchronous_standby(
    name: &'static str,
) -> (Scenario, Postgres, WorkerSettings) {
    let s = Scenario::start(name).await;
    let standby = s
        .cluster
        .postgres
        .start_standby(s.cluster.dir.join("standby"), s.cluster.postgres.port)
        .await;
    s.cluster.postgres.require_synchronous_standby().await;
    let mut settings = s.worker_settings();
    settings.database_url = both_hosts(&s.cluster.postgres, &standby);
    (s, standby, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_to_a_synchronous_standby_loses_nothing() {
    let (mut s, mut standby, settings) = with_synchronous_standby("postgres_failover").await;
    let mut worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;

    s.fault_began();
    s.cluster.postgres.kill_9();
    // The operator (or Patroni) takes a moment to decide: meanwhile the only server left is
    // read-only, and the worker must wait for a writable one, not fail batches.
    tokio::time::sleep(Duration::from_secs(3)).await;
    standby.promote().await;
    // From here on the checks read the new primary.
    std::mem::swap(&mut s.cluster.postgres, &mut standby);
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary
        .expect_no_database_requeues(&worker, "failover")
        .await;
    summary.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_async_loses_the_batches_answered_while_the_standby_lagged() {
    let mut s = Scenario::start("postgres_failover_async").await;
    // The standby streams through a link the test can cut.
    let link = Proxy::start(([127, 0, 0, 1], s.cluster.postgres.port).into()).await;
    let standby = s
        .cluster
        .postgres
        .start_standby(s.cluster.dir.join("standby"), link.addr.port())
        .await;
    let mut settings = s.worker_settings();
    settings.database_url = both_hosts(&s.cluster.postgres, &standby);
    let worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 20, 30)).await;
    s.wait_for_results(20).await;
    s.cluster.postgres.wait_for_standby_replay().await;

    // The standby falls behind (a congested or broken link): asynchronous commits do not
    // wait for it, so the worker goes on answering.
    link.cut();
    s.publish(stream::batches(20, 20, 30)).await;
    s.wait_for_results(40).await;
    s.cluster.postgres.kill_9();
    standby.promote().await;
    worker.stop().await.unwrap();

    let answered = s.answered();
    let on_new_primary = batch_ids(standby.client().await).await;
    let lost: Vec<&String> = answered.difference(&on_new_primary).collect();
    eprintln!(
        "postgres_failover_async: {} batches answered, {} of them missing after the failover",
        answered.len(),
        lost.len()
    );
    assert_eq!(
        answered.len(),
        40,
        "every batch was answered before the failover"
    );
    assert!(
        (0..20).all(|n| on_new_primary.contains(&format!("batch-{n}"))),
        "the batches replayed before the pause are on the new primary"
    );
    assert_eq!(
        lost.len(),
        20,
        "the 20 batches answered while the standby lagged are lost: {lost:?}"
    );
}

/// A server that turns read-only under the worker's pooled connections (a managed failover
/// that demotes the writer without closing its connections; here `default_transaction_read_only`)
/// must not keep the worker on it: the connection that hit SQLSTATE 25006 is closed and the
/// next one, with `target_session_attrs=read-write`, goes to the writable host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_server_is_left_for_the_writable_host() {
    let mut s = Scenario::start("postgres_read_only").await;
    let other = Postgres::start(s.cluster.dir.join("other")).await;
    migrate(&env::bin(), &other.url())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut settings = s.worker_settings();
    settings.database_url = both_hosts(&s.cluster.postgres, &other);
    let mut worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 10, 30)).await;
    s.wait_for_results(10).await;

    let first = s.db().await;
    for statement in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        first.batch_execute(statement).await.unwrap();
    }
    // pg_reload_conf only asks for the reload: wait until a new session sees it, after which
    // the postmaster has signalled every backend, the pooled ones included.
    crate::harness::eventually(
        Duration::from_secs(10),
        "the reload took effect",
        || async {
            let row = s
                .db()
                .await
                .query_one("SHOW default_transaction_read_only", &[])
                .await;
            row.is_ok_and(|row| row.get::<_, String>(0) == "on")
        },
    )
    .await;
    s.publish(stream::batches(10, 10, 30)).await;
    s.wait_for_results(20).await;
    worker.assert_running();

    let expected = |range: std::ops::Range<usize>| -> BTreeSet<String> {
        range.map(|n| format!("batch-{n}")).collect()
    };
    assert_eq!(batch_ids(first).await, expected(0..10), "on the first host");
    assert_eq!(
        batch_ids(other.client().await).await,
        expected(10..20),
        "on the writable host"
    );
}
