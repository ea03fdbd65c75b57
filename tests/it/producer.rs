//! `contact-import publish` as a producer: files split into batches, results collected.

use crate::common::{ORG, TestEnv, closed_cleanly, header};
use std::path::PathBuf;

fn write(env: &TestEnv, name: &str, content: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", env.id));
    std::fs::write(&path, content).unwrap();
    path
}

#[tokio::test]
async fn a_csv_is_split_into_batches_failures_are_reported_by_row_and_a_resend_imports_nothing_twice()
 {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    // A byte order mark, a quoted cell spanning two lines, and a bad email on the last row.
    let csv = write(
        &env,
        "people.csv",
        "\u{feff}displayName,email,phoneNumber,city,groups\n\
         Ada Lovelace,ada@example.com,+44 20 7946 0958,London,math;poets\n\
         \"Grace\nHopper\",grace@example.com,,Arlington,\n\
         Alan Turing,alan@example.com,,,\n\
         Bad Address,not-an-email,,,\n",
    );
    let report = write(&env, "report.csv", "");
    let csv_arg = csv.to_str().unwrap();
    let publish = [
        "publish",
        csv_arg,
        "--org",
        ORG,
        "--batch-size",
        "2",
        "--wait",
        "--report",
        report.to_str().unwrap(),
    ];
    let (ok, summary, said) = env.cli(&publish).await;
    assert!(
        !ok,
        "a failed contact makes the exit code non-zero: {summary}{said}"
    );
    closed_cleanly(&said);
    assert!(
        summary.contains("batches: 2 published, 2 answered, 0 rejected")
            && summary.contains("3 created, 0 updated, 1 failed"),
        "{summary}"
    );
    assert_eq!(env.contact_count().await, 3);
    let grace: String = env
        .db
        .query_one(
            "SELECT display_name FROM contacts WHERE emails->0->>'value' = 'grace@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(grace, "Grace\nHopper");

    let mut rows = csv::Reader::from_path(&report).unwrap();
    let columns = rows.headers().unwrap().clone();
    assert_eq!(
        columns.iter().collect::<Vec<_>>(),
        [
            "file",
            "line",
            "row",
            "index",
            "batchId",
            "errorCode",
            "errorMessage",
            "statusCode",
            "dryRun"
        ]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    let cell = |name: &str| &row[columns.iter().position(|c| c == name).unwrap()];
    assert_eq!(cell("file"), csv_arg);
    assert_eq!(
        (cell("row"), cell("line")),
        ("5", ""),
        "row 5, the header being row 1 (a quoted cell spans two lines of the file): not a line"
    );
    assert_eq!(cell("index"), "3");
    assert_eq!(cell("errorCode"), "invalid.email");
    assert_eq!(cell("statusCode"), "400");
    assert_eq!(cell("dryRun"), "false");

    // The same file again: the same batch ids, replayed, nothing imported twice, and the
    // summary says so instead of counting the earlier run's contacts as created now.
    let (again_ok, again, _) = env.cli(&publish).await;
    assert!(
        again.contains("0 created, 0 updated, 0 failed")
            && again.contains("2 batch(es) were already applied by an earlier message")
            && again.contains("3 created, 0 updated, 1 failed"),
        "{again}"
    );
    assert!(
        !again_ok,
        "the file still has a contact that was never stored"
    );
    assert_eq!(env.contact_count().await, 3);
}

#[tokio::test]
async fn an_ndjson_dry_run_writes_nothing_and_the_real_run_exits_zero() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let lines: String = (0..25)
        .map(|i| format!("{{\"displayName\": \"Person {i}\", \"emails\": [{{\"value\": \"p{i}@example.com\", \"type\": \"work\"}}]}}\n"))
        .collect();
    let file = write(&env, "people.ndjson", &lines);
    let file = file.to_str().unwrap();

    let (ok, summary, said) = env
        .cli(&[
            "publish",
            file,
            "--org",
            ORG,
            "--batch-size",
            "10",
            "--wait",
            "--dry-run",
        ])
        .await;
    assert!(ok, "{summary}{said}");
    // The table's line for the file and the summary under it both say it was a dry run.
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 3, "{summary}");
    assert!(lines[1].contains("dry run, nothing written"), "{summary}");
    assert!(
        lines[2].starts_with("dry run, nothing written: ")
            && lines[2].contains("25 would be created, 0 would be updated, 0 would fail"),
        "{summary}"
    );
    assert_eq!(env.contact_count().await, 0);

    // A dry run's report says so on every row, and names an NDJSON position as a line.
    let bad = write(
        &env,
        "bad.ndjson",
        "{\"displayName\": \"Fine\"}\n\n{\"displayName\": \"Bad\", \"emails\": [{\"value\": \"nope\"}]}\n",
    );
    let report = write(&env, "dry-report.json", "");
    let (ok, summary, said) = env
        .cli(&[
            "publish",
            bad.to_str().unwrap(),
            "--org",
            ORG,
            "--wait",
            "--dry-run",
            "--report",
            report.to_str().unwrap(),
        ])
        .await;
    assert!(!ok && summary.contains("1 would fail"), "{summary}{said}");
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(
        (&rows[0]["dryRun"], &rows[0]["line"], &rows[0]["row"]),
        (
            &serde_json::json!(true),
            &serde_json::json!(3),
            &serde_json::Value::Null
        ),
        "{rows}"
    );
    assert_eq!(env.contact_count().await, 0);

    let (ok, summary, said) = env
        .cli(&[
            "publish",
            file,
            "--org",
            ORG,
            "--batch-size",
            "10",
            "--wait",
        ])
        .await;
    assert!(ok, "{summary}{said}");
    assert!(
        summary.contains("batches: 3 published, 3 answered"),
        "{summary}"
    );
    assert_eq!(env.contact_count().await, 25);
}

