//! Interval joins: the bound an inner join's condition puts on the distance between its
//! inputs' event times (`b.ts BETWEEN a.ts AND a.ts + INTERVAL '1 hour'`, or any mix of
//! `<`, `<=`, `>`, `>=` and `=` between two event-time columns give or take an interval),
//! found in the plan, so that the join frees rows behind the watermarks.
//!
//! Both columns must follow event times of streams: a column a WATERMARK is declared on,
//! passed through projections, filters, unions and aggregates' groups, or a window bound
//! computed from it (TUMBLE and HOP windows are `tumble_start` of the event time, give or
//! take intervals), so equal windows (`a.window_start = b.window_start`) bound a join too,
//! also between counts per window (Nexmark q5). Conditions on other
//! columns, or between other pairs, only narrow the matches further, so a bound from some of
//! the conjuncts is safe.

use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Join, JoinType, LogicalPlan, Operator};
use eddy_catalog::{RelationKind, Snapshot};
use eddy_dataflow::TimeBound;
use eddy_dataflow::window::Expiry;

use crate::streaming::is_append_only;
use crate::windows::tumble_start;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The time bound of a join, if its condition has one between two streams' event times.
/// An inner join takes it from any of its conditions; the others only from an equi-join key
/// of two equal times, which they free a whole key at a time (see [`TimeBound::whole_keys`]).
pub fn time_bound(j: &Join, catalog: &Snapshot) -> Option<TimeBound> {
    let inner = j.join_type == JoinType::Inner;
    if j.null_aware {
        return None;
    }
    let mut bound: Option<TimeBound> = None;
    // The equi-join keys (`a.window_start = b.window_start`), then the other conditions.
    let keys = j.on.iter().map(|(l, r)| (true, l, Operator::Eq, r));
    let filter = j.filter.iter().flat_map(split_conjunction);
    let others = filter
        .flat_map(comparisons)
        .map(|(a, op, b)| (false, a, op, b));
    for (key, a, op, b) in keys.chain(others) {
        let Some((l, r, op, k)) = oriented(j, a, op, b) else {
            continue;
        };
        let b = match &mut bound {
            Some(b) if (b.left_column, b.right_column) == (l, r) => b,
            Some(_) => continue,
            // Other joins only by a key of two equal times.
            None if !(inner || key && k == 0) => continue,
            None => {
                let (Some((left_stream, left_floor)), Some((right_stream, right_floor))) = (
                    event_time(&j.left, l, catalog),
                    event_time(&j.right, r, catalog),
                ) else {
                    continue;
                };
                bound.insert(TimeBound {
                    left_column: l,
                    left_stream,
                    left_floor,
                    right_column: r,
                    right_stream,
                    right_floor,
                    lower: None,
                    upper: None,
                    left_retracts: !is_append_only(&j.left, catalog),
                    right_retracts: !is_append_only(&j.right, catalog),
                    whole_keys: !inner,
                })
            }
        };
        // `l - r op k`.
        if matches!(op, Operator::Gt | Operator::GtEq | Operator::Eq) {
            b.lower = Some(b.lower.map_or(k, |x| x.max(k)));
        }
        if matches!(op, Operator::Lt | Operator::LtEq | Operator::Eq) {
            b.upper = Some(b.upper.map_or(k, |x| x.min(k)));
        }
    }
    bound
}

/// The comparisons a conjunct makes: `a op b` (a BETWEEN is two).
fn comparisons(e: &Expr) -> Vec<(&Expr, Operator, &Expr)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq | Operator::Eq
            ) =>
        {
            vec![(left.as_ref(), *op, right.as_ref())]
        }
        Expr::Between(b) if !b.negated => vec![
            (b.expr.as_ref(), Operator::GtEq, b.low.as_ref()),
            (b.expr.as_ref(), Operator::LtEq, b.high.as_ref()),
        ],
        _ => vec![],
    }
}

/// `a op b` as `left column - right column op k` (column indexes in their inputs), when one
/// side is a left column and the other a right column, each give or take an interval.
fn oriented(j: &Join, a: &Expr, op: Operator, b: &Expr) -> Option<(usize, usize, Operator, i64)> {
    let (ca, oa) = shifted(a)?;
    let (cb, ob) = shifted(b)?;
    let at = |schema: &DFSchema, c: &Column| schema.index_of_column(c).ok();
    match (at(j.left.schema(), ca), at(j.right.schema(), cb)) {
        // l + oa op r + ob  =>  l - r op ob - oa
        (Some(l), Some(r)) => Some((l, r, op, ob.checked_sub(oa)?)),
        _ => {
            let l = at(j.left.schema(), cb)?;
            let r = at(j.right.schema(), ca)?;
            // r + oa op l + ob  =>  l - r (op swapped) oa - ob
            Some((l, r, op.swap()?, oa.checked_sub(ob)?))
        }
    }
}

