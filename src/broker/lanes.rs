//! The lanes (docs/operations.md, "Lanes"): the interactive lane for requests a person waits on, and the
//! bulk shards, several quorum queues that an org's bulk batches are spread over by org.
//! Producers publish to the import queue as ever; the worker's router moves each message
//! from there to its lane, through a direct exchange of the workers' own, and its
//! dispatcher serves the lanes.
//!
//! Everything on a lane queue came through a worker, so a header a worker set there can be
//! trusted: the producer's `user_id`, which a worker cannot publish under its own name
//! (RabbitMQ checks it against the publishing user), travels in [`ROUTED_USER_ID_HEADER`].
//! Producers must therefore not be allowed to write to the lanes exchange (deploy/ grants
//! them the import exchange only).

use crate::broker::consume::{self, DELIVERY_COUNT_HEADER, ORG_ID_HEADER};
use crate::broker::publish::DEAD_USER_ID_HEADER;
use crate::config::{BrokerConfig, LaneConfig};
use crate::dialect::{self, Limits, MessageType};
use lapin::message::Delivery;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use sha2::{Digest, Sha256};

/// The producer's `user_id` on a lane (the header dead letters use too).
pub const ROUTED_USER_ID_HEADER: &str = DEAD_USER_ID_HEADER;
/// When the router moved the message to its lane, in milliseconds since the Unix epoch:
/// the start of its dwell time on the lane.
pub const ROUTED_AT_HEADER: &str = "x-contact-import-routed-at";

/// AMQP `priority` from which a message is interactive: RabbitMQ 4's threshold for "high".
pub const INTERACTIVE_PRIORITY: u8 = 5;

/// What kind of work a message is, by [`Lanes::classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A person waits on it.
    Interactive,
    /// Bulk work of this org (as named in a header or the body; empty if neither says).
    Bulk {
        /// The org, for its shard and its share.
        org: String,
    },
}

/// Which lane a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A person waits on it.
    Interactive,
    /// Bulk work, on this shard.
    Bulk(u16),
    /// Bulk work of an org with more than its share of the recent bulk traffic, on this heavy
    /// shard: served when the bulk shards are empty.
    Heavy(u16),
}

impl Lane {
    /// The `lane` label of the lane metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Bulk(_) => "bulk",
            Self::Heavy(_) => "heavy",
        }
    }
}

/// The names of the lanes, from the import queue's and exchange's.
#[derive(Debug, Clone)]
pub struct Lanes {
    /// Direct exchange the router publishes to, a binding per lane queue (its name).
    pub exchange: String,
    /// `<import queue>.interactive`.
    pub interactive: String,
    /// `<import queue>.bulk.<n>`, n from 0.
    pub shards: Vec<String>,
    /// `<import queue>.heavy.<n>`, as many.
    pub heavy: Vec<String>,
    /// What goes to which lane, and the slots kept for the interactive one.
    pub rules: LaneConfig,
}

impl Lanes {
    /// The lanes of the import queue and exchange `broker` names.
    pub fn new(broker: &BrokerConfig, rules: &LaneConfig) -> Self {
        Self {
            exchange: format!("{}.lanes", broker.import_exchange),
            interactive: format!("{}.interactive", broker.import_queue),
            shards: (0..rules.bulk_shards)
                .map(|n| format!("{}.bulk.{n}", broker.import_queue))
                .collect(),
            heavy: (0..rules.bulk_shards)
                .map(|n| format!("{}.heavy.{n}", broker.import_queue))
                .collect(),
            rules: rules.clone(),
        }
    }

    /// The queue of `lane`.
    pub fn queue(&self, lane: Lane) -> &str {
        match lane {
            Lane::Interactive => &self.interactive,
            Lane::Bulk(n) => &self.shards[usize::from(n)],
            Lane::Heavy(n) => &self.heavy[usize::from(n)],
        }
    }

