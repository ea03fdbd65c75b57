//! `--compare-write-paths` (issue 15): on copies of the same seeded database and the same
//! batches, the ceiling writing by `unnest` and by binary COPY into a staging table, and the
//! physical limit: a plain binary COPY of the same validated rows into an empty
//! `contacts_copy` (`LIKE contacts INCLUDING ALL`: same indexes, no conflict handling), one
//! transaction per batch at the same concurrency.

use crate::dataset::Expected;
use crate::direct::{self, Strategy};
use crate::stats::Measurement;
use crate::{Bench, Prepared, report};
use anyhow::{Context, ensure};
use contact_import::contact::ValidatedBatch;
use contact_import::store::staging::{self, Lead};
use contact_import::store::upsert::{self, Step};
use deadpool_postgres::Pool;
use std::fmt::Write;

/// The limit's table.
const LIMIT_TABLE: &str = "contacts_copy";

/// One dataset's three measurements.
pub struct Comparison {
    pub contacts: usize,
    pub concurrency: u16,
    /// Each measurement below sums this many rounds.
    pub rounds: usize,
    pub unnest: Measurement,
    pub copy: Measurement,
    pub limit: Measurement,
    /// Rows the limit copied (every validated row, the updates of unknown ids included).
    pub limit_rows: i64,
    /// End to end on the same batches in the same run, contacts/s.
    pub e2e: Option<f64>,
}

impl Bench {
    /// `rounds` rounds, the order of the two paths alternating (unnest first in odd rounds),
    /// summed: a disturbance or a checkpoint then falls on both paths alike.
    pub async fn compare_write_paths(
        &mut self,
        data: &Prepared,
        e2e: Option<&Measurement>,
        rounds: usize,
    ) -> anyhow::Result<Comparison> {
        let (mut unnest, mut copy, mut limit) = Default::default();
        let mut limit_rows = 0;
        for round in 0..rounds.max(1) {
            let paths = if round % 2 == 0 {
                [Strategy::Ceiling, Strategy::CeilingCopyStaging]
            } else {
                [Strategy::CeilingCopyStaging, Strategy::Ceiling]
            };
            let mut dbs = Vec::new();
            for strategy in paths {
                let mode = format!("wp{round}_{strategy:?}").to_lowercase();
                let db = self.copy(data, &mode).await?;
                let m = self.measure(data, &db, strategy).await?;
                add(
                    match strategy {
                        Strategy::Ceiling => &mut unnest,
                        _ => &mut copy,
                    },
                    m,
                );
                dbs.push(db);
            }
            let (a, b) = (
                fingerprint(&self.services.url_of(&dbs[0])).await?,
                fingerprint(&self.services.url_of(&dbs[1])).await?,
            );
            ensure!(
                a == b,
                "the two write paths left different rows: {a:?} and {b:?}"
            );
            eprintln!("bench: both write paths left identical contacts and batch records ({a:?})");
            for db in dbs {
                self.drop_unless_kept(&db).await;
            }
            let (m, rows) = self.limit(data, round).await?;
            add(&mut limit, m);
            limit_rows = rows;
        }
        Ok(Comparison {
            contacts: data.shape.contacts,
            concurrency: self.args.base_concurrency,
            rounds: rounds.max(1),
            unnest,
            copy,
            limit,
            limit_rows,
            e2e: e2e.map(Measurement::contacts_per_s),
        })
    }

    /// The plain COPY into an empty `contacts_copy` of a fresh copy of the seeded database.
    async fn limit(&mut self, data: &Prepared, round: usize) -> anyhow::Result<(Measurement, i64)> {
        let limit_db = self.copy(data, &format!("wp{round}_limit")).await?;
        let url = self.services.url_of(&limit_db);
        let client = contact_import::store::connect::client(&url).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE {LIMIT_TABLE} (LIKE contacts INCLUDING ALL)"
            ))
            .await?;
        let limit = self.measure(data, &limit_db, Strategy::PlainCopy).await?;
        let limit_rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {LIMIT_TABLE}"), &[])
            .await?
            .get(0);
        let e = data.shape.expected();
        // The limit copies every validated row: the upsert's writes and its 404s.
        ensure!(
            limit_rows as usize >= e.created + e.updated,
            "{limit_rows} rows copied, the upsert writes {}",
            e.created + e.updated
        );
        drop(client);
        self.drop_unless_kept(&limit_db).await;
        Ok((limit, limit_rows))
    }

    async fn measure(
        &mut self,
        data: &Prepared,
        db: &str,
        strategy: Strategy,
    ) -> anyhow::Result<Measurement> {
        let c = self.args.base_concurrency;
        let mode = format!("{strategy:?}_c{c}").to_lowercase();
        let url = self.services.url_of(db);
        let shape = data.shape;
        let m = direct::run(
            &self.services,
            &url,
            &data.batches,
            shape.expected(),
            strategy,
            usize::from(c),
            None,
        )
        .await
        .with_context(|| format!("{mode} at {} contacts", shape.contacts))?;
        if strategy != Strategy::PlainCopy {
            direct::verify_rows(&url, shape.seeded(), shape.expected(), data.batches.len()).await?;
        }
        eprintln!("bench: {}", report::one_line(&mode, &m));
        Ok(m)
    }
}

