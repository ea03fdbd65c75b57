//! TLS against real servers: each test starts its own RabbitMQ with only a TLS listener
//! and/or its own PostgreSQL that rejects TCP without TLS (`support::servers`), with
//! certificates made for the test (`support::certs`: a CA, a server certificate it signs for
//! `localhost` only, and an unrelated CA), and runs the real `contact-import` against them.

use crate::common::{ORG, batch};
use crate::support::broker::{self as amqp, confirm_channel, default_names, names};
use crate::support::certs::Certs;
use crate::support::env;
use crate::support::ports::random_u64;
use crate::support::process::tail;
use crate::support::servers::{Postgres, RabbitMq, reap_abandoned};
use crate::support::worker::{Worker, WorkerSettings};
use contact_import::broker::topology;
use futures_lite::StreamExt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio::time::Instant;

const UNKNOWN_CA: &str = "TLS certificate error: the server's certificate is not signed by a \
                          trusted certificate authority (wrong CA?)";
const WRONG_HOST: &str = "TLS certificate error: the server's certificate is not valid for the \
                          host name connected to";
const RECONNECTING: &str = "broker session lost; reconnecting";
/// How long a refused worker is watched.
const WATCH: Duration = Duration::from_secs(30);

/// One test's certificates and TLS servers, in a folder under `target/tmp/tls/` that is
/// removed after a passing test and kept after a failing one (with the workers' logs).
struct Servers {
    dir: PathBuf,
    certs: Certs,
    rabbit: Option<RabbitMq>,
    postgres: Option<Postgres>,
}

