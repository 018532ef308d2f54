//! The key a ranking gives a view's rows, which DataFusion's functional dependencies do not
//! know: `ROW_NUMBER()` numbers the rows of a partition 1, 2, 3, ..., so the partition's
//! columns and the number identify a row, and once a filter keeps only number 1 (the
//! deduplication `WHERE rn = 1`), the partition's columns alone do.

use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};
use eddy_dataflow::Numbering;

use super::{numbering, rank_cut};

/// Where a ROW_NUMBER ranking's columns are in a plan's output.
struct Ranking {
    partition: Vec<usize>,
    /// The number's column, unless a projection dropped it.
    number: Option<usize>,
    /// A filter keeps only the first row of each partition.
    first_only: bool,
}

/// The columns (positions in the plan's output, ascending) that a ROW_NUMBER ranking at the
/// top of the plan makes unique, if any: the partition's and the number's, or the partition's
/// alone when only the first row of each partition is kept. Only projections of plain
/// columns, filters, aliases and sorts without a fetch may stand above the ranking.
pub fn ranking_key(plan: &LogicalPlan) -> Option<Vec<usize>> {
    let ranking = ranked(plan)?;
    let mut key = ranking.partition;
    if !ranking.first_only {
        key.push(ranking.number?);
    }
    key.sort_unstable();
    key.dedup();
    (!key.is_empty()).then_some(key)
}

fn ranked(plan: &LogicalPlan) -> Option<Ranking> {
    match plan {
        LogicalPlan::SubqueryAlias(s) => ranked(&s.input),
        LogicalPlan::Sort(s) if s.fetch.is_none() => ranked(&s.input),
        LogicalPlan::Filter(f) => {
            let mut ranking = ranked(&f.input)?;
            // A filter keeps a subset of the rows, so a key stays one; a cut to the first
            // number makes the number the same in every row.
            if let (Some((name, 1)), Some(number)) = (rank_cut(&f.predicate), ranking.number)
                && f.input.schema().field(number).name() == &name
            {
                ranking.first_only = true;
            }
            Some(ranking)
        }
        LogicalPlan::Projection(p) => {
            let ranking = ranked(&p.input)?;
            let input = p.input.schema();
            // Where an input column lands in the output, if the projection passes it on.
            let output = |c: usize| {
                let column = Column::from(input.qualified_field(c));
                p.expr.iter().position(|e| match e {
                    Expr::Column(x) => *x == column,
                    Expr::Alias(a) => matches!(a.expr.as_ref(), Expr::Column(x) if *x == column),
                    _ => false,
                })
            };
            Some(Ranking {
                partition: ranking
                    .partition
                    .iter()
                    .map(|&c| output(c))
                    .collect::<Option<_>>()?,
                number: ranking.number.and_then(output),
                first_only: ranking.first_only,
            })
        }
        LogicalPlan::Window(w) => {
            let [expr] = w.window_expr.as_slice() else {
                return None;
            };
            let (Numbering::RowNumber, call) = numbering(expr)? else {
                return None;
            };
            let input = w.input.schema();
            let partition = call
                .params
                .partition_by
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => input.index_of_column(c).ok(),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(Ranking {
                partition,
                number: Some(w.schema.fields().len() - 1),
                first_only: false,
            })
        }
        _ => None,
    }
}