/// Sums a round into the total: contacts/s and CPU per 1k then cover every round.
fn add(total: &mut Measurement, m: Measurement) {
    total.contacts += m.contacts;
    total.batches += m.batches;
    total.wall += m.wall;
    total.latencies.extend(m.latencies);
    total.cpu.add(&m.cpu);
}

/// What both paths must leave alike: every contact but its timestamps, and every batch's
/// status and counts (results hold the timestamps).
async fn fingerprint(url: &str) -> anyhow::Result<(i64, String, String)> {
    let client = contact_import::store::connect::client(url).await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM contacts),
                    (SELECT md5(string_agg((to_jsonb(c) - 'created_at' - 'updated_at')::text,
                                           E'\\n' ORDER BY org_id, contact_id))
                     FROM contacts c),
                    (SELECT md5(string_agg(concat_ws(',', org_id, batch_id, status, received,
                                                     created, updated, failed),
                                           E'\\n' ORDER BY org_id, batch_id))
                     FROM import_batches)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// The limit's batch: its validated rows by binary COPY, in a transaction of its own.
pub async fn plain_copy(pool: &Pool, batch: &ValidatedBatch) -> anyhow::Result<Expected> {
    let steps = upsert::steps(batch);
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&staging::copy_into_table(LIMIT_TABLE))
        .await?;
    staging::copy_rows(&client, &statement, Lead::Org(batch.org_id()), &steps).await?;
    let mut counts = Expected {
        received: steps.len(),
        ..Default::default()
    };
    for step in &steps {
        match step {
            Step::Write(w) if w.is_update => counts.updated += 1,
            Step::Write(_) => counts.created += 1,
            Step::Failed(_) => counts.failed += 1,
        }
    }
    Ok(counts)
}

/// The comparison as a Markdown table, for the end of the run's output.
pub fn markdown(rows: &[Comparison]) -> String {
    let mut s = String::new();
    for r in rows {
        let _ = writeln!(
            s,
            "### Write path: COPY staging vs unnest ({} contacts, concurrency {}, ceiling mode, {} round(s) summed)\n",
            r.contacts, r.concurrency, r.rounds
        );
        let _ = writeln!(
            s,
            "| path | wall s | contacts/s | PostgreSQL CPU s per 1k | bench CPU s per 1k | other load s per 1k | ÷ unnest | ÷ plain-COPY limit |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let limit = r.limit.contacts_per_s();
        let base = r.unnest.contacts_per_s();
        for (name, m) in [
            ("unnest (today)", &r.unnest),
            ("COPY staging", &r.copy),
            ("plain COPY, no merge (limit)", &r.limit),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {:.2} | {:.0} | {} | {:.3} | {:.3} | {:.2} | {:.0}% |",
                m.wall.as_secs_f64(),
                m.contacts_per_s(),
                m.per_1k(m.cpu.postgres)
                    .map_or("–".into(), |v| format!("{v:.4}")),
                m.per_1k(Some(m.cpu.bench)).unwrap_or(0.0),
                m.per_1k(Some(m.cpu.others())).unwrap_or(0.0),
                m.contacts_per_s() / base,
                100.0 * m.contacts_per_s() / limit,
            );
        }
        let _ = writeln!(
            s,
            "\ncontacts/s counts every contact of the dataset (invalid ones included) for all three; \
             the limit copied {} rows per round.",
            r.limit_rows
        );
        if let Some(e2e) = r.e2e {
            let _ = writeln!(
                s,
                "End to end (same run, full results): {e2e:.0} contacts/s = {:.0}% of the plain-COPY limit.",
                100.0 * e2e / limit
            );
        }
        s.push('\n');
    }
    s
}
