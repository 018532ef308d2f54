//! A fast path for the statement bulk loaders and drivers send most: `INSERT INTO name
//! [(columns)] VALUES (...), (...), ...` whose values are all plain literals.
//!
//! sqlparser tokenizes such a statement into a dozen tokens per row and builds an expression
//! tree per value, which costs microseconds a row; the epoch that applies the rows costs less.
//! [`scan_insert`] reads the same text in one pass into the literals' positions. It accepts
//! only a strict subset of the grammar (unquoted or double-quoted identifiers, numbers,
//! single-quoted strings without backslashes, NULL, TRUE, FALSE) and says `None` at the first
//! thing outside it (a comment, an expression, a parameter, DEFAULT, ON CONFLICT, a second
//! statement, rows of different widths); the statement then goes through sqlparser as any
//! other, which also reports whatever is wrong with it. So the fast path never changes what a
//! statement means, only how fast it is read.

use std::borrow::Cow;

use sqlparser::ast::{Ident, ObjectName};

use crate::names::{is_reserved, normalize_ident, normalize_object_name};

/// A literal as written in a VALUES list.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal<'a> {
    Null,
    Bool(bool),
    /// The number's text, with its sign (`-12`, `3.5`, `1e6`).
    Number(Cow<'a, str>),
    /// A string's content, quotes removed and doubled quotes undone.
    Text(Cow<'a, str>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Null,
    True,
    False,
    Number,
    /// A string without doubled quotes inside: its content is a slice of the text.
    Text,
    /// A string with doubled quotes inside, undone when read.
    EscapedText,
}

/// A slice of the statement's text and what it holds.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: u32,
    end: u32,
}

/// An INSERT of literal rows, read by [`scan_insert`].
#[derive(Debug, Clone)]
pub struct LiteralInsert {
    /// The statement as sent, for the general path when the target needs it.
    pub sql: String,
    /// The target relation's name, resolved as Postgres resolves it.
    pub table: String,
    /// The columns named after the table (normalized), empty when none are.
    pub columns: Vec<String>,
    /// The number of values in each row.
    pub width: usize,
    values: Vec<Token>,
}

impl LiteralInsert {
    pub fn row_count(&self) -> usize {
        self.values.len().checked_div(self.width).unwrap_or(0)
    }

    /// The literals of each row, in order.
    pub fn rows(&self) -> impl Iterator<Item = impl Iterator<Item = Literal<'_>>> {
        self.values
            .chunks(self.width.max(1))
            .map(|row| row.iter().map(|t| self.literal(t)))
    }

    fn literal(&self, t: &Token) -> Literal<'_> {
        let text = &self.sql[t.start as usize..t.end as usize];
        match t.kind {
            Kind::Null => Literal::Null,
            Kind::True => Literal::Bool(true),
            Kind::False => Literal::Bool(false),
            Kind::Number => Literal::Number(Cow::Borrowed(text)),
            Kind::Text => Literal::Text(Cow::Borrowed(text)),
            Kind::EscapedText => Literal::Text(Cow::Owned(text.replace("''", "'"))),
        }
    }
}

/// Reads `sql` when it is one INSERT of literal rows; `None` for anything else.
pub fn scan_insert(sql: &str) -> Option<LiteralInsert> {
    // Positions are kept in 32 bits.
    if sql.len() >= u32::MAX as usize {
        return None;
    }
    let mut s = Scanner { sql, pos: 0 };
    s.keyword("insert")?;
    s.keyword("into")?;
    let mut name = vec![s.ident()?];
    while s.eat(b'.') {
        name.push(s.ident()?);
    }
    let table = normalize_object_name(&ObjectName::from(name)).ok()?;
    let mut columns = Vec::new();
    if s.eat(b'(') {
        loop {
            columns.push(normalize_ident(&s.ident()?));
            if !s.eat(b',') {
                break;
            }
        }
        s.expect(b')')?;
    }
    s.keyword("values")?;
    let mut values = Vec::new();
    let mut width = 0;
    loop {
        s.expect(b'(')?;
        let before = values.len();
        loop {
            values.push(s.literal()?);
            if !s.eat(b',') {
                break;
            }
        }
        s.expect(b')')?;
        let row = values.len() - before;
        if width == 0 {
            width = row;
        } else if row != width {
            return None;
        }
        if !s.eat(b',') {
            break;
        }
    }
    s.eat(b';');
    s.skip_space();
    if s.pos != sql.len() {
        return None;
    }
    Some(LiteralInsert {
        sql: sql.to_string(),
        table,
        columns,
        width,
        values,
    })
}

