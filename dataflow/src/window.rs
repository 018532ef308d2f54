//! Event-time windows that a stream's watermark closes.
//!
//! A window is closed once the watermark of the stream it windows reaches its end: every later
//! row of that window would be late, and late rows are dropped at the stream. [`Expiry`] says
//! where a row's window end is; an aggregate uses it to free closed groups, and [`CloseGate`]
//! uses it to hold a view's rows back until their window closes (EMIT ON WINDOW CLOSE).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::common::ScalarValue;

use crate::codec::{self, Decoder, decode_row, encode_row};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

/// Where a row's window ends: `column + offset_micros`, closed by `stream`'s watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub stream: u64,
    pub column: usize,
    pub offset_micros: i64,
}

impl Expiry {
    /// The time at which the window of a row (its values) closes, if it has one.
    pub fn closes_at(&self, values: &[ScalarValue]) -> Option<i64> {
        self.closes_at_value(values.get(self.column)?)
    }

    /// The time at which a window whose `column` holds `value` closes.
    pub fn closes_at_value(&self, value: &ScalarValue) -> Option<i64> {
        micros(value).map(|t| t.saturating_add(self.offset_micros))
    }
}

/// A timestamp value in microseconds since the Unix epoch.
pub fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMicrosecond(t, _) => *t,
        ScalarValue::TimestampNanosecond(t, _) => t.map(|t| t.div_euclid(1_000)),
        ScalarValue::TimestampMillisecond(t, _) => t.map(|t| t.saturating_mul(1_000)),
        ScalarValue::TimestampSecond(t, _) => t.map(|t| t.saturating_mul(1_000_000)),
        _ => None,
    }
}

/// [`micros`] of row `i` of a timestamp column, read straight from the array in the usual
/// unit.
pub fn micros_at(column: &dyn Array, i: usize) -> DataflowResult<Option<i64>> {
    if let Some(t) = column.as_primitive_opt::<TimestampMicrosecondType>() {
        return Ok(t.is_valid(i).then(|| t.value(i)));
    }
    Ok(micros(&ScalarValue::try_from_array(column, i)?))
}

/// The rows of one window waiting for it to close: encoded row -> (row, net weight).
type WindowRows = FastMap<Vec<u8>, (Vec<ScalarValue>, i64)>;

/// Holds rows back until the watermark closes their window, then emits their net change
/// once; a closed window's rows never change afterwards (append mode).
pub struct CloseGate {
    expiry: Expiry,
    schema: SchemaRef,
    /// Window end -> its rows.
    pending: BTreeMap<i64, WindowRows>,
    /// State keys changed since the last checkpoint.
    dirty: FastSet<(i64, Vec<u8>)>,
}

impl CloseGate {
    pub fn new(expiry: Expiry, schema: SchemaRef) -> Self {
        Self {
            expiry,
            schema,
            pending: BTreeMap::new(),
            dirty: FastSet::default(),
        }
    }

    fn state_key(end: i64, row: &[u8]) -> Vec<u8> {
        // Flipping the sign bit makes big-endian bytes sort as the signed value.
        let mut k = ((end as u64) ^ (1 << 63)).to_be_bytes().to_vec();
        k.extend_from_slice(row);
        k
    }
}

impl Operator for CloseGate {
    fn explain(&self) -> Explain {
        Explain {
            operator: "CloseGate: rows wait for their window to close (EMIT ON WINDOW CLOSE)"
                .into(),
            state: StateBound::Bounded(
                "rows of open windows, emitted and freed when the watermark passes their end"
                    .into(),
            ),
            watermark: Some(self.expiry.stream),
        }
    }

    fn apply(&mut self, inputs: &[Delta], epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        for i in 0..input.len() {
            let values = codec::row_values(input.batch.columns(), i)?;
            let end = self.expiry.closes_at(&values).ok_or_else(|| {
                DataflowError::Internal("a row without a window end reached a close gate".into())
            })?;
            let key = encode_row(&values)?;
            let entry = self
                .pending
                .entry(end)
                .or_default()
                .entry(key.clone())
                .or_insert((values, 0));
            entry.1 += input.weights[i];
            self.dirty.insert((end, key));
        }
        let mut rows = Vec::new();
        let mut weights = Vec::new();
        if let Some(wm) = epoch.watermark(self.expiry.stream) {
            let open = match wm.checked_add(1) {
                Some(next) => self.pending.split_off(&next),
                None => BTreeMap::new(),
            };
            let closed = std::mem::replace(&mut self.pending, open);
            for (end, window) in closed {
                for (key, (row, weight)) in window {
                    self.dirty.insert((end, key));
                    if weight != 0 {
                        rows.push(row);
                        weights.push(weight);
                    }
                }
            }
        }
        let batch = codec::batch_from_rows(&self.schema, &rows)?;
        Ok(Delta::new(batch, weights))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        for (end, key) in self.dirty.drain() {
            let weight = self
                .pending
                .get(&end)
                .and_then(|w| w.get(&key))
                .map_or(0, |(_, w)| *w);
            let k = Self::state_key(end, &key);
            if weight == 0 {
                state.delete(&k);
            } else {
                state.put(&k, &weight.to_le_bytes());
            }
        }
        // Windows whose rows cancelled out leave no trace.
        self.pending.retain(|_, w| {
            w.retain(|_, (_, weight)| *weight != 0);
            !w.is_empty()
        });
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        let width = self.schema.fields().len();
        for entry in state {
            let (key, value) = entry?;
            if key.len() < 8 {
                return Err(DataflowError::Internal("short close-gate key".into()));
            }
            let end =
                (u64::from_be_bytes(key[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
            let row = key[8..].to_vec();
            let weight = Decoder::new(&value).i64()?;
            let values = decode_row(&row, width)?;
            self.pending
                .entry(end)
                .or_default()
                .insert(row, (values, weight));
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.pending.values().map(FastMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn rows(ends: &[(i64, i64, i64)]) -> Delta {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(
                    ends.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    ends.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        Delta::new(batch, ends.iter().map(|r| r.2).collect::<Vec<i64>>())
    }

    fn at(wm: i64) -> EpochContext {
        EpochContext {
            watermarks: std::collections::HashMap::from([(7, wm)]),
            replaying: false,
        }
    }

    #[test]
    fn rows_wait_for_their_window_to_close() {
        let expiry = Expiry {
            stream: 7,
            column: 0,
            offset_micros: 0,
        };
        let input = rows(&[]);
        let mut gate = CloseGate::new(expiry, input.batch.schema());
        // Window 10 fills, changes, and is still open at watermark 5.
        let out = gate
            .apply(&[rows(&[(10, 1, 1), (20, 1, 1)])], &at(5))
            .unwrap();
        assert!(out.is_empty());
        let out = gate
            .apply(&[rows(&[(10, 1, -1), (10, 2, 1)])], &at(10))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.weights, vec![1]);
        assert_eq!(
            codec::row_values(out.batch.columns(), 0).unwrap()[1],
            ScalarValue::Int64(Some(2))
        );
        assert_eq!(gate.state_rows(), 1);
    }
}
