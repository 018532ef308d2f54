//! Eddy's statement parser: a thin layer over sqlparser's PostgreSQL dialect.
//!
//! It peeks at the leading keywords of each statement; the statements Eddy adds (CREATE
//! STREAM, SHOW STREAMS, FLUSH, ...) and those it treats specially (CREATE MATERIALIZED VIEW,
//! DROP) are parsed here, everything else is handed to sqlparser unchanged.

use crate::dialect::EddyDialect;
use sqlparser::ast::{ColumnDef, Expr, Ident, Query, SqlOption, Statement as SqlStatement};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::SqlResult;
use crate::names::normalize_object_name;
use eddy_catalog::RelationKind;

/// `WATERMARK FOR column AS expr` in a stream's column list.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    pub column: Ident,
    pub expr: Expr,
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateStream {
        name: String,
        columns: Vec<ColumnDef>,
        watermark: Option<Box<WatermarkDef>>,
        if_not_exists: bool,
        options: Vec<SqlOption>,
    },
    CreateMaterializedView {
        name: String,
        query: Box<Query>,
        if_not_exists: bool,
        /// `CREATE OR REPLACE`: an existing view of that name is rebuilt beside and swapped.
        or_replace: bool,
        /// `EMIT ON WINDOW CLOSE` after the query.
        emit_on_window_close: bool,
        /// `WITH (trigger = '5 seconds')` before `AS`.
        options: Vec<SqlOption>,
    },
    /// `ALTER <kind> [IF EXISTS] name RENAME TO new_name`.
    Rename {
        kind: RelationKind,
        name: String,
        to: String,
        if_exists: bool,
    },
    /// `ALTER STREAM | TABLE [IF EXISTS] name ADD [COLUMN] [IF NOT EXISTS] column type`.
    AddColumn {
        kind: RelationKind,
        name: String,
        if_exists: bool,
        column: Box<ColumnDef>,
        if_not_exists: bool,
    },
    /// `CREATE SINK name FROM relation WITH (connector = ..., ...)`.
    CreateSink {
        name: String,
        from: String,
        if_not_exists: bool,
        options: Vec<SqlOption>,
    },
    /// `EXPLAIN CREATE MATERIALIZED VIEW ...`: the dataflow the view would get, not created.
    ExplainView {
        query: Box<Query>,
        emit_on_window_close: bool,
    },
    Drop {
        kind: RelationKind,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    /// `SHOW STREAMS | TABLES | MATERIALIZED VIEWS | VIEWS`
    ShowRelations(RelationKind),
    ShowCreate {
        kind: RelationKind,
        name: String,
    },
    Flush,
    /// `SUBSCRIBE [TO] name [WITH (...)]`, or `COPY (SUBSCRIBE ...) TO STDOUT` (`copy`), which
    /// psql prints as the rows arrive.
    Subscribe {
        name: String,
        options: Vec<SqlOption>,
        copy: bool,
    },
    /// `INSERT INTO name [(columns)] VALUES ...` of literal rows, read by [`crate::values`].
    InsertValues(Box<crate::values::LiteralInsert>),
    /// Anything else, as sqlparser parsed it.
    Sql(Box<SqlStatement>),
}

/// Parses a string of `;`-separated statements.
pub fn parse(sql: &str) -> SqlResult<Vec<Statement>> {
    if let Some(queries) = crate::compat::parse_catalog_query(sql) {
        return Ok(queries
            .into_iter()
            .map(|q| Statement::Sql(Box::new(q)))
            .collect());
    }
    if let Some(insert) = crate::values::scan_insert(sql) {
        return Ok(vec![Statement::InsertValues(Box::new(insert))]);
    }
    parse_general(sql)
}

/// Parses a string of `;`-separated statements without the fast path of [`crate::values`].
pub fn parse_general(sql: &str) -> SqlResult<Vec<Statement>> {
    let dialect = EddyDialect;
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        out.push(parse_one(&mut parser)?);
        if !parser.consume_token(&Token::SemiColon) && parser.peek_token().token != Token::EOF {
            let found = parser.peek_token();
            return parser
                .expected("end of statement", found)
                .map_err(Into::into);
        }
    }
    Ok(out)
}

fn kind_keyword(parser: &mut Parser<'_>) -> Option<RelationKind> {
    if parser.parse_keyword(Keyword::STREAM) {
        Some(RelationKind::Stream)
    } else if parser.parse_keyword(Keyword::TABLE) {
        Some(RelationKind::Table)
    } else if parser.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
        Some(RelationKind::MaterializedView)
    } else if parser.parse_keyword(Keyword::VIEW) {
        Some(RelationKind::View)
    } else if parse_word(parser, "sink") {
        Some(RelationKind::Sink)
    } else {
        None
    }
}

