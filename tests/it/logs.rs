use crate::common::{ORG, TestEnv, batch};
use serde_json::{Value, json};

#[tokio::test]
async fn logs_are_json_lines_off_a_terminal_and_batch_lines_carry_batch_org_and_delivery_tag() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "logged",
        &batch(ORG, json!([{"displayName": "Quiet Contact"}])),
    )
    .await;
    env.next_result().await;
    let log_path = worker.log.clone();
    assert!(worker.terminate().await.success());

    let log = std::fs::read_to_string(log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let done = lines
        .iter()
        .find(|l| l["message"] == "batch done")
        .unwrap_or_else(|| panic!("no 'batch done' line in:\n{log}"));
    let span = &done["span"];
    assert_eq!(span["batch_id"], "logged", "{done}");
    assert_eq!(span["org_id"], ORG, "{done}");
    assert!(span["delivery_tag"].is_u64(), "{done}");
    assert!(
        !log.contains("Quiet Contact"),
        "contact data must not reach the logs"
    );
}