    /// Every lane queue: the interactive one, the bulk shards, the heavy shards.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.interactive.as_str())
            .chain(self.shards.iter().map(String::as_str))
            .chain(self.heavy.iter().map(String::as_str))
    }

    /// Declares the lanes exchange and queues, each queue with the import queue's arguments
    /// (quorum, delivery limit, at-least-once dead-lettering to the same exchange).
    pub async fn declare(&self, channel: &Channel, broker: &BrokerConfig) -> lapin::Result<()> {
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for queue in self.queues() {
            super::topology::declare_spread_queue(channel, broker, queue, &self.exchange, queue)
                .await?;
        }
        Ok(())
    }

    /// The class of a message on the import queue: interactive when its `type` is one a
    /// person waits on, its `priority` is [`INTERACTIVE_PRIORITY`] or more, or it is small
    /// (at most the configured contacts and bytes; a small message that cannot be read is
    /// refused at once, which its requester waits for too); else bulk work of its org.
    pub fn classify(&self, delivery: &Delivery, limits: &Limits) -> Class {
        let props = &delivery.properties;
        let dialect = MessageType::of(props.kind().as_ref().map(|k| k.as_str())).ok();
        if props.priority().is_some_and(|p| p >= INTERACTIVE_PRIORITY)
            || dialect.is_some_and(|d| d.dialect().interactive())
        {
            return Class::Interactive;
        }
        if delivery.data.len() > self.rules.interactive_max_bytes {
            return Class::Bulk {
                org: org_hint(delivery, dialect),
            };
        }
        match dialect::decode(&consume::incoming(delivery), limits) {
            Ok(batch) if batch.contacts.len() <= self.rules.interactive_max_contacts => {
                Class::Interactive
            }
            Ok(batch) => Class::Bulk {
                org: batch.org_id.as_str().to_owned(),
            },
            Err(_) => Class::Interactive,
        }
    }

    /// The shard of `org`: the same on every worker and after a restart, so an org's batches
    /// keep their order within one shard.
    pub fn shard_of(&self, org: &str) -> u16 {
        let digest = Sha256::digest(org.as_bytes());
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        (n % self.shards.len() as u64) as u16
    }
}

/// The org a large message names, for its shard, without decoding its contacts (the
/// pipeline reads and checks the org properly): the `org-id` header or its dialect's own
/// (DocuSign's `account-id`), else a JSON body's top-level `orgId`, which serde finds
/// skipping over the rest. An org it cannot find shares the shard of the empty name.
fn org_hint(delivery: &Delivery, dialect: Option<MessageType>) -> String {
    #[derive(serde::Deserialize)]
    struct TopLevel {
        #[serde(rename = "orgId")]
        org_id: Option<String>,
    }
    let headers = delivery.properties.headers().as_ref();
    let named = std::iter::once(ORG_ID_HEADER)
        .chain(
            dialect
                .into_iter()
                .flat_map(|d| d.dialect().org_headers().iter().copied()),
        )
        .find_map(|name| consume::header_str(headers, name));
    match named {
        Some(org) => org.to_owned(),
        None => serde_json::from_slice::<TopLevel>(&delivery.data)
            .ok()
            .and_then(|top| top.org_id)
            .unwrap_or_default(),
    }
}

/// The properties a message keeps on its lane: all of them, but the `user_id` (in
/// [`ROUTED_USER_ID_HEADER`]; a producer's own header of that name is dropped), the
/// broker's delivery count, plus [`ROUTED_AT_HEADER`].
pub fn routed_properties(original: &BasicProperties, routed_at_ms: i64) -> BasicProperties {
    let mut headers: std::collections::BTreeMap<_, _> = original
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    headers.remove(DELIVERY_COUNT_HEADER);
    headers.remove(ROUTED_USER_ID_HEADER);
    if let Some(user) = original.user_id() {
        headers.insert(
            ROUTED_USER_ID_HEADER.into(),
            AMQPValue::LongString(user.as_str().into()),
        );
    }
    headers.insert(
        ROUTED_AT_HEADER.into(),
        AMQPValue::LongLongInt(routed_at_ms),
    );
    let copy = super::publish::copied_properties(original, headers.into());
    // Unlike a dead letter, a batch on its lane keeps its producer's time to live.
    match original.expiration() {
        Some(ttl) => copy.with_expiration(ttl.clone()),
        None => copy,
    }
}

