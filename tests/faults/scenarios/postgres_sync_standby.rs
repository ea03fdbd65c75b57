//! The synchronous standby goes away while the worker commits (a restart, maintenance, a
//! partition), and a commit's wait for it is cancelled from outside (an operator's
//! `pg_cancel_backend`, a pooler). The worker is on a primary whose every commit waits for
//! the standby (`synchronous_standby_names = '*'`, `synchronous_commit = on`), with both
//! hosts in `DATABASE_URL` (`target_session_attrs=read-write`).
//!
//! An answer means the batch is durable: a batch is answered (and acked) only once its
//! commit is on the standby. A commit left waiting keeps its batch unanswered and unacked,
//! past the batch timeout, across a restart of the worker, until the standby is back; a
//! cancelled wait leaves the commit only local, an unknown outcome, not a success. Then
//! every batch is answered exactly once, and a failover to the standby loses none of them.

use super::postgres_failover::{batch_ids, with_synchronous_standby};
use crate::check;
use crate::harness::{SETTLE_WITHIN, Scenario, eventually};
use crate::stream;
use crate::support::worker::Worker;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// The batch timeout of the first scenario: far shorter than the standby's outage.
const BATCH_TIMEOUT_SECS: u64 = 3;

/// What `/readyz` or the log says while commits wait for the standby.
const WAITING_FOR_STANDBY: &str = "commits are waiting for the database's synchronous standby";

/// What PostgreSQL logs when a commit's wait for the standby is cancelled: the commit is
/// then local only, and COMMIT returns success with this as a WARNING.
const WAIT_CANCELLED: &str = "canceling wait for synchronous replication due to user request";

/// The batches answered now that were not in `before`.
fn answered_since(s: &Scenario, before: &BTreeSet<String>) -> Vec<String> {
    s.answered().difference(before).cloned().collect()
}