fn plural_kind(parser: &mut Parser<'_>) -> Option<RelationKind> {
    let word = |p: &Parser<'_>, n: usize, w: &str| match p.peek_nth_token(n).token {
        Token::Word(word) => word.value.eq_ignore_ascii_case(w),
        _ => false,
    };
    let (kind, words) = if word(parser, 0, "streams") {
        (RelationKind::Stream, 1)
    } else if word(parser, 0, "tables") {
        (RelationKind::Table, 1)
    } else if word(parser, 0, "views") {
        (RelationKind::View, 1)
    } else if word(parser, 0, "sinks") {
        (RelationKind::Sink, 1)
    } else if word(parser, 0, "materialized") && word(parser, 1, "views") {
        (RelationKind::MaterializedView, 2)
    } else {
        return None;
    };
    if parser.peek_nth_token(words).token != Token::EOF
        && parser.peek_nth_token(words).token != Token::SemiColon
    {
        return None;
    }
    for _ in 0..words {
        parser.next_token();
    }
    Some(kind)
}

/// The rest of a SUBSCRIBE after its keyword.
fn subscribe(parser: &mut Parser<'_>, copy: bool) -> SqlResult<Statement> {
    let _ = parser.parse_keyword(Keyword::TO);
    let name = normalize_object_name(&parser.parse_object_name(false)?)?;
    let options = if parser.peek_keyword(Keyword::WITH) {
        parser.parse_options(Keyword::WITH)?
    } else {
        vec![]
    };
    Ok(Statement::Subscribe {
        name,
        options,
        copy,
    })
}

/// Consumes the next token if it is the given (non-keyword) word.
fn parse_word(parser: &mut Parser<'_>, word: &str) -> bool {
    let found = matches!(&parser.peek_token().token,
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    if found {
        parser.next_token();
    }
    found
}

/// A materialized view's query and whether `EMIT ON WINDOW CLOSE` follows it. The clause is
/// cut off before the query is parsed: otherwise `FROM t EMIT` would read EMIT as an alias.
fn view_query(parser: &mut Parser<'_>) -> SqlResult<(Box<Query>, bool)> {
    let mut tokens = Vec::new();
    loop {
        let t = parser.peek_nth_token(tokens.len()).token;
        if matches!(t, Token::EOF | Token::SemiColon) {
            break;
        }
        tokens.push(t);
    }
    let is_word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let emit = tokens.len() > 4
        && ["emit", "on", "window", "close"]
            .iter()
            .zip(&tokens[tokens.len() - 4..])
            .all(|(w, t)| is_word(t, w));
    if !emit {
        return Ok((parser.parse_query()?, false));
    }
    let count = tokens.len();
    tokens.truncate(count - 4);
    let dialect = EddyDialect;
    let mut inner = Parser::new(&dialect).with_tokens(tokens);
    let query = inner.parse_query()?;
    if inner.peek_token().token != Token::EOF {
        let found = inner.peek_token();
        return inner
            .expected("EMIT ON WINDOW CLOSE", found)
            .map_err(Into::into);
    }
    for _ in 0..count {
        parser.next_token();
    }
    Ok((query, true))
}

/// A stream's column list: column definitions and at most one `WATERMARK FOR col AS expr`.
/// Streams have no keys, so a table constraint is refused.
fn stream_columns(
    parser: &mut Parser<'_>,
) -> SqlResult<(Vec<ColumnDef>, Option<Box<WatermarkDef>>)> {
    let mut columns = Vec::new();
    let mut watermark = None;
    // A stream fed by a connector that defines its columns may leave them out.
    if parser.peek_keyword(Keyword::WITH) {
        return Ok((columns, watermark));
    }
    parser.expect_token(&Token::LParen)?;
    loop {
        let is_watermark = matches!(parser.peek_nth_token(1).token,
            Token::Word(ref w) if w.keyword == Keyword::FOR)
            && parse_word(parser, "watermark");
        if is_watermark {
            parser.next_token();
            let column = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::AS)?;
            let expr = parser.parse_expr()?;
            if watermark
                .replace(Box::new(WatermarkDef { column, expr }))
                .is_some()
            {
                return Err(crate::SqlError::InvalidParameter(
                    "a stream has at most one WATERMARK".into(),
                ));
            }
        } else if let Some(c) = parser.parse_optional_table_constraint()? {
            return Err(crate::SqlError::Unsupported(format!(
                "constraint \"{c}\" on a stream (streams are append-only and have no keys)"
            )));
        } else {
            columns.push(parser.parse_column_def()?);
        }
        if parser.consume_token(&Token::RParen) {
            break;
        }
        parser.expect_token(&Token::Comma)?;
    }
    Ok((columns, watermark))
}

