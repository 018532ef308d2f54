//! `pg_catalog` as Eddy's catalog reads in Postgres' terms.
//!
//! Object ids are derived from relation ids, so they are stable across restarts and the same
//! in every session (a tool looks an oid up in one query and uses it in the next): relation
//! `id` is oid `16384 + 4 * id`, its primary key index the next oid, its primary key
//! constraint the one after, its row type the one after that. Streams and tables are tables
//! (relkind `r`), materialized views relkind `m`, views `v`. Sinks have no rows and are not
//! relations to Postgres clients; `SHOW SINKS` lists them.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;
use eddy_catalog::{Relation, RelationKind, Snapshot};

use super::rows::{Col, TableBuilder, boolean, int, oids, small, smallints, text};
use super::session::{ClientSession, Sessions};
use crate::SqlResult;

pub use super::oids::*;
pub use super::server_catalogs::type_oid;
use super::server_catalogs::{pg_proc, statics};

/// The schemas clients see, with their oids.
pub fn namespaces() -> [(i32, &'static str); 4] {
    [
        (PG_CATALOG_NAMESPACE, super::PG_CATALOG),
        (PUBLIC_NAMESPACE, crate::names::DEFAULT_SCHEMA),
        (INFORMATION_SCHEMA_NAMESPACE, super::INFORMATION_SCHEMA),
        (EDDY_CATALOG_NAMESPACE, crate::system::SCHEMA),
    ]
}

/// Every table name of the schema.
pub fn table_names() -> Vec<String> {
    let mut names: Vec<String> = PG_CATALOG_TABLES.iter().map(|s| s.to_string()).collect();
    names.extend(["pg_user", "pg_stat_activity"].map(String::from));
    names.sort();
    names.dedup();
    names
}

/// The `pg_catalog` table of that name, with the current contents.
pub fn table(
    name: &str,
    catalog: &Snapshot,
    client: &ClientSession,
    sessions: &Sessions,
) -> SqlResult<Option<Arc<dyn TableProvider>>> {
    let relations: Vec<&Arc<Relation>> = catalog.relations().filter(|r| listed(r)).collect();
    let table = match name {
        "pg_namespace" => pg_namespace()?,
        "pg_class" => pg_class(&relations)?,
        "pg_attribute" => pg_attribute(&relations)?,
        "pg_index" => pg_index(&relations)?,
        "pg_constraint" => pg_constraint(&relations)?,
        "pg_database" => pg_database()?,
        "pg_roles" => pg_roles(client, sessions)?,
        "pg_user" => pg_user(client, sessions)?,
        "pg_settings" => pg_settings(client)?,
        "pg_tables" => pg_tables(&relations)?,
        "pg_views" => pg_views(&relations)?,
        "pg_matviews" => pg_matviews(&relations)?,
        "pg_stat_activity" => pg_stat_activity(sessions)?,
        "pg_proc" => pg_proc()?,
        // Eddy has no extended statistics and no row security policies; these are empty,
        // with their array columns typed as arrays (which the copies of a real server's
        // catalogs hold as text).
        "pg_statistic_ext" => TableBuilder::new(&[
            ("oid", Col::Oid),
            ("stxrelid", Col::Oid),
            ("stxname", Col::Text),
            ("stxnamespace", Col::Oid),
            ("stxowner", Col::Oid),
            ("stxstattarget", Col::I32),
            ("stxkeys", Col::SmallVector),
            ("stxkind", Col::TextArray),
            ("stxexprs", Col::Text),
        ])
        .finish()?,
        "pg_policy" => TableBuilder::new(&[
            ("oid", Col::Oid),
            ("polname", Col::Text),
            ("polrelid", Col::Oid),
            ("polcmd", Col::Text),
            ("polpermissive", Col::Bool),
            ("polroles", Col::Text),
            ("polqual", Col::Text),
            ("polwithcheck", Col::Text),
        ])
        .finish()?,
        other => {
            let statics = statics()?;
            match statics.provider.build_table_by_name(other)? {
                Some(t) => t.try_into_table_provider()?,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(table))
}

fn pg_namespace() -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("oid", Col::Oid),
        ("nspname", Col::Text),
        ("nspowner", Col::Oid),
        ("nspacl", Col::TextArray),
    ]);
    for (oid, name) in namespaces() {
        t.row(&[
            ("oid", int(oid)),
            ("nspname", text(name)),
            ("nspowner", int(OWNER_OID)),
        ])?;
    }
    t.finish()
}

