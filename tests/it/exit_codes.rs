//! The commands' exit statuses (0 every contact stored, 1 some contact failed or a batch was
//! rejected, 2 the command could not do its work) and their plain-sentence errors.

use crate::common::{ORG, TestEnv, batch};
use serde_json::json;
use std::process::Output;

async fn run(env: &TestEnv, args: &[&str]) -> Output {
    env.command(args[0])
        .args(&args[1..])
        .output()
        .await
        .expect("run contact-import")
}

fn write(env: &TestEnv, name: &str, body: &serde_json::Value) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", env.id));
    std::fs::write(&path, body.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// stderr is for a person: sentences, no JSON log lines, even though it is not a terminal.
fn assert_plain(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.lines().any(|l| l.trim_start().starts_with('{')),
        "a JSON line on a command's stderr:\n{stderr}"
    );
    stderr
}

#[tokio::test]
async fn publish_exits_0_when_all_is_stored_and_1_when_a_contact_fails_in_every_mode() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let good = write(&env, "good.json", &json!([{"displayName": "Good One"}]));
    let bad = write(
        &env,
        "bad.json",
        &json!([{"displayName": "Fine"}, {"displayName": "Bad", "emails": [{"value": "nope"}]}]),
    );
    let status = |o: &Output| o.status.code();

    let ok = run(&env, &["publish", &good, "--org", ORG, "--wait"]).await;
    assert_eq!(status(&ok), Some(0), "{}", assert_plain(&ok));
    let partial = run(&env, &["publish", &bad, "--org", ORG, "--wait"]).await;
    assert_eq!(status(&partial), Some(1));
    assert!(
        assert_plain(&partial).contains("contact-import: not every contact was stored"),
        "{partial:?}"
    );

    // --raw: the batch is sent whole and its answer printed; the status is the same.
    let whole = write(
        &env,
        "whole.json",
        &batch(ORG, json!([{"displayName": "Raw One"}])),
    );
    let raw_ok = run(&env, &["publish", "--raw", &whole]).await;
    assert_eq!(status(&raw_ok), Some(0), "{}", assert_plain(&raw_ok));
    let other_org = "7f1c2a9e-51b4-4d0b-9a53-2f0d6e8c1b44";
    let mismatch = run(&env, &["publish", "--raw", &whole, "--org", other_org]).await;
    let stdout = String::from_utf8_lossy(&mismatch.stdout);
    assert!(stdout.contains("org.id.mismatch"), "{stdout}");
    assert_eq!(
        status(&mismatch),
        Some(1),
        "a rejected batch: {}",
        assert_plain(&mismatch)
    );
    // The closing sentence names the status and the rejection's reason.
    let said = assert_plain(&mismatch);
    assert!(
        said.contains("the worker answered rejected (org.id.mismatch: "),
        "{said}"
    );
    let raw_bad = write(
        &env,
        "raw-bad.json",
        &batch(
            ORG,
            json!([{"displayName": "Bad", "emails": [{"value": "nope"}]}]),
        ),
    );
    let failed = run(&env, &["publish", "--raw", &raw_bad]).await;
    assert_eq!(status(&failed), Some(1), "{}", assert_plain(&failed));
}

#[tokio::test]
async fn a_command_that_cannot_do_its_work_exits_2_with_a_sentence() {
    let env = TestEnv::new().await;
    let good = write(&env, "good.json", &json!([{"displayName": "Good One"}]));
    let unreachable = env
        .command("publish")
        .args([&good, "--org", ORG, "--wait"])
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f")
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2));
    let said = assert_plain(&unreachable);
    assert!(
        said.contains("contact-import: ") && said.contains("127.0.0.1:9"),
        "{said}"
    );

    let usage = run(&env, &["publish", "--no-such-flag"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let migrate = env
        .command("migrate")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/nothing")
        .output()
        .await
        .unwrap();
    assert_eq!(migrate.status.code(), Some(2));
    assert_plain(&migrate);
}
