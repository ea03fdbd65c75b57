//! The operators' kit under `deploy/` is checked, not only written: every YAML and JSON file
//! parses, Prometheus' own `promtool` accepts the alerts and the scrape configurations and
//! runs the alerts' unit tests, and the files agree with the code and with each other
//! (metric names, environment variables, probe paths, grace periods, queue names).
//!
//! `promtool` comes with Debian's `prometheus` package, which `scripts/services up` installs.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The per-queue RabbitMQ metrics the kit uses, as `rabbitmq_prometheus` names them on
/// `/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count` (checked
/// against RabbitMQ 3.10, Debian bookworm's).
const RABBITMQ_QUEUE_METRICS: &[&str] = &[
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_consumers",
];

/// The alerts the operators asked for, each answering one question.
const REQUIRED_ALERTS: &[&str] = &[
    "ContactImportDeadLetterQueueGrowing",
    "ContactImportFailedContactRatioHigh",
    "ContactImportBatchLatencyHigh",
    "ContactImportDatabaseRetriesClimbing",
    "ContactImportNoWorkerConsuming",
    "ContactImportWorkerDown",
    "ContactImportDatabaseUnavailable",
    "ContactImportBrokerBlocked",
    "ContactImportCommitWaiting",
];

fn root() -> &'static Path {
    Path::new(ROOT)
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends with one of `extensions`, sorted.
fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every document of a YAML file (Kubernetes manifests hold several), with `<<` merge keys
/// applied, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = serde_norway::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
            serde_json::to_value(&value)
                .unwrap_or_else(|e| panic!("{}: not representable as JSON: {e}", path.display()))
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn yaml(path: &str) -> Value {
    let mut documents = yaml_documents(&deploy().join(path));
    assert_eq!(documents.len(), 1, "{path} should hold one document");
    documents.remove(0)
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(&deploy().join(path)))
        .unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

/// Runs promtool; a missing promtool fails the test with what to install.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: install Debian's `prometheus` package \
             (`apt-get install prometheus`; `scripts/services up` does it)"
        ),
        Err(e) => panic!("run promtool: {e}"),
    }
}

fn assert_promtool(args: &[&str]) {
    let output = promtool(args);
    assert!(
        output.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every metric name `src/metrics.rs` defines (`pub const X: &str = "…";`).
fn worker_metrics() -> BTreeSet<String> {
    let names: BTreeSet<String> = read(&root().join("src/metrics.rs"))
        .lines()
        .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \""))
        .filter_map(|line| line.split('"').nth(1).map(str::to_owned))
        .collect();
    assert!(names.len() >= 10, "found only {names:?} in src/metrics.rs");
    names
}

/// Every environment variable the binary reads: clap's `env = "…"` in src/, and RUST_LOG.
fn worker_env_vars() -> BTreeSet<String> {
    let mut names = BTreeSet::from(["RUST_LOG".to_owned()]);
    for file in files_under(&root().join("src"), &["rs"]) {
        let text = read(&file);
        for piece in text.split("env = \"").skip(1) {
            names.insert(piece.split('"').next().unwrap().to_owned());
        }
    }
    assert!(names.contains("AMQP_URL") && names.contains("CONTACT_IMPORT_SHUTDOWN_GRACE_SECS"));
    names
}

