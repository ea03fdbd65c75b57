//! `contact-import console` over HTTP, against the real broker and database: sign-in, roles,
//! org scopes, cross-origin POSTs, escaping, downloads and dead-letter replays. The console
//! runs as its own process, as operators run it.

use crate::common::{ORG, TestEnv, accept_contacts, batch, refuse_contacts};
use crate::support::env::broker_env;
use crate::support::ports::free_port;
use crate::support::{env, process};
use reqwest::redirect::Policy;
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

pub const PASSWORD: &str = "correct horse battery staple";

/// A console process for a test's broker names and database.
pub struct ConsoleServer {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl ConsoleServer {
    /// Starts `contact-import console` and waits until it answers.
    pub async fn start(env: &TestEnv, vars: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = env::target_tmpdir().join(format!("console-{}-{port}.log", env.id));
        let mut command = console_command(env);
        command
            .env("CONTACT_IMPORT_CONSOLE_LISTEN", format!("127.0.0.1:{port}"))
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().expect("start contact-import console");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if http
                .get(format!("{}/login", server.base))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the console did not start:\n{}",
                process::tail(&server.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The console's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn console_command(env: &TestEnv) -> Command {
    let mut command = Command::new(env::bin());
    command
        .arg("console")
        .envs(broker_env(&env.broker))
        .env("DATABASE_URL", &env.database_url)
        .env("CONTACT_IMPORT_LOG_FORMAT", "json");
    command
}

/// `contact-import console-users add NAME --role ROLE --orgs ORGS`, the password on stdin.
pub async fn add_user(env: &TestEnv, name: &str, role: &str, orgs: &str) {
    let mut child = env
        .command("console-users")
        .args(["add", name, "--role", role, "--orgs", orgs])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// What a response said.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub body: String,
}

/// A signed-in user (or nobody), as a browser on the console's own origin sends requests.
pub struct Session {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Session {
    pub fn anonymous(server: &ConsoleServer) -> Self {
        Self {
            http: client(),
            base: server.base.clone(),
            cookie: None,
        }
    }

    /// Signs in through the login form.
    pub async fn sign_in(server: &ConsoleServer, user: &str) -> Self {
        let mut session = Self::anonymous(server);
        let answer = session
            .post(
                "/login",
                &[("user", user), ("password", PASSWORD), ("next", "/")],
            )
            .await;
        assert_eq!(answer.status, 303, "signing in as {user}: {}", answer.body);
        assert!(session.cookie.is_some(), "no session cookie for {user}");
        session
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_with(path, &[]).await
    }

    /// A GET with these request headers too.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        Self::answer(request.send().await.unwrap()).await
    }

    /// A form POST as the console's own pages send it (`Sec-Fetch-Site: same-origin`).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_with(path, form, &[("sec-fetch-site", "same-origin")])
            .await
    }

    /// A form POST with these request headers instead (a forged cross-site one, say).
    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().copied())
            .finish();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Strict"),
                "session cookie without HttpOnly and SameSite=Strict: {set}"
            );
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        Self::answer(response).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        Answer {
            status: response.status().as_u16(),
            location,
            content_type,
            body: response.text().await.unwrap(),
        }
    }
}

