//! `contact-import publish`: the producer side. Splits files (JSON batches, NDJSON, CSV; a
//! directory; `-` for stdin) into batches, publishes them with publisher confirms and a
//! bounded number in flight, and with `--wait` collects every result, prints a summary, writes
//! the failed contacts to `--report`, and exits non-zero unless every contact was stored.
//! `--raw` sends a file as one message, unchanged, and prints its result.

pub mod input;
mod raw;
pub mod report;

use crate::broker;
use crate::broker::consume::{DRY_RUN_HEADER, ORG_ID_HEADER};
use crate::config::BrokerConfig;
use crate::contact::model::CONTACT_SCHEMA;
use crate::dialect::webex;
use crate::ids;
use anyhow::{Context, bail};
use clap::Args;
use futures_lite::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use input::{Format, Origin};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use report::Tally;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Publishing a file again publishes the same batches under the same batch ids (the SHA-256
/// of each batch's body), and the worker applies a batch id once: a resend replays the stored
/// results and changes nothing.
#[derive(Debug, Args)]
#[command(
    after_help = "Resending the same file publishes the same batch ids (each batch's SHA-256), \
and the worker applies a batch id only once: a resend replays the stored results and imports nothing twice."
)]
pub struct PublishArgs {
    /// Files, directories (their .json, .ndjson/.jsonl and .csv files), or `-` for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// The org of the contacts (required unless a JSON batch names its `orgId`).
    #[arg(long, alias = "org-id")]
    pub org: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Contacts per published batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Batches published and not yet confirmed (with --wait: not yet answered) at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Wait for every result, print a summary and exit non-zero unless every contact was
    /// stored.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: write every failed contact (file, line, index, batch, error) to this file,
    /// CSV if it ends in .csv, else JSON.
    #[arg(long, requires = "wait")]
    pub report: Option<PathBuf>,
    /// Ask for dry runs (header `x-dry-run: true`): the worker checks every batch against the
    /// database and answers in full, writing nothing and leaving the batch ids unused.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for results after the last publish (--wait), or for the result (--raw).
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Send each file as one message, unchanged (any dialect), and print its result.
    #[arg(long)]
    pub raw: bool,
    /// With --raw: the message_id (batch id); without it the worker uses the body's SHA-256.
    #[arg(long, requires = "raw")]
    pub message_id: Option<String>,
    /// With --raw: the AMQP `type`, which selects the dialect.
    #[arg(long = "type", default_value = webex::MESSAGE_TYPE)]
    pub kind: String,
    /// With --raw: the content type.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    if args.raw {
        for file in &args.inputs {
            raw::run(&args, file).await?;
        }
        return Ok(());
    }
    split(&args).await
}

/// A temporary, exclusive queue for results addressed to this process, and its consumer.
async fn reply_queue(channel: &Channel) -> anyhow::Result<(ShortString, Consumer)> {
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;
    Ok((queue.name().clone(), consumer))
}

/// A published batch waiting for its result.
struct Pending {
    batch_id: String,
    origins: Vec<Origin>,
}

/// What the publishing loop and the result collector share, under one lock: a result is
/// taken out of `pending` and counted in `tally` in one step, so the end of the wait never
/// sees a batch that is neither pending nor counted.
#[derive(Default)]
struct Ledger {
    /// By correlation id: unique per publish, even for batches with identical bodies (which
    /// share a batch id, the second being a replay).
    pending: HashMap<u64, Pending>,
    tally: Tally,
}

