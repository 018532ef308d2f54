//! The row codec: rows of [`ScalarValue`]s to bytes and back, and Arrow batches to rows.
//!
//! The encoding is Eddy's own (not Arrow's row format, which promises no stability across
//! releases) because it is what sits on disk. Each value is a type tag, a presence byte and a
//! fixed-size or length-prefixed payload, so a row decodes without its schema. Equal values
//! encode to equal bytes (floats are normalized: `-0.0` is `0.0`, every NaN is one NaN), which
//! is what lets encoded rows serve as group, join and multiset keys.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, new_empty_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, IntervalMonthDayNano, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;

use crate::{DataflowError, DataflowResult};

mod builder;
mod columns;

pub use builder::{BatchBuilder, Part};
pub use columns::RowEncoder;

mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT8: u8 = 2;
    pub const INT16: u8 = 3;
    pub const INT32: u8 = 4;
    pub const INT64: u8 = 5;
    pub const UINT8: u8 = 6;
    pub const UINT16: u8 = 7;
    pub const UINT32: u8 = 8;
    pub const UINT64: u8 = 9;
    pub const FLOAT32: u8 = 10;
    pub const FLOAT64: u8 = 11;
    pub const DECIMAL128: u8 = 12;
    pub const UTF8: u8 = 13;
    pub const LARGE_UTF8: u8 = 14;
    pub const UTF8_VIEW: u8 = 15;
    pub const BINARY: u8 = 16;
    pub const LARGE_BINARY: u8 = 17;
    pub const BINARY_VIEW: u8 = 18;
    pub const DATE32: u8 = 19;
    pub const DATE64: u8 = 20;
    pub const TIME64_US: u8 = 21;
    pub const TIME64_NS: u8 = 22;
    pub const TS_S: u8 = 23;
    pub const TS_MS: u8 = 24;
    pub const TS_US: u8 = 25;
    pub const TS_NS: u8 = 26;
    pub const INTERVAL_MDN: u8 = 27;
    pub const DURATION_US: u8 = 28;
    pub const DURATION_NS: u8 = 29;
    pub const TIME32_MS: u8 = 30;
    pub const TIME32_S: u8 = 31;
    pub const LIST: u8 = 32;
}

