//! Readable delta literals for operator tests: `delta(&["k:Int64", "v:Utf8"], &[(1, "1|a")])`
//! is one inserted row `(1, 'a')`; `NULL` is a null; a `Ts` column is given in seconds.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;

use crate::codec::{batch_from_rows, row_values};
use crate::operator::{EpochContext, Operator};
use crate::{DataflowResult, Delta};

/// Applies inputs in an epoch without watermarks.
pub trait ApplyNow {
    fn apply_now(&mut self, inputs: &[Delta]) -> DataflowResult<Delta>;
}

impl<T: Operator> ApplyNow for T {
    fn apply_now(&mut self, inputs: &[Delta]) -> DataflowResult<Delta> {
        self.apply(inputs, &EpochContext::default())
    }
}

pub fn schema(columns: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| {
                let (name, ty) = c.split_once(':').expect("name:Type");
                let dt = match ty {
                    "Int64" => DataType::Int64,
                    "Int32" => DataType::Int32,
                    "Float64" => DataType::Float64,
                    "Utf8" => DataType::Utf8,
                    "Boolean" => DataType::Boolean,
                    // Event times, written as whole seconds since the Unix epoch.
                    "Ts" => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                    other => panic!("unknown test type {other}"),
                };
                Field::new(name, dt, true)
            })
            .collect::<Vec<_>>(),
    ))
}

pub fn delta(columns: &[&str], rows: &[(i64, &str)]) -> Delta {
    let schema = schema(columns);
    let values: Vec<Vec<ScalarValue>> = rows
        .iter()
        .map(|(_, r)| {
            r.split('|')
                .zip(schema.fields())
                .map(|(v, f)| {
                    if v == "NULL" {
                        ScalarValue::try_new_null(f.data_type()).unwrap()
                    } else if matches!(f.data_type(), DataType::Timestamp(..)) {
                        let seconds: i64 = v.parse().expect("seconds");
                        ScalarValue::TimestampMicrosecond(Some(seconds * 1_000_000), None)
                    } else {
                        ScalarValue::try_from_string(v.to_string(), f.data_type()).unwrap()
                    }
                })
                .collect()
        })
        .collect();
    let batch = batch_from_rows(&schema, &values).unwrap();
    Delta::new(batch, rows.iter().map(|(w, _)| *w).collect::<Vec<i64>>())
}

/// The rows of a delta as `(weight, "a|b")`.
pub fn rows(d: &Delta) -> Vec<(i64, String)> {
    (0..d.len())
        .map(|i| {
            let vals = row_values(d.batch.columns(), i).unwrap();
            let text = vals
                .iter()
                .map(|v| {
                    if v.is_null() {
                        "NULL".to_string()
                    } else {
                        v.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("|");
            (d.weights[i], text)
        })
        .collect()
}

/// The rows of a delta, consolidated and sorted, for order-insensitive comparisons.
pub fn sorted(d: &Delta) -> Vec<(i64, String)> {
    let mut r = rows(&d.consolidate().unwrap());
    r.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    r
}

/// What a dataflow's checkpoint writes: each write as `new` (a put of a key it did not hold),
/// `put` or `delete`, in sorted order.
pub fn checkpoint_writes(flow: &mut crate::Dataflow) -> Vec<&'static str> {
    let mut batch = eddy_storage::WriteBatch::default();
    flow.checkpoint(1, &mut batch).unwrap();
    write_kinds(&batch)
}

/// The writes of a batch as [`checkpoint_writes`] gives them.
pub fn write_kinds(batch: &eddy_storage::WriteBatch) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = batch
        .writes()
        .map(|(_, value, new)| match (value, new) {
            (None, _) => "delete",
            (Some(_), true) => "new",
            (Some(_), false) => "put",
        })
        .collect();
    kinds.sort();
    kinds
}