async fn split(args: &PublishArgs) -> anyhow::Result<()> {
    if args.dry_run && !args.wait {
        bail!("--dry-run needs --wait: a dry run is answered only to the requester");
    }
    let inputs = input::expand(&args.inputs, args.format)?;
    // A first pass reads every file: a malformed one fails the run before anything is sent.
    let total = count_contacts(&inputs)?;
    let (connection, channel) =
        broker::open_declared(&args.broker, "contact-import publish").await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let (reply_to, mut replies) = reply_queue(&channel).await?;

    let progress = Progress::new(total);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let permits = Arc::new(Semaphore::new(args.max_in_flight as usize));
    let collector = {
        let (ledger, permits, progress) = (ledger.clone(), permits.clone(), progress.clone());
        tokio::spawn(async move {
            while let Some(Ok(reply)) = replies.next().await {
                let Some(id) = reply
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| c.as_str().parse::<u64>().ok())
                else {
                    continue;
                };
                let result: Value = serde_json::from_slice(&reply.data).unwrap_or(Value::Null);
                let mut ledger = ledger.lock().expect("ledger lock");
                let Some(batch) = ledger.pending.remove(&id) else {
                    continue; // a second answer (a redelivery's replay) to one already counted
                };
                ledger.tally.add(&batch.batch_id, &result, &batch.origins);
                progress.answered(batch.origins.len());
                permits.add_permits(1);
            }
        })
    };
    let no_answer = || {
        anyhow::anyhow!(
            "no result for {} s with {} batches waiting; is a worker consuming {}?",
            args.timeout_secs,
            args.max_in_flight,
            args.broker.import_queue
        )
    };

    let mut sequence = 0u64;
    for input in &inputs {
        let (records, body_org) = input.records()?;
        let org = match (&args.org, body_org) {
            (Some(org), _) => org.clone(),
            (None, Some(org)) => org,
            (None, None) => bail!("{}: no org; pass --org", input.name),
        };
        let mut records = records.peekable();
        while records.peek().is_some() {
            let mut contacts = Vec::with_capacity(args.batch_size as usize);
            let mut origins = Vec::with_capacity(args.batch_size as usize);
            for record in records.by_ref().take(args.batch_size as usize) {
                let record = record?;
                contacts.push(record.contact);
                origins.push(record.origin);
            }
            let body = serde_json::to_vec(
                &json!({"schemas": CONTACT_SCHEMA, "orgId": org, "contacts": contacts}),
            )?;
            let batch_id = format!("sha256:{}", ids::body_sha256(&body));
            // Bounded: with --wait a permit comes back only with a result.
            tokio::time::timeout(Duration::from_secs(args.timeout_secs), permits.acquire())
                .await
                .map_err(|_| no_answer())??
                .forget();
            sequence += 1;
            let size = origins.len();
            if args.wait {
                let pending = Pending {
                    batch_id: batch_id.clone(),
                    origins,
                };
                ledger
                    .lock()
                    .expect("ledger lock")
                    .pending
                    .insert(sequence, pending);
            }
            let message = Message {
                body: &body,
                batch_id: &batch_id,
                correlation_id: sequence,
                org: &org,
            };
            publish(&channel, args, &message, &reply_to).await?;
            ledger.lock().expect("ledger lock").tally.batches += 1;
            progress.published(size);
            if !args.wait {
                permits.add_permits(1);
            }
        }
    }

    let outcome = if args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        while !ledger.lock().expect("ledger lock").pending.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        collector.abort();
        progress.finish();
        let ledger = ledger.lock().expect("ledger lock");
        let tally = &ledger.tally;
        println!("{}", tally.summary());
        if let Some(path) = &args.report {
            report::write(path, &tally.failures)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} failed contact(s) written to {}",
                tally.failures.len(),
                path.display()
            );
        }
        if tally.all_stored() {
            Ok(())
        } else if tally.answered < tally.batches {
            bail!(
                "{} batch(es) unanswered after {} s",
                tally.batches - tally.answered,
                args.timeout_secs
            )
        } else {
            bail!("not every contact was stored (see the summary above)")
        }
    } else {
        collector.abort();
        progress.finish();
        let batches = ledger.lock().expect("ledger lock").tally.batches;
        println!("{batches} batch(es) published and confirmed");
        Ok(())
    };
    let _ = connection.close(200, "done".into()).await;
    outcome
}

/// One batch to publish.
struct Message<'a> {
    body: &'a [u8],
    batch_id: &'a str,
    /// Unique within this run: how its result is matched.
    correlation_id: u64,
    org: &'a str,
}

async fn publish(
    channel: &Channel,
    args: &PublishArgs,
    message: &Message<'_>,
    reply_to: &ShortString,
) -> anyhow::Result<()> {
    let mut headers = FieldTable::default();
    headers.insert(
        ORG_ID_HEADER.into(),
        AMQPValue::LongString(LongString::from(message.org)),
    );
    if args.dry_run {
        headers.insert(DRY_RUN_HEADER.into(), AMQPValue::Boolean(true));
    }
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_type(webex::MESSAGE_TYPE.into())
        .with_message_id(message.batch_id.into())
        .with_correlation_id(message.correlation_id.to_string().into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if args.wait {
        properties = properties.with_reply_to(reply_to.clone());
    }
    publish_confirmed(channel, &args.broker, message.body, properties)
        .await
        .with_context(|| format!("publishing batch {}", message.batch_id))
}

/// Publishes to the import exchange, `mandatory`, and waits for the broker's confirm.
async fn publish_confirmed(
    channel: &Channel,
    broker: &BrokerConfig,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = channel
        .basic_publish(
            broker.import_exchange.as_str().into(),
            broker.import_routing_key.as_str().into(),
            mandatory,
            body,
            properties,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => bail!("no queue is bound to {}", broker.import_exchange),
        _ => bail!("the broker refused the message"),
    }
}

/// Contacts in all inputs, for the progress bar's ETA (`None` for stdin, which cannot be
/// read twice). Reading every file first also fails a malformed one before anything is sent.
fn count_contacts(inputs: &[input::Input]) -> anyhow::Result<Option<u64>> {
    let mut total = 0;
    for input in inputs {
        if input.path.is_none() {
            return Ok(None);
        }
        let (records, _) = input.records()?;
        for record in records {
            record?;
            total += 1;
        }
    }
    Ok(Some(total))
}

/// A progress bar at a terminal; otherwise a log line every few seconds.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    state: Arc<Mutex<ProgressState>>,
}

struct ProgressState {
    published: u64,
    answered: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} contacts published · {msg} · {per_sec} · ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            state: Arc::new(Mutex::new(ProgressState {
                published: 0,
                answered: 0,
                started: now,
                last_line: now,
            })),
        }
    }

    fn published(&self, contacts: usize) {
        let mut state = self.state.lock().expect("progress lock");
        state.published += contacts as u64;
        self.show(&mut state);
        if let Some(bar) = &self.bar {
            bar.inc(contacts as u64);
        }
    }

    fn answered(&self, contacts: usize) {
        let mut state = self.state.lock().expect("progress lock");
        state.answered += contacts as u64;
        self.show(&mut state);
    }

    fn show(&self, state: &mut ProgressState) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{} answered", state.answered)),
            None if state.last_line.elapsed() >= Duration::from_secs(5) => {
                state.last_line = Instant::now();
                let secs = state.started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "published {} contacts, {} answered, {:.0} contacts/s",
                    state.published,
                    state.answered,
                    state.published as f64 / secs
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
