//! `eddy-bench kafka`: Kafka in, PostgreSQL out, against a real Kafka-protocol broker (Tansu,
//! as the test suites find it) and the PostgreSQL of `--peer`.
//!
//! - Ingest: N JSON records, produced to a 4-partition topic beforehand, read by a stream
//!   that feeds a GROUP BY view; events/s from CREATE until the view counts them all, and
//!   events per CPU second of the server. Baseline in the same run: the same rows as CSV
//!   through COPY into a stream feeding the same view.
//! - Latency: records produced at a steady rate, each carrying the wall-clock time it was
//!   sent, flow through a stream and a view into a PostgreSQL sink table whose rows are
//!   stamped by PostgreSQL on arrival; p50/p99 of arrival minus sending.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use eddy_tests::TestServer;
use eddy_tests::kafka::KafkaBroker;

use crate::nexmark::cpu_seconds;
use crate::{progress, quantile, report};

const PARTITIONS: i32 = 4;
const GROUPS: u64 = 1_000;
const PRODUCE_CHUNK: u64 = 10_000;
const VIEW: &str =
    "SELECT user_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY user_id";

fn record(id: u64) -> String {
    format!(
        r#"{{"id": {id}, "user_id": {}, "amount": {}.{:02}, "ts": "2024-01-01 00:00:{:02}"}}"#,
        id % GROUPS,
        id % 1000,
        id % 100,
        id % 60
    )
}

pub async fn kafka(events: u64, rate: u64, seconds: u64, peer: &str) -> Result<()> {
    let broker = KafkaBroker::start().await?;
    ingest(&broker, events).await?;
    if peer == "none" {
        progress("no PostgreSQL (--peer none): the latency figure is skipped");
        return Ok(());
    }
    latency(&broker, rate, seconds, peer).await
}

