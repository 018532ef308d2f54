//! The streaming planner: turns DataFusion's optimized logical plan of a view's query into an
//! incremental [`Dataflow`], or refuses it naming the construct it cannot maintain.

use std::sync::Arc;

use datafusion::common::{DFSchema, NullEquality};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use eddy_catalog::Snapshot;
use eddy_dataflow::{AggKind, AggSpec, Aggregate, Dataflow, Filter, Input, Join, Project, Union};

use crate::{SqlError, SqlResult};

/// Plans the incremental dataflow of an optimized logical plan.
pub fn plan_dataflow(
    state: &SessionState,
    catalog: &Snapshot,
    plan: &LogicalPlan,
) -> SqlResult<Dataflow> {
    let mut flow = Dataflow::default();
    let mut planner = Planner {
        state,
        catalog,
        flow: &mut flow,
    };
    let out = planner.build(plan)?;
    // A view whose plan is a bare scan still needs an operator to own its output.
    if let Input::Source { schema, .. } = &out {
        let exprs = (0..schema.fields().len())
            .map(|i| column(schema.field(i).name(), i))
            .collect();
        planner
            .flow
            .push(Box::new(Project::new(exprs, schema.clone())), vec![out]);
    }
    Ok(flow)
}

fn column(name: &str, index: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(datafusion::physical_expr::expressions::Column::new(
        name, index,
    ))
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
}

impl Planner<'_> {
    fn physical(&self, expr: &Expr, schema: &DFSchema) -> SqlResult<Arc<dyn PhysicalExpr>> {
        Ok(self.state.create_physical_expr(expr.clone(), schema)?)
    }

    fn node(&mut self, op: Box<dyn eddy_dataflow::Operator>, inputs: Vec<Input>) -> Input {
        Input::Node(self.flow.push(op, inputs))
    }

    fn build(&mut self, plan: &LogicalPlan) -> SqlResult<Input> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("LIMIT"));
                }
                let name = scan.table_name.table();
                let rel = self.catalog.resolve(name)?;
                if !rel.is_stored() {
                    return Err(SqlError::Internal(format!("view {name} was not expanded")));
                }
                let mut input = Input::Source {
                    relation: rel.id,
                    schema: rel.schema(),
                };
                if let Some(projection) = &scan.projection {
                    let source = rel.schema();
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
                let input = self.build(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                let schema = Arc::new(f.input.schema().as_arrow().clone());
                Ok(self.node(Box::new(Filter::new(predicate, schema)), vec![input]))
            }
            LogicalPlan::SubqueryAlias(s) => self.build(&s.input),
            LogicalPlan::Sort(s) => {
                if s.fetch.is_some() {
                    return Err(unsupported("ORDER BY ... LIMIT (top-N)"));
                }
                // Order does not change a view's contents.
                self.build(&s.input)
            }
            LogicalPlan::Aggregate(a) => {
                let input = self.build(&a.input)?;
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
                let op = Aggregate::new(
                    group_exprs,
                    aggs,
                    &Arc::new(in_schema.as_arrow().clone()),
                    out_schema,
                )?;
                Ok(self.node(Box::new(op), vec![input]))
            }
            LogicalPlan::Join(j) => {
                if j.join_type != JoinType::Inner {
                    return Err(unsupported(format!("{} JOIN", j.join_type)));
                }
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
                let residual = j
                    .filter
                    .as_ref()
                    .map(|f| self.physical(f, &j.schema))
                    .transpose()?;
                let op = Join::new(
                    left_keys,
                    right_keys,
                    residual,
                    j.null_equality == NullEquality::NullEqualsNull,
                    j.left.schema().fields().len(),
                    Arc::new(j.schema.as_arrow().clone()),
                );
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
            LogicalPlan::Window(_) => Err(unsupported("window function (OVER)")),
            LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Err(unsupported(
                "a query without a stream, table or view in FROM",
            )),
            LogicalPlan::Unnest(_) => Err(unsupported("UNNEST")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            other => Err(unsupported(format!("{} node", other.display()))),
        }
    }

    fn aggregate(
        &self,
        e: &Expr,
        schema: &DFSchema,
        output_type: arrow::datatypes::DataType,
    ) -> SqlResult<AggSpec> {
        let e = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
            return Err(unsupported(format!("aggregate expression {e}")));
        };
        let kind = match func.name() {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            other => return Err(unsupported(format!("aggregate function {other}()"))),
        };
        if !params.order_by.is_empty() {
            return Err(unsupported(format!("{}(... ORDER BY ...)", func.name())));
        }
        let arg = match params.args.as_slice() {
            [] => None,
            [a] => Some(self.physical(a, schema)?),
            _ => {
                return Err(unsupported(format!(
                    "{}() with several arguments",
                    func.name()
                )));
            }
        };
        let filter = params
            .filter
            .as_ref()
            .map(|f| self.physical(f, schema))
            .transpose()?;
        Ok(AggSpec {
            kind,
            arg,
            distinct: params.distinct,
            filter,
            output_type,
        })
    }
}
