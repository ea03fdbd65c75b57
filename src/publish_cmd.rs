//! `contact-import publish FILE`: publishes one batch the way an upstream system would (with
//! a publisher confirm and a `reply_to` queue), waits for its result and prints it.

use crate::broker;
use crate::broker::consume::{DRY_RUN_HEADER, ORG_ID_HEADER};
use crate::config::BrokerConfig;
use crate::dialect::webex;
use anyhow::{Context, bail};
use clap::Args;
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The batch file to publish as the message body.
    pub file: PathBuf,
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// Sets the `org-id` header (for bodies without `orgId`).
    #[arg(long)]
    pub org_id: Option<String>,
    /// The AMQP `message_id`, which is the batch id. Without it the worker uses the body's
    /// SHA-256, so publishing the same file again replays the stored result.
    #[arg(long)]
    pub message_id: Option<String>,
    /// The AMQP `type`, which selects the dialect.
    #[arg(long = "type", default_value = webex::MESSAGE_TYPE)]
    pub kind: String,
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// Ask for a dry run (header `x-dry-run: true`): the worker validates the batch, checks it
    /// against the database in a transaction it rolls back, and answers with the full result,
    /// writing nothing and leaving the batch id unused.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let body = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("reading {}", args.file.display()))?;
    let (connection, channel) =
        broker::open_declared(&args.broker, "contact-import publish-cli").await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let reply_queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut replies = channel
        .basic_consume(
            reply_queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;

    let correlation_id = uuid::Uuid::new_v4().to_string();
    let mut properties = BasicProperties::default()
        .with_content_type(args.content_type.as_str().into())
        .with_type(args.kind.as_str().into())
        .with_correlation_id(correlation_id.as_str().into())
        .with_reply_to(reply_queue.name().clone())
        .with_delivery_mode(2);
    if let Some(message_id) = &args.message_id {
        properties = properties.with_message_id(message_id.as_str().into());
    }
    let mut headers = FieldTable::default();
    if let Some(org_id) = &args.org_id {
        headers.insert(
            ORG_ID_HEADER.into(),
            AMQPValue::LongString(LongString::from(org_id.as_str())),
        );
    }
    if args.dry_run {
        headers.insert(DRY_RUN_HEADER.into(), AMQPValue::Boolean(true));
    }
    properties = properties.with_headers(headers);
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = channel
        .basic_publish(
            args.broker.import_exchange.as_str().into(),
            args.broker.import_routing_key.as_str().into(),
            mandatory,
            &body,
            properties,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) => {}
        Confirmation::Ack(Some(_)) => bail!("no queue is bound to {}", args.broker.import_exchange),
        _ => bail!("the broker refused the batch"),
    }
    eprintln!(
        "published {} ({} bytes); waiting for its result",
        args.file.display(),
        body.len()
    );

    let wait = async {
        while let Some(reply) = replies.next().await {
            let reply = reply?;
            let matches = reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str())
                == Some(correlation_id.as_str());
            if matches {
                return Ok(reply.data);
            }
        }
        bail!("the reply queue was closed before a result arrived")
    };
    let result = tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait)
        .await
        .with_context(|| {
            format!(
                "no result within {} s; is a worker running?",
                args.timeout_secs
            )
        })??;
    let result: serde_json::Value =
        serde_json::from_slice(&result).context("the result is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
