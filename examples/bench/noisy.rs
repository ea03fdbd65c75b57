//! `--noisy-neighbour`: one org's backlog of bulk batches, prefilled, worked off by one
//! worker; while it drains, a round of probes every [`PROBE_EVERY`]: a chat-bot Update User
//! Contact for a quiet org, one for a person of the busy org, and a new org's 10-contact
//! Webex batch. Each probe's latency (publish to result) is recorded with the backlog ready
//! in the broker when it was sent. The same is run with the lanes on and off (the single FIFO
//! queue), with the lanes on without probes, for the bulk org's throughput alone, and with
//! the lanes on and the backlog published once the worker runs (routed as it arrives, as
//! when an upstream system sends an import to running workers); each run on a fresh copy of
//! the seeded database, in one invocation.

use crate::dataset::Batch;
use crate::e2e::{lanes_of, publish_all};
use crate::services::Services;
use crate::support::broker::{
    confirm_channel, names, publish_batch, queue_depth, subscribe_results, webex_properties,
};
use crate::support::worker::{Worker, WorkerSettings};
use anyhow::Context;
use contact_import::broker::topology;
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time between two rounds of probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// How often the import queue's depth is read until the router has emptied it.
const ROUTING_SAMPLE: Duration = Duration::from_millis(50);

/// The kinds of probe, in the order of a round.
pub const PROBE_KINDS: [&str; 3] = ["chat, quiet org", "chat, busy org", "new org, 10 contacts"];

/// One run of the mode.
pub struct NoisyRun {
    /// `lanes` or `single queue`, and whether probes were sent.
    pub label: String,
    /// Contacts per second of the bulk org, from the worker's start to its last result.
    pub bulk_contacts_per_s: f64,
    /// Per probe: its kind (index into [`PROBE_KINDS`]), latency, the messages ready in the
    /// broker (import queue and lanes) when it was sent, and of those the import queue's
    /// (not yet routed: ahead of the probe whatever its lane).
    pub probes: Vec<(usize, Duration, u32, u32)>,
    /// With lanes: from the worker's start until its router had emptied the import queue.
    pub routed_after: Option<Duration>,
    /// CPU seconds per 1,000 bulk contacts from the worker's start to the end of the run (the
    /// last answer, probes included): the worker, RabbitMQ, PostgreSQL (`None` for a server
    /// not on this machine).
    pub cpu_per_1000: [Option<f64>; 3],
}

pub struct Config<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub tag: &'a str,
    pub log_dir: &'a Path,
    pub concurrency: u16,
    pub lanes: bool,
    pub probes: bool,
    /// The backlog is published once the worker runs (routed as it arrives), rather than
    /// prefilled before it starts.
    pub live: bool,
}

