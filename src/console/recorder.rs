//! Copies every dead letter from the dead-letter stream (`<dead-letter queue>.log`, which
//! the dead-letter exchange feeds beside the queue) into `dead_letters`, going on from the
//! last offset recorded. Several consoles may record at once: a row per offset, written once.

use super::Shared;
use crate::broker::consume::DELIVERY_COUNT_HEADER;
use crate::broker::consume::header_str;
use crate::broker::publish::{DEAD_AT_HEADER, DEAD_USER_ID_HEADER, ERROR_HEADER};
use crate::broker::topology;
use crate::commands::dlq::{LetterFacts, readable, without_passwords};
use crate::store::dead_letters::{self, NewLetter};
use chrono::{DateTime, Utc};
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;
use tracing::{info, warn};

/// Letters read ahead of the database.
const PREFETCH: u16 = 100;

/// Records until the process ends; a broken connection is made again after a pause.
pub async fn run(console: Shared) {
    let mut last_error = String::new();
    loop {
        // In a task of its own: a panic on one letter must not end recording for good.
        let recording = tokio::spawn({
            let console = console.clone();
            async move { record(&console).await.map_err(|e| format!("{e:#}")) }
        });
        match recording
            .await
            .unwrap_or_else(|e| Err(format!("the recorder panicked: {e}")))
        {
            Ok(()) => {}
            Err(e) => {
                if e != last_error {
                    warn!(error = %e, "recording dead letters stopped; trying again every 5 s");
                    last_error = e;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn record(console: &Shared) -> anyhow::Result<()> {
    let broker = &console.config.broker;
    let (connection, channel) =
        crate::broker::open_declared(broker, "contact-import console recorder").await?;
    let stream = topology::dead_letter_stream(broker);
    let next = {
        let client = console.pool.get().await?;
        dead_letters::next_offset(&**client, &stream).await?
    };
    // A stream consumer needs a prefetch, and starts where the records end.
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-stream-offset".into(),
        match next {
            Some(offset) => AMQPValue::LongLongInt(offset),
            None => AMQPValue::LongString("first".into()),
        },
    );
    let mut consumer = channel
        .basic_consume(
            stream.as_str().into(),
            "contact-import-console-recorder".into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await?;
    info!(stream = %stream, from = ?next, "recording dead letters");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        // Attached at an offset, a stream delivers from the start of its chunk: what comes
        // before `next` was recorded (and may have been pruned since).
        let Some(offset) = stream_offset(&delivery).filter(|o| next.is_none_or(|n| *o >= n)) else {
            delivery.acker.ack(BasicAckOptions::default()).await?;
            continue;
        };
        let client = console.pool.get().await?;
        match dead_letters::record(&**client, &stream, &letter_of(&delivery, offset)).await {
            Ok(()) => {}
            // A value PostgreSQL cannot store (the producer's bytes: class 22, data
            // exceptions; 54, a value over an index's size limit) must not stop the recorder
            // at this offset for good: the letter stays in the queue, unrecorded.
            Err(e)
                if e.code()
                    .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("54")) =>
            {
                warn!(offset, error = %e, "a dead letter could not be recorded; skipped (it stays in the queue)");
                dead_letters::skip(&**client, &stream, offset).await?;
            }
            Err(e) => return Err(e.into()),
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// The record of a letter: what its properties and headers say, and its body with any
/// account password hidden (replays read the queue, not this copy). Text loses NUL
/// characters, which PostgreSQL cannot store.
fn letter_of(delivery: &Delivery, offset: i64) -> NewLetter {
    let facts = LetterFacts::read(delivery);
    let headers = delivery.properties.headers().as_ref();
    let text = |s: &str| s.replace('\0', "");
    let header_json: serde_json::Map<String, serde_json::Value> = headers
        .map(|h| {
            h.inner()
                .iter()
                .filter(|(name, _)| {
                    !matches!(name.as_str(), "x-stream-offset" | DELIVERY_COUNT_HEADER)
                })
                .map(|(name, value)| (text(name.as_str()), text(&readable(value)).into()))
                .collect()
        })
        .unwrap_or_default();
    let dead_at = match headers.and_then(|h| h.inner().get(DEAD_AT_HEADER)) {
        Some(AMQPValue::Timestamp(secs)) => DateTime::from_timestamp(*secs as i64, 0),
        _ => None,
    }
    .or_else(|| facts.last_death.map(DateTime::<Utc>::from))
    .unwrap_or_else(Utc::now);
    // Ids are the producer's: an org only when it is a valid one, a batch id cut to what an
    // index holds.
    let org = crate::ids::OrgId::parse(&facts.org)
        .ok()
        .filter(|_| facts.org != "-")
        .map(|o| text(o.as_str()));
    let batch_id: String = text(&facts.batch_id).chars().take(512).collect();
    let body = without_passwords(&delivery.data).unwrap_or_default();
    NewLetter {
        offset,
        batch_id,
        org_id: org,
        reason: text(&facts.reason),
        error: header_str(headers, ERROR_HEADER).map(text),
        attempts: facts.attempts.parse().ok(),
        message_type: delivery
            .properties
            .kind()
            .as_ref()
            .map(|k| text(k.as_str())),
        publisher: header_str(headers, DEAD_USER_ID_HEADER)
            .map(text)
            .or_else(|| {
                delivery
                    .properties
                    .user_id()
                    .as_ref()
                    .map(|u| text(u.as_str()))
            }),
        dead_at,
        headers: serde_json::Value::Object(header_json),
        body,
    }
}

/// The offset RabbitMQ gives a message read from a stream.
fn stream_offset(delivery: &Delivery) -> Option<i64> {
    match delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-stream-offset")?
    {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}