/// Appends one value's encoding.
pub fn encode_value(v: &ScalarValue, out: &mut Vec<u8>) -> DataflowResult<()> {
    use ScalarValue as S;
    fn opt<T>(out: &mut Vec<u8>, t: u8, v: &Option<T>, f: impl FnOnce(&T, &mut Vec<u8>)) {
        out.push(t);
        match v {
            None => out.push(0),
            Some(x) => {
                out.push(1);
                f(x, out);
            }
        }
    }
    fn bytes(b: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    fn tz(z: &Option<Arc<str>>, out: &mut Vec<u8>) {
        match z {
            None => out.push(0xFF),
            Some(z) => {
                out.push(z.len() as u8);
                out.extend_from_slice(z.as_bytes());
            }
        }
    }
    match v {
        S::Null => out.push(tag::NULL),
        S::Boolean(x) => opt(out, tag::BOOL, x, |x, o| o.push(*x as u8)),
        S::Int8(x) => opt(out, tag::INT8, x, |x, o| o.extend(x.to_le_bytes())),
        S::Int16(x) => opt(out, tag::INT16, x, |x, o| o.extend(x.to_le_bytes())),
        S::Int32(x) => opt(out, tag::INT32, x, |x, o| o.extend(x.to_le_bytes())),
        S::Int64(x) => opt(out, tag::INT64, x, |x, o| o.extend(x.to_le_bytes())),
        S::UInt8(x) => opt(out, tag::UINT8, x, |x, o| o.extend(x.to_le_bytes())),
        S::UInt16(x) => opt(out, tag::UINT16, x, |x, o| o.extend(x.to_le_bytes())),
        S::UInt32(x) => opt(out, tag::UINT32, x, |x, o| o.extend(x.to_le_bytes())),
        S::UInt64(x) => opt(out, tag::UINT64, x, |x, o| o.extend(x.to_le_bytes())),
        S::Float32(x) => opt(out, tag::FLOAT32, x, |x, o| {
            o.extend(
                normalize_f64(*x as f64)
                    .map_or(f32::NAN, |f| f as f32)
                    .to_le_bytes(),
            )
        }),
        S::Float64(x) => opt(out, tag::FLOAT64, x, |x, o| {
            o.extend(normalize_f64(*x).unwrap_or(f64::NAN).to_le_bytes())
        }),
        S::Decimal128(x, p, s) => {
            out.push(tag::DECIMAL128);
            out.push(*p);
            out.push(*s as u8);
            match x {
                None => out.push(0),
                Some(x) => {
                    out.push(1);
                    out.extend(x.to_le_bytes());
                }
            }
        }
        S::Utf8(x) => opt(out, tag::UTF8, x, |x, o| bytes(x.as_bytes(), o)),
        S::LargeUtf8(x) => opt(out, tag::LARGE_UTF8, x, |x, o| bytes(x.as_bytes(), o)),
        S::Utf8View(x) => opt(out, tag::UTF8_VIEW, x, |x, o| bytes(x.as_bytes(), o)),
        S::Binary(x) => opt(out, tag::BINARY, x, |x, o| bytes(x, o)),
        S::LargeBinary(x) => opt(out, tag::LARGE_BINARY, x, |x, o| bytes(x, o)),
        S::BinaryView(x) => opt(out, tag::BINARY_VIEW, x, |x, o| bytes(x, o)),
        S::Date32(x) => opt(out, tag::DATE32, x, |x, o| o.extend(x.to_le_bytes())),
        S::Date64(x) => opt(out, tag::DATE64, x, |x, o| o.extend(x.to_le_bytes())),
        S::Time32Second(x) => opt(out, tag::TIME32_S, x, |x, o| o.extend(x.to_le_bytes())),
        S::Time32Millisecond(x) => opt(out, tag::TIME32_MS, x, |x, o| o.extend(x.to_le_bytes())),
        S::Time64Microsecond(x) => opt(out, tag::TIME64_US, x, |x, o| o.extend(x.to_le_bytes())),
        S::Time64Nanosecond(x) => opt(out, tag::TIME64_NS, x, |x, o| o.extend(x.to_le_bytes())),
        S::TimestampSecond(x, z)
        | S::TimestampMillisecond(x, z)
        | S::TimestampMicrosecond(x, z)
        | S::TimestampNanosecond(x, z) => {
            let t = match v {
                S::TimestampSecond(..) => tag::TS_S,
                S::TimestampMillisecond(..) => tag::TS_MS,
                S::TimestampMicrosecond(..) => tag::TS_US,
                _ => tag::TS_NS,
            };
            out.push(t);
            tz(z, out);
            match x {
                None => out.push(0),
                Some(x) => {
                    out.push(1);
                    out.extend(x.to_le_bytes());
                }
            }
        }
        S::IntervalMonthDayNano(x) => opt(out, tag::INTERVAL_MDN, x, |x, o| {
            o.extend(x.months.to_le_bytes());
            o.extend(x.days.to_le_bytes());
            o.extend(x.nanoseconds.to_le_bytes());
        }),
        S::DurationMicrosecond(x) => {
            opt(out, tag::DURATION_US, x, |x, o| o.extend(x.to_le_bytes()))
        }
        S::DurationNanosecond(x) => opt(out, tag::DURATION_NS, x, |x, o| o.extend(x.to_le_bytes())),
        S::List(list) => {
            // The element type travels as a typed NULL, so an empty or NULL list decodes
            // to its type without the schema.
            out.push(tag::LIST);
            let DataType::List(element) = list.data_type() else {
                return Err(DataflowError::Internal(
                    "a list scalar of another type".into(),
                ));
            };
            encode_value(&ScalarValue::try_new_null(element.data_type())?, out)?;
            if list.is_null(0) {
                out.push(0);
            } else {
                out.push(1);
                let values = list.value(0);
                out.extend((values.len() as u32).to_le_bytes());
                for j in 0..values.len() {
                    encode_value(&ScalarValue::try_from_array(&values, j)?, out)?;
                }
            }
        }
        other => {
            return Err(DataflowError::Unsupported(format!(
                "storing values of type {}",
                other.data_type()
            )));
        }
    }
    Ok(())
}

fn normalize_f64(x: f64) -> Option<f64> {
    if x.is_nan() {
        None
    } else if x == 0.0 {
        Some(0.0)
    } else {
        Some(x)
    }
}

/// Encodes a whole row.
pub fn encode_row(row: &[ScalarValue]) -> DataflowResult<Vec<u8>> {
    let mut out = Vec::with_capacity(row.len() * 9);
    for v in row {
        encode_value(v, &mut out)?;
    }
    Ok(out)
}

/// A cursor over encoded bytes.
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> DataflowResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DataflowError::Corrupt("row truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DataflowResult<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    pub fn u8(&mut self) -> DataflowResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn i64(&mut self) -> DataflowResult<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn len_prefixed(&mut self) -> DataflowResult<&'a [u8]> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        self.take(n)
    }

    fn string(&mut self) -> DataflowResult<String> {
        String::from_utf8(self.len_prefixed()?.to_vec())
            .map_err(|_| DataflowError::Corrupt("invalid UTF-8 in stored text".into()))
    }

    fn present(&mut self) -> DataflowResult<bool> {
        Ok(self.u8()? == 1)
    }

    /// Decodes the next value.
    pub fn value(&mut self) -> DataflowResult<ScalarValue> {
        let t = self.u8()?;
        self.value_tagged(t)
    }

    /// Decodes the rest of a value whose type tag `t` was just read.
    fn value_tagged(&mut self, t: u8) -> DataflowResult<ScalarValue> {
        use ScalarValue as S;
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                let v = if self.present()? {
                    Some(<$t>::from_le_bytes(self.array()?))
                } else {
                    None
                };
                S::$variant(v)
            }};
        }
        Ok(match t {
            tag::NULL => S::Null,
            tag::BOOL => S::Boolean(if self.present()? {
                Some(self.u8()? == 1)
            } else {
                None
            }),
            tag::INT8 => fixed!(Int8, i8),
            tag::INT16 => fixed!(Int16, i16),
            tag::INT32 => fixed!(Int32, i32),
            tag::INT64 => fixed!(Int64, i64),
            tag::UINT8 => fixed!(UInt8, u8),
            tag::UINT16 => fixed!(UInt16, u16),
            tag::UINT32 => fixed!(UInt32, u32),
            tag::UINT64 => fixed!(UInt64, u64),
            tag::FLOAT32 => fixed!(Float32, f32),
            tag::FLOAT64 => fixed!(Float64, f64),
            tag::DECIMAL128 => {
                let p = self.u8()?;
                let s = self.u8()? as i8;
                let v = if self.present()? {
                    Some(i128::from_le_bytes(self.array()?))
                } else {
                    None
                };
                S::Decimal128(v, p, s)
            }
            tag::UTF8 | tag::LARGE_UTF8 | tag::UTF8_VIEW => {
                let v = if self.present()? {
                    Some(self.string()?)
                } else {
                    None
                };
                match t {
                    tag::UTF8 => S::Utf8(v),
                    tag::LARGE_UTF8 => S::LargeUtf8(v),
                    _ => S::Utf8View(v),
                }
            }
            tag::BINARY | tag::LARGE_BINARY | tag::BINARY_VIEW => {
                let v = if self.present()? {
                    Some(self.len_prefixed()?.to_vec())
                } else {
                    None
                };
                match t {
                    tag::BINARY => S::Binary(v),
                    tag::LARGE_BINARY => S::LargeBinary(v),
                    _ => S::BinaryView(v),
                }
            }
            tag::DATE32 => fixed!(Date32, i32),
            tag::DATE64 => fixed!(Date64, i64),
            tag::TIME32_S => fixed!(Time32Second, i32),
            tag::TIME32_MS => fixed!(Time32Millisecond, i32),
            tag::TIME64_US => fixed!(Time64Microsecond, i64),
            tag::TIME64_NS => fixed!(Time64Nanosecond, i64),
            tag::TS_S | tag::TS_MS | tag::TS_US | tag::TS_NS => {
                let n = self.u8()?;
                let zone: Option<Arc<str>> = if n == 0xFF {
                    None
                } else {
                    let b = self.take(n as usize)?;
                    Some(
                        std::str::from_utf8(b)
                            .map_err(|_| DataflowError::Corrupt("time zone".into()))?
                            .into(),
                    )
                };
                let v = if self.present()? {
                    Some(i64::from_le_bytes(self.array()?))
                } else {
                    None
                };
                match t {
                    tag::TS_S => S::TimestampSecond(v, zone),
                    tag::TS_MS => S::TimestampMillisecond(v, zone),
                    tag::TS_US => S::TimestampMicrosecond(v, zone),
                    _ => S::TimestampNanosecond(v, zone),
                }
            }
            tag::INTERVAL_MDN => S::IntervalMonthDayNano(if self.present()? {
                let months = i32::from_le_bytes(self.array()?);
                let days = i32::from_le_bytes(self.array()?);
                let nanoseconds = i64::from_le_bytes(self.array()?);
                Some(IntervalMonthDayNano::new(months, days, nanoseconds))
            } else {
                None
            }),
            tag::DURATION_US => fixed!(DurationMicrosecond, i64),
            tag::DURATION_NS => fixed!(DurationNanosecond, i64),
            tag::LIST => {
                let element = self.value()?.data_type();
                if self.present()? {
                    let n = u32::from_le_bytes(self.array()?) as usize;
                    let values = (0..n)
                        .map(|_| self.value())
                        .collect::<DataflowResult<Vec<_>>>()?;
                    S::List(S::new_list_nullable(&values, &element))
                } else {
                    S::try_new_null(&DataType::List(Arc::new(
                        arrow::datatypes::Field::new_list_field(element, true),
                    )))?
                }
            }
            other => return Err(DataflowError::Corrupt(format!("unknown value tag {other}"))),
        })
    }
}

