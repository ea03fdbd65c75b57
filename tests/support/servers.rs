//! Private servers for one test: a RabbitMQ node and a PostgreSQL cluster, each in a folder
//! of its own, on free loopback ports, so that a test can stop, kill and restart them, or
//! give them a TLS configuration, without disturbing anything else. The fault scenarios
//! (`tests/faults`) and the TLS tests (`tests/it/tls.rs`) start them.
//!
//! Both run from the Debian packages (`scripts/services` installs them) as direct children
//! of the test, started through `setpriv --pdeathsig KILL`: if the test process dies
//! without unwinding (a nextest timeout), the kernel kills them too. The owner of the
//! servers kills them when a test ends or panics, and [`reap_abandoned`] cleans up after a
//! run that could not.
//!
//! With TLS ([`RabbitMq::start_tls`], [`Postgres::start_tls`]) the servers accept nothing
//! else: RabbitMQ has only a TLS listener, and PostgreSQL's `pg_hba.conf` rejects every
//! TCP connection without TLS (the test's own checks then use its Unix socket).

use super::certs::Certs;
use super::database::connect;
use super::ports::{free_port, free_port_run};
use super::process::{signal, tail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a service gets to start or stop before the test gives up.
const SERVICE_WAIT: Duration = Duration::from_secs(90);

/// Kills the services of earlier runs whose test process is gone (killed before it could
/// clean up) and removes their folders, so orphans never accumulate. Each folder under
/// `base` holds `owner.pid` (the test process), `rabbitmq/` and `postgres/`.
pub fn reap_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join("owner.pid")).unwrap_or_default();
        if Path::new(&format!("/proc/{}", owner.trim())).exists() && !owner.trim().is_empty() {
            continue;
        }
        // A cluster's nodes each have a folder of their own, beside their shared epmd's.
        let subfolders = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        };
        let mut folders = subfolders(&dir);
        folders.extend(folders.clone().iter().flat_map(|f| subfolders(f)));
        let pid_files = folders.into_iter().flat_map(|folder| {
            ["beam.pid", "epmd.pid", "data/postmaster.pid"].map(|f| folder.join(f))
        });
        for pid_file in pid_files {
            if let Ok(text) = std::fs::read_to_string(&pid_file)
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

/// A RabbitMQ node (beam) on ports `port` and `port + 1` (distribution), with its own epmd
/// on `port + 2`, or, as a member of a [`RabbitCluster`], the cluster's.
pub struct RabbitMq {
    dir: PathBuf,
    /// The AMQP port: plain AMQP, or AMQP over TLS only (see [`RabbitMq::start_tls`]).
    pub port: u16,
    /// `contact-import-<port>@localhost`, or a cluster member's own name.
    pub node_name: String,
    /// The epmd this node registers with (its own, or its cluster's).
    epmd_port: u16,
    /// The CA that signed the node's certificate, when it listens with TLS.
    tls_ca: Option<PathBuf>,
    beam: Option<Child>,
    /// The node's own epmd; `None` for a cluster member.
    epmd: Option<Child>,
}

impl RabbitMq {
    /// A node with a plain AMQP listener.
    pub async fn start(dir: PathBuf) -> Self {
        Self::start_with(dir, None).await
    }

    /// A node whose only listener is AMQP over TLS (`amqps://`), presenting
    /// `certs.server_cert`. It asks for no client certificate.
    pub async fn start_tls(dir: PathBuf, certs: &Certs) -> Self {
        Self::start_with(dir, Some(certs)).await
    }

    async fn start_with(dir: PathBuf, tls: Option<&Certs>) -> Self {
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_random_exchange].\n").unwrap();
        // A port can be taken between the check and the bind: try a few.
        for _ in 0..3 {
            let port = free_port_run(3);
            std::fs::write(dir.join("rabbitmq.conf"), rabbitmq_conf(port, tls)).unwrap();
            let mut node = Self {
                dir: dir.clone(),
                port,
                node_name: format!("contact-import-{port}@localhost"),
                epmd_port: port + 2,
                tls_ca: tls.map(|certs| certs.ca.clone()),
                beam: None,
                epmd: None,
            };
            node.epmd = Some(spawn_epmd(&dir, node.epmd_port).await);
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

    /// A node of a [`RabbitCluster`] named `<name>@localhost`, registering with the
    /// cluster's epmd on `epmd_port`, with the cluster's Erlang `cookie`.
    async fn start_member(dir: PathBuf, name: &str, epmd_port: u16, cookie: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_random_exchange].\n").unwrap();
        // Erlang reads `$HOME/.erlang.cookie` and refuses one that others may read.
        let cookie_file = dir.join(".erlang.cookie");
        std::fs::write(&cookie_file, cookie).unwrap();
        std::fs::set_permissions(&cookie_file, std::fs::Permissions::from_mode(0o400)).unwrap();
        for _ in 0..3 {
            let port = free_port_run(2);
            std::fs::write(dir.join("rabbitmq.conf"), rabbitmq_conf(port, None)).unwrap();
            let mut node = Self {
                dir: dir.clone(),
                port,
                node_name: format!("{name}@localhost"),
                epmd_port,
                tls_ca: None,
                beam: None,
                epmd: None,
            };
            if node.boot().await {
                return node;
            }
            node.kill_now();
            eprintln!("{name} did not start on port {port}; trying another");
        }
        panic!(
            "{name} did not start; its output:\n{}",
            tail(&dir.join("server.out"), 40)
        );
    }

    /// Waits until the node accepts AMQP connections (after `start_app`).
    async fn wait_for_amqp(&self) {
        let deadline = Instant::now() + SERVICE_WAIT;
        loop {
            if let Ok(connection) = contact_import::broker::connect(&self.url(), "test").await {
                let closing = connection.close(200, "ready".into());
                let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not accepting connections after {SERVICE_WAIT:?}",
                self.node_name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// URL of the node, for the test's own connections: `amqp://` to `127.0.0.1`, or for a
    /// TLS node `amqps://` to `localhost` (the name its certificate is for), trusting the
    /// test's CA.
    pub fn url(&self) -> String {
        match &self.tls_ca {
            None => format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port),
            Some(ca) => self.tls_url("localhost", &format!("cacertfile={}", ca.display())),
        }
    }

    /// `amqps://guest:guest@<host>:<port>/%2f?<query>`.
    pub fn tls_url(&self, host: &str, query: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f?{query}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
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
        let mut command = with_pdeathsig("/usr/lib/rabbitmq/bin/rabbitmq-server");
        if self.tls_ca.is_none() {
            // With TLS the listeners are rabbitmq.conf's alone: these would add a plain one.
            command
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", port.to_string());
        }
        let beam = command
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node_name)
            .env("RABBITMQ_DIST_PORT", (port + 1).to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
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
            // For a TLS node this is a TLS handshake that verifies the node's certificate.
            if let Ok(connection) = contact_import::broker::connect(&self.url(), "test").await {
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

    /// Runs `rabbitmqctl` against this node, failing the test if it fails; its output.
    pub async fn rabbitmqctl(&self, args: &[&str]) -> String {
        self.try_rabbitmqctl(args)
            .await
            .unwrap_or_else(|problem| panic!("rabbitmqctl {args:?} failed: {problem}"))
    }

    /// Runs `rabbitmqctl` (or, with `tool`, another CLI such as `rabbitmq-queues`) against
    /// this node: its output, or why it failed.
    pub async fn try_rabbitmqctl(&self, args: &[&str]) -> Result<String, String> {
        self.try_cli("rabbitmqctl", args).await
    }

    /// Runs one of RabbitMQ's CLI tools (`rabbitmqctl`, `rabbitmq-queues`) against this node.
    pub async fn try_cli(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let output = Command::new(format!("/usr/lib/rabbitmq/bin/{tool}"))
            .env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node_name)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .args(args)
            .output()
            .await
            .map_err(|e| format!("running {tool}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        match output.status.success() {
            true => Ok(stdout),
            false => Err(format!(
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    }

    /// Whether the node's VM is running (it may be killed or stopped).
    pub fn is_running(&self) -> bool {
        self.beam.is_some()
    }

    /// Kills the node and its own epmd at once (SIGKILL) and waits for them to exit.
    pub fn kill_now(&mut self) {
        for child in [self.beam.take(), self.epmd.take()].into_iter().flatten() {
            kill_and_reap(child, Duration::ZERO);
        }
    }

    /// Kills the node's VM alone (SIGKILL, as when its machine dies), leaving any epmd
    /// running, so that [`RabbitMq::start_again`] can bring it back.
    pub fn kill_node(&mut self) {
        if let Some(beam) = self.beam.take() {
            kill_and_reap(beam, Duration::ZERO);
        }
    }
}

/// A RabbitMQ cluster on this host: `rabbitmq-server` nodes `rabbit-a@localhost`,
/// `rabbit-b@localhost`, … each with its own folder (`<dir>/rabbit-a`, …), AMQP and
/// distribution ports, sharing one Erlang cookie and ONE epmd (`<dir>/epmd`, on a free
/// port): nodes of a cluster find each other's distribution port through the epmd of the
/// host named in the node name, so they must register with the same one. The first node
/// starts alone; the others `stop_app`, `join_cluster` it and `start_app`.
pub struct RabbitCluster {
    nodes: Vec<RabbitMq>,
    epmd: Option<Child>,
}

impl RabbitCluster {
    /// Starts `size` nodes (concurrently) and joins them into one cluster.
    pub async fn start(dir: PathBuf, size: usize) -> Self {
        assert!((1..=26).contains(&size), "1 to 26 nodes");
        let epmd_dir = dir.join("epmd");
        std::fs::create_dir_all(&epmd_dir).unwrap();
        let epmd_port = free_port();
        let epmd = spawn_epmd(&epmd_dir, epmd_port).await;
        let cookie = format!("CONTACTIMPORT{}", super::ports::random_u64());
        let booting: Vec<_> = (0..size)
            .map(|i| {
                let name = format!("rabbit-{}", (b'a' + i as u8) as char);
                let node_dir = dir.join(&name);
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    RabbitMq::start_member(node_dir, &name, epmd_port, &cookie).await
                })
            })
            .collect();
        let mut nodes = Vec::with_capacity(size);
        for node in booting {
            nodes.push(node.await.expect("a node started"));
        }
        let cluster = Self {
            nodes,
            epmd: Some(epmd),
        };
        let first = cluster.nodes[0].node_name.clone();
        for node in &cluster.nodes[1..] {
            node.rabbitmqctl(&["stop_app"]).await;
            node.rabbitmqctl(&["join_cluster", &first]).await;
            node.rabbitmqctl(&["start_app"]).await;
        }
        for node in &cluster.nodes {
            node.wait_for_amqp().await;
        }
        let status = cluster.nodes[0]
            .rabbitmqctl(&["cluster_status", "--formatter", "json"])
            .await;
        for node in &cluster.nodes {
            assert!(
                status.contains(&node.node_name),
                "{} is not in the cluster: {status}",
                node.node_name
            );
        }
        cluster
    }

    /// One standalone node (with its own epmd) seen as a cluster of one.
    pub fn single(node: RabbitMq) -> Self {
        Self {
            nodes: vec![node],
            epmd: None,
        }
    }

    /// A node that is running, if any.
    pub fn running_node(&self) -> Option<&RabbitMq> {
        self.nodes.iter().find(|n| n.is_running())
    }

    /// Every node's URL, comma-separated: an `AMQP_URL` for the whole cluster.
    pub fn url_list(&self) -> String {
        self.nodes
            .iter()
            .map(RabbitMq::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URLs of the running nodes, comma-separated.
    pub fn running_url_list(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RabbitMq::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &RabbitMq {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut RabbitMq {
        &mut self.nodes[i]
    }

    /// Which node listens on AMQP port `port`.
    pub fn node_with_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// A running node to ask about the cluster.
    fn any_running(&self) -> &RabbitMq {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node")
    }

    /// The node that the connection whose client-provided name is `name` is connected to
    /// (the server port of its `name`, `client -> server`, says which), if there is one.
    pub async fn node_of_connection(&self, name: &str) -> Option<usize> {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let Ok(listing) = node
                .try_rabbitmqctl(&[
                    "list_connections",
                    "--no-table-headers",
                    "--quiet",
                    "name",
                    "client_properties",
                ])
                .await
            else {
                continue;
            };
            let server_port = listing
                .lines()
                .filter(|line| line.contains(&format!("\"{name}\"")))
                .find_map(|line| {
                    let server = line.split("->").nth(1)?.split_whitespace().next()?;
                    server.rsplit(':').next()?.parse().ok()
                });
            if let Some(port) = server_port {
                return self.node_with_port(port);
            }
        }
        None
    }

    /// The node that leads quorum queue `queue` (`rabbitmqctl list_queues name leader`), if
    /// it has a leader.
    pub async fn leader_of(&self, queue: &str) -> Option<usize> {
        self.leaders().await.remove(queue)
    }

    /// The node that leads each queue that has a leader, by queue name, in one
    /// `rabbitmqctl list_queues name leader`.
    pub async fn leaders(&self) -> std::collections::BTreeMap<String, usize> {
        let Ok(listing) = self
            .any_running()
            .try_rabbitmqctl(&[
                "list_queues",
                "--no-table-headers",
                "--quiet",
                "name",
                "leader",
            ])
            .await
        else {
            return Default::default();
        };
        listing
            .lines()
            .filter_map(|line| {
                let mut columns = line.split('\t');
                let queue = columns.next()?;
                let leader = columns.next()?.trim();
                let node = self.nodes.iter().position(|n| n.node_name == leader)?;
                Some((queue.to_owned(), node))
            })
            .collect()
    }

    /// Kills every node and the epmd.
    pub fn kill_now(&mut self) {
        for node in &mut self.nodes {
            node.kill_now();
        }
        if let Some(epmd) = self.epmd.take() {
            kill_and_reap(epmd, Duration::ZERO);
        }
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Starts an epmd on `port` and waits until it listens: a node that finds no epmd starts a
/// daemonised one of its own, which would outlive the test. Its pid goes to
/// `dir/epmd.pid` (for [`reap_abandoned`]).
async fn spawn_epmd(dir: &Path, port: u16) -> Child {
    let epmd = with_pdeathsig("/usr/bin/epmd")
        .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start epmd");
    std::fs::write(dir.join("epmd.pid"), epmd.id().unwrap().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "epmd not listening on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    epmd
}

/// The node's configuration: plain AMQP on the port from the environment, or only AMQP over
/// TLS on `port` (RabbitMQ's TLS guide: `listeners.ssl`, `ssl_options`).
fn rabbitmq_conf(port: u16, tls: Option<&Certs>) -> String {
    let mut conf = String::from(
        "loopback_users = none\n\
         disk_free_limit.absolute = 50MB\n\
         log.console = false\n\
         log.file.level = warning\n",
    );
    if let Some(certs) = tls {
        conf.push_str(&format!(
            "listeners.tcp = none\n\
             listeners.ssl.1 = 127.0.0.1:{port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            certs.ca.display(),
            certs.server_cert.display(),
            certs.server_key.display(),
        ));
    }
    conf
}

/// A PostgreSQL cluster owned by the `postgres` user when the tests run as root (it refuses
/// to run as root), with one database, `contact_import`.
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate, when it takes only TLS over TCP.
    tls_ca: Option<PathBuf>,
    postmaster: Option<Child>,
}

impl Postgres {
    /// A cluster that listens on TCP without TLS.
    pub async fn start(dir: PathBuf) -> Self {
        Self::start_with(dir, None).await
    }

    /// A cluster with `ssl = on`, presenting `certs.server_cert`, whose `pg_hba.conf`
    /// rejects every TCP connection without TLS (`hostnossl … reject`) and trusts those with
    /// it; the Unix socket (the test's own connections) stays open.
    pub async fn start_tls(dir: PathBuf, certs: &Certs) -> Self {
        Self::start_with(dir, Some(certs)).await
    }

    async fn start_with(dir: PathBuf, tls: Option<&Certs>) -> Self {
        own_dir(&dir).await;
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
        if let Some(certs) = tls {
            configure_tls(&dir.join("data"), certs).await;
        }
        let cluster = Self::boot_on_a_free_port(dir, tls.map(|certs| certs.ca.clone())).await;
        cluster
            .admin()
            .await
            .batch_execute("CREATE DATABASE contact_import")
            .await
            .unwrap();
        cluster
    }

    /// Starts the server of `dir` on a free port, trying another when one is taken meanwhile.
    async fn boot_on_a_free_port(dir: PathBuf, tls_ca: Option<PathBuf>) -> Self {
        for _ in 0..3 {
            let mut server = Self {
                dir: dir.clone(),
                port: free_port(),
                tls_ca: tls_ca.clone(),
                postmaster: None,
            };
            if server.boot().await {
                return server;
            }
            eprintln!(
                "postgres did not start on port {}; trying another",
                server.port
            );
        }
        panic!(
            "postgres did not start:\n{}",
            tail(&dir.join("server.log"), 40)
        );
    }

    /// URL of the `contact_import` database, for the worker: to `127.0.0.1`, or for a TLS
    /// cluster to `localhost` (the name its certificate is for) with `sslmode=verify-full`
    /// and the test's CA.
    pub fn url(&self) -> String {
        match &self.tls_ca {
            None => format!("postgres://postgres@127.0.0.1:{}/contact_import", self.port),
            Some(ca) => self.url_at(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
            ),
        }
    }

    /// `postgres://postgres@<host>:<port>/contact_import?<query>`.
    pub fn url_at(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/contact_import?{query}",
            self.port
        )
    }

    /// A connection to `contact_import` for the test's checks and fault injection (over the
    /// Unix socket for a TLS cluster: the test's checks do not depend on the TLS under test).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.own_conninfo("contact_import"))
            .await
            .expect("connect to postgres")
    }

    async fn admin(&self) -> tokio_postgres::Client {
        connect(&self.own_conninfo("postgres"))
            .await
            .expect("connect to postgres")
    }

    /// How the test itself connects to `database`.
    fn own_conninfo(&self, database: &str) -> String {
        match &self.tls_ca {
            None => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
            Some(_) => format!(
                "host={} port={} user=postgres dbname={database}",
                self.dir.display(),
                self.port
            ),
        }
    }

    async fn boot(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let mut command = as_postgres(&format!("{}/postgres", pg_bin()));
        if self.tls_ca.is_some() {
            command.args([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
        }
        let postmaster = command
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
            if connect(&self.own_conninfo("postgres")).await.is_ok() {
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

    /// Whether the server's log (`<dir>/server.log`, its stderr: warnings and errors of
    /// every session, e.g. a cancelled wait for synchronous replication) contains `text`.
    pub fn log_contains(&self, text: &str) -> bool {
        std::fs::read_to_string(self.dir.join("server.log")).is_ok_and(|log| log.contains(text))
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

    /// A streaming standby of this server in `dir`, made as operators make one:
    /// `pg_basebackup -R` (which writes `standby.signal` and `primary_conninfo`), started on
    /// a port of its own. It streams from `via` (this server's port, or a proxy's in front
    /// of it), serves reads and replays the primary's WAL until promoted.
    pub async fn start_standby(&self, dir: PathBuf, via: u16) -> Self {
        assert!(
            self.tls_ca.is_none(),
            "a standby of a TLS server is not needed yet"
        );
        own_dir(&dir).await;
        let backup = as_postgres(&format!("{}/pg_basebackup", pg_bin()))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={via} user=postgres application_name=standby"
            ))
            .current_dir(&dir)
            .output()
            .await
            .expect("run pg_basebackup");
        assert!(
            backup.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        Self::boot_on_a_free_port(dir, None).await
    }

    /// Makes every commit wait until a standby has it (`synchronous_standby_names = '*'`,
    /// `synchronous_commit = on`), then waits until one streams synchronously.
    pub async fn require_synchronous_standby(&self) {
        let admin = self.admin().await;
        // One statement each: ALTER SYSTEM refuses to run in a transaction block.
        for statement in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "ALTER SYSTEM SET synchronous_commit = on",
            "SELECT pg_reload_conf()",
        ] {
            admin.batch_execute(statement).await.unwrap();
        }
        self.wait_for_a_row(
            "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
            "no standby became synchronous",
        )
        .await;
    }

    /// Waits until a standby has replayed everything this primary has written so far.
    pub async fn wait_for_standby_replay(&self) {
        self.wait_for_a_row(
            "SELECT 1 FROM pg_stat_replication WHERE replay_lsn >= pg_current_wal_lsn()",
            "the standby did not catch up",
        )
        .await;
    }

    /// Polls `query` (on the `postgres` database) until it returns a row, failing with
    /// `what` after [`SERVICE_WAIT`].
    async fn wait_for_a_row(&self, query: &str, what: &str) {
        let admin = self.admin().await;
        let deadline = Instant::now() + SERVICE_WAIT;
        while admin.query(query, &[]).await.unwrap().is_empty() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Promotes a standby to primary (`pg_promote`, waiting until it accepts writes).
    pub async fn promote(&self) {
        let promoted: bool = self
            .admin()
            .await
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(promoted, "the standby was not promoted within 60 s");
    }

    /// SIGKILL to the postmaster alone, as when its machine dies: no shutdown checkpoint,
    /// no goodbye to clients or standbys (its backends exit once they see it gone).
    pub fn kill_9(&mut self) {
        if let Some(postmaster) = self.postmaster.take() {
            kill_and_reap(postmaster, Duration::ZERO);
        }
    }

    /// Immediate shutdown (SIGQUIT, then SIGKILL after 3 s); waits for the exit.
    pub fn kill_now(&mut self) {
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

/// The server's certificate and key in the data folder (the key private to the `postgres`
/// user, as PostgreSQL demands), and a `pg_hba.conf` that takes TCP connections only with
/// TLS.
async fn configure_tls(data: &Path, certs: &Certs) {
    use std::os::unix::fs::PermissionsExt;
    for (from, to, mode) in [
        (&certs.server_cert, "server.crt", 0o644),
        (&certs.server_key, "server.key", 0o600),
    ] {
        let to = data.join(to);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&to)
                .status()
                .await
                .unwrap();
            assert!(chown.success(), "chown postgres {}", to.display());
        }
    }
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostnossl all all all reject\n\
         hostssl all all all trust\n",
    )
    .unwrap();
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

/// Creates `dir` for a PostgreSQL cluster, owned by the `postgres` user when we are root
/// (PostgreSQL refuses to run as root).
async fn own_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    if is_root() {
        let chown = Command::new("chown")
            .arg("postgres:")
            .arg(dir)
            .status()
            .await
            .unwrap();
        assert!(chown.success(), "chown postgres {}", dir.display());
    }
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
