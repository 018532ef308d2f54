//! The Nexmark source and queries: every query of `bench/nexmark/` maintained as a view over
//! generated events must equal the same query run as a batch over the streams, including
//! across a crash, with out-of-order events, and for views created while the source runs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use eddy_tests::{
    TestServer, compare_rows, expect_sqlstates, nexmark, query_rows, sorted_rows,
    wait_for_source_offset,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The columns compared for queries whose ranking may break ties either way (several bids
/// at one price or instant): the ones that do not depend on which tied row was picked.
fn compared_columns(query: &str) -> &'static str {
    match query {
        "q9" => "id, price",
        "q18" => "auction, bidder, date_time",
        "q19" => "auction, price, rank_number",
        _ => "*",
    }
}

/// Each view against its query run as a batch over the same events.
async fn check_views(client: &Client, queries: &[&str]) -> Result<()> {
    for name in queries {
        let sql = nexmark::select(nexmark::query(name).context("query")?);
        let cols = compared_columns(name);
        let view = sorted_rows(client, &format!("SELECT {cols} FROM nexmark_{name}")).await?;
        let batch = sorted_rows(client, &format!("SELECT {cols} FROM ({sql}) AS q")).await?;
        if let Err(e) = compare_rows(&view, &batch) {
            bail!("{name}: the view differs from its batch query: {e}");
        }
    }
    Ok(())
}

async fn create_views(client: &Client, queries: &[&str]) -> Result<()> {
    for name in queries {
        let sql = nexmark::select(nexmark::query(name).context("query")?);
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW nexmark_{name} AS {sql}"))
            .await
            .with_context(|| format!("creating the view of {name}"))?;
    }
    Ok(())
}

fn all_queries() -> Vec<&'static str> {
    nexmark::QUERIES.iter().map(|(n, _)| *n).collect()
}

