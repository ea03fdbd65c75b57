//! Typed settings. Every flag has an environment fallback and a default that points at local
//! services; docs/reference/configuration.md lists them all.

use crate::result::ResultDetail;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most intake queues there may be (`CONTACT_IMPORT_INTAKE_SHARDS`' upper bound).
pub const MAX_INTAKE_SHARDS: u16 = 16;

/// Where the broker is and the names of the topology (see docs/producer.md, "The contract").
#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// RabbitMQ URL, with RabbitMQ's URI query parameters: `?heartbeat=N` (default 15 s),
    /// `?connection_timeout=MS` (default 10 s), TLS with `amqps://` and `cacertfile=`,
    /// `certfile=`, `keyfile=`. Several URLs separated by commas name a cluster's nodes: each
    /// connection tries them in random order and takes the first that answers.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// A file holding the RabbitMQ URL (a mounted Kubernetes secret, say), read instead of
    /// `AMQP_URL`, so credentials need not sit in the environment. Setting both is an error.
    #[arg(long, env = "AMQP_URL_FILE", conflicts_with = "amqp_url")]
    pub amqp_url_file: Option<PathBuf>,
    /// Durable direct exchange that batches are published to.
    #[arg(
        long,
        env = "CONTACT_IMPORT_EXCHANGE",
        default_value = "contacts.import"
    )]
    pub import_exchange: String,
    /// Durable quorum queue the workers consume.
    #[arg(long, env = "CONTACT_IMPORT_QUEUE", default_value = "contacts.import")]
    pub import_queue: String,
    /// Binding key between the import exchange and queue.
    #[arg(
        long,
        env = "CONTACT_IMPORT_ROUTING_KEY",
        default_value = "contacts.import"
    )]
    pub import_routing_key: String,
    /// Dead-letter exchange of the import queue.
    #[arg(
        long,
        env = "CONTACT_IMPORT_DEAD_LETTER_EXCHANGE",
        default_value = "contacts.import.dlx"
    )]
    pub dead_letter_exchange: String,
    /// Durable queue holding dead-lettered batches.
    #[arg(
        long,
        env = "CONTACT_IMPORT_DEAD_LETTER_QUEUE",
        default_value = "contacts.import.dead"
    )]
    pub dead_letter_queue: String,
    /// Durable topic exchange results are published to (routing key: the orgId).
    #[arg(
        long,
        env = "CONTACT_IMPORT_RESULTS_EXCHANGE",
        default_value = "contacts.results"
    )]
    pub results_exchange: String,
    /// Deliveries of one message before the broker dead-letters it (`x-delivery-limit`).
    #[arg(long, env = "CONTACT_IMPORT_DELIVERY_LIMIT", default_value_t = 5)]
    pub delivery_limit: u32,
    /// Quorum queues (1 to 16) the import exchange spreads incoming batches over, at random, so that
    /// no single queue leader takes every batch of the fleet: the import queue and
    /// `<import queue>.intake.<n>` for n from 1, through an `x-random` exchange
    /// `<import exchange>.intake` (the rabbitmq_random_exchange plugin must be enabled); every
    /// worker consumes all that exist. 1 binds the import queue to the import exchange
    /// directly; once the intake is spread, a setting of 1 leaves it spread.
    #[arg(long, env = "CONTACT_IMPORT_INTAKE_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_INTAKE_SHARDS)))]
    pub intake_shards: u16,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection string, in libpq's URL or `key=value` form: several hosts
    /// (`h1:5432,h2:5432` with `target_session_attrs=read-write`), `sslmode`, `sslrootcert`
    /// (a file or `system`), `sslcert`, `sslkey`, `application_name`, `options`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/contact_import"
    )]
    pub database_url: String,
    /// A file holding the PostgreSQL URL, read instead of `DATABASE_URL`. Setting both is an
    /// error.
    #[arg(long, env = "DATABASE_URL_FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<PathBuf>,
}

impl BrokerConfig {
    /// Replaces the URL by the contents of `AMQP_URL_FILE`, when it is set.
    pub fn read_secret_file(&mut self) -> Result<(), SecretFileError> {
        if let Some(path) = &self.amqp_url_file {
            self.amqp_url = read_secret(path)?;
        }
        Ok(())
    }
}

impl DatabaseConfig {
    /// Replaces the URL by the contents of `DATABASE_URL_FILE`, when it is set.
    pub fn read_secret_file(&mut self) -> Result<(), SecretFileError> {
        if let Some(path) = &self.database_url_file {
            self.database_url = read_secret(path)?;
        }
        Ok(())
    }
}

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be read.
    #[error("reading the secret file {}: {source}", path.display())]
    Read {
        /// The `*_FILE` path.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("the secret file {} is empty", .0.display())]
    Empty(PathBuf),
}

