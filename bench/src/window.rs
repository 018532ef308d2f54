//! `eddy-bench window`: event-time windows. A TUMBLE and a HOP count per key over events
//! that arrive by COPY, the same counts over the built-in `rate` source (in-process, as
//! Spark's own `rate` source feeds the same query in its benchmark), and how soon an INSERT's
//! change reaches a subscriber.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use eddy_tests::TestServer;

use crate::nexmark::{cpu_seconds, peak_rss_mb};
use crate::{COPY_CHUNK_ROWS, GROUPS, median, progress, quantile, report, timed_copies};

/// Events per second of event time in the window workloads: 1M events span 100 s, ten
/// 10-second windows.
const EVENTS_PER_EVENT_SECOND: u64 = 10_000;

/// CSV events `k, ts` for sequence numbers `from..to`, in event-time order.
fn window_events(from: u64, to: u64) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut i = from;
    while i < to {
        let end = (i + COPY_CHUNK_ROWS).min(to);
        let mut s = String::with_capacity(((end - i) * 32) as usize);
        for n in i..end {
            let k = n.wrapping_mul(7919) % GROUPS;
            s.push_str(&format!("{k},{}\n", event_time(n)));
        }
        chunks.push(Bytes::from(s));
        i = end;
    }
    chunks
}

const WINDOW_STREAM_DDL: &str = "CREATE STREAM ev (k INT, ts TIMESTAMP, \
     WATERMARK FOR ts AS ts - INTERVAL '5 seconds')";

pub async fn window(rows: u64, reps: usize, inserts: usize, rate_rows: u64) -> Result<()> {
    let mut throughput = serde_json::Map::new();
    for (name, from) in [
        ("tumble", "TUMBLE(ev, ts, INTERVAL '10 seconds')"),
        (
            "hop",
            "HOP(ev, ts, INTERVAL '5 seconds', INTERVAL '10 seconds')",
        ),
    ] {
        progress(&format!("window: {name}: {reps} COPYs of {rows} events"));
        let server = TestServer::start().await?;
        let client = server.client().await?;
        client.batch_execute(WINDOW_STREAM_DDL).await?;
        client
            .batch_execute(&format!(
                "CREATE MATERIALIZED VIEW counts AS SELECT k, window_start, window_end, \
                 count(*) AS n FROM {from} GROUP BY k, window_start, window_end"
            ))
            .await?;
        let label = format!("window: {name}");
        let mut rates = timed_copies(&client, "ev", rows, reps, window_events, &label).await?;
        let per_window: i64 = client
            .query_one("SELECT sum(n)::BIGINT FROM counts", &[])
            .await?
            .get(0);
        let copies = if name == "hop" { 2 } else { 1 };
        anyhow::ensure!(
            per_window as u64 == copies * rows * reps as u64,
            "{name}: the windows count {per_window} events"
        );
        let rate = median(&mut rates);
        println!(
            "window: {name} 10 s count per key ({GROUPS} keys), {rows} events per COPY, median of {reps}: {rate:.0} events/s"
        );
        throughput.insert(format!("{name}_events_per_s"), rate.into());
    }

    for (name, from) in WINDOWS_OVER_RATE {
        let run = over_rate(name, from, rate_rows).await?;
        let rate = rate_rows as f64 / run.seconds;
        let per_cpu = rate_rows as f64 / run.cpu_seconds;
        println!(
            "window: {name} over the rate source, 10 s count per key ({GROUPS} keys), {rate_rows} events: \
             {rate:.0} events/s, {per_cpu:.0} events per CPU second, peak RSS {:.0} MB",
            run.peak_rss_mb
        );
        throughput.insert(format!("{name}_rate_source_events_per_s"), rate.into());
        throughput.insert(
            format!("{name}_rate_source_events_per_cpu_s"),
            per_cpu.into(),
        );
    }

    progress(&format!(
        "window: freshness over {inserts} INSERTs, one per 10 ms"
    ));
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(WINDOW_STREAM_DDL).await?;
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW counts AS SELECT k, window_end, count(*) AS n \
             FROM TUMBLE(ev, ts, INTERVAL '10 seconds') GROUP BY k, window_end",
        )
        .await?;
    let subscriber = server.client().await?;
    let stream = subscriber
        .simple_query_raw("SUBSCRIBE counts WITH (snapshot = false)")
        .await?;
    // Each INSERT carries 99 ordinary events and one marker key of its own; the marker's
    // first row in the subscription tells when that INSERT's change arrived.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let reader = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(message) = futures::StreamExt::next(&mut stream).await {
            if let Ok(tokio_postgres::SimpleQueryMessage::Row(row)) = message
                && let Some(k) = row.get(2).and_then(|k| k.parse::<u64>().ok())
                && k >= MARKER
                && row.get(1) == Some("insert")
                && seen_tx.send((k - MARKER, Instant::now())).is_err()
            {
                break;
            }
        }
    });
    let mut sent = Vec::with_capacity(inserts);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..inserts as u64 {
        tick.tick().await;
        let base = i * 100;
        let mut rows: Vec<String> = (0..99)
            .map(|j| {
                let n = base + j;
                format!("({}, '{}')", n % GROUPS, event_time(n))
            })
            .collect();
        rows.push(format!("({}, '{}')", MARKER + i, event_time(base + 99)));
        let sql = format!("INSERT INTO ev VALUES {}", rows.join(", "));
        sent.push(Instant::now());
        client.batch_execute(&sql).await?;
        if (i + 1) % 250 == 0 {
            progress(&format!("window: freshness: {}/{inserts} INSERTs", i + 1));
        }
    }
    let mut latencies = Vec::with_capacity(inserts);
    while latencies.len() < inserts {
        let (i, at) = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
        latencies.push(at.duration_since(sent[i as usize]).as_secs_f64() * 1e3);
    }
    reader.abort();
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
    println!(
        "window: freshness, INSERT sent to change received by a subscriber, {inserts} INSERTs of 100 events every 10 ms: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    throughput.insert("freshness_p50_ms".into(), p50.into());
    throughput.insert("freshness_p99_ms".into(), p99.into());
    report("window", serde_json::Value::Object(throughput));
    Ok(())
}

