//! `eddy-bench`: the figures of BENCHMARKS.md, measured over the wire against a real server,
//! each beside PostgreSQL doing the same work in the same run when one is reachable.
//!
//! - `copy`: COPY FROM STDIN (csv) into a stream that feeds a GROUP BY view; rows/s until the
//!   COPY is acknowledged (committed, view included). Peer: COPY into a plain PostgreSQL table.
//! - `insert`: a 1,000-row INSERT into a stream over N existing rows that feeds a GROUP BY
//!   view; latency until acknowledged (and so visible). Peer: INSERT plus REFRESH
//!   MATERIALIZED VIEW over the same rows.
//! - `point`: a prepared point SELECT by key on a view over the extended protocol; p50/p99
//!   latency and queries/s, idle and while another connection ingests. Peer: the same query on
//!   a PostgreSQL materialized view with a unique index.
//! - `window`: event-time windows. Throughput: COPY into a stream with a watermark feeding a
//!   10-second TUMBLE (or HOP) count per key; events/s until acknowledged. Freshness: a
//!   subscriber on the windowed view while small INSERTs arrive at a steady rate; the time
//!   from sending an INSERT to receiving its change, p50/p99. Peer figures (Spark Structured
//!   Streaming on the same query) come from `peers/spark_bench.py`, run separately.
//! - `nexmark`: the Nexmark queries (`bench/nexmark/`) as views over the built-in source;
//!   events/s, events per CPU second and peak RSS of the server, one line per query.
//! - `kafka`: Kafka JSON into a GROUP BY view (events per CPU second, beside COPY of the same
//!   rows), and the latency from producing a record to its row in a PostgreSQL sink table.
//!
//! - `operators`: a join, a top-N and a count(DISTINCT) view over a million keys of state:
//!   changes/s, state bytes per entry and single-change latency, beside a stateless filter.
//! - `compat`: connection set-up and psql's `\d` listing and `\d name` queries over 20 tables
//!   and 20 views. Peer: the same on PostgreSQL with the same relations.
//!
//! Progress goes to stderr; results go to stdout as a table and one `RESULT {json}` line per
//! figure. Every figure is a median over repetitions.

