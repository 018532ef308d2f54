//! Trigger intervals: a view `WITH (trigger = '2 seconds')` shows what it showed at its last
//! tick until the next one, then equals its batch query over everything written; writes still
//! commit at once and `'asap'` views follow them at once; `eddy_catalog.progress` shows what
//! waits and until when; the changes waiting for a tick survive a kill -9; a server-wide `--trigger`; a view whose pending changes fail stops with
//! the reason in its progress row and goes on once replaced; bad options give 22023.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use eddy_tests::{TestServer, compare_rows, execute, query_rows, sorted_rows, wait_for_same_rows};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The trigger of the view under test, in milliseconds.
const EVERY_MS: u64 = 2_000;
/// How long after a tick its epoch is surely committed (a tick's epoch takes milliseconds).
const SETTLE: Duration = Duration::from_millis(400);

/// Milliseconds since the Unix epoch, on the clock the server's ticks follow.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// The tick after `ms`: ticks fall on multiples of the interval since the Unix epoch.
fn next_tick(ms: u64) -> u64 {
    (ms / EVERY_MS + 1) * EVERY_MS
}

/// Sleeps until `SETTLE` after the next tick, and returns that tick.
async fn after_next_tick() -> u64 {
    let tick = next_tick(now_ms());
    let wake = tick + SETTLE.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(wake.saturating_sub(now_ms()))).await;
    tick
}

const PER_PLAN: &str =
    "SELECT u.plan, count(*) AS n FROM clicks c JOIN users u ON c.user_id = u.id GROUP BY u.plan";
const PER_USER: &str = "SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id";

async fn trigger_epochs(client: &Client) -> Result<i64> {
    let rows = query_rows(
        client,
        "SELECT count(*) FROM eddy_catalog.epochs WHERE kind = 'trigger'",
    )
    .await?;
    Ok(rows[0][0].parse()?)
}

