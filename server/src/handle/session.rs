//! SET, RESET, SHOW and DISCARD: a connection's settings ([`ClientSession`]).
//!
//! A change to a setting Postgres reports (`application_name`, `DateStyle`, `TimeZone`, ...)
//! is sent to the client as ParameterStatus, as drivers expect.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eddy_sql::compat::ClientSession;
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::{Expr, Ident, ObjectName, Reset, Set, Statement as SqlStatement, Value};

use super::Outcome;

/// A SET value as text: `'x'` is x, `ISO, MDY` is "ISO, MDY", `-1` is "-1".
fn value_text(values: &[Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                Value::Number(n, _) => n.to_string(),
                Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_default(values: &[Expr]) -> bool {
    matches!(values, [Expr::Identifier(i)] if i.value.eq_ignore_ascii_case("default"))
}

fn name_of(name: &ObjectName) -> String {
    name.to_string().trim_matches('"').to_string()
}

fn reported(changes: Vec<(String, String)>, tag: &str) -> Outcome {
    if changes.is_empty() {
        Outcome::done(tag)
    } else {
        Outcome::Reported(changes, Box::new(Outcome::done(tag)))
    }
}

/// `SET ...`.
pub fn set(session: &ClientSession, set: &Set) -> SqlResult<Outcome> {
    let changed = match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = name_of(variable);
            if is_default(values) {
                session.reset(&name)?
            } else {
                session.set(&name, &value_text(values))?
            }
        }
        Set::SetTimeZone { value, .. } => {
            session.set("timezone", &value_text(std::slice::from_ref(value)))?
        }
        Set::SetNames { charset_name, .. } => {
            session.set("client_encoding", &charset_name.value)?
        }
        Set::MultipleAssignments { assignments } => {
            let mut changes = Vec::new();
            for a in assignments {
                changes.extend(session.set(
                    &name_of(&a.name),
                    &value_text(std::slice::from_ref(&a.value)),
                )?);
            }
            return Ok(reported(changes, "SET"));
        }
        // Every transaction is read committed at one epoch per statement; the other levels
        // are accepted as Postgres accepts them on a server without concurrent writers.
        Set::SetTransaction { .. } | Set::SetSessionParam(_) => None,
        Set::SetRole { .. } | Set::SetSessionAuthorization(_) => None,
        other => {
            return Err(SqlError::Unsupported(format!("{other} is not supported")));
        }
    };
    Ok(reported(changed.into_iter().collect(), "SET"))
}

/// `RESET name` / `RESET ALL`.
pub fn reset(session: &ClientSession, reset: &Reset) -> SqlResult<Outcome> {
    let changes = match reset {
        Reset::ALL => session.reset_all(),
        Reset::ConfigurationParameter(name) => session.reset(&name_of(name))?.into_iter().collect(),
    };
    Ok(reported(changes, "RESET"))
}

/// `DISCARD ALL`: settings back to their defaults (the pgwire layer has dropped the
/// connection's prepared statements).
pub fn discard(session: &ClientSession) -> Outcome {
    reported(session.reset_all(), "DISCARD ALL")
}

/// The setting `SHOW` names: its words (`transaction isolation level`) or the parts of a
/// custom setting's dotted name (`app.tenant`).
fn variable_name(variable: &[Ident]) -> String {
    let words: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
    let spaced = words.join(" ");
    match spaced.as_str() {
        "transaction isolation level" | "time zone" | "session authorization" | "all" => spaced,
        _ => words.join("."),
    }
}

/// The column `SHOW name` answers in: the parameter's name, as Postgres names it.
fn column_name(variable: &[Ident]) -> String {
    match variable_name(variable).as_str() {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "TimeZone".into(),
        other => other.to_string(),
    }
}

fn is_all(variable: &[Ident]) -> bool {
    variable_name(variable) == "all"
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

pub fn show_schema(stmt: &SqlStatement) -> SchemaRef {
    match stmt {
        SqlStatement::ShowVariable { variable } if is_all(variable) => show_all_schema(),
        SqlStatement::ShowVariable { variable } => Arc::new(Schema::new(vec![Field::new(
            column_name(variable),
            DataType::Utf8,
            false,
        )])),
        _ => Arc::new(Schema::new(vec![Field::new(
            "setting",
            DataType::Utf8,
            false,
        )])),
    }
}

/// `SHOW name` / `SHOW ALL`.
pub fn show(session: &ClientSession, variable: &[Ident]) -> SqlResult<Outcome> {
    let stmt = SqlStatement::ShowVariable {
        variable: variable.to_vec(),
    };
    let schema = show_schema(&stmt);
    let columns: Vec<Vec<String>> = if is_all(variable) {
        let all = session.all();
        vec![
            all.iter().map(|s| s.name.clone()).collect(),
            all.iter().map(|s| s.setting.clone()).collect(),
            all.iter().map(|s| s.description.clone()).collect(),
        ]
    } else {
        vec![vec![session.get(&variable_name(variable))?]]
    };
    let arrays = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as arrow::array::ArrayRef)
        .collect();
    Ok(Outcome::Rows {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, arrays)?],
        tag: "SHOW",
    })
}
