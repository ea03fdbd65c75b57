//! A private RabbitMQ node and a private PostgreSQL cluster for one scenario (see
//! `support::servers`), in a folder of their own under `target/tmp/faults/`, on free loopback
//! ports, so that a test can stop, kill and restart them without disturbing anything else.
//!
//! `Drop` kills them when a test ends or panics, and [`reap_abandoned`] cleans up after a
//! run that could not.
//! The folder (logs of the services and the workers) is removed after a passing test and
//! kept after a failing one, or always with `FAULTS_KEEP=1` (until the next run reaps it).

use crate::support::ports::random_u64;
use crate::support::servers::reap_abandoned;
pub use crate::support::servers::{Postgres, RabbitMq};
use std::path::{Path, PathBuf};

/// One scenario's RabbitMQ and PostgreSQL.
pub struct Cluster {
    pub dir: PathBuf,
    pub rabbit: RabbitMq,
    pub postgres: Postgres,
}

impl Cluster {
    /// Starts both services (concurrently) in a new folder named after the scenario.
    pub async fn start(scenario: &str) -> Self {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
        std::fs::create_dir_all(&base).unwrap();
        reap_abandoned(&base);
        let dir = base.join(format!("{scenario}-{}", random_u64() % 1_000_000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
        let (rabbit, postgres) = tokio::join!(
            RabbitMq::start(dir.join("rabbitmq")),
            Postgres::start(dir.join("postgres"))
        );
        Self {
            dir,
            rabbit,
            postgres,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.rabbit.kill_now();
        self.postgres.kill_now();
        if std::thread::panicking() || std::env::var_os("FAULTS_KEEP").is_some() {
            eprintln!(
                "services' folder kept for diagnosis: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
