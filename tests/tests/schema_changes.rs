//! Schema changes of a running pipeline: renames that views over the renamed relation
//! survive (across a restart too), CREATE OR REPLACE MATERIALIZED VIEW swapping a new
//! version in while readers read, downstream views, a sink and a subscriber following with
//! nothing sent again, and ADD COLUMN widening a stream and a table under views, a sink and a
//! subscriber that keep their columns.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eddy_tests::{
    TestServer, execute, postgres_client, postgres_url, query_rows, sorted_rows, unique_name,
    wait_for_same_rows,
};
use futures::StreamExt;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

/// The first row a subscription sends, without its epoch: the operation, then the values.
type Changes = std::pin::Pin<Box<tokio_postgres::SimpleQueryStream>>;

/// Starts a subscription and waits for its row description: a subscription describes its
/// rows once it listens, so from then on it is a subscriber "from before" what follows.
async fn subscribe(client: &tokio_postgres::Client, sql: &str) -> Result<Changes> {
    let mut changes = Box::pin(client.simple_query_raw(sql).await.context("subscribing")?);
    let described = tokio::time::timeout(Duration::from_secs(20), changes.next())
        .await?
        .context("the subscription ended")??;
    ensure!(
        matches!(described, SimpleQueryMessage::RowDescription(_)),
        "a subscription began with something other than its row description"
    );
    Ok(changes)
}

async fn first_change(mut changes: Changes) -> Result<Vec<String>> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = changes.next().await {
            if let SimpleQueryMessage::Row(row) = message? {
                return Ok((1..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect());
            }
        }
        anyhow::bail!("the subscription ended")
    })
    .await?
}

fn rows(values: &[&[&str]]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect()
}

