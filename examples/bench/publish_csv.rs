//! What a user times: the real `contact-import publish FILE --org ORG --wait --report
//! failed.csv` of a generated Webex CSV file, against one running worker, on an empty
//! contacts table, with `publish`'s defaults (`--batch-size 1000`, `--max-in-flight 8`).
//!
//! Wall time is from spawning `publish` to its exit (file reads, splitting, every result and
//! the report included: all the user waits for). The producer's peak RSS is its VmHWM,
//! read every 10 ms while it runs (it is gone once it exits), with its VmRSS kept every
//! second to show whether it grows with the rows. The run fails unless the report lists
//! exactly the generated bad rows and the database holds exactly the good ones.

use crate::dataset::ORG;
use crate::services::Services;
use crate::stats::CpuUse;
use crate::support::broker::names;
use crate::support::env::broker_env;
use crate::support::process::tail;
use crate::support::worker::{Worker, WorkerSettings};
use crate::webex_csv::CsvFile;
use crate::{e2e, procfs};
use anyhow::{Context, bail, ensure};
use contact_import::broker::topology;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// How often the producer's memory is read while it runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

pub struct Config<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub concurrency: u16,
    pub prefetch: Option<u16>,
    pub tag: &'a str,
    pub log_dir: &'a Path,
    pub csv: &'a Path,
    pub report: &'a Path,
}

/// One run of `publish --wait` over the file.
#[derive(Debug, Clone, Default)]
pub struct CsvRun {
    pub rows: usize,
    pub bad_rows: usize,
    pub file_bytes: u64,
    /// Spawn of `publish` to its exit.
    pub wall: Duration,
    /// The producer's VmHWM, KiB, as last read before it exited.
    pub producer_peak_rss_kib: u64,
    /// The producer's VmRSS, KiB, once a second: seconds since the spawn, KiB.
    pub producer_rss: Vec<(f64, u64)>,
    pub producer_cpu: Option<f64>,
    /// The worker's VmHWM, KiB, at the end (start-up included).
    pub worker_peak_rss_kib: u64,
    /// Worker, PostgreSQL, RabbitMQ, this bench and the machine during the wall time.
    pub cpu: CpuUse,
    /// Rows of `--report`, and by error code.
    pub report_rows: usize,
    pub report_codes: BTreeMap<String, usize>,
    pub database_rows: usize,
    /// `publish`'s closing summary line.
    pub summary: String,
}

impl CsvRun {
    pub fn contacts_per_s(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64()
    }

    pub fn per_1k(&self, seconds: Option<f64>) -> Option<f64> {
        seconds.map(|s| s * 1_000.0 / self.rows as f64)
    }

    /// Busy CPU of the machine not accounted to the worker, the servers, the bench or the
    /// producer: other work sharing the machine.
    pub fn other_load(&self) -> f64 {
        (self.cpu.others() - self.producer_cpu.unwrap_or(0.0)).max(0.0)
    }
}

