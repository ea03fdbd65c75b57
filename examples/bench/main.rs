//! End-to-end benchmark of `contact-import` against real RabbitMQ and PostgreSQL.
//!
//! ```sh
//! scripts/bench                      # services up, then the default run (10k and 100k contacts)
//! scripts/bench --contacts 1000000 --write-docs
//! cargo run --release --example bench -- --help
//! ```
//!
//! For every contact count it generates realistic Webex batches, seeds the contacts their
//! updates target, and measures three modes on copies of the same seeded database: end to
//! end (publish → real worker process → result), the ceiling (`Store::apply_batch` straight
//! into PostgreSQL) and the naive baseline (one `INSERT … ON CONFLICT` per contact). Then it
//! sweeps the worker's concurrency (saturated, and paced at a fraction of the measured
//! maximum for latency), compares one worker with several on one queue, and profiles one
//! batch's transaction. With `--csv`, it also times what a user runs: `contact-import
//! publish` of a generated CSV file with `--wait --report` against one worker, next to the
//! prefilled batches. See docs/benchmarks.md for how to read the numbers.

mod chart;
mod console;
mod dataset;
mod direct;
mod e2e;
mod naive;
mod noisy;
mod perf;
mod procfs;
mod profile;
mod publish_csv;
mod report;
mod services;
mod stats;
#[path = "../../tests/support/mod.rs"]
mod support;
mod webex_csv;

