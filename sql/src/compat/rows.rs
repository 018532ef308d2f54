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
    /// Each column's default, made once (a NULL array value allocates).
    defaults: Vec<Option<ScalarValue>>,
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
        let columns = vec![Vec::new(); schema.fields().len()];
        let defaults = schema
            .fields()
            .iter()
            .map(|f| default_of(f.data_type()).ok())
            .collect();
        Self {
            schema,
            defaults,
            columns,
        }
    }

    /// Adds a row: the named values, defaults elsewhere. Values are cast to their column's
    /// type, so an `int` may fill an int2 column.
    pub fn row(&mut self, values: &[(&str, ScalarValue)]) -> SqlResult<()> {
        // Rows name their values mostly in the table's order: each name is looked for from
        // where the last one was found.
        let fields = self.schema.fields();
        let mut from = 0;
        let mut set = Vec::with_capacity(values.len());
        for (name, value) in values {
            let i = (from..fields.len())
                .chain(0..from)
                .find(|&i| fields[i].name() == name)
                .ok_or_else(|| {
                    crate::SqlError::Internal(format!("catalog table has no column {name}"))
                })?;
            from = i + 1;
            let field = &fields[i];
            set.push((
                i,
                if value.data_type() == *field.data_type() {
                    value.clone()
                } else {
                    value.cast_to(field.data_type())?
                },
            ));
        }
        let mut row = Vec::with_capacity(fields.len());
        for (default, field) in self.defaults.iter().zip(fields) {
            row.push(match default {
                Some(default) => default.clone(),
                None => default_of(field.data_type())?,
            });
        }
        for (i, value) in set {
            row[i] = value;
        }
        for (column, value) in self.columns.iter_mut().zip(row) {
            column.push(value);
        }
        Ok(())
    }

    pub fn finish(self) -> SqlResult<Arc<dyn TableProvider>> {
        let arrays = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, field)| {
                if values.iter().all(ScalarValue::is_null) {
                    // Most columns of Eddy's objects are their NULL default.
                    Ok(arrow::array::new_null_array(
                        field.data_type(),
                        values.len(),
                    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int16Type, Int32Type};

    #[tokio::test]
    async fn rows_set_named_columns_in_any_order_and_default_the_rest() -> SqlResult<()> {
        let mut t = TableBuilder::new(&[
            ("oid", Col::Oid),
            ("name", Col::Text),
            ("flag", Col::Bool),
            ("n", Col::I16),
            ("acl", Col::TextArray),
            ("keys", Col::SmallVector),
        ]);
        t.row(&[("name", text("a")), ("oid", int(1))])?;
        t.row(&[
            ("keys", smallints([1, 2])),
            ("n", int(7)),
            ("flag", boolean(true)),
        ])?;
        assert!(t.row(&[("nope", int(1))]).is_err());
        let table = t.finish()?;
        let memory = table.downcast_ref::<MemTable>().expect("in memory");
        let batch = memory.batches[0].read().await[0].clone();
        assert_eq!(batch.num_rows(), 2);
        let oid = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!((oid.value(0), oid.value(1)), (1, 0));
        let name = batch.column(1).as_string::<i32>();
        assert_eq!(name.value(0), "a");
        assert!(name.is_null(1));
        let flag = batch.column(2).as_boolean();
        assert_eq!((flag.value(0), flag.value(1)), (false, true));
        let n = batch.column(3).as_primitive::<Int16Type>();
        assert_eq!((n.value(0), n.value(1)), (0, 7));
        // A column no row sets is all NULL, of its list type.
        assert_eq!(batch.column(4).null_count(), 2);
        assert_eq!(
            batch.column(4).data_type(),
            batch.schema().field(4).data_type()
        );
        let keys = batch.column(5).as_list::<i32>();
        assert!(keys.is_null(0));
        let second = keys.value(1);
        assert_eq!(second.as_primitive::<Int16Type>().values().to_vec(), [1, 2]);
        Ok(())
    }
}
