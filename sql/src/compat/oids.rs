//! Eddy's objects in Postgres' terms: their object ids (derived from relation ids, so stable
//! across sessions and restarts), relation kinds, primary key names, and how each column type
//! is stored (`pg_type` oid, length, alignment, type modifier).

use eddy_catalog::{RelId, Relation, RelationKind, SqlType};

/// The first oid Postgres hands to user objects.
pub const FIRST_OBJECT_OID: i32 = 16384;
pub const PG_CATALOG_NAMESPACE: i32 = 11;
pub const PUBLIC_NAMESPACE: i32 = 2200;
pub const INFORMATION_SCHEMA_NAMESPACE: i32 = 13000;
pub const EDDY_CATALOG_NAMESPACE: i32 = 16000;
/// The role that owns every object.
pub const OWNER_OID: i32 = 10;
pub const OWNER: &str = "eddy";
pub const DATABASE_OID: i32 = 5;
/// `pg_am` rows: heap for relations with rows, btree for indexes.
pub const HEAP_AM: i32 = 2;
pub const BTREE_AM: i32 = 403;
/// `pg_collation`'s default collation, which text columns carry.
pub const DEFAULT_COLLATION: i32 = 100;

/// The oid of a relation.
pub fn relation_oid(id: RelId) -> i32 {
    FIRST_OBJECT_OID.saturating_add((id as i32).saturating_mul(4))
}

/// The oid of a table's primary key index.
pub fn index_oid(id: RelId) -> i32 {
    relation_oid(id) + 1
}

/// The oid of a table's primary key constraint.
pub fn constraint_oid(id: RelId) -> i32 {
    relation_oid(id) + 2
}

/// The oid of a relation's row type.
pub fn row_type_oid(id: RelId) -> i32 {
    relation_oid(id) + 3
}

/// What an object id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Relation(RelId),
    Index(RelId),
    Constraint(RelId),
}

/// The object an oid names, if it is one of Eddy's.
pub fn object_of(oid: i64) -> Option<Object> {
    let offset = oid.checked_sub(FIRST_OBJECT_OID as i64)?;
    if offset < 0 {
        return None;
    }
    let id = (offset / 4) as RelId;
    match offset % 4 {
        0 => Some(Object::Relation(id)),
        1 => Some(Object::Index(id)),
        2 => Some(Object::Constraint(id)),
        _ => None,
    }
}

/// Whether a relation shows in the catalog: everything with rows (sinks have none).
pub fn listed(rel: &Relation) -> bool {
    rel.kind != RelationKind::Sink
}

/// `pg_class.relkind`.
pub fn relkind(kind: RelationKind) -> &'static str {
    match kind {
        RelationKind::Stream | RelationKind::Table => "r",
        RelationKind::MaterializedView => "m",
        RelationKind::View => "v",
        RelationKind::Sink => "",
    }
}

/// Whether a relation has a primary key index (tables declared with one).
pub fn has_primary_key(rel: &Relation) -> bool {
    rel.kind == RelationKind::Table && !rel.primary_key.is_empty()
}

/// The name of a table's primary key constraint and index.
pub fn primary_key_name(rel: &Relation) -> String {
    format!("{}_pkey", rel.name)
}

/// How Postgres stores a type: oid, typlen, typbyval, typalign, typstorage.
pub struct TypeInfo {
    pub oid: i32,
    pub len: i16,
    pub by_value: bool,
    pub align: &'static str,
    pub storage: &'static str,
    pub name: &'static str,
}

pub fn type_info(t: &SqlType) -> TypeInfo {
    let (oid, len, by_value, align, storage, name) = match t {
        SqlType::SmallInt => (21, 2, true, "s", "p", "int2"),
        SqlType::Int => (23, 4, true, "i", "p", "int4"),
        SqlType::BigInt => (20, 8, true, "d", "p", "int8"),
        SqlType::Real => (700, 4, true, "i", "p", "float4"),
        SqlType::Double => (701, 8, true, "d", "p", "float8"),
        SqlType::Numeric { .. } => (1700, -1, false, "i", "m", "numeric"),
        SqlType::Bool => (16, 1, true, "c", "p", "bool"),
        SqlType::Text => (25, -1, false, "i", "x", "text"),
        SqlType::Varchar(_) => (1043, -1, false, "i", "x", "varchar"),
        SqlType::Bytea => (17, -1, false, "i", "x", "bytea"),
        SqlType::Date => (1082, 4, true, "i", "p", "date"),
        SqlType::Time => (1083, 8, true, "d", "p", "time"),
        SqlType::Timestamp => (1114, 8, true, "d", "p", "timestamp"),
        SqlType::Timestamptz => (1184, 8, true, "d", "p", "timestamptz"),
        SqlType::Interval => (1186, 16, false, "d", "p", "interval"),
        SqlType::Json => (114, -1, false, "i", "x", "json"),
        SqlType::Jsonb => (3802, -1, false, "i", "x", "jsonb"),
        SqlType::Array(element) => {
            let e = type_info(element);
            let (oid, name) = array_of(e.oid);
            (oid, -1, false, e.align, "x", name)
        }
    };
    TypeInfo {
        oid,
        len,
        by_value,
        align,
        storage,
        name,
    }
}

/// The `pg_type` oid and name of the array type whose elements have type `element`.
fn array_of(element: i32) -> (i32, &'static str) {
    match element {
        21 => (1005, "_int2"),
        23 => (1007, "_int4"),
        20 => (1016, "_int8"),
        700 => (1021, "_float4"),
        701 => (1022, "_float8"),
        1700 => (1231, "_numeric"),
        16 => (1000, "_bool"),
        1043 => (1015, "_varchar"),
        17 => (1001, "_bytea"),
        1082 => (1182, "_date"),
        1083 => (1183, "_time"),
        1114 => (1115, "_timestamp"),
        1184 => (1185, "_timestamptz"),
        1186 => (1187, "_interval"),
        114 => (199, "_json"),
        3802 => (3807, "_jsonb"),
        _ => (1009, "_text"),
    }
}

/// `atttypmod`: the declared length or precision, as Postgres encodes it.
pub fn type_modifier(t: &SqlType) -> i32 {
    match t {
        SqlType::Varchar(Some(n)) => i32::try_from(*n).unwrap_or(i32::MAX - 4) + 4,
        SqlType::Numeric { precision, scale } => {
            ((i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff)) + 4
        }
        _ => -1,
    }
}

/// Whether values of a type are collatable (text-like).
pub fn collatable(t: &SqlType) -> bool {
    matches!(t, SqlType::Text | SqlType::Varchar(_))
}