#[tokio::test]
async fn each_example_is_published_with_its_detected_type_and_content_type() {
    let env = TestEnv::new().await;
    // No worker: the messages stay in the import queue to be looked at.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let whole = [
        (
            "user-contacts-save.json",
            "user-contacts.save",
            "application/json",
        ),
        (
            "docusign-contacts.xml",
            "docusign.contacts.create",
            "application/xml",
        ),
        (
            "docusign-contacts.csv",
            "docusign.contacts.create",
            "text/csv",
        ),
        (
            "user-contact-update.json",
            "user-contact.update",
            "application/json",
        ),
    ];
    let mut args = vec!["publish".to_owned()];
    for (file, _, _) in whole {
        args.push(examples.join(file).to_str().unwrap().to_owned());
    }
    let webex = examples.join("webex-bulk-create.json");
    args.extend([
        webex.to_str().unwrap().to_owned(),
        "--org".into(),
        ORG.into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, said) = env.cli(&args).await;
    assert!(ok, "{out}{said}");
    assert!(out.contains("5 batch(es) published"), "{out}");

    for (file, kind, content_type) in whole {
        let (properties, body) = env.next_message(&env.broker.import_queue).await;
        let property = |p: &Option<lapin::types::ShortString>| p.as_ref().map(|v| v.to_string());
        assert_eq!(property(properties.kind()).as_deref(), Some(kind), "{file}");
        assert_eq!(
            property(properties.content_type()).as_deref(),
            Some(content_type),
            "{file}"
        );
        assert_eq!(
            body,
            std::fs::read(examples.join(file)).unwrap(),
            "{file}: sent unchanged"
        );
        assert_eq!(
            header(&properties, "org-id").as_deref(),
            Some(ORG),
            "{file}"
        );
        let account_id = header(&properties, "account-id");
        if kind == "docusign.contacts.create" {
            assert_eq!(account_id.as_deref(), Some(ORG), "{file}");
        } else {
            assert_eq!(account_id, None, "{file}");
        }
    }
    // The Webex file is split and re-encoded as before.
    let (properties, body) = env.next_message(&env.broker.import_queue).await;
    assert_eq!(
        properties.kind().as_ref().map(|k| k.as_str()),
        Some("webex.contacts.bulk")
    );
    let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(batch["contacts"].as_array().unwrap().len(), 2);

    // --type overrides detection.
    let save = examples.join("user-contacts-save.json");
    let (ok, out, said) = env
        .cli(&[
            "publish",
            save.to_str().unwrap(),
            "--type",
            "webex.contacts.bulk",
            "--org",
            ORG,
        ])
        .await;
    assert!(ok, "{out}{said}");
    let (properties, _) = env.next_message(&env.broker.import_queue).await;
    assert_eq!(
        properties.kind().as_ref().map(|k| k.as_str()),
        Some("webex.contacts.bulk")
    );
}