use anyhow::{Context, bail};
use clap::Parser;
use contact_import::result::ResultDetail;
use dataset::{Batch, Shape};
use direct::Strategy;
use report::{Report, ScalingRow, SweepRow};
use services::Services;
use stats::Measurement;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bench",
    about = "End-to-end benchmark of contact-import against the RabbitMQ and PostgreSQL of AMQP_URL and DATABASE_URL"
)]
pub struct Args {
    /// Contact counts to measure (end to end, ceiling, naive), e.g. 10000,100000,1000000.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub contacts: Vec<usize>,
    /// Contacts per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Worker concurrency (CONTACT_IMPORT_CONCURRENCY) of the contact-count runs; the
    /// ceiling and the naive baseline use as many concurrent transactions.
    #[arg(long, default_value_t = 4)]
    pub base_concurrency: u16,
    /// Concurrency sweep: each value is measured saturated and paced (see --rate).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub concurrency: Vec<u16>,
    /// Contacts of each sweep, latency and worker-count run.
    #[arg(long, default_value_t = 100_000)]
    pub sweep_contacts: usize,
    /// Worker processes on one queue to compare with a single one, e.g. 2 or 2,4: one worker
    /// is measured first, then each count above 1 (only 0 or 1: skip).
    #[arg(long, value_delimiter = ',', default_value = "2")]
    pub workers: Vec<usize>,
    /// Latency runs publish at this fraction of the throughput measured saturated.
    #[arg(long, default_value_t = 0.5)]
    pub rate: f64,
    /// Prefetch of the worker (default: the worker's, twice its concurrency).
    #[arg(long)]
    pub prefetch: Option<u16>,
    /// Share of invalid contacts in each batch.
    #[arg(long, default_value_t = 0.1)]
    pub invalid: f64,
    /// Share of updates of existing contacts in each batch.
    #[arg(long, default_value_t = 0.2)]
    pub updates: f64,
    /// Seed of the generator: the same seed gives the same batches.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skip the naive baseline (slow at a million contacts).
    #[arg(long)]
    pub skip_naive: bool,
    /// Skip the concurrency sweep.
    #[arg(long)]
    pub skip_sweep: bool,
    /// Skip the profile of one batch (EXPLAIN ANALYZE and the time per step).
    #[arg(long)]
    pub skip_profile: bool,
    /// Record the machine with `perf` (linux-perf) during the ceiling and the saturated
    /// end-to-end run of the sweep at --base-concurrency, and summarise it in the profile.
    #[arg(long)]
    pub perf: bool,
    /// Write docs/benchmarks.md (the generated part) and the charts next to it.
    #[arg(long)]
    pub write_docs: bool,
    /// The worker binary (default: build target/release/contact-import first).
    #[arg(long)]
    pub worker_bin: Option<PathBuf>,
    /// Keep the run's databases instead of dropping them.
    #[arg(long)]
    pub keep_databases: bool,
    /// Also time `contact-import publish FILE --wait --report failed.csv` of a generated
    /// Webex CSV file of --csv-rows rows (10% bad) against one worker, after the contact
    /// counts (whose end-to-end runs it is compared with).
    #[arg(long)]
    pub csv: bool,
    /// Rows of the --csv file.
    #[arg(long, default_value_t = 1_000_000)]
    pub csv_rows: usize,
    /// Only the noisy-neighbour mode (noisy.rs): a backlog of the first --contacts value,
    /// one worker at --base-concurrency, probes while it drains; with the lanes on and off,
    /// with and without probes, and with the backlog published to a running worker, each on a
    /// fresh copy of the seeded database.
    #[arg(long)]
    pub noisy_neighbour: bool,
    /// Only the console mode (console.rs): --console-batches processed batches and
    /// --console-letters dead letters generated in the database, then each page timed.
    #[arg(long)]
    pub console: bool,
    /// Processed batches of the --console history.
    #[arg(long, default_value_t = 1_000_000)]
    pub console_batches: u64,
    /// Dead-letter records of the --console history.
    #[arg(long, default_value_t = 100_000)]
    pub console_letters: u64,
    /// Requests per page of --console.
    #[arg(long, default_value_t = 200)]
    pub console_requests: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!("build the benchmark in release mode: cargo run --release --example bench");
    }
    if args.batch_size == 0 || args.contacts.contains(&0) {
        bail!("--batch-size and --contacts must be positive");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = match &args.worker_bin {
        Some(bin) => bin.clone(),
        None => build_worker(root)?,
    };
    let log_dir = root.join("target/bench");
    std::fs::create_dir_all(&log_dir)?;
    let services = Services::connect().await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut bench = Bench {
        args: args.clone(),
        services,
        bin,
        log_dir,
        run_id,
        databases: Vec::new(),
        report: Report::new(&args),
    };
    let outcome = bench.run_all().await;
    if !args.keep_databases {
        for db in std::mem::take(&mut bench.databases) {
            bench.services.drop_database(&db).await;
        }
    }
    outcome?;
    if args.noisy_neighbour || args.console {
        // Its table is printed; docs/benchmarks.md's generated part is left as it is.
        return Ok(());
    }
    let report = &mut bench.report;
    report.postgres_version = bench.services.postgres_version.clone();
    report.rabbitmq_version = bench.services.rabbitmq_version.clone();
    let text = report.markdown(&args);
    println!("\n{text}");
    if args.write_docs {
        let docs = root.join("docs");
        report::write_docs(&docs, &text)?;
        chart::write(&docs, report)?;
        println!("bench: wrote docs/benchmarks.md and its charts");
    }
    Ok(())
}

/// Builds the worker binary in release mode, as the tests build theirs.
fn build_worker(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "contact-import",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release --bin contact-import failed");
    }
    // Next to this example: target/release/examples/bench → target/release/contact-import.
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("where is target/release?")?;
    Ok(release.join("contact-import"))
}

struct Bench {
    args: Args,
    services: Services,
    bin: PathBuf,
    log_dir: PathBuf,
    run_id: String,
    databases: Vec<String>,
    report: Report,
}

/// A dataset with its seeded template database.
struct Prepared {
    shape: Shape,
    batches: Vec<Batch>,
    template: String,
}

