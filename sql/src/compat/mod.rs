//! Postgres compatibility for clients and BI tools.
//!
//! Tools learn what a database holds from `pg_catalog` and `information_schema`, and call a
//! handful of system functions while they do. This module serves both from Eddy's catalog:
//!
//! - [`pg_catalog`]: `pg_class`, `pg_attribute`, `pg_namespace`, `pg_index`, `pg_constraint`,
//!   `pg_matviews`, `pg_settings`, `pg_stat_activity`, ... built from the current catalog
//!   snapshot (streams and tables are tables, materialized views relkind `m`); the catalogs
//!   that describe Postgres itself (`pg_type`, `pg_proc`, `pg_am`, ...) come from
//!   `datafusion-pg-catalog`'s copies of a real server's.
//! - [`information_schema`]: `schemata`, `tables`, `columns`, `views`, `table_constraints`,
//!   `key_column_usage`, consistent with `pg_catalog`.
//! - [`functions`]: `version()`, `current_setting()`, `pg_get_viewdef()`, `obj_description()`,
//!   `pg_backend_pid()`, ... with the session's values.
//! - [`session`]: a connection's settings (`SET`/`SHOW`/`RESET`) and every open session.
//! - [`cache`]: the results of catalog queries that follow from the catalog snapshot and the
//!   session alone, kept until the snapshot changes; [`plans`]: their physical plans, kept
//!   across changes and run again under the new snapshot ([`binding`]).
//!
//! The queries tools send lean on Postgres-only syntax (`'t'::regclass`,
//! `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, `= ANY(array)`, `ARRAY(subquery)`):
//! a statement that reads catalog tables is rewritten by `datafusion-pg-catalog`'s rules and
//! [`rewrite`]'s into what DataFusion plans ([`parse_catalog_query`]).

pub mod binding;
pub mod cache;
pub mod functions;
pub mod information_schema;
pub mod oids;
pub mod pg_catalog;
pub mod plans;
pub mod rewrite;
pub mod rows;
mod server_catalogs;
pub mod session;
pub mod types;
mod udf;

use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use parking_lot::Mutex;
use sqlparser::ast::Statement as SqlStatement;
use std::collections::HashMap;
use std::sync::LazyLock;

pub use session::{ClientSession, Sessions};

/// The schema of Postgres' own catalog.
pub const PG_CATALOG: &str = "pg_catalog";
/// The SQL standard's catalog schema.
pub const INFORMATION_SCHEMA: &str = "information_schema";

static PARSER: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// Whether `sql` mentions a catalog table, schema, function or oid type: a word starting
/// with `pg_`, `information_schema`, `regclass`, .... Checked without allocating: most statements do not, and they
/// skip the rewriting parser.
fn mentions_catalog(sql: &str) -> bool {
    // A write is never taken (only queries are), whatever it mentions: a long INSERT
    // need not be searched.
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next();
    if first.is_some_and(|w| {
        [
            "insert", "update", "delete", "copy", "create", "drop", "alter",
        ]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
    }) {
        return false;
    }
    let bytes = sql.as_bytes();
    let word_start =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let starts_word = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .enumerate()
            .any(|(i, w)| w.eq_ignore_ascii_case(needle) && word_start(i))
    };
    starts_word(b"pg_")
        || starts_word(b"information_schema")
        || starts_word(b"regclass")
        || starts_word(b"regtype")
        || starts_word(b"regproc")
        || starts_word(b"regnamespace")
}

/// A text of queries that read the catalog, parsed and rewritten the way tools' catalog
/// queries need; `None` when the text is not (only) such queries, for Eddy's own parser.
///
/// Only queries are taken: the rewrites trade exactness for coverage (a correlated subquery
/// in a select list becomes NULL), which is right for a tool's introspection and wrong for
/// anything that writes.
pub fn parse_catalog_query(sql: &str) -> Option<Vec<SqlStatement>> {
    if !mentions_catalog(sql) {
        return None;
    }
    if sql.len() > PARSED_TEXT_BYTES {
        return parse_and_rewrite(sql);
    }
    if let Some(parsed) = PARSED.lock().get(sql) {
        return parsed.clone();
    }
    let parsed = parse_and_rewrite(sql);
    let mut texts = PARSED.lock();
    if texts.len() >= PARSED_TEXTS {
        texts.clear();
    }
    texts.insert(sql.to_string(), parsed.clone());
    parsed
}

/// Loads what the first catalog query would otherwise wait for: the copies of Postgres' own
/// catalogs, the type names, and the rewriting parser. A server calls it as it starts, off
/// the path of its clients.
pub fn warm() {
    let _ = server_catalogs::statics();
    let _ = server_catalogs::pg_proc();
    let _ = server_catalogs::type_oid("int4");
    LazyLock::force(&PARSER);
}

