//! The system functions clients call while they look around.
//!
//! `datafusion-pg-catalog` brings most of them (`format_type`, `pg_table_is_visible`,
//! `has_*_privilege`, `current_schema(s)`, `pg_get_expr`, ...); [`install`] adds them to the
//! shared session state with Eddy's own where Eddy knows better (`version()`, object
//! descriptions). [`bind`] adds to one statement's session the functions whose answers are
//! the connection's or the catalog's: `pg_backend_pid()`, `current_user`,
//! `current_setting()`, `set_config()`, `pg_get_viewdef()`, `pg_get_indexdef()`,
//! `pg_get_constraintdef()`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Volatility;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;

use super::binding::Binding;
use super::pg_catalog::{self, OWNER, OWNER_OID, Object};
use super::session::{SERVER_VERSION, Sessions};
use super::udf::{function, integers, per_integer, strings, texts};
use crate::context::DATABASE;

/// The `pg_*_is_visible` functions of objects other than relations: all true.
pub const VISIBILITY: [&str; 7] = [
    "pg_function_is_visible",
    "pg_type_is_visible",
    "pg_operator_is_visible",
    "pg_opclass_is_visible",
    "pg_collation_is_visible",
    "pg_conversion_is_visible",
    "pg_ts_config_is_visible",
];

