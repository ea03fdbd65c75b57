//! RabbitMQ. Consuming and publishing use separate connections: the broker blocks publishing
//! connections during a resource alarm, and that must not stall the consumer's acks.

pub mod consume;
pub mod publish;
pub mod topology;

mod connection;

pub use connection::{ConnectError, Endpoint, connect};

use crate::config::BrokerConfig;
use lapin::Connection;

/// For the command-line tools: a connection named `name` and a channel on it, with the
/// topology declared (idempotent), so a tool run before any worker finds every queue.
pub async fn open_declared(
    cfg: &BrokerConfig,
    name: &str,
) -> anyhow::Result<(Connection, lapin::Channel)> {
    use anyhow::Context;
    let connection = connect(&cfg.amqp_url, name)
        .await
        .context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    topology::declare(&channel, cfg)
        .await
        .context("declaring the broker topology")?;
    Ok((connection, channel))
}
