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
        // `x = ANY($1)`: the array of x's type.
        Some(list @ DataType::List(_)) => {
            pg_type(&arrow::datatypes::Field::new("p", list.clone(), true))
        }
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
        Type::INT2_ARRAY => list(get!(Vec<Option<i16>>), ScalarValue::Int16, DataType::Int16),
        Type::INT4_ARRAY => list(get!(Vec<Option<i32>>), ScalarValue::Int32, DataType::Int32),
        Type::INT8_ARRAY => list(get!(Vec<Option<i64>>), ScalarValue::Int64, DataType::Int64),
        Type::FLOAT8_ARRAY => list(
            get!(Vec<Option<f64>>),
            ScalarValue::Float64,
            DataType::Float64,
        ),
        Type::BOOL_ARRAY => list(
            get!(Vec<Option<bool>>),
            ScalarValue::Boolean,
            DataType::Boolean,
        ),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            list(get!(Vec<Option<String>>), ScalarValue::Utf8, DataType::Utf8)
        }
        Type::JSON | Type::JSONB => {
            ScalarValue::Utf8(get!(serde_json::Value).map(|v| v.to_string()))
        }
        _ => ScalarValue::Utf8(get!(String)),
    })
}

/// The parameters (0-based) a statement compares with `ANY` or `ALL` (`x = ANY($1)`): arrays,
/// whatever type inference made of them. Drivers send such a parameter as an array literal
/// of unknown type (psycopg: `WHERE id = ANY(%s)` with a list), which Postgres reads by
/// that context.
pub fn array_operands(statement: &eddy_sql::parser::Statement) -> Vec<usize> {
    use sqlparser::ast::{Expr, Value, Visit, Visitor};
    use std::ops::ControlFlow;

    struct Operands(Vec<usize>);
    impl Visitor for Operands {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = expr {
                let mut operand = right.as_ref();
                while let Expr::Nested(inner) = operand {
                    operand = inner;
                }
                if let Expr::Value(v) = operand
                    && let Value::Placeholder(p) = &v.value
                    && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
                    && n > 0
                {
                    self.0.push(n - 1);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let eddy_sql::parser::Statement::Sql(sql) = statement else {
        return vec![];
    };
    let mut found = Operands(vec![]);
    let _ = sql.visit(&mut found);
    found.0
}

/// The elements of a one-dimensional Postgres array literal (`{a,"b c",NULL}`); None when
/// the text is not one.
pub fn array_literal(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        out.push(match (quoted, item.as_str()) {
            (false, s) if s.eq_ignore_ascii_case("null") => None,
            _ => Some(item),
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

/// A parameter sent as array text, as a list of the element type.
fn array_value(text: &str, element: &DataType) -> SqlResult<ScalarValue> {
    let items =
        array_literal(text).ok_or_else(|| bad(format!("malformed array literal: \"{text}\"")))?;
    let values = items
        .into_iter()
        .map(|item| {
            let v = ScalarValue::Utf8(item);
            match v.is_null() {
                true => ScalarValue::try_new_null(element).map_err(bad),
                false => v.cast_to(element).map_err(bad),
            }
        })
        .collect::<SqlResult<Vec<_>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &values, element,
    )))
}

/// An array parameter as a list (NULL when the parameter is).
fn list<T>(
    items: Option<Vec<Option<T>>>,
    scalar: impl Fn(Option<T>) -> ScalarValue,
    element: DataType,
) -> ScalarValue {
    match items {
        Some(items) => {
            let values: Vec<ScalarValue> = items.into_iter().map(scalar).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &element))
        }
        None => ScalarValue::try_new_null(&DataType::new_list(element, true))
            .unwrap_or(ScalarValue::Null),
    }
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
                Some(DataType::List(item)) if matches!(&v, ScalarValue::Utf8(Some(_))) => {
                    let ScalarValue::Utf8(Some(text)) = &v else {
                        unreachable!()
                    };
                    array_value(text, item.data_type())
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_read_as_postgres_writes_them() {
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(array_literal("{r,p,f}"), Some(some(&["r", "p", "f"])));
        assert_eq!(array_literal("{}"), Some(vec![]));
        assert_eq!(
            array_literal(r#"{"a b", "c,\"d" , NULL,"NULL"}"#),
            Some(vec![
                Some("a b".into()),
                Some("c,\"d".into()),
                None,
                Some("NULL".into())
            ])
        );
        assert_eq!(array_literal("r,p"), None);
        assert_eq!(array_literal("{a,{b}}"), None);
        assert_eq!(array_literal(r#"{"open}"#), None);
        let list = array_value("{1,2,NULL}", &DataType::Int64).unwrap();
        assert_eq!(list.data_type(), DataType::new_list(DataType::Int64, true));
    }

    #[test]
    fn any_and_all_operands_are_arrays() {
        let parsed = eddy_sql::parser::parse(
            "SELECT 1 FROM t WHERE a = ANY($2) AND b <> ALL(($1)) AND c = $3",
        )
        .unwrap();
        assert_eq!(array_operands(&parsed[0]), vec![1, 0]);
    }
}