impl Bench {
    async fn run_all(&mut self) -> anyhow::Result<()> {
        if self.args.noisy_neighbour {
            return self.noisy_neighbour().await;
        }
        if self.args.console {
            let name = format!("bench_console_{}", self.run_id);
            self.databases.push(name.clone());
            let cfg = console::Config {
                bin: &self.bin,
                database: &name,
                log_dir: &self.log_dir,
                batches: self.args.console_batches,
                letters: self.args.console_letters,
                requests: self.args.console_requests,
            };
            let table = console::run(&self.services, &cfg).await?;
            println!("\n{table}");
            return Ok(());
        }
        let mut counts = self.args.contacts.clone();
        counts.sort_unstable();
        counts.dedup();
        let mut sweep = None;
        for &n in &counts {
            let data = self.prepare(n).await?;
            let row = self.scaling(&data).await?;
            self.report.scaling.push(row);
            if n == self.args.sweep_contacts {
                sweep = Some(data);
            }
        }
        if self.args.csv {
            // Right after the prefilled runs it is compared with, on the same machine state.
            self.report.csv = Some(self.publish_csv().await?);
        }
        let sweep = match sweep {
            Some(data) => data,
            None => self.prepare(self.args.sweep_contacts).await?,
        };
        if !self.args.skip_sweep {
            self.report.sweep_started = true;
            for &c in &self.args.concurrency.clone() {
                let row = self.sweep(&sweep, c).await?;
                self.report.sweep.push(row);
            }
        }
        let mut counts: Vec<usize> = self
            .args
            .workers
            .iter()
            .copied()
            .filter(|&n| n > 1)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        if !counts.is_empty() {
            let c = self.args.base_concurrency;
            let one = self.e2e(&sweep, 1, c, None, "w1").await?;
            self.report.workers = vec![(1, one)];
            for n in counts {
                let many = self.e2e(&sweep, n, c, None, &format!("w{n}")).await?;
                self.report.workers.push((n, many));
            }
        }
        if let Some(profile) = &mut self.report.profile {
            for row in &self.report.sweep {
                profile.perf.extend(row.ceiling.perf.clone());
                profile.perf.extend(row.saturated.perf.clone());
            }
        }
        Ok(())
    }

    /// The noisy-neighbour mode, printed as a table.
    async fn noisy_neighbour(&mut self) -> anyhow::Result<()> {
        let data = self.prepare(self.args.contacts[0]).await?;
        let mut runs = Vec::new();
        let modes = [
            (true, false, false),
            (true, true, false),
            (true, true, true),
            (false, true, false),
            (false, false, false),
        ];
        for (lanes, probes, live) in modes {
            let mode = format!(
                "noisy_{}_{}{}",
                if lanes { "lanes" } else { "single" },
                if probes { "probes" } else { "alone" },
                if live { "_live" } else { "" }
            );
            let db = self.copy(&data, &mode).await?;
            let cfg = noisy::Config {
                bin: &self.bin,
                database_url: &self.services.url_of(&db),
                tag: &format!("bench-{}-{mode}", self.run_id),
                log_dir: &self.log_dir,
                concurrency: self.args.base_concurrency,
                lanes,
                probes,
                live,
            };
            let run = noisy::run(&self.services, &cfg, &data.batches).await?;
            eprintln!(
                "bench: {}: {:.0} contacts/s, {} probes",
                run.label,
                run.bulk_contacts_per_s,
                run.probes.len()
            );
            runs.push(run);
            self.drop_unless_kept(&db).await;
        }
        println!("\n{}", noisy::markdown(&runs));
        Ok(())
    }

    fn shape(&self, contacts: usize) -> Shape {
        Shape {
            contacts,
            batch_size: self.args.batch_size,
            invalid: self.args.invalid,
            updates: self.args.updates,
            seed: self.args.seed,
        }
    }

