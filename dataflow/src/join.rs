//! Incremental inner equi-join.
//!
//! State: each side's rows indexed by join key (a multiset per key). For an epoch with
//! changes `dL` and `dR` the output change is `dL ⋈ R + (L + dL) ⋈ dR`: left changes meet the
//! right side as it was, then right changes meet the left side as it now is. A residual
//! (non-equi) condition filters the joined rows. Rows whose key has a NULL never match
//! (SQL equality), unless the join compares keys with `IS NOT DISTINCT FROM`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use crate::codec::{self, Decoder, decode_row, encode_row};
use crate::operator::{EpochContext, Operator, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

/// The rows of one side that share a join key: encoded row -> (values, multiplicity).
type Bucket = FastMap<Vec<u8>, (Vec<ScalarValue>, i64)>;

/// A row's encoded join key (None when a NULL keeps it from matching) and its values.
type KeyedRow = (Option<Vec<u8>>, Vec<ScalarValue>);

#[derive(Default)]
struct Side {
    index: FastMap<Vec<u8>, Bucket>,
    /// (key, row) pairs changed since the last checkpoint.
    dirty: FastSet<(Vec<u8>, Vec<u8>)>,
}

impl Side {
    fn add(&mut self, key: &[u8], row: Vec<ScalarValue>, w: i64) -> DataflowResult<()> {
        let row_bytes = encode_row(&row)?;
        let bucket = self.index.entry(key.to_vec()).or_default();
        let entry = bucket.entry(row_bytes.clone()).or_insert((row, 0));
        entry.1 += w;
        if entry.1 < 0 {
            return Err(DataflowError::Internal(
                "join side holds a negative row".into(),
            ));
        }
        if entry.1 == 0 {
            bucket.remove(&row_bytes);
            if bucket.is_empty() {
                self.index.remove(key);
            }
        }
        self.dirty.insert((key.to_vec(), row_bytes));
        Ok(())
    }

    fn checkpoint(&mut self, tag: u8, state: &mut StateWriter<'_>) {
        for (key, row) in self.dirty.drain() {
            let mut k = Vec::with_capacity(5 + key.len() + row.len());
            k.push(tag);
            k.extend((key.len() as u32).to_be_bytes());
            k.extend_from_slice(&key);
            k.extend_from_slice(&row);
            match self.index.get(&key).and_then(|b| b.get(&row)) {
                Some((_, w)) => state.put(&k, w.to_le_bytes().to_vec()),
                None => state.delete(&k),
            }
        }
    }

    fn rows(&self) -> usize {
        self.index.values().map(|b| b.len()).sum()
    }
}

/// Incremental inner join on equal keys, with an optional residual condition.
pub struct Join {
    left_keys: Vec<Arc<dyn PhysicalExpr>>,
    right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Evaluated over the joined row (the output schema).
    residual: Option<Arc<dyn PhysicalExpr>>,
    nulls_equal: bool,
    left_width: usize,
    right_width: usize,
    schema: SchemaRef,
    left: Side,
    right: Side,
}

impl Join {
    pub fn new(
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        residual: Option<Arc<dyn PhysicalExpr>>,
        nulls_equal: bool,
        left_width: usize,
        schema: SchemaRef,
    ) -> Self {
        let right_width = schema.fields().len() - left_width;
        Self {
            left_keys,
            right_keys,
            residual,
            nulls_equal,
            left_width,
            right_width,
            schema,
            left: Side::default(),
            right: Side::default(),
        }
    }

    /// Each row's encoded key (None when a NULL keeps it from matching) and values.
    fn keyed_rows(
        &self,
        exprs: &[Arc<dyn PhysicalExpr>],
        d: &Delta,
    ) -> DataflowResult<Vec<KeyedRow>> {
        let keys: Vec<ArrayRef> = exprs
            .iter()
            .map(|e| Ok(e.evaluate(&d.batch)?.into_array(d.len())?))
            .collect::<DataflowResult<_>>()?;
        (0..d.len())
            .map(|i| {
                let k = codec::row_values(&keys, i)?;
                let key = if !self.nulls_equal && k.iter().any(|v| v.is_null()) {
                    None
                } else {
                    Some(encode_row(&k)?)
                };
                Ok((key, codec::row_values(d.batch.columns(), i)?))
            })
            .collect()
    }
}

impl Operator for Join {
    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let (dl, dr) = (&inputs[0], &inputs[1]);
        let mut out_rows: Vec<Vec<ScalarValue>> = Vec::new();
        let mut out_weights = Vec::new();

        let left_rows = self.keyed_rows(&self.left_keys, dl)?;
        for (i, (key, row)) in left_rows.into_iter().enumerate() {
            let w = dl.weights[i];
            let Some(key) = key else { continue };
            if let Some(bucket) = self.right.index.get(&key) {
                for (r, rw) in bucket.values() {
                    let mut joined = row.clone();
                    joined.extend(r.iter().cloned());
                    out_rows.push(joined);
                    out_weights.push(w * rw);
                }
            }
            self.left.add(&key, row, w)?;
        }

        let right_rows = self.keyed_rows(&self.right_keys, dr)?;
        for (i, (key, row)) in right_rows.into_iter().enumerate() {
            let w = dr.weights[i];
            let Some(key) = key else { continue };
            if let Some(bucket) = self.left.index.get(&key) {
                for (l, lw) in bucket.values() {
                    let mut joined = l.clone();
                    joined.extend(row.iter().cloned());
                    out_rows.push(joined);
                    out_weights.push(w * lw);
                }
            }
            self.right.add(&key, row, w)?;
        }

        let batch = codec::batch_from_rows(&self.schema, &out_rows)?;
        let joined = Delta::new(batch, out_weights);
        match &self.residual {
            Some(cond) if !joined.is_empty() => {
                let mask = cond.evaluate(&joined.batch)?.into_array(joined.len())?;
                joined.filter(mask.as_boolean())
            }
            _ => Ok(joined),
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        self.left.checkpoint(0, state);
        self.right.checkpoint(1, state);
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        for entry in state {
            let (k, v) = entry?;
            let corrupt = || DataflowError::Corrupt("join state key".into());
            let (&tag, rest) = k.split_first().ok_or_else(corrupt)?;
            let len_bytes: [u8; 4] = rest
                .get(..4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let key = rest.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            let row_bytes = rest[4 + len..].to_vec();
            let (side, width) = match tag {
                0 => (&mut self.left, self.left_width),
                1 => (&mut self.right, self.right_width),
                _ => return Err(corrupt()),
            };
            let row = decode_row(&row_bytes, width)?;
            let w = Decoder::new(&v).i64()?;
            side.index
                .entry(key)
                .or_default()
                .insert(row_bytes, (row, w));
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.left.rows() + self.right.rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ApplyNow, delta, schema, sorted};
    use datafusion::physical_expr::expressions::Column;

    fn join() -> Join {
        let out = schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]);
        Join::new(
            vec![Arc::new(Column::new("uid", 0))],
            vec![Arc::new(Column::new("id", 0))],
            None,
            false,
            2,
            out,
        )
    }

    const CLICKS: &[&str] = &["uid:Int64", "url:Utf8"];
    const USERS: &[&str] = &["id:Int64", "plan:Utf8"];

    fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
        rows.iter().map(|(w, r)| (*w, r.to_string())).collect()
    }

    #[test]
    fn both_sides_changing_in_one_epoch_join_once() {
        let mut j = join();
        let out = j
            .apply_now(&[
                delta(CLICKS, &[(1, "1|/a"), (1, "2|/b")]),
                delta(USERS, &[(1, "1|free")]),
            ])
            .unwrap();
        assert_eq!(sorted(&out), s(&[(1, "1|/a|1|free")]));
        let out = j
            .apply_now(&[delta(CLICKS, &[(1, "1|/c")]), delta(USERS, &[])])
            .unwrap();
        assert_eq!(sorted(&out), s(&[(1, "1|/c|1|free")]));
    }

    #[test]
    fn an_update_on_one_side_retracts_and_reinserts() {
        let mut j = join();
        j.apply_now(&[
            delta(CLICKS, &[(1, "1|/a"), (1, "1|/b")]),
            delta(USERS, &[(1, "1|free")]),
        ])
        .unwrap();
        let out = j
            .apply_now(&[
                delta(CLICKS, &[]),
                delta(USERS, &[(-1, "1|free"), (1, "1|pro")]),
            ])
            .unwrap();
        assert_eq!(
            sorted(&out),
            s(&[
                (-1, "1|/a|1|free"),
                (1, "1|/a|1|pro"),
                (-1, "1|/b|1|free"),
                (1, "1|/b|1|pro")
            ])
        );
    }

    #[test]
    fn null_keys_never_match() {
        let mut j = join();
        let out = j
            .apply_now(&[
                delta(CLICKS, &[(1, "NULL|/a")]),
                delta(USERS, &[(1, "NULL|x")]),
            ])
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(j.state_rows(), 0);
    }
}
