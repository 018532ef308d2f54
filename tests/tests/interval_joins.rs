//! Interval joins of two streams (`c.ts BETWEEN s.ts AND s.ts + INTERVAL '30 seconds'`, or
//! equal TUMBLE windows, or equal windows of two aggregates of one stream):
//! the views equal their batch queries over the streams' on-time rows after every write,
//! across a kill and restart and for a view created (backfilled) half-way, while the join
//! keeps only the rows a future row could still match: its state stays bounded by the
//! watermarks, not by the streams' length. The input is random but seeded
//! (`EDDY_ORACLE_SEED` picks another seed).

use anyhow::{Context, Result, ensure};
use eddy_tests::{TestServer, compare_rows, execute, query_rows, sorted_rows};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

const ROUNDS: usize = 30;
const SEED: u64 = 0x0EDD_1017;
const ADS: i64 = 4;
/// The streams' watermark delay, in seconds.
const DELAY: i64 = 10;
/// Event times start here (seconds since the Unix epoch: 2026-01-01 00:00:00).
const START: i64 = 1_767_225_600;

const VIEWS: &[(&str, &str, usize)] = &[
    (
        "attributed",
        "SELECT s.ad, s.ts AS shown, c.ts AS clicked FROM shows s JOIN clicks c \
         ON s.ad = c.ad AND c.ts BETWEEN s.ts AND s.ts + INTERVAL '30 seconds'",
        0,
    ),
    (
        "per_ad",
        "SELECT s.ad, count(*) AS clicks, max(c.ts) AS last FROM shows s JOIN clicks c \
         ON s.ad = c.ad AND c.ts >= s.ts - INTERVAL '5 seconds' \
         AND c.ts < s.ts + INTERVAL '20 seconds' GROUP BY s.ad",
        ROUNDS / 3,
    ),
    // Equal windows bound the join as well: a window's start is within its size of the
    // event time.
    (
        "windowed",
        "SELECT a.ad, a.window_start, count(*) AS pairs \
         FROM TUMBLE(shows, ts, INTERVAL '20 seconds') a \
         JOIN TUMBLE(clicks, ts, INTERVAL '20 seconds') b \
         ON a.ad = b.ad AND a.window_start = b.window_start GROUP BY a.ad, a.window_start",
        0,
    ),
    // So do equal windows of two aggregates of a stream (Nexmark q5's shape: the ads with
    // the most clicks in each hopping window), whose inputs retract rows as counts grow;
    // created half-way, so that it starts from a backfill.
    (
        "hottest",
        "SELECT c.ad, c.n, c.window_start FROM \
         (SELECT ad, count(*) AS n, window_start FROM \
          HOP(clicks, ts, INTERVAL '10 seconds', INTERVAL '20 seconds') \
          GROUP BY ad, window_start) c \
         JOIN (SELECT max(n) AS top, window_start FROM \
          (SELECT ad, count(*) AS n, window_start FROM \
           HOP(clicks, ts, INTERVAL '10 seconds', INTERVAL '20 seconds') \
           GROUP BY ad, window_start) GROUP BY window_start) m \
         ON c.window_start = m.window_start AND c.n >= m.top",
        ROUNDS / 4,
    ),
    // An outer join of two streams' counts on their window frees a window once both
    // watermarks have passed it, and pads the shows' windows without clicks until then.
    (
        "shown_and_clicked",
        "SELECT s.ad, s.window_start, s.n AS shows, c.n AS clicks FROM \
         (SELECT ad, window_start, count(*) AS n FROM \
          TUMBLE(shows, ts, INTERVAL '20 seconds') GROUP BY ad, window_start) s \
         LEFT JOIN (SELECT ad, window_start, count(*) AS n FROM \
          TUMBLE(clicks, ts, INTERVAL '20 seconds') GROUP BY ad, window_start) c \
         ON s.ad = c.ad AND s.window_start = c.window_start",
        0,
    ),
];

/// One stream as it should be.
#[derive(Default)]
struct Stream {
    /// (ad, event time in seconds) of every accepted row.
    rows: Vec<(i64, i64)>,
    watermark: Option<i64>,
    late: u64,
}