    /// Generates the batches and a migrated, seeded template database for them.
    async fn prepare(&mut self, contacts: usize) -> anyhow::Result<Prepared> {
        let shape = self.shape(contacts);
        let t = Instant::now();
        let batches: Vec<Batch> = (0..shape.batches())
            .map(|b| dataset::measured_batch(&shape, "b", b))
            .collect();
        let bytes: usize = batches.iter().map(|b| b.body.len()).sum();
        eprintln!(
            "bench: {contacts} contacts in {} batches generated ({:.1} MiB of JSON) in {:.1} s",
            batches.len(),
            bytes as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64()
        );
        self.report.body_bytes_per_contact = bytes as f64 / contacts as f64;
        let template = format!("bench_{}_n{contacts}_seed", self.run_id);
        let url = self.services.create_migrated(&template, &self.bin).await?;
        self.databases.push(template.clone());
        let t = Instant::now();
        direct::seed(&url, &dataset::seed_batches(&shape)).await?;
        eprintln!(
            "bench: {} existing contacts seeded in {:.1} s",
            shape.seeded(),
            t.elapsed().as_secs_f64()
        );
        Ok(Prepared {
            shape,
            batches,
            template,
        })
    }

    /// A fresh copy of the dataset's seeded database.
    async fn copy(&mut self, data: &Prepared, mode: &str) -> anyhow::Result<String> {
        let name = format!("bench_{}_n{}_{mode}", self.run_id, data.shape.contacts);
        self.services.copy_database(&data.template, &name).await?;
        self.databases.push(name.clone());
        Ok(name)
    }

    async fn finish(&mut self, db: &str, data: &Prepared) -> anyhow::Result<()> {
        let url = self.services.url_of(db);
        direct::verify_rows(
            &url,
            data.shape.seeded(),
            data.shape.expected(),
            data.batches.len(),
        )
        .await?;
        self.drop_unless_kept(db).await;
        Ok(())
    }

    async fn drop_unless_kept(&mut self, db: &str) {
        if !self.args.keep_databases {
            self.services.drop_database(db).await;
            self.databases.retain(|d| d != db);
        }
    }

    async fn direct(
        &mut self,
        data: &Prepared,
        strategy: Strategy,
        concurrency: u16,
        perf: bool,
        profile: bool,
    ) -> anyhow::Result<Measurement> {
        let mode = format!("{strategy:?}_c{concurrency}").to_lowercase();
        let db = self.copy(data, &mode).await?;
        let perf = perf.then(|| {
            self.log_dir
                .join(format!("perf-{}-{mode}.data", self.run_id))
        });
        let m = direct::run(
            &self.services,
            &self.services.url_of(&db),
            &data.batches,
            data.shape.expected(),
            strategy,
            usize::from(concurrency),
            perf.as_deref(),
        )
        .await
        .with_context(|| format!("{mode} at {} contacts", data.shape.contacts))?;
        let url = self.services.url_of(&db);
        let shape = data.shape;
        direct::verify_rows(&url, shape.seeded(), shape.expected(), data.batches.len()).await?;
        if profile {
            // Profiled on the end state of the largest run: the table as big as it gets.
            self.report.profile = Some(profile::run(&url, &shape).await?);
        }
        self.drop_unless_kept(&db).await;
        eprintln!("bench: {}", report::one_line(&mode, &m));
        Ok(m)
    }

    async fn e2e(
        &mut self,
        data: &Prepared,
        workers: usize,
        concurrency: u16,
        pace: Option<f64>,
        label: &str,
    ) -> anyhow::Result<Measurement> {
        let mode = format!("e2e_{label}_c{concurrency}");
        let db = self.copy(data, &mode).await?;
        let url = self.services.url_of(&db);
        let tag = format!("bench{}.n{}.{mode}", self.run_id, data.shape.contacts);
        let perf = (self.args.perf
            && pace.is_none()
            && label == "max"
            && concurrency == self.args.base_concurrency
            && self.report.sweep_started)
            .then(|| self.log_dir.join(format!("perf-{tag}.data")));
        let cfg = e2e::Config {
            bin: &self.bin,
            database_url: &url,
            workers,
            concurrency,
            prefetch: self.args.prefetch,
            pace,
            tag: &tag,
            log_dir: &self.log_dir,
            perf,
            result_detail: match label {
                "summary" => ResultDetail::Summary,
                _ => ResultDetail::Full,
            },
        };
        let m = e2e::run(&self.services, &cfg, &data.batches, data.shape.expected())
            .await
            .with_context(|| format!("{mode} at {} contacts", data.shape.contacts))?;
        self.finish(&db, data).await?;
        eprintln!("bench: {}", report::one_line(&mode, &m));
        Ok(m)
    }