#[tokio::test]
async fn with_wait_a_file_sent_whole_is_answered_and_counted_like_a_batch() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let publish = |file: &str| {
        let path = examples.join(file);
        let env = &env;
        async move {
            let path = path.to_str().unwrap();
            env.cli(&[
                "publish",
                path,
                "--org",
                ORG,
                "--wait",
                "--timeout-secs",
                "30",
            ])
            .await
        }
    };
    // The update example changes a contact the Webex example creates.
    let (ok, out, said) = publish("webex-bulk-create.json").await;
    assert!(ok && out.contains("2 created"), "{out}{said}");
    let (ok, out, said) = publish("user-contact-update.json").await;
    assert!(ok, "{out}{said}");
    assert!(
        out.contains("batches: 1 published, 1 answered, 0 rejected")
            && out.contains("0 created, 1 updated, 0 failed"),
        "{out}"
    );
    // The save example's contacts are saved by the seed's account, which must exist.
    let mut add = env
        .command("accounts")
        .args(["add", "--org", ORG, "--user", "exampleUser"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"examplePass\n")
        .await
        .unwrap();
    assert!(add.wait().await.unwrap().success());
    let (ok, out, said) = publish("user-contacts-save.json").await;
    assert!(ok, "{out}{said}");
    assert!(out.contains("2 created, 0 updated, 0 failed"), "{out}");
    assert_eq!(env.contact_count().await, 4);
}

#[tokio::test]
async fn a_docusign_csv_over_the_batch_size_is_split_and_failures_keep_their_file_position() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    // A quoted organization spanning two lines on every 7th row: never cut between chunks.
    let csv = |tag: &str, bad: Option<usize>| -> String {
        let mut text = String::from("name,emails,organization\n");
        for i in 0..2500 {
            let email = if Some(i) == bad {
                "not-an-email".to_owned()
            } else {
                format!("{tag}{i}@example.com")
            };
            let organization = if i % 7 == 0 { "\"Acme,\nInc\"" } else { "Acme" };
            text.push_str(&format!("{tag} {i},{email},{organization}\n"));
        }
        text
    };
    let publish = |file: PathBuf, report: PathBuf| {
        let env = &env;
        async move {
            env.cli(&[
                "publish",
                file.to_str().unwrap(),
                "--batch-size",
                "1000",
                "--wait",
                "--org",
                ORG,
                "--report",
                report.to_str().unwrap(),
                "--timeout-secs",
                "120",
            ])
            .await
        }
    };

    let good = write(&env, "docusign-good.csv", &csv("a", None));
    let report = write(&env, "docusign-good-report.json", "");
    let (ok, summary, said) = publish(good, report).await;
    assert!(ok, "{summary}{said}");
    assert!(
        summary.contains("batches: 3 published, 3 answered, 0 rejected")
            && summary.contains("2500 created, 0 updated, 0 failed"),
        "{summary}"
    );
    assert_eq!(env.contact_count().await, 2500);
    let acme: i64 = env
        .db
        .query_one(
            "SELECT count(*) FROM contacts WHERE company_name = E'Acme,\\nInc'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(acme, (0..2500).filter(|i| i % 7 == 0).count() as i64);

    let bad = write(&env, "docusign-bad.csv", &csv("b", Some(1700)));
    let report = write(&env, "docusign-bad-report.json", "");
    let (ok, summary, said) = publish(bad.clone(), report.clone()).await;
    assert!(
        !ok,
        "a failed contact makes the exit code non-zero: {summary}{said}"
    );
    assert!(
        summary.contains("batches: 3 published, 3 answered, 0 rejected")
            && summary.contains("2499 created, 0 updated, 1 failed"),
        "{summary}"
    );
    assert_eq!(env.contact_count().await, 2500 + 2499);
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["file"], bad.to_str().unwrap());
    assert_eq!(rows[0]["index"], 1700, "the position in the file: {rows:?}");
    assert_eq!(rows[0]["statusCode"], 400, "{rows:?}");
}

