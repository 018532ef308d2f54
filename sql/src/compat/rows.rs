//! Catalog tables as rows of named values: a table names its columns once, each row sets
//! the columns it knows by name, and the rest take their type's default (NULL for text,
//! false, zero), the way most catalog columns read for Eddy's objects.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
/// Field metadata marking a column of object ids (`oid`, `regclass`, ...).
pub use datafusion_pg_catalog::pg_catalog::oid_field::OID_ALIAS_KEY;
use datafusion_pg_catalog::pg_catalog::oid_field::kind;

use crate::SqlResult;

/// A column's type in a catalog table.
#[derive(Clone, Copy, Debug)]
pub enum Col {
    /// An object identifier: int4, tagged so that casts and comparisons treat it as an oid.
    Oid,
    Text,
    Bool,
    I16,
    I32,
    I64,
    F32,
    /// timestamp with time zone.
    Ts,
    /// text[] (and the other array columns: aclitem[], options), NULL for Eddy's objects.
    TextArray,
    /// int2[] (column numbers).
    SmallArray,
    /// oid[].
    OidArray,
    /// int2vector: an int2 array that prints as `1 2`.
    SmallVector,
    /// oidvector: an oid array that prints as `0 0`.
    OidVector,
}

/// Field metadata naming a vector type (`int2vector`, `oidvector`): arrays that Postgres
/// prints space-separated.
pub const VECTOR_TYPE_KEY: &str = "pg.vector";

impl Col {
    pub(crate) fn field(self, name: &str) -> Field {
        let t = match self {
            Col::Oid | Col::I32 => DataType::Int32,
            Col::Text => DataType::Utf8,
            Col::Bool => DataType::Boolean,
            Col::I16 => DataType::Int16,
            Col::I64 => DataType::Int64,
            Col::F32 => DataType::Float32,
            Col::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Col::TextArray => list_of(DataType::Utf8),
            Col::SmallArray | Col::SmallVector => list_of(DataType::Int16),
            Col::OidArray | Col::OidVector => list_of(DataType::Int32),
        };
        let field = Field::new(name, t, true);
        let tag = |key: &str, value: &str| {
            field
                .clone()
                .with_metadata(HashMap::from([(key.to_string(), value.to_string())]))
        };
        match self {
            Col::Oid => tag(OID_ALIAS_KEY, kind::OID),
            Col::SmallVector => tag(VECTOR_TYPE_KEY, "int2vector"),
            Col::OidVector => tag(VECTOR_TYPE_KEY, "oidvector"),
            _ => field,
        }
    }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

/// A text value.
pub fn text(v: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(v.into()))
}

/// An int4 (or oid) value.
pub fn int(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

/// An int2 value.
pub fn small(v: i16) -> ScalarValue {
    ScalarValue::Int16(Some(v))
}

/// An int2[] value.
pub fn smallints(values: impl IntoIterator<Item = i16>) -> ScalarValue {
    let values: Vec<ScalarValue> = values
        .into_iter()
        .map(|v| ScalarValue::Int16(Some(v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int16))
}

/// An oid[] value.
pub fn oids(values: impl IntoIterator<Item = i32>) -> ScalarValue {
    let values: Vec<ScalarValue> = values
        .into_iter()
        .map(|v| ScalarValue::Int32(Some(v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int32))
}

pub fn boolean(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// Builds one catalog table.
pub struct TableBuilder {
    schema: SchemaRef,
    index: HashMap<String, usize>,
    columns: Vec<Vec<ScalarValue>>,
}

impl TableBuilder {
    /// A table of these columns.
    pub fn new(columns: &[(&str, Col)]) -> Self {
        let schema = Arc::new(Schema::new(
            columns.iter().map(|(n, c)| c.field(n)).collect::<Vec<_>>(),
        ));
        Self::with_schema(schema)
    }

    /// A table with the schema of an existing one (a copy of a real server's catalog).
    pub fn with_schema(schema: SchemaRef) -> Self {
        let index = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        let columns = vec![Vec::new(); schema.fields().len()];
        Self {
            schema,
            index,
            columns,
        }
    }

    /// Adds a row: the named values, defaults elsewhere. Values are cast to their column's
    /// type, so an `int` may fill an int2 column.
    pub fn row(&mut self, values: &[(&str, ScalarValue)]) -> SqlResult<()> {
        let mut row: Vec<Option<ScalarValue>> = vec![None; self.columns.len()];
        for (name, value) in values {
            let i = *self.index.get(*name).ok_or_else(|| {
                crate::SqlError::Internal(format!("catalog table has no column {name}"))
            })?;
            row[i] = Some(value.clone());
        }
        for (i, value) in row.into_iter().enumerate() {
            let field = self.schema.field(i);
            let value = match value {
                Some(v) if v.data_type() == *field.data_type() => v,
                Some(v) => v.cast_to(field.data_type())?,
                None => default_of(field.data_type())?,
            };
            self.columns[i].push(value);
        }
        Ok(())
    }

    pub fn finish(self) -> SqlResult<Arc<dyn TableProvider>> {
        let arrays = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, field)| {
                if values.is_empty() {
                    Ok(arrow::array::new_empty_array(field.data_type()))
                } else {
                    ScalarValue::iter_to_array(values)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = arrow::array::RecordBatch::try_new(self.schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(self.schema, vec![vec![batch]])?))
    }
}

fn default_of(t: &DataType) -> SqlResult<ScalarValue> {
    Ok(match t {
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Int16 => ScalarValue::Int16(Some(0)),
        DataType::Int32 => ScalarValue::Int32(Some(0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        other => ScalarValue::try_from(other)?,
    })
}
