//! Tables mirrored from the machine's real PostgreSQL (`CREATE TABLE ... WITH (connector =
//! 'postgres', ...)`): loaded when created, kept equal to the upstream table through inserts,
//! updates, deletes and key changes, across a kill with changes made while Eddy was down;
//! the views over them equal their batch queries; every type converts; what cannot work is
//! refused with the right SQLSTATE, and a read that cannot be applied shows in progress.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eddy_tests::{
    TestServer, compare_rows, execute, postgres_client, postgres_url, query_rows, sorted_rows,
    unique_name, wait_for_same_rows, wait_for_value,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const SYNCED: Duration = Duration::from_secs(30);

fn mirror_sql(name: &str, columns: &str, upstream: &str) -> String {
    format!(
        "CREATE TABLE {name} ({columns}) WITH (connector = 'postgres', url = '{}', \
         table = '{upstream}', poll_interval = '50ms')",
        postgres_url()
    )
}

/// Each view equals its defining query run as a batch query over the same tables.
async fn views_match_their_queries(client: &Client) -> Result<()> {
    for (view, batch) in [
        (
            "per_plan",
            "SELECT u.plan, count(*) AS clicks, sum(u.credit) AS credit \
             FROM clicks c JOIN users u ON c.user_id = u.id GROUP BY u.plan",
        ),
        (
            "active_per_plan",
            "SELECT plan, count(*) AS n FROM users WHERE active GROUP BY plan",
        ),
    ] {
        compare_rows(
            &sorted_rows(client, &format!("SELECT * FROM {view}")).await?,
            &sorted_rows(client, batch).await?,
        )
        .map_err(|diff| anyhow::anyhow!("{view} differs from its batch query: {diff}"))?;
    }
    Ok(())
}

