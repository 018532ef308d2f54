//! The copies of a real server's own catalogs (`pg_type`, `pg_proc`, `pg_am`, ...) that
//! `datafusion-pg-catalog` ships, served as they are or, where the copy holds arrays as text,
//! with those columns as arrays.

use std::sync::{Arc, LazyLock};

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList, TableProvider};
use datafusion::datasource::MemTable;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};

use super::rows::Col;
use crate::{SqlError, SqlResult};

/// The copies of a real server's catalogs (`pg_type`, `pg_proc`, `pg_am`, ...) and the
/// provider that serves them.
pub(super) struct Static {
    pub(super) tables: Arc<PgCatalogStaticTables>,
    pub(super) provider:
        PgCatalogSchemaProvider<Arc<dyn CatalogProviderList>, EmptyContextProvider>,
}

static STATIC: LazyLock<Result<Static, String>> = LazyLock::new(|| {
    let tables = Arc::new(PgCatalogStaticTables::try_new().map_err(|e| e.to_string())?);
    let empty: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
    let provider = PgCatalogSchemaProvider::try_new(empty, tables.clone(), EmptyContextProvider)
        .map_err(|e| e.to_string())?;
    Ok(Static { tables, provider })
});

pub(super) fn statics() -> SqlResult<&'static Static> {
    STATIC
        .as_ref()
        .map_err(|e| SqlError::Internal(format!("pg_catalog tables did not load: {e}")))
}

/// `pg_proc` with its array columns as arrays (the copy of a real server's catalog holds them
/// as text: `25 23` for an oidvector, `[26, 20]`, `['i', 'o']`), so that casts like
/// `proargtypes::regtype[]` and `unnest(proargnames)` work as in Postgres.
pub(super) fn pg_proc() -> SqlResult<Arc<dyn TableProvider>> {
    static PG_PROC: LazyLock<Result<Arc<MemTable>, String>> =
        LazyLock::new(|| typed_pg_proc().map_err(|e| e.to_string()));
    match &*PG_PROC {
        Ok(table) => Ok(table.clone() as Arc<dyn TableProvider>),
        Err(e) => Err(SqlError::Internal(format!("pg_proc: {e}"))),
    }
}

fn typed_pg_proc() -> SqlResult<Arc<MemTable>> {
    use arrow::array::{Array, AsArray, Int32Builder, ListBuilder, StringBuilder};

    let source = &statics()?.tables.pg_proc;
    let arrays: [(&str, Col); 4] = [
        ("proargtypes", Col::OidVector),
        ("proallargtypes", Col::OidArray),
        ("proargmodes", Col::TextArray),
        ("proargnames", Col::TextArray),
    ];
    let fields: Vec<arrow::datatypes::FieldRef> = source
        .schema()
        .fields()
        .iter()
        .map(|f| match arrays.iter().find(|(n, _)| n == f.name()) {
            Some((name, col)) => Arc::new(col.field(name)),
            None => f.clone(),
        })
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    // The items of a list as text writes it, in any of the forms above.
    let items = |text: &str| -> Vec<String> {
        text.trim_matches(|c| matches!(c, '[' | ']' | '{' | '}'))
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|item| item.trim_matches(|c| matches!(c, '\'' | '"')).to_string())
            .filter(|item| !item.is_empty())
            .collect()
    };
    let mut batches = Vec::new();
    for batch in source.data() {
        let mut columns = batch.columns().to_vec();
        for (name, col) in arrays {
            let Some(i) = schema.index_of(name).ok() else {
                continue;
            };
            let Some(texts) = batch.column(i).as_string_opt::<i32>() else {
                continue;
            };
            columns[i] = match col {
                Col::TextArray => {
                    let mut list = ListBuilder::new(StringBuilder::new());
                    for text in texts.iter() {
                        match text {
                            Some(t) => {
                                list.values().extend(items(t).into_iter().map(Some));
                                list.append(true);
                            }
                            None => list.append_null(),
                        }
                    }
                    Arc::new(list.finish())
                }
                _ => {
                    let mut list = ListBuilder::new(Int32Builder::new());
                    for text in texts.iter() {
                        match text {
                            Some(t) => {
                                for item in items(t) {
                                    let oid = item.parse::<i32>().map_err(|e| {
                                        SqlError::Internal(format!("{name} \"{t}\": {e}"))
                                    })?;
                                    list.values().append_value(oid);
                                }
                                list.append(true);
                            }
                            None => list.append_null(),
                        }
                    }
                    Arc::new(list.finish())
                }
            };
            debug_assert_eq!(columns[i].len(), batch.num_rows());
        }
        // The builders' item fields carry no metadata: cast to the schema's own.
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(&c, f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        batches.push(arrow::array::RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// The oid of a type by any name Postgres accepts for it (`integer`, `int4`,
/// `pg_catalog.numeric`, `text[]`), as `to_regtype` and `'x'::regtype` resolve it.
pub fn type_oid(name: &str) -> Option<i32> {
    static BY_NAME: LazyLock<std::collections::HashMap<String, i32>> = LazyLock::new(|| {
        use arrow::array::AsArray;
        use arrow::datatypes::Int32Type;
        let mut map = std::collections::HashMap::new();
        if let Ok(statics) = statics() {
            for batch in statics.tables.pg_type.data() {
                let (Some(oids), Some(names)) =
                    (batch.column_by_name("oid"), batch.column_by_name("typname"))
                else {
                    continue;
                };
                let oids = oids.as_primitive::<Int32Type>();
                let names = names.as_string::<i32>();
                for i in 0..batch.num_rows() {
                    map.insert(names.value(i).to_string(), oids.value(i));
                }
            }
        }
        map
    });
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let (base, array) = match name.strip_suffix("[]") {
        Some(base) => (base.trim(), true),
        None => (name, false),
    };
    // Without modifiers: `numeric(10,2)` is numeric.
    let base = base.split('(').next().unwrap_or(base).trim();
    let canonical = match base {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "\"char\"" => "char",
        other => other,
    };
    let key = if array {
        format!("_{canonical}")
    } else {
        canonical.to_string()
    };
    BY_NAME.get(&key).copied()
}
