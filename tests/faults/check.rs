//! The invariants every scenario ends with, checked from the database and the result
//! queue, and the summary row they produce.
//!
//! - every published batch has a result, or is in the dead-letter queue when the scenario
//!   says it must be (and only then);
//! - the rows are exactly the valid contacts of the batches that were applied: none missing,
//!   none twice, none extra, each in its batch's org;
//! - every result agrees with the rows: each stored contact it lists exists with that id
//!   and email, each invalid contact is in `failedContacts` and nothing else is; a result
//!   repeated for a redelivery is identical to the first;
//! - `import_batches` holds exactly one finished row per applied batch;
//! - the import queue is empty.

use crate::stream::{Batch, DeadLetter, Received};
use crate::support::worker::Worker;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// One line of the reliability table.
#[derive(Debug, Default)]
pub struct Summary {
    pub scenario: String,
    pub published: usize,
    /// (batches answered, batches published) when the fault began.
    pub at_fault: Option<(usize, usize)>,
    /// Batches with at least one result.
    pub results: usize,
    /// Result messages, redeliveries' replays included.
    pub result_messages: usize,
    pub dead_lettered: usize,
    pub rows_expected: usize,
    pub rows_found: usize,
    /// Rows beyond the first for one email.
    pub duplicates: usize,
    /// Expected emails with no row.
    pub lost: usize,
    pub recovery: Option<Duration>,
    pub duration: Duration,
    pub problems: Vec<String>,
}

pub const TSV_HEADER: &str = "scenario\tanswered at fault\tpublished\tresults\tresult messages\tdead-lettered\trows expected\trows found\tduplicates\tlost\ttime to recover (s)\tduration (s)\tverdict";

impl Summary {
    pub fn tsv_row(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.1}\t{}",
            self.scenario,
            self.at_fault
                .map_or("-".to_owned(), |(answered, published)| format!(
                    "{answered}/{published}"
                )),
            self.published,
            self.results,
            self.result_messages,
            self.dead_lettered,
            self.rows_expected,
            self.rows_found,
            self.duplicates,
            self.lost,
            self.recovery
                .map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64())),
            self.duration.as_secs_f64(),
            if self.problems.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
        )
    }

    /// Writes `target/reliability/<scenario>.tsv` (read by `scripts/reliability`) and
    /// prints the row.
    pub fn write(&self) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("reliability");
        std::fs::create_dir_all(&dir).unwrap();
        let row = self.tsv_row();
        std::fs::write(
            dir.join(format!("{}.tsv", self.scenario)),
            format!("{TSV_HEADER}\n{row}\n"),
        )
        .unwrap();
        eprintln!("{TSV_HEADER}\n{row}");
    }

    /// Records a broken expectation of the scenario itself.
    pub fn expect(&mut self, holds: bool, problem: impl Into<String>) {
        if !holds {
            self.problems.push(problem.into());
        }
    }

    /// Records whether `worker` reconnected to the broker at least once during the scenario.
    pub async fn expect_reconnected(&mut self, worker: &Worker) {
        let reconnects = worker
            .try_metric("contact_import_broker_reconnects_total")
            .await
            .unwrap_or(0.0);
        self.expect(
            reconnects >= 1.0,
            format!("contact_import_broker_reconnects_total is {reconnects}, expected ≥ 1"),
        );
    }

    /// Records whether `worker` requeued a batch for a database error during `fault`: the
    /// batches in hand must wait for the database instead of spending their deliveries.
    pub async fn expect_no_database_requeues(&mut self, worker: &Worker, fault: &str) {
        let requeued = worker
            .try_metric(r#"contact_import_batches_requeued_total{reason="database"}"#)
            .await
            .unwrap_or(0.0);
        self.expect(
            requeued == 0.0,
            format!("{requeued} batches were requeued during the {fault} instead of waiting"),
        );
    }

    /// Records every batch with more than one result. For scenarios that promise exactly
    /// one answer per batch: where nothing can have been redelivered after its result was
    /// published, a second result is a batch answered twice.
    pub fn expect_answered_once(&mut self, results: &[Received]) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for result in results {
            *counts.entry(result.batch_id()).or_insert(0) += 1;
        }
        let twice: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("{id} ×{n}"))
            .collect();
        self.expect(
            twice.is_empty(),
            format!(
                "{} batches were answered more than once: {}",
                twice.len(),
                twice[..twice.len().min(10)].join(", ")
            ),
        );
    }

    /// Writes the row, then fails the test with every broken invariant listed.
    pub fn finish(self) {
        self.write();
        self.assert_ok();
    }

    /// Fails the test with every broken invariant listed.
    fn assert_ok(&self) {
        if self.problems.is_empty() {
            return;
        }
        let mut message = format!(
            "{}: {} invariant(s) broken:\n",
            self.scenario,
            self.problems.len()
        );
        for problem in self.problems.iter().take(40) {
            let _ = writeln!(message, "  - {problem}");
        }
        if self.problems.len() > 40 {
            let _ = writeln!(message, "  … and {} more", self.problems.len() - 40);
        }
        panic!("{message}");
    }
}

