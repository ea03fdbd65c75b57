//! The console in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromedriver`, which `scripts/services` installs): what a person sees and clicks. The
//! screenshots go to `target/console-screenshots/`.

use crate::common::{ORG, TestEnv, batch};
use crate::console::{
    ConsoleServer, PASSWORD, Session, add_user, csv_rows, dead_letter_fixed_since, stored_failures,
};
use crate::support::ports::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process and a browser session of it; both end with the test.
struct Browser {
    client: Client,
    _driver: Driver,
    downloads: PathBuf,
    shots: PathBuf,
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

impl Browser {
    async fn start(name: &str) -> Self {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {CHROMEDRIVER} (scripts/services installs chromium-driver): {e}")
            });
        let driver = Driver(driver);
        let base = crate::support::env::target_tmpdir().join(format!("browser-{name}-{port}"));
        let downloads = base.join("downloads");
        // Empty: a file left by an earlier run on the same port is not this run's download.
        let _ = std::fs::remove_dir_all(&downloads);
        std::fs::create_dir_all(&downloads).unwrap();
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        // As the machine's notes say: without the background-networking flags Chromium keeps
        // trying hosts this closed network refuses.
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1360,900",
                    format!("--user-data-dir={}", base.join("profile").display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no WebDriver session: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            client,
            _driver: driver,
            downloads,
            shots,
        }
    }

    async fn sign_in(&self, server: &ConsoleServer, user: &str) {
        self.client
            .goto(&format!("{}/login", server.base))
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#user"))
            .await
            .unwrap()
            .send_keys(user)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        self.click("#sign-in").await;
        self.client
            .wait()
            .for_element(Locator::Css("header.top"))
            .await
            .unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// The element's text, once it exists. Found again if the page replaces it between the
    /// finding and the reading (the overview's live part is rewritten every 5 s).
    async fn text(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let read = async {
                self.client
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css(css))
                    .await?
                    .text()
                    .await
            };
            match read.await {
                Ok(text) => return text,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("{css}: {e}; reading it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// Waits until the element's text satisfies `done` (a live part refreshes on its own).
    async fn text_until(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text(css).await;
            if done(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} still says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Reloads `url` until its page contains `text`.
    async fn wait_for_text(&self, url: &str, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            self.client.goto(url).await.unwrap();
            let html = self.source().await;
            if html.contains(text) {
                return html;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} never showed {text:?}:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The one file that appears in the download folder.
    async fn downloaded(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut last: Option<String> = None;
        loop {
            // Chromium writes a download into temporary files beside it (a
            // `.crdownload`, a hidden `.org.chromium.Chromium.*`) and may show the final
            // name before its bytes: it is done when it is the only file, is not empty
            // (every download has its header line) and holds still between two looks.
            let files: Vec<PathBuf> = std::fs::read_dir(&self.downloads)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            if let [file] = files.as_slice()
                && file.extension().is_some_and(|e| e == "csv")
            {
                let text = std::fs::read_to_string(file).unwrap();
                if !text.is_empty() && last.as_ref() == Some(&text) {
                    return text;
                }
                last = Some(text);
            } else {
                last = None;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no download in {}",
                self.downloads.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn no_script_ran(&self) -> bool {
        self.client
            .execute("return window.pwned === undefined;", Vec::new())
            .await
            .unwrap()
            == Value::Bool(true)
    }
}

/// Publishes the examples as an upstream system would (`publish --wait`), and the one that
/// is not a batch as it is (`--raw`), which the worker dead-letters.
async fn import_examples(env: &TestEnv) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let output = env
        .command("publish")
        .args(["--wait", "--max-in-flight", "1", "--org", ORG])
        .args(
            [
                "webex-bulk-create.json",
                "webex-bulk-mixed.json",
                "docusign-contacts.xml",
            ]
            .map(|f| examples.join(f)),
        )
        .output()
        .await
        .unwrap();
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = env
        .command("publish")
        .args(["--raw", "--org", ORG])
        .arg(examples.join("not-a-batch.json"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_operator_finds_an_import_downloads_its_failures_and_replays_a_dead_letter() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    import_examples(&env).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let browser = Browser::start("operator").await;
    browser.sign_in(&server, "ada").await;

    // The overview fills itself in: the examples' contacts counted in the last minutes.
    let base = &server.base;
    browser
        .text_until("#failed-ratio", |r| r.ends_with('%'))
        .await;
    browser.text("#queues").await;
    // The dead-lettered example, once the console has recorded it.
    browser.text_until("#dead-waiting", |n| n == "1").await;
    browser.shot("overview").await;

    let history = browser
        .wait_for_text(&format!("{base}/imports"), "partial")
        .await;
    assert!(
        history.contains("rejected"),
        "the dead letter is in the history"
    );
    browser.shot("imports").await;

    // The partial batch: its failed contacts on the page and as a download.
    let partial: Vec<(String, Vec<u8>)> = env
        .db
        .query(
            "SELECT batch_id, result FROM import_batches WHERE status = 'partial'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (batch_id, stored) = &partial[0];
    browser
        .client
        .goto(&format!(
            "{base}/imports?status=partial&batch={}",
            url::form_urlencoded::byte_serialize(batch_id.as_bytes()).collect::<String>()
        ))
        .await
        .unwrap();
    browser.click("a.batch-link").await;
    assert_eq!(browser.text("#batch-status").await, "partial");
    browser.shot("batch").await;
    browser.click("#download-failed").await;
    let csv = browser.downloaded().await;
    let stored: Value = serde_json::from_slice(stored).unwrap();
    let expected = stored_failures(&stored);
    let downloaded = csv_rows(&csv);
    assert!(!expected.is_empty());
    assert_eq!(downloaded, expected, "the CSV is the stored failures");

    // A letter whose cause is fixed: selected, counted, confirmed, gone, and answered.
    let admin = Session::sign_in(&server, "ada").await;
    let offset = dead_letter_fixed_since(&env, &admin, "doomed").await;
    browser
        .wait_for_text(&format!("{base}/dead-letters"), "doomed")
        .await;
    browser.shot("dead-letters").await;
    browser
        .click(&format!("input[name=offset][value=\"{offset}\"]"))
        .await;
    browser.click("#replay-selected").await;
    assert!(
        browser
            .text("h1")
            .await
            .contains("Replay 1 dead letter(s)?")
    );
    browser.click("#confirm").await;
    assert!(browser.text("#done").await.starts_with("Replayed 1"));
    let list = browser
        .wait_for_text(&format!("{base}/dead-letters"), "Dead letters")
        .await;
    assert!(
        !list.contains(">doomed<"),
        "the replayed letter is still listed"
    );
    browser
        .wait_for_text(&format!("{base}/imports?batch=doomed"), "succeeded")
        .await;
}

#[tokio::test]
async fn a_viewer_sees_no_controls_and_no_injected_script_runs() {
    let env = TestEnv::new().await;
    add_user(&env, "vic", "viewer", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    let org = "<script>window.pwned=1</script>";
    let batch_id = "b\"><img/src=x/onerror=window.pwned=2>";
    env.publish_json(
        batch_id,
        &batch(
            org,
            json!([
                {"displayName": "\"><script>window.pwned=3</script>", "emails": [{"value": "ok@example.com", "type": "work"}]},
                {"contactId": "<img src=x onerror=window.pwned=4>", "displayName": "Bad Id"}
            ]),
        ),
    )
    .await;
    env.next_result().await;
    env.publish_json("plain", &batch(ORG, json!([{"displayName": "Plain"}])))
        .await;
    env.next_result().await;
    let server = ConsoleServer::start(&env, &[]).await;
    let browser = Browser::start("viewer").await;
    browser.sign_in(&server, "vic").await;
    let base = &server.base;

    browser
        .wait_for_text(&format!("{base}/imports"), "plain")
        .await;
    assert!(browser.no_script_ran().await, "a script from a batch ran");
    let only = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("org", org)
        .finish();
    browser
        .client
        .goto(&format!("{base}/imports?{only}"))
        .await
        .unwrap();
    browser.click("a.batch-link").await;
    browser.text("#batch-status").await;
    assert!(browser.no_script_ran().await, "a script from a batch ran");
    assert_eq!(
        browser.text("#batch-org").await,
        org,
        "the org is shown as text"
    );
    assert!(
        browser
            .client
            .find(Locator::Css("#download-failed"))
            .await
            .is_err(),
        "a viewer is offered downloads"
    );
    browser.shot("viewer-batch").await;
    browser
        .client
        .goto(&format!("{base}/dead-letters"))
        .await
        .unwrap();
    assert!(
        browser
            .client
            .find(Locator::Css("#replay-selected"))
            .await
            .is_err()
    );
    assert!(browser.no_script_ran().await);
}