impl Servers {
    async fn start(test: &str, rabbit: bool, postgres: bool) -> Self {
        let base = env::target_tmpdir().join("tls");
        std::fs::create_dir_all(&base).unwrap();
        reap_abandoned(&base);
        let dir = base.join(format!("{test}-{}", random_u64() % 1_000_000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
        let certs = Certs::make(&dir.join("certs"));
        let (rabbit, postgres) = tokio::join!(
            async {
                match rabbit {
                    true => Some(RabbitMq::start_tls(dir.join("rabbitmq"), &certs).await),
                    false => None,
                }
            },
            async {
                match postgres {
                    true => Some(Postgres::start_tls(dir.join("postgres"), &certs).await),
                    false => None,
                }
            }
        );
        Self {
            dir,
            certs,
            rabbit,
            postgres,
        }
    }

    fn rabbit(&self) -> &RabbitMq {
        self.rabbit.as_ref().expect("this test started no RabbitMQ")
    }

    fn postgres(&self) -> &Postgres {
        self.postgres
            .as_ref()
            .expect("this test started no PostgreSQL")
    }

    fn path(&self, file: &Path) -> String {
        file.display().to_string()
    }

    /// A worker for the default topology of `amqp_url`, its log in this test's folder.
    fn settings(&self, amqp_url: &str, database_url: &str) -> WorkerSettings {
        WorkerSettings::new(
            env::bin(),
            default_names(amqp_url),
            database_url.to_owned(),
            self.dir.clone(),
        )
    }

    /// `contact-import migrate` with `DATABASE_URL` and further variables, run to its end.
    /// `HOME` is the test's folder: libpq's default `~/.postgresql/root.crt` is not there.
    async fn migrate(&self, database_url: &str, env: &[(&str, &str)]) -> Output {
        tokio::process::Command::new(env::bin())
            .arg("migrate")
            .env("DATABASE_URL", database_url)
            .env("HOME", &self.dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .await
            .expect("run contact-import migrate")
    }

    /// Publishes a Webex batch over the TLS broker (the test's own connection, verified
    /// against the CA) and returns its result; the worker must be consuming.
    async fn import_one_batch(&self, message_id: &str, name: &str) -> serde_json::Value {
        let broker = default_names(&self.rabbit().url());
        let connection = contact_import::broker::connect(&broker.amqp_url, "tls test")
            .await
            .expect("the test connects to the TLS broker");
        let channel = confirm_channel(&connection).await.unwrap();
        topology::declare(&connection, &broker).await.unwrap();
        let mut results = amqp::subscribe_results(&channel, &broker).await.unwrap();
        let body = serde_json::to_vec(&batch(ORG, json!([{ "displayName": name }]))).unwrap();
        let confirm =
            amqp::publish_batch(&channel, &broker, &body, amqp::webex_properties(message_id))
                .await
                .unwrap()
                .await
                .unwrap();
        assert!(amqp::routed(confirm), "the batch was not routed");
        let delivery = tokio::time::timeout(WATCH, results.next())
            .await
            .expect("no result within 30 s")
            .expect("results consumer ended")
            .unwrap();
        serde_json::from_slice(&delivery.data).expect("result is JSON")
    }

    async fn display_names(&self) -> Vec<String> {
        self.postgres()
            .client()
            .await
            .query("SELECT display_name FROM contacts ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(rabbit) = self.rabbit.as_mut() {
            rabbit.kill_now();
        }
        if let Some(postgres) = self.postgres.as_mut() {
            postgres.kill_now();
        }
        if std::thread::panicking() {
            eprintln!("TLS test folder kept for diagnosis: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Asserts that `migrate` failed and that its error output says `problem`.
fn assert_failed_with(output: &Output, problem: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "migrate succeeded; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(problem),
        "migrate's error does not say {problem:?}:\n{stderr}"
    );
}

/// Watches a worker that must never become ready until its log holds `problem` in at
/// least `attempts` reconnect lines; returns the log.
async fn watch_refused_broker(worker: &mut Worker, problem: &str, attempts: usize) -> String {
    let deadline = Instant::now() + WATCH;
    loop {
        let ready = worker.try_get("/readyz").await.map(|(status, _)| status);
        assert_ne!(ready, Some(200), "the worker became ready");
        worker.assert_running();
        let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
        let refused = log
            .lines()
            .filter(|line| line.contains(RECONNECTING) && line.contains(problem))
            .count();
        if refused >= attempts {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{refused} of {attempts} reconnect attempts logged {problem:?} within {WATCH:?}; log:\n{}",
            tail(&worker.log, 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches a worker (on the shared plain broker) whose database refuses it: `/readyz` must
/// answer 503 naming `problem` (in its body or the worker's log) and never 200.
async fn watch_refused_database(worker: &mut Worker, problem: &str) {
    let deadline = Instant::now() + WATCH;
    loop {
        worker.assert_running();
        if let Some((status, body)) = worker.try_get("/readyz").await {
            assert_ne!(status, 200, "the worker became ready: {body}");
            let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
            if status == 503 && (body.contains(problem) || log.contains(problem)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not report {problem:?} within {WATCH:?}; log:\n{}",
            tail(&worker.log, 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A worker on the shared (plain) broker, with names of its own, and `database_url`.
fn worker_on_shared_broker(servers: &Servers, database_url: &str) -> WorkerSettings {
    let prefix = format!("tls{}.", random_u64() % 1_000_000_000);
    WorkerSettings::new(
        env::bin(),
        names(&env::amqp_url(), &prefix, 5),
        database_url.to_owned(),
        servers.dir.clone(),
    )
}

#[tokio::test]
async fn a_batch_is_imported_over_tls_to_both_the_broker_and_the_database() {
    let servers = Servers::start("both", true, true).await;
    let amqp_url = format!(
        "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
        servers.rabbit().port,
        servers.path(&servers.certs.ca)
    );
    let database_url = servers.postgres().url_at(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            servers.path(&servers.certs.ca)
        ),
    );
    let migrated = servers.migrate(&database_url, &[]).await;
    assert!(
        migrated.status.success(),
        "migrate over TLS failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let worker = Worker::spawn("both", &servers.settings(&amqp_url, &database_url))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let result = servers.import_one_batch("tls-1", "Ada Lovelace").await;
    assert_eq!(
        (result["batchId"].as_str(), result["status"].as_str()),
        (Some("tls-1"), Some("succeeded")),
        "{result}"
    );
    assert_eq!(servers.display_names().await, ["Ada Lovelace"]);
    assert!(worker.terminate().await.success());
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_is_refused_and_retried() {
    let servers = Servers::start("broker-ca", true, false).await;
    let amqp_url = servers.rabbit().tls_url(
        "localhost",
        &format!("cacertfile={}", servers.path(&servers.certs.other_ca)),
    );
    let settings = servers.settings(&amqp_url, &env::database_url());
    let mut worker = Worker::spawn_unready("broker-ca", &settings).unwrap();
    watch_refused_broker(&mut worker, UNKNOWN_CA, 2).await;
    assert!(worker.terminate().await.success());
}

#[tokio::test]
async fn a_broker_certificate_for_another_host_name_is_refused() {
    let servers = Servers::start("broker-host", true, false).await;
    let ca = servers.path(&servers.certs.ca);
    // The certificate is for `localhost`: neither the address nor another name matches.
    for (name, url) in [
        (
            "broker-ip",
            servers
                .rabbit()
                .tls_url("127.0.0.1", &format!("cacertfile={ca}")),
        ),
        (
            "broker-sni",
            servers.rabbit().tls_url(
                "localhost",
                &format!("cacertfile={ca}&server_name_indication=other.example"),
            ),
        ),
    ] {
        let settings = servers.settings(&url, &env::database_url());
        let mut worker = Worker::spawn_unready(name, &settings).unwrap();
        watch_refused_broker(&mut worker, WRONG_HOST, 1).await;
        assert!(worker.terminate().await.success());
    }
}

/// The database URLs whose certificate check fails, and how: the wrong CA, and the right CA
/// with the address instead of the name the certificate is for.
fn refused_database_urls(servers: &Servers) -> [(&'static str, String, &'static str); 2] {
    let verify_full = |ca: &Path| format!("sslmode=verify-full&sslrootcert={}", ca.display());
    [
        (
            "db-ca",
            servers
                .postgres()
                .url_at("localhost", &verify_full(&servers.certs.other_ca)),
            UNKNOWN_CA,
        ),
        (
            "db-host",
            servers
                .postgres()
                .url_at("127.0.0.1", &verify_full(&servers.certs.ca)),
            WRONG_HOST,
        ),
    ]
}

#[tokio::test]
async fn migrate_refuses_a_database_certificate_from_another_ca() {
    let servers = Servers::start("db-ca", false, true).await;
    let [(_, url, problem), _] = refused_database_urls(&servers);
    assert_failed_with(&servers.migrate(&url, &[]).await, problem);
}

#[tokio::test]
async fn migrate_refuses_a_database_certificate_for_another_host_name() {
    let servers = Servers::start("db-host", false, true).await;
    let [_, (_, url, problem)] = refused_database_urls(&servers);
    assert_failed_with(&servers.migrate(&url, &[]).await, problem);
}

#[tokio::test]
async fn a_worker_whose_database_certificate_is_refused_never_becomes_ready() {
    let servers = Servers::start("db-worker", false, true).await;
    for (name, url, _) in refused_database_urls(&servers) {
        let settings = worker_on_shared_broker(&servers, &url);
        let mut worker = Worker::spawn_unready(name, &settings).unwrap();
        // Not ready because of the database (which problem: the test below).
        watch_refused_database(&mut worker, "no database connection").await;
        assert!(worker.terminate().await.success());
    }
}

#[tokio::test]
async fn a_worker_whose_database_certificate_is_refused_says_why() {
    let servers = Servers::start("db-why", false, true).await;
    for (name, url, problem) in refused_database_urls(&servers) {
        let settings = worker_on_shared_broker(&servers, &url);
        let mut worker = Worker::spawn_unready(name, &settings).unwrap();
        watch_refused_database(&mut worker, problem).await;
        assert!(worker.terminate().await.success());
    }
}

#[tokio::test]
async fn plaintext_to_a_tls_only_database_is_refused_by_the_server() {
    let servers = Servers::start("db-plain", false, true).await;
    let url = servers.postgres().url_at("localhost", "sslmode=disable");
    // pg_hba.conf's `hostnossl … reject`, in the server's words.
    assert_failed_with(&servers.migrate(&url, &[]).await, "no encryption");
}

#[tokio::test]
async fn sslmode_require_without_a_root_certificate_connects_encrypted_and_unverified() {
    let servers = Servers::start("db-require", false, true).await;
    // Neither the address nor a CA could verify the certificate; `require` does not ask to.
    let url = servers.postgres().url_at("127.0.0.1", "sslmode=require");
    let migrated = servers.migrate(&url, &[]).await;
    assert!(
        migrated.status.success(),
        "migrate with sslmode=require failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // The server takes TCP only with TLS, so the migrations came over TLS.
    let tables: i64 = servers
        .postgres()
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'contacts'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "the migrations were not applied");
}

#[tokio::test]
async fn urls_given_only_as_files_are_used_and_a_url_given_twice_is_refused() {
    let servers = Servers::start("url-files", true, true).await;
    let amqp_file = servers.dir.join("amqp-url");
    let database_file = servers.dir.join("database-url");
    // As a mounted secret or `echo` writes them: with a line end.
    std::fs::write(&amqp_file, format!("{}\n", servers.rabbit().url())).unwrap();
    std::fs::write(&database_file, format!("{}\n", servers.postgres().url())).unwrap();
    let database_file_text = servers.path(&database_file);

    // Both the variable and the file: which one was meant is not guessed.
    let twice = servers
        .migrate(
            &servers.postgres().url(),
            &[("DATABASE_URL_FILE", database_file_text.as_str())],
        )
        .await;
    assert_failed_with(&twice, "--database-url-file");
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert!(stderr.contains("--database-url"), "{stderr}");

    let migrated = tokio::process::Command::new(env::bin())
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("DATABASE_URL_FILE", &database_file)
        .env("HOME", &servers.dir)
        .output()
        .await
        .unwrap();
    assert!(
        migrated.status.success(),
        "migrate with DATABASE_URL_FILE failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // The settings' URLs are not passed (the harness drops a URL given as a file); were the
    // files ignored, the worker would try the default URLs, where nothing answers.
    let bogus_amqp = "amqp://nobody:nothing@127.0.0.1:1/%2f";
    let bogus_database = "postgres://nobody@127.0.0.1:1/nothing";
    let settings = servers
        .settings(bogus_amqp, bogus_database)
        .env("AMQP_URL_FILE", amqp_file.display())
        .env("DATABASE_URL_FILE", database_file.display());
    let worker = Worker::spawn("url-files", &settings)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let result = servers.import_one_batch("files-1", "Grace Hopper").await;
    assert_eq!(
        (result["batchId"].as_str(), result["status"].as_str()),
        (Some("files-1"), Some("succeeded")),
        "{result}"
    );
    assert_eq!(servers.display_names().await, ["Grace Hopper"]);
    assert!(worker.terminate().await.success());
}
