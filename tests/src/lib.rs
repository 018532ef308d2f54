//! End-to-end test support for Eddy.
//!
//! The suites in `tests/tests/` talk to a real `eddy` process over the Postgres wire protocol,
//! exactly as users and tools do, so they exercise the whole stack: pgwire, planning, the
//! dataflow, durability and recovery. This crate gives them what they share:
//!
//! - [`TestServer`] starts a server on a free port with its own data directory, hands out
//!   connected clients, and stops it cleanly (SIGTERM), crashes it (SIGKILL) or restarts it on
//!   the same data.
//! - [`query_rows`], [`sorted_rows`] and [`execute`] run SQL over the simple query protocol and
//!   return results in Postgres' text format, and [`compare_rows`] compares two results the way
//!   the correctness oracle needs (as multisets, floats within a relative tolerance).
//!
//! The server binary is taken from `EDDY_BIN` when set; otherwise it is `eddy-under-test`, the
//! `eddy` command built by cargo as this package's binary before any suite runs, so a suite
//! never runs against a stale build.

pub mod kafka;
pub mod nexmark;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long a server may take to accept connections, including recovery of its data.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of the server log a failing test prints.
const LOG_TAIL_LINES: usize = 80;

/// An `eddy` server process owned by a test.
///
/// The server lives in a home directory that holds its data directory (`data/`) and its log
/// (`eddy.log`, appended to across restarts). The process is killed when the value is dropped;
/// if that happens while a test is panicking, the tail of the log is printed so the failure can
/// be diagnosed from the test output alone.
pub struct TestServer {
    child: Option<Child>,
    port: u16,
    http_port: u16,
    home: PathBuf,
    /// Flags given to the server besides its addresses and data directory.
    args: Vec<String>,
    /// Keeps a temporary home alive for as long as the server; declared last so the directory
    /// is removed only after the process is gone.
    _temp: Option<TempDir>,
    /// Environment variables of the server's later starts.
    env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server on a fresh temporary home, removed when the server is dropped.
    pub async fn start() -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("eddy-test-")
            .tempdir()
            .context("creating a temporary directory for the server")?;
        Self::launch(temp.path().to_path_buf(), Some(temp), vec![]).await
    }

    /// Starts a server in `home` (created if needed), reusing whatever data a previous server
    /// left there. The caller owns the directory.
    pub async fn start_in(home: impl Into<PathBuf>) -> Result<Self> {
        Self::launch(home.into(), None, vec![]).await
    }

    /// Starts a server in `home` with more flags (`--auth scram-sha-256`, say), kept across
    /// restarts.
    pub async fn start_with(home: impl Into<PathBuf>, args: &[&str]) -> Result<Self> {
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::launch(home.into(), None, args).await
    }

    async fn launch(home: PathBuf, temp: Option<TempDir>, args: Vec<String>) -> Result<Self> {
        let mut server = TestServer {
            child: None,
            port: 0,
            http_port: 0,
            home,
            args,
            _temp: temp,
            env: Vec::new(),
        };
        server.boot().await?;
        Ok(server)
    }

    /// Starts the process on a free port and waits until it accepts connections. A port
    /// found free can be taken by another test's server before this one binds it: then the
    /// server exits at once, and it is started again on other ports.
    async fn boot(&mut self) -> Result<()> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.boot_once().await {
                Err(e) if attempts < 5 && self.current_log().contains("Address already in use") => {
                    eprintln!("retrying the server's start on other ports: {e}");
                }
                done => return done,
            }
        }
    }

    async fn boot_once(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.home)
            .with_context(|| format!("creating {}", self.home.display()))?;
        let binary = tokio::task::spawn_blocking(server_binary).await??;
        let port = free_port()?;
        let http_port = free_port()?;

        let mut command = Command::new(&binary);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if std::env::var_os("EDDY_TEST_LOG").is_none() {
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .with_context(|| format!("opening {}", self.log_path().display()))?;
            writeln!(log, "=== starting {} on port {port}", binary.display())?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        self.port = port;
        self.http_port = http_port;
        self.wait_until_ready().await
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().context("the server is not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "eddy exited during start-up ({status}); log tail:\n{}",
                    self.log_tail()
                );
            }
            // Something answering on the port is this server only once it says it listens
            // (another test's server may have taken the port first); with the log elsewhere
            // or filtered, an answer has to do.
            let own = std::env::var_os("EDDY_TEST_LOG").is_some()
                || std::env::var_os("RUST_LOG").is_some()
                || self.current_log().contains("listening");
            if own
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "eddy did not accept connections on port {} within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The port the server listens on (it changes on restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the server's HTTP endpoint (`/metrics`, `/healthz`).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// A GET on the server's HTTP endpoint: the status and the body.
    pub async fn http_get(&self, path: &str) -> Result<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut response = agent
                .get(&url)
                .call()
                .with_context(|| format!("GET {url}"))?;
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string()?;
            Ok((status, body))
        })
        .await?
    }

    /// The directory that holds the server's data and log.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The `--data-dir` the server runs with.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Where the server's stdout and stderr go (unless `EDDY_TEST_LOG` is set, in which case
    /// they are inherited by the test process).
    pub fn log_path(&self) -> PathBuf {
        self.home.join("eddy.log")
    }

    /// A client connected to database `eddy`.
    pub async fn client(&self) -> Result<Client> {
        self.client_for("eddy").await
    }

    /// A client connected to the named database (Eddy also answers to `postgres`).
    pub async fn client_for(&self, dbname: &str) -> Result<Client> {
        self.connect(dbname, "eddy_test", None).await
    }

    /// A client of database `eddy` logged in as `user` (trust authentication).
    pub async fn client_as(&self, user: &str) -> Result<Client> {
        self.connect("eddy", user, None).await
    }

    /// A client whose NOTICE messages arrive on the returned channel.
    pub async fn client_with_notices(
        &self,
    ) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<String>)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Ok((self.connect("eddy", "eddy_test", Some(tx)).await?, rx))
    }

    async fn connect(
        &self,
        dbname: &str,
        user: &str,
        notices: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> Result<Client> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(10));
        let (client, mut connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to eddy on port {}", self.port))?;
        // The connection task ends with an error when a test kills the server; the client's
        // pending and later calls report that, so the task itself has nothing to add.
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let (tokio_postgres::AsyncMessage::Notice(n), Some(tx)) = (&message, &notices) {
                    let _ = tx.send(n.message().to_string());
                }
            }
        });
        Ok(client)
    }

    /// Crashes the server with SIGKILL and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait()?.is_none() {
                child.kill().context("sending SIGKILL to eddy")?;
            }
            child.wait().context("waiting for eddy to exit")?;
        }
        Ok(())
    }

    /// Asks the server to shut down with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let child = self.child.as_mut().context("the server is not running")?;
        let signal = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        ensure!(
            signal.success(),
            "kill -TERM {} failed: {signal}",
            child.id()
        );

        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let child = self.child.as_mut().context("the server is not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill()?;
                bail!("eddy did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same home after [`stop`](Self::stop) or
    /// [`kill`](Self::kill). It gets a fresh port, so clients must reconnect.
    pub async fn restart(&mut self) -> Result<()> {
        ensure!(
            self.child.is_none(),
            "stop or kill the server before restarting it"
        );
        self.boot().await
    }

    /// Sets (or with None removes) an environment variable of the server's later starts.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.into(), value.into()));
        }
    }

    /// The log of the server's latest start.
    fn current_log(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        match log.rfind("=== starting") {
            Some(i) => log[i..].to_string(),
            None => log,
        }
    }

    /// The last lines of the server log, for error messages.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(_) => "(no log file; EDDY_TEST_LOG sends the log to the test's stderr)".into(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- eddy log tail ({}) ---\n{}\n--- end of eddy log ---",
                self.log_path().display(),
                self.log_tail()
            );
        }
    }
}

