//! Dead letters: listed and shown from their records in the database (so looking never
//! touches the queue), replayed and purged in the queue itself, after a count and a
//! confirmation, by the same passes as `contact-import dlq replay` and `dlq purge`.

use super::Shared;
use super::auth::{Role, User, db};
use super::pages::{some, stamp};
use super::refusal::{Refusal, internal};
use super::views::{self, ConfirmPage, DeadRow, DonePage, LetterPage, LettersPage, Nav};
use crate::commands::dlq;
use crate::store::dead_letters::{self, DeadLetter, LetterFilter, Target};
use crate::store::scope::Scope;
use axum::extract::{Query, State};

use axum::response::Response;
use axum_extra::extract::Form;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use std::collections::HashSet;
use tracing::info;

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    org: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    older_than: String,
    #[serde(default)]
    settled: Option<String>,
    /// The last line of the previous page: `<RFC 3339 time>|<offset>`.
    #[serde(default)]
    after: String,
}

fn filter(
    org: &str,
    reason: &str,
    older_than: &str,
    settled: bool,
) -> Result<LetterFilter, String> {
    let older_than = match some(older_than) {
        None => None,
        Some(text) => Some(
            humantime::parse_duration(&text)
                .map_err(|_| format!("'{text}' is not a duration: write 7d, 12h or 30m"))?,
        ),
    };
    Ok(LetterFilter {
        org: some(org),
        reason: some(reason),
        older_than,
        settled,
    })
}

fn row(l: &DeadLetter) -> DeadRow {
    DeadRow {
        offset: l.offset,
        batch_id: l.batch_id.clone(),
        org: l.org_id.clone().unwrap_or_else(|| "–".into()),
        reason: l.reason.clone(),
        error: l.error.clone().unwrap_or_default(),
        attempts: l.attempts.map_or_else(|| "–".into(), |n| n.to_string()),
        at: stamp(l.dead_at),
        settled: match (&l.settled, &l.settled_by, l.settled_at) {
            (Some(how), Some(by), Some(at)) => format!("{how} by {by}, {}", stamp(at)),
            (Some(how), _, _) => how.clone(),
            _ => String::new(),
        },
    }
}

pub async fn list(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<ListQuery>,
) -> Result<Response, Refusal> {
    let settled = q.settled.as_deref() == Some("true");
    let (letters_filter, error) = match filter(&q.org, &q.reason, &q.older_than, settled) {
        Ok(f) => (f, None),
        Err(e) => (LetterFilter::default(), Some(e)),
    };
    let after = q.after.split_once('|').and_then(|(at, offset)| {
        Some((
            DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            offset.parse().ok()?,
        ))
    });
    let client = db(&console).await?;
    let letters = dead_letters::page(&**client, &user.scope, &letters_filter, after, PAGE)
        .await
        .map_err(internal)?;
    let next = (letters.len() as i64 == PAGE).then(|| {
        let last = letters.last().expect("a full page");
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("org", &q.org),
            ("reason", &q.reason),
            ("older_than", &q.older_than),
        ] {
            if !v.is_empty() {
                url.append_pair(k, v);
            }
        }
        if settled {
            url.append_pair("settled", "true");
        }
        url.append_pair(
            "after",
            &format!(
                "{}|{}",
                last.dead_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                last.offset
            ),
        );
        format!("/dead-letters?{}", url.finish())
    });
    views::render(&LettersPage {
        nav: Nav::new(&user, "dead-letters"),
        rows: letters.iter().map(row).collect(),
        org: q.org,
        reason: q.reason,
        older_than: q.older_than,
        settled,
        next,
        can_replay: user.may(Role::Operator),
        can_purge: user.may(Role::Admin) && user.scope == Scope::All,
        error,
    })
}

#[derive(Deserialize)]
pub struct ShowQuery {
    offset: i64,
}