/// What `version()` returns: clients parse the leading `PostgreSQL <version>`.
pub fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Eddy {}) on {}-linux, a streaming SQL database",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// The shared state with the catalog functions installed, and Postgres' oid-alias type
/// names (`regclass`, `regtype`, ...) and the catalogs' string types accepted in casts
/// ([`super::types`]).
pub fn install(state: SessionState) -> Result<SessionState> {
    let ctx = SessionContext::new_with_state(state);
    // The library registers its pg_catalog schema in the named catalog; Eddy's sessions
    // replace the catalog list, so this one only has to exist for the call.
    let catalogs = ctx.state().catalog_list().clone();
    catalogs.register_catalog(
        DATABASE.to_string(),
        Arc::new(MemoryCatalogProvider::new()) as Arc<dyn CatalogProvider>,
    );
    datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
        .map_err(|e| *e)?;
    let version_text = version();
    ctx.register_udf(function(
        "version",
        &[0],
        DataType::Utf8,
        Volatility::Stable,
        move |_, rows| Ok(texts(rows, |_| Some(version_text.clone()))),
    ));
    // The Postgres name of the argument's type (as text; Postgres answers a regtype).
    ctx.register_udf(function(
        "pg_typeof",
        &[1],
        DataType::Utf8,
        Volatility::Immutable,
        |args, rows| {
            let name = eddy_catalog::SqlType::from_arrow(args[0].data_type())
                .map_or_else(|| "unknown".to_string(), |t| t.to_string());
            Ok(texts(rows, |_| Some(name.clone())))
        },
    ));
    // Eddy has no comments on objects and no user functions: what these describe is empty.
    for (name, arities) in [
        ("obj_description", &[1usize, 2][..]),
        ("col_description", &[2]),
        ("shobj_description", &[2]),
        ("pg_get_function_result", &[1]),
        ("pg_get_function_arguments", &[1]),
        ("pg_get_function_identity_arguments", &[1]),
        ("pg_get_functiondef", &[1]),
        ("pg_get_triggerdef", &[1, 2]),
        ("pg_get_ruledef", &[1, 2]),
        ("pg_tablespace_location", &[1]),
        ("pg_get_serial_sequence", &[2]),
    ] {
        ctx.register_udf(function(
            name,
            arities,
            DataType::Utf8,
            Volatility::Stable,
            |_, rows| Ok(texts(rows, |_| None)),
        ));
    }
    ctx.register_udf(per_integer::<_, StringArray>(
        "pg_get_userbyid",
        DataType::Utf8,
        Volatility::Stable,
        |oid| {
            Some(if oid == i64::from(OWNER_OID) {
                OWNER.to_string()
            } else {
                format!("unknown (OID={oid})")
            })
        },
    ));
    // Everything in Eddy's schemas is visible on the (fixed) search path.
    for name in VISIBILITY {
        ctx.register_udf(per_integer::<_, BooleanArray>(
            name,
            DataType::Boolean,
            Volatility::Stable,
            |_| Some(true),
        ));
    }
    // Eddy has no logical replication: nothing is published.
    ctx.register_udf(per_integer::<_, BooleanArray>(
        "pg_relation_is_publishable",
        DataType::Boolean,
        Volatility::Stable,
        |_| Some(false),
    ));
    // Eddy's storage is shared by all relations in one store; per-relation sizes are not
    // tracked, so they read as zero.
    for name in ["pg_table_size", "pg_indexes_size"] {
        ctx.register_udf(per_integer::<_, Int64Array>(
            name,
            DataType::Int64,
            Volatility::Stable,
            |_| Some(0),
        ));
    }
    ctx.register_udf(function(
        "format",
        &[],
        DataType::Utf8,
        Volatility::Stable,
        |args, rows| {
            let columns = args.iter().map(strings).collect::<Result<Vec<_>>>()?;
            let Some((formats, values)) = columns.split_first() else {
                return Err(DataFusionError::Plan(
                    "format() needs a format string".into(),
                ));
            };
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                let Some(pattern) = &formats[row] else {
                    out.push(None);
                    continue;
                };
                let row_values: Vec<Option<&str>> =
                    values.iter().map(|v| v[row].as_deref()).collect();
                out.push(Some(format_text(pattern, &row_values)?));
            }
            Ok(Arc::new(StringArray::from(out)))
        },
    ));
    ctx.register_udf(function(
        "json_build_object",
        &[],
        DataType::Utf8,
        Volatility::Stable,
        |args, rows| {
            let columns = args.iter().map(json_values).collect::<Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                let mut object = serde_json::Map::new();
                for pair in columns.chunks(2) {
                    let key = match &pair[0][row] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let value = pair
                        .get(1)
                        .map_or(serde_json::Value::Null, |v| v[row].clone());
                    object.insert(key, value);
                }
                out.push(Some(serde_json::Value::Object(object).to_string()));
            }
            Ok(Arc::new(StringArray::from(out)))
        },
    ));
    ctx.register_udf(function(
        "eddy_expand_array",
        &[1],
        expanded_type(),
        Volatility::Immutable,
        |args, _| expand_arrays(&args[0]),
    ));
    ctx.register_udf(function(
        "like_escape",
        &[2],
        DataType::Utf8,
        Volatility::Immutable,
        |args, _| {
            let patterns = strings(&args[0])?;
            let escapes = strings(&args[1])?;
            Ok(Arc::new(
                patterns
                    .iter()
                    .zip(escapes)
                    .map(|(p, e)| Some(like_escape(p.as_deref()?, e.as_deref()?)))
                    .collect::<StringArray>(),
            ))
        },
    ));
    // Expressions (defaults, index predicates) are stored as text where Eddy has any; NULL
    // stays NULL, as Postgres answers for a column without one.
    ctx.register_udf(function(
        "pg_get_expr",
        &[2, 3],
        DataType::Utf8,
        Volatility::Stable,
        |args, _| Ok(Arc::new(StringArray::from(strings(&args[0])?))),
    ));
    ctx.register_udf(function(
        "to_regtype",
        &[1],
        DataType::Int32,
        Volatility::Stable,
        |args, _| {
            Ok(Arc::new(
                strings(&args[0])?
                    .iter()
                    .map(|n| n.as_deref().and_then(pg_catalog::type_oid))
                    .collect::<Int32Array>(),
            ))
        },
    ));
    ctx.register_udf(per_integer::<_, StringArray>(
        "pg_size_pretty",
        DataType::Utf8,
        Volatility::Immutable,
        |bytes| Some(size_pretty(bytes)),
    ));
    ctx.register_udf(per_integer::<_, StringArray>(
        "pg_encoding_to_char",
        DataType::Utf8,
        Volatility::Stable,
        |encoding| {
            Some(match encoding {
                0 => "SQL_ASCII",
                6 => "UTF8",
                _ => "",
            })
        },
    ));
    ctx.register_udf(function(
        "pg_sleep",
        &[1],
        DataType::Utf8,
        Volatility::Volatile,
        |args, rows| {
            let seconds = arrow::compute::cast(&args[0], &DataType::Float64)?;
            for s in seconds
                .as_primitive::<arrow::datatypes::Float64Type>()
                .iter()
                .flatten()
            {
                if s > 0.0 {
                    sleep(std::time::Duration::from_secs_f64(s.min(3600.0)));
                }
            }
            Ok(texts(rows, |_| None))
        },
    ));
    Ok(
        datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
            .with_type_planner(Arc::new(super::types::PostgresTypes::default()))
            .build(),
    )
}

