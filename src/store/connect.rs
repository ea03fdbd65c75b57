//! How every part of the program reaches PostgreSQL: the worker's pool and the commands'
//! single connections are made here, from one `DATABASE_URL`, so they connect alike.
//!
//! `DATABASE_URL` is what libpq takes, as a URL (`postgresql://u@h/db?sslmode=verify-full`)
//! or as `key=value` pairs (`host=h dbname=db sslmode=verify-full`). tokio-postgres knows
//! only `sslmode=disable|prefer|require` and refuses the other TLS keys, so those are read
//! here first and honoured as libpq documents them:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | if the server offers it | not checked, unless a root certificate is given (then as `verify-ca`) |
//! | `require` | always | not checked, unless a root certificate is given (then as `verify-ca`) |
//! | `verify-ca` | always | chains to `sslrootcert` |
//! | `verify-full` | always | chains to `sslrootcert` and names the host connected to |
//!
//! `sslrootcert` is a PEM file, or `system` for the system's trust store; without it libpq's
//! default `~/.postgresql/root.crt` is used when it exists (and required by the `verify-*`
//! modes). `sslcert` and `sslkey` are a client certificate and its key.

use crate::tls::{self, Identity, Roots, TlsSettings, Verify};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the database could not be reached at start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL (or key=value string) cannot be used; retrying cannot help.
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    /// A TLS file or setting is unusable; retrying cannot help.
    #[error("the TLS settings of DATABASE_URL: {0}")]
    Tls(#[from] tls::TlsError),
    /// The database refused or could not be reached.
    #[error("connecting to PostgreSQL: {}", super::describe(.0))]
    Connect(#[source] tokio_postgres::Error),
    /// The pool's settings are wrong.
    #[error("building the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
}

/// The TLS side of the connections: none, or rustls configured from the libpq keys.
#[derive(Clone)]
pub enum Tls {
    /// `sslmode=disable`.
    None,
    /// Every other mode.
    Rustls(MakeRustlsConnect),
}

/// A parsed `DATABASE_URL`: tokio-postgres' settings and the TLS they need.
pub struct Target {
    /// Everything but TLS, as tokio-postgres reads it (hosts, `target_session_attrs`, …).
    pub config: tokio_postgres::Config,
    /// How connections are encrypted and the server verified.
    pub tls: Tls,
}

/// The libpq keys read here rather than by tokio-postgres, and the environment variables
/// that libpq reads as their defaults.
const TLS_KEYS: &[(&str, &str)] = &[
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
];

fn is_tls_key(key: &str) -> bool {
    TLS_KEYS.iter().any(|(k, _)| *k == key)
}

impl Target {
    /// Reads a libpq connection string, URL or key=value form, with libpq's environment
    /// defaults for the TLS keys it does not name (`PGSSLMODE`, `PGSSLROOTCERT`, …).
    pub fn parse(database_url: &str) -> Result<Self, ConnectError> {
        Self::parse_with(database_url, |variable| std::env::var(variable).ok())
    }

    /// [`Target::parse`] with the environment given.
    fn parse_with(
        database_url: &str,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectError> {
        let (rest, keys) = split_tls_keys(database_url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| ConnectError::Url(e.to_string()))?;
        // The connection string wins; an empty variable counts as unset.
        let get = |name: &str| {
            keys.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    let (_, variable) = TLS_KEYS.iter().find(|(k, _)| *k == name)?;
                    environment(variable).filter(|v| !v.is_empty())
                })
        };
        let explicit_root = get("sslrootcert");
        // As libpq (16+): the system's roots trust every public CA, so they are only worth
        // something with the host name checked; `system` implies, and needs, verify-full.
        let system_roots = explicit_root.as_deref() == Some("system");
        let mode = match get("sslmode") {
            None if system_roots => "verify-full".into(),
            None => "prefer".into(),
            Some(mode) if system_roots && mode != "verify-full" => {
                return Err(ConnectError::Url(format!(
                    "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \
                     \"verify-full\")"
                )));
            }
            Some(mode) => mode,
        };
        let root = match explicit_root.as_deref() {
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            None => default_root().map(Roots::File),
        };
        let identity = match (get("sslcert"), get("sslkey")) {
            (Some(certificate), Some(key)) => Some(Identity {
                certificate: certificate.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => {
                return Err(ConnectError::Url(
                    "sslcert and sslkey go together (a client certificate and its key)".into(),
                ));
            }
        };
        let needs_root = |verify| {
            root.clone().map(|roots| (roots, verify)).ok_or_else(|| {
                ConnectError::Url(format!(
                    "sslmode={mode} needs sslrootcert (a CA file, or `system`); \
                     ~/.postgresql/root.crt does not exist"
                ))
            })
        };
        let (ssl_mode, verification) = match mode.as_str() {
            "disable" => (SslMode::Disable, None),
            "allow" | "prefer" | "require" => {
                let verify = match &root {
                    Some(roots) => (roots.clone(), Verify::ChainOnly),
                    None => (Roots::System, Verify::Nothing),
                };
                let ssl_mode = if mode == "require" {
                    SslMode::Require
                } else {
                    SslMode::Prefer
                };
                (ssl_mode, Some(verify))
            }
            "verify-ca" => (SslMode::Require, Some(needs_root(Verify::ChainOnly)?)),
            "verify-full" => (SslMode::Require, Some(needs_root(Verify::Full)?)),
            other => {
                return Err(ConnectError::Url(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                )));
            }
        };
        config.ssl_mode(ssl_mode);
        let tls = match verification {
            None => Tls::None,
            Some((roots, verify)) => {
                Tls::Rustls(MakeRustlsConnect::new(tls::client_config(&TlsSettings {
                    roots,
                    verify,
                    identity,
                })?))
            }
        };
        Ok(Self { config, tls })
    }
}

/// libpq's default root certificate file, when it exists.
fn default_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

/// The connection string without the TLS keys, and those keys' values.
fn split_tls_keys(conninfo: &str) -> Result<(String, Vec<(String, String)>), ConnectError> {
    let conninfo = conninfo.trim();
    let scheme = conninfo
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    if let Some(scheme) = &scheme
        && scheme != "postgres"
        && scheme != "postgresql"
    {
        return Err(ConnectError::Url(format!(
            "a {scheme}:// URL; DATABASE_URL takes postgres:// or postgresql://"
        )));
    }
    if scheme.is_some() {
        // Several hosts (`h1:5432,h2:5433`) are not one URL authority, and a form encoder
        // would turn `%20` into `+` (which libpq reads as a plus): only the TLS parameters are
        // taken out of the query, every other one is kept exactly as written.
        let (base, query) = conninfo.split_once('?').unwrap_or((conninfo, ""));
        let mut kept = Vec::new();
        let mut keys = Vec::new();
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = parameter.split_once('=').unwrap_or((parameter, ""));
            let key = percent_decoded(k)?;
            if is_tls_key(&key) {
                keys.push((key, percent_decoded(v)?));
            } else {
                kept.push(parameter);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, keys));
    }
    let mut kept = Vec::new();
    let mut keys = Vec::new();
    for (k, v) in conninfo_pairs(conninfo)? {
        if is_tls_key(&k) {
            keys.push((k, v));
        } else {
            kept.push(format!(
                "{k}='{}'",
                v.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), keys))
}

/// The `key = value` pairs of a libpq key/value connection string: values may be single
/// quoted, with `\'` and `\\` escapes, as libpq documents.
fn conninfo_pairs(conninfo: &str) -> Result<Vec<(String, String)>, ConnectError> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The key is not quoted back: a mistyped URL would print its password.
            return Err(ConnectError::Url(format!(
                "not a postgres:// URL, and no \"=\" after the {} key of the key=value \
                 connection string",
                ordinal(pairs.len() + 1)
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConnectError::Url(
                            "unterminated quoted string in the connection string".into(),
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A URL query component as libpq decodes it: `%XX` escapes only (`+` is a plus).
fn percent_decoded(component: &str) -> Result<String, ConnectError> {
    percent_encoding::percent_decode_str(component)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| ConnectError::Url("a URL parameter is not UTF-8 once decoded".into()))
}

/// "1st", "2nd", …, for messages that must not quote a connection string.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Builds the worker's connection pool; connections are opened on first use. They are
/// verified with a round trip before reuse (`RecyclingMethod::Verified`), so a connection
/// that died in a database restart is dropped instead of failing the next batch.
pub fn pool(database_url: &str, max_size: usize) -> Result<(Pool, Tls), ConnectError> {
    let Target { config, tls } = Target::parse(database_url)?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Verified,
    };
    let manager = match &tls {
        Tls::None => Manager::from_connect(config, Watched(NoTls), manager_config),
        Tls::Rustls(rustls) => {
            Manager::from_connect(config, Watched(rustls.clone()), manager_config)
        }
    };
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?;
    Ok((pool, tls))
}

/// One connection, for a command: it lives until the returned client is dropped.
pub async fn client(database_url: &str) -> Result<Client, ConnectError> {
    let Target { config, tls } = Target::parse(database_url)?;
    match tls {
        Tls::None => connect_with(&config, NoTls).await,
        Tls::Rustls(rustls) => connect_with(&config, rustls).await,
    }
}

async fn connect_with<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, ConnectError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await.map_err(ConnectError::Connect)?;
    tokio::spawn(drive(connection));
    Ok(client)
}

/// deadpool's way of making the pool's connections, driven by [`drive`].
struct Watched<T>(T);

impl<T> deadpool_postgres::Connect for Watched<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> std::pin::Pin<
        Box<
            dyn Future<
                    Output = Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
                > + Send
                + '_,
        >,
    > {
        let tls = self.0.clone();
        let config = config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(tls).await?;
            Ok((client, tokio::spawn(drive(connection))))
        })
    }
}

