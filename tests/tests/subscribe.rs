//! SUBSCRIBE over the wire: snapshot then changes in epoch order with nothing missed or
//! repeated, the three output modes, the COPY form psql prints live, the extended protocol,
//! and a clean stop on cancel.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use eddy_tests::{TestServer, execute, sorted_rows};
use futures::{StreamExt, pin_mut};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const WAIT: Duration = Duration::from_secs(20);

/// A change as a subscriber sees it: epoch, operation, then the row's values.
type Change = (i64, String, Vec<String>);

async fn setup(client: &Client) -> Result<()> {
    execute(
        client,
        "CREATE STREAM clicks (user_id BIGINT, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '5 seconds')",
    )
    .await?;
    execute(
        client,
        "CREATE MATERIALIZED VIEW per_user AS \
         SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id",
    )
    .await?;
    execute(
        client,
        "CREATE MATERIALIZED VIEW per_window AS SELECT window_end, count(*) AS n \
         FROM TUMBLE(clicks, ts, INTERVAL '10 seconds') GROUP BY window_end EMIT ON WINDOW CLOSE",
    )
    .await?;
    Ok(())
}

fn change(row: &tokio_postgres::SimpleQueryRow) -> Result<Change> {
    let epoch: i64 = row.get(0).context("epoch")?.parse()?;
    let op = row.get(1).context("op")?.to_string();
    let values = (2..row.len())
        .map(|i| row.get(i).unwrap_or("NULL").to_string())
        .collect();
    Ok((epoch, op, values))
}

/// Applies changes to a multiset of rows.
fn apply(contents: &mut BTreeMap<Vec<String>, i64>, changes: &[Change]) -> Result<()> {
    for (_, op, row) in changes {
        let n = contents.entry(row.clone()).or_default();
        match op.as_str() {
            "insert" => *n += 1,
            "delete" => *n -= 1,
            other => bail!("unknown operation {other}"),
        }
        ensure!(*n >= 0, "{row:?} deleted more often than inserted");
        if *n == 0 {
            contents.remove(row);
        }
    }
    Ok(())
}

