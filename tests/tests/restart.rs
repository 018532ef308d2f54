//! Durability and recovery: a server stopped cleanly or killed comes back with every object
//! and every view exactly as they were, and keeps maintaining them; a crash in the middle of
//! concurrent inserts loses no acknowledged row and duplicates none.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chrono::{NaiveDate, TimeDelta};
use eddy_tests::{TestServer, compare_rows, execute, query_rows, sorted_rows};
use tokio_postgres::Client;

const REVENUE: &str = "SELECT customer, count(*) AS n, sum(amount) AS total, max(placed) AS last \
                       FROM orders GROUP BY customer";
const TIER_REVENUE: &str = "SELECT c.tier, count(*) AS n, sum(o.amount) AS total \
                            FROM orders o JOIN customers c ON o.customer = c.id GROUP BY c.tier";

fn big_spenders(revenue: &str) -> String {
    format!("SELECT customer, total FROM {revenue} WHERE total > 2850")
}

/// The materialized views of the restart tests: name, definition, and the batch query over
/// the inputs that must return the same rows.
fn views() -> Vec<(&'static str, String, String)> {
    vec![
        ("revenue", REVENUE.to_string(), REVENUE.to_string()),
        (
            "tier_revenue",
            TIER_REVENUE.to_string(),
            TIER_REVENUE.to_string(),
        ),
        (
            "big_spenders",
            big_spenders("revenue"),
            big_spenders(&format!("({REVENUE}) AS revenue")),
        ),
    ]
}

/// Every relation whose contents a restart must preserve.
const RELATIONS: [&str; 7] = [
    "orders",
    "customers",
    "tags",
    "revenue",
    "tier_revenue",
    "big_spenders",
    "named_revenue",
];

async fn create_objects(client: &Client) -> Result<()> {
    execute(
        client,
        "CREATE STREAM orders (id BIGINT, customer BIGINT, amount BIGINT, placed TIMESTAMP)",
    )
    .await?;
    execute(
        client,
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, tier TEXT)",
    )
    .await?;
    execute(client, "CREATE TABLE tags (customer BIGINT, tag TEXT)").await?;
    for (name, definition, _) in views() {
        execute(
            client,
            &format!("CREATE MATERIALIZED VIEW {name} AS {definition}"),
        )
        .await?;
    }
    execute(
        client,
        "CREATE VIEW named_revenue AS SELECT c.name, r.total FROM revenue r \
         JOIN customers c ON c.id = r.customer",
    )
    .await?;
    Ok(())
}

/// Inserts orders with ids in `ids`: deterministic customers (some without a customer row),
/// amounts and times.
async fn insert_orders(client: &Client, ids: std::ops::RangeInclusive<i64>) -> Result<()> {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .context("a valid start time")?;
    let rows: Vec<String> = ids
        .clone()
        .map(|id| {
            let placed = start + TimeDelta::minutes(id);
            format!(
                "({id}, {}, {}, '{}')",
                id % 7,
                (id * 37) % 200,
                placed.format("%Y-%m-%d %H:%M:%S")
            )
        })
        .collect();
    let inserted = execute(
        client,
        &format!("INSERT INTO orders VALUES {}", rows.join(", ")),
    )
    .await?;
    ensure!(
        inserted == ids.count() as u64,
        "not every order was inserted"
    );
    Ok(())
}

async fn populate(client: &Client) -> Result<()> {
    execute(
        client,
        "INSERT INTO customers VALUES (1, 'ann', 'basic'), (2, 'ben', 'basic'), \
         (3, 'cat', 'gold'), (4, 'dan', 'gold'), (5, 'eve', 'basic')",
    )
    .await?;
    execute(
        client,
        "INSERT INTO tags VALUES (1, 'vip'), (1, 'vip'), (3, 'new')",
    )
    .await?;
    for chunk in 0..4 {
        insert_orders(client, chunk * 50 + 1..=chunk * 50 + 50).await?;
    }
    execute(client, "UPDATE customers SET tier = 'gold' WHERE id = 5").await?;
    execute(client, "DELETE FROM customers WHERE id = 2").await?;
    execute(client, "DELETE FROM tags WHERE tag = 'new'").await?;
    Ok(())
}

/// Checks every view against the batch query over its inputs.
async fn check_views(client: &Client) -> Result<()> {
    for (name, _, oracle) in views() {
        let actual = sorted_rows(client, &format!("SELECT * FROM {name}")).await?;
        let expected = sorted_rows(client, &oracle).await?;
        compare_rows(&actual, &expected)
            .map_err(|diff| anyhow::anyhow!("view {name} differs from `{oracle}`:\n{diff}"))?;
    }
    Ok(())
}

