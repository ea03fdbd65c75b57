//! Copies every dead letter from the dead-letter stream (`<dead-letter queue>.log`, which
//! the dead-letter exchange feeds beside the queue) into `dead_letters`, going on from the
//! last offset recorded. Several consoles may record at once: a row per offset, written once.

use super::Shared;
use crate::broker::consume::DELIVERY_COUNT_HEADER;
use crate::broker::publish::{DEAD_AT_HEADER, ERROR_HEADER};
use crate::broker::topology;
use crate::commands::dlq::{LetterFacts, readable};
use crate::store::dead_letters::{self, NewLetter};
use chrono::{DateTime, Utc};
use futures_lite::StreamExt;
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
        match record(&console).await {
            Ok(()) => {}
            Err(e) => {
                let e = format!("{e:#}");
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
        dead_letters::next_offset(&**client).await?
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
        let Some(offset) = stream_offset(&delivery) else {
            delivery.acker.ack(BasicAckOptions::default()).await?;
            continue;
        };
        let facts = LetterFacts::read(&delivery);
        let headers = delivery.properties.headers().as_ref();
        let header_json: serde_json::Map<String, serde_json::Value> = headers
            .map(|h| {
                h.inner()
                    .iter()
                    .filter(|(name, _)| {
                        !matches!(name.as_str(), "x-stream-offset" | DELIVERY_COUNT_HEADER)
                    })
                    .map(|(name, value)| (name.to_string(), readable(value).into()))
                    .collect()
            })
            .unwrap_or_default();
        let header_json = serde_json::Value::Object(header_json);
        let error = crate::broker::consume::header_str(headers, ERROR_HEADER);
        let dead_at = match headers.and_then(|h| h.inner().get(DEAD_AT_HEADER)) {
            Some(AMQPValue::Timestamp(secs)) => DateTime::from_timestamp(*secs as i64, 0),
            _ => None,
        }
        .or_else(|| facts.last_death.map(DateTime::<Utc>::from))
        .unwrap_or_else(Utc::now);
        let known = |s: &str| (s != "-").then(|| s.to_owned());
        let org = known(&facts.org);
        let publisher = crate::broker::consume::header_str(
            headers,
            crate::broker::publish::DEAD_USER_ID_HEADER,
        )
        .map(str::to_owned)
        .or_else(|| {
            delivery
                .properties
                .user_id()
                .as_ref()
                .map(|u| u.to_string())
        });
        let message_type = delivery.properties.kind().as_ref().map(|k| k.to_string());
        let letter = NewLetter {
            offset,
            batch_id: &facts.batch_id,
            org_id: org.as_deref(),
            reason: &facts.reason,
            error,
            attempts: facts.attempts.parse().ok(),
            message_type: message_type.as_deref(),
            publisher: publisher.as_deref(),
            dead_at,
            headers: &header_json,
            body: &delivery.data,
        };
        let client = console.pool.get().await?;
        dead_letters::record(&**client, &letter).await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// The offset RabbitMQ gives a message read from a stream.
fn stream_offset(delivery: &lapin::message::Delivery) -> Option<i64> {
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