fn pg_class(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("oid", Col::Oid),
        ("relname", Col::Text),
        ("relnamespace", Col::Oid),
        ("reltype", Col::Oid),
        ("reloftype", Col::Oid),
        ("relowner", Col::Oid),
        ("relam", Col::Oid),
        ("relfilenode", Col::Oid),
        ("reltablespace", Col::Oid),
        ("relpages", Col::I32),
        ("reltuples", Col::F32),
        ("relallvisible", Col::I32),
        ("reltoastrelid", Col::Oid),
        ("relhasindex", Col::Bool),
        ("relisshared", Col::Bool),
        ("relpersistence", Col::Text),
        ("relkind", Col::Text),
        ("relnatts", Col::I16),
        ("relchecks", Col::I16),
        ("relhasrules", Col::Bool),
        ("relhastriggers", Col::Bool),
        ("relhassubclass", Col::Bool),
        ("relrowsecurity", Col::Bool),
        ("relforcerowsecurity", Col::Bool),
        ("relispopulated", Col::Bool),
        ("relreplident", Col::Text),
        ("relispartition", Col::Bool),
        ("relrewrite", Col::Oid),
        ("relfrozenxid", Col::Text),
        ("relminmxid", Col::Text),
        ("relacl", Col::TextArray),
        ("reloptions", Col::TextArray),
        ("relpartbound", Col::Text),
    ]);
    for rel in relations {
        let oid = relation_oid(rel.id);
        let stored = rel.kind != RelationKind::View;
        t.row(&[
            ("oid", int(oid)),
            ("relname", text(&rel.name)),
            ("relnamespace", int(PUBLIC_NAMESPACE)),
            ("reltype", int(row_type_oid(rel.id))),
            ("relowner", int(OWNER_OID)),
            ("relam", int(if stored { HEAP_AM } else { 0 })),
            ("relfilenode", int(if stored { oid } else { 0 })),
            ("reltuples", unknown_tuples()),
            ("relhasindex", boolean(has_primary_key(rel))),
            ("relpersistence", text("p")),
            ("relkind", text(relkind(rel.kind))),
            ("relnatts", small(rel.columns.len() as i16)),
            ("relhasrules", boolean(rel.kind == RelationKind::View)),
            ("relispopulated", boolean(true)),
            ("relreplident", text(if stored { "d" } else { "n" })),
            ("relfrozenxid", text("0")),
            ("relminmxid", text("1")),
        ])?;
        if has_primary_key(rel) {
            t.row(&[
                ("oid", int(index_oid(rel.id))),
                ("relname", text(primary_key_name(rel))),
                ("relnamespace", int(PUBLIC_NAMESPACE)),
                ("relowner", int(OWNER_OID)),
                ("relam", int(BTREE_AM)),
                ("relfilenode", int(index_oid(rel.id))),
                ("reltuples", unknown_tuples()),
                ("relpersistence", text("p")),
                ("relkind", text("i")),
                ("relnatts", small(rel.primary_key.len() as i16)),
                ("relispopulated", boolean(true)),
                ("relreplident", text("n")),
                ("relfrozenxid", text("0")),
                ("relminmxid", text("0")),
            ])?;
        }
    }
    t.finish()
}

/// `reltuples` of a relation never analyzed.
fn unknown_tuples() -> datafusion::common::ScalarValue {
    datafusion::common::ScalarValue::Float32(Some(-1.0))
}

