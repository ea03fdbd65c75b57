//! Where one batch's time goes: the worker-side CPU steps (hash, decode, validate, result
//! JSON), each step of the transaction timed on its own (one batch at a time, through the
//! library's public storage functions, in the order `Store::apply_batch` runs them), and
//! `EXPLAIN (ANALYZE, BUFFERS)` of the set-based upsert with a real batch, rolled back.

use crate::dataset::{Batch, LIMITS, Shape};
use chrono::Utc;
use contact_import::contact::{ValidatedBatch, validate_batch};
use contact_import::dialect::{self, IncomingMessage};
use contact_import::ids::{self, BatchId};
use contact_import::result::BatchResult;
use contact_import::store::batches::{self, Claim};
use contact_import::store::{self, upsert};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Batches applied one at a time for the step timings.
const BATCHES: usize = 20;
/// Batches for the upsert variants: four variants, one warm-up round and four timed ones.
const VARIANT_BATCHES: usize = 20;

pub struct Profile {
    pub batches: usize,
    pub contacts_per_batch: usize,
    /// Rows in the contacts table when the profile ran.
    pub rows_in_table: i64,
    /// Worker-side CPU per batch, ms.
    pub cpu_steps: Vec<(&'static str, f64)>,
    /// Transaction steps per batch, mean ms.
    pub tx_steps: Vec<(&'static str, f64)>,
    pub body_bytes: usize,
    pub result_bytes: usize,
    pub explain: Option<String>,
    /// Upsert variants: name, ms per batch.
    pub upsert_variants: Vec<(String, f64)>,
    /// Ways to store the result: name, ms per batch, bytes sent.
    pub result_storage: Vec<(String, f64, usize)>,
    /// `perf` summaries of the runs recorded with `--perf`.
    pub perf: Vec<crate::perf::Summary>,
}

/// Profiles fresh batches of `shape` (ids prefixed `p`) against the database at
/// `database_url`, which should hold the end state of the largest run.
pub async fn run(database_url: &str, shape: &Shape) -> anyhow::Result<Profile> {
    let n = BATCHES;
    // Same mix; its updates name the first seeded contacts again, with other values (the
    // run's seed would send them as the run stored them, and unchanged rows are not written).
    let shape = &Shape {
        contacts: (BATCHES + VARIANT_BATCHES) * shape.batch_size,
        seed: shape.seed ^ 0x7072_6f66,
        ..*shape
    };
    let sample: Vec<Batch> = (0..n + VARIANT_BATCHES)
        .map(|b| crate::dataset::measured_batch(shape, "p", b))
        .collect();
    let (pool, _) = store::connect::pool(database_url, 2)?;
    let rows_in_table: i64 = pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM contacts", &[])
        .await?
        .get(0);

    let mut cpu = [Duration::ZERO; 4];
    let mut tx_steps = [Duration::ZERO; 7];
    let mut results = Vec::new();
    for batch in &sample[..n] {
        let t = Instant::now();
        let sha = ids::body_sha256(&batch.body);
        cpu[0] += t.elapsed();
        let t = Instant::now();
        let message = IncomingMessage {
            kind: Some(dialect::webex::MESSAGE_TYPE),
            content_type: Some("application/json"),
            org_id_header: None,
            account_id_header: None,
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
        let Claim::New =
            batches::claim(&tx, validated.org_id(), validated.batch_id(), &sha, None).await?
        else {
            anyhow::bail!("profile batch applied before");
        };
        step(2);
        let outcomes = upsert::write_contacts(&tx, &validated).await?;
        step(3);
        let result = BatchResult::applied(
            validated.batch_id(),
            validated.org_id(),
            outcomes,
            Utc::now(),
        );
        let body = result.to_json();
        step(4);
        batches::finish(
            &tx,
            validated.org_id(),
            validated.batch_id(),
            &result,
            &body,
            batches::Sender::default(),
        )
        .await?;
        step(5);
        tx.commit().await?;
        step(6);

        let t = Instant::now();
        results.push(result.to_json());
        cpu[3] += t.elapsed();
    }
    let per_batch = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    let fresh: Vec<ValidatedBatch> = sample[n..].iter().map(Batch::validated).collect();
    let sql = upsert::UPSERT;
    let explain = Some(explain(&pool, sql, &fresh[0]).await?);
    let upsert_variants = upsert_variants(&pool, sql, &fresh).await?;
    let result_storage = result_storage(&pool, &results[..5]).await?;
    pool.close();
    Ok(Profile {
        batches: n,
        contacts_per_batch: shape.batch_size,
        rows_in_table,
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
                "store the result (UPDATE import_batches, bytea lz4)",
                per_batch(tx_steps[5]),
            ),
            ("COMMIT (WAL flush)", per_batch(tx_steps[6])),
        ],
        body_bytes: sample[..n].iter().map(|b| b.body.len()).sum::<usize>() / n,
        result_bytes: results.iter().map(Vec::len).sum::<usize>() / n,
        explain,
        upsert_variants,
        result_storage,
        perf: Vec::new(),
    })
}

async fn explain(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    batch: &ValidatedBatch,
) -> anyhow::Result<String> {
    let steps = upsert::steps(batch);
    let columns = upsert::UpsertInput::of(batch.org_id(), &steps);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
            &columns.params(),
        )
        .await?;
    tx.rollback().await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Variants of the upsert, each run on the same batches in transactions that are rolled
/// back, timed from the client (statement, rows sent back and read). A variant whose text
/// substitution no longer applies to the code's statement is left out.
async fn upsert_variants(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    batches: &[ValidatedBatch],
) -> anyhow::Result<Vec<(String, f64)>> {
    const EXISTS: &str = "FROM input i\nWHERE NOT i.is_update\n   OR EXISTS (SELECT 1 FROM contacts e WHERE e.org_id = $1 AND e.contact_id = i.contact_id)";
    const JOIN: &str = "FROM input i\nLEFT JOIN contacts e ON e.org_id = $1 AND e.contact_id = i.contact_id\nWHERE NOT i.is_update OR e.contact_id IS NOT NULL";
    // Only for a statement that ends with its RETURNING: the worker's returns its written
    // rows from a CTE (and its unchanged ones from another), whose columns must agree.
    let lean = |sql: &str| -> Option<String> {
        let at = sql.find("RETURNING")?;
        if sql[at..].contains("SELECT") {
            return None;
        }
        Some(format!(
            "{}RETURNING c.contact_id, (c.xmax = 0) AS inserted, c.created_at, c.updated_at",
            &sql[..at]
        ))
    };
    let joined = sql.contains(EXISTS).then(|| sql.replace(EXISTS, JOIN));
    let mut variants: Vec<(String, String)> =
        vec![("as in src/store/upsert.rs".into(), sql.to_owned())];
    if let Some(j) = &joined {
        variants.push((
            "EXISTS … OR replaced by a LEFT JOIN on the primary key".into(),
            j.clone(),
        ));
    }
    if let Some(lean_sql) = lean(sql) {
        variants.push(("RETURNING only id, inserted, timestamps".into(), lean_sql));
        if let Some(both) = joined.as_deref().and_then(lean) {
            variants.push(("both".into(), both));
        }
    }
    // Round-robin over the variants, each (round, variant) on its own batch, so that the
    // dead rows a rolled-back attempt leaves behind do not weigh on one variant only. The
    // first round warms plans and buffers and is not counted.
    let client = pool.get().await?;
    let mut statements = Vec::new();
    for (_, text) in &variants {
        statements.push(client.prepare(text).await?);
    }
    drop(client);
    let rounds = batches.len() / variants.len();
    let mut totals = vec![Duration::ZERO; variants.len()];
    let mut client = pool.get().await?;
    for round in 0..rounds {
        for (v, statement) in statements.iter().enumerate() {
            let batch = &batches[round * variants.len() + v];
            let steps = upsert::steps(batch);
            let columns = upsert::UpsertInput::of(batch.org_id(), &steps);
            let tx = client.transaction().await?;
            let t = Instant::now();
            let rows = tx.query(statement, &columns.params()).await?;
            if round > 0 {
                totals[v] += t.elapsed();
            }
            anyhow::ensure!(!rows.is_empty(), "variant {} wrote nothing", variants[v].0);
            tx.rollback().await?;
        }
    }
    let out = variants
        .into_iter()
        .zip(totals)
        .map(|((name, _), total)| (name, total.as_secs_f64() * 1e3 / (rounds - 1).max(1) as f64))
        .collect();
    Ok(out)
}

/// Ways to keep the stored result, each on a scratch table of this database, timed per
/// batch inside a transaction that is rolled back.
async fn result_storage(
    pool: &deadpool_postgres::Pool,
    results: &[Vec<u8>],
) -> anyhow::Result<Vec<(String, f64, usize)>> {
    let mut client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_result_jsonb (id int, result jsonb);
             CREATE TABLE IF NOT EXISTS bench_result_jsonb_lz4 (id int, result jsonb COMPRESSION lz4);
             CREATE TABLE IF NOT EXISTS bench_result_bytea (id int, result bytea);
             CREATE TABLE IF NOT EXISTS bench_result_bytea_lz4 (id int, result bytea COMPRESSION lz4);
             CREATE TABLE IF NOT EXISTS bench_result_bytea_plain (id int, result bytea);
             ALTER TABLE bench_result_bytea_plain ALTER COLUMN result SET STORAGE EXTERNAL;",
        )
        .await?;
    let compact: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            let mut v: serde_json::Value = serde_json::from_slice(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("contacts");
            }
            serde_json::to_vec(&v).unwrap_or_default()
        })
        .collect();
    let ways: [(&str, &str, bool, bool); 6] = [
        (
            "jsonb, default compression (before migration V2)",
            "INSERT INTO bench_result_jsonb VALUES (1, $1::text::jsonb)",
            false,
            false,
        ),
        (
            "jsonb, lz4 compression",
            "INSERT INTO bench_result_jsonb_lz4 VALUES (1, $1::text::jsonb)",
            false,
            false,
        ),
        (
            "bytea of the JSON text, default compression",
            "INSERT INTO bench_result_bytea VALUES (1, $1)",
            true,
            false,
        ),
        (
            "bytea, lz4 compression (as in migrations/)",
            "INSERT INTO bench_result_bytea_lz4 VALUES (1, $1)",
            true,
            false,
        ),
        (
            "bytea, not compressed (STORAGE EXTERNAL)",
            "INSERT INTO bench_result_bytea_plain VALUES (1, $1)",
            true,
            false,
        ),
        (
            "jsonb without the contacts (counts and failures only)",
            "INSERT INTO bench_result_jsonb VALUES (1, $1::text::jsonb)",
            false,
            true,
        ),
    ];
    let mut out = Vec::new();
    for (name, sql, bytes, small) in ways {
        let statement = client.prepare(sql).await?;
        let mut total = Duration::ZERO;
        let mut size = 0;
        for (full, compact) in results.iter().zip(&compact) {
            let body = if small { compact } else { full };
            size += body.len();
            let tx = client.transaction().await?;
            let t = Instant::now();
            if bytes {
                tx.execute(&statement, &[body]).await?;
            } else {
                tx.execute(&statement, &[&String::from_utf8_lossy(body).as_ref()])
                    .await?;
            }
            total += t.elapsed();
            tx.rollback().await?;
        }
        out.push((
            name.to_owned(),
            total.as_secs_f64() * 1e3 / results.len() as f64,
            size / results.len(),
        ));
    }
    client
        .batch_execute(
            "DROP TABLE bench_result_jsonb, bench_result_jsonb_lz4, bench_result_bytea, bench_result_bytea_plain",
        )
        .await?;
    Ok(out)
}

