//! `contact-import publish`: the producer side. Splits files (JSON batches, NDJSON, CSV; a
//! directory; `-` for stdin) into batches, publishes them with publisher confirms and a
//! bounded number in flight, and with `--wait` collects every result, prints a summary, writes
//! the failed contacts to `--report`, and exits non-zero unless every contact was stored.
//! Files in another dialect than Webex (see [`detect`]) are sent with the AMQP `type` and
//! content type the worker reads them by: unchanged as one message when they hold at most
//! `--batch-size` contacts, else split into messages of that dialect (see [`chunk`]).
//! `--raw` sends a file as one message, unchanged, and prints its result.

pub mod chunk;
pub mod detect;
mod input;
mod raw;
mod report;

use crate::broker;
use crate::broker::consume::{
    DIRECT_REPLY_TO, DRY_RUN_HEADER, ORG_ID_HEADER, REPLY_FORMAT_HEADER, RESULT_DETAIL_HEADER,
    SEND_ID_HEADER,
};
use crate::broker::publish::REPLAYED_HEADER;
use crate::commands::NotAllStored;
use crate::config::BrokerConfig;
use crate::contact::model::CONTACT_SCHEMA;
use crate::dialect::{self, MessageType};
use crate::ids;
use crate::result::ResultDetail;
use anyhow::{Context, bail};
use clap::Args;
use detect::Detected;
use futures_lite::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use input::{Format, Input};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use report::{ReportFile, Source, Tally};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Publishing a file again publishes the same batches under the same batch ids (the SHA-256
/// of each batch's body), and the worker applies a batch id once: a resend replays the stored
/// results and changes nothing.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PublishArgs {
    /// Files, directories (their .json, .ndjson/.jsonl, .csv and .xml files), or `-` for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The broker and the import exchange to publish to.
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// The org of the contacts (required for Webex files unless a JSON batch names its
    /// `orgId`). A file sent as one message gets it as the `org-id` header (DocuSign also as
    /// `account-id`).
    #[arg(long, alias = "org-id")]
    pub org: Option<String>,
    /// How to read the inputs.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Contacts per published batch, and per message of a split Save or DocuSign file.
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
    /// How much of the stored contacts each result carries (header `x-result-detail`):
    /// `summary` (`contactIds` only) or `full` (every stored contact). With --wait the
    /// default is `summary`, which is all the counts and the report need; else the worker's
    /// default applies.
    #[arg(long, value_enum)]
    pub result_detail: Option<ResultDetail>,
    /// Seconds to wait for results after the last publish (--wait), or for the result (--raw).
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Send each file as one message, unchanged (never split, whatever --batch-size), and
    /// print its result.
    #[arg(long)]
    pub raw: bool,
    /// With --raw: the message_id (batch id); without it the worker uses the body's SHA-256.
    #[arg(long, requires = "raw")]
    pub message_id: Option<String>,
    /// The AMQP `type` (the dialect) of every input, instead of detecting it per file.
    #[arg(long = "type", value_name = "TYPE", value_parser = detect::message_type_parser())]
    pub kind: Option<MessageType>,
    /// The content type of a file sent as one message, instead of the one its syntax implies
    /// (application/json, text/csv, application/xml). Webex batches are always JSON.
    #[arg(long)]
    pub content_type: Option<String>,
}

const AFTER_HELP: &str = "\
Message types (AMQP `type`), detected per file unless --type says:
  .xml                    docusign.contacts.create, application/xml
  .csv                    docusign.contacts.create, text/csv, when every header column is a
                          DocuSign one (contactId, name, emails, organization, shared, homePhone,
                          mobilePhone, workPhone, otherPhone, faxPhone, cloudProvider,
                          cloudProviderContainerId, signingGroup, signingGroupName, accountId;
                          any case, BOM allowed) and one is not contactId; else Webex CSV
  .json, .ndjson/.jsonl   one JSON document (application/json) that is
                            an object with conversationRequest or queryInfo: user-contact.update
                            contacts (the array, its `contacts`, or the object itself) with
                            userName, password or mobileNumber: user-contacts.save
                            contacts with contactPhoneNumbers or name and none of Webex's fields
                            (firstName, lastName, displayName, phoneNumbers, ...), no `schemas`:
                            docusign.contacts.create
                          anything else: webex.contacts.bulk
  stdin (-)               not read ahead: Webex, unless --type (or --format xml: DocuSign)