/// The metric names a PromQL expression mentions, among those of this worker and RabbitMQ's.
fn metric_names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for prefix in ["contact_import_", "rabbitmq_"] {
        let mut rest = expr;
        while let Some(at) = rest.find(prefix) {
            let preceded_by_word = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if !preceded_by_word {
                names.push(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    names
}

/// Checks that a metric name used in `context` exists: in src/metrics.rs (histograms with
/// their `_bucket`/`_sum`/`_count` series) or among the RabbitMQ queue metrics.
fn assert_metric_exists(name: &str, worker: &BTreeSet<String>, context: &str) {
    if name.starts_with("rabbitmq_") {
        assert!(
            RABBITMQ_QUEUE_METRICS.contains(&name),
            "{context} uses {name}, not one of the RabbitMQ queue metrics {RABBITMQ_QUEUE_METRICS:?}"
        );
        return;
    }
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|base| worker.contains(*base))
        .unwrap_or(name);
    assert!(
        worker.contains(base),
        "{context} uses {name}, which src/metrics.rs does not define ({worker:?})"
    );
}

fn alert_rules() -> Vec<Value> {
    yaml("prometheus/alerts.yml")["groups"]
        .as_array()
        .expect("alerts.yml has groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

/// Every Expr of the Grafana dashboard, with its panel title.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard = json("grafana/contact-import.json");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr.to_owned()));
        }
    }
    queries
}

/// Kubernetes objects of deploy/kubernetes/ (files with `apiVersion` and `kind`).
fn kubernetes_objects() -> Vec<Value> {
    files_under(&deploy().join("kubernetes"), &["yaml", "yml"])
        .iter()
        .flat_map(|path| yaml_documents(path))
        .filter(|doc| doc.get("apiVersion").is_some() && doc.get("kind").is_some())
        .collect()
}

fn kubernetes_object(kind: &str, name: &str) -> Value {
    kubernetes_objects()
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes/"))
}

/// The port of a `host:port` address.
fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{address} has no port"))
}

/// Seconds of a compose/systemd duration such as `45s`, `1m30s` or `45`.
fn seconds(duration: &str) -> u64 {
    let (mut total, mut number) = (0, 0);
    for c in duration.trim().chars() {
        match c {
            '0'..='9' => number = number * 10 + u64::from(c.to_digit(10).unwrap()),
            's' => (total, number) = (total + number, 0),
            'm' => (total, number) = (total + number * 60, 0),
            'h' => (total, number) = (total + number * 3600, 0),
            _ => panic!("cannot read the duration {duration}"),
        }
    }
    total + number
}

fn config_map() -> Value {
    kubernetes_object("ConfigMap", "contact-import")["data"].clone()
}

/// CONTACT_IMPORT_SHUTDOWN_GRACE_SECS as the ConfigMap sets it.
fn configured_grace_secs() -> u64 {
    config_map()["CONTACT_IMPORT_SHUTDOWN_GRACE_SECS"]
        .as_str()
        .expect("the ConfigMap sets CONTACT_IMPORT_SHUTDOWN_GRACE_SECS")
        .parse()
        .unwrap()
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let yaml_files = files_under(&deploy(), &["yaml", "yml"]);
    let json_files = files_under(&deploy(), &["json"]);
    assert!(
        yaml_files.len() >= 10 && !json_files.is_empty(),
        "expected the kit's files, found {yaml_files:?} {json_files:?}"
    );
    for path in &yaml_files {
        assert!(
            !yaml_documents(path).is_empty(),
            "{} holds no YAML document",
            path.display()
        );
    }
    for path in &json_files {
        serde_json::from_str::<Value>(&read(path))
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    }
    // Multi-document manifests are read whole, not only their first document.
    let keda = yaml_documents(&deploy().join("kubernetes/keda.yaml"));
    assert_eq!(
        keda.len(),
        2,
        "keda.yaml: ScaledObject and TriggerAuthentication"
    );
}

#[test]
fn alerts_pass_promtool_check_rules() {
    assert_promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
}

