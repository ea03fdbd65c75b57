//! Publishing with confirms: results (to the results exchange and to `reply_to`) and dead
//! letters. A publish counts only once the broker confirmed it.

use crate::broker::consume::{self, DELIVERY_COUNT_HEADER};
use crate::config::BrokerConfig;
use crate::dialect::{JSON, RequesterReply};
use crate::result::BatchStatus;
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionStatus};
use std::time::Duration;

/// Routing key of a result whose org could not be read.
pub const UNKNOWN_ORG_ROUTING_KEY: &str = "unknown";

/// Headers this worker adds to a message it dead-letters itself.
pub const REASON_HEADER: &str = "x-contact-import-reason";
/// The rejection's message, for people.
pub const ERROR_HEADER: &str = "x-contact-import-error";
/// The batch id the worker gave the message.
pub const BATCH_ID_HEADER: &str = "x-contact-import-batch-id";
/// Deliveries of the message so far, this one included.
pub const ATTEMPTS_HEADER: &str = "x-contact-import-attempts";
/// The batch's org, when it could be read.
pub const DEAD_ORG_ID_HEADER: &str = "x-contact-import-org-id";
/// The original's `user_id` (the broker user that published it), which the copy cannot
/// carry: the broker accepts only the dead-lettering worker's own user there.
pub const DEAD_USER_ID_HEADER: &str = "x-contact-import-user-id";
/// When the worker dead-lettered the message (AMQP timestamp, seconds).
pub const DEAD_AT_HEADER: &str = "x-contact-import-dead-lettered-at";

/// Why a message is dead-lettered; written into its headers.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterReason<'a> {
    /// `x-contact-import-batch-id`.
    pub batch_id: &'a str,
    /// `x-contact-import-org-id`, when the org could be read.
    pub org_id: Option<&'a str>,
    /// The rejection code (`x-contact-import-reason`).
    pub code: &'a str,
    /// `x-contact-import-error`: the message, for people.
    pub error: &'a str,
    /// `x-contact-import-attempts`: deliveries so far, this one included.
    pub attempts: u32,
}

/// Why a publish did not count as delivered.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The channel or connection failed.
    #[error("broker error while publishing: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker confirmed negatively.
    #[error("the broker refused the message (negative confirm)")]
    Nacked,
    /// Returned unroutable where a queue must exist (a replayed batch, a dead letter); names where it went.
    #[error("no queue is bound to receive the message ({0})")]
    Unroutable(String),
    /// No confirm within the timeout while the connection was not blocked.
    #[error("the broker did not confirm the message within {0:?}")]
    NoConfirm(Duration),
}

/// How long a confirm may take while the connection is not blocked. Past it the broker or
/// the channel is in trouble: the batch is requeued rather than held for ever, and the
/// channel is closed so that the worker starts a new session.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Returned by the broker when no queue takes the message.
const MANDATORY: BasicPublishOptions = BasicPublishOptions {
    mandatory: true,
    immediate: false,
};
/// Not returned: for direct reply-to, which no queue takes.
const PUBLISH: BasicPublishOptions = BasicPublishOptions {
    mandatory: false,
    immediate: false,
};

/// Where the result of one request goes, from the request's properties.
#[derive(Debug, Clone, Default)]
pub struct ReplyTarget {
    /// The request's `reply_to` queue, if it named one.
    pub reply_to: Option<String>,
    /// The request's `correlation_id`, else its `message_id`.
    pub correlation_id: Option<String>,
    /// A dry run is answered to its requester only: the org's subscribers on the results
    /// exchange never see a result for something that was not imported.
    pub requester_only: bool,
    /// The requester asked for the common result rather than its dialect's own response.
    pub common_result: bool,
}

