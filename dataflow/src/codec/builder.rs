//! Batches built straight from encoded rows: each value is decoded into a typed Arrow builder,
//! without a [`ScalarValue`] per value for the common column types. Operators that keep their
//! state as encoded rows (joins) emit their output through it.
//!
//! A row of the output may be put together from parts: a join's pair is the left row's
//! values, then the right row's; an outer join's unmatched row is one side's values, then
//! NULLs. A value whose stored type differs from the column's (a column that was `NULL` when
//! stored, say) is cast, as [`batch_from_rows`] casts.
//!
//! [`batch_from_rows`]: super::batch_from_rows

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    RecordBatch, RecordBatchOptions, StringBuilder, UInt64Builder, make_array,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;

use super::{Decoder, column_from_values, tag};
use crate::{DataflowError, DataflowResult};

/// A piece of an output row.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// The first `width` values of an encoded row; values the row lacks (it was stored before
    /// its relation was widened) are NULL.
    Row(&'a [u8], usize),
    /// `width` NULLs.
    Nulls(usize),
}

/// How one column's values are gathered.
enum Values {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Utf8(StringBuilder),
    /// Any other type, or a column that met a value of another type.
    Scalars(Vec<ScalarValue>),
}

struct Column {
    data_type: DataType,
    /// The tag a value of the column's own type is stored with (None: the slow path).
    tag: Option<u8>,
    values: Values,
}

impl Column {
    fn new(data_type: &DataType, capacity: usize) -> Self {
        use DataType as D;
        let (tag, values) = match data_type {
            D::Int16 => (
                tag::INT16,
                Values::Int16(Int16Builder::with_capacity(capacity)),
            ),
            D::Int32 => (
                tag::INT32,
                Values::Int32(Int32Builder::with_capacity(capacity)),
            ),
            D::Date32 => (
                tag::DATE32,
                Values::Int32(Int32Builder::with_capacity(capacity)),
            ),
            D::Int64 => (
                tag::INT64,
                Values::Int64(Int64Builder::with_capacity(capacity)),
            ),
            D::Timestamp(unit, _) => {
                let tag = match unit {
                    TimeUnit::Second => tag::TS_S,
                    TimeUnit::Millisecond => tag::TS_MS,
                    TimeUnit::Microsecond => tag::TS_US,
                    TimeUnit::Nanosecond => tag::TS_NS,
                };
                (tag, Values::Int64(Int64Builder::with_capacity(capacity)))
            }
            D::UInt64 => (
                tag::UINT64,
                Values::UInt64(UInt64Builder::with_capacity(capacity)),
            ),
            D::Float64 => (
                tag::FLOAT64,
                Values::Float64(Float64Builder::with_capacity(capacity)),
            ),
            D::Boolean => (
                tag::BOOL,
                Values::Bool(BooleanBuilder::with_capacity(capacity)),
            ),
            D::Utf8 => (
                tag::UTF8,
                Values::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            ),
            _ => {
                return Self {
                    data_type: data_type.clone(),
                    tag: None,
                    values: Values::Scalars(Vec::with_capacity(capacity)),
                };
            }
        };
        Self {
            data_type: data_type.clone(),
            tag: Some(tag),
            values,
        }
    }

    fn append_null(&mut self) {
        match &mut self.values {
            Values::Int16(b) => b.append_null(),
            Values::Int32(b) => b.append_null(),
            Values::Int64(b) => b.append_null(),
            Values::UInt64(b) => b.append_null(),
            Values::Float64(b) => b.append_null(),
            Values::Bool(b) => b.append_null(),
            Values::Utf8(b) => b.append_null(),
            Values::Scalars(v) => v.push(ScalarValue::Null),
        }
    }

