//! Account credentials that Save User Contacts batches carry: argon2id hashing, the
//! per-batch check and the throttle across batches. A password is hashed on the way in and
//! never stored, logged or echoed; the hashes and the failure counts are read by the store's
//! `accounts` and `login_failures` modules, the only places that read them.

use super::{ContactDraft, ContactError, Credentials, ErrorCode};
use crate::ids::OrgId;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

/// An argon2id PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The user names whose credentials the contacts carry, each once.
pub fn claimed_users(drafts: &[Result<ContactDraft, ContactError>]) -> Vec<&str> {
    let users: BTreeSet<&str> = drafts
        .iter()
        .filter_map(|d| d.as_ref().ok()?.credentials.as_ref())
        .map(|c| c.user_name.as_str())
        .collect();
    users.into_iter().collect()
}

/// Most distinct userName/password pairs verified for one batch. argon2id costs tens of
/// milliseconds by design; without a bound one message of 10,000 contacts could hold a core
/// for minutes. A batch normally carries one account.
pub const MAX_ACCOUNTS_PER_BATCH: usize = 16;
/// Most distinct passwords tried for one user name in one batch: more is guessing.
pub const MAX_PASSWORDS_PER_USER: usize = 3;

/// The throttle across batches: once a userName of an org has `max_failures` failed
/// verifications within `window` (counted by the store for every worker), its pairs fail
/// with 429 `too.many.attempts` without being verified, until enough of those failures are
/// older than the window. A userName that is no account is throttled alike, so the answer
/// never tells which names exist, and guessing stops even for the right password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Failed verifications within the window that lock the userName; at least 1.
    pub max_failures: u32,
    /// How long a failed verification counts.
    pub window: Duration,
}

/// What the store knows of the accounts a batch claims.
#[derive(Debug, Default)]
pub struct Known {
    /// The stored hashes of the claimed users that are accounts of the org.
    pub hashes: HashMap<String, String>,
    /// Failed verifications of each claimed user within the throttle's window, every
    /// worker's; users without any are absent (and everyone is, without a throttle).
    pub recent_failures: HashMap<String, u32>,
}

/// What checking a batch's credentials found, for the store and the metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// Each user name whose pairs failed verification, once per failed pair: the failures
    /// to record.
    pub failed: Vec<String>,
    /// Distinct pairs refused by the throttle, unverified.
    pub throttled: usize,
}

