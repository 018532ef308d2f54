//! Planning window functions (`OVER (...)`) of a materialized view that are not a plain
//! ranking: DataFusion builds each function's physical form, and an
//! [`OverWindow`] evaluates them per partition as partitions change.

use std::sync::Arc;

use datafusion::execution::context::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Window};
use datafusion::physical_planner::create_window_expr;
use eddy_dataflow::OverWindow;

use crate::{SqlError, SqlResult};

/// The operator that maintains a window node's functions.
pub fn window_operator(state: &SessionState, w: &Window) -> SqlResult<OverWindow> {
    let mut partitions: Option<&[Expr]> = None;
    let mut exprs = Vec::with_capacity(w.window_expr.len());
    for e in &w.window_expr {
        let call = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::WindowFunction(call) = call else {
            return Err(refused(format!("window expression {e}")));
        };
        let by = call.params.partition_by.as_slice();
        if by.is_empty() {
            return Err(refused(format!(
                "{}() OVER without PARTITION BY (every change would recompute the whole \
                 relation); add PARTITION BY, or use ORDER BY .. LIMIT n for a top-n",
                call.fun.name()
            )));
        }
        match partitions {
            Some(first) if first != by => {
                return Err(refused(
                    "window functions over different PARTITION BY lists in one query level; \
                     compute them in separate views and join them",
                ));
            }
            _ => partitions = Some(by),
        }
        exprs.push(create_window_expr(
            e,
            w.input.schema(),
            state.execution_props(),
            &PhysicalPlanningContext::default(),
        )?);
    }
    let input = Arc::new(w.input.schema().as_arrow().clone());
    let schema = Arc::new(w.schema.as_arrow().clone());
    Ok(OverWindow::new(exprs, input, schema)?)
}

fn refused(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(format!(
        "{} in a materialized view is not supported",
        what.into()
    ))
}
