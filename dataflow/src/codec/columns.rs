//! Rows of Arrow columns encoded straight from the arrays: the bytes [`encode_row`] gives for
//! the same values, without a [`ScalarValue`] per value. This is the per-row path of group,
//! join and multiset keys, so the common column types (integers, floats, text, timestamps,
//! dates, booleans) are read from their typed arrays; any other type goes through
//! `ScalarValue` as before.
//!
//! [`encode_row`]: super::encode_row

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, StringArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::ScalarValue;

use super::{encode_value, normalize_f64, tag};
use crate::DataflowResult;

/// One column, read by its type.
enum Column<'a> {
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    Float64(&'a PrimitiveArray<Float64Type>),
    Date32(&'a PrimitiveArray<Date32Type>),
    Bool(&'a BooleanArray),
    Utf8(&'a StringArray),
    /// A timestamp of any unit: its tag, its zone as encoded, and its values.
    Timestamp {
        tag: u8,
        zone: Option<&'a str>,
        values: &'a [i64],
        array: &'a dyn Array,
    },
    Other(&'a ArrayRef),
}

/// Encodes rows of a set of columns, one row at a time into a caller's buffer.
pub struct RowEncoder<'a> {
    columns: Vec<Column<'a>>,
}

fn timestamps<T: ArrowPrimitiveType<Native = i64>>(array: &dyn Array) -> &[i64] {
    array.as_primitive::<T>().values()
}

impl<'a> RowEncoder<'a> {
    pub fn new(columns: &'a [ArrayRef]) -> Self {
        let columns = columns
            .iter()
            .map(|c| match c.data_type() {
                DataType::Int16 => Column::Int16(c.as_primitive()),
                DataType::Int32 => Column::Int32(c.as_primitive()),
                DataType::Int64 => Column::Int64(c.as_primitive()),
                DataType::Float64 => Column::Float64(c.as_primitive()),
                DataType::Date32 => Column::Date32(c.as_primitive()),
                DataType::Boolean => Column::Bool(c.as_boolean()),
                DataType::Utf8 => Column::Utf8(c.as_string()),
                DataType::Timestamp(unit, zone) => {
                    let (tag, values) = match unit {
                        TimeUnit::Second => (tag::TS_S, timestamps::<TimestampSecondType>(c)),
                        TimeUnit::Millisecond => {
                            (tag::TS_MS, timestamps::<TimestampMillisecondType>(c))
                        }
                        TimeUnit::Microsecond => {
                            (tag::TS_US, timestamps::<TimestampMicrosecondType>(c))
                        }
                        TimeUnit::Nanosecond => {
                            (tag::TS_NS, timestamps::<TimestampNanosecondType>(c))
                        }
                    };
                    match zone.as_deref() {
                        // The codec keeps a zone's name in one length byte.
                        Some(z) if z.len() >= 0xFF => Column::Other(c),
                        zone => Column::Timestamp {
                            tag,
                            zone,
                            values,
                            array: c.as_ref(),
                        },
                    }
                }
                _ => Column::Other(c),
            })
            .collect();
        Self { columns }
    }

    /// Appends the encoding of row `i`.
    pub fn encode(&self, i: usize, out: &mut Vec<u8>) -> DataflowResult<()> {
        for column in &self.columns {
            match column {
                Column::Int16(a) => fixed(out, tag::INT16, a.is_valid(i), || a.value(i)),
                Column::Int32(a) => fixed(out, tag::INT32, a.is_valid(i), || a.value(i)),
                Column::Int64(a) => fixed(out, tag::INT64, a.is_valid(i), || a.value(i)),
                Column::Date32(a) => fixed(out, tag::DATE32, a.is_valid(i), || a.value(i)),
                Column::Float64(a) => fixed(out, tag::FLOAT64, a.is_valid(i), || {
                    normalize_f64(a.value(i)).unwrap_or(f64::NAN)
                }),
                Column::Bool(a) => {
                    out.push(tag::BOOL);
                    if a.is_valid(i) {
                        out.push(1);
                        out.push(a.value(i) as u8);
                    } else {
                        out.push(0);
                    }
                }
                Column::Utf8(a) => {
                    out.push(tag::UTF8);
                    if a.is_valid(i) {
                        let s = a.value(i).as_bytes();
                        out.push(1);
                        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                        out.extend_from_slice(s);
                    } else {
                        out.push(0);
                    }
                }
                Column::Timestamp {
                    tag,
                    zone,
                    values,
                    array,
                } => {
                    out.push(*tag);
                    match zone {
                        None => out.push(0xFF),
                        Some(z) => {
                            out.push(z.len() as u8);
                            out.extend_from_slice(z.as_bytes());
                        }
                    }
                    if array.is_valid(i) {
                        out.push(1);
                        out.extend_from_slice(&values[i].to_le_bytes());
                    } else {
                        out.push(0);
                    }
                }
                Column::Other(a) => encode_value(&ScalarValue::try_from_array(a, i)?, out)?,
            }
        }
        Ok(())
    }
}

/// A fixed-size value: its tag, a presence byte and its little-endian bytes.
fn fixed<const N: usize, T: ToLe<N>>(out: &mut Vec<u8>, tag: u8, valid: bool, v: impl Fn() -> T) {
    out.push(tag);
    if valid {
        out.push(1);
        out.extend_from_slice(&v().to_le());
    } else {
        out.push(0);
    }
}

/// Little-endian bytes of a fixed-size value.
trait ToLe<const N: usize> {
    fn to_le(self) -> [u8; N];
}

macro_rules! to_le {
    ($($t:ty => $n:literal),*) => {
        $(impl ToLe<$n> for $t {
            fn to_le(self) -> [u8; $n] {
                self.to_le_bytes()
            }
        })*
    };
}

to_le!(i16 => 2, i32 => 4, i64 => 8, f64 => 8);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray, TimestampSecondArray,
    };
    use arrow::datatypes::IntervalMonthDayNano;

    use super::*;
    use crate::codec::{encode_row, row_values};

    #[test]
    fn rows_encode_as_their_values_do() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int16Array::from(vec![Some(-3), None, Some(7)])),
            Arc::new(Int32Array::from(vec![None, Some(i32::MIN), Some(0)])),
            Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-1), None])),
            Arc::new(Float64Array::from(vec![Some(-0.0), Some(f64::NAN), None])),
            Arc::new(Date32Array::from(vec![Some(19_000), None, Some(-1)])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(5),
                None,
                Some(-5),
            ])),
            Arc::new(
                TimestampSecondArray::from(vec![Some(1), Some(2), None]).with_timezone("+00:00"),
            ),
            Arc::new(arrow::array::IntervalMonthDayNanoArray::from(vec![
                Some(IntervalMonthDayNano::new(1, 2, 3)),
                None,
                Some(IntervalMonthDayNano::new(0, 0, 0)),
            ])),
        ];
        let encoder = RowEncoder::new(&columns);
        for i in 0..3 {
            let mut fast = Vec::new();
            encoder.encode(i, &mut fast).unwrap();
            let slow = encode_row(&row_values(&columns, i).unwrap()).unwrap();
            assert_eq!(fast, slow, "row {i}");
        }
    }
}
