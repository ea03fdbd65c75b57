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
pub use crate::support::servers::{Postgres, RabbitCluster, RabbitMq};
use std::path::{Path, PathBuf};

/// One scenario's RabbitMQ (one node, or a cluster of several) and PostgreSQL.
pub struct Cluster {
    pub dir: PathBuf,
    pub rabbits: RabbitCluster,
    pub postgres: Postgres,
}

impl Cluster {
    /// Starts both services (concurrently) in a new folder named after the scenario, with
    /// a RabbitMQ cluster of `nodes` nodes (`1`: one standalone node, as every scenario but
    /// the cluster ones has).
    pub async fn start(scenario: &str, nodes: usize) -> Self {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
        std::fs::create_dir_all(&base).unwrap();
        reap_abandoned(&base);
        let dir = base.join(format!("{scenario}-{}", random_u64() % 1_000_000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
        let rabbits = async {
            match nodes {
                1 => RabbitCluster::single(RabbitMq::start(dir.join("rabbitmq")).await),
                _ => RabbitCluster::start(dir.join("rabbitmq-cluster"), nodes).await,
            }
        };
        let (rabbits, postgres) = tokio::join!(rabbits, Postgres::start(dir.join("postgres")));
        Self {
            dir,
            rabbits,
            postgres,
        }
    }

    /// The (first) RabbitMQ node.
    pub fn rabbit(&self) -> &RabbitMq {
        self.rabbits.node(0)
    }

    pub fn rabbit_mut(&mut self) -> &mut RabbitMq {
        self.rabbits.node_mut(0)
    }

    /// `AMQP_URL` for every node of the scenario's broker.
    pub fn amqp_url(&self) -> String {
        self.rabbits.url_list()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.rabbits.kill_now();
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
