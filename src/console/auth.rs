//! Who is asking, and what they may do. A request is signed in by the session cookie
//! (`--auth password`) or by a trusted proxy's user header (`--auth proxy`); either way the
//! user must be a console user, whose role and orgs apply. Nothing is served anonymously.

use super::refusal::{Refusal, internal};
use super::views::{self, LoginPage};
use super::{AuthMode, Shared};
use crate::contact::credentials;
use crate::store::console_users::{self, ConsoleUser};
use crate::store::scope::Scope;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;
use tracing::{info, warn};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "contact_import_session";

/// Failed logins in a row before a user is locked out, and for how long.
const LOCK_AFTER: i32 = 5;
const LOCKOUT: Duration = Duration::from_secs(60);

/// What a user may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads pages.
    Viewer,
    /// Also downloads failed contacts and results, and replays dead letters.
    Operator,
    /// Also purges dead letters.
    Admin,
}

impl Role {
    /// The role named `name` (as stored and as `console-users add --role` takes it).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl User {
    fn of(stored: ConsoleUser) -> Option<Self> {
        Some(Self {
            role: Role::parse(&stored.role)?,
            scope: Scope::from_orgs(stored.orgs),
            name: stored.name,
        })
    }

    /// Refuses (403) a user whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), Refusal> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Refusal::Forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }

    pub fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

impl FromRequestParts<Shared> for User {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, console: &Shared) -> Result<Self, Refusal> {
        let user = match console.config.auth {
            AuthMode::Proxy => proxy_user(parts, console).await?,
            AuthMode::Password => {
                let jar = CookieJar::from_headers(&parts.headers);
                match jar.get(SESSION_COOKIE) {
                    Some(cookie) => {
                        let client = db(console).await?;
                        console_users::session_user(&**client, &digest(cookie.value()))
                            .await
                            .map_err(internal)?
                    }
                    None => None,
                }
            }
        };
        match user.and_then(User::of) {
            Some(user) => Ok(user),
            // Back to the same page after signing in; a script's fetch (not a navigation)
            // gets 401 instead, so that it does not show the login page inside a page.
            None if console.config.auth == AuthMode::Password
                && parts.method == Method::GET
                && parts
                    .headers
                    .get("sec-fetch-mode")
                    .is_none_or(|mode| mode == "navigate") =>
            {
                Err(Refusal::SignIn {
                    next: parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned(),
                })
            }
            None => Err(Refusal::Unauthenticated),
        }
    }
}

async fn proxy_user(parts: &mut Parts, console: &Shared) -> Result<Option<ConsoleUser>, Refusal> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !peer.is_some_and(|ip| console.config.trusted_proxies.contains(&ip)) {
        warn!(peer = ?peer, "refused a request that did not come through the trusted proxy");
        return Err(Refusal::Forbidden(
            "this console is served through its proxy only".into(),
        ));
    }
    let Some(name) = parts
        .headers
        .get(console.config.proxy_user_header.as_str())
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let client = db(console).await?;
    console_users::find(&**client, name).await.map_err(internal)
}

pub(crate) async fn db(console: &Shared) -> Result<deadpool_postgres::Object, Refusal> {
    console.pool.get().await.map_err(|e| {
        warn!(error = %e, "no database connection for the console");
        Refusal::Unavailable
    })
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(console): State<Shared>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, Refusal> {
    if console.config.auth == AuthMode::Proxy {
        return Ok(Redirect::to("/").into_response());
    }
    views::render(&LoginPage {
        next: local_path(q.next.as_deref()),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

/// Password verifications at once: argon2id takes about 19 MiB and tens of milliseconds
/// each, so a burst of sign-ins waits here instead of exhausting memory.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A stand-in hash, verified against when the user does not exist, so that a wrong name
/// takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| credentials::hash("not a password").expect("hashing works"));

pub async fn login(
    State(console): State<Shared>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, Refusal> {
    if console.config.auth == AuthMode::Proxy {
        return Err(Refusal::NotFound("login page: sign in through the proxy"));
    }
    let client = db(&console).await?;
    let next = local_path(form.next.as_deref());
    // One answer for every refusal: it does not tell which names exist.
    let refused = || {
        let mut page = views::render(&LoginPage {
            next: next.clone(),
            error: Some(
                "Wrong name or password, or too many failed attempts (wait a minute).".into(),
            ),
        })?;
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        Ok(page)
    };
    // The attempt is counted before the password is checked (and the count cleared when it
    // matches), so parallel guesses cannot all pass before the lockout.
    let stored = console_users::find(&**client, &form.user)
        .await
        .map_err(internal)?;
    // Every name costs the same statement, so that timing does not tell which exist.
    let allowed = console_users::count_attempt(&**client, &form.user, LOCK_AFTER, LOCKOUT)
        .await
        .map_err(internal)?
        && stored.is_some();
    let hash = stored
        .as_ref()
        .filter(|_| allowed)
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password = form.password.clone();
    // No connection is held while waiting for a turn: a burst of sign-ins must not take
    // the pool from every page.
    drop(client);
    let matches = {
        let _turn = tokio::time::timeout(Duration::from_secs(10), VERIFYING.acquire())
            .await
            .map_err(|_| Refusal::Unavailable)?
            .map_err(internal)?;
        tokio::task::spawn_blocking(move || credentials::verify(&password, &hash))
            .await
            .unwrap_or(false)
    };
    let Some(stored) = stored else {
        info!(target: "audit", user = %form.user, action = "login", outcome = "unknown user");
        return refused();
    };
    if !allowed || !matches {
        let outcome = if allowed { "wrong password" } else { "locked" };
        info!(target: "audit", user = %stored.name, action = "login", outcome);
        return refused();
    }
    let client = db(&console).await?;
    let mut token = [0u8; 32];
    getrandom::fill(&mut token).map_err(internal)?;
    let token = hex::encode(token);
    let ttl = console.config.session_ttl;
    console_users::start_session(&**client, &stored.name, &digest(&token), ttl)
        .await
        .map_err(internal)?;
    info!(target: "audit", user = %stored.name, action = "login", outcome = "signed in");
    let secure = console
        .config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ));
    Ok((jar.add(cookie), Redirect::to(&next)).into_response())
}

pub async fn logout(State(console): State<Shared>, jar: CookieJar) -> Result<Response, Refusal> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        let client = db(&console).await?;
        console_users::end_session(&**client, &digest(cookie.value()))
            .await
            .map_err(internal)?;
    }
    let gone = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/");
    Ok((jar.remove(gone), Redirect::to("/login")).into_response())
}

/// `next` if it is a path of this site, else `/`: a login link cannot send the user away.
fn local_path(next: Option<&str>) -> String {
    // Browsers drop tabs and newlines from URLs and read `\` as `/`, so `/\t/evil` and
    // `/\\evil` would lead off the site: any control character or backslash, or `//`, refuses.
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.chars().any(|c| c.is_control() || c == '\\') =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/imports?org=a")), "/imports?org=a");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(Some("/\r\nSet-Cookie: x=y")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
