//! The join operator's unit tests.

use super::*;
use crate::testing::{ApplyNow, checkpoint_writes, delta, rows, schema, sorted, write_kinds};
use datafusion::physical_expr::expressions::Column;

fn join() -> Join {
    let out = schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]);
    Join::new(
        vec![Arc::new(Column::new("uid", 0))],
        vec![Arc::new(Column::new("id", 0))],
        None,
        false,
        2,
        out,
    )
}

const CLICKS: &[&str] = &["uid:Int64", "url:Utf8"];
const USERS: &[&str] = &["id:Int64", "plan:Utf8"];

/// Expected rows, in the order [`sorted`] gives.
fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    in_order(rows.iter().map(|(w, r)| (*w, r.to_string())).collect())
}

/// Rows by their text, then weight: the order [`s`] gives.
fn in_order(mut rows: Vec<(i64, String)>) -> Vec<(i64, String)> {
    rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    rows
}

#[test]
fn both_sides_changing_in_one_epoch_join_once() {
    let mut j = join();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "1|/a"), (1, "2|/b")]),
            delta(USERS, &[(1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|/a|1|free")]));
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "1|/c")]), delta(USERS, &[])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|/c|1|free")]));
}

#[test]
fn an_update_on_one_side_retracts_and_reinserts() {
    let mut j = join();
    j.apply_now(&[
        delta(CLICKS, &[(1, "1|/a"), (1, "1|/b")]),
        delta(USERS, &[(1, "1|free")]),
    ])
    .unwrap();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[]),
            delta(USERS, &[(-1, "1|free"), (1, "1|pro")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "1|/a|1|free"),
            (1, "1|/a|1|pro"),
            (-1, "1|/b|1|free"),
            (1, "1|/b|1|pro")
        ])
    );
}

fn join_of(kind: JoinKind) -> Join {
    let out = match kind {
        JoinKind::LeftSemi | JoinKind::LeftAnti => schema(CLICKS),
        JoinKind::RightSemi | JoinKind::RightAnti => schema(USERS),
        _ => schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]),
    };
    Join::with_kind(
        kind,
        vec![Arc::new(Column::new("uid", 0))],
        vec![Arc::new(Column::new("id", 0))],
        None,
        false,
        (2, 2),
        schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]),
        out,
    )
}

#[test]
fn a_left_join_pads_until_a_match_comes_and_after_it_goes() {
    let mut j = join_of(JoinKind::Left);
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "1|/a"), (1, "2|/b"), (1, "NULL|/c")]),
            delta(USERS, &[(1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (1, "1|/a|1|free"),
            (1, "2|/b|NULL|NULL"),
            (1, "NULL|/c|NULL|NULL")
        ])
    );
    // User 2 arrives: its click is matched now; a new click of user 2 joins at once.
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "2|/d")]), delta(USERS, &[(1, "2|pro")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(-1, "2|/b|NULL|NULL"), (1, "2|/b|2|pro"), (1, "2|/d|2|pro")])
    );
    // User 1 goes, and a click of user 1 goes in the same epoch.
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(-1, "1|/a")]),
            delta(USERS, &[(-1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "1|/a|1|free")]));
    // An update of user 2 keeps its clicks matched: no padding flickers.
    let out = j
        .apply_now(&[
            delta(CLICKS, &[]),
            delta(USERS, &[(-1, "2|pro"), (1, "2|team")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "2|/b|2|pro"),
            (1, "2|/b|2|team"),
            (-1, "2|/d|2|pro"),
            (1, "2|/d|2|team")
        ])
    );
}

#[test]
fn a_full_join_pads_both_sides() {
    let mut j = join_of(JoinKind::Full);
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "1|/a")]), delta(USERS, &[(1, "2|pro")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "1|/a|NULL|NULL"), (1, "NULL|NULL|2|pro")])
    );
    let out = j
        .apply_now(&[delta(CLICKS, &[(2, "2|/b")]), delta(USERS, &[])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(-1, "NULL|NULL|2|pro"), (2, "2|/b|2|pro")])
    );
}