/// Postgres' `format()`: `%s` a value as text (NULL as nothing), `%I` an identifier quoted
/// where needed, `%L` a literal quoted (NULL unquoted), `%%` a percent sign.
fn format_text(pattern: &str, values: &[Option<&str>]) -> Result<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut next = values.iter();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next();
        if spec == Some('%') {
            out.push('%');
            continue;
        }
        let value = next
            .next()
            .ok_or_else(|| DataFusionError::Execution("too few arguments for format()".into()))?;
        match (spec, value) {
            (Some('s'), v) => out.push_str(v.unwrap_or("")),
            (Some('I'), Some(v)) => out.push_str(&crate::names::quote_identifier(v)),
            (Some('I'), None) => {
                return Err(DataFusionError::Execution(
                    "null values cannot be formatted as an SQL identifier".into(),
                ));
            }
            (Some('L'), Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
            (Some('L'), None) => out.push_str("NULL"),
            (other, _) => {
                return Err(DataFusionError::Execution(format!(
                    "unrecognized format() type specifier \"{}\"",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        }
    }
    Ok(out)
}

/// An argument's values as JSON: numbers and booleans as themselves, the rest as text.
fn json_values(a: &ArrayRef) -> Result<Vec<serde_json::Value>> {
    use serde_json::Value;
    let t = a.data_type();
    if t.is_numeric() {
        let floats = arrow::compute::cast(a, &DataType::Float64)?;
        let integers = arrow::compute::cast(a, &DataType::Int64)?;
        let (f, i) = (
            floats.as_primitive::<arrow::datatypes::Float64Type>(),
            integers.as_primitive::<Int64Type>(),
        );
        return Ok((0..a.len())
            .map(|r| match (f.is_null(r), t.is_integer()) {
                (true, _) => Value::Null,
                (false, true) => Value::from(i.value(r)),
                (false, false) => Value::from(f.value(r)),
            })
            .collect());
    }
    if t == &DataType::Boolean {
        return Ok(a
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect());
    }
    Ok(strings(a)?
        .into_iter()
        .map(|v| v.map_or(Value::Null, Value::String))
        .collect())
}

/// `(x, n)` records: an array element and its position from 1.
fn expanded_fields() -> arrow::datatypes::Fields {
    use arrow::datatypes::Field;
    vec![
        Field::new("x", DataType::Int32, true),
        Field::new("n", DataType::Int32, false),
    ]
    .into()
}

fn expanded_type() -> DataType {
    DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
        DataType::Struct(expanded_fields()),
        true,
    )))
}

/// Each array as a list of `(x, n)` records (what `_pg_expandarray` yields, one row each
/// once unnested).
fn expand_arrays(arrays: &ArrayRef) -> Result<ArrayRef> {
    use arrow::array::{Int32Builder, ListBuilder, StructBuilder};
    let fields = expanded_fields();
    let mut out =
        ListBuilder::new(StructBuilder::from_fields(fields.clone(), 0)).with_field(Arc::new(
            arrow::datatypes::Field::new_list_field(DataType::Struct(fields), true),
        ));
    let lists = match arrays.data_type() {
        DataType::List(_) => arrays.as_list::<i32>(),
        other => {
            return Err(DataFusionError::Execution(format!(
                "_pg_expandarray expects an array, not {other}"
            )));
        }
    };
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.append(false);
            continue;
        }
        let elements = arrow::compute::cast(&lists.value(i), &DataType::Int32)?;
        let elements = elements.as_primitive::<arrow::datatypes::Int32Type>();
        let records = out.values();
        for (n, x) in elements.iter().enumerate() {
            records
                .field_builder::<Int32Builder>(0)
                .expect("x is an int4 field")
                .append_option(x);
            records
                .field_builder::<Int32Builder>(1)
                .expect("n is an int4 field")
                .append_value(n as i32 + 1);
            records.append(true);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

/// A LIKE pattern whose escape character is `escape` (empty: none), rewritten to escape
/// with a backslash.
fn like_escape(pattern: &str, escape: &str) -> String {
    let escape = escape.chars().next();
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            out.push('\\');
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// A byte count as Postgres' `pg_size_pretty` prints it (`8192 bytes`, `10 kB`, `3 MB`).
fn size_pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 10.0 * 1024.0 - 0.5 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", value.round() as i64, UNITS[unit])
}

/// Sleeps inside a function call. On a multi-threaded runtime the worker hands its other
/// tasks to the rest first, so a sleeping statement holds up nothing but itself.
fn sleep(duration: std::time::Duration) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| std::thread::sleep(duration));
        }
        _ => std::thread::sleep(duration),
    }
}