#[test]
fn alerts_fire_on_synthetic_series_in_promtool_test_rules() {
    assert_promtool(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
}

/// Every Prometheus configuration under deploy/ (a YAML file with `scrape_configs`).
/// Debian's promtool is built without Kubernetes service discovery: when it refuses
/// `kubernetes_sd_configs` for that reason alone, the roles are checked here and the file
/// is checked again with empty `static_configs` in their place (relabelling, parameters and
/// rule files are then still checked by promtool).
#[test]
fn every_prometheus_config_passes_promtool_check_config() {
    let configs: Vec<PathBuf> = files_under(&deploy(), &["yaml", "yml"])
        .into_iter()
        .filter(|path| {
            yaml_documents(path)
                .iter()
                .any(|doc| doc.get("scrape_configs").is_some())
        })
        .collect();
    assert!(
        configs.len() >= 2,
        "expected compose's and Kubernetes' Prometheus configurations, found {configs:?}"
    );
    for path in configs {
        let relative = path.strip_prefix(root()).unwrap().to_str().unwrap();
        let output = promtool(&["check", "config", relative]);
        if output.status.success() {
            continue;
        }
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let only_kubernetes_sd = report.contains("field kubernetes_sd_configs not found")
            && report
                .lines()
                .filter(|l| l.contains("not found in type"))
                .all(|l| l.contains("kubernetes_sd_configs"));
        assert!(
            only_kubernetes_sd,
            "promtool check config {relative} failed:\n{report}"
        );
        eprintln!(
            "{relative}: this promtool lacks Kubernetes service discovery; checking the rest"
        );
        let checked = without_kubernetes_sd(&path);
        let checked = checked.to_str().unwrap();
        assert_promtool(&["check", "config", checked]);
    }
}

/// A copy of the Prometheus configuration at `path` with each `kubernetes_sd_configs`
/// (whose roles are checked) replaced by an empty `static_configs`, and rule files made
/// absolute. JSON is YAML, so promtool reads it.
fn without_kubernetes_sd(path: &Path) -> PathBuf {
    let mut config = yaml_documents(path).remove(0);
    let dir = path.parent().unwrap();
    if let Some(rule_files) = config["rule_files"].as_array_mut() {
        for file in rule_files {
            *file = Value::from(dir.join(file.as_str().unwrap()).to_str().unwrap());
        }
    }
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        if let Some(sd) = job.remove("kubernetes_sd_configs") {
            for entry in sd.as_array().unwrap() {
                let role = entry["role"].as_str().unwrap_or_default();
                assert!(
                    [
                        "node",
                        "service",
                        "pod",
                        "endpoints",
                        "endpointslice",
                        "ingress"
                    ]
                    .contains(&role),
                    "{}: kubernetes_sd_configs role {role:?}",
                    path.display()
                );
            }
            job.insert(
                "static_configs".into(),
                serde_json::json!([{ "targets": [] }]),
            );
        }
    }
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "promtool-{}-{}",
        std::process::id(),
        path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&copy, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    copy
}

#[test]
fn alerts_use_real_metrics_and_say_what_to_check() {
    let worker = worker_metrics();
    let operations = read(&root().join("docs/operations.md")).to_lowercase();
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for required in REQUIRED_ALERTS {
        assert!(names.contains(required), "alerts.yml lacks {required}");
    }
    for rule in &rules {
        let name = rule["alert"].as_str().expect("only alerting rules");
        let expr = rule["expr"].as_str().unwrap();
        let used = metric_names_in(expr);
        assert!(
            !used.is_empty() || expr.contains("up{job=\"contact-import\"}"),
            "{name} reads no metric of the worker or the broker: {expr}"
        );
        for metric in used {
            assert_metric_exists(&metric, &worker, &format!("alert {name}"));
        }
        let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
        assert!(
            summary.contains("check") || summary.contains("read") || summary.contains("look"),
            "{name}'s summary should say what to check: {summary:?}"
        );
        let runbook = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let anchor = name.to_lowercase();
        assert_eq!(
            runbook,
            format!("docs/operations.md#{anchor}"),
            "{name}'s runbook_url"
        );
        assert!(
            operations.contains(&format!("### {anchor}\n")),
            "docs/operations.md has no section `### {name}`"
        );
    }
}