impl ReplyTarget {
    /// Reads the target from the request's properties and headers.
    pub fn of(delivery: &Delivery) -> Self {
        let props = &delivery.properties;
        let text = |v: &Option<lapin::types::ShortString>| {
            v.as_ref().map(|s| s.to_string()).filter(|s| !s.is_empty())
        };
        Self {
            reply_to: text(props.reply_to()),
            correlation_id: text(props.correlation_id()).or_else(|| text(props.message_id())),
            requester_only: consume::dry_run(delivery),
            common_result: consume::wants_common_result(delivery),
        }
    }
}

/// Header of every result and answer: the batch's [`BatchStatus`].
pub const STATUS_HEADER: &str = "status";
/// Header (`true`) of a result replayed for a message whose batch id an earlier message had
/// already applied (a resend): nothing was written for this one.
pub const REPLAYED_HEADER: &str = "replayed";

/// What the headers of a result say about it.
#[derive(Debug, Clone, Copy)]
pub struct ResultHeaders {
    /// `status`: the batch's status.
    pub status: BatchStatus,
    /// The stored result of a batch applied by an earlier message.
    pub replayed: bool,
}

impl From<BatchStatus> for ResultHeaders {
    fn from(status: BatchStatus) -> Self {
        Self {
            status,
            replayed: false,
        }
    }
}

/// A confirm-mode channel on the publishing connection.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    /// The publishing connection, which the broker blocks during a resource alarm.
    connection: ConnectionStatus,
    cfg: BrokerConfig,
}

