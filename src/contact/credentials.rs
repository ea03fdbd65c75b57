//! Account credentials that Save User Contacts batches carry: argon2id hashing and the
//! per-batch check. A password is hashed on the way in and never stored, logged or echoed;
//! the hashes are read by the store's `accounts` module, the only place that reads them.

use super::{ContactDraft, ContactError, Credentials, ErrorCode};
use crate::ids::OrgId;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

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

/// Fails (401) every contact whose userName/password pair is not an account of the org, and
/// drops the credentials of the others, so no password goes further. Each distinct pair is
/// verified once, off the async threads, up to the limits above; pairs beyond them fail
/// without being verified.
pub async fn authenticate(
    org: &OrgId,
    drafts: &mut [Result<ContactDraft, ContactError>],
    hashes: HashMap<String, String>,
) {
    // Distinct pairs in order of first appearance, and how many per user.
    let mut pairs: Vec<Credentials> = Vec::new();
    let mut over_limit: HashSet<Credentials> = HashSet::new();
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for credentials in drafts
        .iter()
        .filter_map(|d| d.as_ref().ok()?.credentials.as_ref())
    {
        if pairs.contains(credentials) || over_limit.contains(credentials) {
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
    if pairs.is_empty() && over_limit.is_empty() {
        return;
    }
    let valid: HashSet<Credentials> = tokio::task::spawn_blocking(move || {
        pairs
            .into_iter()
            .filter(|c| {
                // An unknown user is checked against a stand-in hash, so that the time of
                // the answer does not tell which user names exist.
                let phc = hashes
                    .get(&c.user_name)
                    .map_or(STAND_IN.as_str(), String::as_str);
                verify(&c.password, phc) && hashes.contains_key(&c.user_name)
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    for draft in drafts.iter_mut() {
        let Ok(contact) = draft else { continue };
        let Some(credentials) = contact.credentials.take() else {
            continue;
        };
        let user = &credentials.user_name;
        if over_limit.contains(&credentials) {
            *draft = Err(ContactError::new(
                ErrorCode::InvalidCredentials,
                format!(
                    "userName '{user}' was not checked: one batch may carry at most \
                     {MAX_ACCOUNTS_PER_BATCH} accounts and {MAX_PASSWORDS_PER_USER} passwords per \
                     userName"
                ),
            ));
        } else if !valid.contains(&credentials) {
            // One message for an unknown user and a wrong password: a result must not tell
            // which user names exist.
            *draft = Err(ContactError::new(
                ErrorCode::InvalidCredentials,
                format!("userName '{user}' with this password is not an account of org {org}"),
            ));
        }
    }
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
        authenticate(&org, &mut drafts, hashes).await;
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
