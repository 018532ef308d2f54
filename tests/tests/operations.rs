//! Operations: the figures of `eddy_catalog.progress`, `epochs` and `sessions` against a
//! known workload, the same figures on `/metrics`, a backfill's progress, configuration
//! errors, and shutdown on SIGTERM under load (exit 0, nothing acknowledged lost).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eddy_tests::{TestServer, execute, query_rows, server_binary};
use futures::SinkExt;
use tokio_postgres::Client;

/// Event times start here (seconds since the Unix epoch: 2026-01-01 00:00:00).
const START: i64 = 1_767_225_600;
/// The watermark delay of the stream here, in seconds: the first rows close no window.
const DELAY: i64 = 30;

fn timestamp(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .expect("a valid time")
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// One figure of `eddy_catalog.progress`.
async fn figure(client: &Client, relation: &str, column: &str) -> Result<String> {
    let rows = query_rows(
        client,
        &format!("SELECT {column} FROM eddy_catalog.progress WHERE relation = '{relation}'"),
    )
    .await?;
    rows.first()
        .and_then(|r| r.first())
        .cloned()
        .with_context(|| format!("no progress row for {relation}"))
}

/// The samples of a Prometheus text exposition, by metric name and `relation` label.
fn samples(exposition: &str) -> Result<HashMap<(String, String), f64>> {
    let lines = exposition.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).context("parsing /metrics")?;
    Ok(scrape
        .samples
        .into_iter()
        .map(|s| {
            let relation = s.labels.get("relation").unwrap_or_default().to_string();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            ((s.metric, relation), value)
        })
        .collect())
}

/// 1,000 rows in ten statements, then rows that close every window and a late one: the
/// progress figures, the epochs and /metrics say exactly that; the persistent figures survive
/// a restart.
#[tokio::test(flavor = "multi_thread")]
async fn figures_follow_a_known_workload() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &format!(
            "CREATE STREAM ev (k BIGINT, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '{DELAY} seconds')"
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW per_window AS SELECT k, window_end, count(*) AS n \
         FROM TUMBLE(ev, ts, INTERVAL '10 seconds') GROUP BY k, window_end \
         EMIT ON WINDOW CLOSE",
    )
    .await?;
    // Ten keys over the first 30 seconds: three windows, each key in each.
    for batch in 0..10 {
        let values: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    "({}, '{}')",
                    i % 10,
                    timestamp(START + (batch * 100 + i) % 30)
                )
            })
            .collect();
        execute(
            &client,
            &format!("INSERT INTO ev VALUES {}", values.join(", ")),
        )
        .await?;
    }
    assert_eq!(figure(&client, "ev", "rows").await?, "1000");
    assert_eq!(
        figure(&client, "ev", "watermark").await?,
        timestamp(START + 29 - DELAY)
    );
    // 30 groups (10 keys in 3 windows) held by the view's stateful operators.
    let open: i64 = figure(&client, "per_window", "state_rows").await?.parse()?;
    ensure!(open > 0 && open % 30 == 0, "state rows {open}");
    let running = query_rows(
        &client,
        "SELECT relation, status, input_rows_per_sec > 0, processed_rows_per_sec > 0, \
         last_epoch_duration IS NOT NULL, lag >= INTERVAL '0 seconds' \
         AND lag < INTERVAL '1 minute', last_commit <= now() \
         FROM eddy_catalog.progress ORDER BY relation",
    )
    .await?;
    let expected = |name: &str| vec![name.to_string(), "running".into()];
    for (row, name) in running.iter().zip(["ev", "per_window"]) {
        assert_eq!(row[..2], expected(name)[..]);
        assert!(row[2..].iter().all(|v| v == "t"), "{row:?}");
    }

    // Ten rows at 100 s close every window; one row at 0 s is late.
    let closing: Vec<String> = (0..10)
        .map(|k| format!("({k}, '{}')", timestamp(START + 100)))
        .collect();
    execute(
        &client,
        &format!("INSERT INTO ev VALUES {}", closing.join(", ")),
    )
    .await?;
    execute(
        &client,
        &format!("INSERT INTO ev VALUES (1, '{}')", timestamp(START)),
    )
    .await?;
    assert_eq!(figure(&client, "ev", "rows").await?, "1010");
    assert_eq!(figure(&client, "ev", "late_rows").await?, "1");
    // The three windows closed and went out; only the 10 groups of the new one remain.
    let state = figure(&client, "per_window", "state_rows").await?;
    assert_eq!(state, (open / 3).to_string());
    assert_eq!(
        query_rows(&client, "SELECT count(*), sum(n) FROM per_window").await?,
        vec![vec!["30".to_string(), "1000".to_string()]]
    );
    let state_bytes: i64 = figure(&client, "per_window", "state_bytes")
        .await?
        .parse()?;
    ensure!(state_bytes > 0, "state bytes {state_bytes}");

    // Every write epoch since the start is listed: their rows are the rows accepted.
    let epochs = query_rows(
        &client,
        "SELECT count(*), sum(rows), max(epoch) > 0, bool_and(duration >= INTERVAL '0 seconds') \
         FROM eddy_catalog.epochs WHERE kind = 'write'",
    )
    .await?;
    assert_eq!(epochs[0][0], "12");
    assert_eq!(epochs[0][1], "1010");
    assert_eq!(epochs[0][3], "t");
    let bytes = query_rows(
        &client,
        "SELECT bool_and(bytes > 0) FROM eddy_catalog.epochs",
    )
    .await?;
    assert_eq!(bytes, vec![vec!["t".to_string()]]);

    // Sessions: this one, running this very query, and another one idle.
    let other = server.client().await?;
    execute(&other, "SET application_name = 'dashboard'").await?;
    let sessions = query_rows(
        &client,
        "SELECT state, query LIKE '%eddy_catalog.sessions%', pid = pg_backend_pid() \
         FROM eddy_catalog.sessions ORDER BY application_name NULLS FIRST",
    )
    .await?;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0], ["active", "t", "t"]);
    assert_eq!(sessions[1][0], "idle");

    // The same figures for Prometheus.
    let (status, body) = server.http_get("/metrics").await?;
    assert_eq!(status, 200, "{body}");
    let metrics = samples(&body)?;
    let sample = |name: &str, relation: &str| {
        metrics
            .get(&(name.to_string(), relation.to_string()))
            .copied()
            .with_context(|| format!("{name}{{relation=\"{relation}\"}} missing:\n{body}"))
    };
    assert_eq!(sample("eddy_relation_rows_total", "ev")?, 1010.0);
    assert_eq!(sample("eddy_relation_late_rows_total", "ev")?, 1.0);
    assert_eq!(
        sample("eddy_relation_state_rows", "per_window")?,
        (open / 3) as f64
    );
    assert_eq!(
        sample("eddy_relation_watermark_seconds", "ev")?,
        (START + 100 - DELAY) as f64
    );
    assert_eq!(sample("eddy_ingested_rows_total", "")?, 1010.0);
    assert_eq!(sample("eddy_sessions", "")?, 2.0);
    assert_eq!(sample("eddy_relation_error", "ev")?, 0.0);
    assert_eq!(server.http_get("/healthz").await?, (200, "ok\n".into()));
    assert_eq!(server.http_get("/nothing").await?.0, 404);

    // What is committed survives a clean stop; the live figures start afresh.
    drop((client, other));
    let status = server.stop().await?;
    ensure!(status.success(), "eddy exited with {status}");
    server.restart().await?;
    let client = server.client().await?;
    assert_eq!(figure(&client, "ev", "rows").await?, "1010");
    assert_eq!(figure(&client, "ev", "late_rows").await?, "1");
    assert_eq!(figure(&client, "per_window", "state_rows").await?, state);
    assert_eq!(figure(&client, "ev", "last_epoch_duration").await?, "NULL");
    assert_eq!(figure(&client, "ev", "input_rows_per_sec").await?, "0");
    Ok(())
}

