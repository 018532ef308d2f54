//! Unit tests of the incremental GROUP BY, from readable delta literals.
use super::*;
use crate::testing::{ApplyNow, delta, schema, sorted};
use datafusion::physical_expr::expressions::Column;

fn col(name: &str, i: usize) -> Option<Arc<dyn PhysicalExpr>> {
    Some(Arc::new(Column::new(name, i)))
}

fn spec(
    kind: AggKind,
    arg: Option<Arc<dyn PhysicalExpr>>,
    distinct: bool,
    out: DataType,
) -> AggSpec {
    AggSpec {
        kind,
        arg,
        distinct,
        filter: None,
        output_type: out,
        separator: String::new(),
        order: None,
    }
}

/// `SELECT k, count(*), sum(v), min(v), max(v), count(DISTINCT v), avg(v) GROUP BY k`
fn agg() -> Aggregate {
    let input = schema(&["k:Int64", "v:Int64"]);
    let out = schema(&[
        "k:Int64",
        "n:Int64",
        "s:Int64",
        "lo:Int64",
        "hi:Int64",
        "d:Int64",
        "a:Float64",
    ]);
    Aggregate::new(
        vec![col("k", 0).unwrap()],
        vec![
            spec(AggKind::Count, None, false, DataType::Int64),
            spec(AggKind::Sum, col("v", 1), false, DataType::Int64),
            spec(AggKind::Min, col("v", 1), false, DataType::Int64),
            spec(AggKind::Max, col("v", 1), false, DataType::Int64),
            spec(AggKind::Count, col("v", 1), true, DataType::Int64),
            spec(AggKind::Avg, col("v", 1), false, DataType::Float64),
        ],
        &input,
        out,
    )
    .unwrap()
}

fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    rows.iter().map(|(w, r)| (*w, r.to_string())).collect()
}

#[test]
fn inserts_then_deleting_the_max_reveals_the_next() {
    let mut a = agg();
    let out = a
        .apply_now(&[delta(
            &["k:Int64", "v:Int64"],
            &[(1, "1|5"), (1, "1|7"), (1, "2|3"), (1, "1|7")],
        )])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "1|3|19|5|7|2|6.333333333333333"), (1, "2|1|3|3|3|1|3")])
    );

    let out = a
        .apply_now(&[delta(&["k:Int64", "v:Int64"], &[(-1, "1|7"), (-1, "1|7")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "1|1|5|5|5|1|5"), (-1, "1|3|19|5|7|2|6.333333333333333")])
    );
}

/// `SELECT k, first_value(v ORDER BY t), last_value(v ORDER BY t) GROUP BY k`, the
/// second as first_value by the reversed order, as the planner makes it.
#[test]
fn first_and_last_by_an_order_follow_deletes() {
    let input = schema(&["k:Int64", "t:Int64", "v:Int64"]);
    let out = schema(&["k:Int64", "first:Int64", "last:Int64"]);
    let by_t = |descending: bool, nulls_first: bool| AggSpec {
        order: col("t", 1),
        ..spec(
            AggKind::FirstBy {
                descending,
                nulls_first,
            },
            col("v", 2),
            false,
            DataType::Int64,
        )
    };
    let mut a = Aggregate::new(
        vec![col("k", 0).unwrap()],
        vec![by_t(false, false), by_t(true, true)],
        &input,
        out,
    )
    .unwrap();
    let columns = ["k:Int64", "t:Int64", "v:Int64"];
    // A NULL order sorts last ascending, so it is the last row; a NULL value counts.
    let out = a
        .apply_now(&[delta(
            &columns,
            &[
                (1, "1|2|20"),
                (1, "1|1|10"),
                (1, "1|NULL|99"),
                (1, "2|5|NULL"),
            ],
        )])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|10|99"), (1, "2|NULL|NULL")]));
    let out = a
        .apply_now(&[delta(&columns, &[(-1, "1|1|10"), (-1, "1|NULL|99")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "1|10|99"), (1, "1|20|20")]));
}