/// A total order on values of one type: floats by `total_cmp`, everything else as
/// DataFusion compares it (min/max, DISTINCT multisets and rankings order by it).
pub fn compare_values(a: &ScalarValue, b: &ScalarValue) -> std::cmp::Ordering {
    match (a, b) {
        // The common case first: `ScalarValue::partial_cmp` is one large match.
        (ScalarValue::Int64(Some(x)), ScalarValue::Int64(Some(y))) => x.cmp(y),
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => x.total_cmp(y),
        (ScalarValue::Float32(Some(x)), ScalarValue::Float32(Some(y))) => x.total_cmp(y),
        (a, b) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Decodes a row of `width` values. Relations only ever widen (`ALTER ... ADD COLUMN`
/// appends columns), so a row stored with fewer gets NULL for the columns it lacks, and a
/// reader that knows fewer (it resolved the relation before the change) gets the leading
/// ones.
pub fn decode_row(buf: &[u8], width: usize) -> DataflowResult<Vec<ScalarValue>> {
    if buf.is_empty() && width > 0 {
        return Err(DataflowError::Corrupt("empty row".into()));
    }
    let mut d = Decoder::new(buf);
    let mut row = Vec::with_capacity(width);
    while !d.is_empty() {
        row.push(d.value()?);
    }
    row.resize(width, ScalarValue::Null);
    Ok(row)
}

/// The values of row `i` of a batch.
pub fn row_values(columns: &[ArrayRef], i: usize) -> DataflowResult<Vec<ScalarValue>> {
    columns
        .iter()
        .map(|c| ScalarValue::try_from_array(c, i).map_err(DataflowError::from))
        .collect()
}

/// Rows encoded one after another in one buffer.
pub struct EncodedRows {
    bytes: Vec<u8>,
    /// Where each row ends.
    ends: Vec<usize>,
}

impl EncodedRows {
    /// Row `i`'s encoding.
    pub fn row(&self, i: usize) -> &[u8] {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[from..self.ends[i]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Encodes rows `0..n` of some columns (the key columns of a batch, say).
pub fn encode_rows(columns: &[ArrayRef], num_rows: usize) -> DataflowResult<EncodedRows> {
    let encoder = RowEncoder::new(columns);
    let mut bytes = Vec::with_capacity(num_rows * columns.len() * 9);
    let mut ends = Vec::with_capacity(num_rows);
    for i in 0..num_rows {
        encoder.encode(i, &mut bytes)?;
        ends.push(bytes.len());
    }
    Ok(EncodedRows { bytes, ends })
}

/// Builds a batch of a schema from rows of values; values are cast to the schema's types.
pub fn batch_from_rows(
    schema: &SchemaRef,
    rows: &[Vec<ScalarValue>],
) -> DataflowResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| column_from_values(field.data_type(), rows.iter().map(|r| &r[c])))
        .collect::<DataflowResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?)
}

/// A batch of a relation's rows made before `ALTER ... ADD COLUMN` widened the relation (a
/// statement planned before it), with NULL in the columns added since.
pub fn widened(batch: &RecordBatch, schema: &SchemaRef) -> DataflowResult<RecordBatch> {
    let have = batch.num_columns();
    if have >= schema.fields().len() {
        return Ok(batch.clone());
    }
    let mut columns = batch.columns().to_vec();
    columns.extend(
        schema.fields()[have..]
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), batch.num_rows())),
    );
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Builds one column of a type from values.
pub fn column_from_values<'a>(
    data_type: &DataType,
    values: impl Iterator<Item = &'a ScalarValue> + Clone,
) -> DataflowResult<ArrayRef> {
    if let Some(array) = typed_column(data_type, values.clone()) {
        return Ok(array);
    }
    let mut typed = Vec::new();
    for v in values {
        typed.push(if v.is_null() {
            ScalarValue::try_new_null(data_type)?
        } else if &v.data_type() != data_type {
            v.cast_to(data_type)?
        } else {
            v.clone()
        });
    }
    if typed.is_empty() {
        return Ok(new_empty_array(data_type));
    }
    let array = ScalarValue::iter_to_array(typed)?;
    if array.data_type() != data_type {
        return Ok(cast(&array, data_type)?);
    }
    Ok(array)
}