/// How many catalog query texts keep their parsed and rewritten statements, and the longest
/// text kept. Tools send the same few texts again and again, and parsing and rewriting one
/// (a dozen passes over its syntax tree) costs more than answering it from
/// [`cache::CatalogResults`].
const PARSED_TEXTS: usize = 256;
const PARSED_TEXT_BYTES: usize = 64 << 10;

/// Catalog query texts already parsed, with what [`parse_and_rewrite`] made of them.
type ParsedTexts = HashMap<String, Option<Vec<SqlStatement>>>;
static PARSED: LazyLock<Mutex<ParsedTexts>> = LazyLock::new(Mutex::default);

/// [`parse_catalog_query`] of a text that mentions the catalog.
fn parse_and_rewrite(sql: &str) -> Option<Vec<SqlStatement>> {
    // The library's rules, without its swapping of some known queries for stand-ins (which
    // answers Grafana's search path, for one, with an empty list).
    let dialect = crate::dialect::EddyDialect;
    let statements: Vec<SqlStatement> = match sqlparser::parser::Parser::parse_sql(&dialect, sql) {
        Ok(s) => s
            .into_iter()
            .map(|mut s| {
                rewrite::ahead_of_library(&mut s);
                PARSER.rewrite(s)
            })
            .collect(),
        Err(e) => {
            tracing::debug!("catalog query left to the plain parser ({e}): {sql}");
            return None;
        }
    };
    let all_queries = !statements.is_empty()
        && statements
            .iter()
            .all(|s| matches!(s, SqlStatement::Query(_)));
    if !all_queries {
        return None;
    }
    statements
        .into_iter()
        .map(|mut s| {
            let Some(rewritten) = rewrite::catalog_rewrites(&mut s) else {
                tracing::debug!("catalog query not rewritten: {s}");
                return None;
            };
            if rewritten {
                // Again, so that a now correlated scalar subquery is treated as one.
                s = PARSER.rewrite(s);
            }
            Some(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statements = parse_catalog_query(sql).expect("a catalog query");
        statements.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vector_subscripts_count_from_zero_and_series_yield_rows() {
        let pk = rewritten(
            "SELECT ta.attname FROM pg_catalog.pg_attribute ta, pg_catalog.pg_index i \
             WHERE ta.attnum = i.indkey[ia.attnum-1] AND indclass[0] > 0",
        );
        assert!(pk.contains("i.indkey[(ia.attnum - 1) + 1]"), "{pk}");
        assert!(pk.contains("indclass[(0) + 1]"), "{pk}");
        // Other arrays count from 1, as in Postgres.
        let conkey = rewritten("SELECT conkey[1] FROM pg_catalog.pg_constraint");
        assert!(conkey.contains("conkey[1]"), "{conkey}");
        let series = rewritten(
            "SELECT s.i FROM (SELECT generate_series(1, array_upper(conkey, 1)) AS i \
             FROM pg_catalog.pg_constraint) s",
        );
        assert!(
            series.contains("unnest(generate_series(1, array_upper(conkey, 1))) AS i"),
            "{series}"
        );
    }

    #[test]
    fn parsed_texts_are_kept_and_bounded() {
        let sql = "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r' ORDER BY 1";
        let first = parse_catalog_query(sql);
        assert!(first.is_some());
        assert_eq!(parse_catalog_query(sql), first);
        assert!(PARSED.lock().contains_key(sql));
        for n in 0..(PARSED_TEXTS + 10) {
            let other = format!("SELECT relname FROM pg_catalog.pg_class WHERE oid = {n}");
            assert!(parse_catalog_query(&other).is_some());
            assert!(PARSED.lock().len() <= PARSED_TEXTS);
        }
        // What the plain parser takes is remembered too.
        let write = "SELECT pg_sleep(0) FROM pg_catalog.pg_class FOR UPDATE OF nothing(";
        assert_eq!(parse_catalog_query(write), None);
        assert_eq!(parse_catalog_query(write), None);
    }

    #[test]
    fn only_catalog_queries_take_the_rewriting_parser() {
        assert!(parse_catalog_query("SELECT 1").is_none());
        assert!(parse_catalog_query("SELECT * FROM clicks").is_none());
        assert!(parse_catalog_query("SELECT avg_pg_load FROM hosts").is_none());
        assert!(parse_catalog_query("INSERT INTO pg_x VALUES (1)").is_none());
        let rewritten = parse_catalog_query(
            "SELECT c.oid FROM pg_catalog.pg_class c \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default",
        )
        .expect("a catalog query");
        let text = rewritten[0].to_string();
        assert!(!text.contains("OPERATOR"), "{text}");
        assert!(!text.contains("COLLATE"), "{text}");
    }
}
