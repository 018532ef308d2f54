//! Runs every sqllogictest file in `tests/slt/` against its own fresh Eddy server.
//!
//! Statements go over the simple query protocol and values come back in Postgres' text format
//! (NULL as `NULL`, the empty string as `(empty)`), so the expected results in the files are
//! what psql users see. Errors read `db error: ERROR: <message> (SQLSTATE <code>)`, so a file
//! can expect a class of error with `statement error 42P01` (or `statement error (42P01)`).
//!
//! Set `EDDY_SLT_FILTER` to a substring of a file name to run only the matching files.

use std::error::Error as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use eddy_tests::{TestServer, render};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One session with the server under test.
struct Eddy {
    client: Client,
}

impl Eddy {
    async fn connect(server: &TestServer) -> Result<Self, EddyError> {
        let client = server.client().await.map_err(|e| EddyError {
            message: format!("{e:#}"),
            sqlstate: None,
        })?;
        Ok(Eddy { client })
    }
}

/// A failed statement: the server's message and, for errors the server reported, its
/// SQLSTATE, which is part of the text so that inline error patterns can match it.
#[derive(Debug)]
struct EddyError {
    message: String,
    sqlstate: Option<String>,
}

impl fmt::Display for EddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for EddyError {}

impl From<tokio_postgres::Error> for EddyError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                let mut message = format!("db error: {}: {}", db.severity(), db.message());
                if let Some(detail) = db.detail() {
                    message.push_str(&format!(" DETAIL: {detail}"));
                }
                EddyError {
                    message,
                    sqlstate: Some(db.code().code().to_string()),
                }
            }
            None => {
                let mut message = e.to_string();
                let mut source = e.source();
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                EddyError {
                    message,
                    sqlstate: None,
                }
            }
        }
    }
}

#[async_trait]
impl AsyncDB for Eddy {
    type Error = EddyError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, EddyError> {
        let messages = self.client.simple_query(sql).await?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut affected = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(description) => {
                    columns = Some(description.len());
                }
                SimpleQueryMessage::Row(row) => {
                    rows.push((0..row.len()).map(|i| render(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(count) => affected = count,
                _ => {}
            }
        }
        Ok(match columns {
            // The simple query protocol does not say what type a column has; the files'
            // type letters document intent and are not checked.
            Some(width) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; width],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "eddy"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &EddyError) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// A file that takes longer than this is reported as hanging rather than blocking the suite.
const FILE_TIMEOUT: Duration = Duration::from_secs(300);

/// The `.slt` files to run, in name order.
fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let filter = std::env::var("EDDY_SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("reading a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains(filter.as_str()))
        })
        .collect();
    files.sort();
    files
}

/// Runs one file on a server of its own, so files cannot affect each other.
async fn run_file(path: &Path) -> Result<(), String> {
    let server = TestServer::start().await.map_err(|e| format!("{e:#}"))?;
    let server = &server;
    let mut runner = Runner::new(move || Eddy::connect(server));
    let result = runner.run_file_async(path).await.map_err(|e| {
        format!(
            "{}\nserver log tail:\n{}",
            e.display(false),
            server.log_tail()
        )
    });
    runner.shutdown_async().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqllogictest_files() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files to run");
    let outcomes = futures::future::join_all(files.iter().map(|path| async move {
        let outcome = tokio::time::timeout(FILE_TIMEOUT, run_file(path))
            .await
            .unwrap_or_else(|_| Err(format!("did not finish within {FILE_TIMEOUT:?}")));
        (path, outcome)
    }))
    .await;
    let failures: Vec<String> = outcomes
        .into_iter()
        .filter_map(|(path, outcome)| {
            outcome
                .err()
                .map(|error| format!("--- {} ---\n{error}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} sqllogictest files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
