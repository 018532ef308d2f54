//! Point reads: a SELECT by key is answered from the store without planning, and must give
//! exactly what the planned query gives, over both protocols, with parameters of the column's
//! type or another integer type, NULL keys, duplicate rows, composite table keys, and while
//! writes commit (a read never sees part of an epoch).
//!
//! `... AND true` keeps a query off the point-read path (it is not a conjunction of
//! equalities), which makes it the planned reference for the same read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, ensure};
use chrono::NaiveDateTime;
use eddy_tests::{TestServer, execute, sorted_rows};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

const SETUP: &str = "
    CREATE STREAM ev (k BIGINT, g TEXT, v INT, ts TIMESTAMP);
    CREATE MATERIALIZED VIEW per_kg AS
        SELECT k, g, count(*) AS n, sum(v) AS total, max(ts) AS last FROM ev GROUP BY k, g;
    CREATE MATERIALIZED VIEW pairs AS SELECT g, v FROM ev WHERE v < 5;
    CREATE TABLE dim (id INT, region TEXT, label TEXT, PRIMARY KEY (id, region));
";

async fn load(client: &Client, rng: &mut StdRng) -> Result<()> {
    for _ in 0..5 {
        let rows: Vec<String> = (0..200)
            .map(|_| {
                let k = rng.random_range(0..20);
                let g = ["'a'", "'b'", "NULL", "''"][rng.random_range(0..4)];
                let v = rng.random_range(0..10);
                let s = rng.random_range(0..60);
                format!("({k}, {g}, {v}, '2024-01-01 00:00:{s:02}')")
            })
            .collect();
        execute(
            client,
            &format!("INSERT INTO ev VALUES {}", rows.join(", ")),
        )
        .await?;
    }
    for id in 0..30 {
        for region in ["eu", "us"] {
            execute(
                client,
                &format!("INSERT INTO dim VALUES ({id}, '{region}', 'l{id}{region}')"),
            )
            .await?;
        }
    }
    execute(client, "DELETE FROM dim WHERE id % 7 = 0 AND region = 'eu'").await?;
    execute(client, "UPDATE dim SET label = 'moved' WHERE id % 5 = 0").await?;
    Ok(())
}

/// The rows of a prepared query whose columns are read as `T`, sorted.
async fn typed<T: Ord>(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> T,
) -> Result<Vec<T>> {
    let mut rows: Vec<T> = client.query(sql, params).await?.iter().map(read).collect();
    rows.sort();
    Ok(rows)
}

type KgRow = (i64, Option<String>, i64, Option<i64>, Option<NaiveDateTime>);