/// Runs a connection until it ends, reading the server's notices on the way.
///
/// One notice ends it at once: the warning that a COMMIT's wait for the synchronous standby
/// was cancelled (by `pg_cancel_backend`, a pooler, a server shutdown). That transaction has
/// committed on this server and perhaps on no other, and the COMMIT's reply, which follows
/// the warning, would report success. Closing the connection before the reply is read turns
/// that success into what it is: an unknown outcome, which the caller resolves as after any
/// connection lost under a COMMIT, by reading the batch back and confirming it replicated.
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notice(notice))) if is_sync_wait_cancelled(&notice) => {
                crate::metrics::sync_wait_cancelled();
                tracing::warn!(
                    notice = notice.message(),
                    "a commit's wait for the synchronous standby was cancelled: it is on the \
                     primary only; closing the connection so that it is not taken for a \
                     success, and its batch stays unanswered until it is replicated"
                );
                return;
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::info!(
                    severity = notice.severity(),
                    notice = notice.message(),
                    "database notice"
                );
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %super::describe(&e), "the database connection failed");
                return;
            }
            None => return,
        }
    }
}

/// Whether a notice says a commit's wait for synchronous replication was cut short. The
/// routine is the server's function name, which no `lc_messages` translates; the English
/// text is the fallback for a server that does not send it.
fn is_sync_wait_cancelled(notice: &tokio_postgres::error::DbError) -> bool {
    notice.routine() == Some("SyncRepWaitForLSN")
        || notice
            .message()
            .contains("wait for synchronous replication")
}

