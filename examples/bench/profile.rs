//! Where one batch's time goes: the worker-side CPU steps (hash, decode, validate, result
//! JSON), each step of the transaction timed on its own (one batch at a time, through the
//! library's public storage functions, in the order `Store::apply_batch` runs them), and
//! `EXPLAIN (ANALYZE, BUFFERS)` of the set-based upsert with a real batch, rolled back.

use crate::dataset::{Batch, LIMITS, Shape};
use crate::services::Services;
use chrono::Utc;
use contact_import::contact::{
    Address, ContactFields, ContactMethod, Planned, ValidatedBatch, validate_batch,
};
use contact_import::dialect::{self, IncomingMessage};
use contact_import::ids::{self, BatchId};
use contact_import::result::BatchResult;
use contact_import::store::batches::{self, Claim};
use contact_import::store::{self, upsert};
use std::fmt::Write;
use std::time::{Duration, Instant};
use tokio_postgres::types::{Json, ToSql};

/// Batches applied one at a time for the step timings.
const BATCHES: usize = 20;

pub struct Profile {
    pub batches: usize,
    pub contacts_per_batch: usize,
    /// Worker-side CPU per batch, ms.
    pub cpu_steps: Vec<(&'static str, f64)>,
    /// Transaction steps per batch, mean ms.
    pub tx_steps: Vec<(&'static str, f64)>,
    pub body_bytes: usize,
    pub result_bytes: usize,
    pub explain: Option<String>,
}

pub async fn run(
    services: &Services,
    database_url: &str,
    shape: &Shape,
    batches: &[Batch],
) -> anyhow::Result<Profile> {
    let _ = services;
    let n = BATCHES.min(batches.len().saturating_sub(1)).max(1);
    let pool = store::pool::build(database_url, 2)?;

    let mut cpu = [Duration::ZERO; 4];
    let mut tx_steps = [Duration::ZERO; 7];
    let mut result_bytes = 0;
    for batch in &batches[..n] {
        let t = Instant::now();
        let sha = ids::body_sha256(&batch.body);
        cpu[0] += t.elapsed();
        let t = Instant::now();
        let message = IncomingMessage {
            kind: Some(dialect::webex::MESSAGE_TYPE),
            content_type: Some("application/json"),
            org_id_header: None,
            body: &batch.body,
        };
        let decoded = dialect::decode(&message, &LIMITS).map_err(|r| anyhow::anyhow!(r.message))?;
        cpu[1] += t.elapsed();
        let t = Instant::now();
        let validated = validate_batch(
            BatchId::for_message(Some(&batch.id), &sha),
            decoded.org_id,
            decoded.contacts,
        );
        cpu[2] += t.elapsed();

        let mut lap = Instant::now();
        let mut step = |i: usize| {
            tx_steps[i] += lap.elapsed();
            lap = Instant::now();
        };
        let mut client = pool.get().await?;
        step(0);
        let tx = client.transaction().await?;
        step(1);
        let Claim::New = batches::claim(&tx, &validated.org_id, &validated.batch_id, &sha).await?
        else {
            anyhow::bail!("profile batch applied before");
        };
        step(2);
        let outcomes = upsert::write_contacts(&tx, &validated).await?;
        step(3);
        let result =
            BatchResult::applied(&validated.batch_id, &validated.org_id, outcomes, Utc::now());
        step(4);
        batches::finish(&tx, &validated.org_id, &validated.batch_id, &result).await?;
        step(5);
        tx.commit().await?;
        step(6);

        let t = Instant::now();
        result_bytes += result.to_json().len();
        cpu[3] += t.elapsed();
    }
    let per_batch = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    let explain = match upsert_sql() {
        Some(sql) => Some(explain(&pool, sql, &batches[n].validated()).await?),
        None => None,
    };
    pool.close();
    Ok(Profile {
        batches: n,
        contacts_per_batch: shape.batch_size,
        cpu_steps: vec![
            ("SHA-256 of the body", per_batch(cpu[0])),
            ("decode (Webex JSON → drafts)", per_batch(cpu[1])),
            ("validate", per_batch(cpu[2])),
            ("result → JSON", per_batch(cpu[3])),
        ],
        tx_steps: vec![
            (
                "pool checkout (verified: one round trip)",
                per_batch(tx_steps[0]),
            ),
            ("BEGIN", per_batch(tx_steps[1])),
            ("claim (INSERT import_batches)", per_batch(tx_steps[2])),
            (
                "upsert (unnest INSERT … ON CONFLICT … RETURNING, rows read back)",
                per_batch(tx_steps[3]),
            ),
            ("build the result", per_batch(tx_steps[4])),
            (
                "store the result (UPDATE import_batches, jsonb)",
                per_batch(tx_steps[5]),
            ),
            ("COMMIT (WAL flush)", per_batch(tx_steps[6])),
        ],
        body_bytes: batches[..n].iter().map(|b| b.body.len()).sum::<usize>() / n,
        result_bytes: result_bytes / n,
        explain,
    })
}

/// The upsert statement, read from the storage code itself so the plan shown is the plan
/// the worker runs (`None` if that code no longer has the constant).
fn upsert_sql() -> Option<&'static str> {
    const SOURCE: &str = include_str!("../../src/store/upsert.rs");
    const START: &str = "const UPSERT: &str = \"";
    let start = SOURCE.find(START)? + START.len();
    let end = start + SOURCE[start..].find("\";")?;
    Some(&SOURCE[start..end])
}

/// The columns `write_contacts` binds, built the same way.
async fn explain(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    batch: &ValidatedBatch,
) -> anyhow::Result<String> {
    type Column<'a, T> = Vec<Option<T>>;
    let writes: Vec<(uuid::Uuid, bool, &ContactFields)> = batch
        .entries
        .iter()
        .filter_map(|e| match e {
            Planned::Write { id, contact } => {
                Some((id.0, contact.update_of.is_some(), &contact.fields))
            }
            Planned::Failed(_) => None,
        })
        .collect();
    let ids: Vec<uuid::Uuid> = writes.iter().map(|w| w.0).collect();
    let is_update: Vec<bool> = writes.iter().map(|w| w.1).collect();
    let text = |get: fn(&ContactFields) -> &Option<String>| -> Column<'_, &str> {
        writes.iter().map(|w| get(w.2).as_deref()).collect()
    };
    let list = |get: fn(&ContactFields) -> &Option<Vec<ContactMethod>>| -> Column<'_, Json<&Vec<ContactMethod>>> {
        writes.iter().map(|w| get(w.2).as_ref().map(Json)).collect()
    };
    let address: Column<'_, Json<&Address>> = writes
        .iter()
        .map(|w| w.2.address.as_ref().map(Json))
        .collect();
    let groups: Column<'_, Json<&Vec<String>>> = writes
        .iter()
        .map(|w| w.2.groups.as_ref().map(Json))
        .collect();
    let texts = [
        text(|f| &f.display_name),
        text(|f| &f.first_name),
        text(|f| &f.last_name),
        text(|f| &f.company_name),
        text(|f| &f.title),
        text(|f| &f.avatar_url),
        text(|f| &f.primary_contact_method),
        text(|f| &f.source),
    ];
    let lists = [
        list(|f| &f.emails),
        list(|f| &f.phone_numbers),
        list(|f| &f.sip_addresses),
        list(|f| &f.ims),
    ];
    let org = batch.org_id.as_str();
    let params: [&(dyn ToSql + Sync); 17] = [
        &org, &ids, &is_update, &texts[0], &texts[1], &texts[2], &texts[3], &texts[4], &address,
        &texts[5], &texts[6], &texts[7], &lists[0], &lists[1], &lists[2], &lists[3], &groups,
    ];
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, VERBOSE OFF) {sql}"),
            &params,
        )
        .await?;
    tx.rollback().await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