fn pg_attribute(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("attrelid", Col::Oid),
        ("attname", Col::Text),
        ("atttypid", Col::Oid),
        ("attlen", Col::I16),
        ("attnum", Col::I16),
        ("attcacheoff", Col::I32),
        ("atttypmod", Col::I32),
        ("attndims", Col::I16),
        ("attbyval", Col::Bool),
        ("attalign", Col::Text),
        ("attstorage", Col::Text),
        ("attcompression", Col::Text),
        ("attnotnull", Col::Bool),
        ("atthasdef", Col::Bool),
        ("atthasmissing", Col::Bool),
        ("attidentity", Col::Text),
        ("attgenerated", Col::Text),
        ("attisdropped", Col::Bool),
        ("attislocal", Col::Bool),
        ("attinhcount", Col::I16),
        ("attcollation", Col::Oid),
        ("attstattarget", Col::I16),
        ("attacl", Col::TextArray),
        ("attoptions", Col::TextArray),
        ("attfdwoptions", Col::TextArray),
        ("attmissingval", Col::Text),
    ]);
    let mut column = |relid: i32, num: usize, col: &eddy_catalog::Column| {
        let info = type_info(&col.sql_type);
        t.row(&[
            ("attrelid", int(relid)),
            ("attname", text(&col.name)),
            ("atttypid", int(info.oid)),
            ("attlen", small(info.len)),
            ("attnum", small(num as i16)),
            ("attcacheoff", int(-1)),
            ("atttypmod", int(type_modifier(&col.sql_type))),
            ("attbyval", boolean(info.by_value)),
            ("attalign", text(info.align)),
            ("attstorage", text(info.storage)),
            ("attcompression", text("")),
            ("attnotnull", boolean(!col.nullable)),
            ("attidentity", text("")),
            ("attgenerated", text("")),
            ("attislocal", boolean(true)),
            (
                "attcollation",
                int(if collatable(&col.sql_type) {
                    DEFAULT_COLLATION
                } else {
                    0
                }),
            ),
            ("attstattarget", small(-1)),
        ])
    };
    for rel in relations {
        for (i, col) in rel.columns.iter().enumerate() {
            column(relation_oid(rel.id), i + 1, col)?;
        }
        if has_primary_key(rel) {
            for (i, &c) in rel.primary_key.iter().enumerate() {
                column(index_oid(rel.id), i + 1, &rel.columns[c])?;
            }
        }
    }
    t.finish()
}

/// A table's primary key columns as Postgres numbers them (from 1).
fn key_numbers(rel: &Relation) -> Vec<i16> {
    rel.primary_key.iter().map(|c| *c as i16 + 1).collect()
}

fn pg_index(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("indexrelid", Col::Oid),
        ("indrelid", Col::Oid),
        ("indnatts", Col::I16),
        ("indnkeyatts", Col::I16),
        ("indisunique", Col::Bool),
        ("indnullsnotdistinct", Col::Bool),
        ("indisprimary", Col::Bool),
        ("indisexclusion", Col::Bool),
        ("indimmediate", Col::Bool),
        ("indisclustered", Col::Bool),
        ("indisvalid", Col::Bool),
        ("indcheckxmin", Col::Bool),
        ("indisready", Col::Bool),
        ("indislive", Col::Bool),
        ("indisreplident", Col::Bool),
        ("indkey", Col::SmallVector),
        ("indcollation", Col::OidVector),
        ("indclass", Col::OidVector),
        ("indoption", Col::SmallVector),
        ("indexprs", Col::Text),
        ("indpred", Col::Text),
    ]);
    for rel in relations.iter().filter(|r| has_primary_key(r)) {
        let n = rel.primary_key.len();
        t.row(&[
            ("indexrelid", int(index_oid(rel.id))),
            ("indrelid", int(relation_oid(rel.id))),
            ("indnatts", small(n as i16)),
            ("indnkeyatts", small(n as i16)),
            ("indisunique", boolean(true)),
            ("indisprimary", boolean(true)),
            ("indimmediate", boolean(true)),
            ("indisvalid", boolean(true)),
            ("indisready", boolean(true)),
            ("indislive", boolean(true)),
            ("indkey", smallints(key_numbers(rel))),
            ("indcollation", oids(vec![0; n])),
            ("indclass", oids(vec![0; n])),
            ("indoption", smallints(vec![0; n])),
        ])?;
    }
    t.finish()
}