/// A long COPY tells its client how many rows have arrived; a view over a long history tells
/// its creator how far its backfill has come, and shows as backfilling in the progress table
/// until it is built.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_backfill_reports_its_progress() -> Result<()> {
    const ROWS: usize = 3_000_000;
    let server = TestServer::start().await?;
    let (client, mut load_notices) = server.client_with_notices().await?;
    execute(&client, "CREATE STREAM hist (k BIGINT, v BIGINT)").await?;
    let sink = client.copy_in("COPY hist FROM STDIN (FORMAT csv)").await?;
    futures::pin_mut!(sink);
    let mut chunk = String::new();
    let mut chunks = 0;
    for i in 0..ROWS {
        chunk.push_str(&format!("{},{}\n", i % 1000, i));
        if chunk.len() > 1 << 20 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                .await?;
            chunks += 1;
            // A slow client: the COPY lasts long enough to report what it has received.
            if chunks == 1 {
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
        }
    }
    sink.send(bytes::Bytes::from(chunk)).await?;
    assert_eq!(sink.finish().await?, ROWS as u64);
    let received = load_notices.try_recv()?;
    let rows: u64 = received
        .strip_prefix("COPY into \"hist\": ")
        .and_then(|rest| rest.split(' ').next())
        .with_context(|| format!("not a COPY progress notice: {received}"))?
        .parse()?;
    ensure!(
        rows > 0 && rows < ROWS as u64,
        "COPY reported {rows} rows received"
    );

    let (creator, mut notices) = server.client_with_notices().await?;
    let watcher = server.client().await?;
    let create = tokio::spawn(async move {
        execute(
            &creator,
            "CREATE MATERIALIZED VIEW per_k AS SELECT k, count(*) AS n, sum(v) AS s \
             FROM hist GROUP BY k",
        )
        .await
    });
    // While it runs, the progress table shows it backfilling.
    let mut seen = Vec::new();
    while !create.is_finished() {
        let rows = query_rows(
            &watcher,
            "SELECT status, backfill_rows, backfill_total, backfill_percent \
             FROM eddy_catalog.progress WHERE relation = 'per_k'",
        )
        .await?;
        if let Some(row) = rows.into_iter().next()
            && row[0] == "backfilling"
        {
            seen.push(row);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create.await??;
    ensure!(
        !seen.is_empty(),
        "the backfill never showed in eddy_catalog.progress"
    );
    for row in &seen {
        assert_eq!(row[2], ROWS.to_string(), "{row:?}");
        let done: usize = row[1].parse()?;
        ensure!(done <= ROWS, "{row:?}");
    }
    let mut told = Vec::new();
    while let Ok(message) = notices.try_recv() {
        told.push(message);
    }
    ensure!(
        told.iter()
            .any(|m| m.contains("backfilled") && m.contains(&format!("of {ROWS} rows"))),
        "no backfill notice: {told:?}"
    );
    // Built, it is running and holds every key.
    assert_eq!(figure(&watcher, "per_k", "status").await?, "running");
    assert_eq!(
        query_rows(&watcher, "SELECT count(*), sum(n) FROM per_k").await?,
        vec![vec!["1000".to_string(), ROWS.to_string()]]
    );
    Ok(())
}

/// SIGTERM while clients write: the server exits 0, and after a restart every acknowledged
/// row is there, and the view over them agrees.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_nothing_acknowledged() -> Result<()> {
    const WRITERS: i64 = 4;
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM w (writer BIGINT, seq BIGINT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW per_writer AS SELECT writer, count(*) AS n FROM w \
         GROUP BY writer",
    )
    .await?;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let c = server.client().await?;
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for seq in 0.. {
                let sql = format!("INSERT INTO w VALUES ({writer}, {seq})");
                match c.simple_query(&sql).await {
                    Ok(_) => acked.push((writer, seq)),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = server.stop().await?;
    ensure!(status.success(), "eddy exited with {status}");
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await?);
    }
    ensure!(acked.len() > 10, "only {} writes went through", acked.len());

    server.restart().await?;
    let client = server.client().await?;
    let stored: BTreeSet<(i64, i64)> = query_rows(&client, "SELECT writer, seq FROM w")
        .await?
        .into_iter()
        .map(|r| Ok((r[0].parse()?, r[1].parse()?)))
        .collect::<Result<_>>()?;
    let lost: Vec<_> = acked.difference(&stored).collect();
    ensure!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let per_writer =
        query_rows(&client, "SELECT writer, n FROM per_writer ORDER BY writer").await?;
    let counted = query_rows(
        &client,
        "SELECT writer, count(*) FROM w GROUP BY writer ORDER BY writer",
    )
    .await?;
    assert_eq!(per_writer, counted);
    // And it goes on.
    execute(&client, "INSERT INTO w VALUES (9, 0)").await?;
    assert_eq!(
        query_rows(&client, "SELECT n FROM per_writer WHERE writer = 9").await?,
        vec![vec!["1".to_string()]]
    );
    Ok(())
}

