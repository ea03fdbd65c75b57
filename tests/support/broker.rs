//! RabbitMQ: a test's own topology names, confirm-mode channels, the exclusive reply queue
//! on the results exchange, confirmed publishes, queue depths and header values.

use contact_import::broker::lanes::Lanes;
use contact_import::broker::topology;
use contact_import::config::{BrokerConfig, LaneConfig};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, PublisherConfirm};

/// The topology of `amqp_url` with every exchange and queue name under `prefix` (e.g.
/// `t1234.`), so that runs sharing a broker never see each other's messages.
pub fn names(amqp_url: &str, prefix: &str, delivery_limit: u32) -> BrokerConfig {
    BrokerConfig {
        amqp_url: amqp_url.to_owned(),
        amqp_url_file: None,
        import_exchange: format!("{prefix}contacts.import"),
        import_queue: format!("{prefix}contacts.import"),
        import_routing_key: "contacts.import".into(),
        dead_letter_exchange: format!("{prefix}contacts.import.dlx"),
        dead_letter_queue: format!("{prefix}contacts.import.dead"),
        results_exchange: format!("{prefix}contacts.results"),
        delivery_limit,
        intake_shards: 1,
    }
}

/// The default topology (docs/producer.md, "Broker topology") of a broker of one's own.
pub fn default_names(amqp_url: &str) -> BrokerConfig {
    names(amqp_url, "", 5)
}

/// A new channel in publisher-confirm mode.
pub async fn confirm_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// An exclusive, auto-deleted queue bound to the results exchange with `#`, consumed
/// without acks: every result published while the channel lives.
pub async fn subscribe_results(
    channel: &Channel,
    broker: &BrokerConfig,
) -> lapin::Result<Consumer> {
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            broker.results_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
}

/// The properties of a Webex batch (JSON) named `message_id`.
pub fn webex_properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_type("webex.contacts.bulk".into())
        .with_message_id(message_id.into())
}

/// Publishes `body` with `mandatory` (an unroutable message comes back); the broker's
/// confirm is awaited with the returned value (see [`routed`]).
pub async fn publish_mandatory(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> lapin::Result<PublisherConfirm> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await
}

/// Publishes a batch to the import exchange of `broker` (see [`publish_mandatory`]).
pub async fn publish_batch(
    channel: &Channel,
    broker: &BrokerConfig,
    body: &[u8],
    properties: BasicProperties,
) -> lapin::Result<PublisherConfirm> {
    publish_mandatory(
        channel,
        &broker.import_exchange,
        &broker.import_routing_key,
        body,
        properties,
    )
    .await
}

/// Whether the broker took the message and routed it to a queue.
pub fn routed(confirmation: Confirmation) -> bool {
    confirmation.is_ack() && confirmation.take_message().is_none()
}

/// How many messages `queue` holds, ready for delivery (not counting unacked ones).
pub async fn queue_depth(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    Ok(channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count())
}

/// Header `name` of a message as text, if it has it.
pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    Some(header_text(
        properties.headers().as_ref()?.inner().get(name)?,
    ))
}

/// A header value as text: strings and numbers as such, lists and tables spelled out.
pub fn header_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::FieldArray(items) => format!(
            "[{}]",
            items
                .as_slice()
                .iter()
                .map(header_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AMQPValue::FieldTable(table) => format!(
            "{{{}}}",
            table
                .inner()
                .iter()
                .map(|(k, v)| format!("{k}: {}", header_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// Shard counts up to which [`delete_topology`] deletes lane and intake queues: more than any
/// test or benchmark run uses.
const MAX_SHARDS: u16 = 8;

/// Leaves the broker as it was: deletes every queue, stream and exchange a worker with
/// `broker`'s names declares, the lanes included (for any shard count up to [`MAX_SHARDS`]).
/// Best effort: a name that is already gone is skipped (RabbitMQ closes the channel on some
/// refusals, so each deletion that fails gets a new one).
pub async fn delete_topology(connection: &Connection, broker: &BrokerConfig) {
    let lanes = Lanes::new(
        broker,
        &LaneConfig {
            bulk_shards: MAX_SHARDS,
            ..LaneConfig::default()
        },
    );
    let Ok(mut channel) = connection.create_channel().await else {
        return;
    };
    let dead_letter_log = topology::dead_letter_stream(broker);
    let intake = topology::intake_queues(&BrokerConfig {
        intake_shards: MAX_SHARDS,
        ..broker.clone()
    });
    let queues = [broker.dead_letter_queue.as_str(), &dead_letter_log]
        .into_iter()
        .chain(intake.iter().map(String::as_str))
        .chain(lanes.queues());
    for queue in queues {
        if channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .is_err()
        {
            let Ok(fresh) = connection.create_channel().await else {
                return;
            };
            channel = fresh;
        }
    }
    for exchange in [
        &broker.import_exchange,
        &broker.dead_letter_exchange,
        &broker.results_exchange,
        &lanes.exchange,
        &topology::intake_exchange(broker),
    ] {
        if channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .is_err()
        {
            let Ok(fresh) = connection.create_channel().await else {
                return;
            };
            channel = fresh;
        }
    }
}
