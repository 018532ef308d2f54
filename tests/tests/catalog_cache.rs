//! Repeated catalog queries are answered from the results kept for the catalog snapshot, and
//! never with a stale answer: a definition change, a session setting, another user or other
//! parameters give a fresh one, and queries that read live state are never kept.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use eddy_tests::{CATALOG_OBJECTS, TestServer, execute, query_rows};
use tokio_postgres::Client;

/// psql's `\d` listing, as psql 15 sends it.
const LISTING: &str = "SELECT n.nspname as \"Schema\", c.relname as \"Name\", \
    CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
    WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' \
    WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' \
    WHEN 'I' THEN 'partitioned index' END as \"Type\", \
    pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" \
    FROM pg_catalog.pg_class c \
    LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam \
    WHERE c.relkind IN ('r','p','v','m','S','f','') \
    AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' \
    AND n.nspname <> 'information_schema' \
    AND pg_catalog.pg_table_is_visible(c.oid) \
    ORDER BY 1,2;";

/// The server's `/metrics` samples without labels, by name.
async fn metrics(server: &TestServer) -> Result<HashMap<String, f64>> {
    let (status, body) = server.http_get("/metrics").await?;
    ensure!(status == 200, "/metrics answered {status}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).context("parsing /metrics")?;
    Ok(scrape
        .samples
        .into_iter()
        .filter(|s| s.labels.is_empty())
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some((s.metric, v)),
            _ => None,
        })
        .collect())
}

async fn hits(server: &TestServer) -> Result<f64> {
    metrics(server)
        .await?
        .get("eddy_catalog_query_hits_total")
        .copied()
        .context("no eddy_catalog_query_hits_total on /metrics")
}

/// How many times a kept plan of a catalog query ran again under a newer snapshot.
async fn reruns(server: &TestServer) -> Result<f64> {
    Ok(metrics(server)
        .await?
        .get("eddy_catalog_query_plan_reruns_total")
        .copied()
        .unwrap_or(0.0))
}

/// The listing's relation names, over the simple protocol as psql sends it.
async fn listed(client: &Client) -> Result<Vec<String>> {
    Ok(query_rows(client, LISTING)
        .await?
        .into_iter()
        .map(|r| format!("{}:{}", r[1], r[2]))
        .collect())
}

#[tokio::test]
async fn a_repeated_listing_is_kept_until_a_definition_changes() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;

    let first = listed(&client).await?;
    ensure!(
        first.contains(&"clicks:table".to_string())
            && first.contains(&"per_user:materialized view".to_string()),
        "listing: {first:?}"
    );
    let before = hits(&server).await?;
    for _ in 0..3 {
        ensure!(
            listed(&client).await? == first,
            "a repeated listing differs"
        );
    }
    let after = hits(&server).await?;
    ensure!(
        after - before >= 3.0,
        "the repeated listing was planned again ({before} -> {after} hits)"
    );
    let kept = metrics(&server).await?;
    ensure!(
        kept.get("eddy_catalog_query_results")
            .copied()
            .unwrap_or(0.0)
            >= 1.0
            && kept
                .get("eddy_catalog_query_result_bytes")
                .copied()
                .unwrap_or(0.0)
                > 0.0,
        "the kept results are not counted: {kept:?}"
    );

    // Every kind of definition change shows at once.
    let before = reruns(&server).await?;
    execute(&client, "CREATE STREAM later (x BIGINT)").await?;
    let grown = listed(&client).await?;
    ensure!(grown.contains(&"later:table".to_string()), "{grown:?}");
    ensure!(
        reruns(&server).await? > before,
        "the listing after a change was planned again"
    );
    execute(
        &client,
        "CREATE MATERIALIZED VIEW later_n AS SELECT count(*) AS n FROM later",
    )
    .await?;
    ensure!(
        listed(&client)
            .await?
            .contains(&"later_n:materialized view".to_string())
    );
    execute(&client, "DROP MATERIALIZED VIEW later_n").await?;
    execute(&client, "DROP STREAM later").await?;
    ensure!(
        listed(&client).await? == first,
        "the dropped relations are still listed"
    );

    // Another connection gets the same answer, from the same kept result.
    let other = server.client().await?;
    let before = hits(&server).await?;
    ensure!(listed(&other).await? == first);
    ensure!(
        hits(&server).await? > before,
        "another session planned it again"
    );
    Ok(())
}