/// Fails every contact whose userName/password pair is not an account of the org (401), or
/// whose userName the throttle locks (429), and drops the credentials of the others, so no
/// password goes further. Each distinct pair is verified once, off the async threads, up to
/// the per-batch limits above and the userName's remaining failures; pairs beyond them fail
/// without being verified.
pub async fn authenticate(
    org: &OrgId,
    drafts: &mut [Result<ContactDraft, ContactError>],
    known: Known,
    throttle: Option<Throttle>,
) -> Verification {
    let Known {
        hashes,
        recent_failures,
    } = known;
    // Failed verifications each user may still have in this batch; absent: no throttle.
    let mut remaining: HashMap<String, u32> = HashMap::new();
    if let Some(throttle) = throttle {
        for user in claimed_users(drafts) {
            let failed = recent_failures.get(user).copied().unwrap_or(0);
            remaining.insert(
                user.to_owned(),
                throttle.max_failures.saturating_sub(failed),
            );
        }
    }
    // Distinct pairs in order of first appearance, and how many per user.
    let mut pairs: Vec<Credentials> = Vec::new();
    let mut over_limit: HashSet<Credentials> = HashSet::new();
    let mut locked: HashSet<Credentials> = HashSet::new();
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for credentials in drafts
        .iter()
        .filter_map(|d| d.as_ref().ok()?.credentials.as_ref())
    {
        if pairs.contains(credentials)
            || over_limit.contains(credentials)
            || locked.contains(credentials)
        {
            continue;
        }
        // Locked before this batch: not verified, and not counted against its limits.
        if remaining.get(&credentials.user_name) == Some(&0) {
            locked.insert(credentials.clone());
            continue;
        }
        let tried = per_user.entry(&credentials.user_name).or_default();
        if pairs.len() < MAX_ACCOUNTS_PER_BATCH && *tried < MAX_PASSWORDS_PER_USER {
            *tried += 1;
            pairs.push(credentials.clone());
        } else {
            over_limit.insert(credentials.clone());
        }
    }
    if pairs.is_empty() && over_limit.is_empty() && locked.is_empty() {
        return Verification::default();
    }
    let checked = tokio::task::spawn_blocking(move || {
        let mut checked = Checked::default();
        for c in pairs {
            // A user whose failures reach the limit within this batch is locked from then
            // on: the throttle holds inside one batch too.
            if remaining.get(&c.user_name) == Some(&0) {
                checked.locked.insert(c);
                continue;
            }
            // An unknown user is checked against a stand-in hash, so that the time of
            // the answer does not tell which user names exist.
            let phc = hashes
                .get(&c.user_name)
                .map_or(STAND_IN.as_str(), String::as_str);
            if verify(&c.password, phc) && hashes.contains_key(&c.user_name) {
                checked.valid.insert(c);
            } else {
                if let Some(left) = remaining.get_mut(&c.user_name) {
                    *left -= 1;
                }
                checked.failed.push(c.user_name);
            }
        }
        checked
    })
    .await
    // A panic verifying fails every pair; nothing is recorded for them.
    .unwrap_or_default();
    locked.extend(checked.locked);
    let window = throttle.map_or(Duration::ZERO, |t| t.window);
    for draft in drafts.iter_mut() {
        let Ok(contact) = draft else { continue };
        let Some(credentials) = contact.credentials.take() else {
            continue;
        };
        let user = &credentials.user_name;
        if locked.contains(&credentials) {
            // The same for every user name, account or not.
            *draft = Err(ContactError::new(
                ErrorCode::TooManyAttempts,
                format!(
                    "userName '{user}' was not checked: too many failed verifications of it \
                     within {}; try again later",
                    humantime::format_duration(window)
                ),
            ));
        } else if over_limit.contains(&credentials) {
            *draft = Err(ContactError::new(
                ErrorCode::InvalidCredentials,
                format!(
                    "userName '{user}' was not checked: one batch may carry at most \
                     {MAX_ACCOUNTS_PER_BATCH} accounts and {MAX_PASSWORDS_PER_USER} passwords per \
                     userName"
                ),
            ));
        } else if !checked.valid.contains(&credentials) {
            // One message for an unknown user and a wrong password: a result must not tell
            // which user names exist.
            *draft = Err(ContactError::new(
                ErrorCode::InvalidCredentials,
                format!("userName '{user}' with this password is not an account of org {org}"),
            ));
        }
    }
    Verification {
        failed: checked.failed,
        throttled: locked.len(),
    }
}

/// What verifying a batch's pairs found.
#[derive(Default)]
struct Checked {
    valid: HashSet<Credentials>,
    /// Pairs the throttle locked during the batch, unverified.
    locked: HashSet<Credentials>,
    /// A user name per failed pair.
    failed: Vec<String>,
}

/// The hash an unknown user's password is verified against (it matches no password anyone
/// sends: its own was random).
static STAND_IN: LazyLock<String> =
    LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()).expect("hashing a random password"));

#[cfg(test)]
mod tests {
    use super::*;

    fn saved_by(user: &str, password: &str) -> Result<ContactDraft, ContactError> {
        Ok(ContactDraft {
            first_name: Some("A".into()),
            credentials: Some(Credentials {
                user_name: user.into(),
                password: password.into(),
            }),
            ..ContactDraft::default()
        })
    }

