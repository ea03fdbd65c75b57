//! `contact-import console`: the operators' web console over the same PostgreSQL and
//! RabbitMQ as the workers. Server-rendered HTML (askama), one small script for the live
//! overview, everything embedded in the binary. Off unless `--listen` is set, and never
//! anonymous: every page needs a signed-in user (or a user named by a trusted proxy).
//!
//! The rooms: `auth` (users, sessions, roles, scopes), `pages` (overview, history,
//! batch detail, downloads), `letters` (dead letters: list, show, replay, purge), and
//! `recorder` (copies every dead letter from the dead-letter stream into the database, so
//! that listing them never touches the queue). `views` holds the templates.

mod assets;
mod auth;
mod letters;
mod pages;
mod recorder;
mod refusal;
mod views;

use crate::config::{BrokerConfig, DatabaseConfig, LaneConfig};
use crate::store::{connect, console_users, history};
use anyhow::{Context, bail};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use clap::Args;
use deadpool_postgres::Pool;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::{info, warn};

/// `contact-import console`'s settings.
#[derive(Debug, Clone, Args)]
pub struct ConsoleConfig {
    /// Address to serve on, e.g. `127.0.0.1:8081`. The console does not start without it.
    #[arg(long, env = "CONTACT_IMPORT_CONSOLE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The URL people open the console at (e.g. `https://console.example.com`): its origin is
    /// trusted for POSTs behind a proxy that rewrites `Host`, and an `https` URL marks the
    /// session cookie `Secure`.
    #[arg(long, env = "CONTACT_IMPORT_CONSOLE_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// How users sign in: `password` (the console's own users and login page) or `proxy`
    /// (a reverse proxy such as oauth2-proxy signs them in and names them in a header).
    #[arg(long, env = "CONTACT_IMPORT_CONSOLE_AUTH", default_value = "password")]
    pub auth: AuthMode,
    /// With `--auth proxy`: the header the proxy names the user in.
    #[arg(
        long,
        env = "CONTACT_IMPORT_CONSOLE_PROXY_USER_HEADER",
        default_value = "X-Forwarded-User"
    )]
    pub proxy_user_header: String,
    /// With `--auth proxy`: the proxy's addresses (comma-separated). Requests from any other
    /// address are refused, whatever headers they carry.
    #[arg(
        long,
        env = "CONTACT_IMPORT_CONSOLE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// How long a session lasts after sign-in.
    #[arg(long, env = "CONTACT_IMPORT_CONSOLE_SESSION_TTL", value_parser = humantime::parse_duration, default_value = "8h")]
    pub session_ttl: Duration,
    /// The Grafana dashboard to link to for history, e.g.
    /// `https://grafana.example.com/d/contact-import`.
    #[arg(long, env = "CONTACT_IMPORT_CONSOLE_GRAFANA_URL")]
    pub grafana_url: Option<url::Url>,
    /// Keep the history (processed batches and dead-letter records) this long, e.g. `30d`;
    /// the console prunes older rows every hour. Unset: kept until `batches prune`.
    #[arg(long, env = "CONTACT_IMPORT_HISTORY_RETENTION", value_parser = humantime::parse_duration)]
    pub retention: Option<Duration>,
    /// The broker and the names of the topology.
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The lanes and shards, whose queues the overview shows.
    #[command(flatten)]
    pub lanes: LaneConfig,
}

/// How console users sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The console's users (`contact-import console-users`), a login page and a session cookie.
    Password,
    /// A trusted reverse proxy names the user (who must still be a console user, for their
    /// role and orgs).
    Proxy,
}

/// What every handler shares.
pub(crate) struct Console {
    pub pool: Pool,
    pub config: ConsoleConfig,
    /// The queues the overview shows, in order.
    pub queues: Vec<String>,
    /// Their depths as last read, and when: every open overview refreshes every few
    /// seconds, and each reading opens a broker connection.
    pub depths: tokio::sync::Mutex<Option<(std::time::Instant, Vec<views::QueueRow>)>>,
}

pub(crate) type Shared = Arc<Console>;