/// The producer's `user_id` of a delivery taken from a lane, which `exchange` names.
pub fn routed_user_id<'a>(delivery: &'a Delivery, exchange: &str) -> Option<&'a str> {
    if delivery.exchange.as_str() != exchange {
        return None;
    }
    consume::header_str(
        delivery.properties.headers().as_ref(),
        ROUTED_USER_ID_HEADER,
    )
}

/// When a delivery taken from a lane was routed there, in milliseconds since the epoch.
pub fn routed_at_ms(delivery: &Delivery) -> Option<i64> {
    match delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(ROUTED_AT_HEADER)?
    {
        AMQPValue::LongLongInt(ms) => Some(*ms),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(shards: u16) -> Lanes {
        let broker = crate::config::BrokerConfig {
            amqp_url: String::new(),
            amqp_url_file: None,
            import_exchange: "contacts.import".into(),
            import_queue: "contacts.import".into(),
            import_routing_key: "contacts.import".into(),
            dead_letter_exchange: "dlx".into(),
            dead_letter_queue: "dead".into(),
            results_exchange: "results".into(),
            delivery_limit: 5,
            intake_shards: 1,
        };
        let rules = LaneConfig {
            bulk_shards: shards,
            ..LaneConfig::default()
        };
        Lanes::new(&broker, &rules)
    }

    #[test]
    fn an_org_always_lands_on_the_same_shard_and_orgs_spread_over_all() {
        let lanes = lanes(4);
        assert_eq!(lanes.shard_of("org-a"), lanes.shard_of("org-a"));
        let used: std::collections::BTreeSet<u16> = (0..100)
            .map(|n| lanes.shard_of(&format!("org-{n}")))
            .collect();
        assert_eq!(used.len(), 4, "100 orgs use every one of 4 shards");
        assert_eq!(
            lanes.queues().collect::<Vec<_>>(),
            [
                "contacts.import.interactive",
                "contacts.import.bulk.0",
                "contacts.import.bulk.1",
                "contacts.import.bulk.2",
                "contacts.import.bulk.3",
                "contacts.import.heavy.0",
                "contacts.import.heavy.1",
                "contacts.import.heavy.2",
                "contacts.import.heavy.3"
            ]
        );
    }

    #[test]
    fn a_routed_message_keeps_its_properties_and_carries_its_user_in_a_header() {
        let mut forged = FieldTable::default();
        forged.insert(
            ROUTED_USER_ID_HEADER.into(),
            AMQPValue::LongString("root".into()),
        );
        forged.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        let original = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_type("user-contact.update".into())
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_priority(7)
            .with_headers(forged);
        let routed = routed_properties(&original, 42);
        assert_eq!(routed.message_id().as_ref().unwrap().as_str(), "m-1");
        assert_eq!(routed.priority(), &Some(7));
        assert!(routed.user_id().is_none());
        let headers = routed.headers().as_ref().unwrap().inner();
        assert!(
            !headers.contains_key(ROUTED_USER_ID_HEADER),
            "a producer's own user header is dropped"
        );
        assert!(!headers.contains_key(DELIVERY_COUNT_HEADER));
        assert_eq!(
            headers.get(ROUTED_AT_HEADER),
            Some(&AMQPValue::LongLongInt(42))
        );

        let signed = original.with_user_id("producer-a".into());
        let routed = routed_properties(&signed, 42);
        assert_eq!(
            routed
                .headers()
                .as_ref()
                .unwrap()
                .inner()
                .get(ROUTED_USER_ID_HEADER),
            Some(&AMQPValue::LongString("producer-a".into()))
        );
    }
}