fn timestamp(seconds: i64) -> String {
    let t = chrono::DateTime::from_timestamp(seconds, 0).expect("a valid time");
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// One INSERT of a few rows around the clock into a stream; returns the statement.
fn insert(rng: &mut StdRng, clock: &mut i64, name: &str, stream: &mut Stream) -> String {
    let mut rows = Vec::new();
    let mut newest: Option<i64> = None;
    for _ in 0..rng.random_range(1..=8) {
        *clock += rng.random_range(0..=2);
        let lag = if rng.random_bool(0.08) {
            rng.random_range(DELAY..4 * DELAY)
        } else {
            rng.random_range(0..DELAY)
        };
        let t = *clock - lag;
        let ad = rng.random_range(0..ADS);
        rows.push(format!("({ad}, '{}')", timestamp(t)));
        if stream.watermark.is_some_and(|w| t < w) {
            stream.late += 1;
        } else {
            stream.rows.push((ad, t));
            newest = newest.max(Some(t));
        }
    }
    if let Some(t) = newest {
        stream.watermark = stream.watermark.max(Some(t - DELAY));
    }
    format!("INSERT INTO {name} VALUES {}", rows.join(", "))
}

async fn check(client: &Client, round: usize, when: &str) -> Result<()> {
    for (name, definition, _) in VIEWS.iter().filter(|v| v.2 <= round) {
        compare_rows(
            &sorted_rows(client, &format!("SELECT * FROM {name}")).await?,
            &sorted_rows(client, definition).await?,
        )
        .map_err(|diff| anyhow::anyhow!("{when}: view {name} differs from its query\n{diff}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn interval_joins_match_their_queries_and_free_their_state() -> Result<()> {
    let seed = std::env::var("EDDY_ORACLE_SEED").map_or(SEED, |s| {
        s.parse()
            .expect("EDDY_ORACLE_SEED must be an unsigned integer")
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = START;
    let (mut shows, mut clicks) = (Stream::default(), Stream::default());
    let mut server = TestServer::start().await?;
    let mut client = server.client().await?;
    for stream in ["shows", "clicks"] {
        execute(
            &client,
            &format!(
                "CREATE STREAM {stream} (ad BIGINT, ts TIMESTAMP, \
                 WATERMARK FOR ts AS ts - INTERVAL '{DELAY} seconds')"
            ),
        )
        .await?;
    }
    for round in 0..=ROUNDS {
        let when = format!("round {round}");
        for (name, sql, _) in VIEWS.iter().filter(|v| v.2 == round) {
            execute(
                &client,
                &format!("CREATE MATERIALIZED VIEW {name} AS {sql}"),
            )
            .await
            .with_context(|| format!("creating {name}"))?;
        }
        for _ in 0..rng.random_range(1..=4) {
            let sql = match rng.random_bool(0.5) {
                true => insert(&mut rng, &mut clock, "shows", &mut shows),
                false => insert(&mut rng, &mut clock, "clicks", &mut clicks),
            };
            execute(&client, &sql).await.with_context(|| when.clone())?;
        }
        check(&client, round, &format!("{when} (seed {seed})")).await?;
        if round == ROUNDS / 2 {
            server.kill()?;
            server.restart().await?;
            client = server.client().await?;
            check(&client, round, &format!("after a restart in {when}")).await?;
        }
    }
    ensure!(
        shows.late + clicks.late > 0,
        "the run produced no late rows"
    );
    let joined = query_rows(&client, "SELECT count(*) FROM attributed").await?;
    ensure!(
        joined[0][0].parse::<i64>()? > 50,
        "too few matches: {joined:?}"
    );

    // What `attributed` can still need: shows no later click can reach (a click is at most
    // 30 s after its show, and clicks to come are at or after the clicks' watermark), and
    // clicks no later show can reach (a show is at most as late as its click).
    let (wm_shows, wm_clicks) = (shows.watermark.unwrap(), clicks.watermark.unwrap());
    let needed = shows.rows.iter().filter(|r| r.1 >= wm_clicks - 30).count()
        + clicks.rows.iter().filter(|r| r.1 >= wm_shows).count();
    let state: i64 = query_rows(
        &client,
        "SELECT state_rows FROM eddy_catalog.progress WHERE relation = 'attributed'",
    )
    .await?[0][0]
        .parse()?;
    let total = shows.rows.len() + clicks.rows.len();
    ensure!(
        state as usize <= needed && needed * 4 < total,
        "the join holds {state} rows of state; {needed} of the {total} rows can still match"
    );
    // What `hottest` can still need: the counts and maxima of windows a click still to come
    // can reach (a window is 20 s long and starts every 10 s), held by its two aggregates
    // and by both sides of its join. Without freeing, it would hold every window ever.
    let mut groups = std::collections::BTreeSet::new();
    for &(ad, t) in &clicks.rows {
        let start = t.div_euclid(10) * 10;
        groups.extend([(start, ad), (start - 10, ad)]);
    }
    let windows = |groups: &mut dyn Iterator<Item = &(i64, i64)>| {
        groups
            .map(|g| g.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let held = |groups: usize, windows: usize| 2 * groups + 2 * windows;
    let open: Vec<&(i64, i64)> = groups.iter().filter(|g| g.0 + 20 >= wm_clicks).collect();
    let needed = held(open.len(), windows(&mut open.iter().copied()));
    let ever = held(groups.len(), windows(&mut groups.iter()));
    let state: i64 = query_rows(
        &client,
        "SELECT state_rows FROM eddy_catalog.progress WHERE relation = 'hottest'",
    )
    .await?[0][0]
        .parse()?;
    ensure!(
        state as usize <= needed && needed * 4 < ever,
        "hottest holds {state} rows of state; {needed} can still change, {ever} ever did"
    );
    // EXPLAIN shows the joins' state bounded by the watermarks.
    for (_, definition, _) in VIEWS {
        let plan = query_rows(
            &client,
            &format!("EXPLAIN CREATE MATERIALIZED VIEW again AS {definition}"),
        )
        .await?;
        let text: Vec<String> = plan.into_iter().flatten().collect();
        let join = text
            .iter()
            .position(|l| l.contains(" join on "))
            .with_context(|| format!("{definition}: {text:#?}"))?;
        ensure!(
            text[join + 1].starts_with("    state (bounded): the rows of both inputs until"),
            "{definition}: {text:#?}"
        );
    }
    Ok(())
}
