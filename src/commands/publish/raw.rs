//! `contact-import publish --raw FILE`: publishes a file as one message, unchanged, the way an
//! upstream system would (with a publisher confirm and a `reply_to` queue), waits for its
//! result and prints it. Its `type` and content type are detected like any file's (or taken
//! from `--type`/`--content-type`).

use super::PublishArgs;
use super::input::{Format, format_of};
use crate::broker;
use crate::broker::consume::header_str;
use crate::commands::NotAllStored;
use crate::result::BatchStatus;
use anyhow::{Context, bail};
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::ConfirmSelectOptions;
use std::path::Path;
use std::time::Duration;

/// Publishes `file` as one message, unchanged, waits for its result and prints it.
pub async fn run(args: &PublishArgs, file: &Path) -> anyhow::Result<()> {
    let body = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let (connection, channel) =
        broker::open_declared(&args.broker, "contact-import publish-cli").await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let (reply_queue, mut replies) = super::reply_queue(&channel).await?;

    let format = match args.format {
        Format::Auto => format_of(file).unwrap_or(Format::Json),
        chosen => chosen,
    };
    let chosen = super::choose(args, format, &body);
    let content_type = args.content_type.as_deref().unwrap_or(chosen.content_type);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let mut properties = BasicProperties::default()
        .with_content_type(content_type.into())
        .with_type(chosen.kind.as_str().into())
        .with_correlation_id(correlation_id.as_str().into())
        .with_reply_to(reply_queue.as_str().into())
        .with_delivery_mode(2);
    if let Some(message_id) = &args.message_id {
        properties = properties.with_message_id(message_id.as_str().into());
    }
    if let Some(user_id) = super::user_id(&args.broker)? {
        properties = properties.with_user_id(user_id);
    }
    let headers =
        super::request_headers(args, args.org.as_deref(), chosen.kind, args.result_detail);
    properties = properties.with_headers(headers);
    super::publish_confirmed(&channel, &args.broker, &body, properties).await?;
    eprintln!(
        "published {} ({} bytes) as {} ({content_type}); waiting for its result",
        file.display(),
        body.len(),
        chosen.kind.as_str()
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
                let status = header_str(reply.properties.headers().as_ref(), "status")
                    .and_then(BatchStatus::parse);
                return Ok((reply.data, status));
            }
        }
        bail!("the reply queue was closed before a result arrived")
    };
    let (result, status) = tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait)
        .await
        .with_context(|| {
            format!(
                "no result within {} s; is a worker running?",
                args.timeout_secs
            )
        })??;
    // The requester's answer: JSON for most dialects, the seed's XML for DocuSign XML and CSV.
    let json = serde_json::from_slice::<serde_json::Value>(&result).ok();
    match &json {
        Some(json) => println!("{}", serde_json::to_string_pretty(json)?),
        None => println!("{}", String::from_utf8_lossy(&result)),
    }
    let _ = connection.close(200, "done".into()).await;
    // Every dialect's answer carries the batch's `status` header: the exit status is the
    // same as publish --wait's, whatever the answer's shape.
    match status {
        Some(BatchStatus::Succeeded) => Ok(()),
        Some(status) => {
            // A rejection's reason, where the answer is the common result.
            let reason = json
                .as_ref()
                .and_then(|j| {
                    Some((
                        j["error"]["code"].as_str()?,
                        j["error"]["message"].as_str()?,
                    ))
                })
                .map(|(code, message)| format!(" ({code}: {message})"))
                .unwrap_or_default();
            Err(NotAllStored(format!(
                "{}: the worker answered {}{reason}, not every contact was stored (see the answer above)",
                file.display(),
                status.as_str()
            ))
            .into())
        }
        None => bail!("{}: the answer has no status header", file.display()),
    }
}