/// `ids`, at most ten of them, for a message.
fn some(ids: &[String]) -> String {
    let mut text = ids[..ids.len().min(10)].join(", ");
    if ids.len() > 10 {
        text.push_str(&format!(", … ({} in all)", ids.len()));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_standby_lost_no_batch_is_answered_until_its_commit_is_on_the_standby() {
    let (mut s, mut standby, settings) =
        with_synchronous_standby("postgres_sync_standby_lost").await;
    let settings = settings.env("CONTACT_IMPORT_BATCH_TIMEOUT_SECS", BATCH_TIMEOUT_SECS);
    let first = s.spawn_worker("first", &settings).await;
    s.publish(stream::batches(0, 150, 30)).await;
    s.wait_for_results(30).await;

    // The standby stops (fast shutdown) with batches in flight, and more arrive.
    s.fault_began();
    standby.stop().await;
    s.publish(stream::batches(150, 50, 30)).await;
    // A commit the standby confirmed just before it stopped may still be answered now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_outage = s.answered();
    let ready_before = ready(&s).await;
    let mut problems: Vec<String> = Vec::new();

    // Well past the batch timeout: the worker must not give up on a COMMIT, and must say why
    // it is stuck.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let answered = answered_since(&s, &before_outage);
    if !answered.is_empty() {
        problems.push(format!(
            "{} batches were answered while the synchronous standby was down (their commits \
             were local only): {}",
            answered.len(),
            some(&answered)
        ));
    }
    expect_none_acked(&s, ready_before, "with the standby down", &mut problems).await;
    let (status, body) = first
        .try_get("/readyz")
        .await
        .unwrap_or((0, "no answer".into()));
    if status == 200 {
        problems.push(format!(
            "/readyz answered 200 after commits waited 12 s: {}",
            body.trim()
        ));
    }
    let log = std::fs::read_to_string(&first.log).unwrap_or_default();
    if !body.contains(WAITING_FOR_STANDBY) && !log.contains(WAITING_FOR_STANDBY) {
        problems.push(format!(
            "neither /readyz ({status}: {}) nor the log says {WAITING_FOR_STANDBY:?}",
            body.trim()
        ));
    }
    let committing = first.try_metric("contact_import_batches_committing").await;
    if committing.unwrap_or(0.0) <= 0.0 {
        problems.push(format!(
            "contact_import_batches_committing is {committing:?}, expected > 0"
        ));
    }
    let oldest = first
        .try_metric("contact_import_commit_wait_oldest_seconds")
        .await;
    if oldest.unwrap_or(0.0) <= BATCH_TIMEOUT_SECS as f64 {
        problems.push(format!(
            "contact_import_commit_wait_oldest_seconds is {oldest:?}, expected > the batch \
             timeout ({BATCH_TIMEOUT_SECS} s)"
        ));
    }

    // The worker dies during the outage; its commits stay waiting in PostgreSQL and its
    // deliveries go to a new worker, which must not answer them either.
    first.kill().await;
    // Not `spawn_worker`: this one may never answer `/readyz` with 200.
    let mut second = Worker::spawn_unready("second", &settings).unwrap_or_else(|e| panic!("{e:#}"));
    eventually(
        Duration::from_secs(30),
        "the second worker serves /healthz",
        || async {
            second
                .try_get("/healthz")
                .await
                .is_some_and(|(status, _)| status == 200)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let answered_after_restart: Vec<String> = answered_since(&s, &before_outage)
        .into_iter()
        .filter(|id| !answered.contains(id))
        .collect();
    if !answered_after_restart.is_empty() {
        problems.push(format!(
            "{} batches were answered by the restarted worker while the standby was down: {}",
            answered_after_restart.len(),
            some(&answered_after_restart)
        ));
    }
    let ready_after_restart = expect_none_acked(
        &s,
        ready_before,
        "with the standby down, across the worker's restart",
        &mut problems,
    )
    .await;
    // The killed worker's deliveries went back to the queue: fewer ready again means the new
    // worker holds them (its prefetch as full as the first one's was).
    if ready_after_restart > ready_before {
        problems.push(format!(
            "the restarted worker did not take the deliveries the killed one held ({} more \
             batches ready than before the kill): the restart proved nothing",
            ready_after_restart - ready_before
        ));
    }

    // The standby is back: every batch is answered, once.
    standby.start_again().await;
    s.fault_ended();
    let mut summary = s.settle_and_check(&[]).await;
    second.assert_running();
    summary.expect_answered_once(&s.results.snapshot());

    // The primary dies and the standby is promoted, with no wait for it to catch up: every
    // batch that was answered must be there, rows and all.
    s.cluster.postgres.kill_9();
    standby.promote().await;
    let on_standby = check::verify(
        &standby.client().await,
        &s.published,
        &s.results.snapshot(),
        &s.dead_letters.snapshot(),
        &BTreeSet::new(),
        0,
    )
    .await;
    problems.extend(
        on_standby
            .problems
            .into_iter()
            .map(|p| format!("after the failover, on the promoted standby: {p}")),
    );
    eprintln!(
        "postgres_sync_standby_lost: answered during the outage: {} by the first worker, {} by \
         the second; /readyz {status}; batches_committing {committing:?}; \
         commit_wait_oldest_seconds {oldest:?}",
        answered.len(),
        answered_after_restart.len()
    );
    summary.problems.extend(problems);
    summary.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_wait_cancelled_from_outside_is_not_answered_until_replicated() {
    // The default batch timeout (300 s): only the operator cancels here.
    let (mut s, mut standby, settings) =
        with_synchronous_standby("postgres_sync_wait_cancelled").await;
    let mut worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 20, 30)).await;
    s.wait_for_results(20).await;

    standby.stop().await;
    let waiting: BTreeSet<String> = (20..24).map(|n| format!("batch-{n}")).collect();
    s.publish(stream::batches(20, 4, 30)).await;
    let db = s.db().await;
    let sync_waits = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    eventually(
        Duration::from_secs(30),
        "four commits waiting for the synchronous standby",
        || async { db.query(sync_waits, &[]).await.unwrap().len() >= waiting.len() },
    )
    .await;
    s.fault_began();
    let cancelled = db
        .query(
            "SELECT pid, pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
            &[],
        )
        .await
        .unwrap()
        .len();
    eventually(
        Duration::from_secs(10),
        "PostgreSQL logged the cancelled wait for synchronous replication",
        || async { s.cluster.postgres.log_contains(WAIT_CANCELLED) },
    )
    .await;

    // The commits are local only: nothing may be answered while the standby stays down.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut problems: Vec<String> = Vec::new();
    let answered: Vec<String> = s.answered().intersection(&waiting).cloned().collect();
    if !answered.is_empty() {
        problems.push(format!(
            "{} batches were answered after their commit's wait for the standby was \
             cancelled, with the standby still down: {}",
            answered.len(),
            some(&answered)
        ));
    }
    let unknown = worker
        .try_metric("contact_import_commit_outcome_unknown_total")
        .await;
    if unknown.unwrap_or(0.0) < 1.0 {
        problems.push(format!(
            "contact_import_commit_outcome_unknown_total is {unknown:?}, expected ≥ 1"
        ));
    }

    // The standby is back: the batches are answered once each, and are on the standby.
    // Their results were made before their commits (`processedAt` is earlier), so the time to
    // recover is to the last of them answered.
    standby.start_again().await;
    s.fault_ended();
    let back = Instant::now();
    while !waiting.is_subset(&s.answered()) && back.elapsed() < SETTLE_WITHIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if waiting.is_subset(&s.answered()) {
        s.recovery = Some(back.elapsed());
    }
    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.expect_answered_once(&s.results.snapshot());
    // The standby serves reads; what it flushed it replays a moment later.
    s.cluster.postgres.wait_for_standby_replay().await;
    let on_standby = batch_ids(standby.client().await).await;
    let missing: Vec<String> = s.answered().difference(&on_standby).cloned().collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} answered batches are not on the standby: {}",
            missing.len(),
            some(&missing)
        ));
    }
    eprintln!(
        "postgres_sync_wait_cancelled: {cancelled} waits cancelled; {} of the {} batches \
         answered with the standby down; commit_outcome_unknown_total {unknown:?}",
        answered.len(),
        waiting.len()
    );
    summary.problems.extend(problems);
    summary.finish();
}

/// How many batches wait in the broker (the import queue and the lanes), ready for delivery.
async fn ready(s: &Scenario) -> u32 {
    stream::ready_in_broker(&s.cluster.amqp_url()).await
}

/// Records a problem if fewer batches wait in the import queue than `before` (read 1 s into
/// the outage): one was acked (or dead-lettered) `when` none may be. The worker's prefetch is
/// full (the queue holds many more), so it takes a batch from the queue only when it settles
/// one. Returns how many are ready now.
async fn expect_none_acked(
    s: &Scenario,
    before: u32,
    when: &str,
    problems: &mut Vec<String>,
) -> u32 {
    let now = ready(s).await;
    eprintln!(
        "{}: {now} batches ready in the import queue {when} ({before} before)",
        s.name
    );
    if now < before {
        problems.push(format!(
            "{} batches were settled (acked) {when}: {before} were ready in the import queue \
             1 s into the outage, {now} now",
            before - now
        ));
    }
    now
}
