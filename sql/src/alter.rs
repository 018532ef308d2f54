//! Schema changes at the level of stored definitions: a renamed relation's own `CREATE`
//! text, and the queries and `CREATE` texts of the relations that name it.
//!
//! A view's query is stored as text and planned again at each start, so a rename rewrites
//! the queries that read the relation: `FROM old` becomes `FROM new AS old`, which keeps
//! every qualified column (`old.x`) of the query valid without touching it.

use std::ops::ControlFlow;

use crate::dialect::EddyDialect;
use eddy_catalog::{Relation, RelationKind};
use sqlparser::ast::{Ident, ObjectName, TableAlias, TableFactor, VisitMut, VisitorMut};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::names::normalize_object_name;
use crate::parser::{self, Statement};
use crate::{SqlError, SqlResult};

/// An identifier that names `name` (quoted where it must be).
pub fn quote_ident(name: &str) -> Ident {
    match crate::names::quote_identifier(name).starts_with('"') {
        true => Ident::with_quote('"', name),
        false => Ident::new(name),
    }
}

/// The definitions that change when relation `old` is renamed to `new`: the relation itself
/// and every relation whose definition names it (views reading it, sinks delivering it).
pub fn renamed(
    relations: impl IntoIterator<Item = Relation>,
    target: u64,
    old: &str,
    new: &str,
) -> SqlResult<Vec<Relation>> {
    let mut out = Vec::new();
    for mut rel in relations {
        if rel.id == target {
            rel.name = new.to_string();
            // A view's own query does not name it: only its CREATE text changes.
            rel.create_sql = replace_word_after(&rel.create_sql, &create_prefix(&rel), new)?;
            out.push(rel);
        } else if rel.depends_on.contains(&target) {
            match rel.kind {
                RelationKind::Sink => {
                    rel.create_sql = replace_word_after(&rel.create_sql, &[Keyword::FROM], new)?;
                }
                _ => {
                    let query = rel.query.as_deref().unwrap_or_default();
                    let query = rename_in_query(query, old, new)?;
                    rel.create_sql = view_create_sql(&rel, &query);
                    rel.query = Some(query);
                }
            }
            out.push(rel);
        }
    }
    Ok(out)
}

/// A view's CREATE text for a new version of its query.
pub fn view_create_sql(view: &Relation, query: &str) -> String {
    let emit = match view.emit_on_window_close {
        true => " EMIT ON WINDOW CLOSE",
        false => "",
    };
    let with = match view.trigger_micros {
        Some(micros) => format!(" WITH (trigger = '{}')", crate::triggers::text(micros)),
        None => String::new(),
    };
    format!(
        "CREATE {} {}{with} AS {query}{emit}",
        view.kind.sql_name(),
        quote_ident(&view.name)
    )
}

/// The keywords before a relation's name in its CREATE text.
fn create_prefix(rel: &Relation) -> Vec<Keyword> {
    match rel.kind {
        RelationKind::MaterializedView => vec![Keyword::CREATE, Keyword::VIEW],
        RelationKind::View => vec![Keyword::CREATE, Keyword::VIEW],
        RelationKind::Table => vec![Keyword::CREATE, Keyword::TABLE],
        RelationKind::Stream => vec![Keyword::CREATE, Keyword::STREAM],
        // SINK is no keyword: the name follows CREATE's next word.
        RelationKind::Sink => vec![Keyword::CREATE],
    }
}

/// `sql` with the object name that follows the last of `keywords` (and an `IF NOT EXISTS`)
/// replaced by `new`.
fn replace_word_after(sql: &str, keywords: &[Keyword], new: &str) -> SqlResult<String> {
    let dialect = EddyDialect;
    let mut tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlError::Internal(format!("stored definition does not tokenize: {e}")))?;
    let is_word = |t: &Token| matches!(t, Token::Word(_));
    let keyword_at = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k);
    // Past each keyword in turn.
    let mut at = 0;
    for k in keywords {
        at += tokens[at..]
            .iter()
            .position(|t| keyword_at(t, *k))
            .ok_or_else(|| SqlError::Internal(format!("stored definition lacks {k:?}")))?
            + 1;
    }
    let sink = keywords == [Keyword::CREATE];
    let mut words_skipped = 0;
    loop {
        let Some(t) = tokens.get(at) else {
            return Err(SqlError::Internal("stored definition has no name".into()));
        };
        let skip = !is_word(t)
            || (sink && words_skipped == 0)
            || keyword_at(t, Keyword::IF)
            || keyword_at(t, Keyword::NOT)
            || keyword_at(t, Keyword::EXISTS);
        if !skip {
            break;
        }
        words_skipped += usize::from(is_word(t));
        at += 1;
    }
    tokens[at] = Token::make_word(&quote_ident(new).to_string(), None);
    Ok(tokens.iter().map(ToString::to_string).collect())
}

/// A query's text with every table reference to `old` reading `new` instead, under the old
/// name as its alias (unless it had one).
pub fn rename_in_query(query: &str, old: &str, new: &str) -> SqlResult<String> {
    let mut statement = one_statement(query)?;
    let mut renamer = Renamer { old, new };
    let _ = statement.visit(&mut renamer);
    Ok(statement.to_string())
}

struct Renamer<'a> {
    old: &'a str,
    new: &'a str,
}

impl VisitorMut for Renamer<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = factor
            && normalize_object_name(name).is_ok_and(|n| n == self.old)
        {
            *name = ObjectName::from(vec![quote_ident(self.new)]);
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: quote_ident(self.old),
                    columns: vec![],
                    at: None,
                });
            }
        }
        ControlFlow::Continue(())
    }
}