/// Everything a client can see: the object listings and the contents of every relation.
async fn snapshot(client: &Client) -> Result<BTreeMap<String, Vec<Vec<String>>>> {
    let mut snapshot = BTreeMap::new();
    let listings = ["SHOW STREAMS", "SHOW TABLES", "SHOW MATERIALIZED VIEWS"];
    let contents = RELATIONS.map(|relation| format!("SELECT * FROM {relation}"));
    for sql in listings.iter().map(|s| s.to_string()).chain(contents) {
        let rows = sorted_rows(client, &sql).await?;
        snapshot.insert(sql, rows);
    }
    Ok(snapshot)
}

fn listed(snapshot: &BTreeMap<String, Vec<Vec<String>>>, show: &str, name: &str) -> bool {
    snapshot.get(show).is_some_and(|rows| {
        rows.iter()
            .any(|row| row.first().is_some_and(|n| n == name))
    })
}

enum Shutdown {
    /// SIGTERM: the server may finish what it is doing.
    Clean,
    /// SIGKILL: recovery must work from whatever was durable.
    Crash,
}

async fn survives_restart(shutdown: Shutdown) -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    create_objects(&client).await?;
    populate(&client).await?;
    check_views(&client).await?;
    let before = snapshot(&client).await?;
    ensure!(
        listed(&before, "SHOW STREAMS", "orders"),
        "orders is not listed: {before:?}"
    );
    ensure!(
        listed(&before, "SHOW TABLES", "customers"),
        "customers is not listed: {before:?}"
    );
    ensure!(
        listed(&before, "SHOW MATERIALIZED VIEWS", "revenue"),
        "revenue is not listed: {before:?}"
    );
    drop(client);

    match shutdown {
        Shutdown::Clean => {
            let status = server.stop().await?;
            ensure!(status.success(), "eddy exited with {status} after SIGTERM");
        }
        Shutdown::Crash => server.kill()?,
    }
    server.restart().await?;
    let client = server.client().await?;

    let after = snapshot(&client).await?;
    for (sql, rows) in &before {
        let restored = after.get(sql).context("missing from the second snapshot")?;
        ensure!(
            restored == rows,
            "`{sql}` changed across the restart\nbefore: {rows:?}\nafter:  {restored:?}"
        );
    }

    // The restored views keep following their inputs.
    insert_orders(&client, 201..=260).await?;
    execute(&client, "UPDATE customers SET tier = 'basic' WHERE id = 3").await?;
    execute(&client, "DELETE FROM customers WHERE id = 4").await?;
    execute(
        &client,
        "INSERT INTO customers VALUES (6, 'fay', 'platinum')",
    )
    .await?;
    check_views(&client).await?;
    let total = query_rows(&client, "SELECT sum(n) FROM revenue").await?;
    ensure!(
        total == vec![vec!["260".to_string()]],
        "revenue counts {total:?} orders"
    );

    // New objects get ids of their own rather than colliding with restored ones.
    execute(&client, "CREATE STREAM audit (event TEXT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW audit_count AS SELECT count(*) AS n FROM audit",
    )
    .await?;
    execute(&client, "INSERT INTO audit VALUES ('a'), ('b'), ('c')").await?;
    let count = query_rows(&client, "SELECT n FROM audit_count").await?;
    ensure!(
        count == vec![vec!["3".to_string()]],
        "audit_count is {count:?}"
    );
    check_views(&client).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clean_shutdown_preserves_objects_and_views() -> Result<()> {
    survives_restart(Shutdown::Clean).await
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_preserves_objects_and_views() -> Result<()> {
    survives_restart(Shutdown::Crash).await
}

/// Checks that the orders with ids above 200 are those from 201 to `last`, each once.
async fn expect_orders_201_to(client: &Client, last: i64) -> Result<()> {
    let found = query_rows(
        client,
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM orders WHERE id > 200",
    )
    .await?;
    let n = (last - 200).to_string();
    let expected = vec![vec![n.clone(), n, "201".to_string(), last.to_string()]];
    ensure!(
        found == expected,
        "orders 201 to {last}, each once, expected as (rows, ids, min, max) {expected:?}; found {found:?}"
    );
    Ok(())
}

/// Restarts the server so that the next epoch that logs its input ends the process before
/// it computes the epoch, runs `write` (named `what`), which must fail, and restarts the
/// server as usual.
async fn crash_after_input(
    server: &mut TestServer,
    what: &str,
    write: impl FnOnce(Client) -> futures::future::BoxFuture<'static, Result<()>>,
) -> Result<()> {
    server.stop().await?;
    server.set_env("FAILPOINTS", Some("epoch-input-logged=return"));
    server.restart().await?;
    let client = server.client().await?;
    ensure!(
        write(client).await.is_err(),
        "`{what}` was acknowledged by a server that stopped before its epoch"
    );
    server.kill()?;
    server.set_env("FAILPOINTS", None);
    server.restart().await
}

/// A write epoch logs its input and computes the epoch while the input syncs; its layer is
/// committed unsynced. A crash that loses the layer (here: before it is written) leaves the
/// input, and the restart computes the epoch again: the INSERT (into a stream, then into a
/// table) is there entirely and once, the views equal their batch queries, and later writes
/// and restarts keep them so.
#[tokio::test(flavor = "multi_thread")]
async fn an_epoch_whose_layer_was_lost_is_computed_again_from_its_input() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    create_objects(&client).await?;
    populate(&client).await?;
    drop(client);

    crash_after_input(&mut server, "INSERT INTO orders VALUES ...", |client| {
        Box::pin(async move { insert_orders(&client, 201..=260).await })
    })
    .await?;
    let client = server.client().await?;
    expect_orders_201_to(&client, 260).await?;
    check_views(&client).await?;
    drop(client);

    // The same for rows inserted into a table.
    let fay = "INSERT INTO customers VALUES (6, 'fay', 'gold')";
    crash_after_input(&mut server, fay, |client| {
        Box::pin(async move { execute(&client, fay).await.map(|_| ()) })
    })
    .await?;
    let client = server.client().await?;
    let fay = query_rows(&client, "SELECT name, tier FROM customers WHERE id = 6").await?;
    ensure!(fay == vec![vec!["fay", "gold"]], "customer 6: {fay:?}");
    check_views(&client).await?;

    // Their inputs are still in the log, behind their epochs now: another crash must not
    // apply them twice.
    insert_orders(&client, 261..=280).await?;
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    expect_orders_201_to(&client, 280).await?;
    let customers = query_rows(&client, "SELECT count(*) FROM customers WHERE id = 6").await?;
    ensure!(
        customers == vec![vec!["1"]],
        "customer 6 rows: {customers:?}"
    );
    check_views(&client).await?;
    Ok(())
}

