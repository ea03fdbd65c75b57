//! `--console`: the console's pages over a large history. It generates `--console-batches`
//! processed batches (a fifth of them one big org's, the rest over 997 orgs, half a second
//! apart) and `--console-letters` dead-letter records directly in a fresh database, starts a
//! real `contact-import console` on it, and times each page's requests from a client on
//! loopback (an upper bound of the server's time). It prints the plans PostgreSQL chooses
//! for the pages' queries, so that the indexes they use can be checked.

use crate::services::Services;
use crate::stats::percentile;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct Config<'a> {
    pub bin: &'a Path,
    pub database: &'a str,
    pub log_dir: &'a Path,
    pub batches: u64,
    pub letters: u64,
    pub requests: usize,
}

/// One page's timings.
pub struct PageTimes {
    pub page: &'static str,
    pub path: String,
    pub times: Vec<Duration>,
}

const PASSWORD: &str = "bench console password";

pub async fn run(services: &Services, cfg: &Config<'_>) -> anyhow::Result<String> {
    let url = services.create_migrated(cfg.database, cfg.bin).await?;
    let db = crate::support::database::connect(&url).await?;
    let t = Instant::now();
    generate(&db, cfg.batches, cfg.letters).await?;
    eprintln!(
        "bench: console: {} batches and {} dead letters generated in {:.1} s",
        cfg.batches,
        cfg.letters,
        t.elapsed().as_secs_f64()
    );
    let hash = contact_import::contact::credentials::hash(PASSWORD)?;
    db.execute(
        "INSERT INTO console_users (name, password_hash, role, orgs) VALUES ('bench', $1, 'admin', '{*}')",
        &[&hash],
    )
    .await?;

    let port = crate::support::ports::free_port();
    let log = cfg.log_dir.join("console.log");
    let mut console = tokio::process::Command::new(cfg.bin)
        .arg("console")
        .env("DATABASE_URL", &url)
        .env("AMQP_URL", &services.amqp_url)
        .env("CONTACT_IMPORT_CONSOLE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting contact-import console")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = sign_in(&http, &base).await?;

    let org_of = |i: u64| {
        if i.is_multiple_of(5) {
            "org-big".to_owned()
        } else {
            format!("org-{}", i % 997)
        }
    };
    let detail = |i: u64| {
        format!(
            "/batch?org={}&id=batch-{i}",
            url::form_urlencoded::byte_serialize(org_of(i).as_bytes()).collect::<String>()
        )
    };
    let mut pages = vec![
        (
            "history, big org (200k batches)",
            "/imports?org=org-big".to_owned(),
        ),
        (
            "history, small org (~800 batches)",
            "/imports?org=org-42".to_owned(),
        ),
        ("history, unfiltered", "/imports".to_owned()),
        (
            "history, org + error code",
            "/imports?org=org-big&code=invalid.email".to_owned(),
        ),
        (
            "history, org + status",
            "/imports?org=org-42&status=failed".to_owned(),
        ),
        ("batch detail", detail(cfg.batches / 2)),
        ("overview (live part)", "/overview/live".to_owned()),
        ("dead letters", "/dead-letters".to_owned()),
        ("dead letters, org", "/dead-letters?org=org-42".to_owned()),
    ];
    // A deep page of the big org's history, by its keyset link.
    let mut path = "/imports?org=org-big".to_owned();
    for _ in 0..20 {
        let html = get(&http, &base, &cookie, &path).await?.1;
        let Some(at) = html.find("id=\"older\"") else {
            break;
        };
        let href = html[..at].rfind("href=\"").context("an Older link")? + 6;
        path = html[href..]
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&");
    }
    pages.push(("history, big org, 21st page", path));

    let mut results = Vec::new();
    for (page, path) in pages {
        // Warm once, then time.
        let (status, _) = get(&http, &base, &cookie, &path).await?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        let mut times = Vec::with_capacity(cfg.requests);
        for n in 0..cfg.requests {
            let path = if page == "batch detail" {
                detail(1 + (n as u64 * 7919) % cfg.batches)
            } else {
                path.clone()
            };
            let t = Instant::now();
            let (status, _) = get(&http, &base, &cookie, &path).await?;
            times.push(t.elapsed());
            if status != 200 {
                bail!("{path} answered {status}");
            }
        }
        results.push(PageTimes { page, path, times });
    }
    let _ = console.start_kill();

    let plans = explain(&db).await?;
    Ok(markdown(cfg, &results, &plans))
}

async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "user=bench&password={}",
                PASSWORD.replace(' ', "+")
            ))
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 303 => {
                let set = r
                    .headers()
                    .get("set-cookie")
                    .context("no session cookie")?
                    .to_str()?;
                return Ok(set.split(';').next().unwrap().to_owned());
            }
            Ok(r) => bail!("signing in answered {}", r.status()),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// A fifth of the batches are org-big's; a tenth of all are partial (with an
