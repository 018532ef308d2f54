//! The streaming planner: turns DataFusion's optimized logical plan of a view's query into an
//! incremental [`Dataflow`], or refuses it naming the construct it cannot maintain.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, NullEquality};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use eddy_catalog::{RelationKind, Snapshot};
use eddy_dataflow::window::{CloseGate, Expiry};
use eddy_dataflow::{
    Aggregate, Dataflow, Filter, Input, Join, JoinKind, Numbering, Project, SortColumn, TopN, Union,
};

use crate::interval_join;
use crate::windows::{WindowFunction, WindowKind, session_index};
use crate::{SqlError, SqlResult};

pub use keys::ranking_key;

mod aggregates;
mod keys;
mod sessions;
mod subplans;
#[cfg(test)]
mod tests;

/// The version of this planner, kept with each materialized view (`Relation::plan_version`):
/// - 0: every subplan planned where it appears;
/// - 1: a subplan the query repeats (Nexmark q5 counts bids per auction and window twice) is
///   planned once, and its operator feeds every place it appears;
/// - 2: a SESSION window holds only the columns its query reads, and yields one row per
///   session when those are its partition columns (Nexmark q11 counts bids per session).
pub const PLAN_VERSION: u32 = 2;

/// What a view's definition says beyond its plan.
#[derive(Clone, Debug, Default)]
pub struct ViewOptions {
    /// The window table functions of its query.
    pub windows: Vec<WindowFunction>,
    /// `EMIT ON WINDOW CLOSE`: rows appear only once the watermark closes their window.
    pub emit_on_window_close: bool,
    /// The planner version to plan with: the view's own, or [`PLAN_VERSION`] for a new view.
    pub plan_version: u32,
}

/// The window end column names and their offsets from the window's end.
const WINDOW_END: &str = "window_end";
const WINDOW_START: &str = "window_start";

/// A window whose closing a watermark decides: the query windows one stream by the column
/// its watermark is declared on.
#[derive(Clone, Copy)]
struct Closing {
    stream: u64,
    /// How far after its start a window ends (none for sessions, whose lengths vary).
    size_micros: Option<i64>,
}

impl Closing {
    fn of(catalog: &Snapshot, windows: &[WindowFunction]) -> Option<Closing> {
        let (window, others) = windows.split_first()?;
        // Several windows close together when they window one stream by one column with one
        // kind and size (Nexmark q5 counts one HOP twice: per auction, and for the maximum).
        let alike = |w: &WindowFunction| {
            w.kind != WindowKind::Session
                && w.kind == window.kind
                && w.relation == window.relation
                && w.time_column == window.time_column
                && w.size_micros == window.size_micros
        };
        if !others.iter().all(alike) {
            return None;
        }
        let rel = catalog.get(&window.relation)?;
        let wm = rel.watermark?;
        (rel.kind == RelationKind::Stream && rel.columns[wm.column].name == window.time_column)
            .then_some(Closing {
                stream: rel.id,
                size_micros: (window.kind != WindowKind::Session).then_some(window.size_micros),
            })
    }

    /// Where the window ends in rows whose column `name` is at `index`, if it is a window
    /// bound.
    fn expiry(&self, name: &str, index: usize) -> Option<Expiry> {
        let offset_micros = match name {
            WINDOW_END => 0,
            WINDOW_START => self.size_micros?,
            _ => return None,
        };
        Some(Expiry {
            stream: self.stream,
            column: index,
            offset_micros,
        })
    }

    /// The expiry of a schema's window end (preferred) or start column.
    fn expiry_in(&self, names: &[&str]) -> Option<Expiry> {
        [WINDOW_END, WINDOW_START].iter().find_map(|bound| {
            names
                .iter()
                .position(|n| n == bound)
                .and_then(|i| self.expiry(bound, i))
        })
    }
}

