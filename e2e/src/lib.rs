//! Test harness for end-to-end tests: a private database per test, broker processes on free
//! ports (killable with SIGKILL and restartable), CLI peers with their own config homes, and
//! protocol-level peers built on the CLI's client library. Binaries are taken from the cargo
//! target directory, so `cargo build --workspace --bins` must run first (the test script does).

pub mod agent;
pub mod web;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use plexus_client::{
    connection::{signed_hello, Connection, TlsOptions},
    profile::Profile,
    seal::SealTo,
};
use plexus_proto::{
    ops,
    types::{Cursor, Priority, SessionMode, SessionProfile, Target},
};
use serde_json::Value;
use uuid::Uuid;

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` first", p.display());
    p
}

/// Poll `check` until it returns `Some` or `timeout` passes.
pub async fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Harness-only setting (not broker configuration): the broker's open-file limit.
const NOFILE_ENV: &str = "PLEXUS_E2E_NOFILE";

/// A database of its own for one test, dropped afterwards.
pub struct TestDb {
    /// Connection URL of the test database.
    pub url: String,
    admin_url: String,
    name: String,
}

/// The test Redis URL.
pub fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/0".into())
}

/// Settings that make brokers one cluster over the test Redis, isolated by a fresh prefix.
pub fn cluster_env() -> Vec<(String, String)> {
    vec![
        ("PLEXUS_REDIS__URL".to_owned(), redis_url()),
        ("PLEXUS_REDIS__PREFIX".to_owned(), format!("plexus-test:{}:", Uuid::new_v4().simple())),
    ]
}

/// The admin URL (a role allowed to create databases).
pub fn admin_url() -> String {
    std::env::var("PLEXUS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://plexus@127.0.0.1:55432/plexus".into())
}

impl TestDb {
    /// Create a fresh, empty database.
    pub async fn create() -> TestDb {
        let admin_url = admin_url();
        let name = format!("plexus_t_{}", Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach test Postgres at {admin_url}: {e} (run scripts/test.sh)"));
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin_url.clone());
        TestDb { url: format!("{base}/{name}"), admin_url, name }
    }

    /// Run one query on the test database and return the first column of the first row.
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        client.query_one(sql, &[]).await.expect("query").get(0)
    }

    /// Run one statement on the test database.
    pub async fn execute(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect("execute");
    }

    /// The first column (bytea) of every row `sql` returns.
    pub async fn bytea_column(&self, sql: &str) -> Vec<Vec<u8>> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        client.query(sql, &[]).await.expect("query").iter().map(|r| r.get(0)).collect()
    }

    /// Tables holding `needle` anywhere in a row: as text, or as its bytes inside a binary
    /// column. What the broker (or anyone with its database) could read.
    pub async fn tables_containing(&self, needle: &str) -> Vec<String> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        let tables = client
            .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
            .await
            .expect("list tables");
        let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
        let mut found = Vec::new();
        for row in tables {
            let table: String = row.get(0);
            let sql = format!(
                "SELECT count(*) FROM \"{table}\" t WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $2 || '%'"
            );
            let n: i64 = client.query_one(&sql, &[&needle, &hex]).await.expect("search table").get(0);
            if n > 0 {
                found.push(table);
            }
        }
        found
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Best effort, off the test's runtime: the runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                        tokio::spawn(conn);
                        let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                });
            }
        })
        .join();
    }
}

/// A broker process.
pub struct Broker {
    child: Option<Child>,
    /// Port it listens on.
    pub port: u16,
    /// `ws://127.0.0.1:<port>`.
    pub url: String,
    env: Vec<(String, String)>,
    log: PathBuf,
}

/// GET a path from a local HTTP server; (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// `POST` `body` with extra headers to a local port; the status and body (`None` if nothing
/// answered).
pub fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let buf = String::from_utf8_lossy(&buf).into_owned();
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

impl Broker {
    /// Start a broker on a free port against `db` and wait until it is ready.
    pub async fn start(db: &TestDb) -> Broker {
        Broker::start_with(db, &[]).await
    }

    /// Start `n` brokers forming one cluster (shared database and Redis prefix).
    pub async fn cluster(db: &TestDb, n: usize) -> Vec<Broker> {
        Broker::cluster_with(db, n, &[]).await
    }

