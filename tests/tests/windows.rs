//! The oracle for event-time windows: TUMBLE, HOP and SESSION views over a stream with a watermark
//! equal their batch query over the stream's on-time rows after every write; EMIT ON WINDOW
//! CLOSE views equal it restricted to closed windows; late rows change no view and are
//! counted and kept; aggregate state holds only open windows.
//!
//! Event times advance with disorder: some rows lag behind the newest by less than the
//! watermark delay (on time), some by more (late). Lateness is decided per statement, against
//! the watermark as it stood before the statement, which the model here tracks on its own.
//! Half-way through, the server is killed and restarted on its data.

use anyhow::{Context, Result, ensure};
use eddy_tests::{TestServer, compare_rows, execute, query_rows, sorted_rows};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

const ROUNDS: usize = 40;
const SEED: u64 = 0x0EDD_3153;
const KEYS: i64 = 5;
/// The watermark delay in seconds.
const DELAY: i64 = 20;
/// Event times start here (seconds since the Unix epoch: 2026-01-01 00:00:00).
const START: i64 = 1_767_225_600;

/// A view under test: its definition, and the batch query it must equal.
struct WindowView {
    name: &'static str,
    definition: &'static str,
    /// Only closed windows: the oracle is restricted to `window_end <= watermark`.
    emit_on_close: bool,
    created_after_round: usize,
}

const VIEWS: &[WindowView] = &[
    WindowView {
        name: "per_window",
        definition: "SELECT k, window_start, window_end, count(*) AS n, sum(v) AS total, \
                     max(v) AS hi, min(v) AS lo FROM TUMBLE(ev, ts, INTERVAL '1 minute') \
                     GROUP BY k, window_start, window_end",
        emit_on_close: false,
        created_after_round: 0,
    },
    WindowView {
        name: "sliding",
        definition: "SELECT k, window_start, window_end, count(*) AS n, avg(v) AS mean \
                     FROM HOP(ev, ts, INTERVAL '20 seconds', INTERVAL '1 minute') \
                     GROUP BY 1, 2, 3",
        emit_on_close: false,
        created_after_round: 0,
    },
    WindowView {
        name: "closed",
        definition: "SELECT k, window_start, window_end, count(*) AS n, sum(v) AS total \
                     FROM TUMBLE(ev, ts, INTERVAL '30 seconds') GROUP BY 1, 2, 3",
        emit_on_close: true,
        created_after_round: 0,
    },
    WindowView {
        name: "closed_hops",
        definition: "SELECT window_end, count(*) AS n, max(v) AS hi \
                     FROM HOP(ev, ts, INTERVAL '15 seconds', INTERVAL '45 seconds') \
                     WHERE v > 10 GROUP BY window_end",
        emit_on_close: true,
        created_after_round: 7,
    },
    // Sessions merge when a late-arriving (but on-time) row bridges two of them.
    WindowView {
        name: "sessions",
        definition: "SELECT k, window_start, window_end, count(*) AS n, sum(v) AS total, \
                     max(v) AS hi FROM SESSION(ev, ts, INTERVAL '6 seconds') \
                     GROUP BY k, window_start, window_end",
        emit_on_close: false,
        created_after_round: 0,
    },
    // A filter after the sessions: they still span the rows it drops.
    WindowView {
        name: "closed_sessions",
        definition: "SELECT k, window_end, count(*) AS n, min(v) AS lo \
                     FROM SESSION(ev, ts, INTERVAL '5 seconds') WHERE v > 0 GROUP BY 1, 2",
        emit_on_close: true,
        created_after_round: 5,
    },
    // Only the partition and the bounds are read: one row per session (Nexmark q11).
    WindowView {
        name: "per_session",
        definition: "SELECT k, count(*) AS n, window_start, window_end \
                     FROM SESSION(ev, ts, INTERVAL '4 seconds') \
                     GROUP BY k, window_start, window_end",
        emit_on_close: false,
        created_after_round: 3,
    },
    // Without GROUP BY keys, one partition.
    WindowView {
        name: "busy_spells",
        definition: "SELECT window_start, window_end, count(*) AS n \
                     FROM SESSION(ev, ts, INTERVAL '3 seconds') GROUP BY window_start, window_end",
        emit_on_close: false,
        created_after_round: 9,
    },
    WindowView {
        name: "raw_windows",
        definition: "SELECT k, v, window_start FROM TUMBLE(ev, ts, INTERVAL '1 minute') \
                     WHERE v % 3 = 0",
        emit_on_close: false,
        created_after_round: 4,
    },
];

