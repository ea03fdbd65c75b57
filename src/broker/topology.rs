//! Declares exchanges and queues, idempotently. Queue arguments cannot change once a queue
//! exists: a declaration that disagrees with the broker fails with PRECONDITION_FAILED.

use crate::config::BrokerConfig;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

/// Declares the dead-letter exchange, queue and stream, the import exchange and quorum queue (with their
/// arguments, see docs/producer.md) and the results exchange; safe to run from every worker at start.
pub async fn declare(channel: &Channel, cfg: &BrokerConfig) -> lapin::Result<()> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };

    // Fanout, so dead letters arrive whatever routing key they carried.
    channel
        .exchange_declare(
            cfg.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            cfg.dead_letter_queue.as_str().into(),
            durable_queue,
            quorum(),
        )
        .await?;
    channel
        .queue_bind(
            cfg.dead_letter_queue.as_str().into(),
            cfg.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    // A stream beside the dead-letter queue receives a copy of every dead letter: the
    // console records them from it by offset, so that looking at dead letters never reads
    // (and so never rewrites) the queue. Kept a week, in case the console is down.
    let mut stream = FieldTable::default();
    stream.insert("x-queue-type".into(), text("stream"));
    stream.insert("x-max-age".into(), text("7D"));
    let log = dead_letter_stream(cfg);
    channel
        .queue_declare(log.as_str().into(), durable_queue, stream)
        .await?;
    channel
        .queue_bind(
            log.as_str().into(),
            cfg.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    channel
        .exchange_declare(
            cfg.import_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            cfg.import_queue.as_str().into(),
            durable_queue,
            import_queue_arguments(cfg),
        )
        .await?;
    channel
        .queue_bind(
            cfg.import_queue.as_str().into(),
            cfg.import_exchange.as_str().into(),
            cfg.import_routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    channel
        .exchange_declare(
            cfg.results_exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// The stream that keeps a copy of every dead letter: `<dead-letter queue>.log`.
pub fn dead_letter_stream(cfg: &BrokerConfig) -> String {
    format!("{}.log", cfg.dead_letter_queue)
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    // No `x-quorum-initial-group-size`: RabbitMQ compares it when a queue is declared again,
    // so adding it would stop every worker of an existing deployment at start
    // (PRECONDITION_FAILED; tests/it/upgrade.rs): the broker's default replica count applies.
    // Nor an `x-delivery-limit` on the dead-letter queue, for the same reason, and because
    // RabbitMQ 3.x takes a negative limit (4.0's "unlimited", -1) as 0: a letter returned once
    // would be dropped. `dlq` never returns a letter instead (src/commands/dlq.rs).
    args
}

/// Quorum queues dead-letter at-most-once by default; at-least-once (which needs
/// `reject-publish` overflow) keeps a dead letter until the dead-letter queue confirmed it.
pub(crate) fn import_queue_arguments(cfg: &BrokerConfig) -> FieldTable {
    let mut args = quorum();
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(cfg.delivery_limit)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        text(&cfg.dead_letter_exchange),
    );
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    args
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