#[test]
fn spreads_and_bools_follow_deletes() {
    let input = schema(&["k:Int64", "v:Float64"]);
    let out = schema(&["k:Int64", "var:Float64", "sd:Float64", "pos:Boolean"]);
    let positive: Arc<dyn PhysicalExpr> =
        Arc::new(datafusion::physical_expr::expressions::BinaryExpr::new(
            col("v", 1).unwrap(),
            datafusion::logical_expr::Operator::Gt,
            Arc::new(datafusion::physical_expr::expressions::Literal::new(
                ScalarValue::Float64(Some(0.0)),
            )),
        ));
    let mut a = Aggregate::new(
        vec![col("k", 0).unwrap()],
        vec![
            spec(
                AggKind::Variance { sample: true },
                col("v", 1),
                false,
                DataType::Float64,
            ),
            spec(
                AggKind::Stddev { sample: false },
                col("v", 1),
                false,
                DataType::Float64,
            ),
            spec(AggKind::BoolAnd, Some(positive), false, DataType::Boolean),
        ],
        &input,
        out,
    )
    .unwrap();
    let cols = ["k:Int64", "v:Float64"];
    let out = a
        .apply_now(&[delta(&cols, &[(1, "1|-1"), (1, "1|2"), (1, "1|5")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        vec![(1, "1|9|2.449489742783178|false".to_string())]
    );
    let out = a.apply_now(&[delta(&cols, &[(-1, "1|-1")])]).unwrap();
    assert_eq!(
        sorted(&out),
        vec![
            (1, "1|4.5|1.5|true".to_string()),
            (-1, "1|9|2.449489742783178|false".to_string())
        ]
    );
    // One value: no sample variance.
    let out = a.apply_now(&[delta(&cols, &[(-1, "1|2")])]).unwrap();
    assert!(sorted(&out).contains(&(1, "1|NULL|0|true".to_string())));
}

#[test]
fn deleting_the_last_row_removes_the_group() {
    let mut a = agg();
    a.apply_now(&[delta(&["k:Int64", "v:Int64"], &[(1, "1|5")])])
        .unwrap();
    let out = a
        .apply_now(&[delta(&["k:Int64", "v:Int64"], &[(-1, "1|5")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "1|1|5|5|5|1|5")]));
    assert_eq!(a.state_rows(), 0);
}

#[test]
fn global_aggregate_always_has_its_row() {
    let input = schema(&["v:Int64"]);
    let out = schema(&["n:Int64", "s:Int64"]);
    let mut a = Aggregate::new(
        vec![],
        vec![
            spec(AggKind::Count, None, false, DataType::Int64),
            spec(AggKind::Sum, col("v", 0), false, DataType::Int64),
        ],
        &input,
        out,
    )
    .unwrap();
    let first = a.apply_now(&[delta(&["v:Int64"], &[])]).unwrap();
    assert_eq!(sorted(&first), s(&[(1, "0|NULL")]));
    let next = a.apply_now(&[delta(&["v:Int64"], &[(1, "4")])]).unwrap();
    assert_eq!(sorted(&next), s(&[(-1, "0|NULL"), (1, "1|4")]));
    let back = a.apply_now(&[delta(&["v:Int64"], &[(-1, "4")])]).unwrap();
    assert_eq!(sorted(&back), s(&[(1, "0|NULL"), (-1, "1|4")]));
}

#[test]
fn state_survives_checkpoint_and_restore() {
    let store = eddy_storage::Store::temporary().unwrap();
    let mut flow = crate::Dataflow::default();
    let input = schema(&["k:Int64", "v:Int64"]);
    flow.push(
        Box::new(agg()),
        vec![crate::Input::Source {
            relation: 1,
            schema: input.clone(),
        }],
    );
    let changes = std::collections::HashMap::from([(
        1,
        delta(&["k:Int64", "v:Int64"], &[(1, "1|5"), (1, "1|9")]),
    )]);
    flow.apply(&changes, &EpochContext::default()).unwrap();
    let mut batch = eddy_storage::WriteBatch::default();
    flow.checkpoint(10, &mut batch).unwrap();
    store.commit(batch, false).unwrap();

    let mut again = crate::Dataflow::default();
    again.push(
        Box::new(agg()),
        vec![crate::Input::Source {
            relation: 1,
            schema: input,
        }],
    );
    again.restore(10, &store).unwrap();
    let changes =
        std::collections::HashMap::from([(1, delta(&["k:Int64", "v:Int64"], &[(-1, "1|9")]))]);
    let out = again.apply(&changes, &EpochContext::default()).unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "1|1|5|5|5|1|5"), (-1, "1|2|14|5|9|2|7")])
    );
}