impl Profile {
    pub fn markdown(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "### Profile of one batch ({} contacts, mean of {} batches applied one at a time, {} rows in the table)\n",
            self.contacts_per_batch, self.batches, self.rows_in_table
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
        if !self.upsert_variants.is_empty() {
            let _ = writeln!(
                s,
                "| upsert variant (same rows, rolled back, timed at the client) | ms per batch |\n| --- | ---: |"
            );
            for (name, ms) in &self.upsert_variants {
                let _ = writeln!(s, "| {name} | {ms:.2} |");
            }
            let _ = writeln!(s);
        }
        if !self.result_storage.is_empty() {
            let _ = writeln!(
                s,
                "| storing the result (one INSERT, rolled back) | ms per batch | KiB sent |\n| --- | ---: | ---: |"
            );
            for (name, ms, bytes) in &self.result_storage {
                let _ = writeln!(s, "| {name} | {ms:.2} | {:.0} |", *bytes as f64 / 1024.0);
            }
            let _ = writeln!(s);
        }
        for p in &self.perf {
            let _ = writeln!(
                s,
                "`perf record -a` during {}: share of CPU samples by thread name, then the hottest functions of the worker and of PostgreSQL:\n\n```text\n{}\n\n{}\n\n{}\n```\n",
                p.label, p.by_process, p.worker, p.postgres
            );
        }
        if let Some(plan) = &self.explain {
            let _ = writeln!(
                s,
                "`EXPLAIN (ANALYZE, BUFFERS)` of the upsert with one batch's rows (rolled back):\n\n```text\n{plan}\n```\n"
            );
        }
    }
}