/// A statement that keeps running holds a graceful shutdown back; a second signal exits at
/// once, and the store opens again whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)").await?;
    execute(&client, "INSERT INTO t VALUES (1, 'kept')").await?;
    let sleeper = server.client().await?;
    let sleeping = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(60)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.pid().context("the server runs")?.to_string();
    let term = || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
    };
    ensure!(term()?.success());
    // The sleeping statement holds the shutdown back (the grace is 10 seconds).
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(server.pid().is_some());
    let (status, _) = server
        .http_get("/healthz")
        .await
        .unwrap_or((0, String::new()));
    ensure!(
        status != 200,
        "healthz still answers ok while shutting down"
    );
    let started = std::time::Instant::now();
    let status = server.stop().await?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "the second signal took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    ensure!(sleeping.await?.is_err(), "the sleeping statement finished");
    server.restart().await?;
    let client = server.client().await?;
    assert_eq!(
        query_rows(&client, "SELECT v FROM t").await?,
        vec![vec!["kept".to_string()]]
    );
    Ok(())
}

/// `eddy --help` lists every setting; a configuration file with an unknown key stops the
/// server at start with a message that names the key.
#[tokio::test]
async fn configuration_is_checked_at_start() -> Result<()> {
    let binary = tokio::task::spawn_blocking(server_binary).await??;
    let help = std::process::Command::new(&binary).arg("--help").output()?;
    ensure!(help.status.success());
    let help = String::from_utf8(help.stdout)?;
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml"))?;
    for line in shipped
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let key = line.split('=').next().unwrap_or_default().trim();
        let flag = format!("--{}", key.replace('_', "-"));
        ensure!(help.contains(&flag), "{flag} is not in --help:\n{help}");
        let variable = format!("EDDY_{}", key.to_uppercase());
        ensure!(help.contains(&variable), "{variable} is not in --help");
    }

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("eddy.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nsync_comit = false\n")?;
    let run = std::process::Command::new(&binary)
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()?;
    ensure!(!run.status.success(), "eddy started with an unknown key");
    let stderr = String::from_utf8_lossy(&run.stderr);
    ensure!(stderr.contains("sync_comit"), "{stderr}");
    Ok(())
}
