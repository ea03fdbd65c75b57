//! RabbitMQ. Consuming and publishing use separate connections: the broker blocks publishing
//! connections during a resource alarm, and that must not stall the consumer's acks.

pub mod consume;
pub mod lanes;
pub mod publish;
pub mod topology;

mod connection;

pub use connection::{ConnectError, Endpoint, connect, endpoints};

use crate::config::BrokerConfig;
use lapin::Connection;

/// For the command-line tools: a connection named `name` and a channel on it, with the
/// topology declared (idempotent), so a tool run before any worker finds every queue.
pub async fn open_declared(
    cfg: &BrokerConfig,
    name: &str,
) -> anyhow::Result<(Connection, lapin::Channel)> {
    use anyhow::Context;
    let connection = connect(&cfg.amqp_url, name).await.with_context(|| {
        // Names the node(s) tried; never the URL itself, which holds the password.
        let nodes = endpoints(&cfg.amqp_url)
            .map(|nodes| {
                nodes
                    .iter()
                    .map(Endpoint::address)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!("connecting to RabbitMQ at {nodes}")
    })?;
    match topology::declare(&connection, cfg).await {
        Ok(()) => {
            let channel = connection.create_channel().await?;
            Ok((connection, channel))
        }
        // A producer's user may write to the import exchange and nothing more
        // (docs/operations.md): the workers declared the topology, and publishes are
        // `mandatory`, so a queue that is missing after all is still an error.
        Err(e) if access_refused(&e) => {
            tracing::info!(
                "this broker user may not declare the topology; using it as the workers declared it"
            );
            let channel = connection.create_channel().await?;
            Ok((connection, channel))
        }
        Err(e) => Err(e).context("declaring the broker topology"),
    }
}

/// Whether the broker refused an operation for want of a permission (the channel is closed).
fn access_refused(error: &lapin::Error) -> bool {
    soft_error(error, lapin::protocol::AMQPSoftError::ACCESSREFUSED)
}

/// Whether the broker said that something named does not exist (the channel is closed).
pub fn not_found(error: &lapin::Error) -> bool {
    soft_error(error, lapin::protocol::AMQPSoftError::NOTFOUND)
}

/// Whether `error` is the broker closing the channel with the soft error `kind`.
fn soft_error(error: &lapin::Error, kind: lapin::protocol::AMQPSoftError) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if *e.kind() == lapin::protocol::AMQPErrorKind::Soft(kind)
    )
}
