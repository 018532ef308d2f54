//! `operators`: the stateful operators one at a time, each over about a million keys of
//! state: a stream-table join, a top-N per partition over a table, and a count(DISTINCT).
//! For each: changes per second through the view (timed COPYs, or batched upserts for the
//! table), the state's bytes per entry as `eddy_catalog.progress` estimates it, and the
//! latency of a single-row change (one INSERT, acknowledged once the view has it). The
//! baseline, measured in the same run, is a stateless filter over the same stream.

use std::time::Instant;

use anyhow::{Result, ensure};
use bytes::Bytes;
use eddy_tests::TestServer;
use tokio_postgres::Client;

use crate::{copy_in, median, progress, quantile, report};

const STREAM: &str = "CREATE STREAM ev (id BIGINT, k BIGINT, v BIGINT)";
/// Rows per COPY chunk.
const CHUNK: u64 = 100_000;

/// One operator under test: how its state is built and how changes reach it.
struct Case {
    name: &'static str,
    setup: &'static [&'static str],
    view: &'static str,
    /// Changes go to the table `scores` as upserts, not to the stream.
    upserts: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "baseline (filter)",
        setup: &[],
        view: "SELECT id, k, v FROM ev WHERE v >= 0",
        upserts: false,
    },
    Case {
        name: "join",
        setup: &["CREATE TABLE dim (id BIGINT PRIMARY KEY, w BIGINT)"],
        view: "SELECT e.id, e.v, d.w FROM ev e JOIN dim d ON e.k = d.id",
        upserts: false,
    },
    Case {
        name: "top-n",
        setup: &["CREATE TABLE scores (player BIGINT PRIMARY KEY, game BIGINT, points BIGINT)"],
        view: "SELECT game, player, points FROM (SELECT *, ROW_NUMBER() OVER \
               (PARTITION BY game ORDER BY points DESC, player) AS rn FROM scores) AS t \
               WHERE rn <= 3",
        upserts: true,
    },
    Case {
        name: "count(distinct)",
        setup: &[],
        view: "SELECT k % 1000 AS g, count(DISTINCT v) AS n FROM ev GROUP BY 1",
        upserts: false,
    },
];

/// `id, k, v` rows for ids `from..to`: `k` cycles through `keys`, `v` is the id.
fn rows(from: u64, to: u64, keys: u64) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut id = from;
    while id < to {
        let end = (id + CHUNK).min(to);
        let text: String = (id..end)
            .map(|i| format!("{i},{},{i}\n", i.wrapping_mul(7919) % keys))
            .collect();
        chunks.push(Bytes::from(text));
        id = end;
    }
    chunks
}

/// `keys` rows of the relation that holds the case's state before the timed changes.
async fn fill(client: &Client, case: &Case, keys: u64) -> Result<()> {
    let table = match case.name {
        "join" => "dim",
        "top-n" => "scores",
        "count(distinct)" => "ev",
        _ => return Ok(()),
    };
    let mut done = 0;
    while done < keys {
        let n = 1_000_000.min(keys - done);
        // dim (id, w) and scores (player, game, points) take the same three numbers.
        let chunks = match table {
            "dim" => (done..done + n)
                .collect::<Vec<_>>()
                .chunks(CHUNK as usize)
                .map(|c| {
                    Bytes::from(
                        c.iter()
                            .map(|i| format!("{i},{}\n", i % 97))
                            .collect::<String>(),
                    )
                })
                .collect(),
            _ => rows(done, done + n, 1_000),
        };
        copy_in(client, table, &chunks).await?;
        done += n;
        progress(&format!(
            "operators: {}: {done}/{keys} rows of state",
            case.name
        ));
    }
    Ok(())
}

/// Upserts `count` score changes (random players, new points) in statements of 1,000 rows.
async fn upsert_scores(client: &Client, from: u64, count: u64, keys: u64) -> Result<()> {
    let mut done = 0;
    while done < count {
        let n = 1_000.min(count - done);
        let values: Vec<String> = (from + done..from + done + n)
            .map(|i| {
                let player = i.wrapping_mul(2_654_435_761) % keys;
                format!("({player}, {}, {})", player % 1_000, i % 100_003)
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO scores VALUES {} ON CONFLICT (player) DO UPDATE \
                 SET points = EXCLUDED.points",
                values.join(", ")
            ))
            .await?;
        done += n;
    }
    Ok(())
}

/// Runs every case: changes/s, state bytes per entry and single-change latency.
pub async fn operators(keys: u64, changes: u64, reps: usize, singles: usize) -> Result<()> {
    let mut baseline: Option<(f64, f64)> = None;
    println!(
        "| operator | changes/s | vs baseline | state entries | bytes/entry | single change p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in CASES {
        progress(&format!("operators: {}", case.name));
        let server = TestServer::start().await?;
        let client = server.client().await?;
        client.batch_execute(STREAM).await?;
        for sql in case.setup {
            client.batch_execute(sql).await?;
        }
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {}", case.view))
            .await?;
        fill(&client, case, keys).await?;

        // Throughput: `reps` timed batches of `changes` changes.
        let mut rates = Vec::with_capacity(reps);
        for rep in 0..reps as u64 {
            let from = keys + rep * changes;
            let started = Instant::now();
            if case.upserts {
                upsert_scores(&client, from, changes, keys).await?;
            } else {
                copy_in(&client, "ev", &rows(from, from + changes, keys)).await?;
            }
            let rate = changes as f64 / started.elapsed().as_secs_f64();
            progress(&format!(
                "operators: {} rep {}: {rate:.0} changes/s",
                case.name,
                rep + 1
            ));
            rates.push(rate);
        }
        let rate = median(&mut rates);

        // One change at a time, acknowledged once the view has it.
        let mut latencies = Vec::with_capacity(singles);
        for i in 0..singles as u64 {
            let id = keys + reps as u64 * changes + i;
            let sql = match case.upserts {
                true => format!(
                    "INSERT INTO scores VALUES ({}, {}, {id}) ON CONFLICT (player) DO UPDATE \
                     SET points = EXCLUDED.points",
                    id % keys,
                    (id % keys) % 1_000
                ),
                false => format!("INSERT INTO ev VALUES ({id}, {}, {id})", id % keys),
            };
            let started = Instant::now();
            client.batch_execute(&sql).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
        }
        latencies.sort_by(f64::total_cmp);
        let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));

        let state = client
            .query_one(
                "SELECT state_rows, state_bytes FROM eddy_catalog.progress WHERE relation = 'v'",
                &[],
            )
            .await?;
        let entries = state.get::<_, Option<i64>>(0).unwrap_or(0);
        let bytes = state.get::<_, Option<i64>>(1).unwrap_or(0);
        if case.name != "baseline (filter)" {
            ensure!(entries > 0, "{}: no state reported", case.name);
        }
        let per_entry = match entries {
            0 => 0.0,
            n => bytes as f64 / n as f64,
        };
        let base = *baseline.get_or_insert((rate, p50));
        println!(
            "| {} | {rate:.0} | {:.2} | {entries} | {per_entry:.0} | {p50:.2} ms ({:.2}) | {p99:.2} ms |",
            case.name,
            rate / base.0,
            p50 / base.1
        );
        report(
            &format!("operators/{}", case.name),
            serde_json::json!({
                "changes_per_s": rate,
                "vs_baseline": rate / base.0,
                "state_entries": entries,
                "bytes_per_entry": per_entry,
                "single_change_p50_ms": p50,
                "single_change_p99_ms": p99,
            }),
        );
    }
    Ok(())
}
