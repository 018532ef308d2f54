//! `tumble_start(ts, size)`: the start of the window of `size` (a fixed length) that holds
//! the timestamp `ts`, windows aligned to the Unix epoch. It is what
//! `date_bin(size, ts, TIMESTAMP '1970-01-01 00:00:00')` answers, computed on the timestamps'
//! integers in their own unit: TUMBLE and HOP windows compute it for every row (HOP once per
//! window a row falls into), and `date_bin` works in nanoseconds with a stride that may
//! hold months, row by row.

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::interval_join::fixed_micros;

/// The function's name in SQL.
pub const NAME: &str = "tumble_start";

/// [`NAME`] as a DataFusion function.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TumbleStart {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TumbleStart {
    signature: Signature,
}

impl ScalarUDFImpl for TumbleStart {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            t @ DataType::Timestamp(..) => Ok(t.clone()),
            DataType::Null => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
            other => plan_err!("{NAME} takes a timestamp, not {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [ts, size] = args.args.as_slice() else {
            return exec_err!("{NAME} takes a timestamp and a window size");
        };
        let micros = match size {
            ColumnarValue::Scalar(v) => fixed_micros(v).filter(|m| *m > 0),
            ColumnarValue::Array(_) => None,
        };
        let Some(micros) = micros else {
            return exec_err!("{NAME} needs a constant positive size of days and time");
        };
        let rows = match ts {
            ColumnarValue::Array(a) => a.clone(),
            ColumnarValue::Scalar(v) => v.to_array()?,
        };
        let starts = match rows.data_type() {
            DataType::Timestamp(unit, _) => {
                let Some(stride) = stride_in(*unit, micros) else {
                    return exec_err!(
                        "{NAME}: a size of {micros} microseconds is not whole in the timestamps' unit"
                    );
                };
                match unit {
                    TimeUnit::Second => bin::<TimestampSecondType>(&rows, stride)?,
                    TimeUnit::Millisecond => bin::<TimestampMillisecondType>(&rows, stride)?,
                    TimeUnit::Microsecond => bin::<TimestampMicrosecondType>(&rows, stride)?,
                    TimeUnit::Nanosecond => bin::<TimestampNanosecondType>(&rows, stride)?,
                }
            }
            DataType::Null => {
                ScalarValue::TimestampMicrosecond(None, None).to_array_of_size(rows.len())?
            }
            other => return exec_err!("{NAME} takes a timestamp, not {other}"),
        };
        Ok(match ts {
            ColumnarValue::Array(_) => ColumnarValue::Array(starts),
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&starts, 0)?)
            }
        })
    }
}

/// A stride of `micros` microseconds in `unit`, if it is whole there.
fn stride_in(unit: TimeUnit, micros: i64) -> Option<i64> {
    let whole = |per: i64| (micros % per == 0).then_some(micros / per);
    match unit {
        TimeUnit::Second => whole(1_000_000),
        TimeUnit::Millisecond => whole(1_000),
        TimeUnit::Microsecond => Some(micros),
        TimeUnit::Nanosecond => micros.checked_mul(1_000),
    }
}

/// Each timestamp of `rows` down to the start of its window of `stride` (in their unit).
fn bin<T: ArrowTimestampType>(rows: &ArrayRef, stride: i64) -> Result<ArrayRef> {
    let rows: &PrimitiveArray<T> = rows.as_primitive();
    let starts: PrimitiveArray<T> = rows.try_unary(|t| {
        t.checked_sub(t.rem_euclid(stride))
            .ok_or_else(|| ArrowError::ComputeError(format!("{NAME}: timestamp out of range")))
    })?;
    Ok(std::sync::Arc::new(starts.with_timezone_opt(rows.timezone())) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn call(ts: ColumnarValue, size: ScalarValue) -> Result<ColumnarValue> {
        let ts_type = ts.data_type();
        udf().invoke_with_args(ScalarFunctionArgs {
            number_rows: match &ts {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            },
            arg_fields: vec![
                Arc::new(Field::new("ts", ts_type.clone(), true)),
                Arc::new(Field::new("size", size.data_type(), false)),
            ],
            return_field: Arc::new(Field::new(NAME, ts_type, true)),
            args: vec![ts, ColumnarValue::Scalar(size)],
            config_options: Arc::default(),
        })
    }

    #[test]
    fn starts_are_floors_aligned_to_the_epoch_before_it_too() {
        let ten_seconds = ScalarValue::DurationMicrosecond(Some(10_000_000));
        let rows = TimestampMicrosecondArray::from(vec![
            Some(0),
            Some(9_999_999),
            Some(10_000_000),
            Some(-1),
            Some(-10_000_000),
            Some(-10_000_001),
            None,
        ]);
        let out = call(ColumnarValue::Array(Arc::new(rows)), ten_seconds).unwrap();
        let ColumnarValue::Array(out) = out else {
            panic!("an array in, an array out")
        };
        let got: Vec<Option<i64>> = out
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect();
        assert_eq!(
            got,
            vec![
                Some(0),
                Some(0),
                Some(10_000_000),
                Some(-10_000_000),
                Some(-10_000_000),
                Some(-20_000_000),
                None
            ]
        );
    }

    #[test]
    fn sizes_must_be_fixed_positive_and_whole_in_the_unit() {
        let ts = || ColumnarValue::Scalar(ScalarValue::TimestampSecond(Some(125), None));
        let minute = ScalarValue::IntervalMonthDayNano(Some(
            arrow::datatypes::IntervalMonthDayNano::new(0, 0, 60_000_000_000),
        ));
        let Ok(ColumnarValue::Scalar(v)) = call(ts(), minute) else {
            panic!("a scalar in, a scalar out")
        };
        assert_eq!(v, ScalarValue::TimestampSecond(Some(120), None));
        let month = ScalarValue::IntervalMonthDayNano(Some(
            arrow::datatypes::IntervalMonthDayNano::new(1, 0, 0),
        ));
        assert!(call(ts(), month).is_err());
        assert!(call(ts(), ScalarValue::DurationMicrosecond(Some(0))).is_err());
        assert!(call(ts(), ScalarValue::DurationMicrosecond(Some(1_500_000))).is_err());
    }
}