/// A stored contact row.
struct Row {
    org: String,
    contact_id: String,
    email: String,
}

/// Checks everything listed in the module doc. `must_dead_letter` names the batches that
/// must end in the dead-letter queue instead of the database.
pub async fn verify(
    db: &tokio_postgres::Client,
    published: &[Batch],
    results: &[Received],
    dead_letters: &[DeadLetter],
    must_dead_letter: &BTreeSet<String>,
    import_queue_depth: u32,
) -> Summary {
    let mut problems = Vec::new();
    let batches: BTreeMap<&str, &Batch> = published.iter().map(|b| (b.id.as_str(), b)).collect();

    // Batches published = batches with a result + batches dead-lettered.
    let mut results_by_batch: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for result in results {
        if !batches.contains_key(result.batch_id()) {
            problems.push(format!(
                "a result for a batch nobody published: {}",
                result.body
            ));
            continue;
        }
        results_by_batch
            .entry(result.batch_id())
            .or_default()
            .push(&result.body);
    }
    let dead: BTreeMap<&str, &DeadLetter> = dead_letters
        .iter()
        .map(|d| (d.batch_id.as_str(), d))
        .collect();
    for id in batches.keys() {
        let has_result = results_by_batch.contains_key(id);
        match (must_dead_letter.contains(*id), has_result, dead.get(id)) {
            (false, true, None) | (true, false, Some(_)) => {}
            // The worker answers a batch it dead-letters with a `rejected` result naming the
            // same reason as the dead letter's header.
            (true, true, Some(d)) => {
                let reason = d.headers.get("x-contact-import-reason");
                for result in &results_by_batch[id] {
                    if result["status"] != "rejected"
                        || result["error"]["code"].as_str() != reason.map(String::as_str)
                    {
                        problems.push(format!(
                            "{id}: dead-lettered with reason {reason:?} but answered {result}"
                        ));
                    }
                }
            }
            (_, false, None) => problems.push(format!("{id}: no result and not dead-lettered")),
            (false, _, Some(d)) => problems.push(format!(
                "{id}: dead-lettered although it should have landed (headers {:?})",
                d.headers
            )),
            (true, true, None) => problems.push(format!(
                "{id}: got a result although it must be dead-lettered, and is not"
            )),
        }
    }
    for d in dead_letters {
        if !batches.contains_key(d.batch_id.as_str()) {
            problems.push(format!(
                "a dead letter for an unknown batch: {:?}",
                d.batch_id
            ));
        }
    }
    if dead.len() != dead_letters.len() {
        problems.push(format!(
            "{} dead letters for {} batches: a batch was dead-lettered twice",
            dead_letters.len(),
            dead.len()
        ));
    }

    // Rows: exactly the valid contacts of the applied batches.
    let rows: Vec<Row> = db
        .query(
            "SELECT org_id, contact_id::text, emails->0->>'value' FROM contacts",
            &[],
        )
        .await
        .expect("read contacts")
        .iter()
        .map(|r| Row {
            org: r.get(0),
            contact_id: r.get(1),
            email: r.get::<_, Option<String>>(2).unwrap_or_default(),
        })
        .collect();
    let mut rows_by_email: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in &rows {
        rows_by_email
            .entry(row.email.as_str())
            .or_default()
            .push(row);
    }
    let mut expected: BTreeMap<&str, &Batch> = BTreeMap::new();
    for batch in published
        .iter()
        .filter(|b| !must_dead_letter.contains(&b.id))
    {
        for email in batch.valid.values() {
            expected.insert(email.as_str(), batch);
        }
    }
    let mut duplicates = 0;
    for (email, found) in &rows_by_email {
        if found.len() > 1 {
            duplicates += found.len() - 1;
            problems.push(format!("{email} is stored {} times", found.len()));
        }
        match expected.get(email) {
            None => problems.push(format!("{email} is stored but no applied batch carries it")),
            Some(batch) => {
                if let Some(row) = found.iter().find(|r| r.org != batch.org) {
                    problems.push(format!(
                        "{email} stored in org {} instead of {}",
                        row.org, batch.org
                    ));
                }
            }
        }
    }
    let lost: Vec<&str> = expected
        .keys()
        .filter(|email| !rows_by_email.contains_key(*email))
        .copied()
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} expected contacts have no row, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }

    // Each result agrees with the rows and with what was sent.
    let by_id: BTreeMap<(&str, &str), &Row> = rows
        .iter()
        .map(|r| ((r.org.as_str(), r.contact_id.as_str()), r))
        .collect();
    for (id, copies) in &results_by_batch {
        if must_dead_letter.contains(*id) {
            continue; // its `rejected` results were checked against the dead letter above
        }
        let batch = batches[id];
        if copies.iter().any(|copy| *copy != copies[0]) {
            problems.push(format!(
                "{id}: its {} results differ; a replay must repeat the stored result",
                copies.len()
            ));
        }
        if let Err(problem) = result_matches(batch, copies[0], &by_id) {
            problems.push(format!("{id}: {problem}"));
        }
    }

    // One finished import_batches row per applied batch, none for the others.
    let applied: BTreeMap<String, String> = db
        .query("SELECT batch_id, status FROM import_batches", &[])
        .await
        .expect("read import_batches")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for id in batches.keys() {
        let must_exist = !must_dead_letter.contains(*id);
        match applied.get(*id) {
            None if must_exist => problems.push(format!("{id}: no import_batches row")),
            Some(_) if !must_exist => problems.push(format!(
                "{id}: has an import_batches row but must not be applied"
            )),
            Some(status) if status != "succeeded" && status != "partial" => {
                problems.push(format!("{id}: import_batches status {status}"))
            }
            _ => {}
        }
    }
    if import_queue_depth != 0 {
        problems.push(format!(
            "the import queue and the lanes still hold {import_queue_depth} messages"
        ));
    }

    Summary {
        published: published.len(),
        results: results_by_batch.len(),
        result_messages: results.len(),
        dead_lettered: dead_letters.len(),
        rows_expected: expected.len(),
        rows_found: rows.len(),
        duplicates,
        lost: lost.len(),
        problems,
        ..Default::default()
    }
}