mod compat;
mod kafka;
mod nexmark;
mod operators;
mod window;

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use eddy_tests::TestServer;
use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
#[command(about = "Benchmarks Eddy over the wire, beside PostgreSQL")]
struct Args {
    /// PostgreSQL to measure the same work on ("none" to skip).
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )]
    peer: String,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// COPY into a stream feeding a GROUP BY view.
    Copy {
        /// Rows per COPY.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// COPYs to time (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// A 1,000-row INSERT into a stream over many existing rows feeding a GROUP BY view.
    Insert {
        /// Rows in the stream before the timed INSERTs.
        #[arg(long, default_value_t = 10_000_000)]
        existing: u64,
        /// Rows per timed INSERT.
        #[arg(long, default_value_t = 1_000)]
        batch: u64,
        #[arg(long, default_value_t = 21)]
        reps: usize,
    },
    /// Point SELECTs by key on a view, over the extended protocol.
    Point {
        /// Distinct keys (rows of the view).
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Timed queries per phase.
        #[arg(long, default_value_t = 20_000)]
        queries: usize,
    },
    /// Event-time windows: throughput of TUMBLE and HOP counts, and change freshness.
    Window {
        /// Events per COPY.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// INSERTs timed for freshness (one every 10 ms).
        #[arg(long, default_value_t = 1_000)]
        inserts: usize,
        /// Events of the in-process rate source per window kind.
        #[arg(long, default_value_t = 30_000_000)]
        rate_rows: u64,
    },
    /// Nexmark queries as materialized views over the built-in Nexmark source.
    Nexmark {
        /// Queries to run (q0, q1, ...; "all" for every one).
        #[arg(long = "query", default_value = "all", num_args = 1..)]
        queries: Vec<String>,
        /// Events per query.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Events per epoch.
        #[arg(long, default_value_t = 100_000)]
        per_epoch: u64,
        /// Afterwards, compare each view with its batch query (small runs).
        #[arg(long)]
        check: bool,
        /// Pace the source to this many events/s and time point SELECTs by the view's first
        /// column (a BIGINT) on another connection while it ingests.
        #[arg(long)]
        serve: Option<u64>,
    },
    /// Kafka JSON into a GROUP BY view (beside COPY), and Kafka -> view -> PostgreSQL latency.
    Kafka {
        /// Records for the ingest figure.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Records per second for the latency figure.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds the latency figure produces for.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Stateful operators over a large state: changes/s, bytes per entry, one-change latency.
    Operators {
        /// Entries of state each operator starts from.
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
        /// Changes per timed batch.
        #[arg(long, default_value_t = 100_000)]
        changes: u64,
        /// Timed batches (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Single-row changes to time.
        #[arg(long, default_value_t = 200)]
        singles: usize,
    },
    /// Connection set-up and psql's catalog queries (`\d`, `\d name`).
    Compat {
        /// Connections and catalog queries to time.
        #[arg(long, default_value_t = 200)]
        reps: usize,
    },
    /// Every workload with its defaults.
    All,
}

/// Groups of the GROUP BY views.
const GROUPS: u64 = 1_000;
/// Rows per CSV chunk sent in a COPY.
const COPY_CHUNK_ROWS: u64 = 10_000;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    machine();
    let peer = Peer::connect(&args.peer).await;
    match args.workload {
        Workload::Copy { rows, reps } => copy(rows, reps, &peer).await,
        Workload::Insert {
            existing,
            batch,
            reps,
        } => insert(existing, batch, reps, &peer).await,
        Workload::Point { keys, queries } => point(keys, queries, &peer).await,
        Workload::Window {
            rows,
            reps,
            inserts,
            rate_rows,
        } => window::window(rows, reps, inserts, rate_rows).await,
        Workload::Nexmark {
            queries,
            events,
            per_epoch,
            check,
            serve,
        } => nexmark::nexmark(&queries, events, per_epoch, check, serve).await,
        Workload::Kafka {
            events,
            rate,
            seconds,
        } => kafka::kafka(events, rate, seconds, &args.peer).await,
        Workload::Operators {
            keys,
            changes,
            reps,
            singles,
        } => operators::operators(keys, changes, reps, singles).await,
        Workload::Compat { reps } => compat::compat(reps, &peer, &args.peer).await,
        Workload::All => {
            copy(1_000_000, 5, &peer).await?;
            insert(10_000_000, 1_000, 21, &peer).await?;
            point(100_000, 20_000, &peer).await?;
            compat::compat(200, &peer, &args.peer).await?;
            window::window(1_000_000, 5, 1_000, 30_000_000).await
        }
    }
}

/// Prints what the figures were measured on.
fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# machine: {cores} cores, {cpu}; load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// PostgreSQL, when reachable.
pub(crate) struct Peer(pub(crate) Option<Client>);

impl Peer {
    async fn connect(config: &str) -> Self {
        if config == "none" {
            return Self(None);
        }
        match tokio_postgres::connect(config, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                let version = match client.query_one("SHOW server_version", &[]).await {
                    Ok(row) => row.get::<_, String>(0),
                    Err(_) => "?".into(),
                };
                println!("# peer: PostgreSQL {version}");
                Self(Some(client))
            }
            Err(e) => {
                println!("# peer: none ({e}); figures are Eddy's alone");
                Self(None)
            }
        }
    }
}

pub(crate) fn progress(message: &str) {
    eprintln!("[eddy-bench] {message}");
}

/// The median of some measurements.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The value below which a fraction `q` of the (sorted) measurements fall.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn report(name: &str, fields: serde_json::Value) {
    println!(
        "RESULT {}",
        serde_json::json!({ "bench": name, "figures": fields })
    );
}

