//! Window functions over partitions: `f(...) OVER (PARTITION BY .. ORDER BY .. [frame])` for
//! every window function DataFusion evaluates (LAG, LEAD, running and sliding sums, counts,
//! averages, first_value, last_value, nth_value, ntile, ranks, ...) with ROWS, RANGE or
//! GROUPS frames.
//!
//! Each partition keeps its rows. For every partition an epoch touches, the operator
//! evaluates the window functions over the partition as it was and as it is now, and emits
//! the difference: the old rows retracted, the new inserted; rows whose values did not change
//! cancel out. So a change costs the size of its partition (a change to a running sum moves
//! every later row of its partition), which suits partitions of modest size: a user's
//! sessions, a sensor's last readings. A window without PARTITION BY would recompute the
//! whole relation on every change and is refused by the planner.
//!
//! Ties in ORDER BY are broken by the row's encoding, so every evaluation of the same rows
//! gives the same answer, before and after a restart (SQL leaves the order of ties open).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take};
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::window::WindowExpr;

use crate::codec::{self, Decoder, decode_row, encode_row};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

/// A partition's rows by encoding: values and multiplicity.
type Rows = BTreeMap<Vec<u8>, (Vec<ScalarValue>, i64)>;

/// Evaluates window functions per partition; see the module documentation.
pub struct OverWindow {
    /// The window functions, all over the same partitions.
    exprs: Vec<Arc<dyn WindowExpr>>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    input: SchemaRef,
    /// The input's columns, then one column per window function.
    schema: SchemaRef,
    partitions: FastMap<Vec<u8>, Rows>,
    /// Rows (partition key, encoding) whose multiplicity changed since the last checkpoint.
    dirty: FastSet<(Vec<u8>, Vec<u8>)>,
}

impl OverWindow {
    /// `exprs` must share their PARTITION BY, which must not be empty.
    pub fn new(
        exprs: Vec<Arc<dyn WindowExpr>>,
        input: SchemaRef,
        schema: SchemaRef,
    ) -> DataflowResult<Self> {
        let partition_by = exprs
            .first()
            .map(|e| e.partition_by().to_vec())
            .unwrap_or_default();
        let same = |e: &Arc<dyn WindowExpr>| {
            e.partition_by().len() == partition_by.len()
                && e.partition_by()
                    .iter()
                    .zip(&partition_by)
                    .all(|(a, b)| a.to_string() == b.to_string())
        };
        if partition_by.is_empty() || !exprs.iter().all(same) {
            return Err(DataflowError::Unsupported(
                "window functions without PARTITION BY, or over different partitions".into(),
            ));
        }
        if schema.fields().len() != input.fields().len() + exprs.len() {
            return Err(DataflowError::Internal(
                "a window's output is its input plus a column per function".into(),
            ));
        }
        Ok(Self {
            exprs,
            partition_by,
            input,
            schema,
            partitions: FastMap::default(),
            dirty: FastSet::default(),
        })
    }

    /// The partition key of every row of a batch of input rows.
    fn partition_keys(&self, batch: &RecordBatch) -> DataflowResult<Vec<Vec<u8>>> {
        let columns = self
            .partition_by
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect::<DataflowResult<Vec<ArrayRef>>>()?;
        (0..batch.num_rows())
            .map(|i| encode_row(&codec::row_values(&columns, i)?))
            .collect()
    }

