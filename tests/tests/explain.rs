//! EXPLAIN CREATE MATERIALIZED VIEW: the dataflow a view would get, an operator a line with
//! what it reads, then the state it keeps and what bounds it; nothing is created.

use anyhow::{Result, ensure};
use eddy_tests::{TestServer, execute, query_rows};

async fn explain(client: &tokio_postgres::Client, view: &str) -> Result<Vec<String>> {
    let rows = query_rows(
        client,
        &format!("EXPLAIN CREATE MATERIALIZED VIEW v AS {view}"),
    )
    .await?;
    Ok(rows.into_iter().map(|mut r| r.remove(0)).collect())
}

#[tokio::test]
async fn explain_shows_operators_and_what_bounds_their_state() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        "CREATE STREAM clicks (user_id BIGINT, url TEXT, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '5 seconds')",
    )
    .await?;
    execute(&client, "CREATE STREAM buys (user_id BIGINT, amount INT)").await?;

    let plan = explain(
        &client,
        "SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id",
    )
    .await?;
    ensure!(
        plan == [
            "#0 Project user_id@0 AS user_id <- clicks",
            "    no state",
            "#1 Aggregate by [user_id@0]: count(1) <- #0",
            "    state (grows): one entry per group, with the values of min, max and DISTINCT \
             aggregates",
            "#2 Project user_id@0 AS user_id, count(Int64(1))@1 AS n <- #1",
            "    no state",
        ],
        "{plan:#?}"
    );

    // A closing window frees the aggregate's groups; the gate holds rows until then.
    let plan = explain(
        &client,
        "SELECT user_id, window_end, count(*) AS n FROM TUMBLE(clicks, ts, INTERVAL '1 minute') \
         GROUP BY 1, 2 EMIT ON WINDOW CLOSE",
    )
    .await?;
    let bounded: Vec<&String> = plan
        .iter()
        .filter(|l| l.starts_with("    state (bounded)"))
        .collect();
    ensure!(bounded.len() == 2, "{plan:#?}");
    ensure!(
        bounded.iter().all(|l| l.ends_with("(watermark of clicks)")),
        "{plan:#?}"
    );
    ensure!(
        plan.iter().any(|l| l.starts_with("#4 CloseGate")),
        "{plan:#?}"
    );

    // A join of two streams grows without bound, and says so.
    let plan = explain(
        &client,
        "SELECT c.url, b.amount FROM clicks c JOIN buys b ON c.user_id = b.user_id",
    )
    .await?;
    ensure!(
        plan.contains(&"#2 Inner join on user_id@0 = user_id@0 <- #0, #1".to_string()),
        "{plan:#?}"
    );
    ensure!(
        plan.last()
            .is_some_and(|l| l.starts_with("NOTICE: the join of streams clicks and buys")),
        "{plan:#?}"
    );

    // A top-N over a stream keeps only the top.
    let plan = explain(
        &client,
        "SELECT user_id, url FROM clicks ORDER BY ts DESC LIMIT 3",
    )
    .await?;
    ensure!(
        plan.contains(&"    state (bounded): the top 3 rows of each partition".to_string()),
        "{plan:#?}"
    );

    // A ranking of a stream without a cut keeps every row, and says so; with one it does not.
    let uncut = "SELECT user_id, url, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts) AS rn \
                 FROM clicks";
    let plan = explain(&client, uncut).await?;
    ensure!(
        plan.last()
            .is_some_and(|l| l.starts_with("NOTICE: the ranking over stream clicks has no cut")),
        "{plan:#?}"
    );
    let plan = explain(
        &client,
        &format!("SELECT * FROM ({uncut}) AS t WHERE rn = 1"),
    )
    .await?;
    ensure!(!plan.iter().any(|l| l.starts_with("NOTICE")), "{plan:#?}");

    // Other window functions recompute a partition per change, and over a stream keep it all.
    let plan = explain(
        &client,
        "SELECT user_id, ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM clicks",
    )
    .await?;
    ensure!(
        plan.iter()
            .any(|l| l.contains("OverWindow: lag") && l.contains("each recomputed when it changes"))
            && plan.last().is_some_and(|l| {
                l.starts_with("NOTICE: the window functions over stream clicks keep every row")
            }),
        "{plan:#?}"
    );

    // Nothing was created, and what cannot be maintained is refused as at CREATE.
    ensure!(
        query_rows(&client, "SHOW MATERIALIZED VIEWS")
            .await?
            .is_empty()
    );
    let err = client
        .simple_query("EXPLAIN CREATE MATERIALIZED VIEW v AS SELECT url FROM clicks LIMIT 1")
        .await
        .expect_err("LIMIT without ORDER BY is refused");
    ensure!(
        err.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_repeated_subquery_is_one_operator_read_twice() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM buys (user_id BIGINT, amount INT)").await?;
    let per_user = "SELECT user_id, count(*) AS n FROM buys GROUP BY user_id";
    let plan = explain(
        &client,
        &format!(
            "SELECT a.user_id, a.n FROM ({per_user}) a \
             JOIN (SELECT max(n) AS top FROM ({per_user}) x) m ON a.n = m.top"
        ),
    )
    .await?;
    let operators: Vec<&String> = plan.iter().filter(|l| l.starts_with('#')).collect();
    let counts: Vec<&&String> = operators
        .iter()
        .filter(|l| l.contains("Aggregate by [user_id@0]: count(1)"))
        .collect();
    ensure!(counts.len() == 1, "the counts are planned once: {plan:#?}");
    let id = counts[0]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let readers = operators
        .iter()
        .filter(|l| {
            l.split(" <- ")
                .nth(1)
                .is_some_and(|from| from.split(", ").any(|f| f == id))
        })
        .count();
    ensure!(readers == 2, "both uses read {id}: {plan:#?}");
    Ok(())
}
