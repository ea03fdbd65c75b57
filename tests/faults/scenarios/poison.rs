//! One batch always fails in the database the same way (a trigger raises on one marked
//! contact). It must not block the others and must end in the dead-letter queue, saying why.

use crate::harness::Scenario;
use crate::stream;
use tokio::time::Instant;

const MARKER: &str = "poison@example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_batch_is_dead_lettered_with_its_reason_and_blocks_nothing() {
    let mut s = Scenario::start("poison").await;
    // Every attempt at the poisoned row takes a number from a sequence (which a rollback
    // does not undo), so the test knows how many times the worker tried.
    s.db()
        .await
        .batch_execute(&format!(
            "CREATE SEQUENCE poison_attempts;
             CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.emails @> '[{{\"value\": \"{MARKER}\"}}]' THEN
                 PERFORM nextval('poison_attempts');
                 RAISE EXCEPTION 'poisoned contact %', NEW.contact_id USING ERRCODE = 'P0001';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER poison BEFORE INSERT ON contacts
               FOR EACH ROW EXECUTE FUNCTION poison();"
        ))
        .await
        .unwrap();
    let _worker = s.spawn_worker("worker", &s.worker_settings()).await;

    s.publish(stream::batches(0, 100, 30)).await;
    let poisoned = stream::batch(100, 30, Some(MARKER));
    let poison_id = poisoned.id.clone();
    let published_at = Instant::now();
    s.publish(vec![poisoned]).await;
    s.publish(stream::batches(101, 199, 30)).await;

    let mut summary = s.settle_and_check(&[&poison_id]).await;
    let attempts: i64 = s
        .db()
        .await
        .query_one("SELECT last_value FROM poison_attempts", &[])
        .await
        .unwrap()
        .get(0);
    match s
        .dead_letters
        .snapshot()
        .into_iter()
        .find(|d| d.batch_id == poison_id)
    {
        None => summary.expect(
            false,
            format!("{poison_id} is not in the dead-letter queue"),
        ),
        Some(dead) => {
            summary.recovery = Some(dead.at - published_at);
            let header = |name: &str| dead.headers.get(name).cloned().unwrap_or_default();
            // Pending in src: the worker dead-letters exhausted batches itself, with these
            // headers; the broker's own delivery-limit dead letter carries only x-death.
            summary.expect(
                header("x-contact-import-reason") == "attempts.exhausted",
                format!(
                    "x-contact-import-reason is {:?}, expected \"attempts.exhausted\" (headers: {:?})",
                    header("x-contact-import-reason"),
                    dead.headers
                ),
            );
            summary.expect(
                header("x-contact-import-error").contains("poisoned contact"),
                format!(
                    "x-contact-import-error {:?} does not carry the database error",
                    header("x-contact-import-error")
                ),
            );
            summary.expect(
                header("x-contact-import-attempts") == attempts.to_string(),
                format!(
                    "x-contact-import-attempts is {:?}, the worker tried {attempts} times",
                    header("x-contact-import-attempts")
                ),
            );
        }
    }
    summary.finish();
}