/// What waits for per_plan's next tick: the rows, and whether a tick is set.
async fn waiting(client: &Client) -> Result<Vec<String>> {
    let rows = query_rows(
        client,
        "SELECT pending_rows, next_trigger IS NOT NULL FROM eddy_catalog.progress \
         WHERE relation = 'per_plan'",
    )
    .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// Each round's writes (several statements, inserts, an update and a delete) reach the
/// triggered view, and the view over it, in one trigger epoch at the next tick; until then
/// they show what they showed; the asap view follows every write at once. A kill -9 with
/// changes pending loses none of them.
#[tokio::test]
async fn a_view_with_a_trigger_moves_once_per_interval() -> Result<()> {
    let home = tempfile::tempdir()?;
    let mut server = TestServer::start_in(home.path()).await?;
    let client = server.client().await?;
    client
        .batch_execute(&format!(
            "CREATE STREAM clicks (user_id BIGINT, url TEXT);
             CREATE TABLE users (id BIGINT PRIMARY KEY, plan TEXT);
             CREATE MATERIALIZED VIEW per_user AS {PER_USER};
             CREATE MATERIALIZED VIEW per_plan WITH (trigger = '2 seconds') AS {PER_PLAN};
             CREATE MATERIALIZED VIEW doubled AS SELECT plan, n * 2 AS twice FROM per_plan;"
        ))
        .await?;
    let shown = query_rows(&client, "SHOW CREATE MATERIALIZED VIEW per_plan").await?;
    ensure!(
        shown[0]
            .iter()
            .any(|c| c.contains("WITH (trigger = '2 seconds') AS")),
        "SHOW CREATE: {shown:?}"
    );

    let mut checked_before_tick = 0;
    for round in 0..8i64 {
        if round == 5 {
            server.restart().await?;
        }
        let client = server.client().await?;
        // Start right after a tick, so the round's writes all fall before the next one.
        after_next_tick().await;
        let before = sorted_rows(&client, "SELECT * FROM per_plan").await?;
        if round == 5 {
            // The changes of round 4, pending when the server was killed, came at the first
            // tick after the restart.
            compare_rows(&before, &sorted_rows(&client, PER_PLAN).await?)
                .map_err(|d| anyhow::anyhow!("after the restart: {d}"))?;
        }
        let before_doubled = sorted_rows(&client, "SELECT * FROM doubled").await?;
        let ticks = trigger_epochs(&client).await?;
        let started = now_ms();
        let base = round * 10;
        execute(
            &client,
            &format!(
                "INSERT INTO users VALUES ({base}, 'free'), ({}, 'pro') \
                 ON CONFLICT (id) DO UPDATE SET plan = excluded.plan",
                base + 1
            ),
        )
        .await?;
        for user in [base, base + 1, base + 1, round.saturating_sub(1) * 10] {
            execute(
                &client,
                &format!("INSERT INTO clicks VALUES ({user}, '/r{round}')"),
            )
            .await?;
        }
        if round > 0 {
            execute(
                &client,
                &format!("UPDATE users SET plan = 'team' WHERE id = {}", base - 9),
            )
            .await?;
            execute(
                &client,
                &format!("DELETE FROM users WHERE id = {}", base - 10),
            )
            .await?;
        }
        // The asap view follows each write at once.
        let per_user = sorted_rows(&client, "SELECT * FROM per_user").await?;
        compare_rows(&per_user, &sorted_rows(&client, PER_USER).await?)
            .map_err(|d| anyhow::anyhow!("round {round}: per_user: {d}"))?;
        let now = sorted_rows(&client, "SELECT * FROM per_plan").await?;
        let now_doubled = sorted_rows(&client, "SELECT * FROM doubled").await?;
        // Unless the machine was slow enough for a tick to pass, nothing moved yet.
        if now_ms() < next_tick(started) {
            ensure!(
                now == before && now_doubled == before_doubled,
                "round {round}: per_plan moved before its tick: {before:?} -> {now:?}"
            );
            let waiting = waiting(&client).await?;
            ensure!(
                waiting[0] != "0" && waiting[1] == "t",
                "round {round}: per_plan's progress before its tick: {waiting:?}"
            );
            checked_before_tick += 1;
        }
        if round == 4 {
            // Killed with the round's changes pending: the restart finds them.
            server.kill()?;
            continue;
        }
        after_next_tick().await;
        let view = sorted_rows(&client, "SELECT * FROM per_plan").await?;
        compare_rows(&view, &sorted_rows(&client, PER_PLAN).await?)
            .map_err(|d| anyhow::anyhow!("round {round}: per_plan after its tick: {d}"))?;
        let doubled = sorted_rows(&client, "SELECT * FROM doubled").await?;
        let expected = sorted_rows(
            &client,
            &format!("SELECT plan, n * 2 FROM ({PER_PLAN}) AS p"),
        )
        .await?;
        compare_rows(&doubled, &expected)
            .map_err(|d| anyhow::anyhow!("round {round}: doubled: {d}"))?;
        let waiting = waiting(&client).await?;
        ensure!(
            waiting == ["0", "f"],
            "round {round}: per_plan's progress after its tick: {waiting:?}"
        );
        // Up to seven statements, one trigger epoch.
        let after = trigger_epochs(&client).await?;
        ensure!(
            after == ticks + 1,
            "round {round}: {} trigger epochs for one interval's writes",
            after - ticks
        );
    }
    ensure!(
        checked_before_tick >= 3,
        "only {checked_before_tick} rounds were checked before their tick"
    );
    Ok(())
}

async fn sqlstate(client: &Client, sql: &str) -> Result<SqlState> {
    match client.batch_execute(sql).await {
        Ok(()) => anyhow::bail!("`{sql}` succeeded"),
        Err(e) => Ok(e
            .code()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("`{sql}`: {e}"))?),
    }
}

async fn progress(client: &Client, view: &str) -> Result<(String, String)> {
    let rows = query_rows(
        client,
        &format!(
            "SELECT status, coalesce(source_error, 'none') FROM eddy_catalog.progress \
             WHERE relation = '{view}'"
        ),
    )
    .await?;
    ensure!(rows.len() == 1, "progress of {view}: {rows:?}");
    Ok((rows[0][0].clone(), rows[0][1].clone()))
}