    async fn scaling(&mut self, data: &Prepared) -> anyhow::Result<ScalingRow> {
        let c = self.args.base_concurrency;
        let largest = self.args.contacts.iter().max() == Some(&data.shape.contacts);
        let profile = largest && !self.args.skip_profile;
        let ceiling = self
            .direct(data, Strategy::Ceiling, c, false, profile)
            .await?;
        let e2e = self.e2e(data, 1, c, None, "max").await?;
        let e2e_summary = self.e2e(data, 1, c, None, "summary").await?;
        let naive = if self.args.skip_naive {
            None
        } else {
            Some(self.direct(data, Strategy::Naive, c, false, false).await?)
        };
        Ok(ScalingRow {
            contacts: data.shape.contacts,
            e2e,
            e2e_summary,
            ceiling,
            naive,
        })
    }

    /// `publish --wait --report` of a generated CSV file, on an empty database.
    async fn publish_csv(&mut self) -> anyhow::Result<publish_csv::CsvRun> {
        let rows = self.args.csv_rows;
        let tag = format!("bench{}.csv{rows}", self.run_id);
        let csv = self
            .log_dir
            .join(format!("webex-{}-{rows}.csv", self.run_id));
        let report = self
            .log_dir
            .join(format!("failed-{}-{rows}.csv", self.run_id));
        let t = Instant::now();
        let file = webex_csv::write(&csv, rows, self.args.seed)?;
        eprintln!(
            "bench: {rows} CSV rows ({} bad) written ({:.0} MiB) in {:.1} s",
            file.bad_rows.len(),
            file.bytes as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64()
        );
        let db = format!("bench_{}_csv{rows}", self.run_id);
        let url = self.services.create_migrated(&db, &self.bin).await?;
        self.databases.push(db.clone());
        // As for the other modes' copies: the run does not pay for the migration's pages.
        self.services.checkpoint().await?;
        let cfg = publish_csv::Config {
            bin: &self.bin,
            database_url: &url,
            concurrency: self.args.base_concurrency,
            prefetch: self.args.prefetch,
            tag: &tag,
            log_dir: &self.log_dir,
            csv: &csv,
            report: &report,
        };
        let run = publish_csv::run(&self.services, &cfg, &file)
            .await
            .with_context(|| format!("publish --wait of {} ({rows} CSV rows)", csv.display()))?;
        eprintln!("bench: {}", report::csv_line(&run));
        // Checked, and regenerated from the seed by the next run: not kept.
        let _ = std::fs::remove_file(&csv);
        let _ = std::fs::remove_file(&report);
        self.drop_unless_kept(&db).await;
        Ok(run)
    }

    async fn sweep(&mut self, data: &Prepared, concurrency: u16) -> anyhow::Result<SweepRow> {
        let perf = self.args.perf && concurrency == self.args.base_concurrency;
        let ceiling = self
            .direct(data, Strategy::Ceiling, concurrency, perf, false)
            .await?;
        let saturated = self.e2e(data, 1, concurrency, None, "max").await?;
        let pace = saturated.contacts_per_s() * self.args.rate;
        let paced = self.e2e(data, 1, concurrency, Some(pace), "paced").await?;
        Ok(SweepRow {
            concurrency,
            ceiling,
            saturated,
            paced,
        })
    }
}

/// Summed CPU seconds of the worker processes.
pub fn workers_cpu(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| procfs::cpu_seconds(*pid)).sum()
}
