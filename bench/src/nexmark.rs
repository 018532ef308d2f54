//! `eddy-bench nexmark`: each Nexmark query as a materialized view in a fresh server fed by
//! the built-in Nexmark source, timed from the view's creation until it has taken every event.
//!
//! The streams are created first; they produce nothing until a view reads them, so the clock
//! starts with the CREATE MATERIALIZED VIEW and stops when the committed offset reaches the
//! last event (the offset commits with the view's changes, so the view is then complete).
//! CPU time and peak RSS are the server process's, from `/proc`; unpaced, the CPU time is read
//! once the server is idle again, so that it includes the store's writer moving the run's last
//! epochs into sled (it lets up to a second of them gather). With `--serve RATE` the
//! source is paced and the harness also reports freshness (how long after its events were
//! due each committed offset is seen, polled every millisecond) and point-read latency.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use eddy_tests::{TestServer, compare_rows, nexmark, sorted_rows};

use crate::progress;

/// What one run measured.
pub struct Run {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

/// A view's operator state once it caught up: entries and bytes stored.
struct State {
    rows: i64,
    bytes: i64,
}

/// Runs the named queries (`all`: every query) over `events` events each.
pub async fn nexmark(
    queries: &[String],
    events: u64,
    per_epoch: u64,
    check: bool,
    serve: Option<u64>,
) -> Result<()> {
    let names: Vec<&str> = if queries.iter().any(|q| q == "all") {
        nexmark::QUERIES.iter().map(|(n, _)| *n).collect()
    } else {
        queries.iter().map(String::as_str).collect()
    };
    for name in names {
        let sql = nexmark::query(name).with_context(|| format!("no Nexmark query {name}"))?;
        let (run, state) = run(name, sql, events, per_epoch, check, serve).await?;
        let rate = events as f64 / run.seconds;
        let per_cpu = events as f64 / run.cpu_seconds;
        println!(
            "nexmark {name} events={events} seconds={:.3} events_per_sec={rate:.0} \
             cpu_seconds={:.3} events_per_cpu_sec={per_cpu:.0} peak_rss_mb={:.1} \
             state_rows={} state_mb={:.1}",
            run.seconds,
            run.cpu_seconds,
            run.peak_rss_mb,
            state.rows,
            state.bytes as f64 / 1e6
        );
        crate::report(
            "nexmark",
            serde_json::json!({
                "query": name, "events": events, "seconds": run.seconds,
                "events_per_sec": rate, "cpu_seconds": run.cpu_seconds,
                "events_per_cpu_sec": per_cpu, "peak_rss_mb": run.peak_rss_mb,
                "state_rows": state.rows, "state_bytes": state.bytes,
            }),
        );
    }
    Ok(())
}

async fn run(
    name: &str,
    sql: &str,
    events: u64,
    per_epoch: u64,
    check: bool,
    serve: Option<u64>,
) -> Result<(Run, State)> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pacing = serve.map_or(String::new(), |rate| {
        format!(", max_events_per_second = '{rate}'")
    });
    nexmark::create_sources(
        &client,
        &format!("events = '{events}', max_events_per_epoch = '{per_epoch}'{pacing}"),
    )
    .await?;
    let pid = server.pid().context("the server is not running")?;
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE MATERIALIZED VIEW nexmark_{name} AS {}",
            nexmark::select(sql)
        ))
        .await
        .with_context(|| format!("creating the view of {name}"))?;
    let reader = match serve {
        Some(_) => Some(tokio::spawn(point_reads(
            server.client().await?,
            format!("nexmark_{name}"),
        ))),
        None => None,
    };
    let mut last_report = Instant::now();
    // Paced: the events up to an offset are due at `paced_from + offset / rate`; how long
    // after that the offset is seen committed is how fresh the view is.
    let paced_from = Instant::now();
    let mut seen = 0i64;
    let mut lags = Vec::new();
    loop {
        let offset = nexmark::offset(&client).await?;
        if let Some(rate) = serve
            && offset > seen
        {
            seen = offset;
            let due = paced_from + Duration::from_secs_f64(offset as f64 / rate as f64);
            let now = Instant::now();
            lags.push(now.saturating_duration_since(due).as_secs_f64() * 1e3);
        }
        if offset as u64 >= events {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(&format!(
                "{name}: {offset} of {events} events ({:.0}%)",
                offset as f64 * 100.0 / events as f64
            ));
            last_report = Instant::now();
        }
        let poll = if serve.is_some() { 1 } else { 5 };
        tokio::time::sleep(Duration::from_millis(poll)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    if !lags.is_empty() {
        lags.sort_by(f64::total_cmp);
        let (p50, p99) = (crate::quantile(&lags, 0.5), crate::quantile(&lags, 0.99));
        println!(
            "nexmark {name} freshness epochs={} p50_ms={p50:.1} p99_ms={p99:.1}",
            lags.len()
        );
        crate::report(
            "nexmark_freshness",
            serde_json::json!({"query": name, "epochs": lags.len(), "p50_ms": p50, "p99_ms": p99}),
        );
    }
    if serve.is_none() {
        settle(pid).await?;
    }
    let cpu_seconds = cpu_seconds(pid)? - cpu_before;
    let peak_rss_mb = peak_rss_mb(pid)?;
    let state = client
        .query_one(
            "SELECT coalesce(state_rows, 0), coalesce(state_bytes, 0) \
             FROM eddy_catalog.progress WHERE relation = $1",
            &[&format!("nexmark_{name}")],
        )
        .await
        .context("reading the view's state figures")?;
    let state = State {
        rows: state.get(0),
        bytes: state.get(1),
    };
    if let Some(reader) = reader {
        reader.abort();
        let _ = reader.await;
        report_reads(name, serve.unwrap_or(0), seconds);
    }
    if check {
        check_view(&client, name, sql).await?;
    }
    let run = Run {
        seconds,
        cpu_seconds,
        peak_rss_mb,
    };
    Ok((run, state))
}

/// The columns of a ranking query that its ties cannot change: bids tied in the ORDER BY
/// (equal times in q18, equal prices in q19) rank in an order SQL leaves open, so the view
/// (which breaks ties by the row's encoding) and the batch query may pick different rows.
fn tie_free_columns(name: &str) -> Option<&'static str> {
    match name {
        "q18" => Some("auction, bidder, date_time"),
        "q19" => Some("auction, rank_number, price"),
        _ => None,
    }
}

