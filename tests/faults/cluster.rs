//! A private RabbitMQ node and a private PostgreSQL cluster for one scenario, in a folder of
//! their own under `target/tmp/faults/`, on free loopback ports, so that a test can stop,
//! kill and restart them without disturbing anything else.
//!
//! Both run from the Debian packages (`scripts/services` installs them) as direct children
//! of the test, started through `setpriv --pdeathsig KILL`: if the test process dies
//! without unwinding (a nextest timeout), the kernel kills them too. `Drop` kills them when a
//! test ends or panics, and [`reap_abandoned`] cleans up after a run that could not.
//! The folder (logs of the services and the workers) is removed after a passing test and
//! kept after a failing one, or always with `FAULTS_KEEP=1` (until the next run reaps it).

use crate::support::database::connect;
use crate::support::ports::{free_port, free_port_run, random_u64};
use crate::support::process::{signal, tail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a service gets to start or stop before the test gives up.
const SERVICE_WAIT: Duration = Duration::from_secs(90);

/// One scenario's RabbitMQ and PostgreSQL.
pub struct Cluster {
    pub dir: PathBuf,
    pub rabbit: RabbitMq,
    pub postgres: Postgres,
}

impl Cluster {
    /// Starts both services (concurrently) in a new folder named after the scenario.
    pub async fn start(scenario: &str) -> Self {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
        std::fs::create_dir_all(&base).unwrap();
        reap_abandoned(&base);
        let dir = base.join(format!("{scenario}-{}", random_u64() % 1_000_000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
        let (rabbit, postgres) = tokio::join!(
            RabbitMq::start(dir.join("rabbitmq")),
            Postgres::start(dir.join("postgres"))
        );
        Self {
            dir,
            rabbit,
            postgres,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.rabbit.kill_now();
        self.postgres.kill_now();
        if std::thread::panicking() || std::env::var_os("FAULTS_KEEP").is_some() {
            eprintln!(
                "services' folder kept for diagnosis: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills the services of earlier runs whose test process is gone (killed before it could
/// clean up) and removes their folders, so orphans never accumulate.
fn reap_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join("owner.pid")).unwrap_or_default();
        if Path::new(&format!("/proc/{}", owner.trim())).exists() && !owner.trim().is_empty() {
            continue;
        }
        for pid_file in [
            "rabbitmq/beam.pid",
            "rabbitmq/epmd.pid",
            "postgres/data/postmaster.pid",
        ] {
            if let Ok(text) = std::fs::read_to_string(dir.join(pid_file))
                && let Some(pid) = text.lines().next()
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A RabbitMQ node (beam) and its own epmd, on ports `port`, `port + 1` (distribution) and
/// `port + 2` (epmd).
pub struct RabbitMq {
    dir: PathBuf,
    pub port: u16,
    beam: Option<Child>,
    epmd: Option<Child>,
}

impl RabbitMq {
    async fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            "loopback_users = none\n\
             disk_free_limit.absolute = 50MB\n\
             log.console = false\n\
             log.file.level = warning\n",
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        // A port can be taken between the check and the bind: try a few.
        for _ in 0..3 {
            let port = free_port_run(3);
            let mut node = Self {
                dir: dir.clone(),
                port,
                beam: None,
                epmd: None,
            };
            node.spawn_epmd().await;
            if node.boot().await {
                return node;
            }
            node.kill_now();
            eprintln!("rabbitmq did not start on port {port}; trying another");
        }
        panic!(
            "rabbitmq did not start; its output:\n{}",
            tail(&dir.join("server.out"), 40)
        );
    }

    /// `amqp://` URL of the node, for the test's own connections.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Starts the node's own epmd and waits until it listens: a node that finds no epmd
    /// starts a daemonised one of its own, which would outlive the test.
    async fn spawn_epmd(&mut self) {
        let port = self.port + 2;
        let epmd = with_pdeathsig("/usr/bin/epmd")
            .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start epmd");
        std::fs::write(self.dir.join("epmd.pid"), epmd.id().unwrap().to_string()).unwrap();
        self.epmd = Some(epmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "epmd not listening on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the node and waits until it accepts AMQP connections; `false` if it exited.
    async fn boot(&mut self) -> bool {
        let dir = &self.dir;
        let port = self.port;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.out"))
            .unwrap();
        let beam = with_pdeathsig("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("contact-import-{port}@localhost"),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", (port + 1).to_string())
            .env("ERL_EPMD_PORT", (port + 2).to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
            // Replaces the script's shell with the VM (no signal-forwarding shell in between),
            // so the child we hold is beam itself and SIGTERM stops the node gracefully.
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start rabbitmq-server");
        std::fs::write(dir.join("beam.pid"), beam.id().unwrap().to_string()).unwrap();
        self.beam = Some(beam);
        let deadline = Instant::now() + SERVICE_WAIT;
        loop {
            if let Ok(connection) = crate::stream::connect(&self.url()).await {
                let closing = connection.close(200, "ready".into());
                let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
                return true;
            }
            if let Ok(Some(_)) = self.beam.as_mut().unwrap().try_wait() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq not accepting connections after {SERVICE_WAIT:?}:\n{}",
                tail(&dir.join("server.out"), 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the node gracefully (SIGTERM: connections are closed, queues written out) and
    /// waits for it to exit. Messages in its quorum queues survive.
    pub async fn stop(&mut self) {
        let mut beam = self.beam.take().expect("rabbitmq is running");
        signal(&beam, "TERM").await;
        tokio::time::timeout(SERVICE_WAIT, beam.wait())
            .await
            .expect("rabbitmq did not stop")
            .unwrap();
    }

    /// Starts the node again on the same ports with the same data.
    pub async fn start_again(&mut self) {
        assert!(self.beam.is_none(), "rabbitmq is already running");
        assert!(
            self.boot().await,
            "rabbitmq did not start again on port {}:\n{}",
            self.port,
            tail(&self.dir.join("server.out"), 40)
        );
    }

    /// Raises or clears a memory alarm: while it is raised the broker blocks every
    /// connection that publishes, as it does when a real node runs out of memory.
    pub async fn memory_alarm(&self, raised: bool) {
        let watermark = if raised { "0.000001" } else { "0.4" };
        self.rabbitmqctl(&["set_vm_memory_high_watermark", watermark])
            .await;
    }

    async fn rabbitmqctl(&self, args: &[&str]) {
        let output = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", &self.dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("contact-import-{}@localhost", self.port),
            )
            .env("ERL_EPMD_PORT", (self.port + 2).to_string())
            .args(args)
            .output()
            .await
            .expect("run rabbitmqctl");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn kill_now(&mut self) {
        for child in [self.beam.take(), self.epmd.take()].into_iter().flatten() {
            kill_and_reap(child, Duration::ZERO);
        }
    }
}

/// A PostgreSQL cluster owned by the `postgres` user when the tests run as root (it refuses
/// to run as root), with one database, `contact_import`.
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    postmaster: Option<Child>,
}

impl Postgres {
    async fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .await
                .unwrap();
            assert!(chown.success(), "chown postgres {}", dir.display());
        }
        let initdb = as_postgres(&format!("{}/initdb", pg_bin()))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .current_dir(&dir)
            .output()
            .await
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        for _ in 0..3 {
            let mut cluster = Self {
                dir: dir.clone(),
                port: free_port(),
                postmaster: None,
            };
            if cluster.boot().await {
                cluster
                    .admin()
                    .await
                    .batch_execute("CREATE DATABASE contact_import")
                    .await
                    .unwrap();
                return cluster;
            }
            eprintln!(
                "postgres did not start on port {}; trying another",
                cluster.port
            );
        }
        panic!(
            "postgres did not start:\n{}",
            tail(&dir.join("server.log"), 40)
        );
    }

    /// URL of the `contact_import` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/contact_import", self.port)
    }

    /// A connection to `contact_import` for the test's checks and fault injection.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url()).await.expect("connect to postgres")
    }

    async fn admin(&self) -> tokio_postgres::Client {
        connect(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .await
        .expect("connect to postgres")
    }

    async fn boot(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let postmaster = as_postgres(&format!("{}/postgres", pg_bin()))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start postgres");
        self.postmaster = Some(postmaster);
        let deadline = Instant::now() + SERVICE_WAIT;
        loop {
            if connect(&format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                self.port
            ))
            .await
            .is_ok()
            {
                return true;
            }
            if let Ok(Some(_)) = self.postmaster.as_mut().unwrap().try_wait() {
                self.postmaster = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "postgres not accepting connections after {SERVICE_WAIT:?}:\n{}",
                tail(&self.dir.join("server.log"), 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fast shutdown (SIGINT): sessions are terminated, open transactions roll back, then
    /// the server exits; waits for the exit.
    pub async fn stop(&mut self) {
        let mut postmaster = self.postmaster.take().expect("postgres is running");
        signal(&postmaster, "INT").await;
        tokio::time::timeout(SERVICE_WAIT, postmaster.wait())
            .await
            .expect("postgres did not stop")
            .unwrap();
    }

    /// Starts the server again on the same port with the same data.
    pub async fn start_again(&mut self) {
        assert!(self.postmaster.is_none(), "postgres is already running");
        assert!(
            self.boot().await,
            "postgres did not start again on port {}:\n{}",
            self.port,
            tail(&self.dir.join("server.log"), 40)
        );
    }

    fn kill_now(&mut self) {
        if let Some(postmaster) = self.postmaster.take() {
            // SIGQUIT: immediate shutdown, the postmaster takes its backends down with it.
            if let Some(pid) = postmaster.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-QUIT", &pid.to_string()])
                    .status();
            }
            kill_and_reap(postmaster, Duration::from_secs(3));
        }
    }
}

/// Gives a child `grace` to exit on its own (after a stop signal), then SIGKILLs it and
/// waits for the exit. Runs in `Drop`, so it blocks.
fn kill_and_reap(mut child: Child, grace: Duration) {
    let exited = |child: &mut Child| !matches!(child.try_wait(), Ok(None));
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if exited(&mut child) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.start_kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !exited(&mut child) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A command that dies with the test process (the kernel sends SIGKILL when its parent
/// thread exits), whatever happens to the test.
fn with_pdeathsig(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--", program]);
    command
}

/// As [`with_pdeathsig`], running as the `postgres` user when we are root.
fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL"]);
    if is_root() {
        command.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ]);
    }
    command.args(["--", program]);
    command
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

fn pg_bin() -> String {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql is installed (scripts/services up installs it)")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    format!(
        "/usr/lib/postgresql/{}/bin",
        versions.last().expect("a postgresql version")
    )
}
