//! Array values in results (`array_agg`, DataFusion's array functions, the catalogs' vectors):
//! the Postgres array type of an element type, and the values in Postgres' text form
//! (`{1,2}`, `{"a b",NULL}`) or in the binary array format.
//!
//! Elements are first cast to the Arrow type of their Postgres element type, so each element
//! type has one text and one binary encoding here, the same as a scalar of that type gets.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    UInt32Type,
};
use eddy_catalog::SqlType;
use pgwire::api::Type;
use pgwire::api::results::DataRowEncoder;
use pgwire::error::{PgWireError, PgWireResult};

use super::encode::{
    date_at, decimal_at, display, float_text, interval_at, interval_text, time_at, time_text,
    timestamp_at, timestamp_text,
};

/// The Postgres array type whose elements are of this Arrow field's type.
pub fn array_type(element: &Field) -> Type {
    match SqlType::from_field(element) {
        Some(SqlType::SmallInt) => Type::INT2_ARRAY,
        Some(SqlType::Int) => Type::INT4_ARRAY,
        Some(SqlType::BigInt) => Type::INT8_ARRAY,
        Some(SqlType::Real) => Type::FLOAT4_ARRAY,
        Some(SqlType::Double) => Type::FLOAT8_ARRAY,
        Some(SqlType::Numeric { .. }) => Type::NUMERIC_ARRAY,
        Some(SqlType::Bool) => Type::BOOL_ARRAY,
        Some(SqlType::Bytea) => Type::BYTEA_ARRAY,
        Some(SqlType::Date) => Type::DATE_ARRAY,
        Some(SqlType::Time) => Type::TIME_ARRAY,
        Some(SqlType::Timestamp) => Type::TIMESTAMP_ARRAY,
        Some(SqlType::Timestamptz) => Type::TIMESTAMPTZ_ARRAY,
        Some(SqlType::Interval) => Type::INTERVAL_ARRAY,
        Some(
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Array(_),
        )
        | None => Type::TEXT_ARRAY,
    }
}

/// Encodes one array value (the elements of one row's list) as a column of type `ty`.
pub(super) fn encode(
    enc: &mut DataRowEncoder,
    values: &ArrayRef,
    ty: &Type,
    text: bool,
) -> PgWireResult<()> {
    let failed = |e: arrow::error::ArrowError| PgWireError::ApiError(Box::new(e));
    match (ty, text) {
        // Catalog vectors print space-separated in text.
        (&Type::INT2_VECTOR | &Type::OID_VECTOR, true) => {
            let items: Vec<String> = (0..values.len())
                .map(|j| display(values.as_ref(), j))
                .collect();
            return enc.encode_field(&items.join(" "));
        }
        (&Type::INT2_VECTOR, false) => {
            return enc.encode_field(&primitive::<Int16Type>(values).map_err(failed)?);
        }
        (&Type::OID_VECTOR, false) => {
            return enc.encode_field(&primitive::<UInt32Type>(values).map_err(failed)?);
        }
        _ => {}
    }
    let element = SqlType::from_arrow(values.data_type()).unwrap_or(SqlType::Text);
    let canonical = match element {
        SqlType::Array(_) => DataType::Utf8,
        ref e => e.arrow_type(),
    };
    let cast_values = cast(values, &canonical).map_err(failed)?;
    let values_ref = &cast_values;
    let values = cast_values.as_ref();
    if text || *ty == Type::TEXT_ARRAY {
        return enc.encode_field(&each(values, |j| element_text(values, j)));
    }
    match values.data_type() {
        DataType::Int16 => enc.encode_field(&primitive::<Int16Type>(values_ref).map_err(failed)?),
        DataType::Int32 => enc.encode_field(&primitive::<Int32Type>(values_ref).map_err(failed)?),
        DataType::Int64 => enc.encode_field(&primitive::<Int64Type>(values_ref).map_err(failed)?),
        DataType::Float32 => {
            enc.encode_field(&primitive::<Float32Type>(values_ref).map_err(failed)?)
        }
        DataType::Float64 => {
            enc.encode_field(&primitive::<Float64Type>(values_ref).map_err(failed)?)
        }
        DataType::Boolean => enc.encode_field(&each(values, |j| values.as_boolean().value(j))),
        DataType::Decimal128(_, scale) => {
            enc.encode_field(&each(values, |j| decimal_at(values, *scale, j)).flatten_some())
        }
        DataType::Binary => enc.encode_field(&each(values, |j| {
            values.as_binary::<i32>().value(j).to_vec()
        })),
        DataType::Date32 => enc.encode_field(&each(values, |j| date_at(values, j)).flatten_some()),
        DataType::Time64(unit) => {
            enc.encode_field(&each(values, |j| time_at(values, unit, j)).flatten_some())
        }
        DataType::Timestamp(unit, None) => {
            enc.encode_field(&each(values, |j| timestamp_at(values, unit, j)).flatten_some())
        }
        DataType::Timestamp(unit, Some(_)) => enc.encode_field(
            &each(values, |j| {
                timestamp_at(values, unit, j).map(|t| t.and_utc())
            })
            .flatten_some(),
        ),
        DataType::Interval(_) => enc.encode_field(&each(values, |j| interval_at(values, j))),
        _ => enc.encode_field(&each(values, |j| element_text(values, j))),
    }
}