    /// Start `n` brokers forming one cluster, with extra settings.
    pub async fn cluster_with(db: &TestDb, n: usize, more: &[(&str, &str)]) -> Vec<Broker> {
        let mut env = cluster_env();
        env.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(Broker::start_with(db, &extra).await);
        }
        nodes
    }

    /// Start with extra `PLEXUS_*` settings.
    pub async fn start_with(db: &TestDb, extra: &[(&str, &str)]) -> Broker {
        let port = free_port();
        let mut env = vec![
            ("PLEXUS_DATABASE__URL".to_owned(), db.url.clone()),
            ("PLEXUS_HTTP__LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("PLEXUS_HTTP__WORKERS".to_owned(), "2".to_owned()),
            ("PLEXUS_DATABASE__POOL_SIZE".to_owned(), "8".to_owned()),
            ("PLEXUS_LOG__FILTER".to_owned(), "info".to_owned()),
        ];
        for (k, v) in extra {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let log = std::env::temp_dir().join(format!("plexus-broker-{port}-{}.log", Uuid::new_v4().simple()));
        let mut b = Broker { child: None, port, url: format!("ws://127.0.0.1:{port}"), env, log };
        b.spawn();
        b.wait_ready().await;
        b
    }

    /// Start with the process's open-file limit set to `nofile` (soft and hard).
    pub async fn start_with_open_files(db: &TestDb, nofile: u64) -> Broker {
        Broker::start_with(db, &[(NOFILE_ENV, &nofile.to_string())]).await
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("broker log");
        let mut command = match self.env.iter().find(|(k, _)| k == NOFILE_ENV) {
            Some((_, n)) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\"")).arg(bin("plexus-broker"));
                c
            }
            None => Command::new(bin("plexus-broker")),
        };
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn plexus-broker");
        self.child = Some(child);
    }

    /// Wait for `/ready`.
    pub async fn wait_ready(&mut self) {
        let port = self.port;
        let ok = wait_until(Duration::from_secs(30), || http_get(port, "/ready").filter(|(s, _)| *s == 200)).await;
        if ok.is_none() {
            panic!("broker on {port} not ready; log:\n{}", self.log_text());
        }
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the process and wait for it to drain and exit; returns whether it exited by
    /// itself, successfully, within `within`.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start the process again (after [`Broker::terminate`] or [`Broker::kill9`]).
    pub async fn start_again(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// Start again on the same port and database.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A CLI peer: its own config home.
pub struct Peer {
    /// `PLEXUS_HOME`.
    pub home: PathBuf,
}

impl Peer {
    /// A peer with an empty home.
    pub fn new(name: &str) -> Peer {
        let home = std::env::temp_dir().join(format!("plexus-peer-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&home).expect("peer home");
        Peer { home }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("plexus"));
        c.env("PLEXUS_HOME", &self.home).env_remove("PLEXUS_MESH").args(args);
        c
    }

    /// Run a CLI command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run plexus")
    }

    /// Run a CLI command with `--json`, expecting success; returns the parsed output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "plexus {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("plexus {args:?} printed non-JSON ({e}): {stdout}"))
    }

    /// Start a long-running CLI command (e.g. `inbox --follow --json`) whose stdout lines are
    /// collected as JSON values.
    pub fn spawn_json(&self, args: &[&str]) -> Follower {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn plexus");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(v);
                }
            }
        });
        Follower { child, stdin, lines }
    }

    /// Point this peer's profile at other broker URLs.
    pub fn set_brokers(&self, urls: &[&str]) {
        let mut p = self.profile();
        p.brokers = urls.iter().map(|u| (*u).to_owned()).collect();
        p.save(&self.home).expect("save profile");
    }

    /// The profile (keys, ids).
    pub fn profile(&self) -> Profile {
        Profile::load(&self.home, None).expect("peer profile")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A long-running CLI process and the JSON lines it printed.
pub struct Follower {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Follower {
    /// Lines printed so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Type a line into the process.
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Texts of the messages printed so far.
    pub fn texts(&self) -> Vec<String> {
        self.lines().iter().filter_map(|v| v.get("text").and_then(Value::as_str).map(str::to_owned)).collect()
    }

    /// Wait until a message with `text` was printed.
    pub async fn wait_text(&self, text: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.texts().iter().any(|t| t == text).then_some(())).await.is_some()
    }

    /// Wait until some line satisfies `pred`.
    pub async fn wait_line(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        wait_until(timeout, || self.lines().iter().any(&pred).then_some(())).await.is_some()
    }

    /// Wait for the process to exit by itself (e.g. `inbox --follow --count N`, which saves
    /// its cursor and acknowledges before exiting); false on timeout.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let child = &mut self.child;
        wait_until(timeout, || child.try_wait().ok().flatten().map(|_| ())).await.is_some()
    }

    /// The process id (to signal it, e.g. SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop the process.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A mesh made through the CLI: an owner and members who joined with invites.
pub struct Mesh {
    /// The owner (first) and members, in creation order.
    pub peers: Vec<Peer>,
}

impl Mesh {
    /// Create a mesh owned by `names[0]` on `broker` and join the others. The owner follows
    /// while they join, so every member receives the mesh key.
    pub async fn create(broker: &Broker, names: &[&str]) -> Mesh {
        let owner = Peer::new(names[0]);
        owner.json(&["mesh", "create", "testmesh", "--broker", &broker.url, "--display-name", names[0]]);
        let mut peers = vec![owner];
        if names.len() > 1 {
            let follower = peers[0].spawn_json(&["inbox", "--follow"]);
            for name in &names[1..] {
                let inv = peers[0].json(&["invite", "create"]);
                let code = inv["code"].as_str().expect("code").to_owned();
                let p = Peer::new(name);
                let joined = p.json(&["join", &code, "--broker", &broker.url, "--name", name, "--wait", "20"]);
                assert_eq!(joined["mesh_key"], Value::Bool(true), "{name} did not receive the mesh key");
                peers.push(p);
            }
            drop(follower);
        }
        Mesh { peers }
    }
}

/// A protocol-level session for a peer's member identity (own session id and key).
pub struct RawSession {
    /// The connection.
    pub conn: Connection,
    /// Session id.
    pub session_id: Uuid,
    /// Session key.
    pub key: plexus_crypto::BoxKeypair,
    /// Hello reply.
    pub welcome: ops::Welcome,
}

impl RawSession {
    /// Seal `text` to `to` and send it at `priority`.
    pub async fn send_at(
        &self,
        id: Uuid,
        target: Target,
        to: SealTo<'_>,
        text: &[u8],
        reply_to: Option<Uuid>,
        priority: Priority,
    ) -> Result<ops::Sent, plexus_client::connection::ClientError> {
        let (sealing, nonce, ciphertext) = plexus_client::seal::seal_for(to, &self.key, text).expect("seal");
        let send = ops::Send { id, target, priority, reply_to, subtype: None, sealing, nonce, ciphertext };
        self.conn.call(&send).await
    }

    /// Seal `text` to `to` with this session's key and send it at priority `now`.
    pub async fn send_sealed(
        &self,
        id: Uuid,
        target: Target,
        to: SealTo<'_>,
        text: &[u8],
        reply_to: Option<Uuid>,
    ) -> Result<ops::Sent, plexus_client::connection::ClientError> {
        self.send_at(id, target, to, text, reply_to, Priority::Now).await
    }
}

/// Open a raw connection (no hello).
pub async fn raw_connect(broker: &Broker) -> Connection {
    Connection::open(&broker.url, &TlsOptions::default()).await.expect("connect")
}

/// Open a session for `profile`'s member with a fresh (or given) session id.
pub async fn raw_session(
    broker_url: &str,
    profile: &Profile,
    session: Option<(Uuid, plexus_crypto::BoxKeypair)>,
    mode: SessionMode,
    cursor: Option<Cursor>,
    sp: SessionProfile,
) -> Result<RawSession, plexus_client::connection::ClientError> {
    let (session_id, key) =
        session.unwrap_or_else(|| (Uuid::new_v4(), plexus_crypto::BoxKeypair::generate().expect("key")));
    let conn = Connection::open(broker_url, &TlsOptions::default()).await?;
    let hello = signed_hello(profile, session_id, key.public_key(), mode, cursor, sp)?;
    let welcome = conn.call(&hello).await?;
    Ok(RawSession { conn, session_id, key, welcome })
}

/// Poll an async `check` until it returns `Some` or `timeout` passes.
pub async fn wait_until_async<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A session with a fresh id and the default profile, in `mode`.
pub async fn session_for(broker_url: &str, profile: &Profile, mode: SessionMode) -> RawSession {
    raw_session(broker_url, profile, None, mode, None, SessionProfile::default()).await.expect("session")
}

/// A Python with the official MCP SDK (`mcp` from PyPI, pinned), in a virtualenv under
/// `$HOME/.cache/plexus/mcp-venv`, created on first use.
pub fn mcp_python() -> PathBuf {
    static READY: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut ready = READY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = ready.as_ref() {
        return p.clone();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let venv =
        std::env::var_os("PLEXUS_MCP_VENV").map(PathBuf::from).unwrap_or_else(|| home.join(".cache/plexus/mcp-venv"));
    let python = venv.join("bin/python");
    let has_sdk = |py: &Path| {
        Command::new(py)
            .args(["-c", &format!("import mcp, importlib.metadata as m; assert m.version('mcp') == '{MCP_SDK}'")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_sdk(&python) {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 -m venv");
        assert!(made.success(), "could not create {}", venv.display());
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &format!("mcp=={MCP_SDK}")])
            .status()
            .expect("pip install mcp");
        assert!(pip.success(), "pip install mcp=={MCP_SDK} failed");
        assert!(has_sdk(&python), "the MCP SDK is still missing from {}", venv.display());
    }
    *ready = Some(python.clone());
    python
}

/// The MCP Python SDK version the agent-interface tests run against.
pub const MCP_SDK: &str = "1.30.0";

/// `e2e/mcp/client.py`.
pub fn mcp_client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp/client.py")
}

/// Progress of [`send_through_failures`].
#[derive(Default)]
pub struct SendProgress {
    /// Messages acknowledged so far (they are sent in order).
    pub acked: std::sync::atomic::AtomicUsize,
    /// Sends that were not acknowledged and went again (same id) on a new connection.
    pub retries: std::sync::atomic::AtomicUsize,
}

/// Send `n` durable messages `"{prefix}{i}"` from `from` to `to`'s member, in order, over
/// `urls` (the next one after each failure), resending an unacknowledged message with the same
/// id until it is acknowledged — what a client does through node failures. `pace` between
/// acknowledged sends.
pub async fn send_through_failures(
    urls: Vec<String>,
    from: Profile,
    to: Profile,
    n: usize,
    prefix: &str,
    pace: Duration,
    progress: Arc<SendProgress>,
) {
    use std::sync::atomic::Ordering;
    let to_key = to.member_key().expect("member key").public_key().to_vec();
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let (sid, key) = (Uuid::new_v4(), plexus_crypto::BoxKeypair::generate().expect("key"));
    let mut conn: Option<RawSession> = None;
    let mut next_url = 0usize;
    let mut i = 0;
    while i < n {
        let session = match conn.as_ref() {
            Some(s) => s,
            None => {
                let url = &urls[next_url % urls.len()];
                next_url += 1;
                match raw_session(
                    url,
                    &from,
                    Some((sid, key.clone())),
                    SessionMode::Control,
                    None,
                    SessionProfile::default(),
                )
                .await
                {
                    Ok(s) => conn.insert(s),
                    Err(_) => {
                        progress.retries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        let text = format!("{prefix}{i}");
        let priority = if i % 3 == 0 { Priority::Now } else { Priority::Next };
        let sent = session
            .send_at(ids[i], Target::Member(to.member_id), SealTo::Member(&to_key), text.as_bytes(), None, priority)
            .await;
        match sent {
            Ok(_) => {
                i += 1;
                progress.acked.store(i, Ordering::SeqCst);
                tokio::time::sleep(pace).await;
            }
            Err(e) if e.is_transient() || matches!(e, plexus_client::connection::ClientError::Remote { .. }) => {
                // Not acknowledged: resend the same id on a new connection.
                conn = None;
                progress.retries.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("send failed: {e}"),
        }
    }
}