fn pg_constraint(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("oid", Col::Oid),
        ("conname", Col::Text),
        ("connamespace", Col::Oid),
        ("contype", Col::Text),
        ("condeferrable", Col::Bool),
        ("condeferred", Col::Bool),
        ("convalidated", Col::Bool),
        ("conrelid", Col::Oid),
        ("contypid", Col::Oid),
        ("conindid", Col::Oid),
        ("conparentid", Col::Oid),
        ("confrelid", Col::Oid),
        ("confupdtype", Col::Text),
        ("confdeltype", Col::Text),
        ("confmatchtype", Col::Text),
        ("conislocal", Col::Bool),
        ("coninhcount", Col::I16),
        ("connoinherit", Col::Bool),
        ("conkey", Col::SmallArray),
        ("confkey", Col::SmallArray),
        ("conpfeqop", Col::OidArray),
        ("conppeqop", Col::OidArray),
        ("conffeqop", Col::OidArray),
        ("confdelsetcols", Col::SmallArray),
        ("conexclop", Col::OidArray),
        ("conbin", Col::Text),
    ]);
    for rel in relations.iter().filter(|r| has_primary_key(r)) {
        t.row(&[
            ("oid", int(constraint_oid(rel.id))),
            ("conname", text(primary_key_name(rel))),
            ("connamespace", int(PUBLIC_NAMESPACE)),
            ("contype", text("p")),
            ("convalidated", boolean(true)),
            ("conrelid", int(relation_oid(rel.id))),
            ("conindid", int(index_oid(rel.id))),
            ("confupdtype", text(" ")),
            ("confdeltype", text(" ")),
            ("confmatchtype", text(" ")),
            ("conislocal", boolean(true)),
            ("connoinherit", boolean(true)),
            ("conkey", smallints(key_numbers(rel))),
        ])?;
    }
    t.finish()
}

fn pg_database() -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("oid", Col::Oid),
        ("datname", Col::Text),
        ("datdba", Col::Oid),
        ("encoding", Col::I32),
        ("datlocprovider", Col::Text),
        ("datistemplate", Col::Bool),
        ("datallowconn", Col::Bool),
        ("datconnlimit", Col::I32),
        ("datfrozenxid", Col::Text),
        ("datminmxid", Col::Text),
        ("dattablespace", Col::Oid),
        ("datcollate", Col::Text),
        ("datctype", Col::Text),
        ("daticulocale", Col::Text),
        ("daticurules", Col::Text),
        ("datcollversion", Col::Text),
        ("datacl", Col::TextArray),
    ]);
    t.row(&[
        ("oid", int(DATABASE_OID)),
        ("datname", text(crate::context::DATABASE)),
        ("datdba", int(OWNER_OID)),
        ("encoding", int(6)),
        ("datlocprovider", text("c")),
        ("datallowconn", boolean(true)),
        ("datconnlimit", int(-1)),
        ("datfrozenxid", text("0")),
        ("datminmxid", text("1")),
        ("dattablespace", int(1663)),
        ("datcollate", text("C.UTF-8")),
        ("datctype", text("C.UTF-8")),
    ])?;
    t.finish()
}

/// The roles: the owner of everything, the users who may log in with a password, and the
/// connected user when it is none of those (trust authentication admits any).
fn roles(client: &ClientSession, sessions: &Sessions) -> Vec<(i32, String)> {
    let mut names = sessions.roles();
    if !names.contains(&client.user) {
        names.push(client.user.clone());
    }
    names.retain(|n| n != OWNER);
    names.sort();
    let mut roles = vec![(OWNER_OID, OWNER.to_string())];
    roles.extend(
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (FIRST_OBJECT_OID - 1 - i as i32, name)),
    );
    roles
}

