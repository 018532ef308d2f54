//! The rate source (numbered rows at a steady rate of event time, as Spark's `rate` source
//! makes them): windowed views over it equal their batch queries across a crash, and its
//! definition is checked.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use eddy_tests::{
    TestServer, compare_rows, expect_sqlstates, query_rows, sorted_rows, source_offset,
    wait_for_source_offset,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const VIEWS: [(&str, &str); 3] = [
    (
        "per_second",
        "SELECT value % 10 AS k, window_start, window_end, count(*) AS n, max(value) AS hi \
         FROM TUMBLE(r, ts, INTERVAL '1 second') GROUP BY value % 10, window_start, window_end",
    ),
    (
        "sliding",
        "SELECT value % 7 AS k, window_start, window_end, count(*) AS n \
         FROM HOP(r, ts, INTERVAL '500 milliseconds', INTERVAL '2 seconds') \
         GROUP BY value % 7, window_start, window_end",
    ),
    (
        "closed",
        "SELECT window_start, window_end, count(*) AS n, sum(value) AS total \
         FROM TUMBLE(r, ts, INTERVAL '1 second') GROUP BY window_start, window_end \
         EMIT ON WINDOW CLOSE",
    ),
];

async fn check_views(client: &Client) -> Result<()> {
    for (name, sql) in VIEWS {
        let view = sorted_rows(client, &format!("SELECT * FROM {name}")).await?;
        // EMIT ON WINDOW CLOSE shows only the windows the watermark has passed.
        let closed = match sql.contains("EMIT ON WINDOW CLOSE") {
            true => {
                " WHERE window_end <= \
                     (SELECT watermark FROM eddy_catalog.progress WHERE relation = 'r')"
            }
            false => "",
        };
        let batch_sql = sql.replace("EMIT ON WINDOW CLOSE", "");
        let batch =
            sorted_rows(client, &format!("SELECT * FROM ({batch_sql}) AS q{closed}")).await?;
        if let Err(e) = compare_rows(&view, &batch) {
            bail!("{name}: the view differs from its batch query: {e}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn windowed_views_equal_their_batch_queries_across_a_crash() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let rows = 60_000;
    // Paced at 20,000 rows a second, so that the kill lands in the middle of the run.
    client
        .batch_execute(&format!(
            "CREATE STREAM r (ts TIMESTAMP, value BIGINT, \
                 WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH (connector = 'rate', rows_per_second = '20000', rows = '{rows}', \
                   base_time = '2024-01-01 00:00:00')"
        ))
        .await?;
    for (name, sql) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {sql}"))
            .await
            .with_context(|| format!("creating {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while source_offset(&client, "r").await? < 10_000 {
        ensure!(Instant::now() < deadline, "the source does not advance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    let resumed = source_offset(&client, "r").await?;
    ensure!((10_000..rows).contains(&resumed), "resumed at {resumed}");
    wait_for_source_offset(&client, "r", rows).await?;
    check_views(&client).await?;
    // Row n is due n / 20,000 s after the base time.
    let span = query_rows(
        &client,
        "SELECT count(*), min(ts), max(ts), sum(value) FROM r",
    )
    .await?;
    ensure!(
        span == [[
            "60000",
            "2024-01-01 00:00:00",
            "2024-01-01 00:00:02.99995",
            "1799970000"
        ]],
        "{span:?}"
    );
    // Each second holds 20,000 rows, split evenly across the ten keys.
    let per_second = query_rows(
        &client,
        "SELECT DISTINCT n FROM per_second WHERE window_end <= '2024-01-01 00:00:03'",
    )
    .await?;
    ensure!(per_second == [["2000"]], "{per_second:?}");
    Ok(())
}

fn sqlstate<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> Result<SqlState> {
    let e = result.expect_err("the statement should fail");
    Ok(e.code().context("an error without SQLSTATE")?.clone())
}

#[tokio::test]
async fn definitions_are_checked() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // Without columns, the stream has the default two; the base time is the statement's.
    let before = chrono::Utc::now().naive_utc();
    client
        .batch_execute("CREATE STREAM r WITH (connector = 'rate', paced = 'false', rows = '10')")
        .await?;
    let described = client.prepare("SELECT * FROM r").await?;
    let names: Vec<&str> = described.columns().iter().map(|c| c.name()).collect();
    ensure!(names == ["ts", "value"], "{names:?}");
    let definition = query_rows(&client, "SHOW CREATE STREAM r").await?;
    ensure!(
        definition[0].iter().any(|c| c.contains("base_time")),
        "the base time is not recorded: {definition:?}"
    );
    // Columns may be named at will; their types are fixed.
    client
        .batch_execute(
            "CREATE STREAM ticks (at TIMESTAMP, n BIGINT) \
             WITH (connector = 'rate', rows_per_second = '5', paced = 'false', rows = '10')",
        )
        .await?;
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW seen AS SELECT count(*) AS c, max(n) AS last FROM ticks",
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = query_rows(&client, "SELECT c, last FROM seen").await?;
        if seen == [["10", "9"]] {
            break;
        }
        ensure!(Instant::now() < deadline, "the view holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = query_rows(&client, "SELECT min(at) FROM ticks").await?;
    let first = chrono::NaiveDateTime::parse_from_str(&first[0][0], "%Y-%m-%d %H:%M:%S%.f")?;
    ensure!(
        (first - before).num_seconds().abs() < 60,
        "row 0 is due at {first}, the stream was created at {before}"
    );
    let insert = client
        .batch_execute("INSERT INTO r VALUES (now(), 1)")
        .await;
    ensure!(sqlstate(insert)? == SqlState::WRONG_OBJECT_TYPE);
    let cases = [
        (
            "CREATE STREAM s (v BIGINT, t TIMESTAMP) WITH (connector = 'rate')",
            SqlState::DATATYPE_MISMATCH,
        ),
        (
            "CREATE STREAM s WITH (connector = 'rate', rows_per_second = '0')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM s WITH (connector = 'rate', paced = 'sometimes')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM s WITH (connector = 'rate', rowsPerSecond = '5')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM s WITH (connector = 'rate', base_time = 'yesterday')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE TABLE s (a INT PRIMARY KEY) WITH (connector = 'rate')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ];
    expect_sqlstates(&client, &cases).await?;
    let streams = query_rows(&client, "SHOW STREAMS").await?;
    ensure!(streams.len() == 2, "{streams:?}");
    Ok(())
}
