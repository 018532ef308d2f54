//! The streaming planner over a catalog of one stream: the dataflow a query gets.

use std::sync::Arc;

use eddy_catalog::{Column, Relation, RelationKind, Snapshot, SqlType, Watermark};
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
    let options = ViewOptions {
        windows,
        emit_on_window_close: false,
        plan_version: version,
    };
    let flow = plan_dataflow(&ctx.state(), &catalog, &optimized, &options).unwrap();
    flow.explain()
        .into_iter()
        .map(|(inputs, explain)| format!("{} <- {inputs:?}", explain.operator))
        .collect()
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