/// A secret file's contents without the trailing line end that editors and `echo` add.
fn read_secret(path: &Path) -> Result<String, SecretFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    // A byte order mark or surrounding white space is never part of a URL.
    let secret = text.trim_start_matches('\u{feff}').trim();
    if secret.is_empty() {
        return Err(SecretFileError::Empty(path.to_owned()));
    }
    Ok(secret.to_owned())
}

/// Who may import into which org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Authorization {
    /// Every producer that can publish to the import exchange may write to every org:
    /// for single-tenant deployments. The worker warns at start.
    Open,
    /// A batch is applied only when its `user_id` (the broker user that published it, which
    /// RabbitMQ vouches for) has a grant for its org (`contact-import grants`).
    Grants,
}

/// The interactive lane and the bulk shards (docs/operations.md, "Lanes"), on by default. Off, the
/// worker consumes the import queue alone, first come first served.
#[derive(Debug, Clone, Args)]
pub struct LaneConfig {
    /// Route every batch from the import queue to the interactive lane or a bulk shard, and
    /// serve the interactive lane first, with slots kept for it (`on`/`off`).
    #[arg(long = "lanes", env = "CONTACT_IMPORT_LANES", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enabled: bool,
    /// How many bulk shards (quorum queues `<queue>.bulk.<n>`) an org's bulk batches are
    /// spread over by org. Changing it moves orgs between shards: what is queued stays put.
    #[arg(long, env = "CONTACT_IMPORT_BULK_SHARDS", default_value_t = LaneConfig::BULK_SHARDS, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub bulk_shards: u16,
    /// Batches of at most this many contacts (and at most the bytes below) go to the
    /// interactive lane.
    #[arg(
        long,
        env = "CONTACT_IMPORT_INTERACTIVE_MAX_CONTACTS",
        default_value_t = LaneConfig::INTERACTIVE_MAX_CONTACTS
    )]
    pub interactive_max_contacts: usize,
    /// Batches of at most this many bytes (and at most the contacts above) go to the
    /// interactive lane.
    #[arg(long, env = "CONTACT_IMPORT_INTERACTIVE_MAX_BYTES", default_value_t = LaneConfig::INTERACTIVE_MAX_BYTES)]
    pub interactive_max_bytes: usize,
    /// Slots beyond `CONTACT_IMPORT_CONCURRENCY` that only interactive requests may take,
    /// so that one starts at once even when bulk batches hold every other slot.
    #[arg(long, env = "CONTACT_IMPORT_INTERACTIVE_SLOTS", default_value_t = LaneConfig::INTERACTIVE_SLOTS)]
    pub interactive_slots: u16,
}

impl LaneConfig {
    const BULK_SHARDS: u16 = 4;
    const INTERACTIVE_MAX_CONTACTS: usize = 10;
    const INTERACTIVE_MAX_BYTES: usize = 16 * 1024;
    const INTERACTIVE_SLOTS: u16 = 1;
}

/// The worker's defaults, lanes on: what tests, the benchmark and tools that name the lanes
/// assume of a worker left unconfigured.
impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bulk_shards: Self::BULK_SHARDS,
            interactive_max_contacts: Self::INTERACTIVE_MAX_CONTACTS,
            interactive_max_bytes: Self::INTERACTIVE_MAX_BYTES,
            interactive_slots: Self::INTERACTIVE_SLOTS,
        }
    }
}