#[tokio::test]
async fn every_query_equals_its_batch_query() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let events = 30_000;
    nexmark::create_sources(
        &client,
        &format!("events = '{events}', max_events_per_epoch = '1000'"),
    )
    .await?;
    // The first view starts the source; the others join while it runs and replay what the
    // streams hold so far.
    create_views(&client, &all_queries()).await?;
    wait_for_source_offset(&client, "bid", events).await?;
    check_views(&client, &all_queries()).await?;

    // The streams hold exactly the 1:3:46 mix of the events.
    let counts = query_rows(
        &client,
        "SELECT (SELECT count(*) FROM person) AS p, (SELECT count(*) FROM auction) AS a, \
         (SELECT count(*) FROM bid) AS b",
    )
    .await?;
    ensure!(counts == vec![vec!["600", "1800", "27600"]], "{counts:?}");
    let rows = query_rows(
        &client,
        "SELECT relation, rows FROM eddy_catalog.progress \
         WHERE source_offset IS NOT NULL ORDER BY relation",
    )
    .await?;
    ensure!(
        rows == vec![
            vec!["auction", "1800"],
            vec!["bid", "27600"],
            vec!["person", "600"]
        ],
        "{rows:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_crash_loses_and_repeats_nothing() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    let events = 40_000;
    // Paced, so that the kill lands in the middle of the run.
    nexmark::create_sources(
        &client,
        &format!(
            "events = '{events}', max_events_per_second = '20000', \
             out_of_order_group_size = '50'"
        ),
    )
    .await?;
    let queries = ["q3", "q5", "q8", "q11", "q17", "q18"];
    create_views(&client, &queries).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while nexmark::offset(&client).await? < 10_000 {
        ensure!(Instant::now() < deadline, "the source does not advance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    server.kill()?;
    server.restart().await?;
    let client = server.client().await?;
    let resumed = nexmark::offset(&client).await?;
    ensure!((10_000..events).contains(&resumed), "resumed at {resumed}");
    wait_for_source_offset(&client, "bid", events).await?;
    check_views(&client, &queries).await
}

#[tokio::test]
async fn late_events_are_dropped_the_same_way_live_and_replayed() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // Groups of 100,000 events span 10 s of event time, more than the 4 s the watermark
    // allows: a share of the events arrives late.
    nexmark::create_sources(
        &client,
        "events = '60000', max_events_per_epoch = '5000', out_of_order_group_size = '100000'",
    )
    .await?;
    create_views(&client, &["q5"]).await?;
    wait_for_source_offset(&client, "bid", 60_000).await?;
    let late = query_rows(
        &client,
        "SELECT late_rows FROM eddy_catalog.progress WHERE relation = 'bid'",
    )
    .await?;
    ensure!(late[0][0].parse::<i64>()? > 0, "no late bids: {late:?}");
    // A view created afterwards replays the same rows, the late ones left out again.
    create_views(&client, &["q17"]).await?;
    check_views(&client, &["q5", "q17"]).await
}

fn sqlstate<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> Result<SqlState> {
    let e = result.expect_err("the statement should fail");
    Ok(e.code().context("an error without SQLSTATE")?.clone())
}

#[tokio::test]
async fn definitions_are_checked() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // The columns may be left out: the connector knows them.
    client
        .batch_execute("CREATE STREAM bid WITH (connector = 'nexmark', events = '100')")
        .await?;
    let columns = query_rows(&client, "SELECT * FROM bid LIMIT 0").await?;
    ensure!(columns.is_empty());
    let described = client.prepare("SELECT * FROM bid").await?;
    let names: Vec<&str> = described.columns().iter().map(|c| c.name()).collect();
    ensure!(
        names
            == [
                "auction",
                "bidder",
                "price",
                "channel",
                "url",
                "date_time",
                "extra"
            ],
        "{names:?}"
    );
    // A stream fed by a connector takes no writes from clients.
    let insert = client
        .batch_execute("INSERT INTO bid VALUES (1, 2, 3, 'c', 'u', now(), '')")
        .await;
    ensure!(sqlstate(insert)? == SqlState::WRONG_OBJECT_TYPE);
    let cases = [
        (
            "CREATE STREAM p WITH (connector = 'nexmark')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM person WITH (connector = 'nexmark', events = 'many')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM person WITH (connector = 'nexmark', speed = '1')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM person WITH (connector = 'kafkaesque')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "CREATE STREAM person (id INT) WITH (connector = 'nexmark')",
            SqlState::DATATYPE_MISMATCH,
        ),
        (
            "CREATE STREAM s (a INT) WITH (events = '1')",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ];
    expect_sqlstates(&client, &cases).await?;
    // Nothing of the refused statements was created.
    let streams = query_rows(&client, "SHOW STREAMS").await?;
    ensure!(streams.len() == 1, "{streams:?}");
    Ok(())
}

#[tokio::test]
async fn a_stream_read_late_catches_up() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // 100 events a second of event time: 20,000 events span 200 s.
    nexmark::create_sources(
        &client,
        "events = '20000', max_events_per_epoch = '1000', event_rate = '100'",
    )
    .await?;
    // Only bids are read while the source runs to its end.
    create_views(&client, &["q17"]).await?;
    wait_for_source_offset(&client, "bid", 20_000).await?;
    // A view over auctions, which nothing read so far, sees their whole history, and the
    // windows their watermark has closed come out at once.
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW closed AS SELECT window_end, count(*) AS n \
             FROM TUMBLE(auction, date_time, INTERVAL '10 seconds') \
             GROUP BY window_start, window_end EMIT ON WINDOW CLOSE",
        )
        .await?;
    let progress = query_rows(
        &client,
        "SELECT rows, source_offset, watermark FROM eddy_catalog.progress \
         WHERE relation = 'auction'",
    )
    .await?;
    ensure!(
        progress[0][0] == "1200" && progress[0][1] == "20000",
        "{progress:?}"
    );
    let watermark = &progress[0][2];
    let view = sorted_rows(&client, "SELECT * FROM closed").await?;
    let batch = sorted_rows(
        &client,
        &format!(
            "SELECT window_end, count(*) AS n \
             FROM TUMBLE(auction, date_time, INTERVAL '10 seconds') \
             GROUP BY window_start, window_end HAVING window_end <= TIMESTAMP '{watermark}'"
        ),
    )
    .await?;
    ensure!(view.len() >= 18, "{} windows closed", view.len());
    if let Err(e) = compare_rows(&view, &batch) {
        bail!("the closed windows differ: {e}");
    }
    Ok(())
}

/// A source generates only the columns its views read: a view over two columns, then one
/// over the padding no other view reads, created while the source runs, both equal their
/// batch queries (which read every column).
#[tokio::test]
async fn views_reading_some_columns_see_them_whole() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let events = 20_000;
    nexmark::create_sources(
        &client,
        &format!("events = '{events}', max_events_per_epoch = '500'"),
    )
    .await?;
    let views = [
        (
            "narrow",
            "SELECT auction % 10 AS k, count(*) AS n, max(date_time) AS last FROM bid GROUP BY 1",
        ),
        (
            "padded",
            "SELECT bidder % 7 AS k, sum(length(extra)) AS bytes, max(url) AS url FROM bid \
             GROUP BY 1",
        ),
    ];
    client
        .batch_execute(&format!(
            "CREATE MATERIALIZED VIEW narrow AS {}",
            views[0].1
        ))
        .await?;
    // Let the source run a while on the narrow view alone before the wide one joins.
    let deadline = Instant::now() + Duration::from_secs(60);
    while nexmark::offset(&client).await? < events / 4 {
        ensure!(Instant::now() < deadline, "the source did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client
        .batch_execute(&format!(
            "CREATE MATERIALIZED VIEW padded AS {}",
            views[1].1
        ))
        .await?;
    wait_for_source_offset(&client, "bid", events).await?;
    for (name, sql) in views {
        let view = sorted_rows(&client, &format!("SELECT * FROM {name}")).await?;
        let batch = sorted_rows(&client, sql).await?;
        if let Err(e) = compare_rows(&view, &batch) {
            bail!("{name}: the view differs from its batch query: {e}");
        }
    }
    Ok(())
}
