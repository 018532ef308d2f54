//! SELECT (and EXPLAIN): planned and run by DataFusion over rows read at one epoch; reads by
//! key are answered from the store without planning ([`PointRead`]), and repeated catalog
//! queries from the results kept for the catalog snapshot ([`cache`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::physical_plan::collect;
use eddy_catalog::Snapshot;
use eddy_sql::SqlResult;
use eddy_sql::compat::ClientSession;
use eddy_sql::compat::binding::Binding;
use eddy_sql::compat::cache::{self, Answer, Kind, Pending};
use eddy_sql::compat::plans::{self, KeptPlan};
use eddy_sql::context::{self, Rows};
use eddy_sql::point::PointRead;
use sqlparser::ast::Statement as SqlStatement;

use super::naming::statement_names;
use super::{Outcome, Shared};

pub async fn execute(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &SqlStatement,
    params: &[ScalarValue],
) -> SqlResult<Outcome> {
    // The epoch is pinned before the catalog is read: a definition swapped in by an epoch
    // (CREATE OR REPLACE) is seen with that epoch's rows, never with an older one's.
    let pin = shared.store.pin();
    let snapshot = shared.catalog.snapshot();
    if let Some(read) = PointRead::plan(stmt, &snapshot)
        && let Some(batch) = read.execute(&shared.store, params, true)?
    {
        return Ok(Outcome::Rows {
            schema: read.schema(),
            batches: vec![batch],
            tag: "SELECT",
        });
    }
    let kept = &shared.query.catalog_results;
    let pending = if matches!(stmt, SqlStatement::Query(_)) {
        match kept.lookup(Kind::Rows, &snapshot, stmt, params, session) {
            Ok(Answer::Rows(schema, batches)) => {
                return Ok(Outcome::Rows {
                    schema,
                    batches,
                    tag: "SELECT",
                });
            }
            Ok(Answer::Described(..)) => None,
            Err(pending) => Some(pending),
        }
    } else {
        None
    };
    let pending = match pending {
        Some(pending) => match shared.query.catalog_plans.take(&pending, stmt, params) {
            Some(plan) => {
                // Planned before, under an earlier snapshot or for another client.
                drop(pin);
                return run_kept(shared, session, stmt, params, plan, pending, &snapshot).await;
            }
            None => Some(pending),
        },
        None => None,
    };
    let ctx = shared
        .query
        .session_pinned(
            stmt,
            &snapshot,
            &shared.store,
            Rows::Load,
            session,
            Some(pin),
        )
        .await?;
    let mut plan = shared.query.plan(&ctx, stmt).await?;
    if !params.is_empty() {
        plan = plan.with_param_values(ParamValues::List(
            params.iter().cloned().map(Into::into).collect(),
        ))?;
    }
    let pending = pending.filter(|_| cache::cacheable(&plan));
    let keep_plan = pending.is_some() && plans::keepable(&plan);
    if pending.is_some() {
        let state = ctx.state_ref();
        let mut state = state.write();
        let optimizer = &mut state.config_mut().options_mut().optimizer;
        // A catalog query joins a few small in-memory tables: the optimizer's second and
        // third passes over it cost more than they could save (about 12% of its latency).
        optimizer.max_passes = 1;
        // Its plan is kept and runs again (`compat::plans`): no filter may carry one run's
        // values into the next.
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    }
    let df = ctx.execute_logical_plan(plan).await?;
    let task = df.task_ctx();
    let physical = df.create_physical_plan().await?;
    // The types after coercion (the SQL planner types `CASE ... THEN int4 ELSE 0 END` by its
    // first branch; type coercion makes it int8).
    let schema = physical.schema();
    context::release(&ctx);
    let task = Arc::new(task);
    let schema = statement_names(stmt, &schema);
    let batches = named(collect(physical.clone(), task.clone()).await?, &schema)?;
    if let Some(pending) = pending {
        if keep_plan
            && let Some(binding) = ctx.state().config().get_extension::<Binding>()
            && binding.is_complete()
        {
            // Kept, it answers for no client until it runs again.
            binding.rebind(snapshot.clone(), shared.query.internal().clone());
            let plan = KeptPlan {
                plan: physical,
                task,
                binding,
                schema: schema.clone(),
            };
            shared
                .query
                .catalog_plans
                .keep(&pending, stmt, params, plan);
        }
        return Ok(keep_answer(
            shared, pending, &snapshot, stmt, params, schema, batches,
        ));
    }
    Ok(Outcome::Rows {
        schema,
        batches,
        tag: "SELECT",
    })
}