/// Everything `contact-import worker` needs.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// The broker and the names of the topology.
    #[command(flatten)]
    pub broker: BrokerConfig,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The interactive lane and the bulk shards.
    #[command(flatten)]
    pub lanes: LaneConfig,
    /// Who may import into which org: `open` (every producer, every org) or `grants`
    /// (`contact-import grants add --user U --org O`).
    #[arg(
        long,
        env = "CONTACT_IMPORT_AUTHORIZATION",
        value_enum,
        default_value = "open"
    )]
    pub authorization: Authorization,
    /// How much of the stored contacts a result carries when its batch does not say
    /// (`x-result-detail`): `full` (every stored contact) or `summary` (`contactIds` only).
    #[arg(
        long,
        env = "CONTACT_IMPORT_RESULT_DETAIL",
        value_enum,
        default_value = "full"
    )]
    pub result_detail: ResultDetail,
    /// Batches processed at once, each on its own database connection.
    #[arg(long, env = "CONTACT_IMPORT_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Unacked deliveries the broker may push ahead (default: twice the concurrency, so the
    /// next batch is already here when one finishes).
    #[arg(long, env = "CONTACT_IMPORT_PREFETCH")]
    pub prefetch: Option<u16>,
    /// Database connections (default: one per slot, i.e. the concurrency plus the interactive
    /// slots with lanes on, plus one spare for /readyz).
    #[arg(long, env = "CONTACT_IMPORT_DB_POOL_SIZE")]
    pub db_pool_size: Option<usize>,
    /// Retries of a batch's transaction after a transient database error (deadlock,
    /// serialization failure) before the delivery is requeued. An outage (database down or
    /// unreachable) is waited out instead, within the batch timeout.
    #[arg(long, env = "CONTACT_IMPORT_DB_MAX_RETRIES", default_value_t = 10)]
    pub db_max_retries: usize,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "CONTACT_IMPORT_DB_RETRY_MIN_MS", default_value_t = 100)]
    pub db_retry_min_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(long, env = "CONTACT_IMPORT_DB_RETRY_MAX_MS", default_value_t = 10_000)]
    pub db_retry_max_ms: u64,
    /// Longest a batch may take from delivery up to its COMMIT, retries and database outages
    /// included, before it is abandoned uncommitted and requeued. The COMMIT itself is never
    /// cut short: with a synchronous standby away it waits for it. Keep the timeout well
    /// below the broker's consumer_timeout (30 min by default): prefetched deliveries wait
    /// behind the ones in flight, and that wait counts too.
    #[arg(long, env = "CONTACT_IMPORT_BATCH_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_timeout_secs: u64,
    /// Largest message body accepted, in bytes.
    #[arg(long, env = "CONTACT_IMPORT_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most contacts accepted in one batch.
    #[arg(
        long,
        env = "CONTACT_IMPORT_MAX_BATCH_CONTACTS",
        default_value_t = 10_000
    )]
    pub max_batch_contacts: usize,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CONTACT_IMPORT_HTTP_ADDR", default_value = "0.0.0.0:9090")]
    pub http_addr: SocketAddr,
    /// Seconds in-flight batches get to finish after SIGTERM before the worker exits anyway
    /// (their deliveries then return to the queue).
    #[arg(long, env = "CONTACT_IMPORT_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Failed verifications of one Save User Contacts userName of an org (an account or
    /// not), counted across batches and workers, after which its pairs fail with 429
    /// `too.many.attempts`, unverified, until the failures age out of the window. 0 turns the
    /// throttle off.
    #[arg(long, env = "CONTACT_IMPORT_LOGIN_MAX_FAILURES", default_value_t = 10)]
    pub login_max_failures: u32,
    /// How long a failed verification counts towards the throttle (`15m`, `90s`, `1h`).
    /// Give every worker the same value: each prunes failures older than its own.
    #[arg(
        long,
        env = "CONTACT_IMPORT_LOGIN_FAILURE_WINDOW",
        value_parser = positive_duration,
        default_value = "15m"
    )]
    pub login_failure_window: Duration,
}

/// A duration written as humantime reads it (`15m`, `2s`), longer than zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(e) => Err(e.to_string()),
    }
}

impl WorkerConfig {
    /// `--prefetch`, else twice the concurrency.
    pub fn prefetch(&self) -> u16 {
        self.prefetch.unwrap_or(self.concurrency.saturating_mul(2))
    }

    /// Batches in flight at most: the concurrency, plus the interactive lane's own slots
    /// with lanes on.
    pub fn slots(&self) -> u16 {
        match self.lanes.enabled {
            true => self
                .concurrency
                .saturating_add(self.lanes.interactive_slots),
            false => self.concurrency,
        }
    }

    /// Unacked deliveries per consumer of the interactive lane and of a bulk shard, with
    /// lanes: enough for the bulk shards together to fill the concurrency twice over, at
    /// least 2, and at least the interactive slots. A worker holds at most this many per such
    /// queue, [`WorkerConfig::heavy_prefetch`] per heavy shard, and its router's prefetch on
    /// the import queue while it routes them.
    pub fn lane_prefetch(&self) -> u16 {
        let shards = self.lanes.bulk_shards.max(1);
        let per_shard = self.concurrency.saturating_mul(2).div_ceil(shards).max(2);
        per_shard.max(self.lanes.interactive_slots)
    }

    /// Unacked deliveries per consumer of a heavy shard, with lanes: the concurrency, so that
    /// one heavy org alone, on its one heavy shard, still fills every slot.
    pub fn heavy_prefetch(&self) -> u16 {
        self.concurrency.max(self.lane_prefetch())
    }

    /// `--db-pool-size`, else a connection per slot plus one (the spare for `/readyz`).
    pub fn db_pool_size(&self) -> usize {
        self.db_pool_size.unwrap_or(usize::from(self.slots()) + 1)
    }

    /// `--shutdown-grace-secs` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