/// `CREATE UNIQUE INDEX ...` for a primary key index, as `pg_get_indexdef` prints it.
fn index_definition(rel: &eddy_catalog::Relation) -> String {
    format!(
        "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
        pg_catalog::primary_key_name(rel),
        crate::names::DEFAULT_SCHEMA,
        rel.name,
        key_columns(rel)
    )
}

fn key_columns(rel: &eddy_catalog::Relation) -> String {
    rel.primary_key
        .iter()
        .map(|&c| rel.columns[c].name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The functions [`bind`] adds that look objects up in the catalog snapshot. Being stable,
/// DataFusion computes a call of one whose arguments are constants once, while planning.
pub const SNAPSHOT_LOOKUPS: [&str; 4] = [
    "to_regclass",
    "pg_get_viewdef",
    "pg_get_indexdef",
    "pg_get_constraintdef",
];

/// Adds the functions that answer with this session's values or this catalog's objects.
///
/// Those that look objects up or read settings take the snapshot and the client from
/// `binding` per call, so that a plan made with them answers for whatever the binding holds
/// when it runs; none holds on to the client (a session is open while anything does). The
/// user and the backend pid are copied: the user is part of what a kept plan is found by,
/// and a query that asks for the pid is never kept.
pub fn bind(ctx: &SessionContext, binding: &Arc<Binding>, sessions: &Arc<Sessions>) {
    let client = binding.client();
    let open = sessions.clone();
    ctx.register_udf(per_integer::<_, BooleanArray>(
        "pg_cancel_backend",
        DataType::Boolean,
        Volatility::Volatile,
        move |pid| Some(open.cancel(pid as i32)),
    ));
    let pid = client.pid;
    ctx.register_udf(function(
        "pg_backend_pid",
        &[0],
        DataType::Int32,
        Volatility::Stable,
        move |_, rows| Ok(Arc::new(Int32Array::from(vec![pid; rows]))),
    ));
    for name in ["session_user", "current_user", "current_role"] {
        let user = client.user.clone();
        ctx.register_udf(function(
            name,
            &[0],
            DataType::Utf8,
            Volatility::Stable,
            move |_, rows| Ok(texts(rows, |_| Some(user.clone()))),
        ));
    }
    let bound = binding.clone();
    ctx.register_udf(function(
        "current_setting",
        &[1, 2],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| {
            let names = strings(&args[0])?;
            let missing_ok = match args.get(1) {
                Some(a) => arrow::compute::cast(a, &DataType::Boolean)?
                    .as_boolean()
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect(),
                None => vec![false; names.len()],
            };
            let session = bound.client();
            let mut out = Vec::with_capacity(names.len());
            for (name, ok) in names.iter().zip(missing_ok) {
                match name.as_deref().map(|n| session.get(n)) {
                    None => out.push(None),
                    Some(Ok(v)) => out.push(Some(v)),
                    Some(Err(_)) if ok => out.push(None),
                    Some(Err(e)) => return Err(DataFusionError::Execution(e.to_string())),
                }
            }
            Ok(Arc::new(StringArray::from(out)))
        },
    ));
    let bound = binding.clone();
    ctx.register_udf(function(
        "set_config",
        &[3],
        DataType::Utf8,
        Volatility::Volatile,
        move |args, _| {
            let session = bound.client();
            let names = strings(&args[0])?;
            let values = strings(&args[1])?;
            let mut out = Vec::with_capacity(names.len());
            for (name, value) in names.iter().zip(values) {
                let (Some(name), Some(value)) = (name, value) else {
                    out.push(None);
                    continue;
                };
                session
                    .set(name, &value)
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                out.push(session.get(name).ok());
            }
            Ok(Arc::new(StringArray::from(out)))
        },
    ));
    let bound = binding.clone();
    ctx.register_udf(function(
        "to_regclass",
        &[1],
        DataType::Int32,
        Volatility::Stable,
        move |args, _| {
            let snapshot = bound.snapshot();
            Ok(Arc::new(
                strings(&args[0])?
                    .iter()
                    .map(|n| {
                        let n = n.as_deref()?.trim().to_lowercase();
                        let n = n.strip_prefix("public.").unwrap_or(&n);
                        snapshot
                            .get(n.trim_matches('"'))
                            .filter(|r| pg_catalog::listed(r))
                            .map(|r| pg_catalog::relation_oid(r.id))
                    })
                    .collect::<Int32Array>(),
            ))
        },
    ));
    let bound = binding.clone();
    ctx.register_udf(function(
        "pg_get_viewdef",
        &[1, 2],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| {
            let snapshot = bound.snapshot();
            let by_name = matches!(args[0].data_type(), DataType::Utf8 | DataType::Utf8View);
            let rels: Vec<_> = if by_name {
                strings(&args[0])?
                    .into_iter()
                    .map(|n| n.and_then(|n| snapshot.get(&n.to_lowercase()).cloned()))
                    .collect()
            } else {
                integers(&args[0])?
                    .into_iter()
                    .map(|o| match o.and_then(pg_catalog::object_of) {
                        Some(Object::Relation(id)) => snapshot.by_id(id).cloned(),
                        _ => None,
                    })
                    .collect()
            };
            Ok(Arc::new(
                rels.iter()
                    .map(|r| {
                        r.as_ref()
                            .filter(|r| r.query.is_some())
                            .map(|r| pg_catalog::view_definition(r))
                    })
                    .collect::<StringArray>(),
            ))
        },
    ));
    let bound = binding.clone();
    ctx.register_udf(function(
        "pg_get_indexdef",
        &[1, 3],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| {
            let snapshot = bound.snapshot();
            // With a column number other than 0, that key column's name.
            let oids = integers(&args[0])?;
            let columns = match args.get(1) {
                Some(c) => integers(c)?,
                None => vec![Some(0); oids.len()],
            };
            Ok(Arc::new(
                oids.iter()
                    .zip(columns)
                    .map(|(o, c)| {
                        let Some(Object::Index(id)) = o.and_then(pg_catalog::object_of) else {
                            return None;
                        };
                        let rel = snapshot.by_id(id)?;
                        match c? {
                            0 => Some(index_definition(rel)),
                            n => rel
                                .primary_key
                                .get(usize::try_from(n - 1).ok()?)
                                .map(|&k| rel.columns[k].name.clone()),
                        }
                    })
                    .collect::<StringArray>(),
            ))
        },
    ));
    let bound = binding.clone();
    ctx.register_udf(function(
        "pg_get_constraintdef",
        &[1, 2],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| {
            let snapshot = bound.snapshot();
            let oids = integers(&args[0])?;
            Ok(Arc::new(
                oids.iter()
                    .map(|o| match o.and_then(pg_catalog::object_of) {
                        Some(Object::Constraint(id)) => snapshot
                            .by_id(id)
                            .map(|r| format!("PRIMARY KEY ({})", key_columns(r))),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ))
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_postgres_first() {
        assert!(version().starts_with("PostgreSQL 16.0 "), "{}", version());
    }

    #[test]
    fn format_follows_postgres() {
        assert_eq!(
            format_text("%s.%I = %L (%%)", &[Some("a"), Some("Big"), Some("it's")]).unwrap(),
            "a.\"Big\" = 'it''s' (%)"
        );
        assert_eq!(format_text("%s|%L", &[None, None]).unwrap(), "|NULL");
        assert!(format_text("%s %s", &[Some("one")]).is_err());
    }

    #[test]
    fn like_patterns_take_backslash_escapes() {
        assert_eq!(like_escape("pg/_%", "/"), "pg\\_%");
        assert_eq!(like_escape("a\\b//", "/"), "a\\\\b\\/");
        assert_eq!(like_escape("a_b", ""), "a_b");
    }

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10 * 1024 - 1), "10239 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(3 * 1024 * 1024 * 1024), "3072 MB");
        assert_eq!(size_pretty(20 * 1024 * 1024 * 1024), "20 GB");
    }

    #[test]
    fn texts_fill_every_row() {
        let a = texts(3, |i| (i != 1).then(|| i.to_string()));
        assert_eq!(a.len(), 3);
        assert!(a.is_null(1));
    }
}
