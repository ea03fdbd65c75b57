use crate::common::{ORG, TestEnv};
use contact_import::contact::credentials;
use contact_import::store::accounts;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn accounts_are_stored_as_argon2id_hashes_checked_and_removed() {
    let env = TestEnv::new().await;
    let mut add = env
        .command("accounts")
        .args(["add", "--org", ORG, "--user", "exampleUser"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    stdin.write_all(b"examplePass\n").await.unwrap();
    drop(stdin);
    let added = add.wait_with_output().await.unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(!String::from_utf8_lossy(&added.stderr).contains("examplePass"));

    let stored: String = env
        .db
        .query_one("SELECT password_hash FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("examplePass"));
    assert!(check(&env.db, ORG, "exampleUser", "examplePass").await);
    assert!(!check(&env.db, ORG, "exampleUser", "wrong").await);
    assert!(!check(&env.db, ORG, "nobody", "examplePass").await);
    assert!(!check(&env.db, "other-org", "exampleUser", "examplePass").await);

    let (ok, _, said) = env
        .cli(&["accounts", "remove", "--org", ORG, "--user", "exampleUser"])
        .await;
    assert!(ok, "{said}");
    assert!(!check(&env.db, ORG, "exampleUser", "examplePass").await);
    let (ok, _, said) = env
        .cli(&["accounts", "remove", "--org", ORG, "--user", "exampleUser"])
        .await;
    assert!(!ok && said.contains("no account exampleUser"), "{said}");
}

/// Whether `user` of `org` is an account whose password is `password`, as the worker checks.
async fn check(db: &tokio_postgres::Client, org: &str, user: &str, password: &str) -> bool {
    accounts::password_hash(db, org, user)
        .await
        .unwrap()
        .is_some_and(|phc| credentials::verify(password, &phc))
}