#[test]
fn a_checkpoint_puts_new_groups_as_new_and_skips_groups_that_came_and_went() {
    let cols = ["k:Int64", "v:Int64"];
    let mut flow = crate::Dataflow::default();
    flow.push(
        Box::new(agg()),
        vec![crate::Input::Source {
            relation: 1,
            schema: schema(&cols),
        }],
    );
    let mut epoch = |applies: &[&[(i64, &str)]]| {
        for rows in applies {
            let changes = std::collections::HashMap::from([(1, delta(&cols, rows))]);
            flow.apply(&changes, &EpochContext::default()).unwrap();
        }
        crate::testing::checkpoint_writes(&mut flow)
    };
    assert_eq!(
        epoch(&[&[(1, "1|5"), (1, "1|9"), (1, "2|1")]]),
        ["new", "new"]
    );
    // Group 3 comes and goes in one change, group 4 over two applies: neither is written.
    assert_eq!(
        epoch(&[
            &[(1, "1|7"), (1, "3|1"), (-1, "3|1"), (1, "4|1")],
            &[(-1, "4|1")]
        ]),
        ["put"]
    );
    assert_eq!(epoch(&[&[(-1, "2|1")]]), ["delete"]);
    // Group 1 goes and comes back within the epoch: the store holds it, so it is no new key.
    assert_eq!(
        epoch(&[&[(-1, "1|5"), (-1, "1|9"), (-1, "1|7")], &[(1, "1|1")]]),
        ["put"]
    );
    assert_eq!(
        epoch(&[&[(-1, "1|1")], &[(1, "1|2")], &[(-1, "1|2")]]),
        ["delete"]
    );
}

#[test]
fn append_only_input_keeps_the_extremes_alone() {
    let cols = ["k:Int64", "v:Int64"];
    let input = schema(&cols);
    let store = eddy_storage::Store::temporary().unwrap();
    let source = || crate::Input::Source {
        relation: 1,
        schema: input.clone(),
    };
    // State written by the multiset form is read by the compact one.
    let mut flow = crate::Dataflow::default();
    flow.push(Box::new(agg()), vec![source()]);
    let first =
        std::collections::HashMap::from([(1, delta(&cols, &[(1, "1|5"), (1, "1|9"), (1, "1|7")]))]);
    flow.apply(&first, &EpochContext::default()).unwrap();
    let mut batch = eddy_storage::WriteBatch::default();
    flow.checkpoint(10, &mut batch).unwrap();
    store.commit(batch, false).unwrap();

    let mut compact = crate::Dataflow::default();
    compact.push(Box::new(agg().over_append_only(true)), vec![source()]);
    compact.restore(10, &store).unwrap();
    let more = std::collections::HashMap::from([(1, delta(&cols, &[(1, "1|3"), (1, "1|8")]))]);
    let out = compact.apply(&more, &EpochContext::default()).unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(-1, "1|3|21|5|9|3|7"), (1, "1|5|32|3|9|5|6.4")])
    );
    // A deletion cannot be taken by an extreme: the epoch fails rather than lie.
    let gone = std::collections::HashMap::from([(1, delta(&cols, &[(-1, "1|3")]))]);
    assert!(compact.apply(&gone, &EpochContext::default()).is_err());
}

/// `SELECT k, t, count(*), count(v), sum(v), avg(v) GROUP BY k, t`: sums only, so a large
/// change is pre-aggregated.
fn summing() -> Aggregate {
    let input = schema(&["k:Int64", "t:Ts", "v:Int64"]);
    let out = schema(&[
        "k:Int64",
        "t:Ts",
        "n:Int64",
        "c:Int64",
        "s:Int64",
        "a:Float64",
    ]);
    Aggregate::new(
        vec![col("k", 0).unwrap(), col("t", 1).unwrap()],
        vec![
            spec(AggKind::Count, None, false, DataType::Int64),
            spec(AggKind::Count, col("v", 2), false, DataType::Int64),
            spec(AggKind::Sum, col("v", 2), false, DataType::Int64),
            spec(AggKind::Avg, col("v", 2), false, DataType::Float64),
        ],
        &input,
        out,
    )
    .unwrap()
}

/// Rows `range` of a generated stream (some `v` NULL), each with weight `w`.
fn generated(range: std::ops::Range<i64>, w: i64) -> Delta {
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    let input = schema(&["k:Int64", "t:Ts", "v:Int64"]);
    let k = Int64Array::from_iter_values(range.clone().map(|i| i % 97));
    let t = TimestampMicrosecondArray::from_iter_values(range.clone().map(|i| i % 5 * 1_000_000));
    let v = Int64Array::from_iter(range.clone().map(|i| (i % 7 != 0).then_some(i * 31 % 1000)));
    let batch = RecordBatch::try_new(input, vec![Arc::new(k), Arc::new(t), Arc::new(v)]).unwrap();
    Delta::new(batch, vec![w; (range.end - range.start) as usize])
}