/// `replayed: true` marks the answer to a message whose batch id another message applied:
/// told apart by `x-send-id`, so the same message delivered again is never called a resend.
#[tokio::test]
async fn only_a_resend_under_another_send_id_is_answered_as_replayed() {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let body = serde_json::to_vec(&crate::common::batch(
        ORG,
        serde_json::json!([{"displayName": "Once Only"}]),
    ))
    .unwrap();
    let sent_as = |send_id: Option<&str>| {
        let mut headers = FieldTable::default();
        if let Some(id) = send_id {
            headers.insert(
                "x-send-id".into(),
                AMQPValue::LongString(LongString::from(id)),
            );
        }
        env.props("resend-1").with_headers(headers)
    };
    let replayed = |properties: &lapin::BasicProperties| {
        properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("replayed").cloned())
    };
    let mut answers = Vec::new();
    for send_id in [Some("first"), Some("first"), Some("second"), None] {
        env.publish(&body, sent_as(send_id)).await;
        let (_, properties, result) = env.next_result().await;
        assert_eq!(result["counts"]["created"], 1, "{result}");
        answers.push(replayed(&properties));
    }
    assert_eq!(
        answers,
        [None, None, Some(AMQPValue::Boolean(true)), None],
        "applied; the same message again; a resend; a message without a send id"
    );
    assert_eq!(env.contact_count().await, 1);
}

#[tokio::test]
async fn with_wait_each_input_gets_a_line_with_its_type_status_counts_codes_and_changed_contact() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let files = [
        "webex-bulk-create.json",
        "webex-bulk-mixed.json",
        "docusign-contacts.xml",
        "user-contact-update.json",
    ];
    let paths: Vec<String> = files
        .iter()
        .map(|f| examples.join(f).to_str().unwrap().to_owned())
        .collect();
    let mut args = vec![
        "publish",
        "--org",
        ORG,
        "--wait",
        "--result-detail",
        "full",
        // In order: the update changes a contact the first file creates.
        "--max-in-flight",
        "1",
    ];
    args.extend(paths.iter().map(String::as_str));
    // The table's cells, split on its column gaps.
    let table = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .take_while(|l| !l.starts_with("batches:"))
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };

    let (ok, out, said) = env.cli(&args).await;
    assert!(!ok, "the mixed file has failures: {out}{said}");
    let lines = table(&out);
    assert_eq!(lines.len(), 1 + files.len(), "{out}");
    assert_eq!(
        lines[0],
        [
            "FILE", "TYPE", "STATUS", "CREATED", "UPDATED", "FAILED", "FAILURES", "NOTE"
        ]
    );
    let cells = |i: usize| lines[i][1..7].join(" ");
    assert!(lines[1][0].ends_with("webex-bulk-create.json"), "{out}");
    assert_eq!(cells(1), "webex.contacts.bulk succeeded 2 0 0 -", "{out}");
    assert_eq!(
        cells(2),
        "webex.contacts.bulk partial 1 0 4 contact.not.found, invalid.email, invalid.phone, missing.name",
        "{out}"
    );
    assert_eq!(
        cells(3),
        "docusign.contacts.create succeeded 2 0 0 -",
        "{out}"
    );
    assert_eq!(cells(4), "user-contact.update succeeded 0 1 0 -", "{out}");
    // The update names the contact it changed: the row the database holds for it.
    let changed: String = env
        .db
        .query_one(
            "SELECT contact_id::text FROM contacts WHERE emails->0->>'value' = 'maria.rossi@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        lines[4][7],
        format!("changed contact {changed} (maria.rossi@example.com)"),
        "{out}"
    );

    // Sent again: every line says its file was applied already.
    let (_, again, said) = env.cli(&args).await;
    let lines = table(&again);
    assert_eq!(lines.len(), 1 + files.len(), "{again}{said}");
    for line in &lines[1..] {
        assert!(
            line[7].starts_with("already applied by an earlier message"),
            "{again}"
        );
    }
}