async fn sqlstate(client: &Client, sql: &str) -> Result<SqlState> {
    let err = client
        .simple_query(sql)
        .await
        .err()
        .with_context(|| format!("`{sql}` succeeded"))?;
    err.code()
        .cloned()
        .with_context(|| format!("`{sql}` failed without a SQLSTATE: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_table_follows_its_upstream_table_across_a_kill() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    let upstream = unique_name("users");
    pg.batch_execute(&format!(
        "CREATE TABLE {upstream} (id BIGINT PRIMARY KEY, name TEXT, plan TEXT, \
         credit NUMERIC(12,4), active BOOLEAN, unused TEXT); \
         INSERT INTO {upstream} SELECT g, 'user' || g, \
           CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END, g * 1.125, g % 2 = 0, 'x' \
         FROM generate_series(1, 100) g"
    ))
    .await?;
    execute(
        &client,
        &mirror_sql(
            "users",
            "id BIGINT PRIMARY KEY, name TEXT, plan TEXT, credit NUMERIC(10,2), active BOOLEAN",
            &upstream,
        ),
    )
    .await?;
    let mirrored = "SELECT id, name, plan, credit, active FROM users";
    let expected = format!("SELECT id, name, plan, round(credit, 2), active FROM {upstream}");
    // Loaded before CREATE returns.
    compare_rows(
        &sorted_rows(&client, mirrored).await?,
        &sorted_rows(&pg, &expected).await?,
    )
    .map_err(|diff| anyhow::anyhow!("the first load: {diff}"))?;

    execute(&client, "CREATE STREAM clicks (user_id BIGINT, url TEXT)").await?;
    let clicks: Vec<String> = (0..300)
        .map(|i| format!("({}, '/p{i}')", i % 130))
        .collect();
    execute(
        &client,
        &format!("INSERT INTO clicks VALUES {}", clicks.join(", ")),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW per_plan AS SELECT u.plan, count(*) AS clicks, \
         sum(u.credit) AS credit FROM clicks c JOIN users u ON c.user_id = u.id GROUP BY u.plan",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW active_per_plan AS \
         SELECT plan, count(*) AS n FROM users WHERE active GROUP BY plan",
    )
    .await?;
    views_match_their_queries(&client).await?;

    // Inserts, updates (a key among them), deletes, and a row that comes back.
    pg.batch_execute(&format!(
        "INSERT INTO {upstream} SELECT g, 'new' || g, 'team', g, true, 'y' \
           FROM generate_series(101, 125) g; \
         UPDATE {upstream} SET plan = 'pro', active = NOT active WHERE id % 5 = 0; \
         DELETE FROM {upstream} WHERE id % 7 = 0; \
         UPDATE {upstream} SET id = 1001 WHERE id = 1; \
         UPDATE {upstream} SET unused = 'changed' WHERE id = 2"
    ))
    .await?;
    wait_for_same_rows((&pg, &expected), (&client, mirrored), SYNCED).await?;
    views_match_their_queries(&client).await?;
    pg.batch_execute(&format!(
        "INSERT INTO {upstream} VALUES (7, 'back', 'pro', 1, true, NULL)"
    ))
    .await?;
    wait_for_same_rows((&pg, &expected), (&client, mirrored), SYNCED).await?;

    // Clients do not write a mirror.
    for sql in [
        "INSERT INTO users VALUES (5000, 'x', 'free', 1, true)",
        "UPDATE users SET plan = 'x'",
        "DELETE FROM users WHERE id = 2",
    ] {
        ensure!(
            sqlstate(&client, sql).await? == SqlState::WRONG_OBJECT_TYPE,
            "{sql}"
        );
    }

    // Changes made while Eddy is down arrive with the first read after the restart.
    server.kill()?;
    pg.batch_execute(&format!(
        "DELETE FROM {upstream} WHERE id % 11 = 0; \
         UPDATE {upstream} SET name = 'renamed', credit = credit + 1 WHERE id % 4 = 0; \
         INSERT INTO {upstream} SELECT g, 'late' || g, 'free', 0.5, false, NULL \
           FROM generate_series(200, 210) g"
    ))
    .await?;
    server.restart().await?;
    let client = server.client().await?;
    wait_for_same_rows((&pg, &expected), (&client, mirrored), SYNCED).await?;
    views_match_their_queries(&client).await?;
    let count = query_rows(&pg, &format!("SELECT count(*) FROM {upstream}")).await?;
    let progress = query_rows(
        &client,
        "SELECT rows, source_error FROM eddy_catalog.progress WHERE relation = 'users'",
    )
    .await?;
    ensure!(
        progress == vec![vec![count[0][0].clone(), "NULL".to_string()]],
        "{progress:?} for {count:?} upstream rows"
    );
    // SHOW CREATE keeps the connector; DROP stops the sync.
    let create = query_rows(&client, "SHOW CREATE TABLE users").await?;
    ensure!(create[0][1].contains("connector"), "{create:?}");
    execute(&client, "DROP TABLE users CASCADE").await?;
    pg.batch_execute(&format!("DROP TABLE {upstream}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_converts_and_what_cannot_work_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let pg = postgres_client().await?;
    pg.batch_execute("SET TimeZone = 'UTC'").await?;
    let upstream = unique_name("typed");
    pg.batch_execute(&format!(
        "CREATE TABLE {upstream} (id INT PRIMARY KEY, s SMALLINT, r REAL, f DOUBLE PRECISION, \
         t TIMESTAMP, tz TIMESTAMPTZ, d DATE, tm TIME, i INTERVAL, b BYTEA, j JSONB, \
         v VARCHAR(10), ok BOOLEAN); \
         INSERT INTO {upstream} VALUES \
           (1, -3, 1.5, 2.25, '2024-02-29 23:59:58.123456', '2024-01-01 10:00:00+02', \
            '1999-12-31', '13:14:15', '1 year 2 mons 3 days 04:05:06.5', '\\x00ff10', \
            '{{\"a\": [1, 2]}}', 'short', false), \
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    ))
    .await?;
    let columns = "id INT PRIMARY KEY, s SMALLINT, r REAL, f DOUBLE PRECISION, t TIMESTAMP, \
                   tz TIMESTAMPTZ, d DATE, tm TIME, i INTERVAL, b BYTEA, j JSONB, \
                   v VARCHAR(10), ok BOOLEAN";
    execute(&client, &mirror_sql("typed", columns, &upstream)).await?;
    let all = format!("SELECT * FROM {upstream}");
    compare_rows(
        &sorted_rows(&client, "SELECT * FROM typed").await?,
        &sorted_rows(&pg, &all).await?,
    )
    .map_err(|diff| anyhow::anyhow!("typed values: {diff}"))?;

    // What cannot work, with Postgres' codes.
    let url = postgres_url();
    let missing = unique_name("missing");
    for (sql, code) in [
        (
            format!(
                "CREATE TABLE nokey (id INT) WITH (connector = 'postgres', url = '{url}', \
                 table = '{upstream}')"
            ),
            SqlState::INVALID_TABLE_DEFINITION,
        ),
        (
            mirror_sql("gone", "id INT PRIMARY KEY", &missing),
            SqlState::UNDEFINED_OBJECT,
        ),
        (
            mirror_sql("wrong", "id INT PRIMARY KEY, nope TEXT", &upstream),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE TABLE far (id INT PRIMARY KEY) WITH (connector = 'postgres', \
             url = 'postgres://postgres@127.0.0.1:1/test', table = 't')"
                .to_string(),
            SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        ),
        (
            "CREATE TABLE k (id INT PRIMARY KEY) WITH (connector = 'kafka', topic = 't')"
                .to_string(),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            format!(
                "CREATE TABLE o (id INT PRIMARY KEY) WITH (connector = 'postgres', \
                 url = '{url}', table = '{upstream}', topic = 'x')"
            ),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE TABLE p (id INT PRIMARY KEY) WITH (poll_interval = '1s')".to_string(),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ] {
        ensure!(
            sqlstate(&client, &sql).await? == code,
            "`{sql}` should fail with {code:?}"
        );
    }
    let tables = query_rows(&client, "SHOW TABLES").await?;
    ensure!(tables.len() == 1, "only `typed` exists: {tables:?}");

    // A key the upstream table holds twice cannot be mirrored: the table waits, and says why.
    pg.batch_execute(&format!(
        "DELETE FROM {upstream} WHERE v IS NULL; \
         INSERT INTO {upstream} (id, v) VALUES (3, 'short'), (4, 'other')"
    ))
    .await?;
    let (notified, mut notices) = server.client_with_notices().await?;
    execute(
        &notified,
        &mirror_sql("by_v", "v VARCHAR(10) PRIMARY KEY, id INT", &upstream),
    )
    .await?;
    let notice = notices
        .try_recv()
        .context("no NOTICE for a table that waits")?;
    ensure!(notice.contains("two rows with the key (short)"), "{notice}");
    pg.batch_execute(&format!("DELETE FROM {upstream} WHERE id = 3"))
        .await?;
    wait_for_value(
        &client,
        "SELECT coalesce(source_error, 'none') FROM eddy_catalog.progress \
         WHERE relation = 'by_v'",
        "none",
        SYNCED,
    )
    .await?;
    wait_for_same_rows(
        (&pg, &format!("SELECT v, id FROM {upstream}")),
        (&client, "SELECT * FROM by_v"),
        SYNCED,
    )
    .await?;
    pg.batch_execute(&format!("DROP TABLE {upstream}")).await?;
    Ok(())
}