/// Plans the incremental dataflow of an optimized logical plan.
pub fn plan_dataflow(
    state: &SessionState,
    catalog: &Snapshot,
    plan: &LogicalPlan,
    options: &ViewOptions,
) -> SqlResult<Dataflow> {
    let mut flow = Dataflow::default();
    let closing = Closing::of(catalog, &options.windows);
    let mut planner = Planner {
        state,
        catalog,
        flow: &mut flow,
        closing,
        windows: &options.windows,
        rank_cut: None,
        built: (options.plan_version >= 1).then(subplans::Built::default),
        plan_version: options.plan_version,
    };
    let mut out = planner.build(plan)?;
    // A view whose plan is a bare scan still needs an operator to own its output.
    if let Input::Source { schema, .. } = &out {
        let exprs = (0..schema.fields().len())
            .map(|i| column(schema.field(i).name(), i))
            .collect();
        out = planner.node(Box::new(Project::new(exprs, schema.clone())), vec![out]);
    }
    if options.emit_on_window_close {
        let closing = closing.ok_or_else(|| {
            SqlError::InvalidParameter(
                "EMIT ON WINDOW CLOSE needs one window (TUMBLE or HOP) over a stream, by the \
                 column its WATERMARK is declared on"
                    .into(),
            )
        })?;
        if !reads_only_streams(plan, catalog, &options.windows) {
            return Err(SqlError::InvalidParameter(
                "EMIT ON WINDOW CLOSE needs a query that reads only streams: a table or view \
                 could change a window after it closed"
                    .into(),
            ));
        }
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let expiry = closing.expiry_in(&names).ok_or_else(|| {
            SqlError::InvalidParameter(
                "EMIT ON WINDOW CLOSE needs window_end or window_start among the view's columns"
                    .into(),
            )
        })?;
        planner.node(Box::new(CloseGate::new(expiry, schema)), vec![out]);
    }
    Ok(flow)
}

/// What in a view's plan keeps state that grows without bound, one message per operator
/// (each once): a join of two streams keeps every row of both sides.
pub fn unbounded_state(plan: &LogicalPlan, catalog: &Snapshot) -> Vec<String> {
    let mut notes = Vec::new();
    // Rankings cut by a filter right above them (nodes are visited top-down).
    let mut cut: Vec<String> = Vec::new();
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Join(j)
                if append_only(&j.left, catalog)
                    && append_only(&j.right, catalog)
                    && !interval_join::time_bound(j, catalog).is_some_and(|b| b.bounds_both()) =>
            {
                notes.push(format!(
                    "the join of streams {} and {} keeps every row of both in its state, which \
                     grows without bound",
                    scan_names(&j.left),
                    scan_names(&j.right)
                ));
            }
            LogicalPlan::Filter(f) => {
                if let Some((name, _)) = rank_cut(&f.predicate).filter(|(n, _)| ranks(&f.input, n))
                {
                    cut.push(name);
                }
            }
            LogicalPlan::Window(w)
                if append_only(&w.input, catalog)
                    && !matches!(w.window_expr.as_slice(), [e] if numbering(e).is_some()) =>
            {
                notes.push(format!(
                    "the window functions over stream {} keep every row of each partition in \
                     their state, which grows without bound",
                    scan_names(&w.input)
                ));
            }
            LogicalPlan::Window(w) if append_only(&w.input, catalog) => {
                let ranked = w.schema.fields().last().map(|f| f.name().clone());
                if ranked.is_some_and(|r| !cut.contains(&r)) {
                    notes.push(format!(
                        "the ranking over stream {} has no cut (such as WHERE rn <= 10), so it \
                         keeps every row of the stream in its state, which grows without bound",
                        scan_names(&w.input)
                    ));
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    // A repeated subplan is one operator, and is noted once.
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    notes
}

/// The relations a plan scans, for messages.
fn scan_names(plan: &LogicalPlan) -> String {
    let mut names = Vec::new();
    let _ = plan.apply(|n| {
        if let LogicalPlan::TableScan(scan) = n {
            names.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names.join(", ")
}

/// The relation a scan reads: the one it names, or the one a SESSION placeholder windows.
fn scanned<'a>(table: &'a str, windows: &'a [WindowFunction]) -> &'a str {
    session_index(table)
        .and_then(|n| windows.get(n))
        .map_or(table, |w| w.relation.as_str())
}

/// Whether every relation a plan reads is a stream.
fn reads_only_streams(plan: &LogicalPlan, catalog: &Snapshot, windows: &[WindowFunction]) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => catalog
            .get(scanned(scan.table_name.table(), windows))
            .is_some_and(|r| r.kind == RelationKind::Stream),
        other => other
            .inputs()
            .iter()
            .all(|i| reads_only_streams(i, catalog, windows)),
    }
}

/// Whether a plan's rows never change once the watermark has closed their window: rows that
/// only ever grow, or sessions of a stream (a row that could still join or bridge a closed
/// session would be late, and late rows never reach a view).
fn final_once_closed(plan: &LogicalPlan, catalog: &Snapshot, windows: &[WindowFunction]) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) if session_index(scan.table_name.table()).is_some() => {
            reads_only_streams(plan, catalog, windows)
        }
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_) => plan
            .inputs()
            .iter()
            .all(|i| final_once_closed(i, catalog, windows)),
        other => append_only(other, catalog),
    }
}

