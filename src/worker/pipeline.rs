//! One batch from delivery to settlement:
//! decode (dialect) → validate → store (one transaction, retried) → publish result → ack.
//! A delivery is answered and acked only after its transaction committed (on the synchronous
//! standby too, when there is one) and its result was confirmed; everything else requeues
//! it, and the queue's delivery limit dead-letters a batch that keeps failing.

use crate::broker::consume;
use crate::broker::lanes;
use crate::broker::publish::{
    DeadLetterReason, Publisher, ReplyTarget, ResultHeaders, UNKNOWN_ORG_ROUTING_KEY,
};
use crate::config::Authorization;
use crate::contact::credentials;
use crate::contact::{ContactDraft, ContactError, ValidatedBatch, validate_batch};
use crate::dialect::{self, Answer, DecodedBatch, Limits, MessageType};
use crate::ids::{self, BatchId, OrgId};
use crate::metrics::{self, InFlight, RequeueReason, UnroutableTarget};
use crate::rejection::{RejectCode, Rejection};
use crate::result::{BatchResult, BatchStatus, ResultDetail};
use crate::store::availability::Availability;
use crate::store::{Applied, Apply, Mode, Store, StoreError, batches};
use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{Instrument, error, info, info_span, warn};

/// How a delivery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    /// Done: committed and result confirmed, or rejected and dead-lettered.
    Ack { status: BatchStatus },
    /// Not done; back to the queue for another attempt, for this reason.
    Requeue { reason: RequeueReason },
    /// The broker took the delivery back while the batch's commit waited (its channel
    /// closed, at `consumer_timeout` for one): whoever takes it again answers it, from the
    /// stored result once it is replicated.
    TakenBack,
}

/// Who sent a batch and how they are answered, read once from the delivery.
#[derive(Clone)]
struct Requester {
    target: ReplyTarget,
    /// The request's dialect, when its `type` is one this worker reads.
    dialect: Option<MessageType>,
    content_type: Option<String>,
    /// The broker user that published the batch (RabbitMQ refuses a `user_id` that is not
    /// the publisher's own).
    user_id: Option<String>,
}

/// How hard the pipeline tries before it gives a batch up.
#[derive(Debug, Clone)]
pub struct BatchPolicy {
    pub limits: Limits,
    /// Retries of a transaction after a transient database error.
    pub retry: ExponentialBuilder,
    /// Longest a batch may take from delivery up to its COMMIT, retries and database outages
    /// included (the COMMIT itself is never cut short); kept well below the broker's
    /// `consumer_timeout`, which would otherwise close the channel under every batch in
    /// flight.
    pub batch_timeout: Duration,
    /// The queue's `x-delivery-limit`: the delivery after that many returns is the last.
    pub delivery_limit: u32,
    /// Whether a batch's `user_id` must have a grant for its org.
    pub authorization: Authorization,
    /// How much of the stored contacts a result carries when its batch does not say.
    pub result_detail: ResultDetail,
    /// The lanes exchange, with lanes: a batch taken from a lane carries its producer's
    /// `user_id` in a header only workers can set (see [`lanes`]).
    pub lanes_exchange: Option<String>,
    /// The per-account throttle of Save User Contacts credentials; `None`: off.
    pub login_throttle: Option<credentials::Throttle>,
}

pub struct Pipeline {
    store: Store,
    availability: Arc<Availability>,
    publisher: Publisher,
    policy: BatchPolicy,
}

impl Pipeline {
    pub fn new(
        store: Store,
        availability: Arc<Availability>,
        publisher: Publisher,
        policy: BatchPolicy,
    ) -> Self {
        Self {
            store,
            availability,
            publisher,
            policy,
        }
    }