const WRITERS: i64 = 4;
const LOAD_DURATION: Duration = Duration::from_millis(1500);

/// What one writer sent before the server died.
#[derive(Default)]
struct Writes {
    /// Ids whose INSERT returned success: these must survive exactly once.
    acknowledged: Vec<i64>,
    /// Every id sent, including the one in flight when the server died.
    attempted: Vec<i64>,
}

/// Inserts single rows with unique ids until the server stops answering.
async fn write_until_failure(client: Client, writer: i64) -> Writes {
    let mut writes = Writes::default();
    for seq in 0.. {
        let id = writer * 1_000_000 + seq;
        writes.attempted.push(id);
        let sql = format!("INSERT INTO s VALUES ({id}, {writer}, 'payload-{id}')");
        match client.simple_query(&sql).await {
            Ok(_) => writes.acknowledged.push(id),
            Err(_) => break,
        }
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_under_insert_load_keeps_acknowledged_rows_exactly_once() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        "CREATE STREAM s (id BIGINT, writer BIGINT, payload TEXT)",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW s_count AS SELECT count(*) AS n FROM s",
    )
    .await?;
    drop(client);

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = server.client().await?;
        writers.push(tokio::spawn(write_until_failure(client, writer)));
    }
    tokio::time::sleep(LOAD_DURATION).await;
    server.kill()?;

    let mut acknowledged = Vec::new();
    let mut attempted = HashSet::new();
    for writer in writers {
        let writes = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .context("a writer kept going after the server was killed")??;
        acknowledged.extend(writes.acknowledged);
        attempted.extend(writes.attempted);
    }
    ensure!(
        !acknowledged.is_empty(),
        "no insert was acknowledged in {LOAD_DURATION:?} of load"
    );

    server.restart().await?;
    let client = server.client().await?;

    let duplicates = query_rows(
        &client,
        "SELECT id, count(*) FROM s GROUP BY id HAVING count(*) > 1",
    )
    .await?;
    ensure!(
        duplicates.is_empty(),
        "rows duplicated by recovery: {duplicates:?}"
    );

    let present: HashSet<i64> = query_rows(&client, "SELECT id FROM s")
        .await?
        .iter()
        .map(|row| row[0].parse::<i64>())
        .collect::<Result<_, _>>()?;
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} of {} acknowledged inserts were lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(10)]
    );
    let invented: Vec<&i64> = present
        .iter()
        .filter(|id| !attempted.contains(*id))
        .collect();
    ensure!(invented.is_empty(), "rows nobody inserted: {invented:?}");

    // The view recovered to the same epoch as the stream it counts.
    let counted = query_rows(&client, "SELECT n FROM s_count").await?;
    let actual = query_rows(&client, "SELECT count(*) FROM s").await?;
    ensure!(
        counted == actual,
        "s_count says {counted:?}, the stream holds {actual:?}"
    );
    ensure!(actual == vec![vec![present.len().to_string()]]);

    // And it keeps counting.
    execute(&client, "INSERT INTO s VALUES (-1, -1, 'after recovery')").await?;
    let counted = query_rows(&client, "SELECT n FROM s_count").await?;
    ensure!(
        counted == vec![vec![(present.len() + 1).to_string()]],
        "s_count is {counted:?} after one more insert"
    );
    Ok(())
}
