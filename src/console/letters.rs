//! Dead letters: listed and shown from their records in the database (so looking never
//! touches the queue), replayed and purged in the queue itself, after a count and a
//! confirmation, by the same passes as `contact-import dlq replay` and `dlq purge`.

use super::Shared;
use super::auth::{Role, User, db};
use super::pages::stamp;
use super::refusal::{Refusal, internal};
use super::views::{self, ConfirmPage, DeadRow, DonePage, LetterPage, LettersPage, Nav};
use crate::commands::dlq;
use crate::dialect::{self, save};
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

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
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
    // Save User Contacts letters carry account passwords: kept for the replay, never shown
    // (as `dlq show` hides them).
    let body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut json) => {
            save::hide_passwords(&mut json, Some("<hidden>"));
            serde_json::to_string_pretty(&json).unwrap_or_default()
        }
        Err(_) if dialect::mentions_password(&body) => format!(
            "(body not shown: it is not JSON and mentions a password; {} bytes)",
            body.len()
        ),
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
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
    #[serde(default)]
    scope: String,
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
        let mut fields = vec![("scope".to_owned(), self.scope.clone())];
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
    if form.scope == "all" {
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
    let key = |(_, id, org): &Target| (id.clone(), org.clone().unwrap_or_else(|| "-".into()));
    let wanted: HashSet<(String, String)> = targets.iter().map(key).collect();
    let replayed: HashSet<(String, String)> = dlq::replay_batches(&console.config.broker, &wanted)
        .await
        .map_err(|e| internal(format!("{e:#}")))?
        .into_iter()
        .collect();
    let done: Vec<&Target> = targets
        .iter()
        .filter(|t| replayed.contains(&key(t)))
        .collect();
    let settled: Vec<i64> = done.iter().map(|(offset, _, _)| *offset).collect();
    dead_letters::settle(&**db(&console).await?, &settled, "replayed", &user.name)
        .await
        .map_err(internal)?;
    for (offset, id, org) in &done {
        info!(target: "audit", user = %user.name, action = "replay dead letter", org = org.as_deref().unwrap_or("-"), batch = %id, letter = offset, "console action");
    }
    let missing = targets.len() - settled.len();
    views::render(&DonePage {
        nav: Nav::new(&user, "dead-letters"),
        message: if missing == 0 {
            format!(
                "Replayed {} dead letter(s); their results appear in Imports as the workers answer them.",
                settled.len()
            )
        } else {
            format!(
                "Replayed {} of {} dead letter(s). {missing} were not replayed: no longer in the dead-letter queue (replayed or purged with the CLI), or refused because their sender was not allowed (replay those with `contact-import dlq replay --include-refused`).",
                settled.len(),
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
    let removed = dlq::purge_queue(&console.config.broker, older_than)
        .await
        .map_err(|e| internal(format!("{e:#}")))?;
    let offsets: Vec<i64> = targets.iter().map(|(o, _, _)| *o).collect();
    dead_letters::settle(&**db(&console).await?, &offsets, "purged", &user.name)
        .await
        .map_err(internal)?;
    info!(target: "audit", user = %user.name, action = "purge dead letters", older_than = %form.older_than, removed, recorded = offsets.len(), "console action");
    views::render(&DonePage {
        nav: Nav::new(&user, "dead-letters"),
        message: format!(
            "Removed {removed} dead letter(s) older than {} from the dead-letter queue.",
            form.older_than
        ),
        back: "/dead-letters".into(),
    })
}
