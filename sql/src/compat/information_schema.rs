//! `information_schema`, the SQL standard's view of the catalog, as BI tools read it.
//!
//! Exactly as Postgres: streams and tables are `BASE TABLE`, plain views `VIEW`, and
//! materialized views are not listed (they are in `pg_class` and `pg_matviews`). Tools know
//! this quirk and read materialized views from `pg_catalog` (Metabase unions both, and
//! would list a materialized view twice if it were in both).

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use eddy_catalog::{Relation, RelationKind, Snapshot, SqlType};

use super::pg_catalog::{has_primary_key, listed, primary_key_name, type_info, view_definition};
use super::rows::{Col, TableBuilder, int, text};
use crate::SqlResult;
use crate::context::DATABASE;
use crate::names::DEFAULT_SCHEMA;

/// Every table name of the schema.
pub const TABLES: &[&str] = &[
    "schemata",
    "tables",
    "columns",
    "views",
    "table_constraints",
    "key_column_usage",
    "constraint_column_usage",
    "referential_constraints",
    "routines",
    "parameters",
];

/// The `information_schema` table of that name, with the current contents.
pub fn table(name: &str, catalog: &Snapshot) -> SqlResult<Option<Arc<dyn TableProvider>>> {
    let relations: Vec<&Arc<Relation>> = catalog
        .relations()
        .filter(|r| listed(r) && r.kind != RelationKind::MaterializedView)
        .collect();
    Ok(Some(match name {
        "schemata" => schemata()?,
        "tables" => tables(&relations)?,
        "columns" => columns(&relations)?,
        "views" => views(&relations)?,
        "table_constraints" => table_constraints(&relations)?,
        "key_column_usage" => key_column_usage(&relations, true)?,
        "constraint_column_usage" => key_column_usage(&relations, false)?,
        "referential_constraints" => referential_constraints()?,
        "routines" => routines()?,
        "parameters" => parameters()?,
        _ => return Ok(None),
    }))
}

fn schemata() -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("catalog_name", Col::Text),
        ("schema_name", Col::Text),
        ("schema_owner", Col::Text),
        ("default_character_set_catalog", Col::Text),
        ("default_character_set_schema", Col::Text),
        ("default_character_set_name", Col::Text),
        ("sql_path", Col::Text),
    ]);
    for (_, name) in super::pg_catalog::namespaces() {
        t.row(&[
            ("catalog_name", text(DATABASE)),
            ("schema_name", text(name)),
            ("schema_owner", text(super::pg_catalog::OWNER)),
        ])?;
    }
    t.finish()
}

fn table_type(rel: &Relation) -> &'static str {
    match rel.kind {
        RelationKind::Stream | RelationKind::Table => "BASE TABLE",
        _ => "VIEW",
    }
}

fn yes_no(v: bool) -> ScalarValue {
    text(if v { "YES" } else { "NO" })
}

fn tables(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("table_catalog", Col::Text),
        ("table_schema", Col::Text),
        ("table_name", Col::Text),
        ("table_type", Col::Text),
        ("self_referencing_column_name", Col::Text),
        ("reference_generation", Col::Text),
        ("user_defined_type_catalog", Col::Text),
        ("user_defined_type_schema", Col::Text),
        ("user_defined_type_name", Col::Text),
        ("is_insertable_into", Col::Text),
        ("is_typed", Col::Text),
        ("commit_action", Col::Text),
    ]);
    for rel in relations {
        t.row(&[
            ("table_catalog", text(DATABASE)),
            ("table_schema", text(DEFAULT_SCHEMA)),
            ("table_name", text(&rel.name)),
            ("table_type", text(table_type(rel))),
            (
                "is_insertable_into",
                yes_no(matches!(
                    rel.kind,
                    RelationKind::Stream | RelationKind::Table
                )),
            ),
            ("is_typed", yes_no(false)),
        ])?;
    }
    t.finish()
}

/// `information_schema.columns.data_type`: the standard's name of a type.
fn standard_type_name(t: &SqlType) -> String {
    match t {
        SqlType::Varchar(_) => "character varying".into(),
        SqlType::Numeric { .. } => "numeric".into(),
        SqlType::Array(_) => "ARRAY".into(),
        other => other.to_string(),
    }
}

