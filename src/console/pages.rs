//! The overview, the import history, a batch's detail and its downloads, and the settings.

use super::auth::{Role, User, db};
use super::refusal::{Refusal, internal};
use super::views::{
    self, BatchPage, CodeCount, FailedRow, HistoryRow, ImportsPage, LetterRow, MinuteRow, Nav,
    OverviewLive, OverviewPage, QueueRow, SettingsPage, UserRow,
};
use super::{AuthMode, Shared};
use crate::dialect::MessageType;
use crate::store::history::{self, Cursor, Filter};
use crate::store::{console_users, dead_letters};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::info;

/// Lines on a history page.
const PAGE: i64 = 50;
/// Failed contacts listed on a batch's page (the CSV has them all).
const FAILURES_SHOWN: usize = 500;
/// The overview's window.
const WINDOW: Duration = Duration::from_secs(15 * 60);

pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

pub async fn overview(State(console): State<Shared>, user: User) -> Result<Response, Refusal> {
    views::render(&OverviewPage {
        nav: Nav::new(&user, "overview"),
        grafana_url: console.config.grafana_url.as_ref().map(|u| u.to_string()),
    })
}

/// The live part of the overview, fetched every few seconds by the page's script.
pub async fn overview_live(State(console): State<Shared>, user: User) -> Result<Response, Refusal> {
    let client = db(&console).await?;
    let minutes = history::throughput(&**client, &user.scope, WINDOW)
        .await
        .map_err(internal)?;
    let (batches_last_minute, contacts_last_minute) =
        history::recent_totals(&**client, &user.scope, Duration::from_secs(60))
            .await
            .map_err(internal)?;
    let (dead_waiting, dead_oldest) = dead_letters::waiting(&**client, &user.scope)
        .await
        .map_err(internal)?;
    // Batches being applied right now are transactions of the workers: the console cannot
    // see the workers' memory, but the database sees their open transactions.
    let applying = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND xact_start IS NOT NULL \
               AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .ok()
        .map(|row| row.get::<_, i64>(0));
    drop(client);
    let busiest = minutes.iter().map(|m| m.contacts).max().unwrap_or(0).max(1);
    let (received, failed) = minutes
        .iter()
        .fold((0, 0), |(r, f), m| (r + m.contacts, f + m.failed));
    let now = Utc::now();
    let per_s = |n: i64| match n as f64 / 60.0 {
        rate if rate >= 100.0 => format!("{rate:.0}"),
        rate => format!("{rate:.1}"),
    };
    let queues = queue_depths(&console).await;
    views::render(&OverviewLive {
        contacts_per_s: per_s(contacts_last_minute),
        batches_per_s: format!("{:.2}", batches_last_minute as f64 / 60.0),
        failed_ratio: if received == 0 {
            "–".into()
        } else {
            format!("{:.1} %", 100.0 * failed as f64 / received as f64)
        },
        applying,
        dead_waiting,
        dead_oldest: dead_oldest.map(stamp),
        minutes: minutes
            .iter()
            .rev()
            .map(|m| MinuteRow {
                at: m.at.format("%H:%M").to_string(),
                batches: m.batches,
                contacts: m.contacts,
                contacts_per_s: per_s(m.contacts),
                width: 100 * m.contacts / busiest,
            })
            .collect(),
        queues,
        updated: now.format("%H:%M:%S").to_string(),
    })
}

/// How long a reading of the queues' depths is shown before it is read again.
const DEPTHS_FOR: Duration = Duration::from_secs(4);

/// Each queue's ready messages and consumers, read at most every [`DEPTHS_FOR`] (one reading
/// for every open overview).
async fn queue_depths(console: &Shared) -> Vec<QueueRow> {
    let mut last = console.depths.lock().await;
    if let Some((at, rows)) = last.as_ref()
        && at.elapsed() < DEPTHS_FOR
    {
        return rows.clone();
    }
    let rows = read_queue_depths(console).await;
    *last = Some((std::time::Instant::now(), rows.clone()));
    rows
}