Webex files are split into batches of --batch-size. Any other file with at most --batch-size
contacts is sent as one message, unchanged; a larger Save or DocuSign file is split into
messages of at most --batch-size contacts in its own format (Save/DocuSign JSON: the same
envelope; CSV: the header row and the next rows; XML: the same document around fewer
<contact>s); user-contact.update is always one message. --org is the `org-id` header
(DocuSign: also `account-id`); with --wait each message asks for the common result
(`x-reply-format: result`) and is counted like a batch. --raw sends files whole and prints
the dialect's own answer (DocuSign's contactUpdateResponse, the chat-bot reply).

Resending the same file publishes the same batch ids (each batch's SHA-256), and the worker
applies a batch id only once: a resend replays the stored results and imports nothing twice.";

/// Runs the command; with `--wait`, an error unless every contact was stored. Needs tokio's
/// multi-threaded runtime (file reads use `block_in_place`).
pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    if args.raw {
        // Every file is sent and answered; the exit status says whether all were stored.
        let mut incomplete = Vec::new();
        for file in &args.inputs {
            match raw::run(&args, file).await {
                Ok(()) => {}
                Err(e) if e.is::<NotAllStored>() => incomplete.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        return match incomplete.is_empty() {
            true => Ok(()),
            false => Err(NotAllStored(incomplete.join("; ")).into()),
        };
    }
    split(&args).await
}

/// Where results addressed to this process arrive: RabbitMQ's direct reply-to on `channel`
/// (the channel that publishes), which needs no queue (and no permission to declare one)
/// and is the only `reply_to` a worker in `grants` mode answers.
async fn reply_queue(channel: &Channel) -> anyhow::Result<(ShortString, Consumer)> {
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer = channel
        .basic_consume(
            DIRECT_REPLY_TO.into(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .context("consuming direct reply-to (amq.rabbitmq.reply-to)")?;
    Ok((DIRECT_REPLY_TO.into(), consumer))
}

/// The `user_id` the messages carry: the user this process logs in as, the only one the
/// broker accepts there, which a worker in `grants` mode checks against its grants.
fn user_id(broker: &BrokerConfig) -> anyhow::Result<Option<ShortString>> {
    // Every node of a cluster knows the same users: the first URL's is the one.
    let nodes = broker::endpoints(&broker.amqp_url)?;
    Ok(nodes[0].login_user().map(ShortString::from))
}

/// A published batch waiting for its result.
struct Pending {
    batch_id: String,
    source: Source,
    /// The input it was read from: its line in the tally.
    file: usize,
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
    /// `--report`, written as results come in.
    report: Option<ReportFile>,
    /// The first failure to write the report, reported at the end.
    report_error: Option<String>,
}

/// The most of a file read to tell its dialect: the worker's default largest message. A JSON
/// file larger than this is not one JSON document within it, so it is taken for Webex unless
/// `--type` names its dialect (it may now be split into several messages).
const DETECT_BYTES: u64 = 16 * 1024 * 1024;

/// How `args` say `format`/`bytes` are published: `--type` if given, else [`detect`].
fn choose(args: &PublishArgs, format: Format, bytes: &[u8]) -> Detected {
    match args.kind {
        Some(kind) => Detected {
            kind,
            content_type: detect::content_type_of(format),
        },
        None => detect::detect_format(format, bytes),
    }
}

/// How an input is published: `None` as Webex batches, else as one message of this kind.
/// Stdin is not read ahead: without --type its syntax alone decides (XML: DocuSign).
fn plan(args: &PublishArgs, input: &Input) -> anyhow::Result<Option<Detected>> {
    let start = match (&input.path, args.kind) {
        (Some(_), None) => input.read_start(DETECT_BYTES)?,
        _ => Vec::new(),
    };
    let chosen = choose(args, input.format, &start);
    Ok((chosen.kind != MessageType::default_type()).then_some(chosen))
}

/// File reads are blocking: they run where the runtime expects blocking work, so the
/// collector and the confirms keep moving while a large file is read. `block_in_place` needs
/// the multi-threaded runtime, which `main` runs [`run`] on.
fn blocking<T>(read: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(read)
}

/// `publish` without `--raw`: plan the inputs, open the session, send every input (whole
/// files, or Webex batches split from records), then collect and report the results.
async fn split(args: &PublishArgs) -> anyhow::Result<()> {
    if args.dry_run && !args.wait {
        bail!("--dry-run needs --wait: a dry run is answered only to the requester");
    }
    let Plan { inputs, total } = blocking(|| plan_inputs(args))?;
    let (connection, channel) =
        broker::open_declared(&args.broker, "contact-import publish").await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let (reply_to, replies) = reply_queue(&channel).await?;
    let user_id = user_id(&args.broker)?;

    let progress = Progress::new(total);
    let mut ledger = Ledger::default();
    ledger.tally.dry_run = args.dry_run;
    // Before anything is sent: a report that cannot be written fails the run now.
    if let Some(path) = &args.report {
        ledger.report =
            Some(ReportFile::create(path).with_context(|| format!("creating {}", path.display()))?);
    }
    let ledger = Arc::new(Mutex::new(ledger));
    let permits = Arc::new(Semaphore::new(args.max_in_flight as usize));
    let reply_tag = replies.tag();
    let collector = tokio::spawn(collect_results(
        replies,
        ledger.clone(),
        permits.clone(),
        progress.clone(),
    ));
    let mut sender = Sender {
        channel: &channel,
        args,
        reply_to: &reply_to,
        user_id: user_id.as_ref(),
        ledger: &ledger,
        permits: &permits,
        progress: &progress,
        sequence: 0,
        file: 0,
    };
    for (input, whole) in &inputs {
        let kind = whole.map_or(MessageType::default_type(), |d| d.kind);
        sender.file = ledger
            .lock()
            .expect("ledger lock")
            .tally
            .start_file(&input.name, kind);
        match whole {
            Some(detected) => send_whole_file(&mut sender, input, detected).await?,
            None => send_split_batches(&mut sender, input).await?,
        }
    }

    let outcome = if args.wait {
        wait_for_results(args, &ledger).await;
        stop_collecting(&channel, reply_tag, collector).await;
        progress.finish();
        report_results(args, &mut ledger.lock().expect("ledger lock"))
    } else {
        stop_collecting(&channel, reply_tag, collector).await;
        progress.finish();
        let batches = ledger.lock().expect("ledger lock").tally.batches;
        println!("{batches} batch(es) published and confirmed");
        Ok(())
    };
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    outcome
}

/// Cancels the reply consumer with its handshake, then stops the collector. A consumer merely
/// dropped is cancelled in lapin's background; if the connection starts closing meanwhile,
/// lapin (4.12) turns that into a connection error (an ERROR line) and drops the socket.
async fn stop_collecting(channel: &Channel, tag: ShortString, collector: JoinHandle<()>) {
    let _ = channel
        .basic_cancel(tag, BasicCancelOptions::default())
        .await;
    collector.abort();
}

/// What a run will send.
struct Plan {
    /// Every input with how it is sent: `None` as Webex batches, else whole in its dialect.
    inputs: Vec<(Input, Option<Detected>)>,
    /// How many contacts the Webex inputs hold (`None` when stdin is among them).
    total: Option<u64>,
}

/// Plans every input. Every file is read once here, so a malformed one fails the run before
/// anything is sent.
fn plan_inputs(args: &PublishArgs) -> anyhow::Result<Plan> {
    let mut inputs = Vec::new();
    for input in input::expand(&args.inputs, args.format)? {
        let whole = plan(args, &input)?;
        inputs.push((input, whole));
    }
    let total = count_contacts(inputs.iter().filter(|(_, w)| w.is_none()).map(|(i, _)| i))?;
    Ok(Plan { inputs, total })
}

/// Counts every result addressed to this run in the ledger, once per published message,
/// and gives its in-flight permit back.
async fn collect_results(
    mut replies: Consumer,
    ledger: Arc<Mutex<Ledger>>,
    permits: Arc<Semaphore>,
    progress: Progress,
) {
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
        let replayed = matches!(
            reply
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(REPLAYED_HEADER)),
            Some(AMQPValue::Boolean(true))
        );
        let Ledger {
            tally,
            report,
            report_error,
            ..
        } = &mut *ledger;
        let contacts = tally.add(
            batch.file,
            &batch.batch_id,
            &result,
            &batch.source,
            replayed,
        );
        // Written now, not kept: a big file's failed contacts would otherwise all sit in
        // memory until the end.
        let failures = std::mem::take(&mut tally.failures);
        if let (Some(file), None) = (report.as_mut(), report_error.as_ref())
            && let Err(e) = file.append(&failures)
        {
            *report_error = Some(format!("{e:#}"));
        }
        progress.answered(contacts);
        permits.add_permits(1);
    }
}

/// A file of another dialect than Webex: as it is, or, with more contacts than
/// `--batch-size`, as messages of its own dialect and format, each failure traced to its
/// position in the file.
async fn send_whole_file(
    sender: &mut Sender<'_>,
    input: &Input,
    detected: &Detected,
) -> anyhow::Result<()> {
    let args = sender.args;
    let body = blocking(|| input.read_all())?;
    let content_type = args
        .content_type
        .as_deref()
        .unwrap_or(detected.content_type);
    let message = |body: Vec<u8>| -> anyhow::Result<Message<'_>> {
        Ok(Message {
            batch_id: match dialect::id_digest(Some(detected.kind.as_str()), &body) {
                Some(digest) => format!("sha256:{digest}"),
                None => bail!("{}: not JSON, and it mentions a password", input.name),
            },
            body,
            org: args.org.as_deref(),
            kind: detected.kind,
            content_type,
        })
    };
    let Some(chunks) = chunk::split(detected.kind, content_type, &body, args.batch_size as usize)
    else {
        return sender
            .send(&message(body)?, Source::File(input.name.clone()))
            .await;
    };
    for chunk in chunks {
        let origins = (chunk.first..chunk.first + chunk.count)
            .map(|index| input::Origin {
                file: input.name.clone(),
                position: None,
                index,
            })
            .collect();
        sender
            .send(&message(chunk.body)?, Source::Contacts(origins))
            .await?;
    }
    Ok(())
}

/// A Webex input (JSON batch or array, NDJSON, CSV, stdin): its records, read as they are
/// sent, in batches of `--batch-size` for the org.
async fn send_split_batches(sender: &mut Sender<'_>, input: &Input) -> anyhow::Result<()> {
    let args = sender.args;
    let (records, body_org) = blocking(|| input.records())?;
    let org = match (&args.org, body_org) {
        (Some(org), _) => org.clone(),
        (None, Some(org)) => org,
        (None, None) => bail!("{}: no org; pass --org", input.name),
    };
    let mut records = records.peekable();
    loop {
        let next = blocking(|| -> anyhow::Result<_> {
            let mut contacts = Vec::with_capacity(args.batch_size as usize);
            let mut origins = Vec::with_capacity(args.batch_size as usize);
            for record in records.by_ref().take(args.batch_size as usize) {
                let record = record?;
                contacts.push(record.contact);
                origins.push(record.origin);
            }
            Ok((contacts, origins))
        })?;
        let (contacts, origins) = next;
        if contacts.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(
            &json!({"schemas": CONTACT_SCHEMA, "orgId": org, "contacts": contacts}),
        )?;
        let message = Message {
            batch_id: format!("sha256:{}", ids::body_sha256(&body)),
            body,
            org: Some(&org),
            kind: MessageType::default_type(),
            content_type: detect::JSON,
        };
        sender.send(&message, Source::Contacts(origins)).await?;
    }
}

/// Returns once every published message is answered, or at `--timeout-secs`.
async fn wait_for_results(args: &PublishArgs, ledger: &Mutex<Ledger>) {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while !ledger.lock().expect("ledger lock").pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints the summary, completes `--report`, and fails unless every contact was stored.
fn report_results(args: &PublishArgs, ledger: &mut Ledger) -> anyhow::Result<()> {
    let tally = &ledger.tally;
    print!("{}", tally.table());
    println!("{}", tally.summary());
    if let (Some(path), Some(file)) = (&args.report, ledger.report.take()) {
        if let Some(e) = &ledger.report_error {
            bail!("writing {}: {e}", path.display());
        }
        let rows = file
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{rows} failed contact(s) written to {}", path.display());
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
        Err(NotAllStored("not every contact was stored (see the summary above)".into()).into())
    }
}

/// One message to publish: a Webex batch the producer built, or a file sent as it is.
struct Message<'a> {
    body: Vec<u8>,
    batch_id: String,
    /// Sent as the `org-id` header (DocuSign: also `account-id`).
    org: Option<&'a str>,
    kind: MessageType,
    content_type: &'a str,
}

/// Publishes the messages of one run, at most `--max-in-flight` unconfirmed (with --wait:
/// unanswered), each registered in the ledger under a fresh correlation id before it is sent.
struct Sender<'a> {
    channel: &'a Channel,
    args: &'a PublishArgs,
    reply_to: &'a ShortString,
    user_id: Option<&'a ShortString>,
    ledger: &'a Mutex<Ledger>,
    permits: &'a Semaphore,
    progress: &'a Progress,
    /// The last correlation id used: unique within this run, it is how a result is matched.
    sequence: u64,
    /// The input being sent: its line in the tally.
    file: usize,
}

