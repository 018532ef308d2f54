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
//!
//! The queries tools send lean on Postgres-only syntax (`'t'::regclass`,
//! `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, `= ANY(array)`): a statement that
//! reads catalog tables is parsed through `datafusion-pg-catalog`'s rewriting parser, which
//! turns those into what DataFusion plans ([`parse_catalog_query`]).

pub mod functions;
pub mod information_schema;
pub mod pg_catalog;
pub mod rows;
pub mod session;

use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use sqlparser::ast::Statement as SqlStatement;
use std::sync::LazyLock;

pub use session::{ClientSession, Sessions};

/// The schema of Postgres' own catalog.
pub const PG_CATALOG: &str = "pg_catalog";
/// The SQL standard's catalog schema.
pub const INFORMATION_SCHEMA: &str = "information_schema";

static PARSER: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// Whether `sql` mentions a catalog table, schema or function: a word starting with `pg_`,
/// or `information_schema`. Checked without allocating: most statements do not, and they
/// skip the rewriting parser.
fn mentions_catalog(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let word_start =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let starts_word = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .enumerate()
            .any(|(i, w)| w.eq_ignore_ascii_case(needle) && word_start(i))
    };
    starts_word(b"pg_") || starts_word(b"information_schema")
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
    let statements = PARSER.parse(sql).ok()?;
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
            if array_subqueries_as_aggregates(&mut s)? {
                // Again, so that a now correlated scalar subquery is treated as one.
                s = PARSER.rewrite(s);
            }
            Some(s)
        })
        .collect()
}

fn parse_expr(text: &str) -> Option<sqlparser::ast::Expr> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The one select-list expression of a plain (not aggregating, not limited) subquery.
fn single_plain_item(query: &sqlparser::ast::Query) -> Option<sqlparser::ast::Expr> {
    use sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = query.limit_clause.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }]
            if plain && !is_aggregate(e) =>
        {
            Some(e.clone())
        }
        _ => None,
    }
}

fn is_aggregate(e: &sqlparser::ast::Expr) -> bool {
    const AGGREGATES: [&str; 9] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
    ];
    matches!(e, sqlparser::ast::Expr::Function(f)
        if AGGREGATES.iter().any(|a| f.name.to_string().eq_ignore_ascii_case(a)))
}