impl Publisher {
    /// Opens a channel on `connection` and puts it in confirm mode.
    pub async fn open(connection: &Connection, cfg: BrokerConfig) -> lapin::Result<Self> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            connection: connection.status().clone(),
            cfg,
        })
    }

    /// The underlying channel, so the session can watch it close.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes a result to the results exchange under the org's routing key and, when the
    /// request asked for it, to its `reply_to` queue; both confirmed. A result nobody
    /// subscribed to is still a delivered result (it is stored with the batch), so "no queue"
    /// is reported, not an error. The requester gets `own_reply` instead of the result when
    /// its dialect answers in its own shape.
    pub async fn publish_result(
        &self,
        org_routing_key: &str,
        reply: &ReplyTarget,
        about: ResultHeaders,
        body: &[u8],
        own_reply: Option<&RequesterReply>,
    ) -> Result<Vec<Returned>, PublishError> {
        let mut headers = FieldTable::default();
        headers.insert(
            STATUS_HEADER.into(),
            AMQPValue::LongString(LongString::from(about.status.as_str())),
        );
        if about.replayed {
            headers.insert(REPLAYED_HEADER.into(), AMQPValue::Boolean(true));
        }
        let mut properties = BasicProperties::default()
            .with_content_type(JSON.into())
            .with_delivery_mode(2)
            .with_app_id("contact-import".into())
            .with_headers(headers);
        if let Some(correlation_id) = &reply.correlation_id {
            properties = properties.with_correlation_id(correlation_id.as_str().into());
        }
        // Both publishes are in flight at once, beside other batches' on the channel, so a
        // message the broker returns may come with another's confirm (`publish_returning`):
        // each returned message is reported by its own names, whichever confirm brought it.
        let to_subscribers = async {
            if reply.requester_only {
                return Ok(None);
            }
            let returned = self
                .publish_returning(
                    MANDATORY,
                    &self.cfg.results_exchange,
                    org_routing_key,
                    body,
                    properties.clone(),
                )
                .await?;
            Ok::<_, PublishError>(returned)
        };
        let to_requester = async {
            let Some(queue) = &reply.reply_to else {
                return Ok::<_, PublishError>(None);
            };
            let (body, properties) = match own_reply {
                Some(own) => (
                    own.body.as_slice(),
                    properties
                        .clone()
                        .with_content_type(own.content_type.into()),
                ),
                None => (body, properties.clone()),
            };
            if consume::is_direct_reply_to(queue) {
                // The broker hands a direct reply-to message to the requester's channel
                // without routing it, and returns it when `mandatory` (RabbitMQ 3.x), though
                // it was delivered: a requester that left is not ours to detect. Published
                // without `mandatory`, so a return that comes with it is the other's.
                let returned = self
                    .publish_returning(PUBLISH, "", queue, body, properties)
                    .await?;
                return Ok(returned.filter(|(e, k)| !e.is_empty() || k != queue));
            }
            self.publish_returning(MANDATORY, "", queue, body, properties)
                .await
        };
        let (subscribers, requester) = tokio::join!(to_subscribers, to_requester);
        Ok(subscribers?
            .into_iter()
            .chain(requester?)
            .map(|(exchange, routing_key)| Returned {
                to_results_exchange: exchange == self.cfg.results_exchange,
                routing_key,
            })
            .collect())
    }

    /// Publishes a batch to the import exchange (confirmed, `mandatory`): how `dlq replay`
    /// sends a dead letter back.
    pub async fn publish_batch(
        &self,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish(
            &self.cfg.import_exchange,
            &self.cfg.import_routing_key,
            body,
            properties,
            || format!("import exchange {}", self.cfg.import_exchange),
        )
        .await
    }

    /// Publishes a message moved from the import queue to its lane (see [`super::lanes`]);
    /// the caller acks the original only after this returned `Ok`.
    pub async fn route(
        &self,
        exchange: &str,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish(exchange, queue, body, properties, || {
            format!("lane {queue} of exchange {exchange}")
        })
        .await
    }

    /// Copies a refused message to the dead-letter exchange with headers naming the reason.
    /// The caller acks the original only after this returned `Ok`.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        why: &DeadLetterReason<'_>,
    ) -> Result<(), PublishError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        // A count from this life would cut the next one short if the batch is re-published.
        if headers.contains_key(DELIVERY_COUNT_HEADER) {
            let mut kept = headers.inner().clone();
            kept.remove(DELIVERY_COUNT_HEADER);
            headers = kept.into();
        }
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(why.attempts)),
        );
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(why.code.into()));
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(why.error.into()));
        headers.insert(
            BATCH_ID_HEADER.into(),
            AMQPValue::LongString(why.batch_id.into()),
        );
        if let Some(org_id) = why.org_id {
            headers.insert(
                DEAD_ORG_ID_HEADER.into(),
                AMQPValue::LongString(org_id.into()),
            );
        }
        if let Some(user_id) = delivery.properties.user_id() {
            headers.insert(
                DEAD_USER_ID_HEADER.into(),
                AMQPValue::LongString(user_id.as_str().into()),
            );
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        headers.insert(DEAD_AT_HEADER.into(), AMQPValue::Timestamp(now));
        let properties = copied_properties(&delivery.properties, headers);
        let exchange = self.cfg.dead_letter_exchange.as_str();
        let key = delivery.routing_key.as_str();
        let returned = self
            .publish_returning(MANDATORY, exchange, key, &delivery.data, properties)
            .await?;
        // A return of another publish of this channel (a result nobody subscribes to) may come
        // with this confirm: only one of our own names makes this letter unroutable.
        match returned {
            Some((e, k)) if e == exchange && k == key => Err(PublishError::Unroutable(format!(
                "dead-letter exchange {exchange}"
            ))),
            _ => Ok(()),
        }
    }

    /// Puts a copy of a dead letter that was only looked at back at the tail of `queue`
    /// (through the default exchange, confirmed, `mandatory`); the caller then acks the
    /// original. Returned unacknowledged instead, a letter's `x-delivery-count` rises with
    /// every look, and a quorum queue drops it at its delivery limit (RabbitMQ 4.0's default
    /// of 20, or a policy's). The copy keeps body, headers (the death history included) and
    /// properties, minus the broker's `x-delivery-count`; its `user_id` moves to
    /// [`DEAD_USER_ID_HEADER`], as in [`Publisher::dead_letter`].
    pub async fn put_back(&self, queue: &str, delivery: &Delivery) -> Result<(), PublishError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        if headers.contains_key(DELIVERY_COUNT_HEADER) {
            let mut kept = headers.inner().clone();
            kept.remove(DELIVERY_COUNT_HEADER);
            headers = kept.into();
        }
        if let Some(user_id) = delivery.properties.user_id()
            && !headers.contains_key(DEAD_USER_ID_HEADER)
        {
            headers.insert(
                DEAD_USER_ID_HEADER.into(),
                AMQPValue::LongString(user_id.as_str().into()),
            );
        }
        let properties = copied_properties(&delivery.properties, headers);
        self.publish("", queue, &delivery.data, properties, || {
            format!("queue {queue}")
        })
        .await
    }

    /// Closes the channel in the background; the worker's session watch sees it closed and
    /// reconnects.
    fn abandon_channel(&self) {
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let closing = channel.close(200, "no publisher confirm; reconnecting".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        });
    }

    /// Publishes `mandatory`, confirmed, where this is the channel's one publish in flight
    /// (so a returned message is this one): returned, it is [`PublishError::Unroutable`] to
    /// `destination`, named for people.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        destination: impl FnOnce() -> String,
    ) -> Result<(), PublishError> {
        match self
            .publish_returning(MANDATORY, exchange, routing_key, body, properties)
            .await?
        {
            None => Ok(()),
            Some(_) => Err(PublishError::Unroutable(destination())),
        }
    }

    /// Publishes and waits for the confirm; `Some` holds the exchange and routing key of a
    /// message the broker returned with it. lapin hands a returned message to whichever
    /// confirm of the channel arrives next, which need not be the returned message's own
    /// when several publishes are in flight: a caller with several publishes at once matches
    /// returns to publishes by these names (see [`Publisher::publish_result`]).
    async fn publish_returning(
        &self,
        options: BasicPublishOptions,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Option<(String, String)>, PublishError> {
        let confirmed = async {
            self.channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await
        };
        let mut confirmed = std::pin::pin!(confirmed);
        let confirm = loop {
            match tokio::time::timeout(CONFIRM_TIMEOUT, &mut confirmed).await {
                Ok(confirm) => break confirm?,
                // A blocked connection holds confirms back until the alarm clears.
                Err(_) if self.connection.blocked() => continue,
                Err(_) => {
                    self.abandon_channel();
                    return Err(PublishError::NoConfirm(CONFIRM_TIMEOUT));
                }
            }
        };
        match confirm {
            Confirmation::Ack(None) => Ok(None),
            Confirmation::Ack(Some(returned)) => Ok(Some((
                returned.delivery.exchange.to_string(),
                returned.delivery.routing_key.to_string(),
            ))),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            // confirm_select ran on this channel, so the broker always confirms.
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

/// A result the broker returned: where it was to go (the results exchange, for its routing
/// key the org; or a requester's `reply_to`, the routing key then the queue).
#[derive(Debug)]
pub struct Returned {
    /// Sent to the results exchange (else to a `reply_to` queue).
    pub to_results_exchange: bool,
    /// The org's routing key, or the `reply_to` queue.
    pub routing_key: String,
}

/// The original's properties for its dead-letter copy (or its copy on a lane), persistent
/// and with `headers`, minus
/// `user_id` (the broker refuses, and closes the channel on, a user_id that is not ours) and
/// `expiration` (which would let the dead letter vanish from the dead-letter queue).
pub(crate) fn copied_properties(
    original: &BasicProperties,
    headers: FieldTable,
) -> BasicProperties {
    let mut copy = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2);
    if let Some(v) = original.content_type() {
        copy = copy.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        copy = copy.with_content_encoding(v.clone());
    }
    if let Some(v) = original.priority() {
        copy = copy.with_priority(*v);
    }
    if let Some(v) = original.correlation_id() {
        copy = copy.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        copy = copy.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        copy = copy.with_message_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        copy = copy.with_timestamp(*v);
    }
    if let Some(v) = original.kind() {
        copy = copy.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        copy = copy.with_app_id(v.clone());
    }
    copy
}
