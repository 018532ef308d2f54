//! Real client drivers against a running Eddy: psycopg 3 and psycopg2 (text and binary
//! parameters), asyncpg (prepared statements, type introspection), SQLAlchemy's `inspect()`.
//! The checks are `tests/python/drivers.py`; `.ci/python` installs the drivers.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use eddy_tests::{CATALOG_OBJECTS, TestServer};

/// The virtualenv's python: `EDDY_PYTHON`, or where `.ci/python` puts it.
fn python() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("EDDY_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let tools = std::env::var("EDDY_TOOLS")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/eddy-tools")))
        .context("neither EDDY_TOOLS nor HOME is set")?;
    let python = tools.join("venv/bin/python");
    ensure!(
        python.exists(),
        "{} is missing: run `bash .ci/python` to install the drivers",
        python.display()
    );
    Ok(python)
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
    for driver in ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"] {
        ensure!(
            stdout.lines().any(|l| l == format!("ok {driver}")),
            "{driver} did not report:\n{stdout}"
        );
    }
    Ok(())
}
