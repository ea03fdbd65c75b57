//! `contact-import dlq`: look into the dead-letter queue, send letters back for another try,
//! and clear old ones.
//!
//! Looking must not wear a letter out. A letter read with `basic.get` and returned
//! unacknowledged counts as a failed delivery on a quorum queue: its `x-delivery-count` rises,
//! and at the queue's delivery limit (none by default before RabbitMQ 4.0, 20 by default
//! since; any `delivery-limit` policy) the broker drops it, the dead-letter queue having no
//! dead-letter exchange of its own. So every letter a command reads and does not remove is
//! put back as a confirmed copy at the tail of the queue, and only then is the original
//! acked (`Letters::keep`): its count starts again at nothing, on every broker version and
//! whatever the limit. A crash between the two leaves the letter twice, never zero times (a
//! batch replayed twice is applied once). A command reads at most the letters present when
//! it began, so it never meets its own copies.

use crate::broker;
use crate::broker::consume::{DELIVERY_COUNT_HEADER, ORG_ID_HEADER, header_str};
use crate::broker::publish::{
    ATTEMPTS_HEADER, DEAD_AT_HEADER, DEAD_ORG_ID_HEADER, ERROR_HEADER, Publisher, REASON_HEADER,
};
use crate::config::BrokerConfig;
use crate::dialect::{self, save};
use crate::rejection::RejectCode;
use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use std::time::{Duration, SystemTime};

