//! Real client drivers against a running Eddy: psycopg 3 and psycopg2 (text and binary
//! parameters), asyncpg (prepared statements, type introspection), SQLAlchemy's `inspect()`
//! (`tests/python/drivers.py`), node-postgres (`tests/node/drivers.cjs`), pgjdbc's
//! DatabaseMetaData (`tests/java/JdbcMetadata.java`) and psqlODBC's catalog functions, the
//! path of Tableau and other ODBC tools (`tests/python/odbc.py`). `.ci/tools` installs them.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use eddy_tests::{CATALOG_OBJECTS, TestServer};

/// Where `.ci/tools` installs the drivers: `EDDY_TOOLS`, by default `~/.cache/eddy-tools`.
fn tools() -> Result<PathBuf> {
    std::env::var("EDDY_TOOLS")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/eddy-tools")))
        .context("neither EDDY_TOOLS nor HOME is set")
}

/// A path that must exist, or the script that installs it.
fn installed(path: PathBuf, by: &str) -> Result<PathBuf> {
    ensure!(
        path.exists(),
        "{} is missing: run `bash .ci/{by}` to install it",
        path.display()
    );
    Ok(path)
}

/// The virtualenv's python: `EDDY_PYTHON`, or where `.ci/python` puts it.
fn python() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("EDDY_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    installed(tools()?.join("venv/bin/python"), "python")
}

/// A server with the compatibility suite's objects.
async fn server() -> Result<TestServer> {
    let server = TestServer::start().await?;
    server
        .client()
        .await?
        .batch_execute(CATALOG_OBJECTS)
        .await?;
    Ok(server)
}

/// Runs a client program; fails with its output unless it succeeds and prints `ok <name>`.
async fn run_client(mut command: tokio::process::Command, name: &str) -> Result<()> {
    let out = command
        .output()
        .await
        .with_context(|| format!("running the {name} client"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && stdout.lines().any(|l| l == format!("ok {name}")),
        "{name} failed:\n{stdout}\n{stderr}"
    );
    Ok(())
}

fn suite_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test]
async fn node_postgres_reads_and_prepares() -> Result<()> {
    let modules = installed(tools()?.join("node/node_modules"), "node")?;
    let server = server().await?;
    let mut node = tokio::process::Command::new("node");
    node.arg(suite_file("node/drivers.cjs"))
        .arg(server.port().to_string())
        .env("NODE_PATH", modules);
    run_client(node, "node-postgres").await
}

#[tokio::test]
async fn pgjdbc_database_metadata_lists_everything() -> Result<()> {
    let jar = installed(PathBuf::from("/usr/share/java/postgresql.jar"), "jdbc")?;
    let server = server().await?;
    let classes = tempfile::tempdir()?;
    let javac = tokio::process::Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg(suite_file("java/JdbcMetadata.java"))
        .output()
        .await
        .context("running javac (bash .ci/jdbc installs a JDK)")?;
    ensure!(
        javac.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let classpath = format!("{}:{}", classes.path().display(), jar.display());
    let mut java = tokio::process::Command::new("java");
    java.arg("-cp")
        .arg(classpath)
        .arg("JdbcMetadata")
        .arg(server.port().to_string());
    run_client(java, "jdbc").await
}

#[tokio::test]
async fn python_drivers_introspect_and_read() -> Result<()> {
    let python = python()?;
    let server = TestServer::start().await?;
    server
        .client()
        .await?
        .batch_execute(CATALOG_OBJECTS)
        .await?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/drivers.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(server.port().to_string())
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "the drivers failed:\n{stdout}\n{stderr}"
    );
    for driver in ["psycopg3", "pgcli", "psycopg2", "asyncpg", "sqlalchemy"] {
        ensure!(
            stdout.lines().any(|l| l == format!("ok {driver}")),
            "{driver} did not report:\n{stdout}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn psqlodbc_lists_tables_columns_and_keys_and_reads_them() -> Result<()> {
    let python = python()?;
    let server = server().await?;
    let mut odbc = tokio::process::Command::new(&python);
    odbc.arg(suite_file("python/odbc.py"))
        .arg(server.port().to_string());
    run_client(odbc, "psqlodbc").await
}
