//! RabbitMQ. Consuming and publishing use separate connections: the broker blocks publishing
//! connections during a resource alarm, and that must not stall the consumer's acks.

pub mod consume;
pub mod publish;
pub mod topology;

use lapin::{Connection, ConnectionProperties};

/// Opens a connection named `name` (visible in the management UI and `rabbitmqctl`).
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await
}