/// A port that is free right now: bind port 0 and let the OS choose.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The `eddy` binary to test, built at most once per test process.
pub fn server_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn locate_or_build() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("EDDY_BIN") {
        let path = PathBuf::from(path);
        ensure!(path.is_file(), "EDDY_BIN={} is not a file", path.display());
        return Ok(path);
    }
    // Test executables live in <target-dir>/<profile>/deps, binaries (the benchmark) in
    // <target-dir>/<profile>; cargo builds this package's binaries, the server among them,
    // into <profile> before it runs an integration test.
    let exe = std::env::current_exe().context("locating the test executable")?;
    let name = format!("eddy-under-test{}", std::env::consts::EXE_SUFFIX);
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "{name} is not in {candidates:?}: build it with cargo (cargo test builds it), \
                 or set EDDY_BIN to an eddy binary"
            )
        })
}

/// A value as the suites write it: Postgres' text format, with `NULL` for null and `(empty)`
/// for the empty string (the sqllogictest conventions, so a blank never hides a value).
pub fn render(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(text) => text.to_string(),
    }
}

/// Runs `sql` over the simple query protocol and returns the rows of its results, rendered
/// with [`render`], in the order the server sent them.
pub async fn query_rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .with_context(|| format!("running `{sql}`"))?;
    Ok(messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| render(row.get(i))).collect())
            }
            _ => None,
        })
        .collect())
}