impl Profile {
    pub fn markdown(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "### Profile of one batch ({} contacts, mean of {} batches applied one at a time)\n",
            self.contacts_per_batch, self.batches
        );
        let _ = writeln!(
            s,
            "Body {:.0} KiB, result {:.0} KiB per batch.\n",
            self.body_bytes as f64 / 1024.0,
            self.result_bytes as f64 / 1024.0
        );
        let _ = writeln!(s, "| worker-side CPU step | ms per batch |\n| --- | ---: |");
        for (name, ms) in &self.cpu_steps {
            let _ = writeln!(s, "| {name} | {ms:.2} |");
        }
        let _ = writeln!(s, "\n| transaction step | ms per batch |\n| --- | ---: |");
        let total: f64 = self.tx_steps.iter().map(|(_, ms)| ms).sum();
        for (name, ms) in &self.tx_steps {
            let _ = writeln!(s, "| {name} | {ms:.2} |");
        }
        let _ = writeln!(s, "| **transaction total** | **{total:.2}** |\n");
        if let Some(plan) = &self.explain {
            let _ = writeln!(
                s,
                "`EXPLAIN (ANALYZE, BUFFERS)` of the upsert with one batch's rows (rolled back):\n\n```text\n{plan}\n```\n"
            );
        }
    }
}