/// The rest of an ALTER of one of Eddy's kinds of relation (a table's other than RENAME are
/// sqlparser's).
fn alter(parser: &mut Parser<'_>) -> SqlResult<Option<Statement>> {
    let Some(kind) = kind_keyword(parser) else {
        return Ok(None);
    };
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = normalize_object_name(&parser.parse_object_name(false)?)?;
    if parser.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
        let to = normalize_object_name(&parser.parse_object_name(false)?)?;
        return Ok(Some(Statement::Rename {
            kind,
            name,
            to,
            if_exists,
        }));
    }
    let adds_constraint = |p: &Parser<'_>| {
        matches!(&p.peek_token().token, Token::Word(w) if matches!(w.keyword,
            Keyword::CONSTRAINT | Keyword::PRIMARY | Keyword::UNIQUE | Keyword::FOREIGN | Keyword::CHECK))
    };
    if matches!(kind, RelationKind::Stream | RelationKind::Table)
        && parser.parse_keyword(Keyword::ADD)
    {
        let column_word = parser.parse_keyword(Keyword::COLUMN);
        if !column_word && adds_constraint(parser) {
            return Err(crate::SqlError::Unsupported(format!(
                "ALTER {} ... ADD of a constraint: a relation's key is set when it is created",
                kind.sql_name()
            )));
        }
        let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let column = parser.parse_column_def()?;
        return Ok(Some(Statement::AddColumn {
            kind,
            name,
            if_exists,
            column: Box::new(column),
            if_not_exists,
        }));
    }
    Err(crate::SqlError::Unsupported(format!(
        "this ALTER {}: Eddy alters a relation's name (RENAME TO){}",
        kind.sql_name(),
        match kind {
            RelationKind::Stream | RelationKind::Table => " and adds columns (ADD COLUMN)",
            _ => "",
        }
    )))
}