pub async fn run(services: &Services, cfg: &Config<'_>, file: &CsvFile) -> anyhow::Result<CsvRun> {
    // Fresh names, so nothing of an earlier run is consumed or answered.
    let broker = names(&services.amqp_url, &format!("{}.", cfg.tag), 5);
    let connection = contact_import::broker::connect(&services.amqp_url, "bench csv").await?;
    topology::declare(&connection, &broker).await?;

    let mut settings = WorkerSettings::new(
        cfg.bin.to_owned(),
        broker.clone(),
        cfg.database_url.to_owned(),
        cfg.log_dir.to_owned(),
    );
    settings.concurrency = cfg.concurrency;
    settings.prefetch = cfg.prefetch;
    let worker = Worker::spawn(&format!("{}-worker", cfg.tag), &settings).await?;

    let log = cfg.log_dir.join(format!("{}-publish.log", cfg.tag));
    let out = cfg.log_dir.join(format!("{}-publish.out", cfg.tag));
    let mut command = Command::new(cfg.bin);
    command
        .arg("publish")
        .arg(cfg.csv)
        .args(["--org", ORG, "--wait", "--report"])
        .arg(cfg.report)
        .envs(broker_env(&broker))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);

    let cpu_before = cpu_now(services, worker.pid);
    let started = Instant::now();
    let mut child = command.spawn().context("starting contact-import publish")?;
    let pid = child.id().context("publish has no pid")?;
    let mut run = CsvRun {
        rows: file.rows,
        bad_rows: file.bad_rows.len(),
        file_bytes: file.bytes,
        ..Default::default()
    };
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut next_rss = Duration::ZERO;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = tick.tick() => {
                // Each read may find the process gone: the last good one stands.
                if let Some(kib) = procfs::peak_rss_kib(pid) {
                    run.producer_peak_rss_kib = run.producer_peak_rss_kib.max(kib);
                }
                if let Some(cpu) = procfs::cpu_seconds(pid) {
                    run.producer_cpu = Some(cpu);
                }
                let at = started.elapsed();
                if at >= next_rss
                    && let Some(kib) = procfs::rss_kib(pid)
                {
                    run.producer_rss.push((at.as_secs_f64(), kib));
                    next_rss += Duration::from_secs(1);
                }
            }
        }
    };
    run.wall = started.elapsed();
    let cpu_after = cpu_now(services, worker.pid);
    run.cpu = e2e::diff(&cpu_before, &cpu_after);
    run.worker_peak_rss_kib = procfs::peak_rss_kib(worker.pid).unwrap_or(0);
    worker.stop().await?;
    crate::support::broker::delete_topology(&connection, &broker).await;
    let _ = connection.close(200, "bench done".into()).await;

    // Exit status 1 is "not every contact was stored": right, a tenth of the rows are bad.
    // Anything else (2: the command failed) fails the scenario.
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    if status.code() != Some(1) {
        bail!(
            "publish exited with {status}, expected 1 (some contacts failed); stdout:\n{stdout}\nlog ({}):\n{}",
            log.display(),
            tail(&log, 30)
        );
    }
    run.summary = stdout
        .lines()
        .find(|l| l.starts_with("batches:"))
        .unwrap_or_default()
        .to_owned();
    check_report(cfg.report, file, &mut run)?;
    run.database_rows = check_database(cfg.database_url, file).await?;
    Ok(run)
}

/// The report lists every bad row once and nothing else, by the row numbers the generator
/// kept.
fn check_report(path: &Path, file: &CsvFile, run: &mut CsvRun) -> anyhow::Result<()> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("the report has no {name} column"))
    };
    let (row_at, code_at) = (column("row")?, column("errorCode")?);
    let mut rows = Vec::with_capacity(file.bad_rows.len());
    for record in reader.records() {
        let record = record?;
        let row: u64 = record[row_at]
            .parse()
            .with_context(|| format!("a report row without a row number: {record:?}"))?;
        rows.push(row);
        *run.report_codes
            .entry(record[code_at].to_owned())
            .or_default() += 1;
    }
    run.report_rows = rows.len();
    rows.sort_unstable();
    if rows != file.bad_rows {
        let missing = file
            .bad_rows
            .iter()
            .filter(|r| rows.binary_search(r).is_err());
        let extra = rows
            .iter()
            .filter(|r| file.bad_rows.binary_search(r).is_err());
        bail!(
            "the report lists {} rows, {} bad rows were generated; missing e.g. {:?}, unexpected e.g. {:?}",
            rows.len(),
            file.bad_rows.len(),
            missing.take(5).collect::<Vec<_>>(),
            extra.take(5).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The database holds exactly the good rows, from one recorded batch per 1,000 rows.
async fn check_database(database_url: &str, file: &CsvFile) -> anyhow::Result<usize> {
    let client = contact_import::store::connect::client(database_url).await?;
    let contacts: i64 = client
        .query_one("SELECT count(*) FROM contacts", &[])
        .await?
        .get(0);
    let batches: i64 = client
        .query_one("SELECT count(*) FROM import_batches", &[])
        .await?
        .get(0);
    ensure!(
        contacts as usize == file.good_rows(),
        "{contacts} contacts in the database, expected the {} good rows",
        file.good_rows()
    );
    // publish's default --batch-size.
    let expected_batches = file.rows.div_ceil(1000);
    ensure!(
        batches as usize == expected_batches,
        "{batches} batches recorded, expected {expected_batches}"
    );
    Ok(contacts as usize)
}

fn cpu_now(services: &Services, worker: u32) -> CpuUse {
    CpuUse {
        worker: procfs::cpu_seconds(worker),
        postgres: services.postgres_cpu(),
        broker: services.broker_cpu(),
        bench: procfs::own_cpu_seconds(),
        machine: procfs::machine_busy_seconds(),
    }
}