pub async fn run(
    services: &Services,
    cfg: &Config<'_>,
    bulk: &[Batch],
) -> anyhow::Result<NoisyRun> {
    let broker = names(&services.amqp_url, &format!("{}.", cfg.tag), 5);
    let connection = contact_import::broker::connect(&services.amqp_url, "bench noisy")
        .await
        .context("connecting to AMQP_URL")?;
    let channel = confirm_channel(&connection).await?;
    topology::declare(&connection, &broker).await?;
    let results_channel = connection.create_channel().await?;
    let mut results = subscribe_results(&results_channel, &broker).await?;
    if !cfg.live {
        publish_all(&channel, &broker, bulk, None).await?;
    }

    let mut settings = WorkerSettings::new(
        cfg.bin.to_owned(),
        broker.clone(),
        cfg.database_url.to_owned(),
        cfg.log_dir.to_owned(),
    )
    .env("CONTACT_IMPORT_LANES", if cfg.lanes { "on" } else { "off" });
    settings.concurrency = cfg.concurrency;
    let servers_before = (services.broker_cpu(), services.postgres_cpu());
    let worker = Worker::spawn(&format!("{}-worker", cfg.tag), &settings).await?;
    let started = Instant::now();
    if cfg.live {
        publish_all(&channel, &broker, bulk, None).await?;
    }
    let mut routed_after = None;
    let mut routing_sampled = started;

    let mut queues = vec![broker.import_queue.clone()];
    if cfg.lanes {
        queues.extend(lanes_of(&broker).queues().map(str::to_owned));
    }
    // A channel of its own: a passive declare that fails closes its channel.
    let depth_channel = connection.create_channel().await?;
    let mut sent: HashMap<String, (usize, Instant, u32, u32)> = HashMap::new();
    let mut probes = Vec::new();
    let mut bulk_left = bulk.len();
    let mut last_bulk = started;
    let mut next_round = Instant::now();
    let mut round = 0;
    while bulk_left > 0 || probes.len() < sent.len() {
        if cfg.lanes && routed_after.is_none() && routing_sampled.elapsed() >= ROUTING_SAMPLE {
            routing_sampled = Instant::now();
            if queue_depth(&depth_channel, &broker.import_queue).await? == 0 {
                routed_after = Some(started.elapsed());
            }
        }
        if cfg.probes && bulk_left > 0 && Instant::now() >= next_round {
            let mut ready = 0;
            let mut unrouted = 0;
            for (i, queue) in queues.iter().enumerate() {
                let depth = queue_depth(&depth_channel, queue).await.unwrap_or(0);
                ready += depth;
                if i == 0 {
                    unrouted = depth;
                }
            }
            for (kind, (body, properties)) in probe_round(round).into_iter().enumerate() {
                let id = properties.message_id().as_ref().unwrap().to_string();
                sent.insert(id, (kind, Instant::now(), ready, unrouted));
                publish_batch(&channel, &broker, &body, properties)
                    .await?
                    .await?;
            }
            round += 1;
            next_round += PROBE_EVERY;
        }
        let mut wait = next_round.saturating_duration_since(Instant::now());
        if cfg.lanes && routed_after.is_none() {
            wait = wait.min(ROUTING_SAMPLE);
        }
        let delivery =
            match tokio::time::timeout(wait.max(Duration::from_millis(5)), results.next()).await {
                Err(_) => continue,
                Ok(Some(delivery)) => delivery?,
                Ok(None) => anyhow::bail!("the results consumer ended"),
            };
        let body: serde_json::Value = serde_json::from_slice(&delivery.data)?;
        let id = body["batchId"].as_str().unwrap_or_default().to_owned();
        match sent.get(&id) {
            Some((kind, at, ready, unrouted)) => {
                probes.push((*kind, at.elapsed(), *ready, *unrouted))
            }
            None => {
                bulk_left -= 1;
                last_bulk = Instant::now();
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the noisy-neighbour run did not finish in 30 minutes"
        );
    }
    let contacts: usize = bulk.iter().map(|b| b.contacts).sum();
    let per_1000 = |seconds: Option<f64>| seconds.map(|s| s * 1000.0 / contacts as f64);
    let cpu_per_1000 = [
        per_1000(crate::procfs::cpu_seconds(worker.pid)),
        per_1000(
            services
                .broker_cpu()
                .zip(servers_before.0)
                .map(|(b, a)| b - a),
        ),
        per_1000(
            services
                .postgres_cpu()
                .zip(servers_before.1)
                .map(|(b, a)| b - a),
        ),
    ];
    let run = NoisyRun {
        label: format!(
            "{}{}{}",
            if cfg.lanes { "lanes" } else { "single queue" },
            if cfg.live { ", published live" } else { "" },
            if cfg.probes {
                ", with probes"
            } else {
                ", bulk alone"
            }
        ),
        bulk_contacts_per_s: contacts as f64 / (last_bulk - started).as_secs_f64(),
        probes,
        routed_after,
        cpu_per_1000,
    };
    worker.stop().await?;
    crate::support::broker::delete_topology(&connection, &broker).await;
    Ok(run)
}

/// Round `n`'s probes: message bodies and properties, ids `probe-<n>-<kind>`.
fn probe_round(n: usize) -> Vec<(Vec<u8>, BasicProperties)> {
    let quiet = "0f5f1a4e-6a39-4d3c-9b1e-5b4f0e6c2a11";
    let chat = |org: &str, kind: usize| {
        let body = json!({"uuid": format!("chat-{n}-{kind}"), "queryInfo": {"parameters": {"params":
            {"accountInfo": {"userContact": {"emailId": format!("p{n}-{kind}@chat.example")}}}}}});
        let mut headers = FieldTable::default();
        headers.insert("org-id".into(), AMQPValue::LongString(org.into()));
        let properties = BasicProperties::default()
            .with_message_id(format!("probe-{n}-{kind}").into())
            .with_type("user-contact.update".into())
            .with_content_type("application/json".into())
            .with_headers(headers);
        (serde_json::to_vec(&body).unwrap(), properties)
    };
    let contacts: Vec<serde_json::Value> = (0..10)
        .map(|i| json!({"firstName": format!("N{n}-{i}"), "emails": [{"value": format!("n{n}-{i}@new.example"), "type": "work"}]}))
        .collect();
    let new_org = format!("6c1b2f0e-1d2a-4b6e-8a0f-{n:012}");
    let small = json!({"schemas": "urn:cisco:codev:identity:contact:core:1.0", "orgId": new_org, "contacts": contacts});
    vec![
        chat(quiet, 0),
        chat(crate::dataset::ORG, 1),
        (
            serde_json::to_vec(&small).unwrap(),
            webex_properties(&format!("probe-{n}-2")),
        ),
    ]
}

/// The runs as a Markdown table: per mode, the bulk throughput (and its ratio to the lanes'
/// bulk alone), and per probe kind its median and max latency and the backlog it was sent
/// behind.
pub fn markdown(runs: &[NoisyRun]) -> String {
    let alone = runs
        .iter()
        .find(|r| r.label == "lanes, bulk alone")
        .map(|r| r.bulk_contacts_per_s);
    let mut out = String::from(
        "| run | bulk contacts/s | ÷ lanes, bulk alone | probe | probes | median latency | max latency | max, sent with the import queue routed | backlog when sent (max) |\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for run in runs {
        let ratio = alone.map_or("–".into(), |a| {
            format!("{:.2}", run.bulk_contacts_per_s / a)
        });
        if run.probes.is_empty() {
            out += &format!(
                "| {} | {:.0} | {ratio} | – | 0 | – | – | – | – |\n",
                run.label, run.bulk_contacts_per_s
            );
        }
        for (kind, name) in PROBE_KINDS.iter().enumerate() {
            let mut latencies: Vec<Duration> = run
                .probes
                .iter()
                .filter(|p| p.0 == kind)
                .map(|p| p.1)
                .collect();
            if latencies.is_empty() {
                continue;
            }
            latencies.sort();
            let backlog = run
                .probes
                .iter()
                .filter(|p| p.0 == kind)
                .map(|p| p.2)
                .max()
                .unwrap_or(0);
            // Steady state: nothing waited in the import queue, unrouted, ahead of the probe
            // (with lanes, a prefilled queue is routed in its first seconds).
            let steady = run
                .probes
                .iter()
                .filter(|p| p.0 == kind && p.3 == 0)
                .map(|p| p.1)
                .max()
                .map_or("–".into(), |d| {
                    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
                });
            out += &format!(
                "| {} | {:.0} | {ratio} | {name} | {} | {:.0} ms | {:.0} ms | {steady} | {backlog} |\n",
                run.label,
                run.bulk_contacts_per_s,
                latencies.len(),
                latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
                latencies.last().unwrap().as_secs_f64() * 1000.0,
            );
        }
    }
    out += "\n| run | import queue routed after | CPU s per 1,000 bulk contacts: worker / RabbitMQ / PostgreSQL |\n| --- | ---: | --- |\n";
    let cpu = |s: Option<f64>| s.map_or("–".into(), |s| format!("{s:.4}"));
    for run in runs {
        let routed = run.routed_after.map_or("–".into(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        });
        let [worker, broker, postgres] = run.cpu_per_1000;
        out += &format!(
            "| {} | {routed} | {} / {} / {} |\n",
            run.label,
            cpu(worker),
            cpu(broker),
            cpu(postgres)
        );
    }
    out
}