/// `invalid.email` failure) and a hundredth failed. The letters spread over the same orgs.
async fn generate(db: &tokio_postgres::Client, batches: u64, letters: u64) -> anyhow::Result<()> {
    db.execute(
        "INSERT INTO import_batches (org_id, batch_id, body_sha256, status, received, created, \
             updated, failed, result, processed_at, message_type, publisher, error_codes, apply_ms) \
         SELECT CASE WHEN i % 5 = 0 THEN 'org-big' ELSE 'org-' || (i % 997) END, \
                'batch-' || i, md5(i::text), \
                CASE WHEN i % 100 = 1 THEN 'failed' WHEN i % 10 = 0 THEN 'partial' ELSE 'succeeded' END, \
                1000, 900, 50, CASE WHEN i % 10 = 0 THEN 50 ELSE 0 END, \
                convert_to(format('{\"batchId\":\"batch-%s\",\"status\":\"partial\",\"contactIds\":[],\
\"failedContacts\":[{\"id\":\"3\",\"errorCode\":\"invalid.email\",\"errorMessage\":\"emails[0].value ''x'' is not a valid email address\",\"statusCode\":400,\"retryable\":false}],\
\"counts\":{\"received\":1000,\"created\":900,\"updated\":50,\"failed\":50}}', i), 'UTF8'), \
                now() - make_interval(secs => i * 0.5), 'webex.contacts.bulk', 'producer', \
                CASE WHEN i % 10 = 0 THEN ARRAY['invalid.email'] END, 40 \
         FROM generate_series(1, $1::bigint) AS i",
        &[&(batches as i64)],
    )
    .await?;
    db.execute(
        "INSERT INTO dead_letters (stream_offset, batch_id, org_id, reason, error, attempts, \
             message_type, publisher, dead_at, headers, body) \
         SELECT i, 'dead-' || i, CASE WHEN i % 5 = 0 THEN 'org-big' ELSE 'org-' || (i % 997) END, \
                CASE WHEN i % 2 = 0 THEN 'attempts.exhausted' ELSE 'invalid.json' END, \
                'the batch could not be stored', 5, 'webex.contacts.bulk', 'producer', \
                now() - make_interval(secs => i * 5), '{}'::jsonb, convert_to('{}', 'UTF8') \
         FROM generate_series(1, $1::bigint) AS i",
        &[&(letters as i64)],
    )
    .await?;
    db.batch_execute("ANALYZE import_batches; ANALYZE dead_letters")
        .await?;
    Ok(())
}

/// The plans of the pages' main queries, as PostgreSQL runs them (EXPLAIN ANALYZE).
async fn explain(db: &tokio_postgres::Client) -> anyhow::Result<Vec<(&'static str, String)>> {
    let queries: [(&str, &str); 6] = [
        (
            "history of a small org, first page",
            "SELECT org_id, batch_id, status, received, failed, processed_at FROM import_batches \
             WHERE status <> 'processing' AND org_id = 'org-42' \
             ORDER BY processed_at DESC, batch_id DESC, org_id DESC LIMIT 50",
        ),
        (
            "dead letters of a small org",
            "SELECT stream_offset FROM dead_letters WHERE org_id = 'org-42' AND settled IS NULL \
             ORDER BY dead_at DESC, stream_offset DESC LIMIT 50",
        ),
        (
            "history of one org, first page",
            "SELECT org_id, batch_id, status, received, failed, processed_at FROM import_batches \
             WHERE status <> 'processing' AND org_id = 'org-big' \
             ORDER BY processed_at DESC, batch_id DESC, org_id DESC LIMIT 50",
        ),
        (
            "history of one org with an error code",
            "SELECT org_id, batch_id FROM import_batches \
             WHERE status <> 'processing' AND org_id = 'org-big' AND error_codes @> ARRAY['invalid.email'] \
             ORDER BY processed_at DESC, batch_id DESC, org_id DESC LIMIT 50",
        ),
        (
            "batch detail",
            "SELECT result FROM import_batches WHERE org_id = 'org-big' AND batch_id = 'batch-500000'",
        ),
        (
            "overview, last 15 minutes",
            "SELECT date_trunc('minute', processed_at) AS minute, count(*), sum(received) \
             FROM import_batches WHERE processed_at > now() - interval '15 minutes' \
             GROUP BY minute ORDER BY minute",
        ),
    ];
    let mut plans = Vec::new();
    for (name, sql) in queries {
        let rows = db
            .query(&format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"), &[])
            .await?;
        let plan: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        plans.push((name, plan.join("\n")));
    }
    Ok(plans)
}

fn markdown(cfg: &Config<'_>, results: &[PageTimes], plans: &[(&str, String)]) -> String {
    let mut out = format!(
        "{} processed batches and {} dead-letter records; {} requests per page, one at a time, \
         from a client on loopback (release build).\n\n\
         | page | path | p50 | p95 | max |\n| --- | --- | ---: | ---: | ---: |\n",
        cfg.batches, cfg.letters, cfg.requests
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    for r in results {
        let path = if r.path.len() > 60 {
            format!("{}…", &r.path[..60])
        } else {
            r.path.clone()
        };
        out += &format!(
            "| {} | `{}` | {} | {} | {} |\n",
            r.page,
            path,
            ms(percentile(&r.times, 0.5)),
            ms(percentile(&r.times, 0.95)),
            ms(*r.times.iter().max().unwrap())
        );
    }
    for (name, plan) in plans {
        out += &format!("\n{name}:\n\n```text\n{plan}\n```\n");
    }
    out
}