pub async fn show(
    State(console): State<Shared>,
    user: User,
    Query(q): Query<ShowQuery>,
) -> Result<Response, Refusal> {
    let client = db(&console).await?;
    let Some((letter, body)) = dead_letters::one(&**client, &user.scope, q.offset)
        .await
        .map_err(internal)?
    else {
        return Err(Refusal::NotFound("dead letter"));
    };
    let headers = match &letter.headers {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    // The body is contact data: for those who may download (and replay) it.
    let body = if user.may(Role::Operator) {
        dlq::shown_body(&body)
    } else {
        "(the body holds contact data: operators and admins see it)".to_owned()
    };
    views::render(&LetterPage {
        nav: Nav::new(&user, "dead-letters"),
        row: row(&letter),
        message_type: letter.message_type.clone().unwrap_or_else(|| "–".into()),
        publisher: letter.publisher.clone().unwrap_or_else(|| "–".into()),
        headers,
        body,
        can_replay: user.may(Role::Operator),
    })
}

/// A replay or purge request: the letters chosen (by offset, or by the filter), and, once
/// confirmed, the count the user was shown.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// `selected` (the `offset`s) or `all` (every letter the filter matches).
    #[serde(default)]
    take: String,
    #[serde(default)]
    offset: Vec<i64>,
    #[serde(default)]
    org: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    older_than: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    expected: Option<usize>,
    #[serde(default)]
    typed: String,
}

impl ActionForm {
    /// The form's fields again, for the confirmation page to send back.
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![("take".to_owned(), self.take.clone())];
        fields.extend(
            self.offset
                .iter()
                .map(|o| ("offset".to_owned(), o.to_string())),
        );
        for (k, v) in [
            ("org", &self.org),
            ("reason", &self.reason),
            ("older_than", &self.older_than),
        ] {
            fields.push((k.to_owned(), v.clone()));
        }
        fields
    }
}

/// The unsettled letters a replay takes: the selected ones, or all that match the filter.
async fn chosen(console: &Shared, user: &User, form: &ActionForm) -> Result<Vec<Target>, Refusal> {
    let client = db(console).await?;
    if form.take == "all" {
        let f = filter(&form.org, &form.reason, &form.older_than, false)
            .map_err(Refusal::BadRequest)?;
        return dead_letters::matching(&**client, &user.scope, &f)
            .await
            .map_err(internal);
    }
    let mut chosen = Vec::new();
    for offset in &form.offset {
        if let Some((letter, _)) = dead_letters::one(&**client, &user.scope, *offset)
            .await
            .map_err(internal)?
            && letter.settled.is_none()
        {
            chosen.push((letter.offset, letter.batch_id, letter.org_id));
        }
    }
    Ok(chosen)
}

pub async fn replay(
    State(console): State<Shared>,
    user: User,
    Form(form): Form<ActionForm>,
) -> Result<Response, Refusal> {
    user.require(Role::Operator)?;
    let targets = chosen(&console, &user, &form).await?;
    if form.confirm != "yes" || form.expected != Some(targets.len()) {
        let error = (form.confirm == "yes").then(|| {
            "The letters changed since the count (another replay, or new letters): check the new count.".to_owned()
        });
        return views::render(&ConfirmPage {
            nav: Nav::new(&user, "dead-letters"),
            action: "Replay",
            path: "/dead-letters/replay",
            count: targets.len(),
            fields: form.fields(),
            typed: None,
            error,
        });
    }
    // Batch ids are an org's own: a letter is taken by its batch id and org, so that a
    // replay never touches another org's letter with the same id.
    let wanted: HashSet<(String, String)> = targets.iter().map(key).collect();
    let offsets: Vec<i64> = targets.iter().map(|(o, _, _)| *o).collect();
    let replayed = settle_in_the_queue(&console, &user, Pass::Replay(wanted), offsets).await?;
    let missing = targets.len().saturating_sub(replayed);
    views::render(&DonePage {
        nav: Nav::new(&user, "dead-letters"),
        message: if missing == 0 {
            format!(
                "Replayed {replayed} dead letter(s); their results appear in Imports as the workers answer them."
            )
        } else {
            format!(
                "Replayed {} of {} dead letter(s). {missing} were not replayed: no longer in the dead-letter queue (replayed or purged with the CLI), or refused because their sender was not allowed (replay those with `contact-import dlq replay --include-refused`).",
                replayed,
                targets.len()
            )
        },
        back: "/dead-letters".into(),
    })
}