#[test]
fn semi_and_anti_joins_split_a_side_by_whether_it_has_a_match() {
    let mut semi = join_of(JoinKind::LeftSemi);
    let mut anti = join_of(JoinKind::LeftAnti);
    let clicks = [(1, "1|/a"), (1, "1|/a"), (1, "2|/b")];
    let users = [(1, "1|free"), (1, "1|pro")];
    for (j, expected) in [
        (&mut semi, s(&[(2, "1|/a")])),
        (&mut anti, s(&[(1, "2|/b")])),
    ] {
        let out = j
            .apply_now(&[delta(CLICKS, &clicks), delta(USERS, &users)])
            .unwrap();
        assert_eq!(sorted(&out), expected);
    }
    // One of user 1's two rows goes: still a match. Then the other: no match.
    for step in ["1|free", "1|pro"] {
        let gone = [(-1, step)];
        let a = semi
            .apply_now(&[delta(CLICKS, &[]), delta(USERS, &gone)])
            .unwrap();
        let b = anti
            .apply_now(&[delta(CLICKS, &[]), delta(USERS, &gone)])
            .unwrap();
        if step == "1|free" {
            assert!(sorted(&a).is_empty() && sorted(&b).is_empty());
        } else {
            assert_eq!(sorted(&a), s(&[(-2, "1|/a")]));
            assert_eq!(sorted(&b), s(&[(2, "1|/a")]));
        }
    }
    let mut right = join_of(JoinKind::RightAnti);
    let out = right
        .apply_now(&[
            delta(CLICKS, &clicks),
            delta(USERS, &[(1, "3|x"), (1, "1|y")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "3|x")]));
}

#[test]
fn null_keys_never_match() {
    let mut j = join();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "NULL|/a")]),
            delta(USERS, &[(1, "NULL|x")]),
        ])
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(j.state_rows(), 0);
}

#[test]
fn a_checkpoint_puts_rows_new_to_a_side_as_new_and_skips_rows_that_came_and_went() {
    let mut flow = crate::Dataflow::default();
    flow.push(
        Box::new(join()),
        vec![
            crate::Input::Source {
                relation: 1,
                schema: schema(CLICKS),
            },
            crate::Input::Source {
                relation: 2,
                schema: schema(USERS),
            },
        ],
    );
    let mut epoch = |clicks: &[(i64, &str)], users: &[(i64, &str)]| {
        let changes =
            std::collections::HashMap::from([(1, delta(CLICKS, clicks)), (2, delta(USERS, users))]);
        flow.apply(&changes, &EpochContext::default()).unwrap();
        checkpoint_writes(&mut flow)
    };
    assert_eq!(epoch(&[(1, "1|/a")], &[(1, "1|free")]), ["new", "new"]);
    // A second copy of a held row; a row that comes and goes; a user's plan changes.
    assert_eq!(
        epoch(
            &[(1, "1|/a"), (1, "2|/b"), (-1, "2|/b")],
            &[(-1, "1|free"), (1, "1|pro")]
        ),
        ["delete", "new", "put"]
    );
    assert_eq!(epoch(&[(-1, "1|/a"), (-1, "1|/a")], &[]), ["delete"]);
}

/// Counts per auction and window beside the largest count per window, as a join sees them.
const COUNT_AND_MAX: &[&str] = &[
    "auction:Int64",
    "n:Int64",
    "start:Ts",
    "max:Int64",
    "start2:Ts",
];

