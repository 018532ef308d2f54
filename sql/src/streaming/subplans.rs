//! Subplans a query repeats, planned once: Nexmark q5 counts bids per auction and window
//! twice, once to show the counts and once for their maximum, and both read one aggregate.
//!
//! Two repetitions of a subplan are equal as logical plans but for the names DataFusion gives
//! the expressions it extracts to compute once (`__common_expr_<n>`, numbered across the whole
//! query). A subplan is therefore looked up by a canonical form in which those names are
//! numbered within the subplan alone, in the order they appear.

use std::collections::HashMap;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::Planner;
use crate::SqlResult;
use eddy_dataflow::Input;

/// How DataFusion names the expressions it extracts (its `CSE_PREFIX`).
const EXTRACTED: &str = "__common_expr";

/// The subplans planned so far, by canonical form and the ranking cut each was planned
/// under, with the node that yields its rows.
#[derive(Default)]
pub(super) struct Built(HashMap<(LogicalPlan, Option<(String, u64)>), Input>);

impl Planner<'_> {
    /// The node yielding the rows of `plan`: found among those planned already, or planned
    /// now. Either way no ranking cut is left over (the ranking below the filter that set it
    /// took it).
    pub(super) fn build(&mut self, plan: &LogicalPlan) -> SqlResult<Input> {
        let cut = self.rank_cut.take();
        let key = match &self.built {
            Some(_) => canonical(plan).map(|form| (form, cut.clone())),
            None => None,
        };
        if let (Some(built), Some(key)) = (&self.built, &key)
            && let Some(input) = built.0.get(key)
        {
            return Ok(input.clone());
        }
        self.rank_cut = cut;
        let input = self.plan(plan)?;
        self.rank_cut = None;
        if let (Some(built), Some(key)) = (&mut self.built, key) {
            built.0.insert(key, input.clone());
        }
        Ok(input)
    }
}

/// `plan` with its extracted expressions renamed `__common_expr_<i>` by their order of
/// appearance in it; `None` where the renamed plan's schemas do not compute (such a subplan
/// is planned wherever it appears).
fn canonical(plan: &LogicalPlan) -> Option<LogicalPlan> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut name = |n: &str| {
        if n.starts_with(EXTRACTED) && !names.contains_key(n) {
            let canonical = format!("{EXTRACTED}_{}", names.len() + 1);
            names.insert(n.to_string(), canonical);
        }
    };
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::Alias(a) => name(&a.name),
                    Expr::Column(c) if c.relation.is_none() => name(&c.name),
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .ok()?;
    if names.is_empty() {
        return Some(plan.clone());
    }
    let renamed = |e: Expr| -> DfResult<Transformed<Expr>> {
        e.transform(|e| {
            Ok(match e {
                Expr::Alias(mut a) if names.contains_key(&a.name) => {
                    a.name.clone_from(&names[&a.name]);
                    Transformed::yes(Expr::Alias(a))
                }
                Expr::Column(c) if c.relation.is_none() && names.contains_key(&c.name) => {
                    Transformed::yes(Expr::Column(Column::new_unqualified(&names[&c.name])))
                }
                e => Transformed::no(e),
            })
        })
    };
    // Bottom up, every node's schema computed again: its own names or its inputs' changed.
    plan.clone()
        .transform_up(|node| {
            let node = node.map_expressions(renamed)?.data;
            Ok(Transformed::yes(node.recompute_schema()?))
        })
        .ok()
        .map(|t| t.data)
}
