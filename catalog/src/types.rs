use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use serde::{Deserialize, Serialize};

/// Field metadata key that carries the Postgres type when the Arrow type alone is ambiguous
/// (json and jsonb are stored as Arrow strings).
pub const PG_TYPE_METADATA_KEY: &str = "eddy.pg_type";

/// The UTC zone Eddy attaches to `timestamptz` columns, as DataFusion's `now()` does.
pub const UTC: &str = "+00:00";

/// A column type as Postgres names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    SmallInt,
    Int,
    BigInt,
    Real,
    Double,
    /// `NUMERIC(precision, scale)`; a bare NUMERIC is `(38, 10)`.
    Numeric {
        precision: u8,
        scale: i8,
    },
    Bool,
    Text,
    Varchar(Option<u64>),
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Json,
    Jsonb,
    /// A one-dimensional array of another type (`integer[]`, `text[]`).
    Array(Box<SqlType>),
}

impl SqlType {
    /// The Arrow type that holds values of this column.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Bool => DataType::Boolean,
            SqlType::Text | SqlType::Varchar(_) | SqlType::Json | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            // Elements as DataFusion's array functions make them: untagged, nullable.
            SqlType::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.arrow_type(), true)))
            }
        }
    }

    /// The type of an array's elements, or `None` for a scalar type.
    pub fn element(&self) -> Option<&SqlType> {
        match self {
            SqlType::Array(element) => Some(element),
            _ => None,
        }
    }

    /// An Arrow field of this type, tagged with the Postgres type where Arrow cannot tell it.
    pub fn field(&self, name: &str, nullable: bool) -> Field {
        let field = Field::new(name, self.arrow_type(), nullable);
        match self {
            SqlType::Json | SqlType::Jsonb | SqlType::Varchar(_) => field.with_metadata(
                HashMap::from([(PG_TYPE_METADATA_KEY.to_string(), self.to_string())]),
            ),
            _ => field,
        }
    }

    /// The Postgres type of an Arrow field computed by a query, if Postgres has one.
    pub fn from_field(field: &Field) -> Option<SqlType> {
        if let Some(tag) = field.metadata().get(PG_TYPE_METADATA_KEY)
            && let Some(t) = SqlType::from_name(tag)
        {
            return Some(t);
        }
        match field.data_type() {
            DataType::List(element) | DataType::LargeList(element) => {
                Some(SqlType::Array(Box::new(SqlType::from_field(element)?)))
            }
            other => SqlType::from_arrow(other),
        }
    }

    /// The Postgres type that best holds an Arrow type.
    pub fn from_arrow(dt: &DataType) -> Option<SqlType> {
        Some(match dt {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
            DataType::Int32 | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
            DataType::UInt64 => SqlType::Numeric {
                precision: 20,
                scale: 0,
            },
            DataType::Float16 | DataType::Float32 => SqlType::Real,
            DataType::Float64 => SqlType::Double,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
                SqlType::Numeric {
                    precision: *p,
                    scale: *s,
                }
            }
            DataType::Boolean => SqlType::Bool,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::Timestamp(_, None) => SqlType::Timestamp,
            DataType::Timestamp(_, Some(_)) => SqlType::Timestamptz,
            DataType::Interval(_) | DataType::Duration(_) => SqlType::Interval,
            DataType::Null => SqlType::Text,
            DataType::List(element) | DataType::LargeList(element) => {
                SqlType::Array(Box::new(SqlType::from_arrow(element.data_type())?))
            }
            _ => return None,
        })
    }

    /// Parses a Postgres type name as written in DDL (lower case, without modifiers) plus
    /// the modifiers separately handled by the SQL layer.
    pub fn from_name(name: &str) -> Option<SqlType> {
        let lower = name.trim().to_ascii_lowercase();
        // `integer[]` as written in DDL, `_int4` as `pg_type` names it.
        if let Some(element) = lower.strip_suffix("[]").or_else(|| lower.strip_prefix('_')) {
            return SqlType::from_name(element)
                .filter(|e| e.element().is_none())
                .map(|e| SqlType::Array(Box::new(e)));
        }
        Some(match lower.as_str() {
            "smallint" | "int2" => SqlType::SmallInt,
            "int" | "integer" | "int4" => SqlType::Int,
            "bigint" | "int8" => SqlType::BigInt,
            "real" | "float4" => SqlType::Real,
            "double precision" | "float8" | "double" | "float" => SqlType::Double,
            "numeric" | "decimal" => SqlType::Numeric {
                precision: 38,
                scale: 10,
            },
            "boolean" | "bool" => SqlType::Bool,
            "text" | "string" => SqlType::Text,
            "varchar" | "character varying" => SqlType::Varchar(None),
            "bytea" => SqlType::Bytea,
            "date" => SqlType::Date,
            "time" | "time without time zone" => SqlType::Time,
            "timestamp" | "timestamp without time zone" => SqlType::Timestamp,
            "timestamptz" | "timestamp with time zone" => SqlType::Timestamptz,
            "interval" => SqlType::Interval,
            "json" => SqlType::Json,
            "jsonb" => SqlType::Jsonb,
            _ => return None,
        })
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::SmallInt => f.write_str("smallint"),
            SqlType::Int => f.write_str("integer"),
            SqlType::BigInt => f.write_str("bigint"),
            SqlType::Real => f.write_str("real"),
            SqlType::Double => f.write_str("double precision"),
            SqlType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            SqlType::Bool => f.write_str("boolean"),
            SqlType::Text => f.write_str("text"),
            SqlType::Varchar(None) => f.write_str("character varying"),
            SqlType::Varchar(Some(n)) => write!(f, "character varying({n})"),
            SqlType::Bytea => f.write_str("bytea"),
            SqlType::Date => f.write_str("date"),
            SqlType::Time => f.write_str("time without time zone"),
            SqlType::Timestamp => f.write_str("timestamp without time zone"),
            SqlType::Timestamptz => f.write_str("timestamp with time zone"),
            SqlType::Interval => f.write_str("interval"),
            SqlType::Json => f.write_str("json"),
            SqlType::Jsonb => f.write_str("jsonb"),
            SqlType::Array(element) => write!(f, "{element}[]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display() {
        for t in [
            SqlType::SmallInt,
            SqlType::Int,
            SqlType::BigInt,
            SqlType::Real,
            SqlType::Double,
            SqlType::Bool,
            SqlType::Text,
            SqlType::Bytea,
            SqlType::Date,
            SqlType::Time,
            SqlType::Timestamp,
            SqlType::Timestamptz,
            SqlType::Interval,
            SqlType::Json,
            SqlType::Jsonb,
            SqlType::Array(Box::new(SqlType::Int)),
            SqlType::Array(Box::new(SqlType::Timestamptz)),
        ] {
            assert_eq!(SqlType::from_name(&t.to_string()), Some(t.clone()), "{t}");
        }
    }

    #[test]
    fn json_survives_arrow_through_metadata() {
        let f = SqlType::Jsonb.field("doc", true);
        assert_eq!(f.data_type(), &DataType::Utf8);
        assert_eq!(SqlType::from_field(&f), Some(SqlType::Jsonb));
        let plain = Field::new("s", DataType::Utf8, true);
        assert_eq!(SqlType::from_field(&plain), Some(SqlType::Text));
    }

    #[test]
    fn arrays_are_named_as_postgres_names_them() {
        let ints = SqlType::Array(Box::new(SqlType::Int));
        assert_eq!(ints.to_string(), "integer[]");
        assert_eq!(SqlType::from_name("_int4"), Some(ints.clone()));
        assert_eq!(SqlType::from_name("int4[]"), Some(ints.clone()));
        assert_eq!(SqlType::from_name("integer[][]"), None);
        assert_eq!(SqlType::from_arrow(&ints.arrow_type()), Some(ints));
    }
}