/// Asks the broker with passive declares (a queue that does not exist closes the channel,
/// so each gets a channel of its own).
async fn read_queue_depths(console: &Shared) -> Vec<QueueRow> {
    let failed = |queues: &[String], error: String| {
        queues
            .iter()
            .map(|q| QueueRow {
                name: q.clone(),
                ready: None,
                consumers: None,
                error: Some(error.clone()),
            })
            .collect()
    };
    let connection = match tokio::time::timeout(
        Duration::from_secs(5),
        crate::broker::connect(&console.config.broker.amqp_url, "contact-import console"),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return failed(&console.queues, format!("broker unavailable: {e}")),
        Err(_) => return failed(&console.queues, "the broker did not answer".into()),
    };
    let mut rows = Vec::new();
    for queue in &console.queues {
        let row = async {
            let channel = connection.create_channel().await?;
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await?;
            let _ = channel.close(200, "done".into()).await;
            lapin::Result::Ok((declared.message_count(), declared.consumer_count()))
        };
        rows.push(
            match tokio::time::timeout(Duration::from_secs(5), row).await {
                Ok(Ok((ready, consumers))) => QueueRow {
                    name: queue.clone(),
                    ready: Some(ready),
                    consumers: Some(consumers),
                    error: None,
                },
                Ok(Err(_)) => QueueRow {
                    name: queue.clone(),
                    ready: None,
                    consumers: None,
                    error: Some("not declared".into()),
                },
                Err(_) => QueueRow {
                    name: queue.clone(),
                    ready: None,
                    consumers: None,
                    error: Some("no answer".into()),
                },
            },
        );
    }
    let _ = connection.close(200, "done".into()).await;
    rows
}