/// The window start columns of counts (stream 0 of `streams`) and maxima (stream 1): both
/// inputs retract rows, and both follow the bids' event time with a floor of minus the
/// window's size (10 s).
fn window_bound(streams: (u64, u64), whole_keys: bool) -> TimeBound {
    TimeBound {
        left_column: 2,
        left_stream: streams.0,
        left_floor: -10_000_000,
        right_column: 1,
        right_stream: streams.1,
        right_floor: -10_000_000,
        lower: Some(0),
        upper: Some(0),
        left_retracts: true,
        right_retracts: true,
        whole_keys,
    }
}

/// Counts per auction and window joined with the largest count per window, on the window
/// (Nexmark q5).
fn counts_join_maxima(streams: (u64, u64)) -> Join {
    Join::new(
        vec![Arc::new(Column::new("start", 2))],
        vec![Arc::new(Column::new("start", 1))],
        None,
        false,
        3,
        schema(COUNT_AND_MAX),
    )
    .with_time_bound(window_bound(streams, false))
}

const COUNTS: &[&str] = &["auction:Int64", "n:Int64", "start:Ts"];
const MAXIMA: &[&str] = &["max:Int64", "start:Ts"];

fn at(watermarks: &[(u64, i64)]) -> EpochContext {
    EpochContext {
        watermarks: watermarks
            .iter()
            .map(|&(s, t)| (s, t * 1_000_000))
            .collect(),
        replaying: false,
    }
}

#[test]
fn inputs_that_retract_are_freed_once_their_own_watermark_passes_too() {
    // Counts follow stream 1, maxima stream 2; stream 2's watermark runs ahead.
    let mut j = counts_join_maxima((1, 2));
    j.apply(
        &[
            delta(COUNTS, &[(1, "7|1|100"), (1, "8|1|110")]),
            delta(MAXIMA, &[(1, "1|100"), (1, "1|110")]),
        ],
        &at(&[(1, 95), (2, 95)]),
    )
    .unwrap();
    assert_eq!(j.state_rows(), 4);
    // Maxima's watermark alone passes window 100's end: no maximum to come can meet the
    // count of window 100, but the counts may still retract it, so it stays, and the
    // maximum stays while counts to come can meet it.
    j.apply(
        &[delta(COUNTS, &[]), delta(MAXIMA, &[])],
        &at(&[(1, 95), (2, 125)]),
    )
    .unwrap();
    assert_eq!(j.state_rows(), 4);
    // The count of window 100 is updated: the join retracts the old pair.
    let out = j
        .apply(
            &[
                delta(COUNTS, &[(-1, "7|1|100"), (1, "7|2|100")]),
                delta(MAXIMA, &[]),
            ],
            &at(&[(1, 105), (2, 125)]),
        )
        .unwrap();
    // (Output timestamps show as microseconds.)
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "7|1|100000000|1|100000000"),
            (1, "7|2|100000000|1|100000000")
        ])
    );
    // Both watermarks are past window 100's end (start + 10 s): its rows go, window 110's
    // stay.
    j.apply(
        &[delta(COUNTS, &[]), delta(MAXIMA, &[])],
        &at(&[(1, 111), (2, 125)]),
    )
    .unwrap();
    assert_eq!(j.state_rows(), 2);
    let writes = {
        let mut flow = crate::Dataflow::default();
        flow.push(
            Box::new(std::mem::replace(&mut j, counts_join_maxima((1, 2)))),
            vec![],
        );
        checkpoint_writes(&mut flow)
    };
    // Held at no checkpoint, freed: nothing to write but the rows still held.
    assert_eq!(writes, ["new", "new"]);
}

/// The counts that reach their window's maximum (Nexmark q5 as a semi join), or with
/// `LeftAnti` those that do not.
fn counts_at_their_maximum(kind: JoinKind) -> Join {
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::BinaryExpr;
    let at_most: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        Arc::new(Column::new("n", 1)),
        Op::GtEq,
        Arc::new(Column::new("max", 3)),
    ));
    Join::with_kind(
        kind,
        vec![Arc::new(Column::new("start", 2))],
        vec![Arc::new(Column::new("start", 1))],
        Some(at_most),
        false,
        (3, 2),
        schema(COUNT_AND_MAX),
        schema(COUNTS),
    )
}