fn columns(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("table_catalog", Col::Text),
        ("table_schema", Col::Text),
        ("table_name", Col::Text),
        ("column_name", Col::Text),
        ("ordinal_position", Col::I32),
        ("column_default", Col::Text),
        ("is_nullable", Col::Text),
        ("data_type", Col::Text),
        ("character_maximum_length", Col::I32),
        ("character_octet_length", Col::I32),
        ("numeric_precision", Col::I32),
        ("numeric_precision_radix", Col::I32),
        ("numeric_scale", Col::I32),
        ("datetime_precision", Col::I32),
        ("interval_type", Col::Text),
        ("interval_precision", Col::I32),
        ("character_set_catalog", Col::Text),
        ("character_set_schema", Col::Text),
        ("character_set_name", Col::Text),
        ("collation_catalog", Col::Text),
        ("collation_schema", Col::Text),
        ("collation_name", Col::Text),
        ("domain_catalog", Col::Text),
        ("domain_schema", Col::Text),
        ("domain_name", Col::Text),
        ("udt_catalog", Col::Text),
        ("udt_schema", Col::Text),
        ("udt_name", Col::Text),
        ("scope_catalog", Col::Text),
        ("scope_schema", Col::Text),
        ("scope_name", Col::Text),
        ("maximum_cardinality", Col::I32),
        ("dtd_identifier", Col::Text),
        ("is_self_referencing", Col::Text),
        ("is_identity", Col::Text),
        ("identity_generation", Col::Text),
        ("identity_start", Col::Text),
        ("identity_increment", Col::Text),
        ("identity_maximum", Col::Text),
        ("identity_minimum", Col::Text),
        ("identity_cycle", Col::Text),
        ("is_generated", Col::Text),
        ("generation_expression", Col::Text),
        ("is_updatable", Col::Text),
    ]);
    let null = ScalarValue::Int32(None);
    for rel in relations {
        for (i, col) in rel.columns.iter().enumerate() {
            let (precision, radix, scale) = match &col.sql_type {
                SqlType::SmallInt => (int(16), int(2), int(0)),
                SqlType::Int => (int(32), int(2), int(0)),
                SqlType::BigInt => (int(64), int(2), int(0)),
                SqlType::Real => (int(24), int(2), null.clone()),
                SqlType::Double => (int(53), int(2), null.clone()),
                SqlType::Numeric { precision, scale } => {
                    (int(i32::from(*precision)), int(10), int(i32::from(*scale)))
                }
                _ => (null.clone(), null.clone(), null.clone()),
            };
            let length = match &col.sql_type {
                SqlType::Varchar(Some(n)) => int(*n as i32),
                _ => null.clone(),
            };
            let octets = match &col.sql_type {
                SqlType::Text | SqlType::Varchar(_) => int(1_073_741_824),
                _ => null.clone(),
            };
            let datetime = match &col.sql_type {
                SqlType::Date => int(0),
                SqlType::Time | SqlType::Timestamp | SqlType::Timestamptz | SqlType::Interval => {
                    int(6)
                }
                _ => null.clone(),
            };
            t.row(&[
                ("table_catalog", text(DATABASE)),
                ("table_schema", text(DEFAULT_SCHEMA)),
                ("table_name", text(&rel.name)),
                ("column_name", text(&col.name)),
                ("ordinal_position", int(i as i32 + 1)),
                ("is_nullable", yes_no(col.nullable)),
                ("data_type", text(standard_type_name(&col.sql_type))),
                ("character_maximum_length", length),
                ("character_octet_length", octets),
                ("numeric_precision", precision),
                ("numeric_precision_radix", radix),
                ("numeric_scale", scale),
                ("datetime_precision", datetime),
                ("interval_precision", null.clone()),
                ("maximum_cardinality", null.clone()),
                ("udt_catalog", text(DATABASE)),
                ("udt_schema", text(super::PG_CATALOG)),
                ("udt_name", text(type_info(&col.sql_type).name)),
                ("dtd_identifier", text((i + 1).to_string())),
                ("is_self_referencing", yes_no(false)),
                ("is_identity", yes_no(false)),
                ("identity_cycle", yes_no(false)),
                ("is_generated", text("NEVER")),
                (
                    "is_updatable",
                    yes_no(matches!(rel.kind, RelationKind::Table)),
                ),
            ])?;
        }
    }
    t.finish()
}

fn views(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("table_catalog", Col::Text),
        ("table_schema", Col::Text),
        ("table_name", Col::Text),
        ("view_definition", Col::Text),
        ("check_option", Col::Text),
        ("is_updatable", Col::Text),
        ("is_insertable_into", Col::Text),
        ("is_trigger_updatable", Col::Text),
        ("is_trigger_deletable", Col::Text),
        ("is_trigger_insertable_into", Col::Text),
    ]);
    for rel in relations
        .iter()
        .filter(|r| matches!(r.kind, RelationKind::View | RelationKind::MaterializedView))
    {
        t.row(&[
            ("table_catalog", text(DATABASE)),
            ("table_schema", text(DEFAULT_SCHEMA)),
            ("table_name", text(&rel.name)),
            ("view_definition", text(view_definition(rel))),
            ("check_option", text("NONE")),
            ("is_updatable", yes_no(false)),
            ("is_insertable_into", yes_no(false)),
            ("is_trigger_updatable", yes_no(false)),
            ("is_trigger_deletable", yes_no(false)),
            ("is_trigger_insertable_into", yes_no(false)),
        ])?;
    }
    t.finish()
}

