//! The ranking operator over changes: cuts, ties, append-only input, and its stored state.

use super::*;
use crate::testing::{ApplyNow, delta, schema, sorted};

const SCORES: &[&str] = &["game:Utf8", "player:Utf8", "points:Int64"];

fn top(numbering: Option<Numbering>, limit: Option<u64>, append_only: bool) -> TopN {
    let mut columns = SCORES.to_vec();
    if numbering.is_some() {
        columns.push("n:Int64");
    }
    let mut schema = schema(&columns);
    if numbering.is_some() {
        // Window functions number with UInt64.
        let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = arrow::datatypes::Field::new("n", arrow::datatypes::DataType::UInt64, true);
        schema = Arc::new(arrow::datatypes::Schema::new(fields));
    }
    TopN::new(
        vec![0],
        vec![SortColumn {
            column: 2,
            descending: true,
            nulls_first: false,
        }],
        numbering,
        limit,
        append_only,
        schema,
    )
    .unwrap()
}

fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    let mut rows: Vec<(i64, String)> = rows.iter().map(|(w, r)| (*w, r.to_string())).collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    rows
}

#[test]
fn the_next_row_moves_up_when_a_top_row_goes() {
    let mut t = top(Some(Numbering::RowNumber), Some(2), false);
    let out = t
        .apply_now(&[delta(
            SCORES,
            &[(1, "g|a|10"), (1, "g|b|30"), (1, "g|c|20"), (1, "h|d|5")],
        )])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "g|b|30|1"), (1, "g|c|20|2"), (1, "h|d|5|1")])
    );
    let out = t.apply_now(&[delta(SCORES, &[(-1, "g|b|30")])]).unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "g|b|30|1"),
            (-1, "g|c|20|2"),
            (1, "g|c|20|1"),
            (1, "g|a|10|2")
        ])
    );
    // A change below the cut changes nothing.
    let out = t.apply_now(&[delta(SCORES, &[(1, "g|e|1")])]).unwrap();
    assert!(out.is_empty());
    assert_eq!(t.state_rows(), 4);
}

#[test]
fn ranks_share_numbers_on_ties() {
    let rows = [(1, "g|a|30"), (1, "g|b|30"), (1, "g|c|20"), (1, "g|d|10")];
    let mut rank = top(Some(Numbering::Rank), Some(2), false);
    let out = rank.apply_now(&[delta(SCORES, &rows)]).unwrap();
    assert_eq!(sorted(&out), s(&[(1, "g|a|30|1"), (1, "g|b|30|1")]));
    let mut dense = top(Some(Numbering::DenseRank), Some(2), false);
    let out = dense.apply_now(&[delta(SCORES, &rows)]).unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "g|a|30|1"), (1, "g|b|30|1"), (1, "g|c|20|2")])
    );
}

#[test]
fn append_only_input_keeps_only_the_top() {
    let mut t = top(None, Some(2), true);
    let out = t
        .apply_now(&[delta(
            SCORES,
            &[(1, "g|a|10"), (1, "g|b|30"), (2, "g|c|20"), (1, "g|d|5")],
        )])
        .unwrap();
    // A repeated row takes as many places as it has copies.
    assert_eq!(sorted(&out), s(&[(1, "g|b|30"), (1, "g|c|20")]));
    assert_eq!(t.state_rows(), 2);
    let out = t.apply_now(&[delta(SCORES, &[(1, "g|e|25")])]).unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "g|c|20"), (1, "g|e|25")]));
    assert_eq!(t.state_rows(), 2);
    // Below the last of the top: nothing changes, nothing is kept. A tie with the last
    // is broken by the row's encoding ("f" after "e"), a new top row cuts the last.
    let out = t
        .apply_now(&[delta(SCORES, &[(1, "g|f|25"), (3, "g|h|1"), (1, "k|a|1")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "k|a|1")]));
    assert_eq!(t.state_rows(), 3);
    let out = t
        .apply_now(&[delta(SCORES, &[(1, "g|h|1"), (1, "g|z|99")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "g|e|25"), (1, "g|z|99")]));
    assert_eq!(t.state_rows(), 3);
}

/// A dataflow of one ranking over relation 1, with a store to commit its state to.
fn flow(op: TopN) -> crate::Dataflow {
    let mut flow = crate::Dataflow::default();
    flow.push(
        Box::new(op),
        vec![crate::Input::Source {
            relation: 1,
            schema: schema(SCORES),
        }],
    );
    flow
}