/// The history's filters, as the URL carries them.
#[derive(Debug, Default, Deserialize)]
pub struct ImportsQuery {
    #[serde(default)]
    org: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The last line of the previous page: a JSON array `[time, org, batch id]` (both ids
    /// are the producers' text, so no separator is safe).
    #[serde(default)]
    after: String,
}

/// A filter's text, trimmed; `None` when empty.
pub(crate) fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A time in a filter: RFC 3339, a date, or a duration back from now (`24h`, `7d`).
fn time_param(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = some(text) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(Some(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    }
    if let Ok(ago) = humantime::parse_duration(&text) {
        return chrono::Duration::from_std(ago)
            .ok()
            .and_then(|ago| Utc::now().checked_sub_signed(ago))
            .map(Some)
            .ok_or_else(|| format!("'{text}' reaches back further than a time can"));
    }
    Err(format!(
        "'{text}' is not a time: write 2026-12-01, 2026-12-01T08:00:00Z or a duration such as 24h"
    ))
}

pub async fn imports(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<ImportsQuery>,
) -> Result<Response, Refusal> {
    let mut error = None;
    let mut time = |text: &str| {
        time_param(text).unwrap_or_else(|e| {
            error = Some(e);
            None
        })
    };
    let filter = Filter {
        org: some(&q.org),
        status: some(&q.status),
        batch_id: some(&q.batch),
        error_code: some(&q.code),
        from: time(&q.from),
        to: time(&q.to),
    };
    let after = serde_json::from_str::<(DateTime<Utc>, String, String)>(&q.after)
        .ok()
        .map(|(at, org, batch_id)| Cursor { at, org, batch_id });
    let client = db(&console).await?;
    let entries = history::page(&**client, &user.scope, &filter, after.as_ref(), PAGE)
        .await
        .map_err(internal)?;
    let next = (entries.len() as i64 == PAGE).then(|| {
        let last = entries.last().expect("a full page");
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("org", &q.org),
            ("status", &q.status),
            ("batch", &q.batch),
            ("code", &q.code),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            if !v.is_empty() {
                url.append_pair(k, v);
            }
        }
        url.append_pair(
            "after",
            &serde_json::json!([
                last.at.to_rfc3339_opts(SecondsFormat::Micros, true),
                last.org_id.as_deref().unwrap_or(""),
                last.batch_id
            ])
            .to_string(),
        );
        format!("/imports?{}", url.finish())
    });
    let rows = entries
        .into_iter()
        .map(|e| HistoryRow {
            link: match (e.letter, &e.org_id) {
                (Some(offset), _) => format!("/dead-letters/letter?offset={offset}"),
                (None, Some(org)) => format!("/batch?{}", batch_query(org, &e.batch_id)),
                (None, None) => "/imports".into(),
            },
            org: e.org_id.unwrap_or_else(|| "–".into()),
            batch_id: e.batch_id,
            status: e.status,
            received: e.received.map_or_else(String::new, |n| n.to_string()),
            failed: e.failed.map_or_else(String::new, |n| n.to_string()),
            at: stamp(e.at),
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    views::render(&ImportsPage {
        nav: Nav::new(&user, "imports"),
        org: q.org,
        status: q.status,
        batch: q.batch,
        code: q.code,
        from: q.from,
        to: q.to,
        rows,
        next,
        error,
    })
}

fn batch_query(org: &str, batch_id: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("org", org)
        .append_pair("id", batch_id)
        .finish()
}

#[derive(Deserialize)]
pub struct BatchQuery {
    org: String,
    id: String,
}

/// The stored result's parts the console reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredResult {
    #[serde(default)]
    failed_contacts: Vec<StoredFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredFailure {
    id: String,
    error_code: String,
    error_message: String,
    status_code: u16,
}

async fn load(
    console: &Shared,
    user: &User,
    q: &BatchQuery,
) -> Result<(history::Batch, StoredResult), Refusal> {
    let client = db(console).await?;
    let batch = history::batch(&**client, &user.scope, &q.org, &q.id)
        .await
        .map_err(internal)?
        .ok_or(Refusal::NotFound("batch"))?;
    let parsed = serde_json::from_slice(&batch.result).unwrap_or(StoredResult {
        failed_contacts: Vec::new(),
    });
    Ok((batch, parsed))
}

pub async fn batch(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<BatchQuery>,
) -> Result<Response, Refusal> {
    let (batch, result) = load(&console, &user, &q).await?;
    let letters = history::letters_of(&**db(&console).await?, &batch.org_id, &batch.batch_id)
        .await
        .map_err(internal)?;
    let mut by_code: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for f in &result.failed_contacts {
        *by_code.entry((&f.error_code, f.status_code)).or_default() += 1;
    }
    let mut by_code: Vec<CodeCount> = by_code
        .into_iter()
        .map(|((code, status_code), count)| CodeCount {
            code: code.to_owned(),
            status_code,
            count,
        })
        .collect();
    by_code.sort_by_key(|c| std::cmp::Reverse(c.count));
    let answer = requester_answer(&batch);
    views::render(&BatchPage {
        nav: Nav::new(&user, "imports"),
        query: batch_query(&batch.org_id, &batch.batch_id),
        status: batch.status.clone(),
        received: batch.received,
        created: batch.created,
        updated: batch.updated,
        failed: batch.failed,
        processed_at: stamp(batch.processed_at),
        apply_time: batch
            .apply_ms
            .map_or_else(|| "–".into(), |ms| format!("{ms} ms")),
        message_type: batch
            .message_type
            .clone()
            .unwrap_or_else(|| "not recorded".into()),
        publisher: batch
            .publisher
            .clone()
            .unwrap_or_else(|| "not recorded".into()),
        resent: match &batch.send_id {
            Some(id) => format!(
                "x-send-id {id}: a copy with another send id is answered as a resend, from the stored result"
            ),
            None => "no x-send-id".into(),
        },
        failures_shown_of: result.failed_contacts.len(),
        failures: result
            .failed_contacts
            .iter()
            .take(FAILURES_SHOWN)
            .map(|f| FailedRow {
                index: f.id.clone(),
                code: f.error_code.clone(),
                message: f.error_message.clone(),
                status_code: f.status_code,
            })
            .collect(),
        by_code,
        answer_type: answer.as_ref().map_or("", |a| a.content_type).to_owned(),
        answer: answer.map(|a| String::from_utf8_lossy(&a.body).into_owned()),
        letters: letters
            .into_iter()
            .map(|l| LetterRow {
                link: format!("/dead-letters/letter?offset={}", l.offset),
                reason: l.reason,
                at: stamp(l.dead_at),
                settled: l.settled.unwrap_or_default(),
            })
            .collect(),
        can_download: user.may(Role::Operator),
        org: batch.org_id,
        batch_id: batch.batch_id,
    })
}

/// A batch to download: for operators and admins, within their orgs.
async fn load_download(
    console: &Shared,
    user: &User,
    q: &BatchQuery,
) -> Result<(history::Batch, StoredResult), Refusal> {
    user.require(Role::Operator)?;
    load(console, user, q).await
}

/// The requester's own answer, made from the stored result by the batch's dialect, as the
/// worker made it (none for a dialect without one, or a batch stored before its type was).
fn requester_answer(batch: &history::Batch) -> Option<crate::dialect::RequesterReply> {
    let dialect = MessageType::named(batch.message_type.as_deref()?)?;
    dialect.dialect().requester_reply(&batch.result)
}

/// A file to download, named after the batch.
fn download(content_type: &str, batch_id: &str, suffix: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, file_name(batch_id, suffix)),
        ],
        body,
    )
        .into_response()
}

