//! [`Delta`]: a batch of changes, the one message every operator consumes and produces.

use std::collections::hash_map::Entry;

use arrow::array::BooleanArray;
use arrow::array::RecordBatch;
use arrow::buffer::ScalarBuffer;
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::codec;
use crate::{DataflowResult, FastMap};

/// Rows with integer weights: `+1` inserts a row, `-1` deletes one; an update is a delete
/// and an insert. A relation's contents are the sum of all deltas applied to it.
///
/// The weights are shared like the batch's columns: an operator that passes rows through
/// (a projection, a relation read by several operators) passes them on without a copy.
#[derive(Clone, Debug)]
pub struct Delta {
    pub batch: RecordBatch,
    pub weights: ScalarBuffer<i64>,
}

impl Delta {
    pub fn new(batch: RecordBatch, weights: impl Into<ScalarBuffer<i64>>) -> Self {
        let weights = weights.into();
        debug_assert_eq!(batch.num_rows(), weights.len());
        Self { batch, weights }
    }

    /// Every row of the batch inserted once.
    pub fn inserts(batch: RecordBatch) -> Self {
        let weights = vec![1; batch.num_rows()].into();
        Self { batch, weights }
    }

    /// Every row of the batch deleted once.
    pub fn deletes(batch: RecordBatch) -> Self {
        let weights = vec![-1; batch.num_rows()].into();
        Self { batch, weights }
    }

    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            batch: RecordBatch::new_empty(schema),
            weights: ScalarBuffer::from(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    /// The change as a reader that knows `schema` sees it: a relation widened by `ALTER ...
    /// ADD COLUMN` appends its new columns, and views, sinks and subscriptions defined before
    /// keep reading the leading columns they were defined over.
    pub fn leading(self, schema: &SchemaRef) -> DataflowResult<Delta> {
        let width = schema.fields().len();
        if self.batch.num_columns() == width {
            return Ok(self);
        }
        let columns = self.batch.columns().get(..width).ok_or_else(|| {
            crate::DataflowError::Corrupt(format!(
                "a change of {} columns for a reader of {width}",
                self.batch.num_columns()
            ))
        })?;
        let batch = RecordBatch::try_new_with_options(
            schema.clone(),
            columns.to_vec(),
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(self.weights.len())),
        )?;
        Ok(Delta {
            batch,
            weights: self.weights,
        })
    }

    /// Concatenates deltas of one schema.
    pub fn concat(schema: &SchemaRef, parts: &[Delta]) -> DataflowResult<Delta> {
        match parts {
            [] => Ok(Delta::empty(schema.clone())),
            [one] => Ok(one.clone()),
            _ => {
                let batch = concat_batches(schema, parts.iter().map(|d| &d.batch))?;
                let weights: Vec<i64> = parts
                    .iter()
                    .flat_map(|d| d.weights.iter().copied())
                    .collect();
                Ok(Delta::new(batch, weights))
            }
        }
    }

    /// Keeps the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> DataflowResult<Delta> {
        let batch = filter_record_batch(&self.batch, mask)?;
        let weights: Vec<i64> = self
            .weights
            .iter()
            .zip(mask.iter())
            .filter(|(_, keep)| keep == &Some(true))
            .map(|(w, _)| *w)
            .collect();
        Ok(Delta::new(batch, weights))
    }

    /// Sums the weights of equal rows and drops rows whose weight sums to zero, so that
    /// an insert and a delete of one row in the same epoch cancel out.
    pub fn consolidate(&self) -> DataflowResult<Delta> {
        if self.is_empty() || self.is_consolidated() {
            return Ok(self.clone());
        }
        let keys = codec::encode_rows(self.batch.columns(), self.len())?;
        let mut first: FastMap<&[u8], usize> =
            FastMap::with_capacity_and_hasher(keys.len(), Default::default());
        let mut sums: Vec<(usize, i64)> = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            match first.entry(keys.row(i)) {
                Entry::Occupied(slot) => sums[*slot.get()].1 += self.weights[i],
                Entry::Vacant(slot) => {
                    slot.insert(sums.len());
                    sums.push((i, self.weights[i]));
                }
            }
        }
        if sums.len() == self.len() && sums.iter().all(|(_, w)| *w != 0) {
            return Ok(self.clone());
        }
        let mut mask = vec![false; self.len()];
        let mut weights = Vec::with_capacity(sums.len());
        for (i, w) in sums.iter().filter(|(_, w)| *w != 0) {
            mask[*i] = true;
            weights.push(*w);
        }
        // `filter_record_batch` keeps rows in order; `sums` is in order of first occurrence.
        let batch = filter_record_batch(&self.batch, &BooleanArray::from(mask))?;
        Ok(Delta::new(batch, weights))
    }

    /// Whether no weight is zero and no two rows are equal, told from the rows' hashes
    /// (computed column by column): false when two rows hash alike, equal or not, and when
    /// a column's type cannot be hashed, so that [`Delta::consolidate`] then compares rows.
    fn is_consolidated(&self) -> bool {
        if self.weights.contains(&0) {
            return false;
        }
        let mut hashes = vec![0; self.len()];
        let hashed = create_hashes(self.batch.columns(), &RandomState::default(), &mut hashes);
        if hashed.is_err() {
            return false;
        }
        hashes.sort_unstable();
        hashes.windows(2).all(|pair| pair[0] != pair[1])
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::delta;

    #[test]
    fn consolidate_cancels_and_sums() {
        let d = delta(
            &["k:Int64", "v:Utf8"],
            &[(1, "1|a"), (1, "2|b"), (-1, "1|a"), (1, "2|b"), (1, "3|c")],
        );
        let c = d.consolidate().unwrap();
        assert_eq!(
            crate::testing::rows(&c),
            vec![(2, "2|b".to_string()), (1, "3|c".to_string())]
        );
    }
}