/// The stream as it should be: accepted rows, late count and the watermark.
#[derive(Default)]
struct Model {
    /// (k, v, event time in seconds) of every accepted row.
    rows: Vec<(i64, i64, i64)>,
    late: u64,
    /// Seconds since the Unix epoch.
    watermark: Option<i64>,
    /// The newest event time generated so far.
    clock: i64,
}

impl Model {
    /// Aggregate groups of `per_window` whose window is still open.
    fn open_groups(&self) -> usize {
        let wm = self.watermark.unwrap_or(i64::MIN);
        let mut open: Vec<(i64, i64)> = self
            .rows
            .iter()
            .map(|(k, _, t)| (*k, t.div_euclid(60) * 60 + 60))
            .filter(|(_, end)| *end > wm)
            .collect();
        open.sort_unstable();
        open.dedup();
        open.len()
    }
}

fn timestamp(seconds: i64) -> String {
    let t = chrono::DateTime::from_timestamp(seconds, 0).expect("a valid time");
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// One INSERT of a few rows around the clock; returns the statement.
fn insert(rng: &mut StdRng, model: &mut Model) -> String {
    let count = rng.random_range(1..=12);
    let mut rows = Vec::new();
    let mut accepted_max: Option<i64> = None;
    for _ in 0..count {
        model.clock += rng.random_range(0..=4);
        // Mostly close to the clock, sometimes far behind it (late if behind the watermark).
        let lag = if rng.random_bool(0.1) {
            rng.random_range(DELAY..3 * DELAY)
        } else {
            rng.random_range(0..DELAY)
        };
        let t = model.clock - lag;
        let k = rng.random_range(0..KEYS);
        let v = rng.random_range(-5..=40);
        rows.push(format!("({k}, {v}, '{}')", timestamp(t)));
        if model.watermark.is_some_and(|w| t < w) {
            model.late += 1;
        } else {
            model.rows.push((k, v, t));
            accepted_max = accepted_max.max(Some(t));
        }
    }
    if let Some(t) = accepted_max {
        let candidate = t - DELAY;
        model.watermark = Some(model.watermark.map_or(candidate, |w| w.max(candidate)));
    }
    format!("INSERT INTO ev VALUES {}", rows.join(", "))
}

async fn create_views(client: &Client, round: usize) -> Result<()> {
    for view in VIEWS.iter().filter(|v| v.created_after_round == round) {
        let emit = if view.emit_on_close {
            " EMIT ON WINDOW CLOSE"
        } else {
            ""
        };
        execute(
            client,
            &format!(
                "CREATE MATERIALIZED VIEW {} AS {}{emit}",
                view.name, view.definition
            ),
        )
        .await?;
    }
    Ok(())
}

async fn check(client: &Client, model: &Model, round: usize, when: &str) -> Result<()> {
    let count = query_rows(client, "SELECT count(*) FROM ev").await?;
    ensure!(
        count == vec![vec![model.rows.len().to_string()]],
        "{when}: stream ev has {count:?} rows, expected {}",
        model.rows.len()
    );
    let progress = query_rows(
        client,
        "SELECT watermark, late_rows FROM eddy_catalog.progress WHERE relation = 'ev'",
    )
    .await?;
    let watermark = model
        .watermark
        .map_or_else(|| "NULL".to_string(), timestamp);
    ensure!(
        progress == vec![vec![watermark.clone(), model.late.to_string()]],
        "{when}: progress of ev is {progress:?}, expected watermark {watermark} and {} late rows",
        model.late
    );
    let kept = query_rows(
        client,
        "SELECT count(*) FROM eddy_catalog.late_rows WHERE stream = 'ev' AND event_time < watermark",
    )
    .await?;
    ensure!(
        kept == vec![vec![model.late.to_string()]],
        "{when}: late_rows holds {kept:?}, expected {}",
        model.late
    );
    for view in VIEWS.iter().filter(|v| v.created_after_round <= round) {
        let actual = sorted_rows(client, &format!("SELECT * FROM {}", view.name)).await?;
        let oracle = if view.emit_on_close {
            format!(
                "SELECT * FROM ({}) AS o WHERE window_end <= TIMESTAMP '{watermark}'",
                view.definition
            )
        } else {
            view.definition.to_string()
        };
        let expected = if model.watermark.is_none() && view.emit_on_close {
            vec![]
        } else {
            sorted_rows(client, &oracle).await?
        };
        if let Err(diff) = compare_rows(&actual, &expected) {
            anyhow::bail!(
                "{when}: view {} differs from its batch query\n  {oracle}\n{diff}",
                view.name
            );
        }
    }
    // Aggregate state holds open windows only: the watermark freed the closed ones.
    let state = query_rows(
        client,
        "SELECT state_rows FROM eddy_catalog.progress WHERE relation = 'per_window'",
    )
    .await?;
    ensure!(
        state == vec![vec![model.open_groups().to_string()]],
        "{when}: per_window holds {state:?} state rows, expected {} open groups",
        model.open_groups()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn windowed_views_match_their_batch_queries() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut model = Model {
        clock: START,
        ..Model::default()
    };
    let mut server = TestServer::start().await?;
    let mut client = server.client().await?;
    execute(
        &client,
        &format!(
            "CREATE STREAM ev (k BIGINT, v BIGINT, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '{DELAY} seconds')"
        ),
    )
    .await?;
    create_views(&client, 0).await?;
    check(&client, &model, 0, "before any input").await?;
    for round in 1..=ROUNDS {
        let when = format!("round {round}");
        for _ in 0..rng.random_range(1..=3) {
            let sql = insert(&mut rng, &mut model);
            execute(&client, &sql).await.with_context(|| when.clone())?;
        }
        create_views(&client, round).await?;
        check(&client, &model, round, &when).await?;
        if round == ROUNDS / 2 {
            server.kill()?;
            server.restart().await?;
            client = server.client().await?;
            check(
                &client,
                &model,
                round,
                &format!("after a restart in {when}"),
            )
            .await?;
        }
    }
    ensure!(model.late > 0, "the run produced no late rows");
    // The sessions must have had something to merge: several per key, some of many rows.
    let shape = query_rows(&client, "SELECT count(*), max(n) FROM sessions").await?;
    let (count, largest): (i64, i64) = (shape[0][0].parse()?, shape[0][1].parse()?);
    ensure!(
        count > 3 * KEYS && largest >= 3,
        "sessions: {count} sessions, the largest of {largest} rows"
    );
    ensure!(
        model.rows.len() > 300,
        "the run accepted only {} rows",
        model.rows.len()
    );
    Ok(())
}

/// Feeds `view`'s stream `s (k, ts)` one INSERT per batch, whose rows `rows(batch)` gives as
/// `(k, seconds after START)`, and returns the most state rows the view held after any batch.
async fn largest_state(
    client: &Client,
    view: &str,
    definition: &str,
    batches: i64,
    rows: impl Fn(i64) -> Vec<(i64, i64)>,
) -> Result<i64> {
    execute(
        client,
        "CREATE STREAM s (k BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5 seconds')",
    )
    .await?;
    execute(
        client,
        &format!("CREATE MATERIALIZED VIEW {view} AS {definition}"),
    )
    .await?;
    let mut largest = 0i64;
    for batch in 0..batches {
        let values: Vec<String> = rows(batch)
            .into_iter()
            .map(|(k, t)| format!("({k}, '{}')", timestamp(START + t)))
            .collect();
        execute(
            client,
            &format!("INSERT INTO s VALUES {}", values.join(", ")),
        )
        .await?;
        let state = query_rows(
            client,
            &format!("SELECT state_rows FROM eddy_catalog.progress WHERE relation = '{view}'"),
        )
        .await?;
        largest = largest.max(state[0][0].parse()?);
    }
    Ok(largest)
}

/// An endless stream over many windows keeps its aggregate state bounded.
#[tokio::test(flavor = "multi_thread")]
async fn window_state_stays_bounded() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // 100 keys, one row each, 10 seconds further every batch: one window per batch.
    let largest = largest_state(
        &client,
        "w",
        "SELECT k, window_end, count(*) AS n FROM TUMBLE(s, ts, INTERVAL '10 seconds') \
         GROUP BY k, window_end EMIT ON WINDOW CLOSE",
        50,
        |batch| (0..100).map(|k| (k, batch * 10 + k % 10)).collect(),
    )
    .await?;
    // 50 windows of 100 groups went through; at most the open ones (about two windows'
    // worth, counted in the aggregate and in the close gate) are held.
    ensure!(
        largest <= 400,
        "state grew to {largest} rows over 5000 groups"
    );
    let closed = query_rows(&client, "SELECT count(*), sum(n) FROM w").await?;
    ensure!(
        closed == vec![vec!["4900".to_string(), "4900".to_string()]],
        "closed windows: {closed:?}"
    );
    Ok(())
}

/// A query that windows one stream twice, alike (Nexmark q5 counts one HOP per auction and
/// again for the maximum), frees the state of closed windows too.
#[tokio::test(flavor = "multi_thread")]
async fn two_alike_windows_keep_state_bounded() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // 100 keys, one row each, 10 seconds further every batch; each row falls in two windows
    // of each HOP.
    let largest = largest_state(
        &client,
        "h",
        "SELECT k, window_end, count(*) AS n \
         FROM HOP(s, ts, INTERVAL '10 seconds', INTERVAL '20 seconds') GROUP BY k, window_end \
         UNION ALL \
         SELECT k, window_end, count(*) AS n \
         FROM HOP(s, ts, INTERVAL '10 seconds', INTERVAL '20 seconds') GROUP BY k, window_end",
        50,
        |batch| (0..100).map(|k| (k, batch * 10 + k % 10)).collect(),
    )
    .await?;
    // 51 windows of 100 groups went through each aggregate (10,200 groups, 20,000 counted
    // rows: each of 5,000 in two windows of each HOP); the open ones (two or three windows'
    // worth in each) are held.
    ensure!(
        largest <= 800,
        "state grew to {largest} rows over 10200 groups"
    );
    let counted = query_rows(&client, "SELECT count(*), sum(n) FROM h").await?;
    ensure!(
        counted == vec![vec!["10200".to_string(), "20000".to_string()]],
        "windows: {counted:?}"
    );
    Ok(())
}

