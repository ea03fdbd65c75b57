//! `contact-import publish` as a producer: files split into batches, results collected.

use crate::common::{ORG, TestEnv};
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
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    // file, line, index, batchId, errorCode, errorMessage, statusCode
    assert_eq!(&row[0], csv_arg);
    assert_eq!(
        &row[1], "5",
        "row 5, the header being row 1 (a quoted cell spans two lines of the file)"
    );
    assert_eq!(&row[2], "3");
    assert_eq!(&row[4], "invalid.email");
    assert_eq!(&row[6], "400");

    // The same file again: the same batch ids, replayed, nothing imported twice.
    let (_, again, _) = env.cli(&publish).await;
    assert!(again.contains("3 created, 0 updated, 1 failed"), "{again}");
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
    assert!(summary.contains("25 created"), "{summary}");
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