#[test]
fn dashboard_uses_real_metrics_and_covers_what_operators_watch() {
    let worker = worker_metrics();
    let queries = dashboard_queries();
    for (title, expr) in &queries {
        for metric in metric_names_in(expr) {
            assert_metric_exists(&metric, &worker, &format!("dashboard panel {title:?}"));
        }
    }
    let all: String = queries.iter().map(|(_, e)| e.as_str()).collect();
    for needed in [
        "contact_import_batches_total",
        "contact_import_contacts_total",
        "contact_import_batch_duration_seconds_bucket",
        "contact_import_batches_in_flight",
        "contact_import_db_retries_total",
        "contact_import_batches_requeued_total",
        "contact_import_dead_lettered_total",
        "contact_import_database_up",
        "contact_import_broker_blocked",
        "histogram_quantile(0.99",
        "up{job=\"contact-import\"}",
    ] {
        assert!(
            all.contains(needed),
            "the dashboard shows nothing of {needed}"
        );
    }
    // The provisioned data source is the one the dashboard's variable selects by type.
    let datasources = yaml("grafana/provisioning/datasources/prometheus.yaml");
    assert_eq!(datasources["datasources"][0]["type"], "prometheus");
    let dashboard = json("grafana/contact-import.json");
    assert_eq!(dashboard["templating"]["list"][0]["query"], "prometheus");
}

#[test]
fn every_worker_metric_is_explained_in_the_runbook() {
    let operations = read(&root().join("docs/operations.md"));
    for metric in worker_metrics() {
        assert!(
            operations.contains(&format!("`{metric}`")),
            "docs/operations.md does not explain `{metric}`"
        );
    }
}

#[test]
fn kubernetes_probes_grace_and_resources_fit_the_worker() {
    let deployment = kubernetes_object("Deployment", "contact-import");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["worker"]));

    let http_port = port_of(config_map()["CONTACT_IMPORT_HTTP_ADDR"].as_str().unwrap());
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(port["containerPort"], http_port);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe} port");
    }
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        http_port.to_string()
    );

    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let drain = configured_grace_secs();
    assert!(
        grace > drain,
        "terminationGracePeriodSeconds {grace} must exceed CONTACT_IMPORT_SHUTDOWN_GRACE_SECS {drain}"
    );

    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "the worker has no {bound}.{resource}"
            );
        }
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    let job = kubernetes_object("Job", "contact-import-migrate");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["migrate"])
    );
    let pdb = kubernetes_object("PodDisruptionBudget", "contact-import");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn keda_scales_the_deployment_on_the_import_queue() {
    let scaled = kubernetes_object("ScaledObject", "contact-import");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "contact-import");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "rabbitmq");
    assert_eq!(trigger["metadata"]["mode"], "QueueLength");
    // The total over the import queue, its intake shards and every lane the workers consume, not the dead
    // letters: the regex, summed, through the management API.
    assert_eq!(trigger["metadata"]["protocol"], "http");
    assert_eq!(trigger["metadata"]["useRegex"], "true");
    assert_eq!(trigger["metadata"]["operation"], "sum");
    let pattern = trigger["metadata"]["queueName"].as_str().unwrap();
    let queue = config_map()["CONTACT_IMPORT_QUEUE"]
        .as_str()
        .unwrap()
        .to_owned();
    let watched = |name: &str| keda_regex_matches(pattern, name);
    for lane in [
        "",
        ".intake.1",
        ".intake.15",
        ".interactive",
        ".bulk.0",
        ".bulk.3",
        ".heavy.0",
        ".heavy.12",
    ] {
        assert!(
            watched(&format!("{queue}{lane}")),
            "KEDA misses {queue}{lane}"
        );
    }
    for other in [".dead", ".dlx", ".bulk", ".lanes", ".intake"] {
        assert!(
            !watched(&format!("{queue}{other}")),
            "KEDA counts {queue}{other}"
        );
    }
    let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
    let auth = kubernetes_object("TriggerAuthentication", auth_name);
    let secret_ref = &auth["spec"]["secretTargetRef"][0];
    assert_eq!(secret_ref["parameter"], "host");
    let secret = kubernetes_object("Secret", secret_ref["name"].as_str().unwrap());
    let host = secret["stringData"][secret_ref["key"].as_str().unwrap()]
        .as_str()
        .expect("the Secret lacks the key KEDA reads");
    // KEDA reads the management API over TLS, as a user of its own: the worker's password
    // stays with the worker.
    let keda_user = host
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once(':'))
        .map(|(user, _)| user)
        .unwrap_or_else(|| panic!("KEDA's host is not https://user:password@…: {host}"));
    // KEDA's scaler takes one host URL, not the workers' list of nodes (a Service in front
    // of the cluster, see secret.yaml).
    assert!(
        !host.contains(','),
        "KEDA's host must be one address: {host}"
    );
    let worker_url = secret["stringData"]["AMQP_URL"].as_str().unwrap();
    let workers = contact_import::broker::endpoints(worker_url).expect("the workers' AMQP_URL");
    for node in &workers {
        assert_ne!(
            node.login_user(),
            Some(keda_user),
            "KEDA logs in as the worker"
        );
    }
    let tls: Vec<&Value> = auth["spec"]["secretTargetRef"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["parameter"] == "tls" || r["parameter"] == "ca")
        .collect();
    assert_eq!(tls.len(), 2, "KEDA's TLS parameters (tls, ca)");
    assert!(scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 1);
}