    /// Decodes the next value of `d` into the column.
    fn append(&mut self, d: &mut Decoder<'_>) -> DataflowResult<()> {
        let t = d.u8()?;
        if t == tag::NULL {
            self.append_null();
            return Ok(());
        }
        if self.tag != Some(t) {
            let v = d.value_tagged(t)?;
            self.scalars()?.push(v);
            return Ok(());
        }
        if matches!(t, tag::TS_S | tag::TS_MS | tag::TS_US | tag::TS_NS) {
            // The zone is the column's: skip its name.
            let n = d.u8()?;
            if n != 0xFF {
                d.take(n as usize)?;
            }
        }
        if !d.present()? {
            self.append_null();
            return Ok(());
        }
        match &mut self.values {
            Values::Int16(b) => b.append_value(i16::from_le_bytes(d.array()?)),
            Values::Int32(b) => b.append_value(i32::from_le_bytes(d.array()?)),
            Values::Int64(b) => b.append_value(i64::from_le_bytes(d.array()?)),
            Values::UInt64(b) => b.append_value(u64::from_le_bytes(d.array()?)),
            Values::Float64(b) => b.append_value(f64::from_le_bytes(d.array()?)),
            Values::Bool(b) => b.append_value(d.u8()? == 1),
            Values::Utf8(b) => b.append_value(
                std::str::from_utf8(d.len_prefixed()?)
                    .map_err(|_| DataflowError::Corrupt("invalid UTF-8 in stored text".into()))?,
            ),
            Values::Scalars(_) => unreachable!("a column on the slow path has no tag"),
        }
        Ok(())
    }

    /// The column's values as `ScalarValue`s, switching it to the slow path if it is not on it.
    fn scalars(&mut self) -> DataflowResult<&mut Vec<ScalarValue>> {
        if !matches!(self.values, Values::Scalars(_)) {
            let so_far = self.finish_typed()?;
            let values = (0..so_far.len())
                .map(|i| ScalarValue::try_from_array(&so_far, i))
                .collect::<Result<Vec<_>, _>>()?;
            self.values = Values::Scalars(values);
            self.tag = None;
        }
        match &mut self.values {
            Values::Scalars(v) => Ok(v),
            _ => unreachable!("switched above"),
        }
    }

    /// The values of a typed builder as an array of the column's type.
    fn finish_typed(&mut self) -> DataflowResult<ArrayRef> {
        let array: ArrayRef = match &mut self.values {
            Values::Int16(b) => Arc::new(b.finish()),
            Values::Int32(b) => Arc::new(b.finish()),
            Values::Int64(b) => Arc::new(b.finish()),
            Values::UInt64(b) => Arc::new(b.finish()),
            Values::Float64(b) => Arc::new(b.finish()),
            Values::Bool(b) => Arc::new(b.finish()),
            Values::Utf8(b) => Arc::new(b.finish()),
            Values::Scalars(v) => return column_from_values(&self.data_type, v.iter()),
        };
        if array.data_type() == &self.data_type {
            return Ok(array);
        }
        // Dates and timestamps are gathered as their storage integers.
        let data = array
            .to_data()
            .into_builder()
            .data_type(self.data_type.clone())
            .build()?;
        Ok(make_array(data))
    }
}