/// Serves the console until SIGTERM/SIGINT.
pub async fn run(config: ConsoleConfig) -> anyhow::Result<()> {
    let Some(listen) = config.listen else {
        bail!(
            "the console is off: set CONTACT_IMPORT_CONSOLE_LISTEN (or --listen) to the address to serve on"
        );
    };
    if config.auth == AuthMode::Proxy && config.trusted_proxies.is_empty() {
        bail!(
            "--auth proxy needs CONTACT_IMPORT_CONSOLE_TRUSTED_PROXIES: the addresses of the proxy, the only peers whose user header is believed"
        );
    }
    if let Some(retention) = config.retention
        && retention < history::PRUNE_AT_LEAST
    {
        bail!(
            "CONTACT_IMPORT_HISTORY_RETENTION is {}: keep at least a day, since younger batches may still come back and their records keep them from being applied twice",
            humantime::format_duration(retention)
        );
    }
    let (pool, _tls) = connect::pool(&config.database.database_url, 8)?;
    let client = pool.get().await.context("connecting to the database")?;
    if config.auth == AuthMode::Password && console_users::count(&**client).await? == 0 {
        bail!(
            "no console users: add one with `contact-import console-users add NAME --role admin`; the console never serves anonymous requests"
        );
    }
    drop(client);
    let lanes = crate::broker::lanes::Lanes::new(&config.broker, &config.lanes);
    let mut queues = crate::broker::topology::intake_queues(&config.broker);
    if config.lanes.enabled {
        queues.extend(lanes.queues().map(str::to_owned));
    }
    queues.push(config.broker.dead_letter_queue.clone());
    let console = Arc::new(Console {
        pool,
        config: config.clone(),
        queues,
        depths: tokio::sync::Mutex::new(None),
    });

    let (trigger, stop) = crate::shutdown::channel();
    tokio::spawn(crate::shutdown::fire_on_signal(trigger));
    let recording = tokio::spawn(recorder::run(console.clone()));
    if let Some(retention) = config.retention {
        tokio::spawn(prune_every_hour(console.clone(), retention));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    info!(addr = %listener.local_addr()?, auth = ?config.auth, "serving the console");
    axum::serve(
        listener,
        app(console.clone())?.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.wait().await })
    .await?;
    recording.abort();
    Ok(())
}

/// Every route, behind the cross-origin check and the security headers.
pub(crate) fn app(console: Shared) -> anyhow::Result<Router> {
    let mut csrf = CsrfLayer::new();
    if let Some(url) = &console.config.public_url {
        csrf = csrf
            .add_trusted_origin(url.origin().ascii_serialization())
            .map_err(|e| anyhow::anyhow!("CONTACT_IMPORT_CONSOLE_PUBLIC_URL: {e}"))?;
    }
    let routes = Router::new()
        .route("/", get(pages::overview))
        .route("/overview/live", get(pages::overview_live))
        .route("/imports", get(pages::imports))
        .route("/batch", get(pages::batch))
        .route("/batch/failed.csv", get(pages::failed_csv))
        .route("/batch/result.json", get(pages::result_json))
        .route("/batch/answer", get(pages::answer))
        .route("/dead-letters", get(letters::list))
        .route("/dead-letters/letter", get(letters::show))
        .route("/dead-letters/replay", post(letters::replay))
        .route("/dead-letters/purge", post(letters::purge))
        .route("/settings", get(pages::settings))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{file}", get(assets::serve))
        // For probes: the process answers (it says nothing else, and needs no sign-in).
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(console);
    Ok(routes
        .layer(csrf)
        // No inline script or style anywhere: the page's own files only.
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )))
}

async fn prune_every_hour(console: Shared, retention: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let pruned = async {
            let client = console.pool.get().await?;
            anyhow::Ok(history::prune(&**client, retention).await?)
        }
        .await;
        match pruned {
            Ok((batches, letters)) => info!(
                batches,
                dead_letters = letters,
                retention = %humantime::format_duration(retention),
                "pruned the history"
            ),
            Err(e) => warn!(error = %format!("{e:#}"), "pruning the history failed"),
        }
    }
}
