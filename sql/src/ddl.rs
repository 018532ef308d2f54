//! Column definitions of CREATE STREAM / CREATE TABLE to catalog columns.

use eddy_catalog::{Column, SqlType, Watermark};
use sqlparser::ast::{
    BinaryOperator, CharacterLength, ColumnDef, ColumnOption, DataType, ExactNumberInfo, Expr,
    Ident, TableConstraint, TimezoneInfo,
};

use crate::names::normalize_ident;
use crate::{SqlError, SqlResult};

/// The Postgres type of a declared column type.
pub fn sql_type(dt: &DataType) -> SqlResult<SqlType> {
    let numeric = |info: &ExactNumberInfo| match info {
        ExactNumberInfo::None => Ok(SqlType::Numeric {
            precision: 38,
            scale: 10,
        }),
        ExactNumberInfo::Precision(p) => precision(*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => precision(*p, *s),
    };
    Ok(match dt {
        DataType::SmallInt(_) | DataType::Int2(_) => SqlType::SmallInt,
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => SqlType::Int,
        DataType::BigInt(_) | DataType::Int8(_) => SqlType::BigInt,
        DataType::Real | DataType::Float4 => SqlType::Real,
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => SqlType::Double,
        DataType::Float(_) => SqlType::Double,
        DataType::Numeric(info) | DataType::Decimal(info) => numeric(info)?,
        DataType::Boolean | DataType::Bool => SqlType::Bool,
        DataType::Text | DataType::String(_) => SqlType::Text,
        DataType::Varchar(len) | DataType::CharacterVarying(len) => SqlType::Varchar(match len {
            Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
            _ => None,
        }),
        DataType::Char(_) | DataType::Character(_) => SqlType::Text,
        DataType::Bytea => SqlType::Bytea,
        DataType::Date => SqlType::Date,
        DataType::Time(_, _) => SqlType::Time,
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            SqlType::Timestamptz
        }
        DataType::Timestamp(_, _) => SqlType::Timestamp,
        DataType::Interval { .. } => SqlType::Interval,
        DataType::JSON => SqlType::Json,
        DataType::JSONB => SqlType::Jsonb,
        DataType::Custom(name, _) => SqlType::from_name(&name.to_string())
            .filter(|t| t.element().is_none())
            .ok_or_else(|| SqlError::Unsupported(format!("type \"{name}\"")))?,
        DataType::Array(_) => {
            return Err(SqlError::Unsupported(format!(
                "array column type \"{dt}\" in CREATE TABLE or CREATE STREAM (views and \
                 queries can compute arrays, with array_agg for instance)"
            )));
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "column type \"{other}\" is not supported"
            )));
        }
    })
}

fn precision(p: u64, s: i64) -> SqlResult<SqlType> {
    if p == 0 || p > 38 || s < 0 || s as u64 > p {
        return Err(SqlError::InvalidParameter(format!(
            "NUMERIC precision {p} and scale {s} must satisfy 1 <= precision <= 38 and 0 <= scale <= precision"
        )));
    }
    Ok(SqlType::Numeric {
        precision: p as u8,
        scale: s as i8,
    })
}

/// Catalog columns and the primary key positions of a column list with its constraints.
pub fn columns(
    defs: &[ColumnDef],
    constraints: &[TableConstraint],
) -> SqlResult<(Vec<Column>, Vec<usize>)> {
    let mut columns = Vec::with_capacity(defs.len());
    let mut primary_key = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let name = normalize_ident(&def.name);
        if columns.iter().any(|c: &Column| c.name == name) {
            return Err(SqlError::DuplicateRelation(format!(
                "column \"{name}\" specified more than once"
            ))
            .into_duplicate_column());
        }
        let mut nullable = true;
        for opt in &def.options {
            match &opt.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => nullable = true,
                ColumnOption::PrimaryKey(_) => {
                    nullable = false;
                    primary_key.push(i);
                }
                other => {
                    return Err(SqlError::Unsupported(format!("column option {other}")));
                }
            }
        }
        columns.push(Column {
            name,
            sql_type: sql_type(&def.data_type)?,
            nullable,
        });
    }
    for c in constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(SqlError::InvalidParameter(
                        "multiple primary keys are not allowed".into(),
                    ));
                }
                for ic in &pk.columns {
                    let Expr::Identifier(ident) = &ic.column.expr else {
                        return Err(SqlError::Unsupported(format!(
                            "primary key on {}",
                            ic.column.expr
                        )));
                    };
                    let name = normalize_ident(ident);
                    let pos = columns.iter().position(|c| c.name == name).ok_or_else(|| {
                        SqlError::UnknownColumn(format!(
                            "column \"{name}\" named in key does not exist"
                        ))
                    })?;
                    columns[pos].nullable = false;
                    primary_key.push(pos);
                }
            }
            other => return Err(SqlError::Unsupported(format!("constraint {other}"))),
        }
    }
    if columns.is_empty() {
        return Err(SqlError::Syntax(
            "a relation needs at least one column".into(),
        ));
    }
    Ok((columns, primary_key))
}

/// A stream's `WATERMARK FOR column AS expr`: the expression is the column itself or the
/// column minus a fixed interval, and the column is a timestamp.
pub fn watermark(columns: &[Column], column: &Ident, expr: &Expr) -> SqlResult<Watermark> {
    let name = normalize_ident(column);
    let index = columns.iter().position(|c| c.name == name).ok_or_else(|| {
        SqlError::UnknownColumn(format!(
            "column \"{name}\" named in WATERMARK does not exist"
        ))
    })?;
    if !matches!(
        columns[index].sql_type,
        SqlType::Timestamp | SqlType::Timestamptz
    ) {
        return Err(SqlError::DatatypeMismatch(format!(
            "WATERMARK column \"{name}\" is {}, not a timestamp",
            columns[index].sql_type
        )));
    }
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(i) if normalize_ident(i) == name);
    let delay_micros = match expr {
        e if is_column(e) => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_column(left) => crate::windows::interval_micros(right)?,
        other => {
            return Err(SqlError::InvalidParameter(format!(
                "WATERMARK FOR {name} AS {other}: the watermark must be {name} or {name} - INTERVAL '...'"
            )));
        }
    };
    if delay_micros < 0 {
        return Err(SqlError::InvalidParameter(
            "a WATERMARK delay cannot be negative".into(),
        ));
    }
    Ok(Watermark {
        column: index,
        delay_micros,
    })
}

impl SqlError {
    fn into_duplicate_column(self) -> SqlError {
        match self {
            SqlError::DuplicateRelation(m) => SqlError::DuplicateColumn(m),
            other => other,
        }
    }
}