/// CSV rows `id, k, v, ts` for ids `from..to`.
fn csv_rows(from: u64, to: u64) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut id = from;
    while id < to {
        let end = (id + COPY_CHUNK_ROWS).min(to);
        let mut s = String::with_capacity(((end - id) * 40) as usize);
        for i in id..end {
            let k = i.wrapping_mul(7919) % GROUPS;
            let secs = i % 86_400;
            s.push_str(&format!(
                "{i},{k},{},2024-01-01 {:02}:{:02}:{:02}\n",
                i % 100,
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ));
        }
        chunks.push(Bytes::from(s));
        id = end;
    }
    chunks
}

/// COPYs rows into a relation; returns the rows the server acknowledged.
async fn copy_in(client: &Client, table: &str, chunks: &[Bytes]) -> Result<u64> {
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {table} FROM STDIN (FORMAT csv)"))
        .await?;
    let mut sink = std::pin::pin!(sink);
    for chunk in chunks {
        sink.send(chunk.clone()).await?;
    }
    Ok(sink.as_mut().finish().await?)
}

/// `reps` timed COPYs of `rows` rows each (rows `rep * rows..`, made by `make`); rows/s of each.
async fn timed_copies(
    client: &Client,
    table: &str,
    rows: u64,
    reps: usize,
    make: fn(u64, u64) -> Vec<Bytes>,
    label: &str,
) -> Result<Vec<f64>> {
    let mut rates = Vec::with_capacity(reps);
    for rep in 0..reps as u64 {
        let chunks = make(rep * rows, (rep + 1) * rows);
        let started = Instant::now();
        let n = copy_in(client, table, &chunks).await?;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        progress(&format!("{label} rep {}/{reps}: {rate:.0} rows/s", rep + 1));
        rates.push(rate);
    }
    Ok(rates)
}