    #[tokio::test]
    async fn pairs_are_verified_within_limits_and_credentials_are_dropped() {
        let org = OrgId::parse("o").unwrap();
        let hashes = HashMap::from([("u".to_owned(), hash("right").unwrap())]);
        let mut drafts = vec![
            saved_by("u", "right"),
            saved_by("u", "wrong1"),
            saved_by("u", "wrong2"),
            // A fourth distinct password for the same user is not even tried.
            saved_by("u", "right-but-late"),
            saved_by("nobody", "right"),
            saved_by("u", "right"),
        ];
        let known = Known {
            hashes,
            ..Known::default()
        };
        let verification = authenticate(&org, &mut drafts, known, None).await;
        assert_eq!(verification.failed, ["u", "u", "nobody"]);
        assert_eq!(verification.throttled, 0);
        let outcome: Vec<Option<String>> = drafts
            .iter()
            .map(|d| d.as_ref().err().map(|e| e.message.clone()))
            .collect();
        assert_eq!(outcome[0], None);
        assert_eq!(outcome[5], None, "the same pair again is the same answer");
        for failed in [1, 2, 4] {
            let message = outcome[failed].as_deref().unwrap();
            assert!(
                message.ends_with("with this password is not an account of org o"),
                "{message}"
            );
        }
        assert!(outcome[3].as_deref().unwrap().contains("was not checked"));
        assert!(drafts.iter().all(|d| match d {
            Ok(contact) => contact.credentials.is_none(),
            Err(error) =>
                error.code == ErrorCode::InvalidCredentials && !error.message.contains("right"),
        }));
    }

    const THROTTLE: Throttle = Throttle {
        max_failures: 3,
        window: Duration::from_secs(60),
    };

    fn outcome(drafts: &[Result<ContactDraft, ContactError>]) -> Vec<Option<ErrorCode>> {
        drafts
            .iter()
            .map(|d| d.as_ref().err().map(|e| e.code))
            .collect()
    }

    #[tokio::test]
    async fn a_locked_user_name_is_refused_unverified_even_with_the_right_password() {
        let org = OrgId::parse("o").unwrap();
        let known = Known {
            hashes: HashMap::from([
                ("locked".to_owned(), hash("right").unwrap()),
                ("free".to_owned(), hash("right").unwrap()),
            ]),
            // The store counted 3 failures of "locked" and of the unknown "ghost" lately.
            recent_failures: HashMap::from([("locked".to_owned(), 3), ("ghost".to_owned(), 3)]),
        };
        let mut drafts = vec![
            saved_by("locked", "right"),
            saved_by("ghost", "whatever"),
            saved_by("free", "right"),
            saved_by("locked", "right"),
        ];
        let verification = authenticate(&org, &mut drafts, known, Some(THROTTLE)).await;
        let too_many = Some(ErrorCode::TooManyAttempts);
        assert_eq!(outcome(&drafts), [too_many, too_many, None, too_many]);
        assert_eq!(verification.throttled, 2, "distinct pairs");
        assert!(
            verification.failed.is_empty(),
            "nothing was verified for them"
        );
        let failed = drafts[0].as_ref().unwrap_err();
        assert_eq!(failed.code.status_code(), 429);
        assert!(failed.code.retryable());
        // An account and a name that is none read the same, and no password is echoed.
        let ghost = drafts[1].as_ref().unwrap_err();
        assert_eq!(
            failed.message.replace("locked", "?"),
            ghost.message.replace("ghost", "?")
        );
        assert!(!failed.message.contains("right"), "{}", failed.message);
        assert!(failed.message.contains("1m"), "{}", failed.message);
    }

    #[tokio::test]
    async fn failures_within_a_batch_lock_the_user_name_once_they_reach_the_limit() {
        let org = OrgId::parse("o").unwrap();
        let known = Known {
            hashes: HashMap::from([("u".to_owned(), hash("right").unwrap())]),
            recent_failures: HashMap::from([("u".to_owned(), 1)]),
        };
        // Two failures left: the second wrong password locks "u", so the right one that
        // follows is not verified.
        let mut drafts = vec![
            saved_by("u", "wrong1"),
            saved_by("u", "wrong2"),
            saved_by("u", "right"),
        ];
        let verification = authenticate(&org, &mut drafts, known, Some(THROTTLE)).await;
        let invalid = Some(ErrorCode::InvalidCredentials);
        assert_eq!(
            outcome(&drafts),
            [invalid, invalid, Some(ErrorCode::TooManyAttempts)]
        );
        assert_eq!(verification.failed, ["u", "u"]);
        assert_eq!(verification.throttled, 1);
    }

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let first = hash("examplePass").unwrap();
        let second = hash("examplePass").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.contains("examplePass"));
        assert!(verify("examplePass", &first));
        assert!(!verify("examplepass", &first));
        assert!(!verify("examplePass", "not a hash"));
    }
}