fn run(flow: &mut crate::Dataflow, rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    let changes = std::collections::HashMap::from([(1, delta(SCORES, rows))]);
    sorted(&flow.apply(&changes, &EpochContext::default()).unwrap())
}

/// Checkpoints into the store; returns the kinds of writes (see `write_kinds`).
fn commit(flow: &mut crate::Dataflow, store: &eddy_storage::Store) -> Vec<&'static str> {
    let mut batch = eddy_storage::WriteBatch::default();
    flow.checkpoint(7, &mut batch).unwrap();
    let kinds = crate::testing::write_kinds(&batch);
    store.commit(batch, false).unwrap();
    kinds
}

fn restored(op: TopN, store: &eddy_storage::Store) -> crate::Dataflow {
    let mut flow = flow(op);
    flow.restore(7, store).unwrap();
    flow
}

#[test]
fn a_bounded_ranking_stores_a_key_per_partition() {
    let store = eddy_storage::Store::temporary().unwrap();
    let mut f = flow(top(Some(Numbering::RowNumber), Some(2), true));
    run(
        &mut f,
        &[(1, "g|a|10"), (1, "g|b|30"), (1, "g|c|20"), (1, "h|d|5")],
    );
    // Two partitions, two keys, however many rows each holds.
    assert_eq!(commit(&mut f, &store), ["put", "put"]);
    assert_eq!(f.state_rows(), 3);
    // A row below the cut changes nothing and writes nothing; a new top row rewrites its
    // partition alone.
    assert!(run(&mut f, &[(1, "g|e|1")]).is_empty());
    assert!(commit(&mut f, &store).is_empty());
    run(&mut f, &[(1, "g|f|25")]);
    assert_eq!(commit(&mut f, &store), ["put"]);
    // Restored, it holds the same rows and ranks the same way.
    let mut again = restored(top(Some(Numbering::RowNumber), Some(2), true), &store);
    assert_eq!(again.state_rows(), 3);
    let changes = [(1, "g|z|26"), (1, "h|y|6")];
    let expected = s(&[
        (-1, "g|f|25|2"),
        (1, "g|z|26|2"),
        (-1, "h|d|5|1"),
        (1, "h|y|6|1"),
        (1, "h|d|5|2"),
    ]);
    assert_eq!(run(&mut again, &changes), expected);
    assert_eq!(run(&mut f, &changes), expected);
}

#[test]
fn an_unbounded_ranking_stores_a_key_per_row() {
    let store = eddy_storage::Store::temporary().unwrap();
    let mut f = flow(top(Some(Numbering::RowNumber), Some(1), false));
    run(&mut f, &[(1, "g|a|10"), (2, "g|b|30"), (1, "h|d|5")]);
    // Every row is kept (any could rise), each under its own key.
    assert_eq!(commit(&mut f, &store), ["put", "put", "put"]);
    assert_eq!(
        run(&mut f, &[(-2, "g|b|30")]),
        s(&[(-1, "g|b|30|1"), (1, "g|a|10|1")])
    );
    assert_eq!(commit(&mut f, &store), ["delete"]);
    let mut again = restored(top(Some(Numbering::RowNumber), Some(1), false), &store);
    assert_eq!(again.state_rows(), 2);
    assert_eq!(run(&mut again, &[(-1, "g|a|10")]), s(&[(-1, "g|a|10|1")]));
}

#[test]
fn state_in_the_other_layout_is_rewritten() {
    // What one layout stored, the other reads back and rewrites in its own, both ways.
    for (from, to) in [(false, true), (true, false)] {
        let store = eddy_storage::Store::temporary().unwrap();
        let mut f = flow(top(None, Some(2), from));
        run(&mut f, &[(1, "g|a|10"), (1, "g|b|30"), (1, "h|d|5")]);
        commit(&mut f, &store);
        let mut again = restored(top(None, Some(2), to), &store);
        assert_eq!(again.state_rows(), 3);
        let expected: &[&str] = match to {
            // The rows' keys go, the partitions' come.
            true => &["delete", "delete", "delete", "put", "put"],
            false => &["delete", "delete", "put", "put", "put"],
        };
        assert_eq!(commit(&mut again, &store), expected);
        // Read back once more, nothing is stale.
        let mut third = restored(top(None, Some(2), to), &store);
        assert!(commit(&mut third, &store).is_empty());
        assert_eq!(
            run(&mut third, &[(1, "g|c|20")]),
            s(&[(-1, "g|a|10"), (1, "g|c|20")])
        );
    }
}