async fn sqlstate(client: &tokio_postgres::Client, sql: &str) -> Result<SqlState> {
    let err = client
        .simple_query(sql)
        .await
        .err()
        .with_context(|| format!("`{sql}` succeeded"))?;
    err.code()
        .cloned()
        .with_context(|| format!("`{sql}` failed without a SQLSTATE: {err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn renames_keep_every_view_working() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM s (k BIGINT, v BIGINT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW per_k AS SELECT s.k, sum(s.v) AS total FROM s GROUP BY s.k",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW big AS SELECT per_k.k, total FROM per_k WHERE total > 10",
    )
    .await?;
    execute(&client, "INSERT INTO s VALUES (1, 5), (2, 20)").await?;

    execute(&client, "ALTER MATERIALIZED VIEW per_k RENAME TO totals").await?;
    execute(&client, "ALTER STREAM s RENAME TO events").await?;
    assert_eq!(
        sorted_rows(&client, "SELECT k, total FROM totals").await?,
        rows(&[&["1", "5"], &["2", "20"]])
    );
    assert_eq!(
        sqlstate(&client, "SELECT * FROM per_k").await?,
        SqlState::UNDEFINED_TABLE
    );
    // The views over the renamed relations read them under their new names.
    execute(&client, "INSERT INTO events VALUES (1, 10)").await?;
    assert_eq!(
        sorted_rows(&client, "SELECT k, total FROM big").await?,
        rows(&[&["1", "15"], &["2", "20"]])
    );
    let create = query_rows(&client, "SHOW CREATE MATERIALIZED VIEW big").await?;
    ensure!(create[0][1].contains("FROM totals AS per_k"), "{create:?}");
    let create = query_rows(&client, "SHOW CREATE MATERIALIZED VIEW totals").await?;
    ensure!(
        create[0][1].starts_with("CREATE MATERIALIZED VIEW totals AS"),
        "{create:?}"
    );
    assert_eq!(
        sorted_rows(
            &client,
            "SELECT relname FROM pg_class WHERE relname IN ('per_k', 'totals', 's', 'events')"
        )
        .await?,
        rows(&[&["events"], &["totals"]])
    );

    // What cannot be renamed is refused, with Postgres' codes.
    let cases = [
        (
            "ALTER MATERIALIZED VIEW nothing RENAME TO x",
            SqlState::UNDEFINED_TABLE,
        ),
        (
            "ALTER MATERIALIZED VIEW totals RENAME TO big",
            SqlState::DUPLICATE_TABLE,
        ),
        (
            "ALTER TABLE events RENAME TO t2",
            SqlState::WRONG_OBJECT_TYPE,
        ),
        (
            "ALTER MATERIALIZED VIEW totals ADD COLUMN c INT",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
    ];
    for (sql, code) in cases {
        assert_eq!(sqlstate(&client, sql).await?, code, "{sql}");
    }
    let (notified, mut notices) = server.client_with_notices().await?;
    execute(
        &notified,
        "ALTER MATERIALIZED VIEW IF EXISTS nothing RENAME TO x",
    )
    .await?;
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await?;
    ensure!(
        notice.is_some_and(|n| n.contains("does not exist, skipping")),
        "no notice for IF EXISTS"
    );

    // The rewritten definitions are planned again at start-up.
    drop((client, notified));
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    execute(&client, "INSERT INTO events VALUES (2, 1), (3, 11)").await?;
    assert_eq!(
        sorted_rows(&client, "SELECT k, total FROM big").await?,
        rows(&[&["1", "15"], &["2", "21"], &["3", "11"]])
    );
    Ok(())
}

/// Rows of the history: key `i % 100`, value `i`.
const HISTORY: i64 = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn replace_swaps_a_view_whole_while_it_is_read() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let target = unique_name("replaced");
    execute(&client, "CREATE STREAM s (k BIGINT, v BIGINT)").await?;
    let values: Vec<String> = (0..HISTORY)
        .map(|i| format!("({}, {i})", i % 100))
        .collect();
    execute(
        &client,
        &format!("INSERT INTO s VALUES {}", values.join(", ")),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW v AS SELECT k, count(*) AS n FROM s GROUP BY k",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW total AS SELECT sum(n) AS n, count(*) AS keys FROM v",
    )
    .await?;
    execute(
        &client,
        &format!(
            "CREATE SINK v_pg FROM v WITH (connector = 'postgres', url = '{}', \
             table = '{target}', output_mode = 'update')",
            postgres_url()
        ),
    )
    .await?;
    let in_pg = format!("SELECT k, n FROM {target}");
    wait_for_same_rows(
        (&client, "SELECT k, n FROM v"),
        (&pg, &in_pg),
        Duration::from_secs(30),
    )
    .await?;

    // A subscriber from before the swap.
    let subscriber = server.client().await?;
    let changes = subscribe(&subscriber, "SUBSCRIBE TO v WITH (snapshot = false)").await?;

    // Readers read all along; each read is the old version or the new one, whole.
    let old = vec!["100".to_string(), HISTORY.to_string()];
    let new = vec!["99".to_string(), (HISTORY - HISTORY / 100).to_string()];
    let reading = {
        let reader = server.client().await?;
        let (old, new) = (old.clone(), new.clone());
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            loop {
                let got = query_rows(&reader, "SELECT count(*), sum(n) FROM v").await?;
                let got = got.into_iter().next().context("one row")?;
                ensure!(got == old || got == new, "a read saw {got:?}");
                seen.insert(got.clone());
                if got == new {
                    return anyhow::Ok(seen);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    execute(
        &client,
        "CREATE OR REPLACE MATERIALIZED VIEW v AS SELECT k, count(*) AS n FROM s \
         WHERE k <> 7 GROUP BY k",
    )
    .await?;
    let seen = tokio::time::timeout(Duration::from_secs(60), reading).await???;
    ensure!(seen.contains(&old), "no read before the swap: {seen:?}");

    // Downstream: the view over it, the sink's table, and the subscriber got the difference.
    assert_eq!(
        query_rows(&client, "SELECT n, keys FROM total").await?,
        vec![vec![
            (HISTORY - HISTORY / 100).to_string(),
            "99".to_string()
        ]]
    );
    wait_for_same_rows(
        (&client, "SELECT k, n FROM v"),
        (&pg, &in_pg),
        Duration::from_secs(30),
    )
    .await?;
    let first = first_change(changes).await?;
    assert_eq!(first, ["delete", "7", &(HISTORY / 100).to_string()]);

    // What would break what reads the view is refused.
    let cases = [
        (
            "CREATE OR REPLACE MATERIALIZED VIEW v AS SELECT k FROM s GROUP BY k",
            SqlState::INVALID_OBJECT_DEFINITION,
        ),
        (
            "CREATE OR REPLACE MATERIALIZED VIEW v AS SELECT v.k, v.n FROM total, v",
            SqlState::INVALID_OBJECT_DEFINITION,
        ),
        (
            "CREATE OR REPLACE MATERIALIZED VIEW s AS SELECT 1 AS x",
            SqlState::WRONG_OBJECT_TYPE,
        ),
    ];
    for (sql, code) in cases {
        assert_eq!(sqlstate(&client, sql).await?, code, "{sql}");
    }
    // Without a view of that name, OR REPLACE creates one.
    execute(
        &client,
        "CREATE OR REPLACE MATERIALIZED VIEW fresh AS SELECT count(*) AS n FROM s",
    )
    .await?;
    assert_eq!(
        query_rows(&client, "SELECT n FROM fresh").await?,
        vec![vec![HISTORY.to_string()]]
    );

    // The new version is the one that survives a crash and keeps being maintained.
    drop(client);
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    execute(&client, "INSERT INTO s VALUES (7, 0), (8, 0)").await?;
    assert_eq!(
        query_rows(&client, "SELECT count(*), sum(n) FROM v").await?,
        vec![vec![
            "99".to_string(),
            (HISTORY - HISTORY / 100 + 1).to_string()
        ]]
    );
    // The oracle: the view equals its new definition run as a batch query over the stream.
    assert_eq!(
        sorted_rows(&client, "SELECT k, n FROM v").await?,
        sorted_rows(&client, "SELECT k, count(*) FROM s WHERE k <> 7 GROUP BY k").await?
    );
    wait_for_same_rows(
        (&client, "SELECT k, n FROM v"),
        (&pg, &in_pg),
        Duration::from_secs(30),
    )
    .await?;
    pg.simple_query(&format!("DROP TABLE IF EXISTS {target}"))
        .await?;
    Ok(())
}

/// The column names of a relation as a query of all of it returns them.
async fn column_names(client: &tokio_postgres::Client, relation: &str) -> Result<Vec<String>> {
    let statement = client
        .prepare(&format!("SELECT * FROM {relation}"))
        .await
        .with_context(|| format!("describing {relation}"))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect())
}

/// Each view equals its definition run as a batch query, and keeps its columns.
async fn views_match_their_queries(client: &tokio_postgres::Client) -> Result<()> {
    let oracles = [
        ("everything", "SELECT k, v FROM s", &["k", "v"][..]),
        (
            "per_k",
            "SELECT k, count(*), sum(v) FROM s GROUP BY k",
            &["k", "n", "total"],
        ),
        (
            "joined",
            "SELECT s.k, s.v, t.id, t.name FROM s JOIN t ON s.k = t.id",
            &["k", "v", "id", "name"],
        ),
        ("plain", "SELECT k, v FROM s WHERE v > 1", &["k", "v"]),
        (
            "by_note",
            "SELECT note, count(*) FROM s GROUP BY note",
            &["note", "n"],
        ),
    ];
    for (view, batch, columns) in oracles {
        assert_eq!(column_names(client, view).await?, columns, "{view}");
        assert_eq!(
            sorted_rows(client, &format!("SELECT * FROM {view}")).await?,
            sorted_rows(client, batch).await?,
            "{view} differs from `{batch}`"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn add_column_widens_relations_and_what_reads_them_keeps_its_columns() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let target = unique_name("widened");
    for sql in [
        "CREATE STREAM s (k BIGINT, v BIGINT)",
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)",
        "INSERT INTO t VALUES (1, 'one'), (2, 'two')",
        "INSERT INTO s VALUES (1, 1), (1, 2), (2, 3), (3, 4)",
        "CREATE MATERIALIZED VIEW everything AS SELECT * FROM s",
        "CREATE MATERIALIZED VIEW per_k AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k",
        "CREATE MATERIALIZED VIEW joined AS SELECT * FROM s JOIN t ON s.k = t.id",
        "CREATE VIEW plain AS SELECT * FROM s WHERE v > 1",
    ] {
        execute(&client, sql).await?;
    }
    execute(
        &client,
        &format!(
            "CREATE SINK s_pg FROM s WITH (connector = 'postgres', url = '{}', \
             table = '{target}', output_mode = 'append')",
            postgres_url()
        ),
    )
    .await?;
    // A statement planned before the change, and a subscriber from before it.
    let prepared = client
        .prepare("INSERT INTO s VALUES ($1, $2)")
        .await
        .context("preparing an INSERT")?;
    let subscriber = server.client().await?;
    let changes = subscribe(&subscriber, "SUBSCRIBE TO s WITH (snapshot = false)").await?;

    execute(&client, "ALTER STREAM s ADD COLUMN note TEXT").await?;
    execute(&client, "ALTER TABLE t ADD tier INT").await?;
    assert_eq!(column_names(&client, "s").await?, ["k", "v", "note"]);
    assert_eq!(column_names(&client, "t").await?, ["id", "name", "tier"]);
    let create = query_rows(&client, "SHOW CREATE STREAM s").await?;
    ensure!(create[0][1].contains("note TEXT"), "{create:?}");

    // Old rows read with NULL in the new column; new rows carry it.
    execute(
        &client,
        "INSERT INTO s VALUES (1, 10, 'hello'), (2, 20, NULL)",
    )
    .await?;
    execute(&client, "INSERT INTO s (k, v) VALUES (3, 30)").await?;
    client
        .execute(&prepared, &[&2i64, &40i64])
        .await
        .map_err(|e| anyhow::anyhow!("a statement prepared before ADD COLUMN: {e:?}"))?;
    execute(&client, "INSERT INTO t VALUES (3, 'three', 7)").await?;
    execute(&client, "UPDATE t SET tier = 1 WHERE id = 1").await?;
    assert_eq!(
        sorted_rows(&client, "SELECT k, v, note FROM s WHERE v >= 10 OR k = 1").await?,
        rows(&[
            &["1", "1", "NULL"],
            &["1", "10", "hello"],
            &["1", "2", "NULL"],
            &["2", "20", "NULL"],
            &["2", "40", "NULL"],
            &["3", "30", "NULL"],
        ])
    );
    assert_eq!(
        sorted_rows(&client, "SELECT * FROM t").await?,
        rows(&[
            &["1", "one", "1"],
            &["2", "two", "NULL"],
            &["3", "three", "7"]
        ])
    );
    // A view created after the change reads the new column over the whole history.
    execute(
        &client,
        "CREATE MATERIALIZED VIEW by_note AS SELECT note, count(*) AS n FROM s GROUP BY note",
    )
    .await?;
    views_match_their_queries(&client).await?;

    // The subscriber and the sink keep the columns they began with.
    let first = first_change(changes).await?;
    assert_eq!(first, ["insert", "1", "10"]);
    wait_for_same_rows(
        (&client, "SELECT k, v FROM s"),
        (&pg, &format!("SELECT k, v FROM {target}")),
        Duration::from_secs(30),
    )
    .await?;

    // What cannot be added is refused with Postgres' codes; IF [NOT] EXISTS skips.
    execute(
        &client,
        "CREATE STREAM bid WITH (connector = 'nexmark', events = '10')",
    )
    .await?;
    let cases = [
        (
            "ALTER STREAM s ADD COLUMN k INT",
            SqlState::DUPLICATE_COLUMN,
        ),
        (
            "ALTER STREAM s ADD COLUMN strict INT NOT NULL",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "ALTER TABLE t ADD COLUMN id2 INT PRIMARY KEY",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "ALTER STREAM bid ADD COLUMN c INT",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "ALTER STREAM nothing ADD COLUMN c INT",
            SqlState::UNDEFINED_TABLE,
        ),
        (
            "ALTER STREAM t ADD COLUMN c INT",
            SqlState::WRONG_OBJECT_TYPE,
        ),
    ];
    for (sql, code) in cases {
        assert_eq!(sqlstate(&client, sql).await?, code, "{sql}");
    }
    let (notified, mut notices) = server.client_with_notices().await?;
    for (sql, expected) in [
        (
            "ALTER STREAM s ADD COLUMN IF NOT EXISTS note INT",
            "already exists, skipping",
        ),
        (
            "ALTER STREAM IF EXISTS nothing ADD COLUMN c INT",
            "does not exist, skipping",
        ),
    ] {
        execute(&notified, sql).await?;
        let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await?;
        ensure!(
            notice.as_deref().is_some_and(|n| n.contains(expected)),
            "{sql}: {notice:?}"
        );
    }
    assert_eq!(column_names(&client, "s").await?, ["k", "v", "note"]);

    // The views are planned again at start-up as they were defined, and go on.
    drop((client, notified));
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    execute(
        &client,
        "INSERT INTO s VALUES (1, 50, 'again'), (3, 60, NULL)",
    )
    .await?;
    execute(&client, "DELETE FROM t WHERE id = 2").await?;
    views_match_their_queries(&client).await?;
    wait_for_same_rows(
        (&client, "SELECT k, v FROM s"),
        (&pg, &format!("SELECT k, v FROM {target}")),
        Duration::from_secs(30),
    )
    .await?;
    pg.simple_query(&format!("DROP TABLE IF EXISTS {target}"))
        .await?;
    Ok(())
}