#[test]
fn rows_whose_match_did_not_change_are_not_output_when_the_other_side_changes_under_them() {
    for kind in [JoinKind::LeftSemi, JoinKind::LeftAnti] {
        let mut j = counts_at_their_maximum(kind);
        j.apply_now(&[
            delta(COUNTS, &[(1, "7|1|100"), (1, "8|2|100"), (1, "9|1|100")]),
            delta(MAXIMA, &[(1, "2|100")]),
        ])
        .unwrap();
        // Auction 8's count and the window's maximum go up together: 7 and 9 stay below it,
        // 8 stays at it. Only 8's own change comes out, as it is (no rows that cancel).
        let out = j
            .apply_now(&[
                delta(COUNTS, &[(-1, "8|2|100"), (1, "8|3|100")]),
                delta(MAXIMA, &[(-1, "2|100"), (1, "3|100")]),
            ])
            .unwrap();
        let expected = match kind {
            JoinKind::LeftSemi => s(&[(-1, "8|2|100000000"), (1, "8|3|100000000")]),
            _ => vec![],
        };
        assert_eq!(in_order(rows(&out)), expected, "{kind:?}");
        // The maximum goes up alone: every count falls below it; only 8 flips.
        let out = j
            .apply_now(&[
                delta(COUNTS, &[]),
                delta(MAXIMA, &[(-1, "3|100"), (1, "4|100")]),
            ])
            .unwrap();
        let weight = if kind == JoinKind::LeftSemi { -1 } else { 1 };
        assert_eq!(rows(&out), s(&[(weight, "8|3|100000000")]), "{kind:?}");
    }
}

#[test]
fn a_semi_join_on_equal_windows_frees_a_window_whole_once_neither_side_can_change_it() {
    let mut j =
        counts_at_their_maximum(JoinKind::LeftSemi).with_time_bound(window_bound((1, 2), true));
    let out = j
        .apply(
            &[
                delta(COUNTS, &[(1, "7|1|100"), (1, "8|2|100")]),
                delta(MAXIMA, &[(1, "2|100")]),
            ],
            &at(&[(1, 95), (2, 95)]),
        )
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "8|2|100000000")]));
    // Auction 7 overtakes 8; the counts' watermark lags, so window 100 stays whole.
    let out = j
        .apply(
            &[
                delta(COUNTS, &[(-1, "7|1|100"), (1, "7|3|100")]),
                delta(MAXIMA, &[(-1, "2|100"), (1, "3|100")]),
            ],
            &at(&[(1, 105), (2, 125)]),
        )
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "7|3|100000000"), (-1, "8|2|100000000")])
    );
    assert_eq!(j.state_rows(), 3);
    // Both watermarks past window 100's end: all of it goes; window 110 comes.
    let out = j
        .apply(
            &[
                delta(COUNTS, &[(1, "9|1|110")]),
                delta(MAXIMA, &[(1, "1|110")]),
            ],
            &at(&[(1, 111), (2, 111)]),
        )
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "9|1|110000000")]));
    assert_eq!(j.state_rows(), 2);
}

const CLICKS_AT: &[&str] = &["uid:Int64", "t:Ts"];
const VIEWS_AT: &[&str] = &["uid:Int64", "t:Ts"];