/// Whether a view of this (optimized) plan only ever gains rows, and so can be stored as a
/// log.
pub fn is_append_only(plan: &LogicalPlan, catalog: &Snapshot) -> bool {
    append_only(plan, catalog)
}

/// Whether a plan's output only ever grows: streams and append-only views, through operators
/// that map inserts to inserts (an aggregate updates its rows, so it does not).
fn append_only(plan: &LogicalPlan, catalog: &Snapshot) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => catalog.get(scan.table_name.table()).is_some_and(|r| {
            r.kind == RelationKind::Stream
                || (r.kind == RelationKind::MaterializedView && r.append_only)
        }),
        // A sort with a fetch is a top-N, whose members change.
        LogicalPlan::Sort(s) if s.fetch.is_some() => false,
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Sort(_) => plan.inputs().iter().all(|i| append_only(i, catalog)),
        LogicalPlan::Join(j) if j.join_type == JoinType::Inner => {
            append_only(&j.left, catalog) && append_only(&j.right, catalog)
        }
        _ => false,
    }
}

/// The cut a filter puts on a ranking column: `rn <= n`, `rn < n` or `rn = 1` (either way
/// round) keeps the numbers up to n.
fn rank_cut(predicate: &Expr) -> Option<(String, u64)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
        _ => return None,
    };
    let n = match value {
        datafusion::common::ScalarValue::UInt64(Some(n)) => *n,
        datafusion::common::ScalarValue::Int64(Some(n)) => u64::try_from(*n).ok()?,
        _ => return None,
    };
    let limit = match op {
        Operator::LtEq => n,
        Operator::Lt => n.checked_sub(1)?,
        Operator::Eq if n == 1 => 1,
        _ => return None,
    };
    Some((column.name.clone(), limit))
}

/// Whether `name` is the number a ranking window node computes, directly below `plan` or
/// below projections and aliases that pass it through.
fn ranks(plan: &LogicalPlan, name: &str) -> bool {
    match plan {
        LogicalPlan::Window(w) => w.schema.fields().last().is_some_and(|f| f.name() == name),
        LogicalPlan::SubqueryAlias(s) => ranks(&s.input, name),
        LogicalPlan::Projection(p) => {
            p.expr
                .iter()
                .zip(p.schema.fields())
                .any(|(e, f)| f.name() == name && matches!(e, Expr::Column(c) if c.name == name))
                && ranks(&p.input, name)
        }
        _ => false,
    }
}

/// The position of a plain column in a schema; anything else is refused.
fn column_index(e: &Expr, schema: &DFSchema, clause: &str) -> SqlResult<usize> {
    match e {
        Expr::Column(c) => Ok(schema.index_of_column(c)?),
        other => Err(unsupported(format!(
            "{clause} {other}: rank by columns (compute the expression in a subquery)"
        ))),
    }
}

/// ORDER BY columns, which must be plain columns.
fn sort_columns(
    exprs: &[datafusion::logical_expr::SortExpr],
    schema: &DFSchema,
) -> SqlResult<Vec<SortColumn>> {
    exprs
        .iter()
        .map(|s| {
            Ok(SortColumn {
                column: column_index(&s.expr, schema, "ORDER BY")?,
                descending: !s.asc,
                nulls_first: s.nulls_first,
            })
        })
        .collect()
}

fn column(name: &str, index: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(datafusion::physical_expr::expressions::Column::new(
        name, index,
    ))
}