/// A column give or take a constant interval: `ts`, `ts + INTERVAL '1 hour'`, `ts - ...`.
fn shifted(e: &Expr) -> Option<(&Column, i64)> {
    match e {
        Expr::Column(c) => Some((c, 0)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (op, left.as_ref()) {
            (Operator::Plus, _) => match (shifted(left), interval(right)) {
                (Some((c, o)), Some(i)) => Some((c, o.checked_add(i)?)),
                _ => {
                    let (c, o) = shifted(right)?;
                    Some((c, o.checked_add(interval(left)?)?))
                }
            },
            (Operator::Minus, _) => {
                let (c, o) = shifted(left)?;
                Some((c, o.checked_sub(interval(right)?)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A constant interval in microseconds (one of whole days and time; months vary in length).
fn interval(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else {
        return None;
    };
    fixed_micros(v)
}

/// An interval or duration value in microseconds, if it has a fixed length (whole days and
/// time; months vary in length).
pub(crate) fn fixed_micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => (v.days as i64)
            .checked_mul(MICROS_PER_DAY)?
            .checked_add(v.nanoseconds / 1_000),
        ScalarValue::IntervalDayTime(Some(v)) => (v.days as i64)
            .checked_mul(MICROS_PER_DAY)?
            .checked_add(v.milliseconds as i64 * 1_000),
        ScalarValue::DurationMicrosecond(Some(v)) => Some(*v),
        ScalarValue::DurationMillisecond(Some(v)) => v.checked_mul(1_000),
        ScalarValue::DurationSecond(Some(v)) => v.checked_mul(1_000_000),
        ScalarValue::DurationNanosecond(Some(v)) => Some(v / 1_000),
        _ => None,
    }
}

/// The stream whose event time the plan's column `index` follows from below, and how far
/// below it may lie: the column is at least `ts + floor` (floor <= 0) for every change of
/// the plan's output (an insertion or a retraction), where `ts` is the event time of the
/// stream row that caused the change; late rows cause none. The
/// event time itself has floor 0; a window's start (`tumble_start(ts, size)` or
/// `date_bin(size, ts, origin)`) lies within `size` below it; adding or subtracting a
/// constant interval moves the floor; a UNION ALL (HOP's windows) takes the lowest floor of
/// its inputs.
fn event_time(plan: &LogicalPlan, index: usize, catalog: &Snapshot) -> Option<(u64, i64)> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let rel = catalog.get(scan.table_name.table())?;
            let column = match &scan.projection {
                Some(p) => *p.get(index)?,
                None => index,
            };
            (rel.kind == RelationKind::Stream && rel.watermark?.column == column)
                .then_some((rel.id, 0))
        }
        LogicalPlan::Projection(p) => derived_time(p.expr.get(index)?, &p.input, catalog),
        LogicalPlan::Filter(f) => event_time(&f.input, index, catalog),
        LogicalPlan::SubqueryAlias(s) => event_time(&s.input, index, catalog),
        // A group changes (is inserted, updated or retracted) only when an input row of the
        // group arrives, so a group column that follows an event time bounds every change
        // of the aggregate's output as it bounds its input's rows.
        LogicalPlan::Aggregate(a) => match a.group_expr.get(index)? {
            Expr::GroupingSet(_) => None,
            e => derived_time(e, &a.input, catalog),
        },
        LogicalPlan::Union(u) => {
            let mut found: Option<(u64, i64)> = None;
            for input in &u.inputs {
                let (stream, floor) = event_time(input, index, catalog)?;
                match found {
                    Some((s, _)) if s != stream => return None,
                    Some((_, f)) => found = Some((stream, f.min(floor))),
                    None => found = Some((stream, floor)),
                }
            }
            found
        }
        _ => None,
    }
}

/// When the groups of an aggregate plan can be freed: once the watermark passes a group
/// column that follows an event time by more than its floor, every change to come is at a
/// later value of that column (see [`event_time`]), so the group never changes again.
pub fn group_expiry(plan: &LogicalPlan, catalog: &Snapshot) -> Option<Expiry> {
    let LogicalPlan::Aggregate(a) = plan else {
        return None;
    };
    (0..a.group_expr.len()).find_map(|column| {
        let (stream, floor) = event_time(plan, column, catalog)?;
        Some(Expiry {
            stream,
            column,
            offset_micros: floor.checked_neg()?,
        })
    })
}

/// [`event_time`] of an expression over a plan's columns.
fn derived_time(e: &Expr, input: &LogicalPlan, catalog: &Snapshot) -> Option<(u64, i64)> {
    match e {
        Expr::Alias(a) => derived_time(&a.expr, input, catalog),
        Expr::Column(c) => event_time(input, input.schema().index_of_column(c).ok()?, catalog),
        Expr::ScalarFunction(f) if f.name() == "date_bin" || f.name() == tumble_start::NAME => {
            let (size, ts) = match f.args.as_slice() {
                [ts, size] if f.name() == tumble_start::NAME => (size, ts),
                [size, ts, ..] => (size, ts),
                _ => return None,
            };
            let (stream, floor) = derived_time(ts, input, catalog)?;
            Some((stream, floor.checked_sub(interval(size)?)?))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (stream, floor) = derived_time(left, input, catalog)?;
            let shift = interval(right)?;
            match op {
                Operator::Plus => Some((stream, floor.checked_add(shift)?.min(0))),
                Operator::Minus => Some((stream, floor.checked_sub(shift)?)),
                _ => None,
            }
        }
        _ => None,
    }
}