struct Scanner<'a> {
    sql: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn bytes(&self) -> &[u8] {
        &self.sql.as_bytes()[self.pos..]
    }

    fn skip_space(&mut self) {
        let n = self
            .bytes()
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
            .count();
        self.pos += n;
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let hit = self.bytes().first() == Some(&byte);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// A run of identifier characters at the cursor (not consumed).
    fn word(&mut self) -> &str {
        self.skip_space();
        let n = self
            .bytes()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$')
            .count();
        &self.sql[self.pos..self.pos + n]
    }

    fn keyword(&mut self, keyword: &str) -> Option<()> {
        let word = self.word();
        if !word.eq_ignore_ascii_case(keyword) {
            return None;
        }
        self.pos += word.len();
        Some(())
    }

    /// An unquoted identifier that is not reserved, or a double-quoted one.
    fn ident(&mut self) -> Option<Ident> {
        self.skip_space();
        if self.bytes().first() == Some(&b'"') {
            let (end, escaped) = quoted(self.sql.as_bytes(), self.pos + 1, b'"')?;
            let inner = &self.sql[self.pos + 1..end];
            self.pos = end + 1;
            let value = match escaped {
                true => inner.replace("\"\"", "\""),
                false => inner.to_string(),
            };
            return (!value.is_empty()).then(|| Ident::with_quote('"', value));
        }
        let word = self.word();
        let first = word.bytes().next()?;
        if !(first.is_ascii_alphabetic() || first == b'_') || is_reserved(word) {
            return None;
        }
        let ident = Ident::new(word);
        self.pos += word.len();
        Some(ident)
    }

    fn literal(&mut self) -> Option<Token> {
        self.skip_space();
        let start = self.pos;
        let bytes = self.sql.as_bytes();
        let token = |kind, start: usize, end: usize| Token {
            kind,
            start: start as u32,
            end: end as u32,
        };
        match *bytes.get(start)? {
            b'\'' => {
                let (end, escaped) = quoted(bytes, start + 1, b'\'')?;
                // A backslash means something under some settings and dialects; leave such
                // strings to the general path rather than guess.
                if bytes[start + 1..end].contains(&b'\\') {
                    return None;
                }
                self.pos = end + 1;
                let kind = if escaped {
                    Kind::EscapedText
                } else {
                    Kind::Text
                };
                Some(token(kind, start + 1, end))
            }
            b'-' | b'0'..=b'9' | b'.' => {
                let end = number_end(bytes, start)?;
                self.pos = end;
                Some(token(Kind::Number, start, end))
            }
            _ => {
                let word = self.word();
                let kind = if word.eq_ignore_ascii_case("null") {
                    Kind::Null
                } else if word.eq_ignore_ascii_case("true") {
                    Kind::True
                } else if word.eq_ignore_ascii_case("false") {
                    Kind::False
                } else {
                    return None;
                };
                self.pos += word.len();
                Some(token(kind, start, self.pos))
            }
        }
    }
}

/// The position of the closing `quote` of a quoted string or identifier whose content starts
/// at `from`, and whether the content holds a doubled (escaped) quote.
fn quoted(bytes: &[u8], from: usize, quote: u8) -> Option<(usize, bool)> {
    let mut i = from;
    let mut escaped = false;
    loop {
        i += bytes.get(i..)?.iter().position(|b| *b == quote)?;
        if bytes.get(i + 1) == Some(&quote) {
            escaped = true;
            i += 2;
        } else {
            return Some((i, escaped));
        }
    }
}

/// The end of a number starting at `start`: `-`? digits [`.` digits] [`e` [sign] digits], at
/// least one digit before the exponent, and nothing that could continue a token after it.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits = |i: usize| bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = start + usize::from(bytes[start] == b'-');
    let whole = digits(i);
    i += whole;
    let mut fraction = 0;
    if bytes.get(i) == Some(&b'.') {
        fraction = digits(i + 1);
        i += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits(i);
        if exponent == 0 {
            return None;
        }
        i += exponent;
    }
    match bytes.get(i) {
        Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'\'') => None,
        _ => Some(i),
    }
}

