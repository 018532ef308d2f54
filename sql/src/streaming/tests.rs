//! The streaming planner over a catalog of one stream: the dataflow a query gets.

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use eddy_catalog::{Column, Relation, RelationKind, Snapshot, SqlType, Watermark};
use eddy_dataflow::{Explain, Input, StateBound};
use eddy_storage::Store;

use super::{PLAN_VERSION, ViewOptions, plan_dataflow};
use crate::context::{QueryEngine, Rows};
use crate::parser::{self, Statement};

/// Counts of bids per auction and hopping window, and the most in each window: Nexmark q5's
/// shape, which reads the same counts twice.
const HOT_AUCTIONS: &str = "\
    SELECT c.auction, c.n FROM (\
        SELECT auction, count(*) AS n, window_start, window_end \
        FROM HOP(bids, ts, INTERVAL '2 seconds', INTERVAL '10 seconds') \
        GROUP BY auction, window_start, window_end) AS c \
    JOIN (\
        SELECT max(x.n) AS top, x.window_start, x.window_end FROM (\
            SELECT count(*) AS n, window_start, window_end \
            FROM HOP(bids, ts, INTERVAL '2 seconds', INTERVAL '10 seconds') \
            GROUP BY auction, window_start, window_end) AS x \
        GROUP BY x.window_start, x.window_end) AS m \
    ON c.window_start = m.window_start AND c.window_end = m.window_end AND c.n >= m.top";

fn catalog() -> Arc<Snapshot> {
    let bids = Relation {
        id: 3,
        watermark: Some(Watermark {
            column: 2,
            delay_micros: 1_000_000,
        }),
        ..Relation::new(
            "bids",
            RelationKind::Stream,
            vec![
                Column::nullable("auction", SqlType::BigInt),
                Column::nullable("price", SqlType::BigInt),
                Column::nullable("ts", SqlType::Timestamp),
            ],
        )
    };
    Arc::new(Snapshot::from_relations([bids]))
}

/// The operators of the dataflow `sql` gets from planner `version`, one line each: what it
/// is and the nodes it reads.
async fn operators(sql: &str, version: u32) -> Vec<String> {
    explained(sql, version)
        .await
        .into_iter()
        .map(|(inputs, explain)| format!("{} <- {inputs:?}", explain.operator))
        .collect()
}

/// A view's query planned and optimized as CREATE MATERIALIZED VIEW does, with its session.
struct Planned {
    ctx: datafusion::prelude::SessionContext,
    catalog: Arc<Snapshot>,
    windows: Vec<crate::windows::WindowFunction>,
    optimized: LogicalPlan,
    _store: tempfile::TempDir,
}

async fn planned(sql: &str) -> Planned {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let catalog = catalog();
    let Some(Statement::Sql(stmt)) = parser::parse(sql).unwrap().pop() else {
        panic!("not a query: {sql}")
    };
    let windows = crate::windows::rewrite(&mut stmt.clone(), Rows::Dataflow.windowing()).unwrap();
    let engine = QueryEngine::new();
    let ctx = engine
        .session_for(&stmt, &catalog, &store, Rows::Dataflow, engine.internal())
        .await
        .unwrap();
    let plan = engine.plan(&ctx, &stmt).await.unwrap();
    let optimized = ctx.state().optimize(&plan).unwrap();
    Planned {
        ctx,
        catalog,
        windows,
        optimized,
        _store: dir,
    }
}

/// The operators of the dataflow `sql` gets from planner `version`, as EXPLAIN shows them.
async fn explained(sql: &str, version: u32) -> Vec<(Vec<Input>, Explain)> {
    let planned = planned(sql).await;
    let options = ViewOptions {
        windows: planned.windows,
        emit_on_window_close: false,
        plan_version: version,
    };
    let state = planned.ctx.state();
    let flow = plan_dataflow(&state, &planned.catalog, &planned.optimized, &options).unwrap();
    flow.explain()
}

fn aggregates(operators: &[String]) -> usize {
    operators
        .iter()
        .filter(|o| o.starts_with("Aggregate"))
        .count()
}

#[tokio::test]
async fn a_repeated_subplan_is_planned_once() {
    let shared = operators(HOT_AUCTIONS, PLAN_VERSION).await;
    // The counts once, and their maximum.
    assert_eq!(aggregates(&shared), 2, "{shared:#?}");
    let counts = shared
        .iter()
        .position(|o| o.starts_with("Aggregate"))
        .unwrap();
    let readers = shared
        .iter()
        .filter(|o| o.ends_with(&format!("[Node({counts})]")))
        .count();
    assert_eq!(
        readers, 2,
        "the view's counts and their maximum read one node: {shared:#?}"
    );
}

#[tokio::test]
async fn a_view_planned_before_sharing_keeps_its_operators() {
    // Operator positions key their state: a view created by planner version 0 is planned
    // as it was, each repetition on its own.
    let separate = operators(HOT_AUCTIONS, 0).await;
    assert_eq!(aggregates(&separate), 3, "{separate:#?}");
    let shared = operators(HOT_AUCTIONS, PLAN_VERSION).await;
    assert!(separate.len() > shared.len(), "{separate:#?} {shared:#?}");
}