/// A result lists, in request order, each valid contact as stored (its row exists with that
/// id and email) and `null` for each invalid one, which `failedContacts` names.
fn result_matches(
    batch: &Batch,
    result: &Value,
    rows: &BTreeMap<(&str, &str), &Row>,
) -> Result<(), String> {
    let status = result["status"].as_str().unwrap_or("");
    let expected_status = if batch.invalid.is_empty() {
        "succeeded"
    } else {
        "partial"
    };
    if status != expected_status {
        return Err(format!("status {status:?}, expected {expected_status:?}"));
    }
    if result["orgId"] != batch.org.as_str() {
        return Err(format!(
            "orgId {} instead of {}",
            result["orgId"], batch.org
        ));
    }
    let contacts = result["contacts"].as_array().ok_or("no contacts list")?;
    if contacts.len() != batch.contacts {
        return Err(format!(
            "{} contacts in the result, {} sent",
            contacts.len(),
            batch.contacts
        ));
    }
    for (i, contact) in contacts.iter().enumerate() {
        match batch.valid.get(&i) {
            Some(email) => {
                let id = contact["contactId"]
                    .as_str()
                    .ok_or(format!("contact {i} has no contactId"))?;
                let row = rows
                    .get(&(batch.org.as_str(), id))
                    .ok_or(format!("contact {i} ({id}) has no row"))?;
                if &row.email != email {
                    return Err(format!(
                        "contact {i} ({id}) is stored with {} instead of {email}",
                        row.email
                    ));
                }
                if contact["emails"][0]["value"] != email.as_str() {
                    return Err(format!(
                        "contact {i} in the result carries {}",
                        contact["emails"]
                    ));
                }
            }
            None if !contact.is_null() => {
                return Err(format!("contact {i} is invalid but listed as stored"));
            }
            None => {}
        }
    }
    let failed = result["failedContacts"]
        .as_array()
        .ok_or("no failedContacts")?;
    let failed_ids: Vec<usize> = failed
        .iter()
        .filter_map(|f| f["id"].as_str()?.parse().ok())
        .collect();
    if failed_ids != batch.invalid {
        return Err(format!(
            "failedContacts ids {failed_ids:?}, expected {:?}",
            batch.invalid
        ));
    }
    if let Some(f) = failed
        .iter()
        .find(|f| f["errorCode"] != "invalid.email" || f["statusCode"] != 400)
    {
        return Err(format!("unexpected failure {f}"));
    }
    let counts = &result["counts"];
    let stored = counts["created"].as_u64().unwrap_or(0) + counts["updated"].as_u64().unwrap_or(0);
    if counts["received"] != batch.contacts
        || counts["failed"] != batch.invalid.len()
        || stored != batch.valid.len() as u64
    {
        return Err(format!("counts {counts}"));
    }
    Ok(())
}
