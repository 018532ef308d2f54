//! File sources: the lines of the files in a folder feed a stream, new files and appended
//! lines are picked up, a line still being written waits for its newline, bad lines become
//! dead letters, and a kill neither loses nor repeats a line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use eddy_tests::{TestServer, execute, query_rows, wait_for_value};
use tokio_postgres::error::SqlState;

const CAUGHT_UP: Duration = Duration::from_secs(30);

fn append(dir: &Path, file: &str, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file))?;
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(())
}

fn lines(from: usize, to: usize, level: &str) -> String {
    (from..to)
        .map(|i| format!("{{\"id\": {i}, \"level\": \"{level}\"}}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_lines_feed_a_stream_exactly_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    append(dir.path(), "a.json", &lines(0, 100, "info"))?;
    append(dir.path(), "a.json", "this is not json\n\n")?;
    append(dir.path(), ".hidden.json", &lines(0, 5, "ignored"))?;
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &format!(
            "CREATE STREAM logs (id BIGINT NOT NULL, level TEXT) WITH (connector = 'file', \
             path = '{}', format = 'json', max_rows_per_epoch = '30')",
            dir.path().display()
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW levels AS SELECT level, count(*) AS n, \
         count(DISTINCT id) AS ids FROM logs GROUP BY level",
    )
    .await?;
    let total = "SELECT sum(n) FROM levels";
    wait_for_value(&client, total, "100", CAUGHT_UP).await?;

    // A new file, lines appended to the first, and a line cut short: it waits.
    append(dir.path(), "b.json", &lines(100, 150, "warn"))?;
    append(dir.path(), "a.json", &lines(150, 160, "info"))?;
    append(dir.path(), "a.json", "{\"id\": 160, \"lev")?;
    wait_for_value(&client, total, "160", CAUGHT_UP).await?;
    for round in 0..3 {
        append(
            dir.path(),
            "a.json",
            if round == 0 { "el\": \"info\"}\n" } else { "" },
        )?;
        append(
            dir.path(),
            "b.json",
            &lines(200 + round * 100, 300 + round * 100, "warn"),
        )?;
        tokio::time::sleep(Duration::from_millis(30 * round as u64)).await;
        server.kill()?;
        server.restart().await?;
    }
    let client = server.client().await?;
    wait_for_value(&client, total, "461", CAUGHT_UP).await?;
    let levels = query_rows(&client, "SELECT level, n, ids FROM levels ORDER BY level").await?;
    ensure!(
        levels == vec![vec!["info", "111", "111"], vec!["warn", "350", "350"]],
        "{levels:?}"
    );
    let letters = query_rows(
        &client,
        "SELECT position, payload FROM eddy_catalog.dead_letters WHERE stream = 'logs'",
    )
    .await?;
    let at = lines(0, 100, "info").len();
    ensure!(
        letters
            == vec![vec![
                format!("file a.json byte {at}"),
                "this is not json".to_string()
            ]],
        "{letters:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_folder_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let err = client
        .simple_query(
            "CREATE STREAM s (id BIGINT) WITH (connector = 'file', path = '/nonexistent/eddy-in')",
        )
        .await
        .err();
    ensure!(
        err.as_ref().and_then(|e| e.code()) == Some(&SqlState::UNDEFINED_OBJECT),
        "{err:?}"
    );
    Ok(())
}