impl Tls {
    /// Cancels the statement `token` runs, over the same kind of connection.
    pub async fn cancel(
        &self,
        token: &tokio_postgres::CancelToken,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Tls::None => token.cancel_query(NoTls).await,
            Tls::Rustls(rustls) => token.cancel_query(rustls.clone()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(conninfo: &str) -> (String, Vec<(String, String)>) {
        split_tls_keys(conninfo).unwrap()
    }

    #[test]
    fn the_tls_keys_are_taken_out_of_a_url_and_the_rest_is_kept() {
        let (rest, tls) = keys(
            "postgresql://u:p@h1:5432,h2:5433/db?sslmode=verify-full&target_session_attrs=read-write\
             &sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(
            rest,
            "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            tls,
            [
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/etc/ca.pem".into())
            ]
        );
        assert_eq!(keys("postgres://h/db").0, "postgres://h/db");
        // Every other parameter reaches tokio-postgres as written: `%20` stays a space for
        // it, and a `+` stays a plus.
        let (rest, _) =
            keys("postgres://h/db?application_name=my%20app&options=a+b&sslmode=require");
        assert_eq!(
            rest,
            "postgres://h/db?application_name=my%20app&options=a+b"
        );
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_application_name(), Some("my app"));
        assert_eq!(config.get_options(), Some("a+b"));
        assert_eq!(
            keys("postgres://h/db?sslrootcert=/a+b.pem").1[0].1,
            "/a+b.pem"
        );
    }

    #[test]
    fn libpq_environment_variables_are_the_defaults_of_the_tls_keys() {
        let environment = |variable: &str| match variable {
            "PGSSLMODE" => Some("disable".to_owned()),
            "PGSSLROOTCERT" => Some("system".to_owned()),
            _ => None,
        };
        let mode = |conninfo: &str| {
            Target::parse_with(conninfo, environment)
                .map(|t| t.config.get_ssl_mode())
                .map_err(|e| e.to_string())
        };
        // The connection string wins over the environment ...
        assert_eq!(
            mode("host=h sslmode=verify-full sslrootcert=system"),
            Ok(SslMode::Require)
        );
        // ... which fills in what it does not name, with libpq's rules (a system root and
        // sslmode=disable are refused together).
        let refused = mode("host=h").unwrap_err();
        assert!(refused.contains("weak sslmode \"disable\""), "{refused}");
        let unset = |_: &str| None;
        let prefer = Target::parse_with("host=h", unset).unwrap();
        assert_eq!(prefer.config.get_ssl_mode(), SslMode::Prefer);
        let empty = |_: &str| Some(String::new());
        let prefer = Target::parse_with("host=h", empty).unwrap();
        assert_eq!(prefer.config.get_ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn the_tls_keys_are_taken_out_of_key_value_pairs_quotes_and_escapes_kept() {
        let (rest, tls) = keys(
            "host=db.internal  dbname = app password='it\\'s \\'x\\' ok' sslmode=verify-ca \
             sslrootcert='/etc/my ca.pem'",
        );
        assert_eq!(tls[0], ("sslmode".into(), "verify-ca".into()));
        assert_eq!(tls[1], ("sslrootcert".into(), "/etc/my ca.pem".into()));
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_dbname(), Some("app"));
        assert_eq!(config.get_password(), Some("it's 'x' ok".as_bytes()));
        assert!(conninfo_pairs("host").is_err());
        assert!(conninfo_pairs("host='open").is_err());
    }

    #[test]
    fn sslmodes_follow_libpq() {
        let mode = |conninfo: &str| {
            let target = Target::parse(conninfo).unwrap();
            (
                target.config.get_ssl_mode(),
                matches!(target.tls, Tls::Rustls(_)),
            )
        };
        assert_eq!(mode("host=h sslmode=disable"), (SslMode::Disable, false));
        assert_eq!(mode("host=h"), (SslMode::Prefer, true));
        assert_eq!(
            mode("postgres://h/db?sslmode=require"),
            (SslMode::Require, true)
        );
        // verify-* need a root certificate; a missing file is an error that names it.
        let missing = Target::parse("host=h sslmode=verify-full sslrootcert=/nonexistent.pem");
        let message = missing.err().unwrap().to_string();
        assert!(message.contains("/nonexistent.pem"), "{message}");
        assert!(Target::parse("host=h sslmode=sometimes").is_err());
        // sslrootcert=system means verify-full, as libpq 16 has it, and refuses weaker modes.
        let system = Target::parse("postgres://h/db?sslrootcert=system");
        assert_eq!(system.unwrap().config.get_ssl_mode(), SslMode::Require);
        for weak in ["require", "verify-ca", "prefer"] {
            let refused = Target::parse(&format!("host=h sslrootcert=system sslmode={weak}"));
            assert!(
                refused.err().unwrap().to_string().contains("weak sslmode"),
                "{weak}"
            );
        }
        // A mistyped connection string is not quoted back (it may hold a password).
        for typo in [
            "postgres:/u:s3cret@h/db",
            "jdbc:postgresql://u:s3cret@h/db",
            "host=h password=ab cd",
        ] {
            let message = Target::parse(typo).err().unwrap().to_string();
            assert!(
                !message.contains("s3cret") && !message.contains("ab"),
                "{message}"
            );
        }
        assert!(Target::parse("host=h sslcert=/c.pem").is_err());
    }
}