/// A column of one of the common types built straight from values of exactly that type (or
/// NULL), without a cloned `ScalarValue` per value; None when a value is of another type
/// (then [`column_from_values`] casts it) or the type is not one of these.
fn typed_column<'a>(
    data_type: &DataType,
    values: impl Iterator<Item = &'a ScalarValue>,
) -> Option<ArrayRef> {
    use arrow::array::{
        BooleanBuilder, Date32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
        StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
    };
    // Appends each value the pattern takes (NULL as NULL); any other value ends the attempt.
    macro_rules! build {
        ($builder:expr, $p:pat $(if $guard:expr)? => $value:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    $p $(if $guard)? => b.append_option($value),
                    ScalarValue::Null => b.append_null(),
                    _ => return None,
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let n = values.size_hint().0;
    Some(match data_type {
        DataType::Boolean => {
            build!(BooleanBuilder::with_capacity(n), ScalarValue::Boolean(x) => *x)
        }
        DataType::Int16 => build!(Int16Builder::with_capacity(n), ScalarValue::Int16(x) => *x),
        DataType::Int32 => build!(Int32Builder::with_capacity(n), ScalarValue::Int32(x) => *x),
        DataType::Int64 => build!(Int64Builder::with_capacity(n), ScalarValue::Int64(x) => *x),
        DataType::UInt64 => build!(UInt64Builder::with_capacity(n), ScalarValue::UInt64(x) => *x),
        DataType::Float64 => {
            build!(Float64Builder::with_capacity(n), ScalarValue::Float64(x) => *x)
        }
        DataType::Date32 => build!(Date32Builder::with_capacity(n), ScalarValue::Date32(x) => *x),
        DataType::Utf8 => build!(
            StringBuilder::with_capacity(n, n * 16),
            ScalarValue::Utf8(x) => x.as_deref()
        ),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => build!(
            TimestampMicrosecondBuilder::with_capacity(n).with_timezone_opt(tz.clone()),
            ScalarValue::TimestampMicrosecond(x, vtz) if vtz == tz => *x
        ),
        _ => return None,
    })
}

/// Whether a type can be stored by this codec.
pub fn is_storable(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond)
            | DataType::Time64(_)
            | DataType::Timestamp(..)
            | DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano)
            | DataType::Duration(TimeUnit::Microsecond | TimeUnit::Nanosecond)
    ) || matches!(dt, DataType::List(element) if is_storable(element.data_type())
            && !matches!(element.data_type(), DataType::List(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed columns equal what the general path builds, NULLs included; a value of
    /// another type is cast as before.
    #[test]
    fn typed_columns_match_the_general_path() {
        use arrow::datatypes::TimeUnit::Microsecond;
        let tz: Option<Arc<str>> = Some("+00:00".into());
        let cases: Vec<(DataType, Vec<ScalarValue>)> = vec![
            (
                DataType::Boolean,
                vec![ScalarValue::Boolean(Some(true)), ScalarValue::Boolean(None)],
            ),
            (
                DataType::Int16,
                vec![ScalarValue::Int16(Some(-3)), ScalarValue::Null],
            ),
            (
                DataType::Int32,
                vec![ScalarValue::Int32(Some(7)), ScalarValue::Int32(None)],
            ),
            (
                DataType::Int64,
                vec![ScalarValue::Int64(Some(1 << 40)), ScalarValue::Int64(None)],
            ),
            (DataType::UInt64, vec![ScalarValue::UInt64(Some(5))]),
            (
                DataType::Float64,
                vec![ScalarValue::Float64(Some(2.5)), ScalarValue::Null],
            ),
            (DataType::Date32, vec![ScalarValue::Date32(Some(19000))]),
            (
                DataType::Utf8,
                vec![ScalarValue::Utf8(Some("a".into())), ScalarValue::Utf8(None)],
            ),
            (
                DataType::Timestamp(Microsecond, tz.clone()),
                vec![
                    ScalarValue::TimestampMicrosecond(Some(1_000_000), tz.clone()),
                    ScalarValue::TimestampMicrosecond(None, tz.clone()),
                ],
            ),
        ];
        for (data_type, values) in cases {
            let fast = typed_column(&data_type, values.iter()).expect("a typed column");
            let typed: Vec<ScalarValue> = values
                .iter()
                .map(|v| match v.is_null() {
                    true => ScalarValue::try_new_null(&data_type).unwrap(),
                    false => v.clone(),
                })
                .collect();
            let general = ScalarValue::iter_to_array(typed).unwrap();
            assert_eq!(fast.as_ref(), general.as_ref(), "{data_type}");
        }
        // An Int32 among Int64s: no typed column; the general path casts it.
        let mixed = [ScalarValue::Int64(Some(1)), ScalarValue::Int32(Some(2))];
        assert!(typed_column(&DataType::Int64, mixed.iter()).is_none());
        let column = column_from_values(&DataType::Int64, mixed.iter()).unwrap();
        assert_eq!(
            column.as_ref(),
            &arrow::array::Int64Array::from(vec![1, 2]) as &dyn Array
        );
    }
    use arrow::datatypes::{Field, Schema};

    fn round_trip(row: Vec<ScalarValue>) {
        let bytes = encode_row(&row).unwrap();
        assert_eq!(decode_row(&bytes, row.len()).unwrap(), row);
    }

    #[test]
    fn every_supported_type_round_trips() {
        round_trip(vec![
            ScalarValue::Int16(Some(-3)),
            ScalarValue::Int32(None),
            ScalarValue::Int64(Some(i64::MAX)),
            ScalarValue::Float32(Some(1.5)),
            ScalarValue::Float64(Some(-2.25)),
            ScalarValue::Decimal128(Some(12345), 10, 2),
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Utf8(Some("héllo".into())),
            ScalarValue::Utf8(None),
            ScalarValue::Binary(Some(vec![0, 1, 255])),
            ScalarValue::Date32(Some(19000)),
            ScalarValue::Time64Microsecond(Some(3_600_000_000)),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_000), None),
            ScalarValue::TimestampMicrosecond(Some(-5), Some("+00:00".into())),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, 2, 3))),
            ScalarValue::Null,
        ]);
    }

    #[test]
    fn lists_round_trip_with_their_element_type() {
        let ints = [ScalarValue::Int32(Some(1)), ScalarValue::Int32(None)];
        let texts = [ScalarValue::Utf8(Some("a,b".into()))];
        round_trip(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&ints, &DataType::Int32)),
            ScalarValue::List(ScalarValue::new_list_nullable(&[], &DataType::Int64)),
            ScalarValue::List(ScalarValue::new_list_nullable(&texts, &DataType::Utf8)),
            ScalarValue::try_new_null(&DataType::List(Arc::new(Field::new_list_field(
                DataType::Float64,
                true,
            ))))
            .unwrap(),
        ]);
        assert!(is_storable(&DataType::new_list(DataType::Utf8, true)));
        let nested = DataType::new_list(DataType::new_list(DataType::Utf8, true), true);
        assert!(!is_storable(&nested));
    }

    #[test]
    fn equal_floats_encode_equal() {
        let a = encode_row(&[ScalarValue::Float64(Some(0.0))]).unwrap();
        let b = encode_row(&[ScalarValue::Float64(Some(-0.0))]).unwrap();
        assert_eq!(a, b);
        let a = encode_row(&[ScalarValue::Float64(Some(f64::NAN))]).unwrap();
        let b = encode_row(&[ScalarValue::Float64(Some(-f64::NAN))]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_rows_are_errors_not_panics() {
        let bytes = encode_row(&[ScalarValue::Utf8(Some("abcdef".into()))]).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_row(&bytes[..cut], 1).is_err());
        }
    }

    #[test]
    fn rows_become_batches_of_the_schema() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let rows = vec![
            vec![
                ScalarValue::Int64(Some(1)),
                ScalarValue::Utf8(Some("x".into())),
            ],
            vec![ScalarValue::Null, ScalarValue::Utf8(None)],
        ];
        let batch = batch_from_rows(&schema, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(row_values(batch.columns(), 0).unwrap(), rows[0]);
        assert_eq!(
            row_values(batch.columns(), 1).unwrap(),
            vec![ScalarValue::Int64(None), ScalarValue::Utf8(None)]
        );
        let empty = batch_from_rows(&schema, &[]).unwrap();
        assert_eq!(empty.num_rows(), 0);
    }
}