/// A query's text with every plain table reference to `relation` reading only the given
/// columns of it: `FROM s` becomes `FROM (SELECT a, b FROM s) AS s`. A plain view keeps its
/// columns this way when a relation it reads gains some (as Postgres fixes a view's `*` when
/// the view is created).
pub fn narrow_in_query(query: &str, relation: &str, columns: &[String]) -> SqlResult<String> {
    let list: Vec<String> = columns.iter().map(|c| quote_ident(c).to_string()).collect();
    let narrow = format!("SELECT {} FROM {}", list.join(", "), quote_ident(relation));
    let subquery = match parser::parse(&narrow)?.pop() {
        Some(Statement::Sql(s)) => match *s {
            sqlparser::ast::Statement::Query(q) => q,
            other => return Err(SqlError::Internal(format!("not a query: {other}"))),
        },
        _ => return Err(SqlError::Internal(format!("not a query: {narrow}"))),
    };
    let mut statement = one_statement(query)?;
    let mut narrower = Narrower { relation, subquery };
    let _ = statement.visit(&mut narrower);
    Ok(statement.to_string())
}

/// A relation's `CREATE` text with a column definition added at the end of its list.
pub fn add_column_sql(create_sql: &str, column: &str) -> SqlResult<String> {
    let dialect = EddyDialect;
    let tokens = Tokenizer::new(&dialect, create_sql)
        .tokenize()
        .map_err(|e| SqlError::Internal(format!("stored definition does not tokenize: {e}")))?;
    let open = tokens
        .iter()
        .position(|t| *t == Token::LParen)
        .ok_or_else(|| SqlError::Internal("stored definition has no column list".into()))?;
    let mut depth = 0usize;
    let mut close = None;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close =
        close.ok_or_else(|| SqlError::Internal("stored column list is not closed".into()))?;
    let text = |ts: &[Token]| ts.iter().map(ToString::to_string).collect::<String>();
    Ok(format!(
        "{}, {column}{}",
        text(&tokens[..close]),
        text(&tokens[close..])
    ))
}

fn one_statement(query: &str) -> SqlResult<sqlparser::ast::Statement> {
    let mut statements = parser::parse(query)?;
    match (statements.pop(), statements.is_empty()) {
        (Some(Statement::Sql(statement)), true) => Ok(*statement),
        _ => Err(SqlError::Internal(format!(
            "stored query is not one statement: {query}"
        ))),
    }
}

struct Narrower<'a> {
    relation: &'a str,
    subquery: Box<sqlparser::ast::Query>,
}

impl VisitorMut for Narrower<'_> {
    type Break = ();

    // After the factor's own children: the subquery put in its place is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
            && normalize_object_name(name).is_ok_and(|n| n == self.relation)
        {
            let alias = alias.take().unwrap_or_else(|| TableAlias {
                explicit: true,
                name: quote_ident(self.relation),
                columns: vec![],
                at: None,
            });
            *factor = TableFactor::Derived {
                lateral: false,
                subquery: self.subquery.clone(),
                alias: Some(alias),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_the_new_name_under_the_old() {
        let q = rename_in_query(
            "SELECT v.k, count(*) FROM v JOIN w AS x ON v.k = x.k GROUP BY v.k",
            "v",
            "Renamed",
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT v.k, count(*) FROM \"Renamed\" AS v JOIN w AS x ON v.k = x.k GROUP BY v.k"
        );
        let q = rename_in_query("SELECT * FROM v AS a, (SELECT 1 FROM v) AS b", "v", "n").unwrap();
        assert_eq!(q, "SELECT * FROM n AS a, (SELECT 1 FROM n AS v) AS b");
    }

    #[test]
    fn create_texts_name_the_new_name() {
        let replaced = |sql, keywords: &[Keyword]| replace_word_after(sql, keywords, "b2").unwrap();
        let view = [Keyword::CREATE, Keyword::VIEW];
        assert_eq!(
            replaced("CREATE MATERIALIZED VIEW a AS SELECT a FROM t", &view),
            "CREATE MATERIALIZED VIEW b2 AS SELECT a FROM t"
        );
        assert_eq!(
            replaced(
                "CREATE TABLE IF NOT EXISTS a (a INT)",
                &[Keyword::CREATE, Keyword::TABLE]
            ),
            "CREATE TABLE IF NOT EXISTS b2 (a INT)"
        );
        assert_eq!(
            replaced("CREATE SINK a FROM v WITH (x = 'a')", &[Keyword::CREATE]),
            "CREATE SINK b2 FROM v WITH (x = 'a')"
        );
        assert_eq!(
            replaced("CREATE SINK a FROM v WITH (x = 'a')", &[Keyword::FROM]),
            "CREATE SINK a FROM b2 WITH (x = 'a')"
        );
        assert_eq!(quote_ident("Big").to_string(), "\"Big\"");
        assert_eq!(quote_ident("select").to_string(), "\"select\"");
        assert_eq!(quote_ident("plain_1").to_string(), "plain_1");
    }

    #[test]
    fn plain_views_keep_the_columns_they_had() {
        let q = narrow_in_query(
            "SELECT * FROM s JOIN t AS x ON s.k = x.k WHERE s.k IN (SELECT k FROM s AS y)",
            "s",
            &["k".into(), "Big".into()],
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT * FROM (SELECT k, \"Big\" FROM s) AS s JOIN t AS x ON s.k = x.k \
             WHERE s.k IN (SELECT k FROM (SELECT k, \"Big\" FROM s) AS y)"
        );
        assert_eq!(
            add_column_sql(
                "CREATE STREAM s (a INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (x = '(')",
                "b NUMERIC(10, 2)"
            )
            .unwrap(),
            "CREATE STREAM s (a INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND, b NUMERIC(10, 2)) WITH (x = '(')"
        );
    }
}