/// A window expression that numbers rows (ROW_NUMBER, RANK or DENSE_RANK, unfiltered).
fn numbering(expr: &Expr) -> Option<(Numbering, &datafusion::logical_expr::expr::WindowFunction)> {
    let expr = match expr {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    let Expr::WindowFunction(call) = expr else {
        return None;
    };
    let numbering = match call.fun.name() {
        "row_number" => Numbering::RowNumber,
        "rank" => Numbering::Rank,
        "dense_rank" => Numbering::DenseRank,
        _ => return None,
    };
    call.params
        .filter
        .is_none()
        .then_some((numbering, call.as_ref()))
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(format!(
        "{} in a materialized view is not supported yet",
        what.into()
    ))
}

struct Planner<'a> {
    state: &'a SessionState,
    catalog: &'a Snapshot,
    flow: &'a mut Dataflow,
    closing: Option<Closing>,
    /// The window table functions of the query, which SESSION placeholders index.
    windows: &'a [WindowFunction],
    /// A filter's cut on a ranking just below it (`WHERE rn <= 3`): the ranking's column name
    /// and the largest number kept, for the ranking to stop there.
    rank_cut: Option<(String, u64)>,
    /// The subplans planned so far and the nodes yielding their rows, for a repeated one to
    /// read (`None` for views of planner version 0, which planned each one anew).
    built: Option<subplans::Built>,
    /// The planner version the view is planned with ([`PLAN_VERSION`] for a new view).
    plan_version: u32,
}

