//! Postgres' reading of literals where DataFusion reads them otherwise.
//!
//! - bytea: Postgres reads the text of a bytea value in its hex form (`'\x00ff'`) or its
//!   escape form (`'a\000b'`, `'\\'` for a backslash); DataFusion would take the text's own
//!   bytes. So before a statement is planned, a string literal that becomes a bytea
//!   (`'...'::bytea`, `CAST('...' AS bytea)`, `bytea '...'`, or a VALUES entry for a bytea
//!   column) is decoded here and replaced by the equivalent `X'...'` literal, which DataFusion
//!   reads as binary.
//! - boolean: a quoted literal compared with a boolean (`indisprimary = 't'`, as ODBC's
//!   catalog queries write it) is of unknown type in Postgres and is read as a boolean;
//!   DataFusion finds no common type for boolean and text. [`UnknownLiterals`] reads it
//!   while the comparison is planned.

use std::ops::ControlFlow;

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr as DfExpr, ExprSchemable};
use sqlparser::ast::{BinaryOperator, DataType, Expr, Value, ValueWithSpan, visit_expressions_mut};

use crate::{SqlError, SqlResult};

/// Decodes the text form of a bytea value, hex or escape format.
pub fn decode_bytea(text: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        return decode_hex(hex);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(octal) = bytes.get(i + 1..i + 4)
            && octal[0] <= b'3'
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            out.push(octal.iter().fold(0u8, |acc, b| acc * 8 + (b - b'0')));
            i += 4;
        } else {
            return Err(SqlError::InvalidText(
                "invalid input syntax for type bytea".into(),
            ));
        }
    }
    Ok(out)
}

fn decode_hex(hex: &str) -> SqlResult<Vec<u8>> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| {
            (b as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
                SqlError::InvalidText(format!("invalid hexadecimal digit: \"{}\"", b as char))
            })
        })
        .collect::<SqlResult<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err(SqlError::InvalidText(
            "invalid hexadecimal data: odd number of digits".into(),
        ));
    }
    Ok(digits.chunks(2).map(|p| p[0] * 16 + p[1]).collect())
}

/// Replaces a string literal by the hex literal of the bytea it denotes; other expressions are
/// left alone.
pub fn bytea_literal(expr: &mut Expr) -> SqlResult<()> {
    if let Expr::Value(ValueWithSpan { value, .. }) = expr
        && let Some(text) = string_of(value)
    {
        *value = hex_literal(&decode_bytea(text)?);
    }
    Ok(())
}

/// The `X'...'` literal of some bytes.
fn hex_literal(bytes: &[u8]) -> Value {
    Value::HexStringLiteral(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

fn string_of(value: &Value) -> Option<&str> {
    match value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
        _ => None,
    }
}

/// Rewrites every string literal cast to bytea in `node` (a statement or an expression).
pub fn rewrite_bytea_casts<V: sqlparser::ast::VisitMut>(node: &mut V) -> SqlResult<()> {
    let flow = visit_expressions_mut(node, |expr| {
        let result = match expr {
            Expr::Cast {
                expr: inner,
                data_type: DataType::Bytea,
                ..
            } => bytea_literal(inner),
            Expr::TypedString(typed) if typed.data_type == DataType::Bytea => {
                match string_of(&typed.value.value) {
                    Some(text) => decode_bytea(text).map(|bytes| {
                        *expr = Expr::Value(hex_literal(&bytes).into());
                    }),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    });
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// Reads a boolean the way Postgres does: `t`, `true`, `yes`, `on`, `1` and their opposites,
/// any unique prefix of the words, in any case, with surrounding spaces.
pub fn parse_bool(text: &str) -> Option<bool> {
    let word = text.trim().to_ascii_lowercase();
    let prefix_of = |full: &str, least: usize| word.len() >= least && full.starts_with(&word);
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || word == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || word == "0" {
        Some(false)
    } else {
        None
    }
}

/// Plans comparisons of a boolean with a quoted literal as Postgres does: the literal is
/// read as a boolean (and is an error, 22P02, when it is none).
#[derive(Debug, Default)]
pub struct UnknownLiterals;

impl ExprPlanner for UnknownLiterals {
    fn plan_binary_op(
        &self,
        mut expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> datafusion::common::Result<PlannerResult<RawBinaryExpr>> {
        use BinaryOperator::*;
        if !matches!(expr.op, Eq | NotEq | Lt | LtEq | Gt | GtEq) {
            return Ok(PlannerResult::Original(expr));
        }
        if !read_as_bool(&mut expr.right, &expr.left, schema)? {
            read_as_bool(&mut expr.left, &expr.right, schema)?;
        }
        Ok(PlannerResult::Original(expr))
    }
}

/// Replaces `literal` by the boolean it denotes if it is a quoted literal and `other` is a
/// boolean; whether it did.
fn read_as_bool(
    literal: &mut DfExpr,
    other: &DfExpr,
    schema: &DFSchema,
) -> datafusion::common::Result<bool> {
    let DfExpr::Literal(ScalarValue::Utf8(Some(text)), _) = &*literal else {
        return Ok(false);
    };
    if !other
        .get_type(schema)
        .is_ok_and(|t| t == arrow::datatypes::DataType::Boolean)
    {
        return Ok(false);
    }
    let value = parse_bool(text).ok_or_else(|| {
        arrow::error::ArrowError::CastError(format!(
            "invalid input syntax for type boolean: \"{text}\""
        ))
    })?;
    *literal = DfExpr::Literal(ScalarValue::Boolean(Some(value)), None);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_like_postgres() {
        for t in ["t", "TRUE", " tr ", "yes", "y", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "false", "No", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for neither in ["", "o", "2", "truth", "nope", "offf"] {
            assert_eq!(parse_bool(neither), None, "{neither}");
        }
    }

    #[test]
    fn hex_and_escape_forms() {
        assert_eq!(decode_bytea("\\x00ff10").unwrap(), vec![0x00, 0xff, 0x10]);
        assert_eq!(decode_bytea("\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(decode_bytea("a\\000b\\\\").unwrap(), b"a\0b\\".to_vec());
        assert_eq!(decode_bytea("plain").unwrap(), b"plain".to_vec());
        assert!(decode_bytea("\\x0").is_err());
        assert!(decode_bytea("\\xzz").is_err());
        assert!(decode_bytea("bad\\9").is_err());
    }

    #[test]
    fn casts_become_hex_literals() {
        let mut stmts = crate::parser::parse(
            "SELECT '\\x0a0b'::bytea, CAST('a\\\\' AS BYTEA), bytea '\\x01', 'text'",
        )
        .unwrap();
        let crate::parser::Statement::Sql(stmt) = &mut stmts[0] else {
            panic!("not a SQL statement")
        };
        rewrite_bytea_casts(stmt.as_mut()).unwrap();
        assert_eq!(
            stmt.to_string(),
            "SELECT X'0A0B'::BYTEA, CAST(X'615C' AS BYTEA), X'01', 'text'"
        );
    }
}