fn rows_of(contents: &BTreeMap<Vec<String>, i64>) -> Vec<Vec<String>> {
    contents
        .iter()
        .flat_map(|(row, n)| std::iter::repeat_n(row.clone(), *n as usize))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_every_change_in_epoch_order() -> Result<()> {
    let server = TestServer::start().await?;
    let writer = server.client().await?;
    setup(&writer).await?;
    execute(
        &writer,
        "INSERT INTO clicks VALUES (1, '2026-01-01 00:00:01'), (2, '2026-01-01 00:00:02')",
    )
    .await?;

    let subscriber = server.client().await?;
    let stream = subscriber
        .simple_query_raw("SUBSCRIBE TO per_user WITH (snapshot = true, output_mode = 'update')")
        .await?;
    pin_mut!(stream);

    // Writes race with the subscription's start; whatever the snapshot misses must follow.
    let writes = tokio::spawn({
        let writer = server.client().await?;
        async move {
            for i in 0..30i64 {
                let sql = format!(
                    "INSERT INTO clicks VALUES ({}, '2026-01-01 00:01:{:02}')",
                    i % 4,
                    i
                );
                execute(&writer, &sql).await?;
            }
            anyhow::Ok(())
        }
    });

    let mut changes: Vec<Change> = Vec::new();
    let mut contents = BTreeMap::new();
    let mut finished = false;
    let expected_total = 32;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !finished {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("waiting for changes")?
            .context("the subscription ended")??;
        if let SimpleQueryMessage::Row(row) = message {
            let c = change(&row)?;
            apply(&mut contents, std::slice::from_ref(&c))?;
            changes.push(c);
            let total: i64 = rows_of(&contents)
                .iter()
                .map(|r| r[1].parse::<i64>().unwrap_or(0))
                .sum();
            finished = total == expected_total;
        }
    }
    writes.await??;
    ensure!(
        changes.windows(2).all(|w| w[0].0 <= w[1].0),
        "epochs go back: {changes:?}"
    );
    let snapshot_epoch = changes[0].0;
    ensure!(
        changes.iter().filter(|c| c.0 == snapshot_epoch).count() >= 2,
        "the snapshot came first: {changes:?}"
    );
    let actual = rows_of(&contents);
    let expected = sorted_rows(&writer, "SELECT user_id, n FROM per_user").await?;
    ensure!(
        actual == expected,
        "changes add up to {actual:?}, the view holds {expected:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_subscription_and_the_session_goes_on() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    setup(&client).await?;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let err = tokio::time::timeout(WAIT, client.simple_query("SUBSCRIBE per_user"))
        .await
        .context("cancel did not stop the subscription")?
        .expect_err("a subscription ends only with an error");
    canceller.await??;
    ensure!(
        err.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    let rows = client.simple_query("SELECT 1").await?;
    ensure!(
        rows.iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("1"))),
        "the session is still usable: {rows:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_relation_ends_its_subscriptions() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    setup(&client).await?;
    let subscriber = server.client().await?;
    let ended = tokio::spawn(async move { subscriber.simple_query("SUBSCRIBE per_user").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    execute(&client, "DROP MATERIALIZED VIEW per_user").await?;
    let err = tokio::time::timeout(WAIT, ended)
        .await
        .context("the subscription did not end")??
        .expect_err("a subscription ends only with an error");
    ensure!(
        err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn output_modes() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    setup(&client).await?;

    // Append is refused where rows change, with the reason.
    let err = client
        .simple_query("SUBSCRIBE per_user WITH (output_mode = 'append')")
        .await
        .expect_err("append on an aggregate");
    ensure!(
        err.code() == Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE),
        "{err}"
    );
    let err = client
        .simple_query("SUBSCRIBE per_user WITH (output_mode = 'sometimes')")
        .await
        .expect_err("unknown mode");
    ensure!(
        err.code() == Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE),
        "{err}"
    );

    // Append on an EMIT ON WINDOW CLOSE view: final rows only, as windows close.
    let append = server.client().await?;
    let stream = append
        .simple_query_raw("SUBSCRIBE per_window WITH (output_mode = 'append')")
        .await?;
    pin_mut!(stream);
    // Complete: the whole result after each epoch that changed it.
    let complete = server.client().await?;
    let full = complete
        .simple_query_raw("SUBSCRIBE per_user WITH (output_mode = 'complete', snapshot = false)")
        .await?;
    pin_mut!(full);
    // A subscription listens before it describes its rows: once both descriptions are here,
    // no change can slip past them.
    for described in [stream.next(), full.next()] {
        let message = tokio::time::timeout(WAIT, described)
            .await?
            .context("ended")??;
        ensure!(
            matches!(message, SimpleQueryMessage::RowDescription(_)),
            "a subscription began with something other than its row description"
        );
    }

    execute(
        &client,
        "INSERT INTO clicks VALUES (1, '2026-01-01 00:00:01'), (1, '2026-01-01 00:00:03')",
    )
    .await?;
    execute(
        &client,
        "INSERT INTO clicks VALUES (2, '2026-01-01 00:00:20')",
    )
    .await?;

    let mut appended = Vec::new();
    while appended.is_empty() {
        if let SimpleQueryMessage::Row(row) = tokio::time::timeout(WAIT, stream.next())
            .await?
            .context("ended")??
        {
            appended.push(change(&row)?);
        }
    }
    ensure!(
        appended[0].1 == "insert"
            && appended[0].2 == vec!["2026-01-01 00:00:10".to_string(), "2".to_string()],
        "first closed window: {appended:?}"
    );

    // One row after the first insert, then both rows after the second.
    let mut epochs: BTreeMap<i64, Vec<Vec<String>>> = BTreeMap::new();
    while epochs.values().map(Vec::len).sum::<usize>() < 3 {
        if let SimpleQueryMessage::Row(row) = tokio::time::timeout(WAIT, full.next())
            .await?
            .context("ended")??
        {
            let (epoch, op, values) = change(&row)?;
            ensure!(op == "insert", "complete mode only lists rows");
            epochs.entry(epoch).or_default().push(values);
        }
    }
    let last = epochs.values().last().expect("two epochs");
    let mut last = last.clone();
    last.sort();
    ensure!(
        last == vec![
            vec!["1".to_string(), "2".to_string()],
            vec!["2".to_string(), "1".to_string()]
        ],
        "complete output after the second insert: {epochs:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_extended_protocol_forms() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    setup(&client).await?;
    execute(
        &client,
        "INSERT INTO clicks VALUES (7, '2026-01-01 00:00:01')",
    )
    .await?;

    // COPY (SUBSCRIBE ...) TO STDOUT: lines of COPY text, as psql prints them.
    let reader = server.client().await?;
    let copy = reader
        .copy_out("COPY (SUBSCRIBE per_user) TO STDOUT")
        .await?;
    pin_mut!(copy);
    let line = tokio::time::timeout(WAIT, copy.next())
        .await?
        .context("ended")??;
    let line = String::from_utf8(line.to_vec())?;
    let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    ensure!(fields[1..] == ["insert", "7", "1"], "copy line {line:?}");

    // Extended protocol, as drivers use it: typed rows as they come.
    let driver = server.client().await?;
    let rows = driver
        .query_raw("SUBSCRIBE per_user", std::iter::empty::<i64>())
        .await?;
    pin_mut!(rows);
    let first = tokio::time::timeout(WAIT, rows.next())
        .await?
        .context("ended")??;
    let user: i64 = first.get(2);
    let n: i64 = first.get(3);
    let op: &str = first.get(1);
    ensure!(
        (user, n, op) == (7, 1, "insert"),
        "first row {user} {n} {op}"
    );
    execute(
        &client,
        "INSERT INTO clicks VALUES (7, '2026-01-01 00:00:02')",
    )
    .await?;
    let mut ops = Vec::new();
    while ops.len() < 2 {
        let row = tokio::time::timeout(WAIT, rows.next())
            .await?
            .context("ended")??;
        ops.push((row.get::<_, String>(1), row.get::<_, i64>(3)));
    }
    ops.sort();
    ensure!(
        ops == vec![("delete".to_string(), 1), ("insert".to_string(), 2)],
        "update: {ops:?}"
    );
    Ok(())
}