impl Planner<'_> {
    fn physical(&self, expr: &Expr, schema: &DFSchema) -> SqlResult<Arc<dyn PhysicalExpr>> {
        if expr
            .exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))
            .unwrap_or(false)
        {
            return Err(unsupported(
                "a scalar subquery that is correlated or may yield other than one row (an \
                 aggregate without GROUP BY, as in (SELECT max(x) FROM t), is maintained)",
            ));
        }
        Ok(self.state.create_physical_expr(expr.clone(), schema)?)
    }

    fn node(&mut self, op: Box<dyn eddy_dataflow::Operator>, inputs: Vec<Input>) -> Input {
        Input::Node(self.flow.push(op, inputs))
    }

    /// Plans the operators of `plan` (whose inputs may be found among those planned already).
    fn plan(&mut self, plan: &LogicalPlan) -> SqlResult<Input> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("LIMIT"));
                }
                let name = scan.table_name.table();
                let (mut input, source, projection) = match session_index(name) {
                    Some(n) => self.session(n, scan.projection.as_deref())?,
                    None => {
                        let rel = self.catalog.resolve(name)?;
                        if !rel.is_stored() {
                            return Err(SqlError::Internal(format!(
                                "view {name} was not expanded"
                            )));
                        }
                        let input = Input::Source {
                            relation: rel.id,
                            schema: rel.schema(),
                        };
                        (input, rel.schema(), scan.projection.clone())
                    }
                };
                if let Some(projection) = &projection {
                    let exprs = projection
                        .iter()
                        .map(|&i| column(source.field(i).name(), i))
                        .collect();
                    let schema = Arc::new(scan.projected_schema.as_arrow().clone());
                    input = self.node(Box::new(Project::new(exprs, schema)), vec![input]);
                }
                for f in &scan.filters {
                    let p = self.physical(f, &scan.projected_schema)?;
                    let schema = Arc::new(scan.projected_schema.as_arrow().clone());
                    input = self.node(Box::new(Filter::new(p, schema)), vec![input]);
                }
                Ok(input)
            }
            LogicalPlan::Projection(p) => {
                let input = self.build(&p.input)?;
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.physical(e, p.input.schema()))
                    .collect::<SqlResult<Vec<_>>>()?;
                let schema = Arc::new(p.schema.as_arrow().clone());
                Ok(self.node(Box::new(Project::new(exprs, schema)), vec![input]))
            }
            LogicalPlan::Filter(f) => {
                self.rank_cut = rank_cut(&f.predicate).filter(|(name, _)| ranks(&f.input, name));
                let input = self.build(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                let schema = Arc::new(f.input.schema().as_arrow().clone());
                Ok(self.node(Box::new(Filter::new(predicate, schema)), vec![input]))
            }
            LogicalPlan::SubqueryAlias(s) => self.build(&s.input),
            LogicalPlan::Sort(s) => {
                let Some(fetch) = s.fetch else {
                    // Order does not change a view's contents.
                    return self.build(&s.input);
                };
                let input = self.build(&s.input)?;
                let order = sort_columns(&s.expr, s.input.schema())?;
                let op = TopN::new(
                    vec![],
                    order,
                    None,
                    Some(fetch as u64),
                    append_only(&s.input, self.catalog),
                    Arc::new(s.input.schema().as_arrow().clone()),
                )?;
                Ok(self.node(Box::new(op), vec![input]))
            }
            LogicalPlan::Window(w) => self.ranking(w),
            LogicalPlan::Aggregate(a) => {
                // Over a UNION ALL, the aggregate takes the branches' changes one after
                // another instead of a concatenation of them (a HOP window's branches).
                let inputs = match union_branches(&a.input) {
                    Some(branches) => branches
                        .iter()
                        .map(|b| self.build(b))
                        .collect::<SqlResult<Vec<_>>>()?,
                    None => vec![self.build(&a.input)?],
                };
                let in_schema = a.input.schema();
                let group_exprs = a
                    .group_expr
                    .iter()
                    .map(|e| match e {
                        Expr::GroupingSet(_) => Err(unsupported("GROUPING SETS, ROLLUP or CUBE")),
                        e => self.physical(e, in_schema),
                    })
                    .collect::<SqlResult<Vec<_>>>()?;
                let out_schema = Arc::new(a.schema.as_arrow().clone());
                let mut aggs = Vec::new();
                for (i, e) in a.aggr_expr.iter().enumerate() {
                    let output_type = out_schema.field(a.group_expr.len() + i).data_type().clone();
                    aggs.push(self.aggregate(e, in_schema, output_type)?);
                }
                let mut op = Aggregate::new(
                    group_exprs,
                    aggs,
                    &Arc::new(in_schema.as_arrow().clone()),
                    out_schema,
                )?
                .over_append_only(append_only(&a.input, self.catalog));
                if let Some(closing) = self.closing
                    && final_once_closed(&a.input, self.catalog, self.windows)
                {
                    let names: Vec<&str> = a
                        .group_expr
                        .iter()
                        .map(|e| match e {
                            Expr::Column(c) => c.name.as_str(),
                            _ => "",
                        })
                        .collect();
                    if let Some(expiry) = closing.expiry_in(&names) {
                        op = op.with_expiry(expiry);
                    }
                }
                // Groups by a column that follows an event time (Nexmark q5's maximum, per
                // window, of counts per window) change only while that time is open.
                if !op.expires()
                    && let Some(expiry) = interval_join::group_expiry(plan, self.catalog)
                {
                    op = op.with_expiry(expiry);
                }
                Ok(self.node(Box::new(op), inputs))
            }
            LogicalPlan::Join(j) => {
                let kind = match j.join_type {
                    JoinType::Inner => JoinKind::Inner,
                    JoinType::Left => JoinKind::Left,
                    JoinType::Right => JoinKind::Right,
                    JoinType::Full => JoinKind::Full,
                    JoinType::LeftSemi => JoinKind::LeftSemi,
                    JoinType::LeftAnti => JoinKind::LeftAnti,
                    JoinType::RightSemi => JoinKind::RightSemi,
                    JoinType::RightAnti => JoinKind::RightAnti,
                    other => return Err(unsupported(format!("{other} JOIN"))),
                };
                let left = self.build(&j.left)?;
                let right = self.build(&j.right)?;
                let left_keys =
                    j.on.iter()
                        .map(|(l, _)| self.physical(l, j.left.schema()))
                        .collect::<SqlResult<Vec<_>>>()?;
                let right_keys =
                    j.on.iter()
                        .map(|(_, r)| self.physical(r, j.right.schema()))
                        .collect::<SqlResult<Vec<_>>>()?;
                // The residual sees a pair of rows: both sides' columns, left then right
                // (the output's, but for semi and anti joins).
                let pair = match (&j.filter, kind) {
                    (Some(_), JoinKind::LeftSemi | JoinKind::LeftAnti)
                    | (Some(_), JoinKind::RightSemi | JoinKind::RightAnti) => {
                        Arc::new(j.left.schema().join(j.right.schema())?)
                    }
                    _ => j.schema.clone(),
                };
                let residual = j
                    .filter
                    .as_ref()
                    .map(|f| self.physical(f, &pair))
                    .transpose()?;
                let op = Join::with_kind(
                    kind,
                    left_keys,
                    right_keys,
                    residual,
                    j.null_equality == NullEquality::NullEqualsNull,
                    (
                        j.left.schema().fields().len(),
                        j.right.schema().fields().len(),
                    ),
                    Arc::new(pair.as_arrow().clone()),
                    Arc::new(j.schema.as_arrow().clone()),
                );
                let op = match j.null_aware {
                    true if kind == JoinKind::LeftAnti => op.not_in(),
                    true => {
                        return Err(unsupported(format!("a null-aware {} JOIN", j.join_type)));
                    }
                    false => op,
                };
                // An interval join of streams (or of windowed aggregates of streams) frees
                // rows behind the watermarks.
                let op = match interval_join::time_bound(j, self.catalog) {
                    Some(bound) => op.with_time_bound(bound),
                    None => op,
                };
                Ok(self.node(Box::new(op), vec![left, right]))
            }
            LogicalPlan::Union(u) => {
                let inputs = u
                    .inputs
                    .iter()
                    .map(|i| self.build(i))
                    .collect::<SqlResult<Vec<_>>>()?;
                let schema = Arc::new(u.schema.as_arrow().clone());
                Ok(self.node(Box::new(Union::new(schema)), inputs))
            }
            LogicalPlan::Limit(_) => Err(unsupported("LIMIT")),
            LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Err(unsupported(
                "a query without a stream, table or view in FROM",
            )),
            LogicalPlan::Unnest(_) => Err(unsupported("UNNEST")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            other => Err(unsupported(format!("{} node", other.display()))),
        }
    }

    /// A window node. One that only numbers rows (ROW_NUMBER, RANK or DENSE_RANK over a
    /// partition, possibly cut by a filter above it) is a [`TopN`]; any other is evaluated per
    /// partition by an [`OverWindow`](eddy_dataflow::OverWindow).
    fn ranking(&mut self, w: &datafusion::logical_expr::Window) -> SqlResult<Input> {
        use datafusion::logical_expr::expr::WindowFunction as Call;
        // A cut is for this window alone, never for one below it.
        let cut = self.rank_cut.take();
        let (numbering, call) = match w.window_expr.as_slice() {
            [expr] if numbering(expr).is_some() => numbering(expr).expect("a numbering"),
            _ => {
                let op = crate::over::window_operator(self.state, w)?;
                let input = self.build(&w.input)?;
                return Ok(self.node(Box::new(op), vec![input]));
            }
        };
        let Call { params, .. } = call;
        let schema = w.input.schema();
        let partition = params
            .partition_by
            .iter()
            .map(|e| column_index(e, schema, "PARTITION BY"))
            .collect::<SqlResult<Vec<_>>>()?;
        let order = sort_columns(&params.order_by, schema)?;
        let out = Arc::new(w.schema.as_arrow().clone());
        let name = out.field(out.fields().len() - 1).name().clone();
        let limit = cut.filter(|(cut, _)| *cut == name).map(|(_, n)| n);
        let input = self.build(&w.input)?;
        let op = TopN::new(
            partition,
            order,
            Some(numbering),
            limit,
            append_only(&w.input, self.catalog),
            out,
        )?;
        Ok(self.node(Box::new(op), vec![input]))
    }
}

/// The branches of a UNION ALL (under aliases) whose rows have the union's column types,
/// so that an operator can take them one by one.
fn union_branches(plan: &LogicalPlan) -> Option<&[Arc<LogicalPlan>]> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => union_branches(&a.input),
        LogicalPlan::Union(u) => {
            let types = |p: &LogicalPlan| -> Vec<arrow::datatypes::DataType> {
                p.schema()
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect()
            };
            let union = types(plan);
            u.inputs
                .iter()
                .all(|i| types(i) == union)
                .then_some(u.inputs.as_slice())
        }
        _ => None,
    }
}