fn kg_row(r: &Row) -> KgRow {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

#[tokio::test]
async fn point_reads_equal_planned_reads() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(SETUP).await?;
    let mut rng = StdRng::seed_from_u64(7);
    load(&client, &mut rng).await?;

    let mut found = 0;
    for k in -1..22i64 {
        // The simple protocol, with literals.
        for (fast, planned) in [
            (
                format!("SELECT * FROM per_kg WHERE k = {k}"),
                format!("SELECT * FROM per_kg WHERE k = {k} AND true"),
            ),
            (
                format!("SELECT g AS grp, n FROM public.per_kg p WHERE p.k = {k} AND (g = 'a')"),
                format!("SELECT g AS grp, n FROM per_kg p WHERE p.k = {k} AND g = 'a' AND true"),
            ),
            (
                format!("SELECT label FROM dim WHERE region = 'us' AND dim.id = {k}"),
                format!("SELECT label FROM dim WHERE region = 'us' AND id = {k} AND true"),
            ),
        ] {
            let a = sorted_rows(&client, &fast).await?;
            let b = sorted_rows(&client, &planned).await?;
            ensure!(a == b, "{fast}: {a:?}, planned: {b:?}");
            found += a.len();
        }

        // The extended protocol, binary results, parameters of the column's type.
        let sql = "SELECT k, g, n, total, last FROM per_kg WHERE k = $1";
        let a = typed(&client, sql, &[&k], kg_row).await?;
        let b = typed(&client, &format!("{sql} AND true"), &[&k], kg_row).await?;
        ensure!(a == b, "k = {k}: {a:?}, planned: {b:?}");

        let id = k as i32;
        let sql = "SELECT * FROM dim WHERE id = $1 AND region = $2";
        let read = |r: &Row| -> (i32, String, String) { (r.get(0), r.get(1), r.get(2)) };
        let a = typed(&client, sql, &[&id, &"eu"], read).await?;
        let b = typed(&client, &format!("{sql} AND true"), &[&id, &"eu"], read).await?;
        ensure!(a == b, "id = {id}: {a:?}, planned: {b:?}");
    }
    ensure!(found > 50, "the reads found only {found} rows");

    // A parameter declared as another integer type than its column.
    let narrow = client
        .prepare_typed(
            "SELECT k, g, n, total, last FROM per_kg WHERE k = $1",
            &[Type::INT4],
        )
        .await?;
    let rows: Vec<KgRow> = client
        .query(&narrow, &[&3i32])
        .await?
        .iter()
        .map(kg_row)
        .collect();
    let planned = typed(
        &client,
        "SELECT k, g, n, total, last FROM per_kg WHERE k = 3 AND true",
        &[],
        kg_row,
    )
    .await?;
    let mut rows = rows;
    rows.sort();
    ensure!(
        !rows.is_empty() && rows == planned,
        "{rows:?} vs {planned:?}"
    );

    // NULL equals nothing: not the NULL group, not any row.
    let none: Option<String> = None;
    let sql = "SELECT g, v FROM pairs WHERE g = $1";
    ensure!(client.query(sql, &[&none]).await?.is_empty());
    ensure!(
        sorted_rows(&client, "SELECT * FROM pairs WHERE g = NULL")
            .await?
            .is_empty()
    );

    // Duplicate rows come back as often as the view holds them.
    for g in ["a", "b", ""] {
        let read = |r: &Row| -> (String, i32) { (r.get(0), r.get(1)) };
        let a = typed(&client, sql, &[&g], read).await?;
        let b = typed(&client, &format!("{sql} AND true"), &[&g], read).await?;
        ensure!(a == b, "g = {g:?}: {} rows, planned {}", a.len(), b.len());
        ensure!(
            a.windows(2).any(|w| w[0] == w[1]),
            "no duplicate rows for {g:?}"
        );
    }
    Ok(())
}

/// Each write adds one row for every key of a bucket, so at any epoch every key of the bucket
/// has the same count: a read that saw part of an epoch would find two counts.
#[tokio::test]
async fn point_reads_see_whole_epochs_while_writes_commit() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM taps (bucket INT, k INT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW tapped AS \
         SELECT bucket, k, count(*) AS n FROM taps GROUP BY bucket, k",
    )
    .await?;
    let keys = 50;
    let row = (0..keys)
        .map(|k| format!("(1, {k})"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!("INSERT INTO taps VALUES {row}");
    execute(&client, &insert).await?;

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = server.client().await?;
        let done = done.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                execute(&client, &insert).await?;
            }
            done.store(true, Ordering::SeqCst);
            anyhow::Ok(())
        })
    };
    let reader = server.client().await?;
    let read = reader
        .prepare("SELECT k, n FROM tapped WHERE bucket = $1")
        .await?;
    let mut reads = 0;
    let mut last = 0;
    while !done.load(Ordering::SeqCst) || reads == 0 {
        let rows = reader.query(&read, &[&1i32]).await?;
        ensure!(rows.len() == keys, "{} keys in one read", rows.len());
        let counts: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
        ensure!(
            counts.iter().all(|n| *n == counts[0]),
            "a read saw part of an epoch: {counts:?}"
        );
        ensure!(
            counts[0] >= last,
            "counts went back from {last} to {}",
            counts[0]
        );
        last = counts[0];
        reads += 1;
    }
    writer.await??;
    let rows = reader.query(&read, &[&1i32]).await?;
    ensure!(rows.iter().all(|r| r.get::<_, i64>(1) == 101));
    ensure!(reads > 1, "only {reads} reads ran beside the writer");
    Ok(())
}