/// The value of `key=` in a dotenv-style file.
fn env_file_value(path: &Path, key: &str) -> String {
    read(path)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{} sets no {key}", path.display()))
}

/// The examples show a cluster: AMQP_URL lists three nodes, as the worker splits the list,
/// all over TLS as the same user; DATABASE_URL names a primary and a standby in libpq's
/// multi-host form with target_session_attrs=read-write, as tokio-postgres reads it.
#[test]
fn the_url_examples_list_several_nodes_and_hosts() {
    let secret = kubernetes_object("Secret", "contact-import-urls");
    let env = deploy().join("contact-import.env.example");
    let examples = [
        (
            "secret.yaml",
            secret["stringData"]["AMQP_URL"]
                .as_str()
                .unwrap()
                .to_owned(),
            secret["stringData"]["DATABASE_URL"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        (
            "contact-import.env.example",
            env_file_value(&env, "AMQP_URL"),
            env_file_value(&env, "DATABASE_URL"),
        ),
    ];
    for (file, amqp, database) in examples {
        let nodes = contact_import::broker::endpoints(&amqp)
            .unwrap_or_else(|e| panic!("{file}: AMQP_URL: {e}"));
        let addresses: BTreeSet<String> = nodes.iter().map(|n| n.address()).collect();
        assert_eq!(
            addresses.len(),
            3,
            "{file}: three distinct nodes: {addresses:?}"
        );
        assert_eq!(
            amqp.matches("amqps://").count(),
            3,
            "{file}: every node over TLS"
        );
        let users: BTreeSet<Option<&str>> = nodes.iter().map(|n| n.login_user()).collect();
        assert_eq!(users.len(), 1, "{file}: one broker user for every node");
        assert!(nodes.iter().all(|n| !n.unverified()), "{file}");

        // The TLS keys are read by the worker itself (src/store/connect.rs), the rest by
        // tokio-postgres: strip them and let tokio-postgres parse what remains.
        let (base, query) = database.split_once('?').expect("DATABASE_URL has a query");
        let (tls, rest): (Vec<&str>, Vec<&str>) =
            query.split('&').partition(|p| p.starts_with("ssl"));
        assert!(tls.contains(&"sslmode=verify-full"), "{file}: {database}");
        let config: tokio_postgres::Config = format!("{base}?{}", rest.join("&"))
            .parse()
            .unwrap_or_else(|e| panic!("{file}: DATABASE_URL: {e}"));
        assert_eq!(config.get_hosts().len(), 2, "{file}: two database hosts");
        assert_eq!(config.get_ports().len(), 2, "{file}: a port per host");
        assert_eq!(
            config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite,
            "{file}: connect to the primary only"
        );
        assert_eq!(config.get_dbname(), Some("contact_import"), "{file}");
    }
}

#[test]
fn settings_in_the_kit_are_environment_variables_the_worker_reads() {
    let known = worker_env_vars();
    let mut settings: Vec<(String, String)> = Vec::new();
    for (key, _) in config_map().as_object().unwrap() {
        settings.push(("configmap.yaml".into(), key.clone()));
    }
    let secret = kubernetes_object("Secret", "contact-import-urls");
    for (key, _) in secret["stringData"].as_object().unwrap() {
        if !key.starts_with("KEDA_") {
            settings.push(("secret.yaml".into(), key.clone()));
        }
    }
    let console = kubernetes_object("ConfigMap", "contact-import-console");
    for (key, _) in console["data"].as_object().unwrap() {
        settings.push(("console.yaml".into(), key.clone()));
    }
    let compose = yaml("compose.yaml");
    for service in ["migrate", "worker", "console"] {
        for (key, _) in compose["services"][service]["environment"]
            .as_object()
            .unwrap()
        {
            settings.push((format!("compose.yaml {service}"), key.clone()));
        }
    }
    for line in read(&deploy().join("contact-import.env.example")).lines() {
        if let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            settings.push(("contact-import.env.example".into(), key.trim().to_owned()));
        }
    }
    for line in read(&deploy().join("Dockerfile")).lines() {
        if let Some(rest) = line
            .trim()
            .strip_prefix("ENV ")
            .or(line.strip_prefix("    "))
            && let Some((key, _)) = rest.split_once('=')
            && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            settings.push(("Dockerfile".into(), key.to_owned()));
        }
    }
    assert!(settings.len() > 15, "{settings:?}");
    for (file, key) in settings {
        assert!(
            known.contains(&key),
            "{file} sets {key}, which contact-import does not read ({known:?})"
        );
    }
}