/// A download's file name: the batch id made safe for a header (it is the producer's).
fn file_name(batch_id: &str, suffix: &str) -> String {
    let safe: String = batch_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("attachment; filename=\"{safe}{suffix}\"")
}

fn audit(user: &User, action: &str, org: &str, batch_id: &str) {
    info!(target: "audit", user = %user.name, action, org, batch = batch_id, "console action");
}

pub async fn failed_csv(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<BatchQuery>,
) -> Result<Response, Refusal> {
    let (batch, result) = load_download(&console, &user, &q).await?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let written = (|| -> Result<Vec<u8>, csv::Error> {
        csv.write_record(["index", "errorCode", "errorMessage", "statusCode"])?;
        for f in &result.failed_contacts {
            csv.write_record([
                f.id.as_str(),
                &f.error_code,
                &f.error_message,
                &f.status_code.to_string(),
            ])?;
        }
        csv.into_inner().map_err(|e| e.into_error().into())
    })();
    let body = written.map_err(internal)?;
    audit(
        &user,
        "download failed contacts",
        &batch.org_id,
        &batch.batch_id,
    );
    Ok(download(
        "text/csv; charset=utf-8",
        &batch.batch_id,
        "-failed.csv",
        body,
    ))
}

pub async fn result_json(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<BatchQuery>,
) -> Result<Response, Refusal> {
    let (batch, _) = load_download(&console, &user, &q).await?;
    audit(&user, "download result", &batch.org_id, &batch.batch_id);
    Ok(download(
        "application/json",
        &batch.batch_id,
        "-result.json",
        batch.result,
    ))
}

/// The requester's answer in its dialect (DocuSign's XML included), as a download.
pub async fn answer(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<BatchQuery>,
) -> Result<Response, Refusal> {
    let (batch, _) = load_download(&console, &user, &q).await?;
    let Some(answer) = requester_answer(&batch) else {
        return Err(Refusal::NotFound("dialect answer for this batch"));
    };
    audit(&user, "download answer", &batch.org_id, &batch.batch_id);
    let suffix = if answer.content_type.contains("xml") {
        "-answer.xml"
    } else {
        "-answer.json"
    };
    Ok(download(
        answer.content_type,
        &batch.batch_id,
        suffix,
        answer.body,
    ))
}

pub async fn settings(State(console): State<Shared>, user: User) -> Result<Response, Refusal> {
    // Users' names and orgs span every org: shown to admins of every org only.
    let users = if user.may(Role::Admin) && user.scope == crate::store::scope::Scope::All {
        let client = db(&console).await?;
        match console_users::all(&**client).await {
            Ok(all) => Some(
                all.into_iter()
                    .map(|u| UserRow {
                        name: u.name,
                        role: u.role,
                        orgs: u.orgs.join(", "),
                        locked: u.locked,
                    })
                    .collect(),
            ),
            Err(e) => return Err(internal(e)),
        }
    } else {
        None
    };
    let config = &console.config;
    views::render(&SettingsPage {
        nav: Nav::new(&user, "settings"),
        retention: config.retention.map_or_else(
            || "kept until pruned (CONTACT_IMPORT_HISTORY_RETENTION is not set)".into(),
            |r| humantime::format_duration(r).to_string(),
        ),
        auth: match config.auth {
            AuthMode::Password => "the console's users (password)".into(),
            AuthMode::Proxy => format!("a trusted proxy's {} header", config.proxy_user_header),
        },
        session_ttl: humantime::format_duration(config.session_ttl).to_string(),
        users,
    })
}