fn table_constraints(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("constraint_catalog", Col::Text),
        ("constraint_schema", Col::Text),
        ("constraint_name", Col::Text),
        ("table_catalog", Col::Text),
        ("table_schema", Col::Text),
        ("table_name", Col::Text),
        ("constraint_type", Col::Text),
        ("is_deferrable", Col::Text),
        ("initially_deferred", Col::Text),
        ("enforced", Col::Text),
        ("nulls_distinct", Col::Text),
    ]);
    for rel in relations.iter().filter(|r| has_primary_key(r)) {
        t.row(&[
            ("constraint_catalog", text(DATABASE)),
            ("constraint_schema", text(DEFAULT_SCHEMA)),
            ("constraint_name", text(primary_key_name(rel))),
            ("table_catalog", text(DATABASE)),
            ("table_schema", text(DEFAULT_SCHEMA)),
            ("table_name", text(&rel.name)),
            ("constraint_type", text("PRIMARY KEY")),
            ("is_deferrable", yes_no(false)),
            ("initially_deferred", yes_no(false)),
            ("enforced", yes_no(true)),
        ])?;
    }
    t.finish()
}

/// `key_column_usage` (with positions) or `constraint_column_usage` (without).
fn key_column_usage(
    relations: &[&Arc<Relation>],
    positions: bool,
) -> SqlResult<Arc<dyn TableProvider>> {
    const CONSTRAINT: [(&str, Col); 3] = [
        ("constraint_catalog", Col::Text),
        ("constraint_schema", Col::Text),
        ("constraint_name", Col::Text),
    ];
    const COLUMN: [(&str, Col); 4] = [
        ("table_catalog", Col::Text),
        ("table_schema", Col::Text),
        ("table_name", Col::Text),
        ("column_name", Col::Text),
    ];
    // The standard orders key_column_usage constraint first, constraint_column_usage
    // column first.
    let columns: Vec<(&str, Col)> = if positions {
        let mut c = [CONSTRAINT.as_slice(), COLUMN.as_slice()].concat();
        c.push(("ordinal_position", Col::I32));
        c.push(("position_in_unique_constraint", Col::I32));
        c
    } else {
        [COLUMN.as_slice(), CONSTRAINT.as_slice()].concat()
    };
    let mut t = TableBuilder::new(&columns);
    for rel in relations.iter().filter(|r| has_primary_key(r)) {
        for (i, &c) in rel.primary_key.iter().enumerate() {
            let mut row = vec![
                ("constraint_catalog", text(DATABASE)),
                ("constraint_schema", text(DEFAULT_SCHEMA)),
                ("constraint_name", text(primary_key_name(rel))),
                ("table_catalog", text(DATABASE)),
                ("table_schema", text(DEFAULT_SCHEMA)),
                ("table_name", text(&rel.name)),
                ("column_name", text(&rel.columns[c].name)),
            ];
            if positions {
                row.push(("ordinal_position", int(i as i32 + 1)));
                row.push(("position_in_unique_constraint", ScalarValue::Int32(None)));
            }
            t.row(&row)?;
        }
    }
    t.finish()
}

fn referential_constraints() -> SqlResult<Arc<dyn TableProvider>> {
    TableBuilder::new(&[
        ("constraint_catalog", Col::Text),
        ("constraint_schema", Col::Text),
        ("constraint_name", Col::Text),
        ("unique_constraint_catalog", Col::Text),
        ("unique_constraint_schema", Col::Text),
        ("unique_constraint_name", Col::Text),
        ("match_option", Col::Text),
        ("update_rule", Col::Text),
        ("delete_rule", Col::Text),
    ])
    .finish()
}

fn routines() -> SqlResult<Arc<dyn TableProvider>> {
    TableBuilder::new(&[
        ("specific_catalog", Col::Text),
        ("specific_schema", Col::Text),
        ("specific_name", Col::Text),
        ("routine_catalog", Col::Text),
        ("routine_schema", Col::Text),
        ("routine_name", Col::Text),
        ("routine_type", Col::Text),
        ("data_type", Col::Text),
        ("type_udt_name", Col::Text),
        ("routine_body", Col::Text),
        ("routine_definition", Col::Text),
        ("external_language", Col::Text),
        ("is_deterministic", Col::Text),
    ])
    .finish()
}

fn parameters() -> SqlResult<Arc<dyn TableProvider>> {
    TableBuilder::new(&[
        ("specific_catalog", Col::Text),
        ("specific_schema", Col::Text),
        ("specific_name", Col::Text),
        ("ordinal_position", Col::I32),
        ("parameter_mode", Col::Text),
        ("parameter_name", Col::Text),
        ("data_type", Col::Text),
        ("udt_name", Col::Text),
    ])
    .finish()
}