/// Clicks (stream 1) joined with views (stream 2) of the same user up to 10 s before:
/// `c.t BETWEEN v.t AND v.t + INTERVAL '10 seconds'`, both inputs append-only. `bounded`:
/// with its time bound; without, it keeps every row.
fn clicks_after_views(bounded: bool) -> crate::Dataflow {
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
    let column = |name: &str, i| -> Arc<dyn PhysicalExpr> { Arc::new(Column::new(name, i)) };
    let op = |l, op, r| -> Arc<dyn PhysicalExpr> { Arc::new(BinaryExpr::new(l, op, r)) };
    let ten_seconds = Arc::new(Literal::new(
        datafusion::common::ScalarValue::DurationMicrosecond(Some(10_000_000)),
    ));
    let within = op(
        op(column("t", 1), Op::GtEq, column("vt", 3)),
        Op::And,
        op(
            column("t", 1),
            Op::LtEq,
            op(column("vt", 3), Op::Plus, ten_seconds),
        ),
    );
    let j = Join::new(
        vec![Arc::new(Column::new("uid", 0))],
        vec![Arc::new(Column::new("uid", 0))],
        Some(within),
        false,
        2,
        schema(&["uid:Int64", "t:Ts", "vuid:Int64", "vt:Ts"]),
    );
    let j = match bounded {
        true => j.with_time_bound(TimeBound {
            left_column: 1,
            left_stream: 1,
            left_floor: 0,
            right_column: 1,
            right_stream: 2,
            right_floor: 0,
            lower: Some(0),
            upper: Some(10_000_000),
            left_retracts: false,
            right_retracts: false,
            whole_keys: false,
        }),
        false => j,
    };
    let mut flow = crate::Dataflow::default();
    let source = |relation, columns| crate::Input::Source {
        relation,
        schema: schema(columns),
    };
    flow.push(Box::new(j), vec![source(1, CLICKS_AT), source(2, VIEWS_AT)]);
    flow
}

/// One epoch of clicks and views at the given watermarks (seconds); returns the output.
fn clicks_and_views(
    flow: &mut crate::Dataflow,
    clicks: &[(i64, &str)],
    views: &[(i64, &str)],
    watermarks: &[(u64, i64)],
) -> Vec<(i64, String)> {
    let changes = std::collections::HashMap::from([
        (1, delta(CLICKS_AT, clicks)),
        (2, delta(VIEWS_AT, views)),
    ]);
    sorted(&flow.apply(&changes, &at(watermarks)).unwrap())
}

/// Checkpoints a dataflow into a store; returns what it wrote, as `checkpoint_writes` does.
fn commit(flow: &mut crate::Dataflow, store: &eddy_storage::Store) -> Vec<&'static str> {
    let mut batch = eddy_storage::WriteBatch::default();
    flow.checkpoint(10, &mut batch).unwrap();
    let kinds = write_kinds(&batch);
    store.commit(batch, false).unwrap();
    kinds
}

#[test]
fn append_only_inputs_that_expire_are_stored_a_segment_per_checkpoint() {
    let store = eddy_storage::Store::temporary().unwrap();
    let mut flow = clicks_after_views(true);
    clicks_and_views(
        &mut flow,
        &[(1, "1|100"), (1, "2|101"), (1, "3|102")],
        &[(1, "1|95"), (1, "2|96")],
        &[(1, 90), (2, 90)],
    );
    // One segment a side, not a key a row; and each side's horizon.
    assert_eq!(commit(&mut flow, &store), ["new", "new", "put", "put"]);
    // The views' watermark passes the first click: it is freed, and so is the second
    // epoch's click at 99, which never reaches the store. The horizon is stored; the first
    // clicks' segment stays for the clicks it still holds.
    clicks_and_views(
        &mut flow,
        &[(1, "4|99"), (1, "5|103")],
        &[],
        &[(1, 90), (2, 101)],
    );
    assert_eq!(flow.state_rows(), 5);
    assert_eq!(commit(&mut flow, &store), ["new", "put"]);

    // What a restart reads back is what was held, freed rows aside.
    let mut again = clicks_after_views(true);
    again.restore(10, &store).unwrap();
    assert_eq!(again.state_rows(), 5);
    let views = [(1, "2|100"), (1, "3|101"), (1, "5|102"), (1, "4|98")];
    let expected = clicks_and_views(&mut flow, &[], &views, &[(1, 90), (2, 101)]);
    assert_eq!(
        clicks_and_views(&mut again, &[], &views, &[(1, 90), (2, 101)]),
        expected
    );
    assert_eq!(expected.len(), 3);
    // Once the watermarks free every click of the first segment, it is deleted, and so is
    // the views' segment; the views taken since the restart are freed before they are
    // ever written. The second clicks' segment stays.
    clicks_and_views(&mut again, &[], &[], &[(1, 120), (2, 103)]);
    assert_eq!(again.state_rows(), 1);
    assert_eq!(
        commit(&mut again, &store),
        ["delete", "delete", "put", "put"]
    );
    let mut third = clicks_after_views(true);
    third.restore(10, &store).unwrap();
    assert_eq!(third.state_rows(), 1);
    assert_eq!(
        clicks_and_views(&mut third, &[], &[(1, "5|100")], &[(1, 120), (2, 103)]),
        s(&[(1, "5|103000000|5|100000000")])
    );
}

