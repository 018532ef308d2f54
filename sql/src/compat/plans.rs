//! Physical plans of catalog queries, kept across definition changes.
//!
//! [`super::cache`] answers a repeated catalog query until the catalog snapshot changes; the
//! first time a tool lists the relations after a `CREATE`, the query is parsed, planned,
//! optimized and planned physically again, which costs several times more than running it.
//! The plan itself does not depend on the snapshot: the catalog tables build their rows when
//! the plan runs and the functions read the catalog per call, both from a [`Binding`]. So the
//! physical plan of a query [`super::cache::cacheable`] found to follow from the snapshot and
//! the session (and [`keepable`]: no lookup the optimizer answers while planning) is kept
//! under the same key as its answer, less the snapshot, and run again under the new snapshot
//! once it is rebound.
//!
//! What Describe answers for such a query is kept the same way.
//!
//! A kept plan is taken out while it runs (its binding is its own), so two clients running
//! the same query at once plan it each; whichever finishes last keeps its plan. The number of
//! kept plans is bounded; when full it starts over.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, collect};
use eddy_catalog::Snapshot;
use parking_lot::Mutex;
use sqlparser::ast::Statement as SqlStatement;

use super::ClientSession;
use super::binding::Binding;
use super::cache::{Pending, SessionKey};
use super::functions::SNAPSHOT_LOOKUPS;
use crate::SqlResult;

/// Whether the physical plan of `plan`, a query [`super::cache::cacheable`] keeps the answer
/// of, may be kept across snapshots: it looks no object up with constant arguments, which the
/// optimizer would answer once, for the snapshot of the moment (`to_regclass('t')`).
pub fn keepable(plan: &LogicalPlan) -> bool {
    let mut keepable = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && SNAPSHOT_LOOKUPS.contains(&f.name())
                    && f.args.iter().all(|a| a.column_refs().is_empty())
                {
                    keepable = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    keepable
}

/// How many plans are kept at most.
const MAX_PLANS: usize = 256;

/// A catalog query's physical plan, with what it runs in and the result schema clients see.
pub struct KeptPlan {
    pub plan: Arc<dyn ExecutionPlan>,
    pub task: Arc<TaskContext>,
    pub binding: Arc<Binding>,
    pub schema: SchemaRef,
}

impl KeptPlan {
    /// Runs the plan again, for `client` under `snapshot` (its rows, under the plan's own
    /// column names); then the plan answers for `idle`
    /// (a session no client holds) until it runs again, so that it keeps no closed client's
    /// session open.
    pub async fn run(
        &self,
        snapshot: &Arc<Snapshot>,
        client: &Arc<ClientSession>,
        idle: &Arc<ClientSession>,
    ) -> SqlResult<Vec<RecordBatch>> {
        self.binding.rebind(snapshot.clone(), client.clone());
        // A fresh copy of every stateful node (a join's collected build side, ...).
        let plan = reset_plan_states(self.plan.clone())?;
        let batches = collect(plan, self.task.clone()).await;
        self.binding.rebind(snapshot.clone(), idle.clone());
        Ok(batches?)
    }
}

/// What is kept of a query across snapshots: its plan, or what Describe answers (which
/// follows from the catalog tables' columns and the functions' types, never from the
/// snapshot).
enum Kept {
    Plan(KeptPlan),
    Described(Vec<Option<DataType>>, SchemaRef),
}

struct Entry {
    statement: SqlStatement,
    params: Vec<ScalarValue>,
    session: SessionKey,
    kept: Kept,
}

impl Entry {
    fn is_for(&self, pending: &Pending, statement: &SqlStatement, params: &[ScalarValue]) -> bool {
        self.session == pending.session && self.params == params && self.statement == *statement
    }
}

/// The kept plans of catalog queries.
#[derive(Default)]
pub struct CatalogPlans {
    entries: Mutex<HashMap<u64, Vec<Entry>>>,
    reused: AtomicU64,
}

impl CatalogPlans {
    /// Takes out the plan kept for the query `pending` stands for, if there is one.
    pub fn take(
        &self,
        pending: &Pending,
        statement: &SqlStatement,
        params: &[ScalarValue],
    ) -> Option<KeptPlan> {
        let mut entries = self.entries.lock();
        let bucket = entries.get_mut(&pending.hash)?;
        let at = bucket.iter().position(|e| {
            matches!(e.kept, Kept::Plan(_)) && e.is_for(pending, statement, params)
        })?;
        let Kept::Plan(plan) = bucket.swap_remove(at).kept else {
            unreachable!("the entry found holds a plan");
        };
        if bucket.is_empty() {
            entries.remove(&pending.hash);
        }
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(plan)
    }

    /// Keeps (or puts back) the plan of the query `pending` stands for.
    pub fn keep(
        &self,
        pending: &Pending,
        statement: &SqlStatement,
        params: &[ScalarValue],
        plan: KeptPlan,
    ) {
        self.put(pending, statement, params, Kept::Plan(plan));
    }

    /// What Describe answered for the query `pending` stands for, under any snapshot.
    pub fn described(
        &self,
        pending: &Pending,
        statement: &SqlStatement,
    ) -> Option<(Vec<Option<DataType>>, SchemaRef)> {
        let entries = self.entries.lock();
        entries
            .get(&pending.hash)?
            .iter()
            .find_map(|e| match &e.kept {
                Kept::Described(types, schema) if e.is_for(pending, statement, &[]) => {
                    Some((types.clone(), schema.clone()))
                }
                _ => None,
            })
    }

    /// Keeps what Describe answered for the query `pending` stands for.
    pub fn keep_described(
        &self,
        pending: &Pending,
        statement: &SqlStatement,
        types: Vec<Option<DataType>>,
        schema: SchemaRef,
    ) {
        self.put(pending, statement, &[], Kept::Described(types, schema));
    }

    fn put(&self, pending: &Pending, statement: &SqlStatement, params: &[ScalarValue], kept: Kept) {
        let mut entries = self.entries.lock();
        if entries.values().map(Vec::len).sum::<usize>() >= MAX_PLANS {
            entries.clear();
        }
        let bucket = entries.entry(pending.hash).or_default();
        bucket.retain(|e| !e.is_for(pending, statement, params));
        bucket.push(Entry {
            statement: statement.clone(),
            params: params.to_vec(),
            session: pending.session.clone(),
            kept,
        });
    }

    /// How many plans and descriptions are kept, and how many times a plan ran again.
    pub fn figures(&self) -> (usize, u64) {
        let kept = self.entries.lock().values().map(Vec::len).sum();
        (kept, self.reused.load(Ordering::Relaxed))
    }
}
