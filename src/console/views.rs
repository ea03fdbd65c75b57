//! The console's pages, as askama templates (`templates/console/`). askama escapes every
//! value for HTML unless a template says otherwise, and none does: names, org ids, error
//! messages and file names come from producers and are shown as text.

use super::auth::User;
use super::refusal::{Refusal, internal};
use askama::Template;
use axum::response::{Html, IntoResponse, Response};

/// Renders a page; a template that fails to render is a 500, logged.
pub fn render(page: &impl Template) -> Result<Response, Refusal> {
    Ok(Html(page.render().map_err(internal)?).into_response())
}

/// What the header of every page shows.
pub struct Nav {
    pub user: String,
    pub role: &'static str,
    pub orgs: String,
    /// The page's name in the menu.
    pub active: &'static str,
}

impl Nav {
    pub fn new(user: &User, active: &'static str) -> Self {
        Self {
            user: user.name.clone(),
            role: user.role.as_str(),
            orgs: match &user.scope {
                crate::store::scope::Scope::All => "every org".into(),
                crate::store::scope::Scope::Orgs(orgs) => orgs.join(", "),
            },
            active,
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub next: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub struct OverviewPage {
    pub nav: Nav,
    pub grafana_url: Option<String>,
}

/// One queue's line on the overview.
#[derive(Clone)]
pub struct QueueRow {
    pub name: String,
    pub ready: Option<u32>,
    pub consumers: Option<u32>,
    pub error: Option<String>,
}

/// One minute's line on the overview.
pub struct MinuteRow {
    pub at: String,
    pub batches: i64,
    pub contacts: i64,
    pub contacts_per_s: String,
    /// Bar width in percent of the busiest minute.
    pub width: i64,
}

#[derive(Template)]
#[template(path = "console/overview_live.html")]
pub struct OverviewLive {
    pub minutes: Vec<MinuteRow>,
    pub contacts_per_s: String,
    pub batches_per_s: String,
    pub failed_ratio: String,
    pub applying: Option<i64>,
    pub dead_waiting: i64,
    pub dead_oldest: Option<String>,
    pub queues: Vec<QueueRow>,
    pub updated: String,
}

/// One line of the history.
pub struct HistoryRow {
    pub org: String,
    pub batch_id: String,
    pub status: String,
    pub received: String,
    pub failed: String,
    pub at: String,
    pub reason: String,
    /// The batch's page, or the dead letter's.
    pub link: String,
}

#[derive(Template)]
#[template(path = "console/imports.html")]
pub struct ImportsPage {
    pub nav: Nav,
    pub org: String,
    pub status: String,
    pub batch: String,
    pub code: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<HistoryRow>,
    pub next: Option<String>,
    pub error: Option<String>,
}

/// Failures of one error code.
pub struct CodeCount {
    pub code: String,
    pub status_code: u16,
    pub count: usize,
}

/// One failed contact.
pub struct FailedRow {
    pub index: String,
    pub code: String,
    pub message: String,
    pub status_code: u16,
}

/// A dead letter of this batch id.
pub struct LetterRow {
    pub link: String,
    pub reason: String,
    pub at: String,
    pub settled: String,
}

#[derive(Template)]
#[template(path = "console/batch.html")]
pub struct BatchPage {
    pub nav: Nav,
    pub org: String,
    pub batch_id: String,
    pub query: String,
    pub status: String,
    pub received: i32,
    pub created: i32,
    pub updated: i32,
    pub failed: i32,
    pub processed_at: String,
    pub apply_time: String,
    pub message_type: String,
    pub publisher: String,
    pub resent: String,
    pub by_code: Vec<CodeCount>,
    pub failures: Vec<FailedRow>,
    pub failures_shown_of: usize,
    pub answer: Option<String>,
    pub answer_type: String,
    pub letters: Vec<LetterRow>,
    pub can_download: bool,
}

/// One line of the dead-letter list.
pub struct DeadRow {
    pub offset: i64,
    pub batch_id: String,
    pub org: String,
    pub reason: String,
    pub error: String,
    pub attempts: String,
    pub at: String,
    pub settled: String,
}

#[derive(Template)]
#[template(path = "console/dead_letters.html")]
pub struct LettersPage {
    pub nav: Nav,
    pub org: String,
    pub reason: String,
    pub older_than: String,
    pub settled: bool,
    pub rows: Vec<DeadRow>,
    pub next: Option<String>,
    pub can_replay: bool,
    pub can_purge: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/letter.html")]
pub struct LetterPage {
    pub nav: Nav,
    pub row: DeadRow,
    pub message_type: String,
    pub publisher: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub can_replay: bool,
}

/// A bulk action's confirmation: what it takes, and a form that repeats the request with
/// the count the user saw.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub nav: Nav,
    pub action: &'static str,
    pub path: &'static str,
    pub count: usize,
    pub fields: Vec<(String, String)>,
    /// For a purge: the words the user must type.
    pub typed: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/done.html")]
pub struct DonePage {
    pub nav: Nav,
    pub message: String,
    pub back: String,
}

/// One console user, for admins.
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub orgs: String,
    pub locked: bool,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
pub struct SettingsPage {
    pub nav: Nav,
    pub retention: String,
    pub auth: String,
    pub session_ttl: String,
    pub users: Option<Vec<UserRow>>,
}
