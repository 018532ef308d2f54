//! Bound parameters of the extended protocol, decoded into DataFusion scalars.

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use datafusion::common::ScalarValue;
use eddy_catalog::SqlType;
use eddy_sql::{SqlError, SqlResult};
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use rust_decimal::Decimal;

use super::encode::pg_type;

/// The Postgres type announced for a parameter DataFusion inferred (or did not).
pub fn pg_type_of(dt: &Option<DataType>) -> Type {
    match dt {
        Some(dt) => match SqlType::from_arrow(dt) {
            Some(_) => pg_type(&arrow::datatypes::Field::new("p", dt.clone(), true)),
            None => Type::UNKNOWN,
        },
        None => Type::UNKNOWN,
    }
}

fn bad(e: impl std::fmt::Display) -> SqlError {
    SqlError::InvalidText(format!("invalid parameter value: {e}"))
}

fn value<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> SqlResult<ScalarValue> {
    macro_rules! get {
        ($t:ty) => {
            portal.parameter::<$t>(i, ty).map_err(bad)?
        };
    }
    Ok(match *ty {
        Type::INT2 => ScalarValue::Int16(get!(i16)),
        Type::INT4 => ScalarValue::Int32(get!(i32)),
        Type::INT8 => ScalarValue::Int64(get!(i64)),
        Type::FLOAT4 => ScalarValue::Float32(get!(f32)),
        Type::FLOAT8 => ScalarValue::Float64(get!(f64)),
        Type::BOOL => ScalarValue::Boolean(get!(bool)),
        Type::NUMERIC => match get!(Decimal) {
            Some(d) => ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8),
            None => ScalarValue::Decimal128(None, 38, 10),
        },
        Type::DATE => {
            ScalarValue::Date32(get!(NaiveDate).map(|d| {
                (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
            }))
        }
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            get!(NaiveDateTime).map(|t| t.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            get!(DateTime<FixedOffset>).map(|t| t.timestamp_micros()),
            Some("+00:00".into()),
        ),
        Type::BYTEA => ScalarValue::Binary(get!(Vec<u8>)),
        Type::JSON | Type::JSONB => {
            ScalarValue::Utf8(get!(serde_json::Value).map(|v| v.to_string()))
        }
        _ => ScalarValue::Utf8(get!(String)),
    })
}

/// Decodes every parameter, cast to the type the statement expects where it knows one.
pub fn decode<S: Clone>(
    portal: &Portal<S>,
    types: &[Type],
    expected: &[Option<DataType>],
) -> SqlResult<Vec<ScalarValue>> {
    types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let v = value(portal, i, ty)?;
            match expected.get(i).cloned().flatten() {
                Some(DataType::Timestamp(TimeUnit::Nanosecond, tz)) => Ok(v
                    .cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, tz))
                    .map_err(bad)?),
                Some(dt) if dt != v.data_type() && !v.is_null() => v.cast_to(&dt).map_err(bad),
                Some(dt) if v.is_null() => ScalarValue::try_new_null(&dt).map_err(bad),
                _ => Ok(v),
            }
        })
        .collect()
}