/// The net change of a sequence of outputs: what a view holds after them.
fn net(outputs: &[Delta]) -> Vec<(i64, String)> {
    let all = Delta::concat(&outputs[0].schema(), outputs).unwrap();
    sorted(&all)
}

#[test]
fn a_large_change_summed_per_key_first_equals_row_by_row() {
    // 150,000 rows: pre-aggregated, in shares on a machine with several cores.
    let changes = [
        generated(0..150_000, 1),
        Delta::concat(
            &generated(0..1, 1).schema(),
            &[generated(0..50_000, -1), generated(150_000..160_000, 1)],
        )
        .unwrap(),
    ];
    let mut whole = summing();
    let mut by_row = summing();
    // The whole change qualifies.
    let first = &changes[0].batch;
    let keys = [first.column(0).clone(), first.column(1).clone()];
    let v = Some(first.column(2).clone());
    let args = [None, v.clone(), v.clone(), v];
    assert!(preagg::Plan::of(&keys, &whole.aggs, &args, &whole.new_accs()).is_some());
    let mut whole_out = vec![];
    let mut by_row_out = vec![];
    for change in &changes {
        whole_out.push(whole.apply_now(std::slice::from_ref(change)).unwrap());
        // The same rows in pieces below the pre-aggregation's size go row by row.
        for at in (0..change.len()).step_by(1000) {
            let len = 1000.min(change.len() - at);
            let piece = Delta::new(change.batch.slice(at, len), change.weights.slice(at, len));
            by_row_out.push(by_row.apply_now(&[piece]).unwrap());
        }
        assert_eq!(net(&whole_out), net(&by_row_out));
    }
    assert_eq!(net(&whole_out).len(), 97 * 5);
    // Both go on alike from there.
    let last = generated(160_000..160_010, 1);
    assert_eq!(
        sorted(&whole.apply_now(std::slice::from_ref(&last)).unwrap()),
        sorted(&by_row.apply_now(&[last]).unwrap())
    );
}

#[test]
fn several_inputs_are_taken_as_one_change() {
    let cols = ["k:Int64", "v:Int64"];
    let (a, b) = (
        delta(&cols, &[(1, "1|5"), (1, "2|3")]),
        delta(&cols, &[(1, "1|7"), (-1, "2|3"), (1, "3|1")]),
    );
    let together = Delta::concat(&a.schema(), &[a.clone(), b.clone()]).unwrap();
    let mut one = agg();
    let mut two = agg();
    assert_eq!(
        sorted(&one.apply_now(&[together]).unwrap()),
        sorted(&two.apply_now(&[a, b]).unwrap())
    );
}

/// `SELECT k, min(v), max(v), count(DISTINCT v) GROUP BY k` over floats: NULLs are not
/// values, and -0 and 0 are one value, whichever comes first and whichever is deleted.
#[test]
fn float_multisets_skip_nulls_and_hold_both_zeros_as_one_value() {
    let input = schema(&["k:Int64", "v:Float64"]);
    let out = schema(&["k:Int64", "lo:Float64", "hi:Float64", "d:Int64"]);
    let mut a = Aggregate::new(
        vec![col("k", 0).unwrap()],
        vec![
            spec(AggKind::Min, col("v", 1), false, DataType::Float64),
            spec(AggKind::Max, col("v", 1), false, DataType::Float64),
            spec(AggKind::Count, col("v", 1), true, DataType::Int64),
        ],
        &input,
        out,
    )
    .unwrap();
    let columns = ["k:Int64", "v:Float64"];
    let out = a
        .apply_now(&[delta(
            &columns,
            &[(1, "1|-0.0"), (1, "1|NULL"), (1, "1|0.0"), (1, "1|2.5")],
        )])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|0|2.5|2")]));
    let out = a
        .apply_now(&[delta(&columns, &[(-1, "1|2.5"), (-1, "1|0.0")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|0|0|1"), (-1, "1|0|2.5|2")]));
    let out = a
        .apply_now(&[delta(&columns, &[(-1, "1|-0.0"), (-1, "1|NULL")])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "1|0|0|1")]));
}