/// Rows under the column names the client sees.
fn named(batches: Vec<RecordBatch>, schema: &SchemaRef) -> SqlResult<Vec<RecordBatch>> {
    Ok(batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Keeps a catalog query's answer under `snapshot`, and answers with it.
fn keep_answer(
    shared: &Shared,
    pending: Pending,
    snapshot: &Arc<Snapshot>,
    stmt: &SqlStatement,
    params: &[ScalarValue],
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Outcome {
    let answer = Answer::Rows(schema.clone(), batches.clone());
    shared
        .query
        .catalog_results
        .insert(pending, snapshot, stmt, params, answer);
    Outcome::Rows {
        schema,
        batches,
        tag: "SELECT",
    }
}

/// Runs a catalog query's kept plan under `snapshot` for `session`, and keeps the plan and
/// the answer.
async fn run_kept(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &SqlStatement,
    params: &[ScalarValue],
    plan: KeptPlan,
    pending: Pending,
    snapshot: &Arc<Snapshot>,
) -> SqlResult<Outcome> {
    let schema = plan.schema.clone();
    let batches = named(
        plan.run(snapshot, session, shared.query.internal()).await?,
        &schema,
    )?;
    shared
        .query
        .catalog_plans
        .keep(&pending, stmt, params, plan);
    Ok(keep_answer(
        shared, pending, snapshot, stmt, params, schema, batches,
    ))
}

pub async fn describe(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &SqlStatement,
) -> SqlResult<(Vec<Option<DataType>>, Option<SchemaRef>)> {
    let snapshot = shared.catalog.snapshot();
    let kept = &shared.query.catalog_results;
    let pending = match kept.lookup(Kind::Described, &snapshot, stmt, &[], session) {
        Ok(Answer::Described(types, schema)) => return Ok((types, Some(schema))),
        Ok(Answer::Rows(..)) => None,
        Err(pending) => match shared.query.catalog_plans.described(&pending, stmt) {
            Some((types, schema)) => {
                // Described before, under an earlier snapshot.
                let answer = Answer::Described(types.clone(), schema.clone());
                kept.insert(pending, &snapshot, stmt, &[], answer);
                return Ok((types, Some(schema)));
            }
            None => Some(pending),
        },
    };
    let ctx = shared
        .query
        .session_for(stmt, &snapshot, &shared.store, Rows::SchemaOnly, session)
        .await?;
    let plan = shared.query.plan(&ctx, stmt).await?;
    let mut types = plan.get_parameter_types()?;
    infer_from_casts(&plan, &mut types)?;
    infer_array_operands(&plan, &mut types)?;
    let schema = analyzed_schema(&ctx, &plan);
    let (types, schema) = (positional(types), statement_names(stmt, &schema));
    if let Some(pending) = pending.filter(|_| cache::cacheable(&plan)) {
        shared
            .query
            .catalog_plans
            .keep_described(&pending, stmt, types.clone(), schema.clone());
        let answer = Answer::Described(types.clone(), schema.clone());
        kept.insert(pending, &snapshot, stmt, &[], answer);
    }
    Ok((types, Some(schema)))
}

/// The result schema of a plan once its types are coerced, as running it gives it; the
/// planned schema where the plan cannot be analyzed before its parameters are known.
pub fn analyzed_schema(
    ctx: &datafusion::prelude::SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> SchemaRef {
    let state = ctx.state();
    let analyzed =
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {});
    let schema = analyzed
        .as_ref()
        .map_or_else(|_| plan.schema(), |p| p.schema());
    Arc::new(schema.as_arrow().clone())
}

/// Parameter types by position: `$n` is the n-th, and a number the plan does not use (a
/// parameter in a part of the query rewritten away) is untyped rather than shifting the
/// rest.
pub fn positional(
    types: std::collections::HashMap<String, Option<DataType>>,
) -> Vec<Option<DataType>> {
    let numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, t)| Some((name.trim_start_matches('$').parse::<usize>().ok()?, t)))
        .filter(|(n, _)| *n >= 1)
        .collect();
    let len = numbered.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut out = vec![None; len];
    for (n, t) in numbered {
        out[n - 1] = t;
    }
    out
}

/// `x = ANY($1)` (planned as `array_has($1, x)`) leaves the placeholder untyped, or typed as
/// x; it is an array of x's type.
pub fn infer_array_operands(
    plan: &datafusion::logical_expr::LogicalPlan,
    types: &mut std::collections::HashMap<String, Option<DataType>>,
) -> SqlResult<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, ExprSchemable};
    plan.apply_with_subqueries(|node| {
        let schemas: Vec<_> = node.inputs().iter().map(|i| i.schema().clone()).collect();
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && matches!(f.name(), "array_has" | "array_contains")
                    && let [Expr::Placeholder(p), element] = f.args.as_slice()
                    && let Some(t) = schemas.iter().find_map(|s| element.get_type(s).ok())
                {
                    types.insert(p.id.clone(), Some(DataType::new_list(t, true)));
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(())
}

/// `$1::BIGINT` leaves the placeholder itself untyped in DataFusion; take the cast's type.
pub fn infer_from_casts(
    plan: &datafusion::logical_expr::LogicalPlan,
    types: &mut std::collections::HashMap<String, Option<DataType>>,
) -> SqlResult<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Cast(c) = e
                    && let Expr::Placeholder(p) = c.expr.as_ref()
                {
                    let slot = types.entry(p.id.clone()).or_insert(None);
                    if slot.is_none() {
                        *slot = Some(c.field.data_type().clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(())
}
