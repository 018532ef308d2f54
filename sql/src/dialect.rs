//! The SQL dialect Eddy parses with: sqlparser's PostgreSQL dialect, with literals read
//! directly.
//!
//! sqlparser's PostgreSQL dialect first tries every expression as a typed string
//! (`DATE '2020-01-01'`): it parses a data type, and when that fails (as it does for every
//! number, string and parameter), builds and discards an error message. In a 1,000-row
//! `INSERT ... VALUES` that attempt was a large share of the statement's parse time (see
//! BENCHMARKS.md for what skipping it gained). [`EddyDialect`]
//! reads a literal or a parameter at once, exactly as sqlparser does after the attempt fails,
//! and behaves as the PostgreSQL dialect in every other respect: each method the PostgreSQL
//! dialect overrides is forwarded to it, and [`Dialect::dialect`] reports its type so that
//! sqlparser's dialect checks treat both alike.
//!
//! The forwarded methods are those of sqlparser's `PostgreSqlDialect` impl in the version the
//! workspace pins: an upgrade of sqlparser must compare that list again (a method the wrapper
//! misses falls back to sqlparser's generic default). The tests below catch differences in
//! the statements they hold, not in every statement.

use std::any::TypeId;

use sqlparser::ast::Expr;
use sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// sqlparser's PostgreSQL dialect, reading literals and parameters without first trying them
/// as a data type.
#[derive(Debug, Default, Clone, Copy)]
pub struct EddyDialect;

const PG: PostgreSqlDialect = PostgreSqlDialect {};

/// Forwards argument-less `bool` methods to the PostgreSQL dialect.
macro_rules! forward_flags {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool {
            PG.$name()
        })*
    };
}

impl Dialect for EddyDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        match parser.peek_token_ref().token {
            // What sqlparser's own prefix parsing returns for these once the typed-string
            // attempt has failed, which it always does for them.
            Token::Number(..) | Token::SingleQuotedString(_) | Token::Placeholder(_) => {
                Some(parser.parse_value().map(Expr::Value))
            }
            _ => None,
        }
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        PG.identifier_quote_style(identifier)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        PG.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        PG.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        PG.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        PG.is_reserved_for_identifier(kw)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        PG.is_custom_operator_part(ch)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        PG.get_next_precedence(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        PG.prec_value(prec)
    }

    forward_flags!(
        supports_unicode_string_literal,
        supports_filter_during_aggregation,
        supports_group_by_expr,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_listen_notify,
        supports_factorial_operator,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_colon_operator,
        supports_named_fn_args_with_expr_name,
        supports_empty_projections,
        supports_nested_comments,
        supports_string_escape_constant,
        supports_numeric_literal_underscores,
        supports_array_typedef_with_brackets,
        supports_geometric_types,
        supports_set_names,
        supports_alter_column_type_using,
        supports_notnull_operator,
        supports_interval_options,
        supports_insert_table_alias,
        supports_create_table_like_parenthesized,
        supports_select_wildcard_with_alias,
        supports_comma_separated_trim,
        supports_xml_expressions,
        supports_comment_optimizer_hint,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statements whose literals sit where the typed-string attempt, an operator, a cast, a
    /// subscript or a string continuation could change the reading.
    const CORPUS: &[&str] = &[
        "INSERT INTO t VALUES (1, 'a', NULL), (-2.5, 'b''c', TRUE), (1e3, E'x\\ny', $1)",
        "INSERT INTO t (a, b) VALUES ('2024-01-01'::date, 'x' || 'y') ON CONFLICT (a) DO UPDATE SET b = excluded.b",
        "SELECT DATE '2020-05-20', TIMESTAMP WITH TIME ZONE '2020-05-20 7:43:54', INTERVAL '7' DAY",
        "SELECT 'a' 'b', 'c'\n'd', 1 + 2 * 3, -4 ^ 2, 5!, '{1,2}'::int[], ARRAY[1, 2][1]",
        "SELECT x FROM t WHERE id = $1 AND name LIKE 'a%' AND n BETWEEN 1 AND 10 ORDER BY 1 LIMIT 5",
        "SELECT 1::text, '1'::int, 'a' COLLATE \"C\", 1 IS NOT NULL, 'x' NOTNULL, NOT 'a' LIKE 'b'",
        "SELECT xml '<a/>', bool 'true', int8 '5', $2::bigint, 0x1F, 1_000, .5, 5., 'k' AT TIME ZONE 'UTC'",
        "UPDATE t SET a = 1, b = 'x' WHERE c IN (1, 2, 3) RETURNING *",
        "SELECT count(*) FILTER (WHERE a > 1) FROM t GROUP BY ALL",
    ];

    #[test]
    fn parses_as_the_postgresql_dialect_does() {
        for sql in CORPUS {
            let ours = Parser::parse_sql(&EddyDialect, sql);
            let theirs = Parser::parse_sql(&PostgreSqlDialect {}, sql);
            assert_eq!(
                format!("{ours:?}"),
                format!("{theirs:?}"),
                "the two dialects read differently: {sql}"
            );
            assert!(theirs.is_ok(), "the corpus holds valid statements: {sql}");
        }
    }

    #[test]
    fn errors_match_the_postgresql_dialect() {
        for sql in [
            "INSERT INTO t VALUES (1,",
            "SELECT (1, 'a' FROM t",
            "UPDATE t SET a = WHERE b = 1",
            "SELECT 1 +",
        ] {
            let ours = Parser::parse_sql(&EddyDialect, sql).map_err(|e| e.to_string());
            let theirs = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string());
            assert!(
                theirs.is_err(),
                "the corpus holds invalid statements: {sql}"
            );
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{sql}");
        }
    }

    #[test]
    fn is_taken_for_the_postgresql_dialect() {
        assert!(EddyDialect.dialect() == PostgreSqlDialect {}.dialect());
    }
}
