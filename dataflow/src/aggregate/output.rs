//! An aggregate's finished value in an output row, and the output columns built from them.
//!
//! Counts, integer and float sums, and averages of integers and floats finish to a typed
//! value: comparing a group's row before and after, and building the output column, then
//! take no `ScalarValue` per group. Every other aggregate finishes to its `ScalarValue`
//! (see [`finish`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use super::accumulator::{Acc, Num, bigint, finish};
use super::{AggKind, AggSpec};
use crate::DataflowResult;
use crate::codec;

/// One aggregate's value in an output row.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// A BIGINT (NULL: a sum of no values).
    Int(Option<i64>),
    /// A DOUBLE PRECISION.
    Float(Option<f64>),
    Scalar(ScalarValue),
}

impl PartialEq for Value {
    /// Equal as stored: floats by their bits (as `ScalarValue` compares them).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.map(f64::to_bits) == b.map(f64::to_bits),
            (Value::Scalar(a), Value::Scalar(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    fn to_scalar(&self) -> ScalarValue {
        match self {
            Value::Int(v) => ScalarValue::Int64(*v),
            Value::Float(v) => ScalarValue::Float64(*v),
            Value::Scalar(v) => v.clone(),
        }
    }
}

/// The value of an accumulator: [`finish`]'s, typed where it is a BIGINT or a DOUBLE
/// PRECISION made by a count, a sum or an average.
pub(super) fn finish_value(
    spec: &AggSpec,
    acc: &Acc,
    arg_type: Option<&DataType>,
) -> DataflowResult<Value> {
    let output = &spec.output_type;
    Ok(match (spec.kind, acc, output) {
        (AggKind::Count, Acc::Count(n), DataType::Int64) => Value::Int(Some(*n)),
        (AggKind::Sum, Acc::Sum { n: 0, .. }, DataType::Int64) => Value::Int(None),
        (AggKind::Sum | AggKind::Avg, Acc::Sum { n: 0, .. }, DataType::Float64) => {
            Value::Float(None)
        }
        (
            AggKind::Sum,
            Acc::Sum {
                sum: Num::Int(s), ..
            },
            DataType::Int64,
        ) => Value::Int(Some(bigint(*s)?)),
        (
            AggKind::Sum,
            Acc::Sum {
                sum: Num::Float(s), ..
            },
            DataType::Float64,
        ) => Value::Float(Some(*s)),
        (
            AggKind::Avg,
            Acc::Sum {
                sum: Num::Int(s),
                n,
            },
            DataType::Float64,
        ) => Value::Float(Some(*s as f64 / *n as f64)),
        (
            AggKind::Avg,
            Acc::Sum {
                sum: Num::Float(s),
                n,
            },
            DataType::Float64,
        ) => Value::Float(Some(*s / *n as f64)),
        _ => Value::Scalar(finish(spec, acc, arg_type)?),
    })
}

/// The column of type `data_type` holding every `width`-th value of `values` from the
/// `j`-th on.
pub(super) fn value_column(
    data_type: &DataType,
    values: &[Value],
    j: usize,
    width: usize,
) -> DataflowResult<ArrayRef> {
    let column = || values.iter().skip(j).step_by(width);
    let ints = || {
        column()
            .map(|v| match v {
                Value::Int(v) => Some(*v),
                _ => None,
            })
            .collect::<Option<Int64Array>>()
    };
    let floats = || {
        column()
            .map(|v| match v {
                Value::Float(v) => Some(*v),
                _ => None,
            })
            .collect::<Option<Float64Array>>()
    };
    let typed: Option<ArrayRef> = match data_type {
        DataType::Int64 => ints().map(|a| Arc::new(a) as ArrayRef),
        DataType::Float64 => floats().map(|a| Arc::new(a) as ArrayRef),
        _ => None,
    };
    if let Some(array) = typed {
        return Ok(array);
    }
    let scalars = column()
        .map(|v| match v {
            Value::Scalar(v) => Some(v),
            _ => None,
        })
        .collect::<Option<Vec<&ScalarValue>>>();
    match scalars {
        Some(scalars) => codec::column_from_values(data_type, scalars.into_iter()),
        // Typed values of another type, or mixed: as scalars.
        None => {
            let scalars: Vec<ScalarValue> = column().map(Value::to_scalar).collect();
            codec::column_from_values(data_type, scalars.iter())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::Array;

    use super::*;
    use crate::aggregate::accumulator::Ordered;

    fn spec(kind: AggKind, output_type: DataType) -> AggSpec {
        AggSpec {
            kind,
            arg: None,
            distinct: false,
            filter: None,
            output_type,
            separator: String::new(),
            order: None,
        }
    }

    /// Every typed value is the `ScalarValue` that `finish` makes, and a column of them the
    /// column made from those.
    #[test]
    fn typed_values_are_what_finish_makes() {
        let int = Some(&DataType::Int64);
        let float = Some(&DataType::Float64);
        let sum = |sum, n| Acc::Sum { sum, n };
        let (i64t, f64t) = (DataType::Int64, DataType::Float64);
        let cases = [
            (spec(AggKind::Count, i64t.clone()), Acc::Count(0), None),
            (spec(AggKind::Count, i64t.clone()), Acc::Count(-3), None),
            (spec(AggKind::Sum, i64t.clone()), sum(Num::Int(0), 0), int),
            (spec(AggKind::Sum, i64t.clone()), sum(Num::Int(-7), 2), int),
            (
                spec(AggKind::Sum, f64t.clone()),
                sum(Num::Float(0.0), 0),
                float,
            ),
            (
                spec(AggKind::Sum, f64t.clone()),
                sum(Num::Float(-0.0), 1),
                float,
            ),
            (
                spec(AggKind::Sum, f64t.clone()),
                sum(Num::Float(f64::NAN), 1),
                float,
            ),
            (spec(AggKind::Avg, f64t.clone()), sum(Num::Int(0), 0), int),
            (spec(AggKind::Avg, f64t.clone()), sum(Num::Int(7), 2), int),
            (
                spec(AggKind::Avg, f64t.clone()),
                sum(Num::Float(1.5), 3),
                float,
            ),
            (
                spec(AggKind::Avg, f64t.clone()),
                sum(Num::Float(0.0), 0),
                float,
            ),
            // Not typed: a decimal sum, a minimum, a count of distinct values.
            (
                spec(AggKind::Sum, DataType::Decimal128(20, 2)),
                sum(Num::Decimal(1234), 1),
                Some(&DataType::Decimal128(10, 2)),
            ),
            (
                spec(AggKind::Min, i64t.clone()),
                Acc::Values(BTreeMap::from([(Ordered(ScalarValue::Int64(Some(4))), 2)])),
                int,
            ),
            (
                spec(AggKind::Count, i64t.clone()),
                Acc::Values(BTreeMap::from([(Ordered(ScalarValue::Int64(Some(4))), 2)])),
                int,
            ),
        ];
        let mut typed = 0;
        for (spec, acc, arg_type) in &cases {
            let value = finish_value(spec, acc, *arg_type).unwrap();
            let scalar = finish(spec, acc, *arg_type).unwrap();
            typed += !matches!(value, Value::Scalar(_)) as usize;
            assert_eq!(value.to_scalar(), scalar, "{:?} {acc:?}", spec.kind);
            // A column of the value twice, beside another aggregate's values.
            let values = [value.clone(), Value::Int(Some(9)), value, Value::Int(None)];
            let column = value_column(&spec.output_type, &values, 0, 2).unwrap();
            let expected =
                codec::column_from_values(&spec.output_type, [&scalar, &scalar].into_iter())
                    .unwrap();
            assert_eq!(column.data_type(), &spec.output_type);
            assert_eq!(column.to_data(), expected.to_data());
        }
        assert_eq!(typed, 11);
        // The same value twice is no change, NaN included; NULL and zero differ.
        assert_eq!(Value::Float(Some(f64::NAN)), Value::Float(Some(f64::NAN)));
        assert_ne!(Value::Float(None), Value::Float(Some(0.0)));
        assert_ne!(Value::Int(None), Value::Int(Some(0)));

        let overflow = sum(Num::Int(i64::MAX as i128 + 1), 2);
        assert!(finish_value(&spec(AggKind::Sum, i64t), &overflow, int).is_err());
    }
}