/// The literal an expression of a parsed VALUES list is, if it is one [`Literal`] describes.
pub fn literal_of(expr: &sqlparser::ast::Expr) -> Option<Literal<'_>> {
    use sqlparser::ast::{Expr, UnaryOperator, Value};
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(Literal::Text(Cow::Borrowed(s))),
            Value::Null => Some(Literal::Null),
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::Number(n, false) => Some(Literal::Number(Cow::Borrowed(n))),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, false) => Some(Literal::Number(Cow::Owned(format!("-{n}")))),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlResult;

    /// The literal rows of the statement as sqlparser reads it.
    fn parsed_rows(sql: &str) -> SqlResult<Vec<Vec<Option<Literal<'static>>>>> {
        use sqlparser::ast::{SetExpr, Statement};
        let stmts = sqlparser::parser::Parser::parse_sql(&crate::dialect::EddyDialect, sql)?;
        let Some(Statement::Insert(ins)) = stmts.first() else {
            return Ok(Vec::new());
        };
        let Some(SetExpr::Values(values)) = ins.source.as_deref().map(|q| q.body.as_ref()) else {
            return Ok(Vec::new());
        };
        Ok(values
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|e| literal_of(e).map(owned))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    fn owned(l: Literal<'_>) -> Literal<'static> {
        match l {
            Literal::Null => Literal::Null,
            Literal::Bool(b) => Literal::Bool(b),
            Literal::Number(n) => Literal::Number(Cow::Owned(n.into_owned())),
            Literal::Text(t) => Literal::Text(Cow::Owned(t.into_owned())),
        }
    }

    fn fast(sql: &str) -> Option<Vec<Vec<Option<Literal<'static>>>>> {
        let ins = scan_insert(sql)?;
        Some(
            ins.rows()
                .map(|row| row.map(|l| Some(owned(l))).collect())
                .collect(),
        )
    }

    /// Every statement the fast path reads, it reads as sqlparser does.
    #[test]
    fn agrees_with_sqlparser() {
        for sql in [
            "INSERT INTO t VALUES (1, 'a', NULL)",
            "insert into t values (1,'a',null),(2,'b''c',true) ;",
            "INSERT INTO public.t (a, \"B\") VALUES (-1.5e3, FALSE)",
            "INSERT INTO \"we\"\"ird\" VALUES ('', .5, -0.25, 1E+2)",
            "INSERT INTO t VALUES ('2024-01-02 00:00:00', 'naïve')\n",
        ] {
            let expected = parsed_rows(sql).unwrap();
            assert_eq!(fast(sql), Some(expected), "{sql}");
        }
    }

    #[test]
    fn names_are_normalized() {
        let ins = scan_insert("INSERT INTO Public.Events (Id, \"Ts\") VALUES (1, 2)").unwrap();
        assert_eq!(ins.table, "events");
        assert_eq!(ins.columns, ["id", "Ts"]);
        assert_eq!((ins.width, ins.row_count()), (2, 1));
    }

    /// Anything outside the subset goes to sqlparser.
    #[test]
    fn declines_what_it_does_not_read() {
        for sql in [
            "INSERT INTO t VALUES (1), (2, 3)",
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES ($1)",
            "INSERT INTO t VALUES (DEFAULT)",
            "INSERT INTO t VALUES ('a\\b')",
            "INSERT INTO t VALUES (E'a')",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES (1) -- comment",
            "INSERT INTO t VALUES (0x1f)",
            "INSERT INTO t VALUES (1.2.3)",
            "INSERT INTO t VALUES (-)",
            "INSERT INTO t VALUES ()",
            "INSERT INTO select VALUES (1)",
            "INSERT INTO t VALUES ('unterminated)",
            "INSERT INTO t SELECT 1",
            "INSERT INTO t VALUES (1e)",
            "INSERT INTO t VALUES (+1)",
        ] {
            assert!(scan_insert(sql).is_none(), "{sql}");
        }
    }
}