    /// The partition's rows with their window values, each copy of a repeated row a row of
    /// its own; None when the partition is empty.
    fn evaluate(&self, rows: &Rows) -> DataflowResult<Option<RecordBatch>> {
        let expanded: Vec<Vec<ScalarValue>> = rows
            .values()
            .flat_map(|(values, n)| std::iter::repeat_n(values.clone(), *n as usize))
            .collect();
        if expanded.is_empty() {
            return Ok(None);
        }
        let batch = codec::batch_from_rows(&self.input, &expanded)?;
        let mut columns = batch.columns().to_vec();
        // The rows' order in `rows` (by encoding) breaks ties in every ORDER BY.
        let position: ArrayRef =
            Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32));
        for expr in &self.exprs {
            let mut keys = expr.order_by_columns(&batch)?;
            keys.push(SortColumn {
                values: position.clone(),
                options: Some(SortOptions::default()),
            });
            let order = lexsort_to_indices(&keys, None)?;
            let sorted = arrow::compute::take_record_batch(&batch, &order)?;
            let values = expr.evaluate(&sorted)?;
            // Back to the batch's order: the row at `order[k]` got `values[k]`.
            let mut back = vec![0u32; order.len()];
            for (k, row) in order.values().iter().enumerate() {
                back[*row as usize] = k as u32;
            }
            columns.push(take(&values, &UInt32Array::from(back), None)?);
        }
        let columns = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| match c.data_type() == f.data_type() {
                true => Ok(c),
                false => Ok(arrow::compute::cast(&c, f.data_type())?),
            })
            .collect::<DataflowResult<Vec<_>>>()?;
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

impl Operator for OverWindow {
    fn explain(&self) -> Explain {
        let functions: Vec<String> = self.exprs.iter().map(|e| e.name().to_string()).collect();
        let partitions: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        Explain {
            operator: format!(
                "OverWindow: {} over partitions by {}, each recomputed when it changes",
                functions.join(", "),
                partitions.join(", ")
            ),
            state: StateBound::Grows("every row of each partition".into()),
            watermark: None,
        }
    }

    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        let keys = self.partition_keys(&input.batch)?;
        let mut changes: FastMap<Vec<u8>, Vec<(Vec<ScalarValue>, i64)>> = FastMap::default();
        for (i, key) in keys.into_iter().enumerate() {
            let values = codec::row_values(input.batch.columns(), i)?;
            changes
                .entry(key)
                .or_default()
                .push((values, input.weights[i]));
        }
        let mut parts = Vec::new();
        for (key, changes) in changes {
            let mut rows = self.partitions.remove(&key).unwrap_or_default();
            if let Some(old) = self.evaluate(&rows)? {
                parts.push(Delta::deletes(old));
            }
            for (values, w) in changes {
                let row = encode_row(&values)?;
                self.dirty.insert((key.clone(), row.clone()));
                let entry = rows.entry(row.clone()).or_insert((values, 0));
                entry.1 += w;
                match entry.1 {
                    0 => {
                        rows.remove(&row);
                    }
                    n if n < 0 => {
                        return Err(DataflowError::Internal(
                            "a window deleted a row it never held".into(),
                        ));
                    }
                    _ => {}
                }
            }
            if let Some(new) = self.evaluate(&rows)? {
                parts.push(Delta::inserts(new));
            }
            if !rows.is_empty() {
                self.partitions.insert(key, rows);
            }
        }
        Delta::concat(&self.schema, &parts)?.consolidate()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        for (key, row) in std::mem::take(&mut self.dirty) {
            let held = self
                .partitions
                .get(&key)
                .and_then(|rows| rows.get(&row))
                .map_or(0, |(_, n)| *n);
            state.count(&row, held);
        }
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        let width = self.input.fields().len();
        let mut loaded = Vec::new();
        for entry in state {
            let (row, value) = entry?;
            let n = Decoder::new(&value).i64()?;
            loaded.push((row, n));
        }
        let rows: Vec<Vec<ScalarValue>> = loaded
            .iter()
            .map(|(row, _)| decode_row(row, width))
            .collect::<DataflowResult<_>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let batch = codec::batch_from_rows(&self.input, &rows)?;
        let keys = self.partition_keys(&batch)?;
        for (((row, n), values), key) in loaded.into_iter().zip(rows).zip(keys) {
            self.partitions
                .entry(key)
                .or_default()
                .insert(row, (values, n));
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.partitions.values().map(BTreeMap::len).sum()
    }
}