pub async fn purge(
    State(console): State<Shared>,
    user: User,
    Form(form): Form<ActionForm>,
) -> Result<Response, Refusal> {
    user.require(Role::Admin)?;
    // The queue holds every org's letters: only an admin of every org may purge it.
    if user.scope != Scope::All {
        return Err(Refusal::Forbidden(
            "purging needs an admin of every org".into(),
        ));
    }
    let Some(older_than) = some(&form.older_than).and_then(|t| humantime::parse_duration(&t).ok())
    else {
        return Err(Refusal::BadRequest(
            "older_than must be a duration such as 30d".into(),
        ));
    };
    let f = LetterFilter {
        older_than: Some(older_than),
        ..Default::default()
    };
    let targets = dead_letters::matching(&**db(&console).await?, &user.scope, &f)
        .await
        .map_err(internal)?;
    let words = format!("purge {}", targets.len());
    if form.confirm != "yes" || form.expected != Some(targets.len()) || form.typed.trim() != words {
        let error = (form.confirm == "yes").then(|| {
            format!("Type exactly \u{201c}{words}\u{201d} to confirm (the count may have changed).")
        });
        return views::render(&ConfirmPage {
            nav: Nav::new(&user, "dead-letters"),
            action: "Purge",
            path: "/dead-letters/purge",
            count: targets.len(),
            fields: vec![("older_than".into(), form.older_than.clone())],
            typed: Some(words),
            error,
        });
    }
    let offsets: Vec<i64> = targets.iter().map(|(o, _, _)| *o).collect();
    let removed = settle_in_the_queue(&console, &user, Pass::Purge(older_than), offsets).await?;
    views::render(&DonePage {
        nav: Nav::new(&user, "dead-letters"),
        message: format!(
            "Removed {removed} dead letter(s) older than {} from the dead-letter queue.",
            form.older_than
        ),
        back: "/dead-letters".into(),
    })
}

/// A pass over the dead-letter queue.
enum Pass {
    /// Replay the letters of these (batch id, org).
    Replay(HashSet<(String, String)>),
    /// Remove the letters dead longer than this.
    Purge(std::time::Duration),
}

/// A letter's (batch id, org), as the queue passes match them (`-`: no org).
fn key((_, id, org): &Target) -> (String, String) {
    (id.clone(), org.clone().unwrap_or_else(|| "-".into()))
}

/// Runs the pass in a task of its own, so that a browser that goes away cannot stop it half
/// way, then writes an audit line for each letter it took and marks those of the confirmed
/// `offsets` settled. Returns how many letters it replayed or removed.
async fn settle_in_the_queue(
    console: &Shared,
    user: &User,
    pass: Pass,
    offsets: Vec<i64>,
) -> Result<usize, Refusal> {
    let (console, user) = (console.clone(), user.clone());
    let task = tokio::spawn(async move {
        let broker = &console.config.broker;
        let (how, action, done) = match pass {
            Pass::Replay(wanted) => (
                "replayed",
                "replay dead letter",
                dlq::replay_batches(broker, &wanted).await?,
            ),
            Pass::Purge(older_than) => (
                "purged",
                "purge dead letter",
                dlq::purge_queue(broker, older_than)
                    .await?
                    .into_iter()
                    .map(|f| (f.batch_id, f.org))
                    .collect(),
            ),
        };
        for (batch, org) in &done {
            info!(target: "audit", user = %user.name, action, org = %org, batch = %batch, "console action");
        }
        let client = console.pool.get().await?;
        dead_letters::settle(&**client, &offsets, &done, how, &user.name).await?;
        anyhow::Ok(done.len())
    });
    match task.await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(internal(format!("{e:#}"))),
        Err(e) => Err(internal(e)),
    }
}