/// An endless stream of sessions keeps the session and aggregate state bounded: closed
/// sessions are forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn session_state_stays_bounded() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    // 50 keys, two rows each a second apart, then a 9-second pause: a session per batch.
    let largest = largest_state(
        &client,
        "v",
        "SELECT k, window_start, window_end, count(*) AS n \
         FROM SESSION(s, ts, INTERVAL '4 seconds') GROUP BY k, window_start, window_end",
        40,
        |batch| (0..100).map(|i| (i % 50, batch * 10 + i / 50)).collect(),
    )
    .await?;
    // 2,000 sessions of 4,000 rows went through; the open ones (the last batch or two, in the
    // session operator and the aggregate) are held.
    ensure!(
        largest <= 400,
        "state grew to {largest} rows over 2000 sessions"
    );
    let sessions = query_rows(&client, "SELECT count(*), sum(n), max(n) FROM v").await?;
    ensure!(
        sessions
            == vec![vec![
                "2000".to_string(),
                "4000".to_string(),
                "2".to_string()
            ]],
        "sessions: {sessions:?}"
    );
    Ok(())
}

/// Late rows and state that grows without bound are reported to the client as NOTICEs.
#[tokio::test(flavor = "multi_thread")]
async fn late_rows_and_unbounded_state_are_noticed() -> Result<()> {
    let server = TestServer::start().await?;
    let (client, mut notices) = server.client_with_notices().await?;
    execute(
        &client,
        "CREATE STREAM a (k BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 second')",
    )
    .await?;
    execute(&client, "CREATE STREAM b (k BIGINT, x TEXT)").await?;
    execute(
        &client,
        "INSERT INTO a VALUES (1, '2026-01-01 00:00:10'), (1, '2026-01-01 00:00:20')",
    )
    .await?;
    let inserted = execute(
        &client,
        "INSERT INTO a VALUES (1, '2026-01-01 00:00:01'), (2, '2026-01-01 00:00:30')",
    )
    .await?;
    ensure!(inserted == 1, "one row was on time, not {inserted}");
    let notice = notices
        .recv()
        .await
        .context("a notice about the late row")?;
    ensure!(
        notice.contains("1 row(s) arrived behind the watermark of stream \"a\""),
        "{notice}"
    );
    execute(
        &client,
        "CREATE MATERIALIZED VIEW joined AS SELECT a.k, b.x FROM a JOIN b ON a.k = b.k",
    )
    .await?;
    let notice = notices.recv().await.context("a notice about the join")?;
    ensure!(
        notice.contains("join of streams a and b") && notice.contains("without bound"),
        "{notice}"
    );
    Ok(())
}
