//! SHOW STREAMS | TABLES | MATERIALIZED VIEWS | VIEWS | SINKS and SHOW CREATE.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eddy_catalog::RelationKind;
use eddy_sql::{SqlError, SqlResult};

use super::{Outcome, Shared, resolve};

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