async fn wait_count(client: &tokio_postgres::Client, sql: &str, n: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let row = client.query_one(sql, &[]).await?;
        if row.get::<_, Option<i64>>(0) == Some(n as i64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("`{sql}` never reached {n}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ingest(broker: &KafkaBroker, events: u64) -> Result<()> {
    broker.create_topic("orders", PARTITIONS).await?;
    let producer = broker.producer("orders").await?;
    progress(&format!("producing {events} JSON records"));
    let mut id = 0;
    while id < events {
        let to = (id + PRODUCE_CHUNK).min(events);
        let values: Vec<String> = (id..to).map(record).collect();
        producer
            .send((id / PRODUCE_CHUNK % PARTITIONS as u64) as i32, &values)
            .await?;
        id = to;
    }
    let columns = "id BIGINT NOT NULL, user_id BIGINT, amount NUMERIC(10,2), ts TIMESTAMP";

    // Kafka JSON into the view.
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pid = server.pid().context("the server is not running")?;
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE STREAM orders ({columns}) WITH (connector = 'kafka', brokers = '{}', \
             topic = 'orders', format = 'json'); CREATE MATERIALIZED VIEW per_user AS {VIEW}",
            broker.address()
        ))
        .await?;
    wait_count(&client, "SELECT sum(n)::bigint FROM per_user", events).await?;
    let kafka_seconds = start.elapsed().as_secs_f64();
    let kafka_cpu = cpu_seconds(pid)? - cpu_before;
    drop(server);

    // Baseline: the same rows as CSV through COPY.
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pid = server.pid().context("the server is not running")?;
    client
        .batch_execute(&format!(
            "CREATE STREAM orders ({columns}); CREATE MATERIALIZED VIEW per_user AS {VIEW}"
        ))
        .await?;
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    let mut id = 0;
    while id < events {
        let to = (id + PRODUCE_CHUNK * 10).min(events);
        let csv: String = (id..to)
            .map(|i| {
                format!(
                    "{i},{},{}.{:02},2024-01-01 00:00:{:02}\n",
                    i % GROUPS,
                    i % 1000,
                    i % 100,
                    i % 60
                )
            })
            .collect();
        crate::copy_in(&client, "orders", &[bytes::Bytes::from(csv)]).await?;
        id = to;
    }
    wait_count(&client, "SELECT sum(n)::bigint FROM per_user", events).await?;
    let copy_seconds = start.elapsed().as_secs_f64();
    let copy_cpu = cpu_seconds(pid)? - cpu_before;

    let kafka_rate = events as f64 / kafka_seconds;
    let kafka_per_cpu = events as f64 / kafka_cpu;
    let copy_per_cpu = events as f64 / copy_cpu;
    println!(
        "kafka ingest: events={events} seconds={kafka_seconds:.2} events_per_sec={kafka_rate:.0} \
         cpu_seconds={kafka_cpu:.2} events_per_cpu_sec={kafka_per_cpu:.0}"
    );
    println!(
        "copy baseline: seconds={copy_seconds:.2} cpu_seconds={copy_cpu:.2} \
         events_per_cpu_sec={copy_per_cpu:.0}; kafka/copy per CPU second = {:.2}",
        kafka_per_cpu / copy_per_cpu
    );
    report(
        "kafka_ingest",
        serde_json::json!({"events": events, "events_per_sec": kafka_rate,
            "events_per_cpu_sec": kafka_per_cpu, "copy_events_per_cpu_sec": copy_per_cpu}),
    );
    Ok(())
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

async fn latency(broker: &KafkaBroker, rate: u64, seconds: u64, peer: &str) -> Result<()> {
    broker.create_topic("ticks", PARTITIONS).await?;
    let pg = {
        let (client, connection) = tokio_postgres::connect(peer, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
    };
    let table = format!("eddy_bench_latency_{}", std::process::id());
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT, sent_us BIGINT, \
         arrived TIMESTAMPTZ DEFAULT clock_timestamp())"
    ))
    .await?;
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client
        .batch_execute(&format!(
            "CREATE STREAM ticks (id BIGINT, sent_us BIGINT) WITH (connector = 'kafka', \
             brokers = '{}', topic = 'ticks'); \
             CREATE MATERIALIZED VIEW fresh AS SELECT id, sent_us FROM ticks WHERE id >= 0; \
             CREATE SINK fresh_pg FROM fresh WITH (connector = 'postgres', \
             url = '{peer}', table = '{table}', \
             output_mode = 'append')",
            broker.address()
        ))
        .await?;
    progress(&format!("producing {rate} records/s for {seconds} s"));
    let producer = broker.producer("ticks").await?;
    let per_tick = (rate / 100).max(1);
    let total = rate * seconds;
    let start = Instant::now();
    let mut id = 0;
    while id < total {
        let due = start + Duration::from_millis(10 * (id / per_tick));
        tokio::time::sleep_until(due.into()).await;
        let sent = now_micros();
        let values: Vec<String> = (id..id + per_tick)
            .map(|i| format!(r#"{{"id": {i}, "sent_us": {sent}}}"#))
            .collect();
        producer
            .send((id / per_tick % PARTITIONS as u64) as i32, &values)
            .await?;
        id += per_tick;
    }
    wait_count(&pg, &format!("SELECT count(*) FROM {table}"), total).await?;
    let rows = pg
        .query(
            &format!(
                "SELECT (extract(epoch FROM arrived) * 1000000)::bigint - sent_us FROM {table} \
                 ORDER BY 1"
            ),
            &[],
        )
        .await?;
    let lags: Vec<f64> = rows
        .iter()
        .map(|r| r.get::<_, i64>(0) as f64 / 1000.0)
        .collect();
    let (p50, p99) = (quantile(&lags, 0.5), quantile(&lags, 0.99));
    println!(
        "kafka -> view -> postgres at {rate}/s: records={total} p50_ms={p50:.1} p99_ms={p99:.1}"
    );
    report(
        "kafka_to_postgres_latency",
        serde_json::json!({"rate": rate, "records": total, "p50_ms": p50, "p99_ms": p99}),
    );
    pg.batch_execute(&format!("DROP TABLE {table}")).await?;
    Ok(())
}
