//! Subscribing to the import queue and reading a delivery's properties.

use crate::dialect::IncomingMessage;
pub use crate::dialect::{ACCOUNT_ID_HEADER, ORG_ID_HEADER};
use crate::result::ResultDetail;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};

/// Consumers taken from in turn, each with a label `T` (its lane, its tag): the next delivery
/// comes from the first consumer after the last one served that has one, so a busy queue
/// does not keep the others waiting.
pub struct Turns<T> {
    consumers: Vec<(Consumer, T)>,
    /// The consumer asked first next time.
    next: usize,
}

impl<T> Turns<T> {
    /// Takes from `consumers` in this order, the first first.
    pub fn new(consumers: Vec<(Consumer, T)>) -> Self {
        Self { consumers, next: 0 }
    }

    /// The labels, in order.
    pub fn labels(&self) -> impl Iterator<Item = &T> {
        self.consumers.iter().map(|(_, label)| label)
    }

    /// The label of the `i`th consumer.
    pub fn label(&self, i: usize) -> &T {
        &self.consumers[i].1
    }

    /// The next delivery of the first consumer in turn that has one, with that consumer's
    /// index (`None`: that consumer ended). Cancel-safe: a delivery is taken only when
    /// returned.
    pub fn poll_turn(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<(usize, Option<lapin::Result<Delivery>>)> {
        use futures_lite::StreamExt;
        let n = self.consumers.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let std::task::Poll::Ready(next) = self.consumers[i].0.poll_next(cx) {
                self.next = i + 1;
                return std::task::Poll::Ready((i, next));
            }
        }
        std::task::Poll::Pending
    }
}

/// Sets the prefetch and starts consuming `queue`.
pub async fn subscribe(
    channel: &Channel,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> lapin::Result<Consumer> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// The parts of a delivery that dialects read.
pub fn incoming(delivery: &Delivery) -> IncomingMessage<'_> {
    let props = &delivery.properties;
    IncomingMessage {
        kind: props.kind().as_ref().map(|k| k.as_str()),
        content_type: props.content_type().as_ref().map(|c| c.as_str()),
        org_id_header: header_str(props.headers().as_ref(), ORG_ID_HEADER),
        account_id_header: header_str(props.headers().as_ref(), ACCOUNT_ID_HEADER),
        body: &delivery.data,
    }
}

/// A string header, whether sent as a long or a short string.
pub fn header_str<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a str> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// RabbitMQ's direct reply-to pseudo-queue. A requester consuming it publishes with this as
/// `reply_to`, and the broker rewrites it to a name that only reaches that requester's channel
/// (`amq.rabbitmq.reply-to.<random token>`): a reply there cannot land in anyone else's queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Whether `reply_to` is a direct reply-to address (see [`DIRECT_REPLY_TO`]).
pub fn is_direct_reply_to(reply_to: &str) -> bool {
    reply_to == DIRECT_REPLY_TO
        || reply_to
            .strip_prefix(DIRECT_REPLY_TO)
            .is_some_and(|token| token.starts_with('.'))
}

/// Set by quorum queues on a redelivery: how many times the message was returned before.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Which delivery of its message this is, counting from 1. The header is read only on a
/// redelivery: a message re-published from the dead-letter queue may still carry the count
/// of its previous life (RabbitMQ 3.12+ sets none on a first delivery).
pub fn attempt(delivery: &Delivery) -> u32 {
    if !delivery.redelivered {
        return 1;
    }
    let returned = match delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT_HEADER))
    {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::ShortShortInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        _ => 0,
    };
    returned.saturating_add(1)
}

/// Set to `result` by a requester that wants the common result at `reply_to` rather than its
/// dialect's own response (`contact-import publish --wait` does: it counts and reports
/// from the common result whatever the dialect).
pub const REPLY_FORMAT_HEADER: &str = "x-reply-format";

/// Whether the requester asked for the common result (`x-reply-format: result`).
pub fn wants_common_result(delivery: &Delivery) -> bool {
    header_str(delivery.properties.headers().as_ref(), REPLY_FORMAT_HEADER)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("result"))
}

/// Set by a publisher to a new value for every message it sends (`contact-import publish`:
/// a UUID), so that the worker can tell a resend of an applied batch (another send id) from
/// the same message delivered again.
pub const SEND_ID_HEADER: &str = "x-send-id";

/// The message's `x-send-id`, if it has one.
pub fn send_id(delivery: &Delivery) -> Option<&str> {
    header_str(delivery.properties.headers().as_ref(), SEND_ID_HEADER).filter(|id| !id.is_empty())
}

/// Set by a publisher to choose how much of the stored contacts its result carries
/// (`full` or `summary`, see [`ResultDetail`]).
pub const RESULT_DETAIL_HEADER: &str = "x-result-detail";

/// What `x-result-detail` asks for: `None` when absent, `Some(Err(value))` when it names
/// no detail (the worker's default then applies, and the value is logged).
pub fn result_detail(delivery: &Delivery) -> Option<Result<ResultDetail, String>> {
    let value = header_str(delivery.properties.headers().as_ref(), RESULT_DETAIL_HEADER)?;
    Some(ResultDetail::parse(value).ok_or_else(|| value.to_owned()))
}

/// Set by a publisher (`contact-import publish --dry-run`) to have a batch validated and
/// checked against the database without writing anything.
pub const DRY_RUN_HEADER: &str = "x-dry-run";

/// Whether the delivery asks for a dry run: `x-dry-run` set to boolean true or `"true"`.
pub fn dry_run(delivery: &Delivery) -> bool {
    let headers = delivery.properties.headers().as_ref();
    match headers.and_then(|h| h.inner().get(DRY_RUN_HEADER)) {
        Some(AMQPValue::Boolean(on)) => *on,
        Some(_) => header_str(headers, DRY_RUN_HEADER)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        None => false,
    }
}
