//! Declares exchanges and queues, idempotently. Queue arguments cannot change once a queue
//! exists: a declaration that disagrees with the broker fails with PRECONDITION_FAILED.

use crate::config::{BrokerConfig, MAX_INTAKE_SHARDS};
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

/// Declares the dead-letter exchange, queue and stream, the import exchange and quorum queue (with their
/// arguments, see docs/producer.md), the intake (see `CONTACT_IMPORT_INTAKE_SHARDS`) and the results
/// exchange, on channels of its own on `connection`; safe to run from every worker at start.
pub async fn declare(connection: &Connection, cfg: &BrokerConfig) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    declare_on(&channel, cfg).await?;
    bind_intake(connection, &channel, cfg).await?;
    // Best effort: the connection's close closes it anyway.
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}

/// Everything [`declare`] declares but the import exchange's binding.
async fn declare_on(channel: &Channel, cfg: &BrokerConfig) -> lapin::Result<()> {
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
    bind(
        channel,
        &cfg.dead_letter_queue,
        &cfg.dead_letter_exchange,
        "",
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
    bind(channel, &log, &cfg.dead_letter_exchange, "").await?;

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
        .exchange_declare(
            cfg.results_exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Binds the import exchange to the intake. With one intake shard (the default), to the
/// import queue directly. With more, through the `x-random` exchange [`intake_exchange`] to
/// the [`intake_queues`], so that no single queue leader takes every batch.
///
/// Once the intake exchange exists it is the setting: a process whose own setting is 1 (a
/// tool, an older configuration) keeps the intake spread, and repairs a direct binding an
/// older version added again; binding the import queue directly beside the intake exchange
/// would queue twice every batch the random exchange sends elsewhere.
async fn bind_intake(
    connection: &Connection,
    channel: &Channel,
    cfg: &BrokerConfig,
) -> lapin::Result<()> {
    if cfg.intake_shards > 1 {
        channel
            .exchange_declare(
                intake_exchange(cfg).as_str().into(),
                ExchangeKind::Custom(RANDOM_EXCHANGE.into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        spread(channel, cfg).await?;
        for queue in intake_queues(cfg).iter().skip(1) {
            declare_spread_queue(channel, cfg, queue, &intake_exchange(cfg), "").await?;
        }
        return Ok(());
    }
    if intake_exists(connection, cfg).await? {
        tracing::info!(
            exchange = %intake_exchange(cfg),
            "the intake is spread over several queues (its exchange exists); keeping it so"
        );
        spread(channel, cfg).await?;
        // An operator going back to one queue may have deleted it since we looked: then the
        // import exchange must not be left without its direct binding.
        if !intake_exists(connection, cfg).await? {
            bind_directly(channel, cfg).await?;
        }
        return Ok(());
    }
    bind_directly(channel, cfg).await?;
    // A process with more shards may have spread the intake since we looked.
    if intake_exists(connection, cfg).await? {
        return spread(channel, cfg).await;
    }
    Ok(())
}

/// Binds the import queue to the import exchange for the import routing key.
async fn bind_directly(channel: &Channel, cfg: &BrokerConfig) -> lapin::Result<()> {
    bind(
        channel,
        &cfg.import_queue,
        &cfg.import_exchange,
        &cfg.import_routing_key,
    )
    .await
}

/// Binds `queue` to `exchange` for `key`.
pub async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Routes the import exchange through the (existing) intake exchange instead of to the import
/// queue directly, in an order that neither loses nor doubles a batch: the import queue is
/// bound to the intake exchange first and is its only queue until the direct binding is gone
/// (a batch that reaches one queue by two routes is queued once), and the intake exchange is
/// bound before the direct binding is removed. Idempotent.
async fn spread(channel: &Channel, cfg: &BrokerConfig) -> lapin::Result<()> {
    let exchange = intake_exchange(cfg);
    bind(channel, &cfg.import_queue, &exchange, "").await?;
    channel
        .exchange_bind(
            exchange.as_str().into(),
            cfg.import_exchange.as_str().into(),
            cfg.import_routing_key.as_str().into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_unbind(
            cfg.import_queue.as_str().into(),
            cfg.import_exchange.as_str().into(),
            cfg.import_routing_key.as_str().into(),
            FieldTable::default(),
        )
        .await
}

/// The intake queues that exist: the import queue and `<import queue>.intake.<n>` from 1 up
/// to the first that does not (they are declared, and removed by hand, from the top), and at
/// least those of the setting. What a worker consumes, so that no intake queue is left
/// unread by a fleet whose setting is lower than the broker's.
pub async fn present_intake_queues(
    connection: &Connection,
    cfg: &BrokerConfig,
) -> lapin::Result<Vec<String>> {
    let mut queues = intake_queues(cfg);
    while queues.len() < usize::from(MAX_INTAKE_SHARDS) {
        let next = intake_queue(cfg, queues.len());
        if !exists(connection, ExistsKind::Queue, &next).await? {
            break;
        }
        queues.push(next);
    }
    Ok(queues)
}

/// The exchange type of the rabbitmq_random_exchange plugin, which ships with RabbitMQ.
pub const RANDOM_EXCHANGE: &str = "x-random";

/// `<import exchange>.intake`: spreads batches over the intake queues, with more than one.
pub fn intake_exchange(cfg: &BrokerConfig) -> String {
    format!("{}.intake", cfg.import_exchange)
}

/// The queues batches arrive on: the import queue, then `<import queue>.intake.<n>` for n
/// from 1 below `CONTACT_IMPORT_INTAKE_SHARDS`.
pub fn intake_queues(cfg: &BrokerConfig) -> Vec<String> {
    std::iter::once(cfg.import_queue.clone())
        .chain((1..usize::from(cfg.intake_shards)).map(|n| intake_queue(cfg, n)))
        .collect()
}

/// `<import queue>.intake.<n>`, n from 1.
fn intake_queue(cfg: &BrokerConfig, n: usize) -> String {
    format!("{}.intake.{n}", cfg.import_queue)
}

/// Whether the intake exchange exists.
async fn intake_exists(connection: &Connection, cfg: &BrokerConfig) -> lapin::Result<bool> {
    exists(connection, ExistsKind::Exchange, &intake_exchange(cfg)).await
}

enum ExistsKind {
    Exchange,
    Queue,
}

/// Whether an exchange or queue exists, asked with a passive declare on a channel of its own
/// (the broker closes a channel whose passive declare names nothing).
async fn exists(connection: &Connection, kind: ExistsKind, name: &str) -> lapin::Result<bool> {
    let probe = connection.create_channel().await?;
    let asked = match kind {
        ExistsKind::Exchange => {
            let passive = ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            };
            probe
                .exchange_declare(
                    name.into(),
                    ExchangeKind::Custom(RANDOM_EXCHANGE.into()),
                    passive,
                    FieldTable::default(),
                )
                .await
        }
        ExistsKind::Queue => {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            probe
                .queue_declare(name.into(), passive, FieldTable::default())
                .await
                .map(|_| ())
        }
    };
    match asked {
        Ok(()) => {
            let _ = probe.close(200, "asked".into()).await;
            Ok(true)
        }
        Err(e) if super::not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Declares `queue`, an intake or lane queue (durable, [`spread_queue_arguments`]), and binds
/// it to `exchange` for `key`.
pub(crate) async fn declare_spread_queue(
    channel: &Channel,
    cfg: &BrokerConfig,
    queue: &str,
    exchange: &str,
    key: &str,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), durable, spread_queue_arguments(cfg))
        .await?;
    bind(channel, queue, exchange, key).await
}

/// The import queue's arguments, and leaders placed on the node with the fewest
/// (`x-queue-leader-locator: balanced`, RabbitMQ 3.10+), so that queues meant to spread
/// (intake and lane queues) do not all land on the node of the worker that declared them
/// first. The import queue itself keeps its arguments: an existing queue refuses new ones.
fn spread_queue_arguments(cfg: &BrokerConfig) -> FieldTable {
    let mut args = import_queue_arguments(cfg);
    args.insert("x-queue-leader-locator".into(), text("balanced"));
    args
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