/// `--trigger '1 second'` applies to views that name none; `'asap'` overrides it. A view
/// whose pending changes fail (a division by zero) stops with the reason in progress while
/// the others go on; replaced, it runs again. Bad options are refused.
#[tokio::test]
async fn the_server_trigger_a_stopped_view_and_bad_options() -> Result<()> {
    let home = tempfile::tempdir()?;
    let server = TestServer::start_with(home.path(), &["--trigger", "1 second"]).await?;
    let client = server.client().await?;
    client
        .batch_execute(
            "CREATE STREAM s (k INT, x INT);
             CREATE MATERIALIZED VIEW sums AS SELECT k, sum(x) AS total FROM s GROUP BY k;
             CREATE MATERIALIZED VIEW now_sums WITH (trigger = 'asap') AS
                 SELECT k, sum(x) AS total FROM s GROUP BY k;
             CREATE MATERIALIZED VIEW ratios AS SELECT k, 100 / x AS r FROM s;",
        )
        .await?;
    let batch = "SELECT k, sum(x) AS total FROM s GROUP BY k";
    execute(&client, "INSERT INTO s VALUES (1, 5), (2, 7), (1, 1)").await?;
    // 'asap' overrides the server's trigger: visible as the INSERT returns.
    compare_rows(
        &sorted_rows(&client, "SELECT * FROM now_sums").await?,
        &sorted_rows(&client, batch).await?,
    )
    .map_err(|d| anyhow::anyhow!("now_sums: {d}"))?;
    let wait = Duration::from_secs(10);
    wait_for_same_rows((&client, batch), (&client, "SELECT * FROM sums"), wait).await?;

    // A zero reaches `ratios` at its tick, not the INSERT: the view stops, the rest goes on.
    execute(&client, "INSERT INTO s VALUES (3, 0), (4, 2)").await?;
    wait_for_same_rows((&client, batch), (&client, "SELECT * FROM sums"), wait).await?;
    let deadline = std::time::Instant::now() + wait;
    let (status, error) = loop {
        let (status, error) = progress(&client, "ratios").await?;
        if status == "error" || std::time::Instant::now() > deadline {
            break (status, error);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        status == "error" && error.contains("stopped") && error.contains("division by zero"),
        "ratios: {status} {error}"
    );
    let rows = sorted_rows(&client, "SELECT * FROM ratios").await?;
    ensure!(
        rows == vec![vec!["1", "100"], vec!["1", "20"], vec!["2", "14"]],
        "ratios kept what it had before the failing tick: {rows:?}"
    );
    execute(&client, "INSERT INTO s VALUES (5, 50)").await?;
    wait_for_same_rows((&client, batch), (&client, "SELECT * FROM sums"), wait).await?;

    // Replaced with a definition that takes the zero, it starts over from the history.
    client
        .batch_execute(
            "CREATE OR REPLACE MATERIALIZED VIEW ratios AS SELECT k, 100 / nullif(x, 0) AS r FROM s",
        )
        .await?;
    execute(&client, "INSERT INTO s VALUES (6, 4)").await?;
    let ratios = "SELECT k, 100 / nullif(x, 0) AS r FROM s";
    wait_for_same_rows((&client, ratios), (&client, "SELECT * FROM ratios"), wait).await?;
    let (status, error) = progress(&client, "ratios").await?;
    ensure!(status == "running" && error == "none", "{status} {error}");

    for bad in [
        "CREATE MATERIALIZED VIEW b1 WITH (trigger = 'soon') AS SELECT * FROM s",
        "CREATE MATERIALIZED VIEW b2 WITH (trigger = '0.0001 seconds') AS SELECT * FROM s",
        "CREATE MATERIALIZED VIEW b3 WITH (triger = '1 second') AS SELECT * FROM s",
    ] {
        ensure!(
            sqlstate(&client, bad).await? == SqlState::INVALID_PARAMETER_VALUE,
            "{bad}"
        );
    }
    Ok(())
}