    /// Processes one delivery and settles it.
    pub async fn handle(&self, delivery: Delivery) {
        // Hashed once: the batch id of a message without message_id, and the idempotency
        // record's check that a batch id is not reused for another body.
        let body_sha256 = ids::body_sha256(&delivery.data);
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str());
        let batch_id = match message_id {
            Some(id) => BatchId::for_message(Some(id), &body_sha256),
            // The fallback id is shown in the result: it must not be a fast hash of a secret.
            None => {
                let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
                match dialect::id_digest(kind, &delivery.data) {
                    Some(digest) => BatchId::for_message(None, &digest),
                    None => BatchId::unreadable(),
                }
            }
        };
        // Every line about the batch carries these; the org is filled in once it is read.
        let span = info_span!(
            "batch",
            batch_id = %batch_id,
            org_id = tracing::field::Empty,
            delivery_tag = delivery.delivery_tag,
            redelivered = delivery.redelivered,
        );
        self.handle_batch(delivery, batch_id, body_sha256)
            .instrument(span)
            .await;
    }

    async fn handle_batch(&self, delivery: Delivery, batch_id: BatchId, body_sha256: String) {
        let started = Instant::now();
        let _in_flight = InFlight::enter();
        let settlement = self.process(&delivery, &batch_id, &body_sha256).await;
        let settled = match settlement {
            Settlement::Ack { .. } => delivery.acker.ack(BasicAckOptions::default()).await,
            Settlement::Requeue { reason } => {
                metrics::requeued(reason);
                delivery.acker.nack(REQUEUE).await
            }
            Settlement::TakenBack => Ok(false),
        };
        match (settled, settlement) {
            (_, Settlement::TakenBack) => {}
            (Ok(true), Settlement::Ack { status }) => {
                metrics::batch_finished(status, started.elapsed());
                info!(
                    status = status.as_str(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch done"
                );
            }
            (Ok(true), Settlement::Requeue { reason }) => {
                warn!(reason = reason.as_str(), "batch requeued")
            }
            // The channel closed under us: the broker redelivers the message, and a committed
            // batch then replays its stored result.
            (Ok(false), _) => {
                warn!("channel closed before the delivery was settled; it will be redelivered")
            }
            (Err(e), _) => {
                warn!(error = %e, "settling the delivery failed; it will be redelivered")
            }
        }
    }

    async fn process(
        &self,
        delivery: &Delivery,
        batch_id: &BatchId,
        body_sha256: &str,
    ) -> Settlement {
        let props = &delivery.properties;
        let mut target = ReplyTarget::of(delivery);
        // Under grants a producer may name only itself as the requester: the worker writes
        // into any queue, so a queue name would let one org's producer fill another's queue.
        // A refused one is taken out of the target, so that not even the refusal goes there.
        let refused_reply_to = target.reply_to.take_if(|queue| {
            self.policy.authorization == Authorization::Grants
                && !consume::is_direct_reply_to(queue)
        });
        let reply = Requester {
            target,
            dialect: MessageType::of(props.kind().as_ref().map(|k| k.as_str())).ok(),
            content_type: props.content_type().as_ref().map(|c| c.to_string()),
            user_id: props
                .user_id()
                .as_ref()
                .map(|u| u.to_string())
                .or_else(|| {
                    let exchange = self.policy.lanes_exchange.as_deref()?;
                    lanes::routed_user_id(delivery, exchange).map(str::to_owned)
                })
                .filter(|u| !u.is_empty()),
        };
        metrics::message(reply.dialect);
        if let Some(queue) = &refused_reply_to {
            let rejection = Rejection::new(
                RejectCode::ReplyToForbidden,
                format!(
                    "reply_to {queue:?} is a queue: with CONTACT_IMPORT_AUTHORIZATION=grants \
                     results go only to RabbitMQ's direct reply-to ({})",
                    consume::DIRECT_REPLY_TO
                ),
            );
            return self.reject(delivery, batch_id, &reply, rejection).await;
        }
        if !batch_id.is_storable() {
            let rejection = Rejection::new(
                RejectCode::InvalidBatchId,
                "message_id contains control characters",
            );
            return self.reject(delivery, batch_id, &reply, rejection).await;
        }
        if self.policy.authorization == Authorization::Grants && reply.user_id.is_none() {
            let rejection = Rejection::new(
                RejectCode::MissingUserId,
                "the message has no user_id: with CONTACT_IMPORT_AUTHORIZATION=grants a batch \
                 must carry the broker user that publishes it",
            );
            return self.reject(delivery, batch_id, &reply, rejection).await;
        }
        let decoded = match dialect::decode(&consume::incoming(delivery), &self.policy.limits) {
            Ok(decoded) => decoded,
            Err(rejection) => return self.reject(delivery, batch_id, &reply, rejection).await,
        };
        let DecodedBatch {
            org_id,
            mut contacts,
            answer,
        } = decoded;
        tracing::Span::current().record("org_id", org_id.as_str());
        let deadline = tokio::time::Instant::now() + self.policy.batch_timeout;
        match self.authorized(&reply, &org_id, deadline).await {
            Ok(true) => {}
            Ok(false) => {
                let user = reply.user_id.as_deref().unwrap_or_default();
                let rejection = Rejection::new(
                    RejectCode::OrgForbidden,
                    format!("broker user {user} has no grant for org {org_id}"),
                )
                .with_org(Some(org_id));
                return self.reject(delivery, batch_id, &reply, rejection).await;
            }
            Err(e) => return self.give_back(delivery, batch_id, &reply, org_id, e).await,
        }
        if let Err(e) = self.authenticate(&org_id, &mut contacts, deadline).await {
            return self.give_back(delivery, batch_id, &reply, org_id, e).await;
        }
        let batch = validate_batch(batch_id.clone(), org_id.clone(), contacts);
        let mode = if consume::dry_run(delivery) {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let send_id = consume::send_id(delivery);
        let how = Apply {
            mode,
            detail: self.result_detail(delivery),
            send_id,
            sender: batches::Sender {
                message_type: reply.dialect.map(MessageType::as_str),
                publisher: reply.user_id.as_deref(),
            },
        };
        let applied = self
            .apply(&batch, body_sha256, &answer, how, deadline)
            .await;
        if delivery.acker.poisoned() {
            warn!(
                "the broker took the delivery back while the batch was being stored; \
                 whoever takes it again answers it"
            );
            return Settlement::TakenBack;
        }

        let (body, about) =
            match applied {
                Ok(Applied::Fresh { result, body }) => {
                    let c = result.counts;
                    metrics::contacts(c.created, c.updated, c.failed);
                    (body, result.status.into())
                }
                Ok(Applied::DryRun { result, body }) => {
                    metrics::dry_run();
                    (body, result.status.into())
                }
                Ok(Applied::Replayed(stored)) => {
                    metrics::replayed();
                    info!("batch was applied before; publishing its stored result again");
                    // A resend: another message (another send id) applied the batch. The
                    // same message again (redelivered, or retried after a lost COMMIT
                    // reply) answers for its own write.
                    let replayed = match (&stored.send_id, send_id) {
                        (Some(stored), Some(this)) => stored != this,
                        _ => false,
                    };
                    let about = ResultHeaders {
                        status: stored.status,
                        replayed,
                    };
                    (stored.body, about)
                }
                Ok(Applied::IdConflict) => {
                    let rejection = Rejection::new(
                    RejectCode::BatchIdConflict,
                    format!(
                        "batch id {batch_id} was already used for a batch with a different body{}",
                        if reply.dialect.is_some_and(|d| d.dialect().carries_credentials()) {
                            " (its passwords may differ: a batch resent with other \
                             passwords needs a new message_id)"
                        } else {
                            ""
                        }
                    ),
                )
                .with_org(Some(org_id));
                    return self.reject(delivery, batch_id, &reply, rejection).await;
                }
                Err(e) => return self.give_back(delivery, batch_id, &reply, org_id, e).await,
            };
        self.publish(org_id.as_str(), &reply, about, &body).await
    }

    /// What the batch's `x-result-detail` asks for, else the worker's default.
    fn result_detail(&self, delivery: &Delivery) -> ResultDetail {
        match consume::result_detail(delivery) {
            None => self.policy.result_detail,
            Some(Ok(detail)) => detail,
            Some(Err(value)) => {
                warn!(
                    header = consume::RESULT_DETAIL_HEADER,
                    value = %value.escape_debug(),
                    default = self.policy.result_detail.as_str(),
                    "unknown result detail (full or summary); the worker's default applies"
                );
                self.policy.result_detail
            }
        }
    }

    /// Whether the batch's publisher may write into `org`: always with
    /// `CONTACT_IMPORT_AUTHORIZATION=open`, else when its `user_id` has a grant, read now
    /// (so a grant taken back stops the next batch).
    async fn authorized(
        &self,
        reply: &Requester,
        org: &OrgId,
        deadline: tokio::time::Instant,
    ) -> Result<bool, StoreError> {
        if self.policy.authorization == Authorization::Open {
            return Ok(true);
        }
        let Some(user) = reply.user_id.as_deref() else {
            return Ok(false);
        };
        self.with_database(deadline, || async {
            tokio::time::timeout_at(deadline, self.store.is_granted(user, org))
                .await
                .unwrap_or(Err(StoreError::DeadlineExceeded { last_error: None }))
        })
        .await
    }

    /// Checks the account credentials that contacts carry (Save User Contacts) and drops
    /// them, within the batch's time. The hashes and the throttle's counts are read before
    /// any password is verified, so a locked userName is not verified at all.
    async fn authenticate(
        &self,
        org: &OrgId,
        contacts: &mut [Result<ContactDraft, ContactError>],
        deadline: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let users = credentials::claimed_users(contacts);
        if users.is_empty() {
            return Ok(());
        }
        let throttle = self.policy.login_throttle;
        let window = throttle.map(|t| t.window);
        let known = self
            .with_database(deadline, || async {
                let read = self.store.claimed_accounts(org, &users, window);
                tokio::time::timeout_at(deadline, read)
                    .await
                    .unwrap_or(Err(StoreError::DeadlineExceeded { last_error: None }))
            })
            .await?;
        let verification = tokio::time::timeout_at(
            deadline,
            credentials::authenticate(org, contacts, known, throttle),
        )
        .await
        .map_err(|_| StoreError::DeadlineExceeded { last_error: None })?;
        if verification.throttled > 0 {
            metrics::login_throttled(verification.throttled);
            warn!(
                pairs = verification.throttled,
                "credentials refused unverified: too many failed verifications of their userName"
            );
        }
        let (Some(window), false) = (window, verification.failed.is_empty()) else {
            return Ok(());
        };
        // Recorded now, in a statement of its own rather than in the batch's transaction, so
        // that the guesses stay counted when the batch rolls back, times out or is a dry
        // run. If they cannot be recorded the batch is given back, not answered: an answer
        // would be a guess the throttle never saw. A redelivered batch verifies and counts
        // its failures again; that over-counts, on the safe side. Batches of one userName
        // on several workers at once may each spend its remaining failures, so a lock can
        // come a few failures late (at most the per-batch limit per batch), never not at all.
        let failed: Vec<&str> = verification.failed.iter().map(String::as_str).collect();
        // No time limit on the statement: its commit, like a batch's, is never cut short.
        self.with_database(deadline, || {
            self.store.record_login_failures(org, &failed, window)
        })
        .await
    }

    /// Applies the batch. A commit whose outcome is unknown is not given up: the batch is
    /// applied again, with its time limit starting over, and its claim finds out what
    /// happened: the batch's row, committed, is answered from once replicated; without
    /// it the batch is written anew. Until one of those answers, running out of time or
    /// meeting an outage leaves the outcome unknown, and the batch is not requeued: its
    /// commit may be waiting in a session the connection lost, holding the row, and a
    /// requeue would spend a delivery (the last one dead-letters a batch that is stored).
    async fn apply(
        &self,
        batch: &ValidatedBatch,
        body_sha256: &str,
        answer: &Answer,
        how: Apply<'_>,
        mut deadline: tokio::time::Instant,
    ) -> Result<Applied, StoreError> {
        let mut pause = UNKNOWN_OUTCOME_PAUSE;
        let mut unknown = false;
        loop {
            let applied = self
                .with_database(deadline, || {
                    self.store
                        .apply_batch(batch, body_sha256, answer, how, deadline)
                })
                .await;
            match applied {
                Err(e @ StoreError::CommitOutcomeUnknown(_)) => {
                    warn!(error = %e, "reading the batch back before it is answered");
                    unknown = true;
                }
                Err(e)
                    if unknown
                        && (e.is_outage() || matches!(e, StoreError::DeadlineExceeded { .. })) =>
                {
                    warn!(error = %e, "the outcome of the batch's commit is still unknown; reading it back again");
                }
                other => return other,
            }
            // A pooler that cancels every wait at once must not make this a busy loop.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_REQUEUE_PAUSE);
            deadline = tokio::time::Instant::now() + self.policy.batch_timeout;
        }
    }

    /// Runs a database operation, retrying transient errors with backoff. While the database
    /// is away the batch waits for it (within its deadline) rather than spend one of its
    /// deliveries.
    async fn with_database<T, F, Fut>(
        &self,
        deadline: tokio::time::Instant,
        mut operation: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut last_error = None;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::DeadlineExceeded { last_error });
            }
            let done = (&mut operation)
                .retry(self.policy.retry)
                .sleep(move |wait| sleep_until_at_most(wait, deadline))
                .when(StoreError::is_transient)
                .notify(|e: &StoreError, wait: Duration| self.retrying(e, wait))
                .await;
            match done {
                Ok(value) => {
                    self.availability.report_up();
                    return Ok(value);
                }
                Err(e) if e.is_outage() => {
                    self.availability.report_outage(&e);
                    last_error = Some(e.to_string());
                    let waited =
                        tokio::time::timeout_at(deadline, self.availability.wait_up()).await;
                    if waited.is_err() {
                        return Err(StoreError::DeadlineExceeded { last_error });
                    }
                }
                Err(StoreError::DeadlineExceeded { last_error: None }) => {
                    return Err(StoreError::DeadlineExceeded { last_error });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts and logs a retry after a transient database error, and marks an outage.
    fn retrying(&self, e: &StoreError, wait: Duration) {
        metrics::db_retry();
        if e.is_outage() {
            self.availability.report_outage(e);
        }
        warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "transient database error, retrying");
    }

    /// A batch that could not be stored goes back to the queue, or, on its last allowed
    /// delivery, to the dead-letter queue with the error: requeued once more, the broker would
    /// dead-letter it without saying why.
    async fn give_back(
        &self,
        delivery: &Delivery,
        batch_id: &BatchId,
        reply: &Requester,
        org_id: OrgId,
        error: StoreError,
    ) -> Settlement {
        let attempt = consume::attempt(delivery);
        if attempt > self.policy.delivery_limit {
            let rejection = Rejection::new(
                RejectCode::AttemptsExhausted,
                format!("gave up after {attempt} deliveries; last error: {error}"),
            )
            .with_org(Some(org_id));
            return self.reject(delivery, batch_id, reply, rejection).await;
        }
        error!(%error, attempt, transient = error.is_transient(), "storing the batch failed; requeueing it");
        if let StoreError::DeadlineExceeded { .. } = error {
            return Settlement::Requeue {
                reason: RequeueReason::Timeout,
            };
        }
        // An error that is neither an outage nor a lost race may still hit every batch (a
        // missing permission, a broken migration): pausing before the requeue keeps such a
        // fault from flushing the whole queue into the dead-letter queue within seconds.
        let pause = REQUEUE_PAUSE.saturating_mul(1 << attempt.min(5));
        tokio::time::sleep(pause.min(MAX_REQUEUE_PAUSE)).await;
        Settlement::Requeue {
            reason: RequeueReason::Database,
        }
    }

    /// Publishes a result (confirmed) to the org's subscribers and to `reply_to`.
    async fn publish(
        &self,
        routing_key: &str,
        reply: &Requester,
        about: ResultHeaders,
        body: &[u8],
    ) -> Settlement {
        // The requester's own answer is made from the result's bytes, so a replay answers
        // exactly as the first delivery did.
        let own_reply = match (&reply.target, reply.dialect) {
            (target, Some(dialect)) if target.reply_to.is_some() && !target.common_result => {
                dialect.dialect().requester_reply(body)
            }
            _ => None,
        };
        match self
            .publisher
            .publish_result(routing_key, &reply.target, about, body, own_reply.as_ref())
            .await
        {
            Ok(returned) => {
                // The broker returns an unroutable result whole; it is counted and named
                // here, never logged (lapin's own log of it is off, see telemetry). A return
                // may come with another batch's confirm of the channel: each is counted once,
                // by its own names, wherever it came.
                for returned in returned {
                    if returned.to_results_exchange {
                        metrics::result_unroutable(UnroutableTarget::ResultsExchange);
                        info!(
                            unroutable = UnroutableTarget::ResultsExchange.as_str(),
                            routing_key = returned.routing_key,
                            "no queue is bound for the result; it stays stored with the batch"
                        );
                    } else {
                        metrics::result_unroutable(UnroutableTarget::ReplyTo);
                        warn!(
                            unroutable = UnroutableTarget::ReplyTo.as_str(),
                            reply_to = returned.routing_key,
                            "the reply_to queue does not exist; result not delivered there"
                        );
                    }
                }
                Settlement::Ack {
                    status: about.status,
                }
            }
            Err(e) => {
                error!(error = %e, "publishing the result failed; requeueing the batch");
                Settlement::Requeue {
                    reason: RequeueReason::Publish,
                }
            }
        }
    }

    /// A batch that cannot be read: dead-letter it with its reason, then publish a `rejected`
    /// result. Nothing was written. Once the dead letter is confirmed the delivery is acked
    /// even if the result could not be published: the dead letter is the durable record, and
    /// requeueing would only dead-letter it again.
    async fn reject(
        &self,
        delivery: &Delivery,
        batch_id: &BatchId,
        reply: &Requester,
        rejection: Rejection,
    ) -> Settlement {
        warn!(code = %rejection.code, detail = %rejection.message, "batch rejected");
        let code = rejection.code.as_str();
        let mut result = BatchResult::rejected(batch_id, &rejection, Utc::now());
        result.detail = self.result_detail(delivery);
        result.error_details = reply.dialect.and_then(|d| {
            d.dialect()
                .refusal_details(reply.content_type.as_deref(), &rejection)
        });
        if rejection.code.requester_only() {
            metrics::unauthorized(rejection.code);
        }
        if reply.target.requester_only {
            // A dry run is answered, never dead-lettered: nothing was meant to be imported.
            return self
                .publish(
                    UNKNOWN_ORG_ROUTING_KEY,
                    reply,
                    BatchStatus::Rejected.into(),
                    &result.to_json(),
                )
                .await;
        }
        let why = DeadLetterReason {
            batch_id: batch_id.as_str(),
            org_id: rejection.org_id.as_ref().map(OrgId::as_str),
            code,
            error: &rejection.message,
            attempts: consume::attempt(delivery),
        };
        if let Err(e) = self.publisher.dead_letter(delivery, &why).await {
            error!(error = %e, "dead-lettering the rejected batch failed; requeueing it");
            return Settlement::Requeue {
                reason: RequeueReason::DeadLetter,
            };
        }
        metrics::dead_lettered(rejection.code);
        // The org's subscribers see a refusal only when the org may have sent it.
        let subscribers_may_see = !rejection.code.requester_only()
            && match &rejection.org_id {
                Some(org) => {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    self.authorized(reply, org, deadline).await.unwrap_or(false)
                }
                None => true,
            };
        let mut reply = reply.clone();
        reply.target.requester_only |= !subscribers_may_see;
        let reply = &reply;
        let routing_key = rejection
            .org_id
            .as_ref()
            .map_or(UNKNOWN_ORG_ROUTING_KEY, OrgId::as_str);
        if let Settlement::Requeue { .. } = self
            .publish(
                routing_key,
                reply,
                BatchStatus::Rejected.into(),
                &result.to_json(),
            )
            .await
        {
            warn!("the rejected result was not published; the dead letter carries the reason");
        }
        Settlement::Ack {
            status: BatchStatus::Rejected,
        }
    }
}

/// Backon's sleep, cut short at the deadline: a retry must not start after the batch's time
/// is up only to be abandoned at once.
async fn sleep_until_at_most(wait: Duration, deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait)).await;
}

/// First pause before a batch whose commit's outcome is unknown is read back; doubles up to
/// [`MAX_REQUEUE_PAUSE`].
const UNKNOWN_OUTCOME_PAUSE: Duration = Duration::from_millis(200);

/// First pause before requeueing a batch after a database error that is not transient;
/// doubles per delivery up to [`MAX_REQUEUE_PAUSE`].
const REQUEUE_PAUSE: Duration = Duration::from_millis(250);
const MAX_REQUEUE_PAUSE: Duration = Duration::from_secs(5);

/// Back to the queue, for this or another worker.
pub const REQUEUE: BasicNackOptions = BasicNackOptions {
    requeue: true,
    multiple: false,
};