fn parse_one(parser: &mut Parser<'_>) -> SqlResult<Statement> {
    let start = parser.index();
    let keyword = |n: usize, k: Keyword| matches!(&parser.peek_nth_token(n).token, Token::Word(w) if w.keyword == k);
    if keyword(0, Keyword::EXPLAIN)
        && keyword(1, Keyword::CREATE)
        && keyword(2, Keyword::MATERIALIZED)
        && keyword(3, Keyword::VIEW)
    {
        parser.next_token();
        let Statement::CreateMaterializedView {
            query,
            emit_on_window_close,
            ..
        } = parse_one(parser)?
        else {
            unreachable!("CREATE MATERIALIZED VIEW parses as one");
        };
        return Ok(Statement::ExplainView {
            query,
            emit_on_window_close,
        });
    }
    if parser.parse_keyword(Keyword::CREATE) {
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        let materialized = matches!(&parser.peek_token().token,
            Token::Word(w) if w.keyword == Keyword::MATERIALIZED);
        if or_replace && !materialized {
            // CREATE OR REPLACE VIEW and the like are sqlparser's.
        } else if parser.parse_keyword(Keyword::STREAM) {
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = normalize_object_name(&parser.parse_object_name(false)?)?;
            let (columns, watermark) = stream_columns(parser)?;
            let options = if parser.peek_keyword(Keyword::WITH) {
                parser.parse_options(Keyword::WITH)?
            } else {
                vec![]
            };
            return Ok(Statement::CreateStream {
                name,
                columns,
                watermark,
                if_not_exists,
                options,
            });
        }
        if parse_word(parser, "sink") {
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = normalize_object_name(&parser.parse_object_name(false)?)?;
            parser.expect_keyword_is(Keyword::FROM)?;
            let from = normalize_object_name(&parser.parse_object_name(false)?)?;
            if !parser.peek_keyword(Keyword::WITH) {
                let found = parser.peek_token();
                return parser
                    .expected("WITH (connector = ...) after the sink's relation", found)
                    .map_err(Into::into);
            }
            let options = parser.parse_options(Keyword::WITH)?;
            return Ok(Statement::CreateSink {
                name,
                from,
                if_not_exists,
                options,
            });
        }
        if parser.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = normalize_object_name(&parser.parse_object_name(false)?)?;
            let options = if parser.peek_keyword(Keyword::WITH) {
                parser.parse_options(Keyword::WITH)?
            } else {
                vec![]
            };
            parser.expect_keyword_is(Keyword::AS)?;
            let (query, emit_on_window_close) = view_query(parser)?;
            if or_replace && if_not_exists {
                return Err(crate::SqlError::Syntax(
                    "OR REPLACE and IF NOT EXISTS cannot be combined".into(),
                ));
            }
            return Ok(Statement::CreateMaterializedView {
                name,
                query,
                if_not_exists,
                or_replace,
                emit_on_window_close,
                options,
            });
        }
    } else if parser.parse_keyword(Keyword::ALTER) {
        if let Some(statement) = alter(parser)? {
            return Ok(statement);
        }
    } else if parser.parse_keyword(Keyword::DROP) {
        if let Some(kind) = kind_keyword(parser) {
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let names = parser
                .parse_comma_separated(|p| p.parse_object_name(false))?
                .iter()
                .map(normalize_object_name)
                .collect::<SqlResult<Vec<_>>>()?;
            let cascade = matches!(
                parser.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]),
                Some(Keyword::CASCADE)
            );
            return Ok(Statement::Drop {
                kind,
                names,
                if_exists,
                cascade,
            });
        }
    } else if parser.parse_keyword(Keyword::SHOW) {
        if let Some(kind) = plural_kind(parser) {
            return Ok(Statement::ShowRelations(kind));
        }
        if parser.parse_keyword(Keyword::CREATE)
            && let Some(kind) = kind_keyword(parser)
        {
            let name = normalize_object_name(&parser.parse_object_name(false)?)?;
            return Ok(Statement::ShowCreate { kind, name });
        }
    } else if parse_word(parser, "subscribe") {
        return subscribe(parser, false);
    } else if parser.parse_keyword(Keyword::COPY)
        && parser.consume_token(&Token::LParen)
        && parse_word(parser, "subscribe")
    {
        let statement = subscribe(parser, true)?;
        parser.expect_token(&Token::RParen)?;
        parser.expect_keyword_is(Keyword::TO)?;
        parser.expect_keyword_is(Keyword::STDOUT)?;
        return Ok(statement);
    } else if parser.parse_keyword(Keyword::FLUSH)
        && matches!(parser.peek_token().token, Token::EOF | Token::SemiColon)
    {
        return Ok(Statement::Flush);
    }
    // Not one of ours: rewind and let sqlparser have it.
    // `prev_token` steps over whitespace, so it can overshoot `start` by one real token.
    while parser.index() > start {
        parser.prev_token();
    }
    if parser.index() < start {
        parser.next_token();
    }
    Ok(Statement::Sql(Box::new(parser.parse_statement()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse() {
        let s = parse(
            "CREATE SINK IF NOT EXISTS Out FROM v WITH (connector = 'postgres', table = 't'); \
             DROP SINK out; SHOW SINKS; SHOW CREATE SINK out",
        )
        .unwrap();
        assert!(
            matches!(&s[0], Statement::CreateSink { name, from, if_not_exists: true, options }
            if name == "out" && from == "v" && options.len() == 2)
        );
        assert!(matches!(
            &s[1],
            Statement::Drop {
                kind: RelationKind::Sink,
                ..
            }
        ));
        assert!(matches!(s[2], Statement::ShowRelations(RelationKind::Sink)));
        assert!(matches!(
            &s[3],
            Statement::ShowCreate {
                kind: RelationKind::Sink,
                ..
            }
        ));
        assert!(parse("CREATE SINK s FROM v").is_err());
    }

    #[test]
    fn eddy_statements_parse() {
        let s = parse(
            "CREATE STREAM IF NOT EXISTS Clicks (user_id BIGINT, url TEXT); \
             CREATE MATERIALIZED VIEW v AS SELECT 1; SHOW STREAMS; \
             SHOW CREATE MATERIALIZED VIEW v; DROP STREAM a, \"B\" CASCADE; FLUSH;",
        )
        .unwrap();
        assert!(
            matches!(&s[0], Statement::CreateStream { name, if_not_exists: true, columns, .. }
            if name == "clicks" && columns.len() == 2)
        );
        assert!(
            matches!(&s[1], Statement::CreateMaterializedView { name, emit_on_window_close: false, .. } if name == "v")
        );
        assert!(matches!(
            s[2],
            Statement::ShowRelations(RelationKind::Stream)
        ));
        assert!(
            matches!(&s[3], Statement::ShowCreate { kind: RelationKind::MaterializedView, name } if name == "v")
        );
        assert!(
            matches!(&s[4], Statement::Drop { kind: RelationKind::Stream, names, cascade: true, .. }
            if names == &["a".to_string(), "B".to_string()])
        );
        assert!(matches!(s[5], Statement::Flush));
    }

    #[test]
    fn schema_changes_parse() {
        let s = parse(
            "ALTER MATERIALIZED VIEW v RENAME TO \"W\"; ALTER STREAM IF EXISTS s RENAME TO s2; \
             CREATE OR REPLACE MATERIALIZED VIEW v AS SELECT 2; ALTER TABLE t RENAME TO u; \
             ALTER TABLE t ADD COLUMN c INT; CREATE OR REPLACE VIEW x AS SELECT 1",
        )
        .unwrap();
        assert!(
            matches!(&s[0], Statement::Rename { kind: RelationKind::MaterializedView, name, to, if_exists: false }
            if name == "v" && to == "W")
        );
        assert!(matches!(
            &s[1],
            Statement::Rename {
                kind: RelationKind::Stream,
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(
            &s[2],
            Statement::CreateMaterializedView {
                or_replace: true,
                ..
            }
        ));
        assert!(matches!(
            &s[3],
            Statement::Rename {
                kind: RelationKind::Table,
                ..
            }
        ));
        assert!(matches!(&s[4], Statement::AddColumn { .. }));
        assert!(matches!(&s[5], Statement::Sql(_)));
        let s = parse(
            "ALTER STREAM s ADD COLUMN c INT; ALTER TABLE IF EXISTS t ADD IF NOT EXISTS \"D\" TEXT",
        )
        .unwrap();
        assert!(
            matches!(&s[0], Statement::AddColumn { kind: RelationKind::Stream, name, column, if_exists: false, if_not_exists: false }
            if name == "s" && column.name.value == "c")
        );
        assert!(
            matches!(&s[1], Statement::AddColumn { kind: RelationKind::Table, column, if_exists: true, if_not_exists: true, .. }
            if column.name.value == "D")
        );
        assert!(parse("ALTER TABLE t ADD PRIMARY KEY (a)").is_err());
        assert!(parse("ALTER MATERIALIZED VIEW v ADD COLUMN c INT").is_err());
        assert!(parse("ALTER MATERIALIZED VIEW v SET (x = 1)").is_err());
        assert!(parse("CREATE OR REPLACE MATERIALIZED VIEW IF NOT EXISTS v AS SELECT 1").is_err());
    }

    #[test]
    fn watermarks_and_emit_on_window_close_parse() {
        let s = parse(
            "CREATE STREAM r (sensor INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10 seconds'); \
             CREATE MATERIALIZED VIEW v AS SELECT 1 FROM r EMIT ON WINDOW CLOSE; \
             CREATE MATERIALIZED VIEW IF NOT EXISTS w WITH (trigger = '5 seconds') AS SELECT 1",
        )
        .unwrap();
        assert!(
            matches!(&s[2], Statement::CreateMaterializedView { name, options, if_not_exists: true, .. }
            if name == "w" && options.len() == 1)
        );
        assert!(
            matches!(&s[0], Statement::CreateStream { columns, watermark: Some(w), .. }
            if columns.len() == 2 && w.column.value == "ts")
        );
        assert!(matches!(
            &s[1],
            Statement::CreateMaterializedView {
                emit_on_window_close: true,
                ..
            }
        ));
        assert!(parse("CREATE STREAM r (ts TIMESTAMP, PRIMARY KEY (ts))").is_err());
    }

    #[test]
    fn subscribe_parses() {
        let s = parse(
            "SUBSCRIBE TO v WITH (snapshot = false, output_mode = 'update'); SUBSCRIBE v; \
             COPY (SUBSCRIBE per_minute) TO STDOUT; COPY t FROM STDIN",
        )
        .unwrap();
        assert!(
            matches!(&s[0], Statement::Subscribe { name, options, copy: false } if name == "v" && options.len() == 2)
        );
        assert!(matches!(&s[1], Statement::Subscribe { options, .. } if options.is_empty()));
        assert!(
            matches!(&s[2], Statement::Subscribe { name, copy: true, .. } if name == "per_minute")
        );
        assert!(matches!(&s[3], Statement::Sql(_)));
    }

    #[test]
    fn other_statements_pass_through() {
        let s = parse("SELECT 1; INSERT INTO t VALUES (1); SHOW search_path").unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| matches!(s, Statement::Sql(_))));
    }

    #[test]
    fn syntax_errors_are_errors() {
        assert!(parse("SELEC 1").is_err());
        assert!(parse("CREATE STREAM s (a BIGINT").is_err());
        assert!(parse("SELECT 1 SELECT 2").is_err());
    }
}