/// What bounds the state of the join in `sql`'s dataflow.
async fn join_state(sql: &str) -> StateBound {
    let flow = explained(sql, PLAN_VERSION).await;
    let (_, join) = flow
        .iter()
        .find(|(_, e)| e.operator.contains(" join on "))
        .unwrap_or_else(|| panic!("no join: {flow:#?}"));
    join.state.clone()
}

#[tokio::test]
async fn a_join_of_counts_on_their_window_frees_closed_windows() {
    // Both inputs retract (counts grow), and both change only within their window's time.
    assert_eq!(
        join_state(HOT_AUCTIONS).await,
        StateBound::Bounded("the rows of both inputs until the watermarks pass them".into())
    );
    // Counts per window joined with counts of all time, on the auction: nothing frees a
    // window's rows.
    let by_auction = "\
        SELECT c.auction, c.n, t.total FROM (\
            SELECT auction, count(*) AS n, window_start \
            FROM HOP(bids, ts, INTERVAL '2 seconds', INTERVAL '10 seconds') \
            GROUP BY auction, window_start) AS c \
        JOIN (SELECT auction, count(*) AS total FROM bids GROUP BY auction) AS t \
        ON c.auction = t.auction";
    assert!(matches!(join_state(by_auction).await, StateBound::Grows(_)));
    // The latest bid of an auction is an aggregate, not a group, and follows no event time:
    // when a new bid comes, the auction's row with the old latest time is retracted,
    // however far behind the watermark that time is.
    let on_latest = "\
        SELECT a.auction FROM (SELECT auction, max(ts) AS latest FROM bids GROUP BY auction) a \
        JOIN (SELECT price, max(ts) AS latest FROM bids GROUP BY price) b \
        ON a.latest = b.latest";
    assert!(matches!(join_state(on_latest).await, StateBound::Grows(_)));
}

#[tokio::test]
async fn a_session_holds_the_columns_read_and_counts_as_one_row_per_session() {
    let per_bidder = "SELECT auction, count(*) AS n, window_start, window_end \
        FROM SESSION(bids, ts, INTERVAL '10 seconds') GROUP BY auction, window_start, window_end";
    let planned = operators(per_bidder, PLAN_VERSION).await;
    let session = planned
        .iter()
        .position(|o| o.starts_with("SessionWindow"))
        .unwrap_or_else(|| panic!("no session window: {planned:#?}"));
    // It reads the auction and the time (not the price), and yields a row per session.
    assert!(
        planned[session].contains("partitioned by [0], time column 1, one row per session"),
        "{planned:#?}"
    );
    assert!(
        planned[session - 1].starts_with("Project auction@0 AS auction, ts@2 AS ts <- [Source {"),
        "{planned:#?}"
    );
    // A query that reads a column of the rows gets them all, the columns it reads only.
    let prices = "SELECT auction, sum(price) AS total, window_start \
        FROM SESSION(bids, ts, INTERVAL '10 seconds') GROUP BY auction, window_start";
    let planned = operators(prices, PLAN_VERSION).await;
    assert!(
        planned
            .iter()
            .any(|o| o.starts_with("SessionWindow") && !o.contains("one row per session")),
        "{planned:#?}"
    );
    // A view planned by version 1 keeps its operators: their positions key its state.
    let before = operators(per_bidder, 1).await;
    assert!(
        before
            .iter()
            .any(|o| o.starts_with("SessionWindow") && o.contains("time column 2 <- [Source {")),
        "{before:#?}"
    );
}

#[tokio::test]
async fn a_row_number_ranking_keys_the_rows() {
    let ranked = |outer: &str, number: &str, cut: &str| {
        format!(
            "SELECT {outer} FROM (SELECT auction, price, ts, {number}() OVER \
             (PARTITION BY auction ORDER BY ts DESC) AS rn FROM bids) AS r {cut}"
        )
    };
    let cases = [
        // Deduplication (Nexmark q18): one row per partition.
        (
            ranked("auction, price, ts", "ROW_NUMBER", "WHERE rn <= 1"),
            Some(vec![0]),
        ),
        (
            ranked("ts, auction", "ROW_NUMBER", "WHERE rn = 1"),
            Some(vec![1]),
        ),
        // The top ten with their numbers (q19): the partition and the number.
        (
            ranked("price, rn, auction", "ROW_NUMBER", "WHERE rn <= 10"),
            Some(vec![1, 2]),
        ),
        (ranked("auction, rn", "ROW_NUMBER", ""), Some(vec![0, 1])),
        // Without the number, or the partition, nothing is unique.
        (
            ranked("auction, price", "ROW_NUMBER", "WHERE rn <= 10"),
            None,
        ),
        (ranked("price, rn", "ROW_NUMBER", "WHERE rn <= 10"), None),
        // Ties share a RANK.
        (ranked("auction, price, rn", "RANK", "WHERE rn <= 1"), None),
    ];
    for (sql, key) in cases {
        let planned = planned(&sql).await;
        assert_eq!(super::ranking_key(&planned.optimized), key, "{sql}");
    }
}