impl Sender<'_> {
    async fn send(&mut self, message: &Message<'_>, source: Source) -> anyhow::Result<()> {
        let args = self.args;
        // Bounded: with --wait a permit comes back only with a result.
        tokio::time::timeout(
            Duration::from_secs(args.timeout_secs),
            self.permits.acquire(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no result for {} s with {} batches waiting; is a worker consuming {}?",
                args.timeout_secs,
                args.max_in_flight,
                args.broker.import_queue
            )
        })??
        .forget();
        self.sequence += 1;
        let contacts = match &source {
            Source::Contacts(origins) => origins.len(),
            Source::File(_) => 0,
        };
        if args.wait {
            let pending = Pending {
                batch_id: message.batch_id.clone(),
                source,
                file: self.file,
            };
            self.ledger
                .lock()
                .expect("ledger lock")
                .pending
                .insert(self.sequence, pending);
        }
        let properties = properties(args, message, self.sequence, self.reply_to, self.user_id);
        publish_confirmed(self.channel, &args.broker, &message.body, properties)
            .await
            .with_context(|| format!("publishing batch {}", message.batch_id))?;
        self.ledger
            .lock()
            .expect("ledger lock")
            .tally
            .published(self.file);
        self.progress.published(contacts);
        if !args.wait {
            self.permits.add_permits(1);
        }
        Ok(())
    }
}

