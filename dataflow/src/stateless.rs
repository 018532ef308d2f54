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
        let columns = self
            .exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| {
                let array = e.evaluate(&input.batch)?.into_array(n)?;
                if array.data_type() != f.data_type() {
                    Ok(cast(&array, f.data_type())?)
                } else {
                    Ok(array)
                }
            })
            .collect::<DataflowResult<Vec<_>>>()?;
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