/// Loads `rows` rows into a relation in COPYs of at most a million rows, with progress.
async fn load(client: &Client, table: &str, from: u64, rows: u64, who: &str) -> Result<()> {
    let step = 1_000_000;
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let n = step.min(rows - done);
        copy_in(client, table, &csv_rows(from + done, from + done + n)).await?;
        done += n;
        progress(&format!(
            "{who}: loaded {done}/{rows} rows into {table} ({:.0} rows/s)",
            done as f64 / started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

const STREAM_DDL: &str = "CREATE STREAM events (id BIGINT, k INT, v INT, ts TIMESTAMP)";
const VIEW_DDL: &str = "CREATE MATERIALIZED VIEW per_k AS \
     SELECT k, count(*) AS c, sum(v) AS s FROM events GROUP BY k";
const PG_TABLE_DDL: &str = "CREATE TABLE events (id BIGINT, k INT, v INT, ts TIMESTAMP)";
const PG_SETUP: &str = "DROP MATERIALIZED VIEW IF EXISTS per_k; DROP TABLE IF EXISTS events";

async fn copy(rows: u64, reps: usize, peer: &Peer) -> Result<()> {
    progress(&format!("copy: {reps} COPYs of {rows} rows"));
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(STREAM_DDL).await?;
    client.batch_execute(VIEW_DDL).await?;
    let mut eddy = timed_copies(&client, "events", rows, reps, csv_rows, "copy: eddy").await?;
    let total: i64 = client
        .query_one("SELECT sum(c)::BIGINT FROM per_k", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        total as u64 == rows * reps as u64,
        "the view counts {total} rows"
    );
    let eddy = median(&mut eddy);

    let mut pg = Vec::new();
    if let Some(pgc) = &peer.0 {
        pgc.batch_execute(PG_SETUP).await?;
        pgc.batch_execute(PG_TABLE_DDL).await?;
        pg = timed_copies(pgc, "events", rows, reps, csv_rows, "copy: postgres").await?;
        pgc.batch_execute(PG_SETUP).await?;
    }
    let pg = (!pg.is_empty()).then(|| median(&mut pg));
    println!(
        "copy: {rows} rows per COPY, median of {reps}: eddy {eddy:.0} rows/s (stream + GROUP BY view){}",
        pg.map_or(String::new(), |p| format!(
            "; postgres {p:.0} rows/s (plain table); ratio {:.2}",
            eddy / p
        ))
    );
    report(
        "copy",
        serde_json::json!({ "rows": rows, "reps": reps, "eddy_rows_per_s": eddy, "postgres_rows_per_s": pg }),
    );
    Ok(())
}

/// Multi-row VALUES for ids `from..from + n`.
fn values(from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "({i}, {}, {}, '2024-01-02 00:00:00')",
                i.wrapping_mul(7919) % GROUPS,
                i % 100
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert(existing: u64, batch: u64, reps: usize, peer: &Peer) -> Result<()> {
    progress(&format!(
        "insert: {reps} INSERTs of {batch} rows over {existing} rows"
    ));
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(STREAM_DDL).await?;
    client.batch_execute(VIEW_DDL).await?;
    load(&client, "events", 0, existing, "eddy").await?;
    let mut eddy = Vec::new();
    for rep in 0..reps {
        let sql = format!(
            "INSERT INTO events VALUES {}",
            values(existing + rep as u64 * batch, batch)
        );
        let started = Instant::now();
        client.batch_execute(&sql).await?;
        eddy.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let total: i64 = client
        .query_one("SELECT sum(c)::BIGINT FROM per_k", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        total as u64 == existing + batch * reps as u64,
        "the view counts {total} rows"
    );
    let eddy = median(&mut eddy);
    drop(server);

    let mut pg = Vec::new();
    if let Some(pgc) = &peer.0 {
        pgc.batch_execute(PG_SETUP).await?;
        pgc.batch_execute(PG_TABLE_DDL).await?;
        load(pgc, "events", 0, existing, "postgres").await?;
        pgc.batch_execute(
            "CREATE MATERIALIZED VIEW per_k AS \
             SELECT k, count(*) AS c, sum(v) AS s FROM events GROUP BY k; \
             CREATE UNIQUE INDEX per_k_k ON per_k (k); ANALYZE events",
        )
        .await?;
        for rep in 0..reps {
            let sql = format!(
                "INSERT INTO events VALUES {}",
                values(existing + rep as u64 * batch, batch)
            );
            let started = Instant::now();
            pgc.batch_execute(&sql).await?;
            pgc.batch_execute("REFRESH MATERIALIZED VIEW per_k").await?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            progress(&format!(
                "insert: postgres rep {}/{reps}: {ms:.1} ms",
                rep + 1
            ));
            pg.push(ms);
        }
        pgc.batch_execute(PG_SETUP).await?;
    }
    let pg = (!pg.is_empty()).then(|| median(&mut pg));
    println!(
        "insert: {batch} rows over {existing}, median of {reps}: eddy {eddy:.2} ms until visible{}",
        pg.map_or(String::new(), |p| format!(
            "; postgres INSERT + REFRESH {p:.1} ms; eddy is {:.0}x faster",
            p / eddy
        ))
    );
    report(
        "insert",
        serde_json::json!({ "existing": existing, "batch": batch, "reps": reps, "eddy_ms": eddy, "postgres_refresh_ms": pg }),
    );
    Ok(())
}

/// Latencies (µs) of `queries` prepared point SELECTs over keys `0..keys`.
async fn point_queries(client: &Client, sql: &str, keys: u64, queries: usize) -> Result<Vec<f64>> {
    let stmt = client.prepare(sql).await?;
    let mut latencies = Vec::with_capacity(queries);
    for q in 0..queries {
        let key = ((q as u64).wrapping_mul(2_654_435_761) % keys) as i64;
        let started = Instant::now();
        let rows = client
            .query(&stmt, &[&key])
            .await
            .map_err(|e| anyhow::anyhow!("point SELECT for key {key}: {e:?}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(rows.len() == 1, "key {key} returned {} rows", rows.len());
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

struct Serving {
    p50_us: f64,
    p99_us: f64,
    qps: f64,
}

fn serving(latencies: &[f64]) -> Serving {
    Serving {
        p50_us: quantile(latencies, 0.5),
        p99_us: quantile(latencies, 0.99),
        qps: latencies.len() as f64 / (latencies.iter().sum::<f64>() / 1e6),
    }
}

async fn point(keys: u64, queries: usize, peer: &Peer) -> Result<()> {
    progress(&format!("point: {queries} point SELECTs over {keys} keys"));
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client
        .batch_execute("CREATE STREAM readings (k BIGINT, v BIGINT)")
        .await?;
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW latest AS \
             SELECT k, count(*) AS n, max(v) AS top FROM readings GROUP BY k",
        )
        .await?;
    let rows: Vec<String> = (0..keys * 2)
        .map(|i| format!("({}, {i})", i % keys))
        .collect();
    for chunk in rows.chunks(50_000) {
        client
            .batch_execute(&format!("INSERT INTO readings VALUES {}", chunk.join(", ")))
            .await?;
    }
    progress("point: view loaded; warming up");
    let sql = "SELECT k, n, top FROM latest WHERE k = $1";
    point_queries(&client, sql, keys, queries / 10).await?;
    progress("point: idle");
    let idle = serving(&point_queries(&client, sql, keys, queries).await?);

    progress("point: while another connection inserts 1,000 rows at a time");
    let writer = server.client().await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    let ingest = tokio::spawn(async move {
        let mut i = 0u64;
        let mut inserted = 0u64;
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            let batch: Vec<String> = (i..i + 1000)
                .map(|j| format!("({}, {j})", j % keys))
                .collect();
            writer
                .batch_execute(&format!("INSERT INTO readings VALUES {}", batch.join(", ")))
                .await
                .map_err(|e| anyhow::anyhow!("ingest: {e:?}"))?;
            i += 1000;
            inserted += 1000;
        }
        anyhow::Ok(inserted)
    });
    let started = Instant::now();
    let busy = serving(&point_queries(&client, sql, keys, queries).await?);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let inserted = ingest.await??;
    let ingest_rate = inserted as f64 / started.elapsed().as_secs_f64();

    let mut pg = None;
    if let Some(pgc) = &peer.0 {
        pgc.batch_execute(
            "DROP MATERIALIZED VIEW IF EXISTS latest; DROP TABLE IF EXISTS readings; \
             CREATE TABLE readings (k BIGINT, v BIGINT)",
        )
        .await?;
        pgc.batch_execute(&format!(
            "INSERT INTO readings SELECT g % {keys}, g FROM generate_series(0, {}) g; \
             CREATE MATERIALIZED VIEW latest AS \
             SELECT k, count(*) AS n, max(v) AS top FROM readings GROUP BY k; \
             CREATE UNIQUE INDEX latest_k ON latest (k); ANALYZE latest",
            keys * 2 - 1
        ))
        .await?;
        point_queries(pgc, sql, keys, queries / 10).await?;
        progress("point: postgres");
        pg = Some(serving(&point_queries(pgc, sql, keys, queries).await?));
        pgc.batch_execute("DROP MATERIALIZED VIEW latest; DROP TABLE readings")
            .await?;
    }
    let show = |s: &Serving| {
        format!(
            "p50 {:.0} µs, p99 {:.0} µs, {:.0} queries/s",
            s.p50_us, s.p99_us, s.qps
        )
    };
    println!("point: {queries} prepared SELECTs by key over {keys} view rows, one connection");
    println!("  eddy idle:      {}", show(&idle));
    println!(
        "  eddy ingesting: {} (writer: {ingest_rate:.0} rows/s)",
        show(&busy)
    );
    if let Some(p) = &pg {
        println!("  postgres:       {}", show(p));
    }
    let json =
        |s: &Serving| serde_json::json!({ "p50_us": s.p50_us, "p99_us": s.p99_us, "qps": s.qps });
    report(
        "point",
        serde_json::json!({
            "keys": keys, "queries": queries, "eddy_idle": json(&idle), "eddy_ingesting": json(&busy),
            "ingest_rows_per_s": ingest_rate, "postgres": pg.as_ref().map(json),
        }),
    );
    drop(server);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