/// The headers of every message `publish` sends, in every mode: the org, a new `x-send-id`
/// (tells the worker this message from every other one with its batch id), `x-dry-run` and
/// `x-result-detail` as asked.
fn request_headers(
    args: &PublishArgs,
    org: Option<&str>,
    kind: MessageType,
    detail: Option<ResultDetail>,
) -> FieldTable {
    let mut headers = org_headers(org, kind);
    headers.insert(
        SEND_ID_HEADER.into(),
        AMQPValue::LongString(uuid::Uuid::new_v4().to_string().into()),
    );
    if args.dry_run {
        headers.insert(DRY_RUN_HEADER.into(), AMQPValue::Boolean(true));
    }
    if let Some(detail) = detail {
        headers.insert(
            RESULT_DETAIL_HEADER.into(),
            AMQPValue::LongString(detail.as_str().into()),
        );
    }
    headers
}

/// A message's properties: what it is, how its result is matched and answered, who sends it.
fn properties(
    args: &PublishArgs,
    message: &Message<'_>,
    correlation_id: u64,
    reply_to: &ShortString,
    user_id: Option<&ShortString>,
) -> BasicProperties {
    // --wait needs only counts and failures: a summary, unless told otherwise.
    let detail = match (args.result_detail, args.wait) {
        (None, true) => Some(ResultDetail::Summary),
        (chosen, _) => chosen,
    };
    let mut headers = request_headers(args, message.org, message.kind, detail);
    if args.wait {
        // Counted and reported from the common result, whatever the dialect answers in.
        headers.insert(
            REPLY_FORMAT_HEADER.into(),
            AMQPValue::LongString(LongString::from("result")),
        );
    }
    let mut properties = BasicProperties::default()
        .with_content_type(message.content_type.into())
        .with_type(message.kind.as_str().into())
        .with_message_id(message.batch_id.as_str().into())
        .with_correlation_id(correlation_id.to_string().into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if args.wait {
        properties = properties.with_reply_to(reply_to.clone());
    }
    if let Some(user_id) = user_id {
        properties = properties.with_user_id(user_id.clone());
    }
    properties
}

/// The `org-id` header, and for DocuSign (whose org is its accountId) `account-id` too.
fn org_headers(org: Option<&str>, kind: MessageType) -> FieldTable {
    let mut headers = FieldTable::default();
    if let Some(org) = org {
        headers.insert(
            ORG_ID_HEADER.into(),
            AMQPValue::LongString(LongString::from(org)),
        );
        for header in kind.dialect().org_headers() {
            headers.insert(
                (*header).into(),
                AMQPValue::LongString(LongString::from(org)),
            );
        }
    }
    headers
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
fn count_contacts<'a>(inputs: impl Iterator<Item = &'a Input>) -> anyhow::Result<Option<u64>> {
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
    /// Messages published and confirmed.
    messages: u64,
    /// Contacts in them, as far as known: a file sent whole is counted when answered.
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
                messages: 0,
                published: 0,
                answered: 0,
                started: now,
                last_line: now,
            })),
        }
    }

    fn published(&self, contacts: usize) {
        let mut state = self.state.lock().expect("progress lock");
        state.messages += 1;
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
                // Files sent whole add no contacts until answered: the larger count is the
                // better rate.
                let contacts = state.published.max(state.answered);
                eprintln!(
                    "published {} message(s) ({} contacts), {} contacts answered, {:.0} contacts/s",
                    state.messages,
                    state.published,
                    state.answered,
                    contacts as f64 / secs
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