/// Marker keys start here, above every ordinary key.
const MARKER: u64 = 1_000_000;

/// The event time of event `n`, as timestamp text.
fn event_time(n: u64) -> String {
    let micros = n * 1_000_000 / EVENTS_PER_EVENT_SECOND;
    let secs = micros / 1_000_000;
    format!(
        "1970-01-02 {:02}:{:02}:{:02}.{:06}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// The window workloads over the rate source: its `value` is the event's number, keyed as
/// Spark's benchmark keys it (`value % 1000`).
const WINDOWS_OVER_RATE: [(&str, &str); 2] = [
    ("tumble", "TUMBLE(ev, ts, INTERVAL '10 seconds')"),
    (
        "hop",
        "HOP(ev, ts, INTERVAL '5 seconds', INTERVAL '10 seconds')",
    ),
];

/// Event-time rate of the rate source: that of Spark's benchmark (3M rows a second), so
/// that a 10-second window holds as many events as there.
const RATE_ROWS_PER_SECOND: u64 = 3_000_000;

/// A windowed count over `rows` events of the rate source, unpaced, timed from the view's
/// creation (the source produces nothing before a view reads it) until the stream's
/// committed offset reaches the last event, which commits with the view's changes.
async fn over_rate(name: &str, from: &str, rows: u64) -> Result<crate::nexmark::Run> {
    progress(&format!(
        "window: {name} over {rows} events of the rate source"
    ));
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client
        .batch_execute(&format!(
            "CREATE STREAM ev (ts TIMESTAMP, value BIGINT, \
                 WATERMARK FOR ts AS ts - INTERVAL '5 seconds') \
             WITH (connector = 'rate', rows_per_second = '{RATE_ROWS_PER_SECOND}', \
                   rows = '{rows}', paced = 'false', max_rows_per_epoch = '1000000', \
                   base_time = '2024-01-01 00:00:00')"
        ))
        .await?;
    let pid = server.pid().context("the server is not running")?;
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE MATERIALIZED VIEW counts AS SELECT value % {GROUPS} AS k, window_start, \
             window_end, count(*) AS n FROM {from} GROUP BY value % {GROUPS}, window_start, window_end"
        ))
        .await?;
    let mut last_report = Instant::now();
    loop {
        let offset = eddy_tests::source_offset(&client, "ev").await? as u64;
        if offset >= rows {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(&format!("window: {name}: {offset} of {rows} events"));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let run = crate::nexmark::Run {
        seconds,
        cpu_seconds: cpu_seconds(pid)? - cpu_before,
        peak_rss_mb: peak_rss_mb(pid)?,
    };
    let counted: i64 = client
        .query_one("SELECT sum(n)::BIGINT FROM counts", &[])
        .await?
        .get(0);
    let copies = if name == "hop" { 2 } else { 1 };
    anyhow::ensure!(
        counted as u64 == copies * rows,
        "{name}: the windows count {counted} of {rows} events"
    );
    Ok(run)
}
