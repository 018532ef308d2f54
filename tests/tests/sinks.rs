//! Sinks into the machine's real PostgreSQL: an update-mode sink keeps a table equal to the
//! view it reads through inserts, updates and deletes; an append-mode sink of a stream holds
//! every row exactly once across kills; CREATE SINK refuses what cannot work, with the right
//! SQLSTATE, and a sink is an object of its own (SHOW, SHOW CREATE, DROP, dependencies).

use std::time::Duration;

use anyhow::{Result, ensure};
use eddy_tests::{
    TestServer, execute, postgres_client, postgres_url, query_rows, sorted_rows, unique_name,
    wait_for_same_rows,
};
use tokio_postgres::error::SqlState;

const DELIVERED: Duration = Duration::from_secs(30);

fn sink_sql(name: &str, from: &str, table: &str, mode: &str, extra: &str) -> String {
    format!(
        "CREATE SINK {name} FROM {from} WITH (connector = 'postgres', url = '{}', \
         table = '{table}', output_mode = '{mode}'{extra})",
        postgres_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_sink_keeps_a_table_equal_to_its_view() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let target = unique_name("revenue");
    execute(
        &client,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, amount NUMERIC(10,2), \
         note TEXT)",
    )
    .await?;
    execute(
        &client,
        "INSERT INTO orders VALUES (1, 10, 5.50, 'it''s'), (2, 10, 1, NULL), (3, 11, 2, 'x')",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW revenue AS SELECT user_id, count(*) AS n, sum(amount) AS total, \
         max(note) AS note, array_agg(note ORDER BY id) AS notes FROM orders GROUP BY user_id",
    )
    .await?;
    // The key is the view's GROUP BY column; the table is created with it.
    execute(
        &client,
        &sink_sql("revenue_pg", "revenue", &target, "update", ""),
    )
    .await?;
    let in_pg = format!("SELECT user_id, n, total, note, notes FROM {target}");
    wait_for_same_rows((&client, "SELECT * FROM revenue"), (&pg, &in_pg), DELIVERED).await?;

    execute(&client, "INSERT INTO orders VALUES (4, 12, 7, 'new')").await?;
    execute(&client, "DELETE FROM orders WHERE user_id = 11").await?;
    execute(&client, "UPDATE orders SET amount = 100 WHERE id = 1").await?;
    for i in 5..200 {
        execute(
            &client,
            &format!(
                "INSERT INTO orders VALUES ({i}, {}, {i}.25, 'n{i}')",
                i % 13
            ),
        )
        .await?;
    }
    execute(&client, "DELETE FROM orders WHERE id % 7 = 0").await?;
    wait_for_same_rows((&client, "SELECT * FROM revenue"), (&pg, &in_pg), DELIVERED).await?;
    ensure!(primary_key(&pg, &target).await? == "user_id");

    let shown = query_rows(&client, "SHOW SINKS").await?;
    ensure!(shown == vec![vec!["revenue_pg"]], "{shown:?}");
    let create = query_rows(&client, "SHOW CREATE SINK revenue_pg").await?;
    ensure!(
        create[0][1].starts_with("CREATE SINK revenue_pg FROM revenue WITH ("),
        "{create:?}"
    );
    // A sink is not a table to read, and the view cannot go while the sink reads it.
    let read = client.simple_query("SELECT * FROM revenue_pg").await;
    ensure!(read.unwrap_err().code() == Some(&SqlState::UNDEFINED_TABLE));
    let drop = client.simple_query("DROP MATERIALIZED VIEW revenue").await;
    ensure!(drop.unwrap_err().code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST));
    execute(&client, "DROP SINK revenue_pg").await?;
    execute(&client, "DROP MATERIALIZED VIEW revenue").await?;
    pg.batch_execute(&format!("DROP TABLE {target}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_sink_holds_every_row_once_across_kills() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let target = unique_name("clicks");
    execute(
        &client,
        "CREATE STREAM clicks (id BIGINT, url TEXT, at TIMESTAMP)",
    )
    .await?;
    execute(
        &client,
        "INSERT INTO clicks VALUES (0, '/home', '2024-01-01 00:00:00')",
    )
    .await?;
    execute(
        &client,
        &sink_sql("clicks_pg", "clicks", &target, "append", ""),
    )
    .await?;
    let mut next = 1;
    for round in 0..5 {
        let client = server.client().await?;
        for _ in 0..20 {
            let rows: Vec<String> = (next..next + 10)
                .map(|i| format!("({i}, '/p/{i}', '2024-01-01 00:00:{:02}')", i % 60))
                .collect();
            execute(
                &client,
                &format!("INSERT INTO clicks VALUES {}", rows.join(", ")),
            )
            .await?;
            next += 10;
        }
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        server.kill()?;
        server.restart().await?;
    }
    let client = server.client().await?;
    let in_pg = format!("SELECT id, url, at FROM {target}");
    wait_for_same_rows((&client, "SELECT * FROM clicks"), (&pg, &in_pg), DELIVERED).await?;
    let counts = pg
        .query_one(
            &format!("SELECT count(*), count(DISTINCT id) FROM {target}"),
            &[],
        )
        .await?;
    ensure!(counts.get::<_, i64>(0) == next && counts.get::<_, i64>(1) == next);
    pg.batch_execute(&format!("DROP TABLE {target}")).await?;
    Ok(())
}

/// The primary key columns of a table in the machine's PostgreSQL, in key order.
async fn primary_key(pg: &tokio_postgres::Client, table: &str) -> Result<String> {
    let key = pg
        .query_one(
            "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey::int2[], a.attnum)) \
             FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
            &[&table],
        )
        .await?;
    Ok(key.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_sinks_of_rankings_are_keyed_by_partition_and_number() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    execute(
        &client,
        "CREATE STREAM reads (sensor BIGINT, seq BIGINT, temp BIGINT)",
    )
    .await?;
    // The last reading of each sensor: the sensor is the key.
    execute(
        &client,
        "CREATE MATERIALIZED VIEW latest AS SELECT sensor, seq, temp FROM (SELECT *, \
         ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY seq DESC) AS rn FROM reads) AS r \
         WHERE rn = 1",
    )
    .await?;
    // The two hottest readings of each sensor, numbered: the sensor and the number.
    execute(
        &client,
        "CREATE MATERIALIZED VIEW hottest AS SELECT sensor, place, seq, temp FROM (SELECT *, \
         ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY temp DESC, seq) AS place \
         FROM reads) AS r WHERE place <= 2",
    )
    .await?;
    let (latest, hottest) = (unique_name("latest"), unique_name("hottest"));
    execute(
        &client,
        &sink_sql("latest_pg", "latest", &latest, "update", ""),
    )
    .await?;
    execute(
        &client,
        &sink_sql("hottest_pg", "hottest", &hottest, "update", ""),
    )
    .await?;
    ensure!(primary_key(&pg, &latest).await? == "sensor");
    ensure!(primary_key(&pg, &hottest).await? == "sensor,place");
    for round in 0..5i64 {
        let rows: Vec<String> = (0..40i64)
            .map(|i| {
                format!(
                    "({}, {}, {})",
                    i % 7,
                    round * 40 + i,
                    (i * 37 + round * 11) % 50
                )
            })
            .collect();
        execute(
            &client,
            &format!("INSERT INTO reads VALUES {}", rows.join(", ")),
        )
        .await?;
    }
    for (view, table) in [("latest", &latest), ("hottest", &hottest)] {
        let columns = if view == "latest" {
            "sensor, seq, temp"
        } else {
            "sensor, place, seq, temp"
        };
        wait_for_same_rows(
            (&client, &format!("SELECT {columns} FROM {view}")),
            (&pg, &format!("SELECT {columns} FROM {table}")),
            DELIVERED,
        )
        .await?;
    }
    ensure!(query_rows(&client, "SELECT count(*) FROM hottest").await? == vec![vec!["14"]]);
    for table in [latest, hottest] {
        pg.batch_execute(&format!("DROP TABLE {table}")).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sink_refuses_what_cannot_work() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM s (id BIGINT, v BIGINT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW totals AS SELECT id, sum(v) AS v FROM s GROUP BY id",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW everything AS SELECT count(*) AS n FROM s",
    )
    .await?;
    let target = unique_name("never");
    let cases = [
        // Append needs rows that never change.
        (
            sink_sql("k1", "totals", &target, "append", ""),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        // Update needs a key: a stream has none, nor does a one-row aggregate.
        (
            sink_sql("k2", "s", &target, "update", ""),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            sink_sql("k3", "everything", &target, "update", ""),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            sink_sql("k4", "totals", &target, "update", ", primary_key = 'nope'"),
            SqlState::UNDEFINED_COLUMN,
        ),
        (
            sink_sql("k5", "totals", &target, "sideways", ""),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            sink_sql("k6", "missing", &target, "update", ""),
            SqlState::UNDEFINED_TABLE,
        ),
        (
            format!(
                "CREATE SINK k7 FROM totals WITH (connector = 'postgres', \
                 url = 'postgres://postgres@127.0.0.1:1/test', table = '{target}', \
                 output_mode = 'update')"
            ),
            SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        ),
        (
            "CREATE SINK k8 FROM totals WITH (connector = 'carrier_pigeon')".to_string(),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ];
    for (sql, code) in cases {
        let err = client.simple_query(&sql).await.err();
        let got = err.as_ref().and_then(|e| e.code()).cloned();
        ensure!(
            got == Some(code.clone()),
            "{sql}: {err:?}, expected {code:?}"
        );
    }
    ensure!(sorted_rows(&client, "SHOW SINKS").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_sink_replaces_the_table_with_the_whole_result() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let target = unique_name("top");
    execute(&client, "CREATE STREAM bids (item BIGINT, price BIGINT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW top AS SELECT item, max(price) AS best FROM bids \
         GROUP BY item ORDER BY best DESC LIMIT 3",
    )
    .await?;
    execute(&client, &sink_sql("top_pg", "top", &target, "complete", "")).await?;
    let in_pg = format!("SELECT item, best FROM {target}");
    for (i, price) in [(1, 10), (2, 30), (3, 20), (4, 40), (1, 50), (5, 5)] {
        execute(&client, &format!("INSERT INTO bids VALUES ({i}, {price})")).await?;
    }
    wait_for_same_rows((&client, "SELECT * FROM top"), (&pg, &in_pg), DELIVERED).await?;
    let rows = sorted_rows(&pg, &in_pg).await?;
    ensure!(
        rows == vec![vec!["1", "50"], vec!["2", "30"], vec!["4", "40"]],
        "{rows:?}"
    );
    pg.batch_execute(&format!("DROP TABLE {target}")).await?;
    Ok(())
}

/// The rows of a Redis hash written by an update-mode sink: each value is a row as JSON.
async fn redis_rows(
    redis: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Result<Vec<Vec<String>>> {
    let hash: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(key).query_async(redis).await?;
    let mut rows = Vec::new();
    for value in hash.values() {
        let row: serde_json::Value = serde_json::from_str(value)?;
        rows.push(vec![
            row["team"].as_str().unwrap_or("NULL").to_string(),
            row["points"].to_string(),
        ]);
    }
    rows.sort();
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sink_keeps_a_hash_equal_to_its_view_across_a_kill() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let redis_client = redis::Client::open("redis://127.0.0.1:6379")?;
    let mut redis = redis_client.get_multiplexed_async_connection().await?;
    let key = unique_name("board");
    execute(
        &client,
        "CREATE TABLE scores (player TEXT PRIMARY KEY, team TEXT, points BIGINT)",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW board AS SELECT team, sum(points) AS points FROM scores GROUP BY team",
    )
    .await?;
    execute(
        &client,
        &format!(
            "CREATE SINK board_redis FROM board WITH (connector = 'redis', \
             url = 'redis://127.0.0.1:6379', key = '{key}', output_mode = 'update')"
        ),
    )
    .await?;
    let view = "SELECT team, points FROM board";
    let agree = |rows: Vec<Vec<String>>, view: Vec<Vec<String>>| rows == view;
    for round in 0..3 {
        let client = server.client().await?;
        for i in 0..30 {
            execute(
                &client,
                &format!(
                    "INSERT INTO scores VALUES ('p{i}', 't{}', {}) ON CONFLICT (player) \
                     DO UPDATE SET points = scores.points + EXCLUDED.points",
                    i % 4,
                    i + round
                ),
            )
            .await?;
        }
        execute(
            &client,
            &format!("DELETE FROM scores WHERE team = 't{}'", round),
        )
        .await?;
        server.kill()?;
        server.restart().await?;
    }
    let client = server.client().await?;
    let deadline = std::time::Instant::now() + DELIVERED;
    loop {
        let expected = sorted_rows(&client, view).await?;
        let got = redis_rows(&mut redis, &key).await?;
        if agree(got.clone(), expected.clone()) {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "Redis {got:?} vs view {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let position: Option<String> = redis::cmd("GET")
        .arg(format!("{key}:eddy_position"))
        .query_async(&mut redis)
        .await?;
    ensure!(position.is_some_and(|p| p.contains(':')));
    redis::cmd("DEL")
        .arg(&key)
        .arg(format!("{key}:eddy_position"))
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}