/// Whether a subquery names a table (by qualifier) that none of its own FROM clauses
/// define: a reference to the enclosing query.
fn is_correlated(query: &sqlparser::ast::Query) -> bool {
    use sqlparser::ast::{Expr, TableFactor, Visit, Visitor};
    use std::collections::HashSet;
    use std::ops::ControlFlow;

    #[derive(Default)]
    struct Names {
        defined: HashSet<String>,
        qualifiers: HashSet<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let alias = match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        self.defined.insert(last.value.to_lowercase());
                    }
                    alias
                }
                TableFactor::Derived { alias, .. }
                | TableFactor::UNNEST { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::TableFunction { alias, .. } => alias,
                _ => &None,
            };
            if let Some(a) = alias {
                self.defined.insert(a.name.value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr
                && parts.len() >= 2
            {
                self.qualifiers
                    .insert(parts[parts.len() - 2].value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = query.visit(&mut names);
    names.qualifiers.iter().any(|q| !names.defined.contains(q))
}

/// `ARRAY(SELECT x ...)`, which DataFusion does not plan, as the scalar subquery
/// `(SELECT array_agg(v) FROM (SELECT x ...) AS a(v))`, and `unnest(a) AS x` with its column
/// named `x`. Returns whether it rewrote any; `None` if a rewritten subquery does not parse.
fn array_subqueries_as_aggregates(statement: &mut SqlStatement) -> Option<bool> {
    use sqlparser::ast::{Expr, FunctionArguments, VisitMut, VisitorMut};
    use std::ops::ControlFlow;

    struct Arrays(usize);
    impl VisitorMut for Arrays {
        type Break = ();
        // A correlated scalar subquery in a select list is, in the catalogs' queries, a
        // lookup of something Eddy's objects do not have (a default, a comment, an identity,
        // a collation): NULL, as the catalogs would answer. DataFusion cannot plan most of
        // them (inside CASE, with functions over outer columns).
        fn pre_visit_query(&mut self, query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
            struct Nulls(usize);
            impl VisitorMut for Nulls {
                type Break = ();
                fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                    if let Expr::Subquery(q) = expr
                        && is_correlated(q)
                    {
                        *expr = Expr::value(sqlparser::ast::Value::Null);
                        self.0 += 1;
                    }
                    ControlFlow::Continue(())
                }
            }
            if let sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() {
                let mut nulls = Nulls(0);
                for item in &mut select.projection {
                    let _ = item.visit(&mut nulls);
                }
                self.0 += nulls.0;
            }
            ControlFlow::Continue(())
        }
        // `FROM unnest(a) x`: Postgres names the column of a function returning single
        // values after the alias; DataFusion would name it `UNNEST(a)`.
        fn pre_visit_table_factor(
            &mut self,
            factor: &mut sqlparser::ast::TableFactor,
        ) -> ControlFlow<()> {
            use sqlparser::ast::{TableAliasColumnDef, TableFactor};
            let alias = match factor {
                TableFactor::UNNEST {
                    alias: Some(alias),
                    array_exprs,
                    ..
                } if array_exprs.len() == 1 => alias,
                TableFactor::Table {
                    name,
                    args: Some(_),
                    alias: Some(alias),
                    ..
                } if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                    ["unnest", "generate_series"]
                        .iter()
                        .any(|f| i.value.eq_ignore_ascii_case(f))
                }) =>
                {
                    alias
                }
                _ => return ControlFlow::Continue(()),
            };
            if alias.columns.is_empty() {
                alias
                    .columns
                    .push(TableAliasColumnDef::from_name(alias.name.value.clone()));
                self.0 += 1;
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            // DataFusion's LIKE escapes with a backslash only: another escape character is
            // turned into backslashes by `like_escape`, as in Postgres.
            if let Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } = expr
                && let Some(escape) = escape_char.take()
            {
                if matches!(&escape.value, sqlparser::ast::Value::SingleQuotedString(c) if c == "\\")
                {
                    *escape_char = Some(escape);
                    return ControlFlow::Continue(());
                }
                let Some(call) = parse_expr(&format!("like_escape({pattern}, {escape})")) else {
                    return ControlFlow::Break(());
                };
                **pattern = call;
                self.0 += 1;
                return ControlFlow::Continue(());
            }
            let replacement = match expr {
                // `generate_subscripts(a, 1)` beside `unnest(a)`: the positions, zipped.
                Expr::Function(f)
                    if f.name
                        .to_string()
                        .eq_ignore_ascii_case("generate_subscripts") =>
                {
                    let FunctionArguments::List(list) = &f.args else {
                        return ControlFlow::Continue(());
                    };
                    let Some(array) = list.args.first() else {
                        return ControlFlow::Continue(());
                    };
                    format!("unnest(range(1, CAST(array_length({array}, 1) AS BIGINT) + 1))")
                }
                Expr::Function(f)
                    if f.name.to_string().eq_ignore_ascii_case("array")
                        && matches!(f.args, FunctionArguments::Subquery(_)) =>
                {
                    let FunctionArguments::Subquery(query) = &f.args else {
                        return ControlFlow::Continue(());
                    };
                    // Correlated, it would need a lateral unnest DataFusion does not plan;
                    // the catalogs' arrays Eddy leaves NULL anyway (options, ACLs).
                    if is_correlated(query) {
                        "CAST(NULL AS TEXT[])".to_string()
                    } else {
                        format!("(SELECT array_agg(eddy_array.v) FROM ({query}) AS eddy_array(v))")
                    }
                }
                // A correlated scalar subquery must be an aggregate for DataFusion; a
                // catalog lookup by oid has one row at most, so max() keeps its value.
                Expr::Subquery(query) if is_correlated(query) => match single_plain_item(query) {
                    Some(item) => {
                        let mut q = query.as_ref().clone();
                        if let sqlparser::ast::SetExpr::Select(select) = q.body.as_mut() {
                            select.projection = vec![sqlparser::ast::SelectItem::UnnamedExpr(
                                parse_expr(&format!("max({item})")).unwrap_or(item),
                            )];
                        }
                        *expr = Expr::Subquery(Box::new(q));
                        self.0 += 1;
                        return ControlFlow::Continue(());
                    }
                    None => return ControlFlow::Continue(()),
                },
                _ => return ControlFlow::Continue(()),
            };
            match parse_expr(&replacement) {
                Some(e) => {
                    *expr = e;
                    self.0 += 1;
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Break(()),
            }
        }
    }
    let mut arrays = Arrays(0);
    if statement.visit(&mut arrays).is_break() {
        return None;
    }
    Some(arrays.0 > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