/// Waits until `path` shows `text` (the recorder and the workers run on their own time).
pub async fn wait_for_page(session: &Session, path: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = session.get(path).await;
        if answer.status == 200 && answer.body.contains(text) {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {text:?}; last answer {}:\n{}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A downloaded CSV's rows after its header.
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// A result's `failedContacts` as the failed-contacts CSV's rows should hold them.
pub fn stored_failures(result: &serde_json::Value) -> Vec<Vec<String>> {
    result["failedContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            ["id", "errorCode", "errorMessage", "statusCode"]
                .map(|k| {
                    f[k].as_str()
                        .map_or_else(|| f[k].to_string(), str::to_owned)
                })
                .to_vec()
        })
        .collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish()
}

/// A dead letter that a fixed database lets through: the database refuses contacts until
/// the batch has used every delivery, then accepts them again. Returns the letter's
/// offset, read from the console's list.
pub async fn dead_letter_fixed_since(env: &TestEnv, admin: &Session, id: &str) -> String {
    refuse_contacts(env).await;
    env.publish_json(id, &batch(ORG, json!([{"displayName": "Doomed Person"}])))
        .await;
    // Earlier batches' results may come first.
    let rejected = loop {
        let (_, _, result) = env.next_result().await;
        if result["batchId"] == id {
            break result;
        }
    };
    assert_eq!(rejected["error"]["code"], "attempts.exhausted");
    accept_contacts(env).await;
    let page = wait_for_page(admin, "/dead-letters", id).await;
    let marker = "/dead-letters/letter?offset=";
    let at = page.find(marker).expect("a link to the letter") + marker.len();
    page[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[tokio::test]
async fn the_console_does_not_start_without_users_or_an_address() {
    let env = TestEnv::new().await;
    let output = console_command(&env)
        .env("CONTACT_IMPORT_CONSOLE_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no console users"), "{said}");

    add_user(&env, "ada", "admin", "*").await;
    let output = console_command(&env).output().await.unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("CONTACT_IMPORT_CONSOLE_LISTEN"), "{said}");
}

#[tokio::test]
async fn nobody_gets_in_without_signing_in_and_a_wrong_password_is_throttled() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    let server = ConsoleServer::start(&env, &[]).await;
    let nobody = Session::anonymous(&server);

    for page in [
        "/",
        "/imports",
        "/dead-letters",
        "/batch/failed.csv?org=a&id=b",
    ] {
        let answer = nobody.get(page).await;
        assert_eq!(answer.status, 303, "{page} served anonymously");
        assert!(
            answer
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login?next=")),
            "{page}: {:?}",
            answer.location
        );
    }
    let mut nobody = Session::anonymous(&server);
    let answer = nobody
        .post("/dead-letters/replay", &[("take", "all")])
        .await;
    assert_eq!(answer.status, 401);

    // Five wrong passwords lock the user out, even with the right one afterwards.
    for _ in 0..5 {
        let answer = nobody
            .post("/login", &[("user", "ada"), ("password", "guess")])
            .await;
        assert_eq!(answer.status, 401);
        assert!(nobody.cookie.is_none());
    }
    let answer = nobody
        .post("/login", &[("user", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(answer.status, 401, "a locked-out user signed in");
    let log = server.log();
    assert!(
        log.contains("wrong password") && log.contains("locked"),
        "{log}"
    );
    assert!(!log.contains("guess"), "a password reached the log:\n{log}");

    // Signing out ends the session on the server, not only in the browser.
    add_user(&env, "bob", "viewer", "*").await;
    let mut bob = Session::sign_in(&server, "bob").await;
    let cookie = bob.cookie.clone();
    assert_eq!(bob.get("/imports").await.status, 200);
    bob.post("/logout", &[]).await;
    bob.cookie = cookie;
    assert_eq!(
        bob.get("/imports").await.status,
        303,
        "the old cookie still works"
    );
}

#[tokio::test]
async fn a_viewer_cannot_replay_or_download_even_with_a_hand_made_request() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    add_user(&env, "vic", "viewer", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let admin = Session::sign_in(&server, "ada").await;
    let offset = dead_letter_fixed_since(&env, &admin, "doomed").await;

    let mut viewer = Session::sign_in(&server, "vic").await;
    let list = viewer.get("/dead-letters").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("doomed"));
    assert!(
        !list.body.contains("replay-selected") && !list.body.contains("/dead-letters/purge"),
        "a viewer is offered replay or purge controls"
    );
    for form in [
        vec![("take", "selected"), ("offset", offset.as_str())],
        vec![
            ("take", "selected"),
            ("offset", offset.as_str()),
            ("confirm", "yes"),
            ("expected", "1"),
        ],
    ] {
        let answer = viewer.post("/dead-letters/replay", &form).await;
        assert_eq!(answer.status, 403, "{}", answer.body);
    }
    let answer = viewer
        .post(
            "/dead-letters/purge",
            &[("older_than", "0s"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(answer.status, 403);
    env.expect_queue_depth(&env.broker.dead_letter_queue, 1, "the viewer's replay")
        .await;

    let found = env
        .db
        .query_one(
            "SELECT settled FROM dead_letters WHERE batch_id = 'doomed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(found.get::<_, Option<String>>(0), None);
    let download = viewer
        .get(&format!(
            "/batch/failed.csv?{}",
            query(&[("org", ORG), ("id", "doomed")])
        ))
        .await;
    assert_eq!(download.status, 403);
}

#[tokio::test]
async fn an_operator_replays_a_dead_letter_after_a_count_and_a_confirmation() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    add_user(&env, "otto", "operator", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let admin = Session::sign_in(&server, "ada").await;
    let offset = dead_letter_fixed_since(&env, &admin, "doomed").await;

    // Looking at letters does not touch the queue.
    let shown = admin
        .get(&format!("/dead-letters/letter?offset={offset}"))
        .await;
    assert!(shown.body.contains("Doomed Person"), "{}", shown.body);
    assert!(shown.body.contains("contacts are read-only today"));
    env.expect_queue_depth(&env.broker.dead_letter_queue, 1, "looking")
        .await;

    let mut operator = Session::sign_in(&server, "otto").await;
    let confirm = operator
        .post(
            "/dead-letters/replay",
            &[("take", "selected"), ("offset", offset.as_str())],
        )
        .await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("Replay 1 dead letter(s)?"),
        "{}",
        confirm.body
    );
    env.expect_queue_depth(&env.broker.dead_letter_queue, 1, "asking for a count")
        .await;

    let done = operator
        .post(
            "/dead-letters/replay",
            &[
                ("take", "selected"),
                ("offset", offset.as_str()),
                ("confirm", "yes"),
                ("expected", "1"),
            ],
        )
        .await;
    assert!(
        done.body.contains("Replayed 1 dead letter(s)"),
        "{}",
        done.body
    );
    let (_, _, applied) = env.next_result().await;
    assert_eq!(applied["batchId"], "doomed");
    assert_eq!(applied["status"], "succeeded");
    env.expect_queue_depth(&env.broker.dead_letter_queue, 0, "the replay")
        .await;
    let list = operator.get("/dead-letters").await;
    assert!(!list.body.contains(">doomed<"), "{}", list.body);
    wait_for_page(&operator, "/imports", "succeeded").await;
    let log = server.log();
    assert!(
        log.contains("\"action\":\"replay dead letter\"") && log.contains("\"user\":\"otto\""),
        "no audit line for the replay:\n{log}"
    );
    assert!(
        !log.contains("Doomed Person"),
        "contact data in the log:\n{log}"
    );
}

#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let mut admin = Session::sign_in(&server, "ada").await;
    let offset = dead_letter_fixed_since(&env, &admin, "doomed").await;
    let form = [
        ("take", "selected"),
        ("offset", offset.as_str()),
        ("confirm", "yes"),
        ("expected", "1"),
    ];
    for forged in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example")],
    ] {
        let answer = admin
            .post_with("/dead-letters/replay", &form, &forged)
            .await;
        assert_eq!(answer.status, 403, "{forged:?} was accepted");
    }
    env.expect_queue_depth(&env.broker.dead_letter_queue, 1, "forged replays")
        .await;
    // Signing in from another site is refused too (login CSRF).
    let mut other = Session::anonymous(&server);
    let answer = other
        .post_with(
            "/login",
            &[("user", "ada"), ("password", PASSWORD)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(answer.status, 403);
}

#[tokio::test]
async fn an_org_scoped_user_sees_only_their_orgs() {
    let env = TestEnv::new().await;
    let other = "another-org";
    add_user(&env, "olga", "operator", ORG).await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "mine",
        &batch(
            ORG,
            json!([{"displayName": "A", "emails": [{"value": "x", "type": "work"}]}]),
        ),
    )
    .await;
    env.publish_json(
        "theirs",
        &batch(
            other,
            json!([{"displayName": "B", "emails": [{"value": "y", "type": "work"}]}]),
        ),
    )
    .await;
    env.next_result().await;
    env.next_result().await;
    let server = ConsoleServer::start(&env, &[]).await;
    let olga = Session::sign_in(&server, "olga").await;

    let history = olga.get("/imports").await;
    assert!(history.body.contains(">mine<"), "{}", history.body);
    assert!(!history.body.contains("theirs") && !history.body.contains(other));
    let filtered = olga
        .get(&format!("/imports?{}", query(&[("org", other)])))
        .await;
    assert!(!filtered.body.contains("theirs"));

    let mine = olga
        .get(&format!(
            "/batch?{}",
            query(&[("org", ORG), ("id", "mine")])
        ))
        .await;
    assert_eq!(mine.status, 200);
    for path in ["/batch", "/batch/failed.csv", "/batch/result.json"] {
        // A batch of the user's own org that does not exist: the answer to compare with.
        let missing = olga
            .get(&format!(
                "{path}?{}",
                query(&[("org", ORG), ("id", "no-such-batch")])
            ))
            .await;
        let theirs = olga
            .get(&format!(
                "{path}?{}",
                query(&[("org", other), ("id", "theirs")])
            ))
            .await;
        assert_eq!(theirs.status, 404, "{path} of another org");
        assert_eq!(
            (theirs.status, theirs.body),
            (missing.status, missing.body),
            "{path}: another org's batch is told apart from a missing one"
        );
    }
}

#[tokio::test]
async fn producer_values_are_shown_as_text_and_failures_download_as_csv() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    let org = "<script>window.pwned=1</script>";
    let batch_id = "b\"><img/src=x/onerror=window.pwned=2>";
    let contacts = json!([
        {"displayName": "\"><script>window.pwned=3</script>", "emails": [{"value": "ok@example.com", "type": "work"}]},
        {"contactId": "<img src=x onerror=window.pwned=4>", "displayName": "Bad Id"},
        {"displayName": "Bad Email", "emails": [{"value": "not an <b>email</b>", "type": "work"}]}
    ]);
    env.publish_json(batch_id, &batch(org, contacts)).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "partial", "{result}");

    let server = ConsoleServer::start(&env, &[]).await;
    let admin = Session::sign_in(&server, "ada").await;
    let history = admin.get("/imports").await;
    let page = admin
        .get(&format!(
            "/batch?{}",
            query(&[("org", org), ("id", batch_id)])
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for html in [&history.body, &page.body] {
        assert!(
            !html.contains("<script>window"),
            "unescaped script:\n{html}"
        );
        assert!(!html.contains("<img"), "unescaped img:\n{html}");
        assert!(
            !html.contains("\"><img/src") && !html.contains("\"><script>"),
            "an attribute was broken out of:\n{html}"
        );
    }
    assert!(
        page.body.contains("&#60;script&#62;window.pwned=1"),
        "the org is not shown:\n{}",
        page.body
    );

    let csv = admin
        .get(&format!(
            "/batch/failed.csv?{}",
            query(&[("org", org), ("id", batch_id)])
        ))
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    let downloaded = csv_rows(&csv.body);
    let stored = stored_failures(&result);
    assert_eq!(downloaded, stored);
    assert_eq!(downloaded.len(), 2);
    let log = server.log();
    assert!(
        log.contains("\"action\":\"download failed contacts\""),
        "no audit line for the download:\n{log}"
    );
    assert!(
        !log.contains("Bad Email"),
        "contact data in the log:\n{log}"
    );
}

#[tokio::test]
async fn every_page_forbids_inline_script_and_framing() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    let server = ConsoleServer::start(&env, &[]).await;
    let response = client()
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
}

#[tokio::test]
async fn an_admin_purges_old_letters_only_after_typing_the_count() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "admin", "*").await;
    add_user(&env, "amy", "admin", ORG).await;
    let _worker = env.spawn_worker(&[]).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let mut admin = Session::sign_in(&server, "ada").await;
    dead_letter_fixed_since(&env, &admin, "doomed").await;

    // An admin of some orgs only may not purge a queue that holds every org's letters.
    let mut scoped = Session::sign_in(&server, "amy").await;
    let answer = scoped
        .post("/dead-letters/purge", &[("older_than", "0s")])
        .await;
    assert_eq!(answer.status, 403);

    let count = admin
        .post("/dead-letters/purge", &[("older_than", "0s")])
        .await;
    assert!(
        count.body.contains("Purge 1 dead letter(s)?"),
        "{}",
        count.body
    );
    let mistyped = admin
        .post(
            "/dead-letters/purge",
            &[
                ("older_than", "0s"),
                ("confirm", "yes"),
                ("expected", "1"),
                ("typed", "purge 2"),
            ],
        )
        .await;
    assert!(mistyped.body.contains("Type exactly"), "{}", mistyped.body);
    env.expect_queue_depth(&env.broker.dead_letter_queue, 1, "a mistyped purge")
        .await;
    let done = admin
        .post(
            "/dead-letters/purge",
            &[
                ("older_than", "0s"),
                ("confirm", "yes"),
                ("expected", "1"),
                ("typed", "purge 1"),
            ],
        )
        .await;
    assert!(
        done.body.contains("Removed 1 dead letter(s)"),
        "{}",
        done.body
    );
    env.expect_queue_depth(&env.broker.dead_letter_queue, 0, "the purge")
        .await;
    let row = env
        .db
        .query_one(
            "SELECT settled, settled_by FROM dead_letters WHERE batch_id = 'doomed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("purged"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("ada"));
    let log = server.log();
    assert!(
        log.contains("\"action\":\"purge dead letter\"") && log.contains("\"batch\":\"doomed\""),
        "{log}"
    );
}

#[tokio::test]
async fn behind_a_proxy_only_the_proxy_may_name_the_user() {
    let env = TestEnv::new().await;
    add_user(&env, "ada", "viewer", "*").await;
    let as_ada = [("x-forwarded-user", "ada")];

    // The proxy is elsewhere: a request from here is refused, whatever it claims.
    let elsewhere = ConsoleServer::start(
        &env,
        &[
            ("CONTACT_IMPORT_CONSOLE_AUTH", "proxy"),
            ("CONTACT_IMPORT_CONSOLE_TRUSTED_PROXIES", "127.0.0.2"),
        ],
    )
    .await;
    let answer = Session::anonymous(&elsewhere)
        .get_with("/imports", &as_ada)
        .await;
    assert_eq!(answer.status, 403);
    assert!(
        elsewhere
            .log()
            .contains("did not come through the trusted proxy")
    );

    let behind = ConsoleServer::start(
        &env,
        &[
            ("CONTACT_IMPORT_CONSOLE_AUTH", "proxy"),
            ("CONTACT_IMPORT_CONSOLE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let proxy = Session::anonymous(&behind);
    let answer = proxy.get_with("/imports", &as_ada).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("ada · viewer"));
    assert_eq!(proxy.get("/imports").await.status, 401, "no user named");
    let stranger = proxy
        .get_with("/imports", &[("x-forwarded-user", "mallory")])
        .await;
    assert_eq!(stranger.status, 401, "a name that is no console user");
    let mut proxy = Session::anonymous(&behind);
    let login = proxy
        .post("/login", &[("user", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(
        login.status, 404,
        "the console's own sign-in is off behind a proxy"
    );
}

#[tokio::test]
async fn a_scoped_operator_replays_only_their_orgs_letters_even_with_the_same_batch_id() {
    let env = TestEnv::new().await;
    let other = "another-org";
    add_user(&env, "olga", "operator", ORG).await;
    add_user(&env, "ada", "admin", "*").await;
    let _worker = env.spawn_worker(&[]).await;
    refuse_contacts(&env).await;
    for org in [ORG, other] {
        env.publish_json("same-id", &batch(org, json!([{"displayName": "Doomed"}])))
            .await;
    }
    for _ in 0..2 {
        let (_, _, rejected) = env.next_result().await;
        assert_eq!(rejected["error"]["code"], "attempts.exhausted");
    }
    accept_contacts(&env).await;
    let server = ConsoleServer::start(&env, &[]).await;
    let admin = Session::sign_in(&server, "ada").await;
    wait_for_page(
        &admin,
        &format!("/dead-letters?{}", query(&[("org", other)])),
        "same-id",
    )
    .await;
    let mut olga = Session::sign_in(&server, "olga").await;
    let list = wait_for_page(&olga, "/dead-letters", "same-id").await;
    assert!(
        !list.contains(other),
        "another org's letter is listed:\n{list}"
    );
    let theirs: i64 = env
        .db
        .query_one(
            "SELECT stream_offset FROM dead_letters WHERE org_id = $1",
            &[&other],
        )
        .await
        .unwrap()
        .get(0);
    let shown = olga
        .get(&format!("/dead-letters/letter?offset={theirs}"))
        .await;
    let missing = olga.get("/dead-letters/letter?offset=999999").await;
    assert_eq!(shown.status, 404, "another org's letter is shown");
    assert_eq!(shown.body, missing.body);
    let rejected = olga.get("/imports?status=rejected").await;
    assert!(rejected.body.contains("same-id") && !rejected.body.contains(other));

    let count = olga.post("/dead-letters/replay", &[("take", "all")]).await;
    assert!(
        count.body.contains("Replay 1 dead letter(s)?"),
        "{}",
        count.body
    );
    let done = olga
        .post(
            "/dead-letters/replay",
            &[("take", "all"), ("confirm", "yes"), ("expected", "1")],
        )
        .await;
    assert!(
        done.body.contains("Replayed 1 dead letter(s)"),
        "{}",
        done.body
    );
    let (_, _, applied) = env.next_result().await;
    assert_eq!(applied["orgId"], ORG);
    assert_eq!(applied["status"], "succeeded");
    env.expect_queue_depth(
        &env.broker.dead_letter_queue,
        1,
        "the other org's letter stays",
    )
    .await;
    let left = env
        .db
        .query_one(
            "SELECT count(*) FROM dead_letters WHERE org_id = $1 AND settled IS NULL",
            &[&other],
        )
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 1);
}