/// [`query_rows`], sorted: for comparing results whose order SQL leaves open.
pub async fn sorted_rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = query_rows(client, sql).await?;
    rows.sort();
    Ok(rows)
}

/// Runs one statement over the simple query protocol and returns the number of rows it
/// affected, as its command tag reports.
pub async fn execute(client: &Client, sql: &str) -> Result<u64> {
    let messages = client
        .simple_query(sql)
        .await
        .with_context(|| format!("running `{sql}`"))?;
    Ok(messages
        .iter()
        .rev()
        .find_map(|message| match message {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
        .unwrap_or(0))
}

/// Relative tolerance for comparing floating-point results: an incrementally maintained
/// `avg` or float `sum` may round differently from the same aggregate computed in one pass.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// Whether two rendered values are equal, numbers within [`FLOAT_TOLERANCE`].
pub fn values_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
            (x - y).abs() <= FLOAT_TOLERANCE * x.abs().max(y.abs()).max(1.0)
        }
        _ => false,
    }
}

fn rows_match(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_match(x, y))
}

/// Compares two results as multisets of rows (both sorted, as [`sorted_rows`] returns them).
/// On a mismatch the error lists the rows only one side has.
pub fn compare_rows(
    actual: &[Vec<String>],
    expected: &[Vec<String>],
) -> std::result::Result<(), String> {
    if actual.len() == expected.len() && actual.iter().zip(expected).all(|(a, e)| rows_match(a, e))
    {
        return Ok(());
    }
    // Slow path, only to explain the difference: pair rows up regardless of order.
    let mut missing: Vec<&Vec<String>> = expected.iter().collect();
    let mut unexpected = Vec::new();
    for row in actual {
        match missing.iter().position(|e| rows_match(row, e)) {
            Some(i) => {
                missing.remove(i);
            }
            None => unexpected.push(row),
        }
    }
    let show = |rows: &[&Vec<String>]| {
        let mut text: Vec<String> = rows.iter().take(20).map(|r| r.join(" | ")).collect();
        if rows.len() > 20 {
            text.push(format!("... and {} more", rows.len() - 20));
        }
        text.join("\n  ")
    };
    Err(format!(
        "{} rows vs {} expected\nrows present but not expected ({}):\n  {}\nrows expected but missing ({}):\n  {}",
        actual.len(),
        expected.len(),
        unexpected.len(),
        show(&unexpected),
        missing.len(),
        show(&missing),
    ))
}