#[test]
fn compose_runs_every_part_and_scrapes_every_worker() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    for name in [
        "rabbitmq",
        "postgres",
        "migrate",
        "worker",
        "prometheus",
        "grafana",
    ] {
        assert!(services.get(name).is_some(), "compose.yaml lacks {name}");
    }
    assert!(
        services["rabbitmq"]["image"]
            .as_str()
            .unwrap()
            .contains("management")
    );
    assert_eq!(
        services["migrate"]["command"],
        serde_json::json!(["migrate"])
    );
    let worker = &services["worker"];
    assert_eq!(worker["command"], serde_json::json!(["worker"]));
    assert_eq!(
        worker["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert!(
        worker.get("ports").is_none(),
        "a published port would stop `--scale worker=N`"
    );
    let env = &worker["environment"];
    let drain: u64 = env["CONTACT_IMPORT_SHUTDOWN_GRACE_SECS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stop = seconds(worker["stop_grace_period"].as_str().unwrap());
    assert!(stop > drain, "stop_grace_period {stop}s ≤ drain {drain}s");
    let http_port = port_of(env["CONTACT_IMPORT_HTTP_ADDR"].as_str().unwrap());

    let prometheus = yaml("prometheus/prometheus.yml");
    let jobs = prometheus["scrape_configs"].as_array().unwrap();
    let workers = jobs
        .iter()
        .find(|j| j["job_name"] == "contact-import")
        .expect("a contact-import job");
    let dns = &workers["dns_sd_configs"][0];
    assert_eq!(dns["names"], serde_json::json!(["worker"]));
    assert_eq!(dns["port"], http_port);
    let queues = jobs
        .iter()
        .find(|j| j["job_name"] == "rabbitmq-queues")
        .expect("a rabbitmq-queues job");
    assert_eq!(queues["metrics_path"], "/metrics/detailed");
    let plugins = read(&deploy().join("rabbitmq/enabled_plugins"));
    assert!(plugins.contains("rabbitmq_prometheus") && plugins.contains("rabbitmq_management"));

    // The same job names on Kubernetes, since the alerts select them.
    let kubernetes = yaml("kubernetes/prometheus-scrape.yml");
    let names: Vec<&str> = kubernetes["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    assert_eq!(names, ["contact-import", "rabbitmq-queues"]);
}

#[test]
fn dockerfile_builds_locked_and_runs_the_binary_unprivileged_with_a_healthcheck() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage build");
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(runtime.starts_with("debian:") && runtime.contains("-slim"));
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    let healthcheck: String = runtime
        .lines()
        .skip_while(|line| !line.starts_with("HEALTHCHECK "))
        .take(3)
        .collect();
    assert!(healthcheck.contains("/healthz"), "{healthcheck}");
    let install = runtime
        .split("apt-get install")
        .nth(1)
        .and_then(|rest| rest.split("&&").next())
        .expect("the runtime stage installs packages");
    assert!(
        install.split_whitespace().any(|word| word == "curl"),
        "the HEALTHCHECK's curl must be installed in the runtime image: {install}"
    );
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/contact-import\"]"));
}