fn pg_roles(client: &ClientSession, sessions: &Sessions) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("rolname", Col::Text),
        ("rolsuper", Col::Bool),
        ("rolinherit", Col::Bool),
        ("rolcreaterole", Col::Bool),
        ("rolcreatedb", Col::Bool),
        ("rolcanlogin", Col::Bool),
        ("rolreplication", Col::Bool),
        ("rolconnlimit", Col::I32),
        ("rolpassword", Col::Text),
        ("rolvaliduntil", Col::Ts),
        ("rolbypassrls", Col::Bool),
        ("rolconfig", Col::TextArray),
        ("oid", Col::Oid),
    ]);
    for (oid, name) in roles(client, sessions) {
        t.row(&[
            ("rolname", text(name)),
            ("rolsuper", boolean(true)),
            ("rolinherit", boolean(true)),
            ("rolcreaterole", boolean(true)),
            ("rolcreatedb", boolean(true)),
            ("rolcanlogin", boolean(true)),
            ("rolconnlimit", int(-1)),
            ("rolpassword", text("********")),
            ("oid", int(oid)),
        ])?;
    }
    t.finish()
}

fn pg_user(client: &ClientSession, sessions: &Sessions) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("usename", Col::Text),
        ("usesysid", Col::Oid),
        ("usecreatedb", Col::Bool),
        ("usesuper", Col::Bool),
        ("userepl", Col::Bool),
        ("usebypassrls", Col::Bool),
        ("passwd", Col::Text),
        ("valuntil", Col::Ts),
        ("useconfig", Col::TextArray),
    ]);
    for (oid, name) in roles(client, sessions) {
        t.row(&[
            ("usename", text(name)),
            ("usesysid", int(oid)),
            ("usecreatedb", boolean(true)),
            ("usesuper", boolean(true)),
            ("passwd", text("********")),
        ])?;
    }
    t.finish()
}

fn pg_settings(client: &ClientSession) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("name", Col::Text),
        ("setting", Col::Text),
        ("unit", Col::Text),
        ("category", Col::Text),
        ("short_desc", Col::Text),
        ("extra_desc", Col::Text),
        ("context", Col::Text),
        ("vartype", Col::Text),
        ("source", Col::Text),
        ("min_val", Col::Text),
        ("max_val", Col::Text),
        ("enumvals", Col::Text),
        ("boot_val", Col::Text),
        ("reset_val", Col::Text),
        ("sourcefile", Col::Text),
        ("sourceline", Col::I32),
        ("pending_restart", Col::Bool),
    ]);
    for s in client.all() {
        t.row(&[
            ("name", text(s.name)),
            ("setting", text(s.setting)),
            ("category", text(s.category)),
            ("short_desc", text(s.description)),
            ("context", text(s.context)),
            ("vartype", text(s.vartype)),
            ("source", text(s.source)),
            ("boot_val", text(s.default.clone())),
            ("reset_val", text(s.default)),
        ])?;
    }
    t.finish()
}

fn pg_tables(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("schemaname", Col::Text),
        ("tablename", Col::Text),
        ("tableowner", Col::Text),
        ("tablespace", Col::Text),
        ("hasindexes", Col::Bool),
        ("hasrules", Col::Bool),
        ("hastriggers", Col::Bool),
        ("rowsecurity", Col::Bool),
    ]);
    for rel in relations
        .iter()
        .filter(|r| matches!(r.kind, RelationKind::Stream | RelationKind::Table))
    {
        t.row(&[
            ("schemaname", text(crate::names::DEFAULT_SCHEMA)),
            ("tablename", text(&rel.name)),
            ("tableowner", text(OWNER)),
            ("hasindexes", boolean(has_primary_key(rel))),
        ])?;
    }
    t.finish()
}

/// A view's definition as `pg_get_viewdef` and `pg_views` give it.
pub fn view_definition(rel: &Relation) -> String {
    format!(" {};", rel.query.as_deref().unwrap_or_default().trim())
}

fn pg_views(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("schemaname", Col::Text),
        ("viewname", Col::Text),
        ("viewowner", Col::Text),
        ("definition", Col::Text),
    ]);
    for rel in relations.iter().filter(|r| r.kind == RelationKind::View) {
        t.row(&[
            ("schemaname", text(crate::names::DEFAULT_SCHEMA)),
            ("viewname", text(&rel.name)),
            ("viewowner", text(OWNER)),
            ("definition", text(view_definition(rel))),
        ])?;
    }
    t.finish()
}