#[tokio::test]
async fn answers_follow_settings_users_and_parameters() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;

    let named = "SELECT current_setting('application_name') AS app, current_user AS who, \
                 count(*) AS relations FROM pg_catalog.pg_class WHERE relnamespace = 2200";
    let first = query_rows(&client, named).await?;
    ensure!(query_rows(&client, named).await? == first);
    execute(&client, "SET application_name = 'dashboard'").await?;
    let renamed = query_rows(&client, named).await?;
    ensure!(
        renamed[0][0] == "dashboard",
        "setting not seen: {renamed:?}"
    );
    execute(&client, "RESET application_name").await?;
    ensure!(query_rows(&client, named).await? == first);

    let other_user = server.client_as("reporter").await?;
    let theirs = query_rows(&other_user, named).await?;
    ensure!(
        theirs[0][1] == "reporter",
        "another user's answer: {theirs:?}"
    );
    ensure!(query_rows(&client, named).await? == first);

    // Parameters are part of what is looked up.
    let by_name = client
        .prepare("SELECT relkind::text FROM pg_catalog.pg_class WHERE relname = $1")
        .await?;
    for _ in 0..2 {
        for (name, kind) in [("clicks", "r"), ("per_user", "m"), ("heavy", "v")] {
            let rows = client.query(&by_name, &[&name]).await?;
            let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            ensure!(got == [kind], "{name}: {got:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn queries_of_live_state_are_never_kept() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;

    // The open sessions.
    let sessions = "SELECT count(*) FROM pg_catalog.pg_stat_activity";
    let alone = query_rows(&client, sessions).await?;
    let _second = server.client().await?;
    let together = query_rows(&client, sessions).await?;
    ensure!(
        together[0][0].parse::<i64>()? == alone[0][0].parse::<i64>()? + 1,
        "pg_stat_activity kept: {alone:?} then {together:?}"
    );

    // The time.
    let clock = "SELECT now()::text, count(*) FROM pg_catalog.pg_class";
    let before = hits(&server).await?;
    let a = query_rows(&client, clock).await?;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let b = query_rows(&client, clock).await?;
    ensure!(a != b, "now() was kept: {a:?}");
    ensure!(
        hits(&server).await? == before,
        "a query of now() was answered from the cache"
    );

    // Rows of a relation, joined with the catalog.
    let joined = "SELECT c.relname, count(u.id) FROM pg_catalog.pg_class c, users u \
                  WHERE c.relname = 'users' GROUP BY c.relname";
    let two = query_rows(&client, joined).await?;
    ensure!(two == [["users".to_string(), "2".to_string()]], "{two:?}");
    execute(&client, "INSERT INTO users VALUES (3, 'cy', 1)").await?;
    let three = query_rows(&client, joined).await?;
    ensure!(
        three == [["users".to_string(), "3".to_string()]],
        "{three:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_kept_plan_answers_for_the_new_snapshot_and_the_client_running_it() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;

    // Catalog tables joined, and functions that look objects up and read the session.
    let query = "SELECT c.relname, a.attname, pg_catalog.pg_get_viewdef(c.oid) IS NOT NULL AS v, \
                 current_setting('application_name') AS app \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relname LIKE 'late%' AND a.attnum > 0 \
                 ORDER BY 1, 2";
    // A lookup by a constant name, which the optimizer answers while planning.
    let lookup = "SELECT to_regclass('later') IS NOT NULL, count(*) FROM pg_catalog.pg_class";
    let row = |name: &str, column: &str, view: bool, app: &str| -> Vec<String> {
        let flag = if view { "t" } else { "f" };
        [name, column, flag, app].map(String::from).to_vec()
    };
    ensure!(query_rows(&client, query).await?.is_empty());
    ensure!(query_rows(&client, lookup).await?[0][0] == "f");

    let before = reruns(&server).await?;
    execute(&client, "CREATE STREAM later (x BIGINT, y TEXT)").await?;
    let stream = vec![
        row("later", "x", false, "(empty)"),
        row("later", "y", false, "(empty)"),
    ];
    let got = query_rows(&client, query).await?;
    ensure!(got == stream, "{got:?}");
    let found = query_rows(&client, lookup).await?;
    ensure!(
        found[0][0] == "t",
        "to_regclass answered for the old snapshot: {found:?}"
    );
    execute(&client, "CREATE VIEW later_v AS SELECT y FROM later").await?;
    let mut both = stream.clone();
    both.push(row("later_v", "y", true, "(empty)"));
    let got = query_rows(&client, query).await?;
    ensure!(got == both, "{got:?}");
    ensure!(
        reruns(&server).await? >= before + 2.0,
        "the query was planned again after each change"
    );

    // The first client's session changes; another with the settings it had reruns the plan
    // kept for them, and gets its own session's answer.
    let other = server.client().await?;
    execute(&client, "SET application_name = 'first'").await?;
    execute(&client, "DROP VIEW later_v").await?;
    let before = reruns(&server).await?;
    let theirs = query_rows(&other, query).await?;
    ensure!(
        theirs == stream,
        "another client's rerun answered with the first one's session: {theirs:?}"
    );
    ensure!(reruns(&server).await? > before);
    let mine = query_rows(&client, query).await?;
    ensure!(
        mine == vec![
            row("later", "x", false, "first"),
            row("later", "y", false, "first")
        ],
        "{mine:?}"
    );

    execute(&client, "DROP STREAM later").await?;
    ensure!(query_rows(&other, query).await?.is_empty());
    ensure!(query_rows(&other, lookup).await?[0][0] == "f");

    // The kept plans hold no session open once its client is gone.
    drop(other);
    let sessions = "SELECT count(*) FROM pg_catalog.pg_stat_activity";
    let mut open = String::new();
    for _ in 0..100 {
        open = query_rows(&client, sessions).await?[0][0].clone();
        if open == "1" {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("a closed client's session is still listed: {open} open")
}