/// Polls a query that returns one value until it returns `expected`, for results that a
/// source fills in on its own time; fails with the last value seen after `timeout`.
pub async fn wait_for_value(
    client: &Client,
    sql: &str,
    expected: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = query_rows(client, sql).await?;
        let value = rows.first().and_then(|r| r.first()).cloned();
        if value.as_deref() == Some(expected) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("`{sql}` gave {value:?}, not {expected:?}, within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the machine's PostgreSQL (127.0.0.1:5432, database `test`), the real target
/// of the sink suites. `EDDY_TEST_PG` overrides the connection string.
pub async fn postgres_client() -> Result<Client> {
    let url = std::env::var("EDDY_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_string());
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({url})"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The URL form of [`postgres_client`]'s server, as a sink's `url` option takes it.
pub fn postgres_url() -> String {
    std::env::var("EDDY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A name no other test run uses, for objects in shared external systems.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>())
}

/// Polls until two queries (each on its own client) return the same rows, compared as
/// [`compare_rows`] does; fails with the difference after `timeout`.
pub async fn wait_for_same_rows(
    left: (&Client, &str),
    right: (&Client, &str),
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = sorted_rows(left.0, left.1).await?;
        let b = sorted_rows(right.0, right.1).await?;
        match compare_rows(&b, &a) {
            Ok(()) => return Ok(()),
            Err(diff) if Instant::now() > deadline => {
                bail!("`{}` and `{}` still differ: {diff}", right.1, left.1)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The objects the compatibility suites look at: one of each kind, with a primary key, a NOT NULL
/// column and a sized varchar.
pub const CATALOG_OBJECTS: &str = "\
    CREATE STREAM clicks (user_id BIGINT NOT NULL, url VARCHAR(200), ts TIMESTAMP);\
    CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(10,2));\
    CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id;\
    CREATE VIEW heavy AS SELECT user_id, n FROM per_user WHERE n > 1;\
    INSERT INTO users VALUES (1, 'ann', 9.50), (2, 'bob', 20);\
    INSERT INTO clicks VALUES (1, '/a', '2026-01-01 00:00:00'), (1, '/b', '2026-01-01 00:00:01'), (2, '/c', '2026-01-01 00:00:02');";

/// How far a stream fed by a replayable source (Nexmark, rate) has read, as committed.
pub async fn source_offset(client: &Client, stream: &str) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT source_offset FROM eddy_catalog.progress WHERE relation = $1",
            &[&stream],
        )
        .await?;
    Ok(row.get::<_, Option<i64>>(0).unwrap_or(0))
}

/// Waits (two minutes at most) until a stream's source has read `rows` rows.
pub async fn wait_for_source_offset(client: &Client, stream: &str, rows: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let at = source_offset(client, stream).await?;
        if at >= rows {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the source of {stream} stopped at {at} of {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each statement and checks that it fails with its SQLSTATE.
pub async fn expect_sqlstates(
    client: &Client,
    cases: &[(&str, tokio_postgres::error::SqlState)],
) -> Result<()> {
    for (sql, state) in cases {
        let got = match client.batch_execute(sql).await {
            Ok(()) => bail!("{sql}: succeeded, expected {state:?}"),
            Err(e) => e.code().cloned(),
        };
        ensure!(
            got.as_ref() == Some(state),
            "{sql}: {got:?}, expected {state:?}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[[&str; 2]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect())
            .collect()
    }

    #[test]
    fn values_render_like_sqllogictest() {
        assert_eq!(render(None), "NULL");
        assert_eq!(render(Some("")), "(empty)");
        assert_eq!(render(Some("t")), "t");
    }

    #[test]
    fn floats_compare_with_tolerance_and_text_exactly() {
        assert!(values_match("16.666666666666668", "16.666666666666664"));
        assert!(values_match("20", "20.000000000000004"));
        assert!(!values_match("20", "20.1"));
        assert!(!values_match("NULL", "0"));
        assert!(!values_match("a", "b"));
    }

    #[test]
    fn compare_rows_reports_both_sides() {
        let a = rows(&[["1", "x"], ["2", "y"]]);
        assert_eq!(compare_rows(&a, &a), Ok(()));
        let b = rows(&[["1", "x"], ["3", "z"]]);
        let diff = compare_rows(&a, &b).unwrap_err();
        assert!(diff.contains("2 | y"), "{diff}");
        assert!(diff.contains("3 | z"), "{diff}");
    }
}
