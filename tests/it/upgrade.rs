//! Upgrading a deployment: the broker must accept this release's declaration of queues an
//! earlier release declared, or every upgraded worker would stop at start. (Adding
//! `x-quorum-initial-group-size` did exactly that: RabbitMQ compares it on redeclaration.)

use crate::support::broker::names;
use crate::support::env;
use contact_import::broker::topology;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};

#[tokio::test]
async fn queues_declared_without_an_initial_group_size_are_accepted_by_the_new_declaration() {
    let prefix = format!("t{}.", crate::support::ports::random_u64() % 1_000_000);
    let cfg = names(&env::amqp_url(), &prefix, 5);
    let connection = contact_import::broker::connect(&cfg.amqp_url, "upgrade test")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let text = |v: &str| AMQPValue::LongString(LongString::from(v));
    // The arguments the queues have had since V5 (the release before this one).
    let mut dead = FieldTable::default();
    dead.insert("x-queue-type".into(), text("quorum"));
    let mut import = dead.clone();
    import.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(5));
    import.insert(
        "x-dead-letter-exchange".into(),
        text(&cfg.dead_letter_exchange),
    );
    import.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    import.insert("x-overflow".into(), text("reject-publish"));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for (queue, args) in [(&cfg.dead_letter_queue, dead), (&cfg.import_queue, import)] {
        channel
            .queue_declare(queue.as_str().into(), durable, args)
            .await
            .unwrap();
    }
    let redeclared = topology::declare(&channel, &cfg).await;
    for queue in [&cfg.import_queue, &cfg.dead_letter_queue] {
        let cleanup = connection.create_channel().await.unwrap();
        let _ = cleanup
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    redeclared.expect("the queues of an earlier release are accepted as they are");
}
