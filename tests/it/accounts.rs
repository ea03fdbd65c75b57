use crate::common::{ORG, TestEnv};
use contact_import::accounts;
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
    assert!(
        accounts::check(&env.db, ORG, "exampleUser", "examplePass")
            .await
            .unwrap()
    );
    assert!(
        !accounts::check(&env.db, ORG, "exampleUser", "wrong")
            .await
            .unwrap()
    );
    assert!(
        !accounts::check(&env.db, ORG, "nobody", "examplePass")
            .await
            .unwrap()
    );
    assert!(
        !accounts::check(&env.db, "other-org", "exampleUser", "examplePass")
            .await
            .unwrap()
    );

    let (ok, _, said) = env
        .cli(&["accounts", "remove", "--org", ORG, "--user", "exampleUser"])
        .await;
    assert!(ok, "{said}");
    assert!(
        !accounts::check(&env.db, ORG, "exampleUser", "examplePass")
            .await
            .unwrap()
    );
    let (ok, _, said) = env
        .cli(&["accounts", "remove", "--org", ORG, "--user", "exampleUser"])
        .await;
    assert!(!ok && said.contains("no account exampleUser"), "{said}");
}
