//! Projection, filter and union: operators without state. Each row keeps its weight.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;

use crate::operator::{EpochContext, Explain, Operator};
use crate::{DataflowError, DataflowResult, Delta};

/// Computes output columns from expressions over the input row.
pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Self { exprs, schema }
    }

    /// The output columns of the rows of `batch`.
    fn evaluate(&self, batch: &RecordBatch) -> DataflowResult<Vec<arrow::array::ArrayRef>> {
        self.exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| {
                let array = e.evaluate(batch)?.into_array(batch.num_rows())?;
                if array.data_type() != f.data_type() {
                    Ok(cast(&array, f.data_type())?)
                } else {
                    Ok(array)
                }
            })
            .collect()
    }
}

impl Operator for Project {
    fn explain(&self) -> Explain {
        let columns: Vec<String> = self
            .exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| format!("{e} AS {}", f.name()))
            .collect();
        Explain::stateless(format!("Project {}", columns.join(", ")))
    }

    fn columns_read(&self) -> Option<Vec<usize>> {
        self.exprs
            .iter()
            .map(|e| {
                e.downcast_ref::<datafusion::physical_expr::expressions::Column>()
                    .map(|c| c.index())
            })
            .collect()
    }

    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        let n = input.len();
        // A large change is evaluated in shares on every core, and put together again.
        let shares = crate::shares::shares(n);
        let parts = crate::shares::map(&shares, |rows| {
            let batch = match rows.len() == n {
                true => input.batch.clone(),
                false => input.batch.slice(rows.start, rows.len()),
            };
            self.evaluate(&batch)
        });
        let mut parts = parts.into_iter().collect::<DataflowResult<Vec<_>>>()?;
        let columns = match parts.len() {
            1 => parts.pop().expect("one part"),
            _ => (0..self.exprs.len())
                .map(|c| {
                    let pieces: Vec<&dyn arrow::array::Array> =
                        parts.iter().map(|p| p[c].as_ref()).collect();
                    arrow::compute::concat(&pieces)
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Delta::new(batch, input.weights.clone()))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Keeps the rows for which a predicate is true (NULL drops the row, as in SQL).
pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        Self { predicate, schema }
    }
}

impl Operator for Filter {
    fn explain(&self) -> Explain {
        Explain::stateless(format!("Filter {}", self.predicate))
    }

    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        if input.is_empty() {
            return Ok(Delta::empty(self.schema.clone()));
        }
        let mask = self
            .predicate
            .evaluate(&input.batch)?
            .into_array(input.len())?;
        if mask.data_type() != &DataType::Boolean {
            return Err(DataflowError::Internal(format!(
                "filter predicate evaluated to {}",
                mask.data_type()
            )));
        }
        input.filter(mask.as_boolean())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// `UNION ALL`: every input's changes, as rows of the output schema.
pub struct Union {
    schema: SchemaRef,
}

impl Union {
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

impl Operator for Union {
    fn explain(&self) -> Explain {
        Explain::stateless("Union")
    }

    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let parts = inputs
            .iter()
            .map(|d| {
                let columns = d
                    .batch
                    .columns()
                    .iter()
                    .zip(self.schema.fields())
                    .map(|(c, f)| Ok(cast(c, f.data_type())?))
                    .collect::<DataflowResult<Vec<_>>>()?;
                let batch = RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    columns,
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(d.len())),
                )?;
                Ok(Delta::new(batch, d.weights.clone()))
            })
            .collect::<DataflowResult<Vec<_>>>()?;
        Delta::concat(&self.schema, &parts)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ApplyNow, delta, rows};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator as BinOp;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    #[test]
    fn a_large_change_is_projected_in_shares_and_whole_again() {
        use arrow::array::Int64Array;
        let n = 300_000;
        let schema = crate::testing::schema(&["v:Int64"]);
        let values = Int64Array::from_iter_values(0..n);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let weights: Vec<i64> = (0..n).map(|i| if i % 3 == 0 { -1 } else { 1 }).collect();
        let input = Delta::new(batch, weights.clone());
        let doubled: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("v", 0)),
            BinOp::Multiply,
            Arc::new(Literal::new(ScalarValue::Int64(Some(2)))),
        ));
        let out_schema = crate::testing::schema(&["d:Int64"]);
        let out = Project::new(vec![doubled], out_schema)
            .apply_now(&[input])
            .unwrap();
        let expected: Vec<i64> = (0..n).map(|v| v * 2).collect();
        assert_eq!(
            out.batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values(),
            &expected[..]
        );
        assert_eq!(&out.weights[..], &weights[..]);
    }

    #[test]
    fn filter_keeps_weights_and_drops_nulls() {
        let input = delta(
            &["k:Int64", "v:Int64"],
            &[(1, "1|5"), (-1, "2|1"), (2, "3|NULL")],
        );
        let pred = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("v", 1)),
            BinOp::Gt,
            Arc::new(Literal::new(ScalarValue::Int64(Some(2)))),
        ));
        let mut f = Filter::new(pred, input.schema());
        let out = f.apply_now(&[input]).unwrap();
        assert_eq!(rows(&out), vec![(1, "1|5".to_string())]);
    }

    #[test]
    fn project_computes_and_casts() {
        let input = delta(&["k:Int64", "v:Int64"], &[(1, "1|5"), (-1, "2|1")]);
        let out_schema = crate::testing::schema(&["s:Int64"]);
        let sum = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("k", 0)),
            BinOp::Plus,
            Arc::new(Column::new("v", 1)),
        ));
        let mut p = Project::new(vec![sum], out_schema);
        let out = p.apply_now(&[input]).unwrap();
        assert_eq!(
            rows(&out),
            vec![(1, "6".to_string()), (-1, "3".to_string())]
        );
    }

    #[test]
    fn union_concatenates() {
        let a = delta(&["x:Int64"], &[(1, "1")]);
        let b = delta(&["y:Int32"], &[(-1, "2")]);
        let mut u = Union::new(a.schema());
        let out = u.apply_now(&[a, b]).unwrap();
        assert_eq!(
            rows(&out),
            vec![(1, "1".to_string()), (-1, "2".to_string())]
        );
    }
}