/// Builds a batch of a schema from encoded rows, one row at a time.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: &SchemaRef, capacity: usize) -> Self {
        Self {
            schema: schema.clone(),
            columns: schema
                .fields()
                .iter()
                .map(|f| Column::new(f.data_type(), capacity))
                .collect(),
            rows: 0,
        }
    }

    /// Appends one row made of `parts`, whose widths add up to the schema's.
    pub fn push(&mut self, parts: &[Part<'_>]) -> DataflowResult<()> {
        let width: usize = parts
            .iter()
            .map(|p| match p {
                Part::Row(_, w) | Part::Nulls(w) => *w,
            })
            .sum();
        if width != self.columns.len() {
            return Err(DataflowError::Internal(format!(
                "a row of {width} values for a batch of {} columns",
                self.columns.len()
            )));
        }
        let mut at = 0;
        for part in parts {
            let (bytes, width) = match *part {
                Part::Row(bytes, width) => (bytes, width),
                Part::Nulls(width) => (&[][..], width),
            };
            let columns = &mut self.columns[at..at + width];
            let mut d = Decoder::new(bytes);
            for column in columns {
                if d.is_empty() {
                    column.append_null();
                } else {
                    column.append(&mut d)?;
                }
            }
            at += width;
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends one row whose values are the next ones of `d`, one per column.
    pub fn push_from(&mut self, d: &mut Decoder<'_>) -> DataflowResult<()> {
        for column in &mut self.columns {
            column.append(d)?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(mut self) -> DataflowResult<RecordBatch> {
        let columns = self
            .columns
            .iter_mut()
            .map(Column::finish_typed)
            .collect::<DataflowResult<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::codec::{batch_from_rows, decode_row, encode_row};

    fn schema(types: &[DataType]) -> SchemaRef {
        Arc::new(Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// The batch the builder makes equals the one made from decoded values.
    fn same_as_decoded(schema: &SchemaRef, rows: &[Vec<ScalarValue>]) {
        let encoded: Vec<Vec<u8>> = rows.iter().map(|r| encode_row(r).unwrap()).collect();
        let mut builder = BatchBuilder::new(schema, 0);
        for row in &encoded {
            builder
                .push(&[Part::Row(row, schema.fields().len())])
                .unwrap();
        }
        let built = builder.finish().unwrap();
        let width = schema.fields().len();
        let decoded: Vec<Vec<ScalarValue>> = encoded
            .iter()
            .map(|r| decode_row(r, width).unwrap())
            .collect();
        assert_eq!(built, batch_from_rows(schema, &decoded).unwrap());
    }

    #[test]
    fn typed_columns_build_as_decoded_values_do() {
        let tz: Option<Arc<str>> = Some("+00:00".into());
        let schema = schema(&[
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt64,
            DataType::Float64,
            DataType::Boolean,
            DataType::Utf8,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Second, tz.clone()),
            DataType::Decimal128(10, 2),
        ]);
        use ScalarValue as S;
        same_as_decoded(
            &schema,
            &[
                vec![
                    S::Int16(Some(-3)),
                    S::Int32(Some(7)),
                    S::Int64(Some(i64::MIN)),
                    S::UInt64(Some(u64::MAX)),
                    S::Float64(Some(-0.5)),
                    S::Boolean(Some(true)),
                    S::Utf8(Some("héllo".into())),
                    S::Date32(Some(19_000)),
                    S::TimestampMicrosecond(Some(5), None),
                    S::TimestampSecond(Some(-1), tz.clone()),
                    S::Decimal128(Some(12_345), 10, 2),
                ],
                vec![
                    S::Int16(None),
                    S::Null,
                    S::Int64(None),
                    S::UInt64(None),
                    S::Float64(None),
                    S::Boolean(None),
                    S::Utf8(None),
                    S::Date32(None),
                    S::TimestampMicrosecond(None, None),
                    S::Null,
                    S::Decimal128(None, 10, 2),
                ],
            ],
        );
    }

    #[test]
    fn a_value_of_another_type_is_cast() {
        use ScalarValue as S;
        let schema = schema(&[DataType::Int64, DataType::Utf8]);
        same_as_decoded(
            &schema,
            &[
                vec![S::Int64(Some(1)), S::Utf8(Some("a".into()))],
                vec![S::Int32(Some(2)), S::LargeUtf8(Some("b".into()))],
                vec![S::Int64(Some(3)), S::Utf8(None)],
            ],
        );
    }

    #[test]
    fn rows_are_put_together_from_parts() {
        use ScalarValue as S;
        let schema = schema(&[DataType::Int64, DataType::Utf8, DataType::Int64]);
        let left = encode_row(&[S::Int64(Some(1)), S::Utf8(Some("x".into()))]).unwrap();
        let right = encode_row(&[S::Int64(Some(9))]).unwrap();
        let narrow = encode_row(&[S::Int64(Some(2))]).unwrap();
        let mut b = BatchBuilder::new(&schema, 2);
        b.push(&[Part::Row(&left, 2), Part::Row(&right, 1)])
            .unwrap();
        b.push(&[Part::Row(&narrow, 2), Part::Nulls(1)]).unwrap();
        assert!(b.push(&[Part::Row(&left, 2)]).is_err());
        assert!(b.push(&[Part::Row(&left, 2), Part::Nulls(2)]).is_err());
        let batch = b.finish().unwrap();
        let expected = batch_from_rows(
            &schema,
            &[
                vec![
                    S::Int64(Some(1)),
                    S::Utf8(Some("x".into())),
                    S::Int64(Some(9)),
                ],
                vec![S::Int64(Some(2)), S::Null, S::Null],
            ],
        )
        .unwrap();
        assert_eq!(batch, expected);
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let schema = schema(&[DataType::Utf8]);
        let row = encode_row(&[ScalarValue::Utf8(Some("abcdef".into()))]).unwrap();
        for cut in 1..row.len() {
            let mut b = BatchBuilder::new(&schema, 1);
            assert!(b.push(&[Part::Row(&row[..cut], 1)]).is_err());
        }
    }
}