fn pg_matviews(relations: &[&Arc<Relation>]) -> SqlResult<Arc<dyn TableProvider>> {
    let mut t = TableBuilder::new(&[
        ("schemaname", Col::Text),
        ("matviewname", Col::Text),
        ("matviewowner", Col::Text),
        ("tablespace", Col::Text),
        ("hasindexes", Col::Bool),
        ("ispopulated", Col::Bool),
        ("definition", Col::Text),
    ]);
    for rel in relations
        .iter()
        .filter(|r| r.kind == RelationKind::MaterializedView)
    {
        t.row(&[
            ("schemaname", text(crate::names::DEFAULT_SCHEMA)),
            ("matviewname", text(&rel.name)),
            ("matviewowner", text(OWNER)),
            ("ispopulated", boolean(true)),
            ("definition", text(view_definition(rel))),
        ])?;
    }
    t.finish()
}

fn pg_stat_activity(sessions: &Sessions) -> SqlResult<Arc<dyn TableProvider>> {
    use datafusion::common::ScalarValue;
    let ts = |micros: Option<i64>| ScalarValue::TimestampMicrosecond(micros, Some("UTC".into()));
    let mut t = TableBuilder::new(&[
        ("datid", Col::Oid),
        ("datname", Col::Text),
        ("pid", Col::I32),
        ("leader_pid", Col::I32),
        ("usesysid", Col::Oid),
        ("usename", Col::Text),
        ("application_name", Col::Text),
        ("client_addr", Col::Text),
        ("client_hostname", Col::Text),
        ("client_port", Col::I32),
        ("backend_start", Col::Ts),
        ("xact_start", Col::Ts),
        ("query_start", Col::Ts),
        ("state_change", Col::Ts),
        ("wait_event_type", Col::Text),
        ("wait_event", Col::Text),
        ("state", Col::Text),
        ("backend_xid", Col::Text),
        ("backend_xmin", Col::Text),
        ("query_id", Col::I64),
        ("query", Col::Text),
        ("backend_type", Col::Text),
    ]);
    for s in sessions.list() {
        let activity = s.activity();
        t.row(&[
            ("datid", int(DATABASE_OID)),
            ("datname", text(&s.database)),
            ("pid", int(s.pid)),
            ("leader_pid", ScalarValue::Int32(None)),
            ("usesysid", int(OWNER_OID)),
            ("usename", text(&s.user)),
            (
                "application_name",
                text(s.get("application_name").unwrap_or_default()),
            ),
            (
                "client_addr",
                ScalarValue::Utf8(s.client_addr.map(|a| a.ip().to_string())),
            ),
            (
                "client_port",
                ScalarValue::Int32(s.client_addr.map(|a| i32::from(a.port()))),
            ),
            ("backend_start", ts(Some(s.started))),
            ("xact_start", ts(activity.xact_start)),
            ("query_start", ts(activity.query_start)),
            ("state_change", ts(activity.query_start)),
            ("state", text(activity.state)),
            ("query_id", ScalarValue::Int64(None)),
            ("query", text(activity.query)),
            ("backend_type", text("client backend")),
        ])?;
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_catalog::SqlType;

    #[test]
    fn oids_name_their_objects() {
        for id in [0, 1, 7, 1000] {
            assert_eq!(
                object_of(relation_oid(id) as i64),
                Some(Object::Relation(id))
            );
            assert_eq!(object_of(index_oid(id) as i64), Some(Object::Index(id)));
            assert_eq!(
                object_of(constraint_oid(id) as i64),
                Some(Object::Constraint(id))
            );
            assert_eq!(object_of(row_type_oid(id) as i64), None);
        }
        assert_eq!(object_of(25), None);
    }

    #[test]
    fn type_modifiers_encode_like_postgres() {
        assert_eq!(type_modifier(&SqlType::Varchar(Some(10))), 14);
        assert_eq!(
            type_modifier(&SqlType::Numeric {
                precision: 10,
                scale: 2
            }),
            (10 << 16 | 2) + 4
        );
        assert_eq!(type_modifier(&SqlType::Text), -1);
    }
}
