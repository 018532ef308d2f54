//! Scalar subqueries the dataflow can maintain: an uncorrelated one that always yields one
//! row becomes a cross join with that row before the view is planned.

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Subquery};

use crate::SqlResult;

/// Rewrites each uncorrelated scalar subquery that always yields one row (an aggregate
/// without GROUP BY, like `(SELECT avg(x) FROM t)`) in a filter or projection into a cross
/// join with that row, which the dataflow maintains: when the value changes, every row it
/// was compared with is judged again. Other scalar subqueries stay, and are refused later.
pub fn scalar_subqueries_as_joins(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    let mut next = 0usize;
    let rewritten = plan.transform_up(|node| {
        if !matches!(node, LogicalPlan::Filter(_) | LogicalPlan::Projection(_)) {
            return Ok(Transformed::no(node));
        }
        let mut subqueries: Vec<Subquery> = Vec::new();
        for e in node.expressions() {
            e.apply(|x| {
                if let Expr::ScalarSubquery(s) = x
                    && !subqueries.contains(s)
                {
                    subqueries.push(s.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        if subqueries.is_empty()
            || subqueries
                .iter()
                .any(|s| !s.outer_ref_columns.is_empty() || !one_row(&s.subquery))
        {
            return Ok(Transformed::no(node));
        }
        let input = node.inputs()[0].clone();
        let mut joined = LogicalPlanBuilder::from(input.clone());
        let mut columns = Vec::new();
        for s in &subqueries {
            let alias = format!("__eddy_scalar_{next}");
            next += 1;
            let row = LogicalPlanBuilder::from(s.subquery.as_ref().clone())
                .alias(alias.as_str())?
                .build()?;
            let name = row.schema().field(0).name().clone();
            columns.push(Expr::Column(Column::new(Some(alias), name)));
            joined = joined.cross_join(row)?;
        }
        let replace = |e: Expr| {
            e.transform(|x| match &x {
                Expr::ScalarSubquery(s) => match subqueries.iter().position(|q| q == s) {
                    Some(i) => Ok(Transformed::yes(columns[i].clone())),
                    None => Ok(Transformed::no(x)),
                },
                _ => Ok(Transformed::no(x)),
            })
            .map(|t| t.data)
        };
        let plan = match node {
            LogicalPlan::Filter(f) => {
                // Back to the input's columns once filtered.
                let keep: Vec<Expr> = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                joined
                    .filter(replace(f.predicate)?)?
                    .project(keep)?
                    .build()?
            }
            LogicalPlan::Projection(p) => {
                let exprs = p
                    .expr
                    .into_iter()
                    .map(|e| {
                        let name = e.schema_name().to_string();
                        let new = replace(e.clone())?;
                        Ok(match new {
                            same if same == e => same,
                            aliased @ Expr::Alias(_) => aliased,
                            other => other.alias(name),
                        })
                    })
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                joined.project(exprs)?.build()?
            }
            other => other,
        };
        Ok(Transformed::yes(plan))
    })?;
    Ok(rewritten.data)
}

/// Whether a plan yields exactly one row whatever its inputs hold: an aggregate without
/// GROUP BY, under projections and aliases.
fn one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            plan.inputs().first().is_some_and(|i| one_row(i))
        }
        _ => false,
    }
}