/// `contact-import dlq …`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The broker and the dead-letter queue's (and, for `replay`, the import exchange's) names.
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// What to do with the dead-letter queue.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters without removing them: batch id, org, reason, attempts, first and
    /// last death, size.
    List {
        /// Most letters to read.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Print one dead letter (by batch id): its headers and its body.
    Show {
        /// The batch id, as `dlq list` shows it.
        id: String,
    },
    /// Publish dead letters to the import exchange again, then remove them from the
    /// dead-letter queue. A letter is removed only after the broker confirmed its copy, so a
    /// replay stopped half-way loses nothing; a batch that ends up published twice is applied
    /// once (its batch id is its idempotency key).
    Replay {
        /// Batch ids to replay (repeat the flag).
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<String>,
        /// Replay every letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Replay at most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Replay letters refused because their sender was not allowed (`missing.user.id`,
        /// `org.forbidden`, `reply.to.forbidden`) too. They are skipped by default: replayed,
        /// they are sent as you, and your grants would let in what the sender's did not.
        #[arg(long)]
        include_refused: bool,
    },
    /// Remove letters dead-lettered longer ago than DURATION (e.g. `7d`, `12h`). Without
    /// `--yes` it only counts them.
    Purge {
        /// Least time since a letter's last death; letters without a death time are kept.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Really remove them.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs the command. Letters it reads and does not remove are put back (see the module
/// documentation); an interrupted command leaves unacked letters to return with the channel.
pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let queue = &args.broker.dead_letter_queue;
    with_letters(&args.broker, "contact-import dlq", async |letters, publisher| {
        match args.command {
            DlqCommand::List { limit } => list(letters, limit).await,
            DlqCommand::Show { id } => show(letters, &id).await,
            DlqCommand::Replay {
                ids,
                all,
                limit,
                include_refused,
            } => {
                let wanted = |letter: &Letter| {
                    let wanted = all || ids.contains(&letter.facts.batch_id);
                    if wanted && letter.facts.refused() && !include_refused {
                        eprintln!(
                            "skipped {} ({}: its sender was not allowed; --include-refused sends it \
                             as you)",
                            letter.facts.batch_id, letter.facts.reason
                        );
                        return false;
                    }
                    wanted
                };
                // The copy can carry no user_id but ours: the replay is sent as the operator,
                // whose grants a worker in `grants` mode then checks.
                let nodes = broker::endpoints(&args.broker.amqp_url)?;
                let replayer = nodes[0].login_user();
                let replayed = replay(letters, publisher, wanted, limit, replayer).await?;
                for done in &replayed {
                    eprintln!("replayed {} ({})", done.batch_id, done.reason);
                }
                eprintln!("{} dead letter(s) replayed", replayed.len());
                Ok(())
            }
            DlqCommand::Purge { older_than, yes } => {
                let matched = purge(letters, older_than, yes).await?.len();
                if yes {
                    eprintln!("removed {matched} dead letter(s) older than {older_than:?} from {queue}");
                } else {
                    eprintln!(
                        "{matched} dead letter(s) older than {older_than:?} in {queue}; run again with --yes to remove them"
                    );
                }
                Ok(())
            }
        }
    })
    .await
}

/// One dead letter as read from the queue.
struct Letter {
    message: BasicGetMessage,
    facts: LetterFacts,
}

impl Letter {
    fn read(message: BasicGetMessage) -> Self {
        let facts = LetterFacts::read(&message.delivery);
        Self { message, facts }
    }

    fn size(&self) -> usize {
        self.message.delivery.data.len()
    }
}

/// What a dead letter's properties and headers say of it (the console's recorder reads the
/// same from the dead-letter stream).
#[derive(Clone)]
pub struct LetterFacts {
    /// The message id, else the worker's `x-contact-import-batch-id`, else `-`.
    pub batch_id: String,
    /// The org the worker named, else the `org-id` header, else the body's `orgId`, else `-`.
    pub org: String,
    /// The worker's reason code, else the broker's (`delivery_limit`, say), else `-`.
    pub reason: String,
    /// The worker's count of deliveries (`x-contact-import-attempts`), else the broker's
    /// dead-lettering count from `x-death`.
    pub attempts: String,
    /// The broker's `x-delivery-count`: how often the dead-letter queue handed this letter
    /// out and got it back (reads by an earlier `dlq`, a crashed one), not import attempts.
    pub returned: Option<i64>,
    /// The earliest death time the letter carries (the broker's `x-death`, or ours).
    pub first_death: Option<SystemTime>,
    /// The latest one: purges by age count from it.
    pub last_death: Option<SystemTime>,
}

impl LetterFacts {
    /// Whether the letter was refused because its sender was not allowed (`missing.user.id`,
    /// `org.forbidden`, `reply.to.forbidden`): replayed, it would be sent as the replayer.
    pub fn refused(&self) -> bool {
        RejectCode::ALL
            .iter()
            .any(|code| code.requester_only() && code.as_str() == self.reason)
    }

    /// Reads them off a delivery of the dead-letter queue or stream.
    pub fn read(delivery: &Delivery) -> Self {
        let props = &delivery.properties;
        let headers = props.headers().as_ref();
        let text = |name| header_str(headers, name).map(str::to_owned);
        let deaths = x_death(headers);
        let ours = match headers.and_then(|h| h.inner().get(DEAD_AT_HEADER)) {
            Some(AMQPValue::Timestamp(secs)) => Some(at(*secs)),
            _ => None,
        };
        let times = deaths.iter().map(|d| d.time).chain(ours);
        let batch_id = props
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .or_else(|| text("x-contact-import-batch-id"))
            .unwrap_or_else(|| "-".into());
        let org = text(DEAD_ORG_ID_HEADER)
            .or_else(|| text(ORG_ID_HEADER))
            .or_else(|| body_org(&delivery.data))
            .unwrap_or_else(|| "-".into());
        let reason = text(REASON_HEADER)
            .or_else(|| deaths.first().map(|d| d.reason.clone()))
            .unwrap_or_else(|| "-".into());
        let attempts = match headers.and_then(|h| h.inner().get(ATTEMPTS_HEADER)) {
            Some(AMQPValue::LongLongInt(n)) => n.to_string(),
            _ => deaths
                .iter()
                .map(|d| d.count)
                .max()
                .map_or_else(|| "-".into(), |n| n.to_string()),
        };
        let returned = match headers.and_then(|h| h.inner().get(DELIVERY_COUNT_HEADER)) {
            Some(AMQPValue::LongLongInt(n)) => Some(*n),
            Some(AMQPValue::LongInt(n)) => Some(i64::from(*n)),
            _ => None,
        };
        Self {
            batch_id,
            org,
            reason,
            attempts,
            returned,
            first_death: times.clone().min(),
            last_death: times.max(),
        }
    }
}

/// One entry of the broker's `x-death` header.
struct Death {
    reason: String,
    count: i64,
    time: SystemTime,
}

fn x_death(headers: Option<&FieldTable>) -> Vec<Death> {
    let Some(AMQPValue::FieldArray(entries)) = headers.and_then(|h| h.inner().get("x-death"))
    else {
        return Vec::new();
    };
    entries
        .as_slice()
        .iter()
        .filter_map(|entry| match entry {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .filter_map(|t| {
            let time = match t.inner().get("time")? {
                AMQPValue::Timestamp(secs) => at(*secs),
                _ => return None,
            };
            let count = match t.inner().get("count") {
                Some(AMQPValue::LongLongInt(n)) => *n,
                _ => 1,
            };
            let reason = header_str(Some(t), "reason").unwrap_or("-").to_owned();
            Some(Death {
                reason,
                count,
                time,
            })
        })
        .collect()
}

/// A header value as a person reads it: text as text, timestamps as dates.
pub fn readable(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Timestamp(secs) => time(Some(at(*secs))),
        AMQPValue::FieldArray(items) => {
            let items: Vec<String> = items.as_slice().iter().map(readable).collect();
            format!("[{}]", items.join(", "))
        }
        AMQPValue::FieldTable(table) => {
            let entries: Vec<String> = table
                .inner()
                .iter()
                .map(|(k, v)| format!("{k}: {}", readable(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// A header's timestamp; one past what a clock can hold (a producer's header, kept by the
/// broker's dead-lettering) reads as the latest time chrono can hold, never a panic.
fn at(secs: u64) -> SystemTime {
    let latest = DateTime::<Utc>::MAX_UTC.timestamp() as u64;
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs.min(latest))
}

/// The body's `orgId`, for letters dead-lettered by the broker (no header names the org).
fn body_org(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("orgId")?.as_str().map(str::to_owned)
}

fn time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The letters of the dead-letter queue, each read once: at most as many as it held when the
/// command began, so that the copies [`Letters::keep`] puts back at the tail (and letters
/// dead-lettered meanwhile) are not read again.
struct Letters<'a> {
    channel: &'a Channel,
    queue: &'a str,
    publisher: &'a Publisher,
    left: u32,
}

impl<'a> Letters<'a> {
    async fn open(
        channel: &'a Channel,
        queue: &'a str,
        publisher: &'a Publisher,
    ) -> anyhow::Result<Self> {
        let present = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("counting the letters in {queue}"))?
            .message_count();
        Ok(Self {
            channel,
            queue,
            publisher,
            left: present,
        })
    }

    /// The next letter, or `None` when every letter present at the start has been read.
    async fn next(&mut self) -> anyhow::Result<Option<Letter>> {
        if self.left == 0 {
            return Ok(None);
        }
        let message = self
            .channel
            .basic_get(self.queue.into(), BasicGetOptions { no_ack: false })
            .await
            .with_context(|| format!("reading {}", self.queue))?;
        self.left = if message.is_some() { self.left - 1 } else { 0 };
        Ok(message.map(Letter::read))
    }

    /// Keeps a letter that was only looked at: a confirmed copy at the tail of the queue,
    /// then the original acked (see the module documentation for why not a plain return).
    async fn keep(&self, letter: Letter) -> anyhow::Result<()> {
        let delivery = &letter.message.delivery;
        self.publisher
            .put_back(self.queue, delivery)
            .await
            .with_context(|| {
                format!("putting {} back into {}", letter.facts.batch_id, self.queue)
            })?;
        self.remove(letter).await
    }

    /// Acks the letter: it leaves the queue.
    async fn remove(&self, letter: Letter) -> anyhow::Result<()> {
        letter
            .message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .with_context(|| format!("removing {} from {}", letter.facts.batch_id, self.queue))?;
        Ok(())
    }
}

async fn list(letters: &mut Letters<'_>, limit: usize) -> anyhow::Result<()> {
    println!("BATCH ID\tORG\tREASON\tATTEMPTS\tFIRST DEATH\tLAST DEATH\tBYTES");
    let mut seen = 0;
    while seen < limit {
        let Some(letter) = letters.next().await? else {
            break;
        };
        seen += 1;
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            letter.facts.batch_id,
            letter.facts.org,
            letter.facts.reason,
            letter.facts.attempts,
            time(letter.facts.first_death),
            time(letter.facts.last_death),
            letter.size()
        );
        letters.keep(letter).await?;
    }
    eprintln!("{seen} dead letter(s) in {}", letters.queue);
    Ok(())
}

async fn show(letters: &mut Letters<'_>, id: &str) -> anyhow::Result<()> {
    while let Some(letter) = letters.next().await? {
        if letter.facts.batch_id != id {
            letters.keep(letter).await?;
            continue;
        }
        let delivery = &letter.message.delivery;
        println!("batch id: {}", letter.facts.batch_id);
        println!("org:      {}", letter.facts.org);
        println!("reason:   {}", letter.facts.reason);
        println!("attempts: {}", letter.facts.attempts);
        // 0 on a letter's first delivery from a queue with a delivery limit: nothing to say.
        if let Some(returned) = letter.facts.returned.filter(|n| *n > 0) {
            println!(
                "returned to the dead-letter queue: {returned} time(s) (the broker's \
                 {DELIVERY_COUNT_HEADER}: letters read and not acked, not import attempts)"
            );
        }
        if let Some(headers) = delivery.properties.headers() {
            for (name, value) in headers.inner() {
                if name.as_str() == DELIVERY_COUNT_HEADER {
                    continue;
                }
                println!("header {name}: {}", readable(value));
            }
        }
        println!("{}", shown_body(&delivery.data));
        return letters.keep(letter).await;
    }
    bail!("no dead letter with batch id {id} in {}", letters.queue)
}

/// A letter sent back to the import exchange.
struct Replayed {
    batch_id: String,
    org: String,
    reason: String,
}

async fn replay(
    letters: &mut Letters<'_>,
    publisher: &Publisher,
    wanted: impl Fn(&Letter) -> bool,
    limit: Option<usize>,
    replayer: Option<&str>,
) -> anyhow::Result<Vec<Replayed>> {
    // Only the letters there now (`Letters`): a replayed batch that fails again comes back
    // as a new letter, and must not be replayed again in the same run.
    let mut replayed = Vec::new();
    while limit.is_none_or(|limit| replayed.len() < limit) {
        let Some(letter) = letters.next().await? else {
            break;
        };
        if !wanted(&letter) {
            letters.keep(letter).await?;
            continue;
        }
        let delivery = &letter.message.delivery;
        let mut properties = fresh_properties(&delivery.properties);
        if let Some(user) = replayer {
            properties = properties.with_user_id(user.into());
        }
        publisher
            .publish_batch(&delivery.data, properties)
            .await
            .with_context(|| format!("republishing {}", letter.facts.batch_id))?;
        let done = Replayed {
            batch_id: letter.facts.batch_id.clone(),
            org: letter.facts.org.clone(),
            reason: letter.facts.reason.clone(),
        };
        letters.remove(letter).await?;
        replayed.push(done);
    }
    Ok(replayed)
}

/// The letter's properties without the history of its death, so the worker gives it every
/// delivery again and does not mistake it for a redelivery.
fn fresh_properties(original: &BasicProperties) -> BasicProperties {
    let Some(headers) = original.headers() else {
        return original.clone();
    };
    let kept: FieldTable = headers
        .inner()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !(name == "x-death"
                || name == DELIVERY_COUNT_HEADER
                || name.starts_with("x-first-death-")
                || name.starts_with("x-last-death-")
                || name.starts_with("x-contact-import-")
                || name == ERROR_HEADER)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into();
    original.clone().with_headers(kept)
}

/// Removes (with `yes`) the letters dead longer than `older_than`, and returns what those
/// letters said of themselves (all of them, removed or, without `yes`, only counted).
async fn purge(
    letters: &mut Letters<'_>,
    older_than: Duration,
    yes: bool,
) -> anyhow::Result<Vec<LetterFacts>> {
    let cutoff = SystemTime::now() - older_than;
    let mut matched = Vec::new();
    while let Some(letter) = letters.next().await? {
        // A letter with no death time is kept: nothing says it is old.
        if letter.facts.last_death.is_none_or(|t| t > cutoff) {
            letters.keep(letter).await?;
            continue;
        }
        matched.push(letter.facts.clone());
        if yes {
            letters.remove(letter).await?;
        } else {
            letters.keep(letter).await?;
        }
    }
    Ok(matched)
}

/// Replays the letters whose (batch id, org) are in `ids` (`-` for a letter that names no
/// org), as the console does for its operators: the same pass as `dlq replay --id …`
/// (refused senders' letters skipped), sent as the broker user of `broker`'s URL. Returns
/// the (batch id, org) of each letter replayed.
pub async fn replay_batches(
    broker: &BrokerConfig,
    ids: &std::collections::HashSet<(String, String)>,
) -> anyhow::Result<Vec<(String, String)>> {
    with_letters(
        broker,
        "contact-import console",
        async |letters, publisher| {
            let wanted = |letter: &Letter| {
                ids.contains(&(letter.facts.batch_id.clone(), letter.facts.org.clone()))
                    && !letter.facts.refused()
            };
            let nodes = broker::endpoints(&broker.amqp_url)?;
            let replayer = nodes[0].login_user();
            let replayed = replay(letters, publisher, wanted, None, replayer).await?;
            Ok(replayed.into_iter().map(|r| (r.batch_id, r.org)).collect())
        },
    )
    .await
}

/// Removes the letters dead longer than `older_than` from the dead-letter queue, as
/// `dlq purge --yes` does; returns what each removed letter said of itself.
pub async fn purge_queue(
    broker: &BrokerConfig,
    older_than: Duration,
) -> anyhow::Result<Vec<LetterFacts>> {
    with_letters(broker, "contact-import console", async |letters, _| {
        purge(letters, older_than, true).await
    })
    .await
}

/// Runs `work` on the dead-letter queue's letters, on a connection of its own that is closed
/// afterwards (which returns any letter `work` left unacked).
async fn with_letters<T>(
    broker: &BrokerConfig,
    name: &str,
    work: impl AsyncFnOnce(&mut Letters<'_>, &Publisher) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (connection, channel) = broker::open_declared(broker, name).await?;
    let outcome = match Publisher::open(&connection, broker.clone()).await {
        Ok(publisher) => {
            let done = async {
                let mut letters =
                    Letters::open(&channel, &broker.dead_letter_queue, &publisher).await?;
                work(&mut letters, &publisher).await
            }
            .await;
            let _ = publisher.channel().close(200, "done".into()).await;
            done
        }
        Err(e) => Err(e.into()),
    };
    // Each channel is closed with its handshake before the connection: a channel's close-ok
    // comes after the broker took every ack sent on it. A channel handle merely dropped is
    // closed in lapin's background instead; if the connection starts closing meanwhile,
    // lapin (4.12) fails that close, turns it into a connection error and drops the socket,
    // with acks the broker has not read yet (a replayed letter then stays in the queue).
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    outcome
}

/// A letter's body without account passwords: Save User Contacts letters carry them (kept
/// for the replay, never shown). JSON has them masked; a body that is not JSON and mentions
/// a password is withheld (`None`).
pub fn without_passwords(data: &[u8]) -> Option<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(mut json) => {
            save::hide_passwords(&mut json, Some("<hidden>"));
            Some(serde_json::to_vec(&json).expect("a JSON value serialises"))
        }
        Err(_) if dialect::mentions_password(data) => None,
        Err(_) => Some(data.to_vec()),
    }
}

/// A letter's body as `dlq show` and the console show it: [`without_passwords`], JSON
/// pretty-printed.
pub fn shown_body(data: &[u8]) -> String {
    let Some(shown) = without_passwords(data) else {
        return format!(
            "(body not shown: it is not JSON and mentions a password; {} bytes)",
            data.len()
        );
    };
    match serde_json::from_slice::<serde_json::Value>(&shown) {
        Ok(json) => serde_json::to_string_pretty(&json).expect("a JSON value serialises"),
        Err(_) => String::from_utf8_lossy(&shown).into_owned(),
    }
}