/// Postgres' text form of a non-NULL element of a canonical type (quoting, where the array
/// syntax needs it, is the encoder's).
fn element_text(values: &dyn Array, j: usize) -> String {
    match values.data_type() {
        DataType::Boolean => if values.as_boolean().value(j) {
            "t"
        } else {
            "f"
        }
        .into(),
        DataType::Float32 => {
            let v = values.as_primitive::<Float32Type>().value(j);
            float_text(v as f64, v.to_string())
        }
        DataType::Float64 => {
            let v = values.as_primitive::<Float64Type>().value(j);
            float_text(v, v.to_string())
        }
        DataType::Utf8 => values.as_string::<i32>().value(j).to_string(),
        DataType::Binary => {
            let bytes = values.as_binary::<i32>().value(j);
            let mut s = String::with_capacity(2 + 2 * bytes.len());
            s.push_str("\\x");
            for b in bytes {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        DataType::Date32 => date_at(values, j).map_or_else(String::new, |d| d.to_string()),
        DataType::Time64(unit) => {
            time_at(values, unit, j).map_or_else(String::new, |t| time_text(&t))
        }
        DataType::Timestamp(unit, zone) => timestamp_at(values, unit, j)
            .map_or_else(String::new, |t| timestamp_text(&t, zone.is_some())),
        DataType::Interval(_) => {
            let iv = interval_at(values, j);
            interval_text(iv.months, iv.days, iv.microseconds)
        }
        DataType::Decimal128(_, scale) => {
            decimal_at(values, *scale, j).map_or_else(|| display(values, j), |d| d.to_string())
        }
        _ => display(values, j),
    }
}

/// A primitive array's elements, NULLs as `None`.
fn primitive<T: ArrowPrimitiveType>(
    values: &ArrayRef,
) -> Result<Vec<Option<T::Native>>, arrow::error::ArrowError> {
    let cast = cast(values, &T::DATA_TYPE)?;
    Ok(cast.as_primitive::<T>().iter().collect())
}

/// Each element through `f`, NULLs as `None`.
fn each<T>(values: &dyn Array, f: impl Fn(usize) -> T) -> Vec<Option<T>> {
    (0..values.len())
        .map(|j| (!values.is_null(j)).then(|| f(j)))
        .collect()
}

/// Flattens elements whose conversion can fail (out-of-range dates) into NULLs.
trait FlattenSome<T> {
    fn flatten_some(self) -> Vec<Option<T>>;
}

impl<T> FlattenSome<T> for Vec<Option<Option<T>>> {
    fn flatten_some(self) -> Vec<Option<T>> {
        self.into_iter().map(Option::flatten).collect()
    }
}
