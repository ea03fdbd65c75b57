//! A real Prometheus (Debian's `prometheus` package) scrapes a real worker while it imports
//! batches: the counters an operator alerts on move in Prometheus itself, every query of the
//! Grafana dashboard runs there, and every alert of `deploy/prometheus/alerts.yml` evaluates
//! without error against the worker's real series.

use crate::common::{ORG, TestEnv, batch};
use crate::support::ports::free_port;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Generous: Prometheus starts, scrapes every second and evaluates rules every second, on a
/// machine that may be running every other test at the same time.
const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn prometheus_scrapes_the_worker_and_sees_its_counters_move() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    let prometheus = Prometheus::start(&worker.http_addr().to_string(), &env.id).await;

    prometheus
        .wait_for_value("up{job=\"contact-import\"}", 1.0)
        .await;
    prometheus
        .wait_for_value("sum(contact_import_batches_total)", 0.0)
        .await;

    // Three batches of two valid contacts and one invalid email: three partial results.
    for n in 0..3 {
        let contacts = json!([
            {"displayName": format!("A {n}"), "emails": [{"value": format!("a{n}@example.test")}]},
            {"displayName": format!("B {n}"), "emails": [{"value": format!("b{n}@example.test")}]},
            {"displayName": format!("C {n}"), "emails": [{"value": "not-an-email"}]},
        ]);
        env.publish_json(&format!("prom-{n}"), &batch(ORG, contacts))
            .await;
    }
    for _ in 0..3 {
        let (_, _, result) = env.next_result().await;
        assert_eq!(result["status"], "partial", "{result}");
    }

    for (query, expected) in [
        ("sum(contact_import_batches_total)", 3.0),
        (
            "sum(contact_import_batches_total{job=\"contact-import\",status=\"partial\"})",
            3.0,
        ),
        (
            "sum(contact_import_contacts_total{outcome=\"created\"})",
            6.0,
        ),
        (
            "sum(contact_import_contacts_total{outcome=\"failed\"})",
            3.0,
        ),
        ("sum(contact_import_batch_duration_seconds_count)", 3.0),
        ("sum(contact_import_batches_in_flight)", 0.0),
    ] {
        prometheus.wait_for_value(query, expected).await;
    }

    // The dashboard's queries are valid PromQL and find the worker's series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/contact-import.json"))
            .unwrap(),
    )
    .unwrap();
    let mut answered = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            let result = prometheus.query(&expr).await;
            if expr.contains("contact_import_") && !result.is_empty() {
                answered += 1;
            }
        }
    }
    assert!(
        answered >= 10,
        "only {answered} dashboard queries found the worker's series"
    );

    // Every alert evaluated against the real series, without error.
    prometheus.wait_for_rules_evaluated().await;
}

/// A private Prometheus server: its own data folder, a free port, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(target: &str, id: &str) -> Self {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install Debian's `prometheus` package \
             (`apt-get install prometheus`; `scripts/services up` does it)"
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let alerts = Path::new(ROOT).join("deploy/prometheus/alerts.yml");
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [alerts],
            "scrape_configs": [{
                "job_name": "contact-import",
                "static_configs": [{"targets": [target]}],
            }],
        });
        // JSON is YAML.
        std::fs::write(dir.join("prometheus.yml"), config.to_string()).unwrap();
        let http = reqwest::Client::new();

        // The port is free when picked but may be taken before Prometheus binds it.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
            let mut child = Command::new(PROMETHEUS)
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("start prometheus");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Ok(response) = http.get(format!("{url}/-/ready")).send().await
                    && response.status().is_success()
                {
                    return Self {
                        child,
                        url,
                        dir,
                        http,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "prometheus exited with {status} before it was ready; log:\n{}",
                        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready within {DEADLINE:?}; log:\n{}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        panic!("prometheus did not start three times");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.url), params).unwrap();
        let body = json_body(self.http.get(url).send().await.unwrap()).await;
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    /// The instant vector of `query`, now.
    async fn query(&self, query: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", query)]).await;
        assert_eq!(data["resultType"], "vector", "{query}: {data}");
        data["result"].as_array().unwrap().clone()
    }

    /// Waits until `query` returns one sample equal to `expected`.
    async fn wait_for_value(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let result = self.query(query).await;
            let value = result
                .first()
                .and_then(|sample| sample["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok());
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} is {result:?} after {DEADLINE:?}, expected {expected}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until every rule of every group has been evaluated, and none failed.
    async fn wait_for_rules_evaluated(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let data = self.api("/api/v1/rules", &[]).await;
            let rules: Vec<&Value> = data["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|group| group["rules"].as_array().unwrap())
                .collect();
            assert!(rules.len() >= 8, "alerts.yml not loaded: {data}");
            for rule in &rules {
                assert_ne!(rule["health"], "err", "rule failed: {rule}");
            }
            if rules.iter().all(|rule| rule["health"] == "ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rules not all evaluated after {DEADLINE:?}: {data}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A response body as JSON (reqwest's `json` feature is not enabled).
async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