/// Checks that the view equals its batch query over the same events. For a ranking with
/// ties, on the columns ties cannot change, and every row of the view must be a bid.
async fn check_view(client: &tokio_postgres::Client, name: &str, sql: &str) -> Result<()> {
    let view = format!("nexmark_{name}");
    let batch = nexmark::select(sql);
    let (view_rows, batch_rows) = match tie_free_columns(name) {
        None => (format!("SELECT * FROM {view}"), batch),
        Some(columns) => {
            let strays = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {view} v WHERE NOT EXISTS (SELECT 1 FROM bid b \
                         WHERE b.auction = v.auction AND b.bidder = v.bidder \
                         AND b.price = v.price AND b.date_time = v.date_time \
                         AND b.extra = v.extra)"
                    ),
                    &[],
                )
                .await?
                .get::<_, i64>(0);
            ensure!(strays == 0, "{name}: {strays} rows of the view are no bid");
            (
                format!("SELECT {columns} FROM {view}"),
                format!("SELECT {columns} FROM ({batch}) AS b"),
            )
        }
    };
    let view_rows = sorted_rows(client, &view_rows).await?;
    let batch_rows = sorted_rows(client, &batch_rows).await?;
    if let Err(e) = compare_rows(&view_rows, &batch_rows) {
        bail!("{name}: the view differs from its batch query: {e}");
    }
    progress(&format!(
        "{name}: the view equals its batch query ({} rows)",
        view_rows.len()
    ));
    Ok(())
}

/// Latencies of the point reads of the running query, in microseconds.
static LATENCIES: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());
/// Rows the point reads returned.
static ROWS_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prepared point SELECTs by the view's first column, for keys among those the view holds,
/// back to back until aborted.
async fn point_reads(client: tokio_postgres::Client, view: String) -> Result<()> {
    LATENCIES.lock().expect("latencies").clear();
    ROWS_READ.store(0, std::sync::atomic::Ordering::Relaxed);
    let first = client
        .prepare(&format!("SELECT * FROM {view} LIMIT 0"))
        .await?
        .columns()
        .first()
        .context("a view without columns")?
        .name()
        .to_string();
    let lookup = client
        .prepare(&format!("SELECT * FROM {view} WHERE {first} = $1"))
        .await?;
    let mut keys: Vec<i64> = Vec::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0u64.. {
        if keys.is_empty() || n.is_multiple_of(1000) {
            // Refresh the keys now and then: the view grows.
            keys = client
                .query(
                    &format!("SELECT DISTINCT {first} FROM {view} LIMIT 10000"),
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect();
            if keys.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = keys[(state % keys.len() as u64) as usize];
        let t = Instant::now();
        let rows = client.query(&lookup, &[&key]).await?;
        ROWS_READ.fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        LATENCIES
            .lock()
            .expect("latencies")
            .push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(())
}

fn report_reads(name: &str, rate: u64, seconds: f64) {
    let mut l = std::mem::take(&mut *LATENCIES.lock().expect("latencies"));
    l.sort_by(f64::total_cmp);
    let (p50, p99) = (crate::quantile(&l, 0.5), crate::quantile(&l, 0.99));
    let qps = l.len() as f64 / seconds;
    let rows = ROWS_READ.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "nexmark {name} serving ingest_rate={rate} reads={} rows_read={rows} p50_us={p50:.0} \
         p99_us={p99:.0} queries_per_sec={qps:.0}",
        l.len()
    );
    crate::report(
        "nexmark_serving",
        serde_json::json!({"query": name, "ingest_rate": rate, "reads": l.len(),
            "p50_us": p50, "p99_us": p99, "queries_per_sec": qps}),
    );
}

/// User plus system CPU time of a process so far.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks_per_second())
}

/// Waits (ten seconds at most) until a process's CPU time stops growing for half a second.
async fn settle(pid: u32) -> Result<()> {
    let mut last = cpu_seconds(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cpu_seconds(pid)?;
        if now - last < 2.0 / clock_ticks_per_second() {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports CPU times in USER_HZ, 100 on every architecture it runs on today.
    100.0
}

/// The largest resident set the process has had, in MiB.
pub fn peak_rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no VmHWM in /proc status")?
        .parse::<f64>()?;
    Ok(kb / 1024.0)
}