#[test]
fn systemd_unit_waits_longer_than_the_drain() {
    let unit = read(&deploy().join("systemd/contact-import.service"));
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec");
    let drain = read(&deploy().join("contact-import.env.example"))
        .lines()
        .find_map(|l| l.strip_prefix("CONTACT_IMPORT_SHUTDOWN_GRACE_SECS="))
        .map_or(30, |v| v.trim().parse().unwrap());
    assert!(seconds(stop) > drain);
}

#[test]
fn the_kit_authorises_producers_per_org() {
    assert_eq!(config_map()["CONTACT_IMPORT_AUTHORIZATION"], "grants");
    let env = read(&deploy().join("contact-import.env.example"));
    assert!(
        env.lines()
            .any(|l| l == "CONTACT_IMPORT_AUTHORIZATION=grants"),
        "{env}"
    );
}

/// Whether KEDA's queue-name `pattern` (a Go regular expression; it uses only anchors,
/// escaped dots, groups with alternatives, `[0-9]+` and `?`, where the `regex` crate's
/// syntax agrees with Go's) matches `name`.
fn keda_regex_matches(pattern: &str, name: &str) -> bool {
    regex::Regex::new(pattern)
        .unwrap_or_else(|e| panic!("KEDA's queueName is not a regex: {e}"))
        .is_match(name)
}

#[test]
fn the_console_is_deployed_but_not_exposed() {
    let deployment = kubernetes_object("Deployment", "contact-import-console");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["console"]));
    let settings = kubernetes_object("ConfigMap", "contact-import-console")["data"].clone();
    let port = port_of(settings["CONTACT_IMPORT_CONSOLE_LISTEN"].as_str().unwrap());
    assert_eq!(container["ports"][0]["containerPort"], port);
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // The workers' Deployment must not select the console's pods, nor the other way round.
    let workers = kubernetes_object("Deployment", "contact-import");
    assert_ne!(
        workers["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let service = kubernetes_object("Service", "contact-import-console");
    assert_eq!(
        service["spec"]["type"], "ClusterIP",
        "the console is exposed"
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    for object in kubernetes_objects() {
        assert_ne!(object["kind"], "Ingress", "an Ingress exposes the console");
    }

    let compose = yaml("compose.yaml");
    for published in compose["services"]["console"]["ports"].as_array().unwrap() {
        let published = published.as_str().unwrap();
        assert!(
            published.starts_with("127.0.0.1:"),
            "compose publishes the console beyond this host: {published}"
        );
    }
    let unit = read(&deploy().join("systemd/contact-import-console.service"));
    assert!(unit.contains("ExecStart=/usr/local/bin/contact-import console"));
}