#[test]
fn a_side_reads_state_stored_in_the_other_layout_and_rewrites_it() {
    let store = eddy_storage::Store::temporary().unwrap();
    // Stored a key a row (a plan without the time bound)...
    let mut flow = clicks_after_views(false);
    clicks_and_views(
        &mut flow,
        &[(1, "1|100"), (1, "2|101")],
        &[(1, "1|95")],
        &[],
    );
    assert_eq!(commit(&mut flow, &store), ["new", "new", "new"]);
    // ... read by segments: the next checkpoint moves every row into one.
    let mut bounded = clicks_after_views(true);
    bounded.restore(10, &store).unwrap();
    assert_eq!(bounded.state_rows(), 3);
    assert_eq!(
        commit(&mut bounded, &store),
        ["delete", "delete", "delete", "new", "new"]
    );
    // And back: every row held gets a key of its own; the segments and horizons go.
    clicks_and_views(&mut bounded, &[], &[], &[(1, 90), (2, 101)]);
    assert_eq!(bounded.state_rows(), 2);
    commit(&mut bounded, &store);
    let mut plain = clicks_after_views(false);
    plain.restore(10, &store).unwrap();
    assert_eq!(plain.state_rows(), 2);
    assert_eq!(
        commit(&mut plain, &store),
        ["delete", "delete", "delete", "delete", "new", "new"]
    );
    let mut last = clicks_after_views(false);
    last.restore(10, &store).unwrap();
    assert_eq!(
        clicks_and_views(&mut last, &[], &[(1, "2|91")], &[]),
        s(&[(1, "2|101000000|2|91000000")])
    );
}

#[test]
fn a_row_without_a_time_is_never_freed_and_is_stored_on_its_own() {
    let store = eddy_storage::Store::temporary().unwrap();
    let mut flow = clicks_after_views(true);
    clicks_and_views(
        &mut flow,
        &[(1, "6|NULL"), (1, "6|NULL"), (1, "7|100")],
        &[],
        &[(1, 90), (2, 90)],
    );
    // The timed click goes into a segment, the other gets a key (with its two copies); and
    // each side's horizon.
    assert_eq!(commit(&mut flow, &store), ["new", "put", "put", "put"]);
    clicks_and_views(&mut flow, &[], &[], &[(1, 200), (2, 200)]);
    assert_eq!(flow.state_rows(), 1);
    assert_eq!(commit(&mut flow, &store), ["delete", "put", "put"]);
    let mut again = clicks_after_views(true);
    again.restore(10, &store).unwrap();
    assert_eq!(again.state_rows(), 1);
    // Read in the other layout, only the horizons go: the row has a key of its own.
    let mut plain = clicks_after_views(false);
    plain.restore(10, &store).unwrap();
    let mut batch = eddy_storage::WriteBatch::default();
    plain.checkpoint(10, &mut batch).unwrap();
    assert_eq!(write_kinds(&batch), ["delete", "delete"]);
}
