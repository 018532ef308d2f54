//! SHOW STREAMS | TABLES | MATERIALIZED VIEWS | VIEWS, SHOW CREATE, and SHOW of settings.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eddy_catalog::RelationKind;
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::{Ident, Statement as SqlStatement};

use super::{Outcome, Shared, resolve};

/// The server version clients see (what `SHOW server_version` and `version()` report).
pub const SERVER_VERSION: &str = "16.0";

pub fn relations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]))
}

pub fn create_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("create_sql", DataType::Utf8, false),
    ]))
}

fn text_rows(schema: SchemaRef, columns: Vec<Vec<String>>) -> SqlResult<Outcome> {
    let arrays = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as arrow::array::ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Outcome::Rows {
        schema,
        batches: vec![batch],
        tag: "SHOW",
    })
}

pub fn relations(shared: &Shared, kind: RelationKind) -> SqlResult<Outcome> {
    let snapshot = shared.catalog.snapshot();
    let mut names: Vec<String> = snapshot.of_kind(kind).map(|r| r.name.clone()).collect();
    names.sort();
    text_rows(relations_schema(), vec![names])
}

pub fn create(shared: &Shared, kind: RelationKind, name: &str) -> SqlResult<Outcome> {
    let rel = resolve(shared, name)?;
    if rel.kind != kind {
        return Err(SqlError::WrongObjectType(format!(
            "\"{name}\" is not a {kind}"
        )));
    }
    text_rows(
        create_schema(),
        vec![vec![rel.name.clone()], vec![rel.create_sql.clone()]],
    )
}

fn setting(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => SERVER_VERSION,
        "server_encoding" | "client_encoding" => "UTF8",
        "search_path" => "\"$user\", public",
        "datestyle" => "ISO, MDY",
        "timezone" => "UTC",
        "transaction_isolation" => "read committed",
        "standard_conforming_strings" => "on",
        "integer_datetimes" => "on",
        "is_superuser" => "on",
        "max_identifier_length" => "63",
        _ => return None,
    })
}

fn variable_name(variable: &[Ident]) -> String {
    variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn variable_schema(stmt: &SqlStatement) -> SchemaRef {
    let name = match stmt {
        SqlStatement::ShowVariable { variable } => variable_name(variable),
        _ => "setting".into(),
    };
    let name = if name == "transaction isolation level" {
        "transaction_isolation".into()
    } else {
        name
    };
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

pub fn variable(variable: &[Ident]) -> SqlResult<Outcome> {
    let name = variable_name(variable);
    let key = if name == "transaction isolation level" {
        "transaction_isolation".to_string()
    } else {
        name
    };
    let value = setting(&key).ok_or_else(|| {
        SqlError::InvalidParameter(format!("unrecognized configuration parameter \"{key}\""))
    })?;
    let schema = Arc::new(Schema::new(vec![Field::new(key, DataType::Utf8, false)]));
    text_rows(schema, vec![vec![value.to_string()]])
}
