//! RabbitMQ. Consuming and publishing use separate connections: the broker blocks publishing
//! connections during a resource alarm, and that must not stall the consumer's acks.

pub mod consume;
pub mod publish;
pub mod topology;

use crate::config::BrokerConfig;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;

/// Heartbeat asked for when `AMQP_URL` sets none: a silent network cut is noticed within two
/// intervals, where the broker's default (60 s) would leave batches hanging for minutes.
const DEFAULT_HEARTBEAT_SECS: u16 = 15;
/// TCP connect timeout when `AMQP_URL` sets none.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The whole handshake: a peer that accepts the socket and then says nothing must not hang
/// the reconnect loop.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `AMQP_URL` does not parse as an AMQP URI.
    #[error("invalid AMQP_URL: {0}")]
    Url(String),
    /// The broker refused or dropped the connection.
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    /// The handshake did not finish within 30 s.
    #[error("no answer from the broker within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
}

/// Opens a connection named `name` (visible in the management UI and `rabbitmqctl`).
pub async fn connect(url: &str, name: &str) -> Result<Connection, ConnectError> {
    let uri = parse_url(url)?;
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(HANDSHAKE_TIMEOUT, Connection::connect_uri(uri, properties))
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::from)
}

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

/// `url` with our defaults where it sets no heartbeat or connect timeout.
fn parse_url(url: &str) -> Result<AMQPUri, ConnectError> {
    let mut uri: AMQPUri = url.parse().map_err(ConnectError::Url)?;
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
    uri.query
        .connection_timeout
        .get_or_insert(DEFAULT_CONNECT_TIMEOUT_MS);
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_heartbeat_gets_the_default_and_an_explicit_one_is_kept() {
        let plain = parse_url("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(plain.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(
            plain.query.connection_timeout,
            Some(DEFAULT_CONNECT_TIMEOUT_MS)
        );
        let tuned = parse_url("amqp://127.0.0.1:5672/%2f?heartbeat=2").unwrap();
        assert_eq!(tuned.query.heartbeat, Some(2));
        assert!(matches!(parse_url("http://x"), Err(ConnectError::Url(_))));
    }
}
