//! Window table functions and intervals.
//!
//! `TUMBLE(rel, time_col, size)` and `HOP(rel, time_col, slide, size)` in FROM are rewritten,
//! before DataFusion plans the statement, into derived tables over `rel` that add the columns
//! `window_start` and `window_end`: a tumbling window is `date_bin` of the event time; a
//! hopping window is a UNION ALL of one such projection per window a row belongs to. The
//! rewritten query is ordinary SQL, so an ad hoc SELECT, the batch oracle and a view's
//! incremental dataflow all read windows the same way.
//!
//! Windows are aligned to the Unix epoch, as in Flink and RisingWave.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, Query, Statement, TableAlias,
    TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::names::{normalize_ident, normalize_object_name};
use crate::{SqlError, SqlResult};

/// Microseconds per day, for intervals given in days.
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// The origin windows are aligned to.
const ORIGIN: &str = "TIMESTAMP '1970-01-01 00:00:00'";
/// Most windows one row may fall into with HOP (size / slide).
const MAX_HOP_WINDOWS: i64 = 1024;

/// The kind of window a table function makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Tumble,
    Hop,
}

/// A window table function found in a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowFunction {
    pub kind: WindowKind,
    /// The normalized name of the relation it windows.
    pub relation: String,
    /// The normalized name of its time column.
    pub time_column: String,
    /// The window size in microseconds.
    pub size_micros: i64,
}

/// The length of an interval expression in microseconds. Month-based intervals have no fixed
/// length and are refused.
pub fn interval_micros(expr: &Expr) -> SqlResult<i64> {
    let bad = || SqlError::InvalidParameter(format!("{expr} is not an interval of fixed length"));
    let Expr::Interval(interval) = expr else {
        return Err(bad());
    };
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let text = match &interval.leading_field {
        Some(unit) => format!("{text} {unit}"),
        None => text,
    };
    let parsed = arrow::compute::kernels::cast_utils::parse_interval_month_day_nano(&text)
        .map_err(|e| SqlError::InvalidParameter(format!("invalid interval '{text}': {e}")))?;
    if parsed.months != 0 {
        return Err(SqlError::InvalidParameter(format!(
            "interval '{text}' counts months, which have no fixed length"
        )));
    }
    Ok(i64::from(parsed.days) * MICROS_PER_DAY + parsed.nanoseconds / 1_000)
}

/// Rewrites every window table function of a statement in place; returns what it found.
pub fn rewrite(statement: &mut Statement) -> SqlResult<Vec<WindowFunction>> {
    let mut rewriter = Rewriter {
        found: Vec::new(),
        error: None,
    };
    let _ = statement.visit(&mut rewriter);
    match rewriter.error {
        Some(e) => Err(e),
        None => Ok(rewriter.found),
    }
}

struct Rewriter {
    found: Vec<WindowFunction>,
    error: Option<SqlError>,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let function = name.to_string().to_ascii_lowercase();
        let kind = match function.as_str() {
            "tumble" => WindowKind::Tumble,
            "hop" => WindowKind::Hop,
            "session" => {
                self.error = Some(SqlError::Unsupported(
                    "SESSION windows are not supported yet".into(),
                ));
                return ControlFlow::Break(());
            }
            _ => return ControlFlow::Continue(()),
        };
        match window_subquery(kind, &args.args) {
            Ok((query, window)) => {
                let alias = alias.clone().or_else(|| {
                    Some(TableAlias {
                        explicit: true,
                        name: Ident::new(window.relation.clone()),
                        columns: vec![],
                        at: None,
                    })
                });
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(query),
                    alias,
                    sample: None,
                };
                self.found.push(window);
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn argument(args: &[FunctionArg], i: usize, function: &str) -> SqlResult<Expr> {
    match args.get(i) {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Ok(e.clone()),
        _ => Err(SqlError::InvalidParameter(format!(
            "{function}(relation, time_column, ...) needs argument {}",
            i + 1
        ))),
    }
}

fn name_of(expr: &Expr, what: &str) -> SqlResult<ObjectName> {
    match expr {
        Expr::Identifier(i) => Ok(ObjectName::from(vec![i.clone()])),
        Expr::CompoundIdentifier(parts) => Ok(ObjectName::from(parts.clone())),
        other => Err(SqlError::InvalidParameter(format!(
            "{other} is not a {what} name"
        ))),
    }
}

fn window_subquery(kind: WindowKind, args: &[FunctionArg]) -> SqlResult<(Query, WindowFunction)> {
    let (function, arity) = match kind {
        WindowKind::Tumble => ("TUMBLE", 3),
        WindowKind::Hop => ("HOP", 4),
    };
    if args.len() != arity {
        return Err(SqlError::InvalidParameter(format!(
            "{function} takes {arity} arguments, not {}",
            args.len()
        )));
    }
    let relation = name_of(&argument(args, 0, function)?, "relation")?;
    let time = match argument(args, 1, function)? {
        Expr::Identifier(i) => i,
        other => {
            return Err(SqlError::InvalidParameter(format!(
                "{other} is not a column name"
            )));
        }
    };
    let micros: Vec<i64> = (2..arity)
        .map(|i| interval_micros(&argument(args, i, function)?))
        .collect::<SqlResult<_>>()?;
    if micros.iter().any(|m| *m <= 0) {
        return Err(SqlError::InvalidParameter(format!(
            "{function} sizes must be positive"
        )));
    }
    let iv = |m: i64| format!("INTERVAL '{m} microseconds'");
    let rel_sql = relation.to_string();
    let ts = time.to_string();
    let (size, sql) = match kind {
        WindowKind::Tumble => {
            let size = micros[0];
            let start = format!("date_bin({}, {ts}, {ORIGIN})", iv(size));
            (
                size,
                format!(
                    "SELECT *, {start} AS window_start, {start} + {} AS window_end FROM {rel_sql}",
                    iv(size)
                ),
            )
        }
        WindowKind::Hop => {
            let (slide, size) = (micros[0], micros[1]);
            let count = (size + slide - 1) / slide;
            if count > MAX_HOP_WINDOWS {
                return Err(SqlError::InvalidParameter(format!(
                    "HOP puts each row into {count} windows; at most {MAX_HOP_WINDOWS} are allowed"
                )));
            }
            let branches: Vec<String> = (0..count)
                .map(|i| {
                    let start = format!(
                        "date_bin({}, {ts}, {ORIGIN}) - {}",
                        iv(slide),
                        iv(i * slide)
                    );
                    let end = format!("{start} + {}", iv(size));
                    // Only when size is no multiple of slide can the oldest window miss a row.
                    let filter = if size % slide != 0 && i == count - 1 {
                        format!(" WHERE {ts} < {end}")
                    } else {
                        String::new()
                    };
                    format!(
                        "SELECT *, {start} AS window_start, {end} AS window_end FROM {rel_sql}{filter}"
                    )
                })
                .collect();
            (size, branches.join(" UNION ALL "))
        }
    };
    let query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)?
        .parse_query()?;
    let window = WindowFunction {
        kind,
        relation: normalize_object_name(&relation)?,
        time_column: normalize_ident(&time),
        size_micros: size,
    };
    Ok((*query, window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{self, Statement as Parsed};

    fn statement(sql: &str) -> Statement {
        match parser::parse(sql).unwrap().pop() {
            Some(Parsed::Sql(s)) => *s,
            _ => panic!("not a plain statement"),
        }
    }

    #[test]
    fn intervals_have_fixed_lengths() {
        let iv = |s: &str| match statement(&format!("SELECT {s}")) {
            Statement::Query(q) => match *q.body {
                sqlparser::ast::SetExpr::Select(sel) => match &sel.projection[0] {
                    sqlparser::ast::SelectItem::UnnamedExpr(e) => interval_micros(e),
                    _ => panic!(),
                },
                _ => panic!(),
            },
            _ => panic!(),
        };
        assert_eq!(iv("INTERVAL '10 seconds'").unwrap(), 10_000_000);
        assert_eq!(iv("INTERVAL '1 minute'").unwrap(), 60_000_000);
        assert_eq!(iv("INTERVAL '1' HOUR").unwrap(), 3_600_000_000);
        assert_eq!(iv("INTERVAL '1 day 2 ms'").unwrap(), MICROS_PER_DAY + 2_000);
        assert!(iv("INTERVAL '1 month'").is_err());
        assert!(iv("'x'").is_err());
    }

    #[test]
    fn tumble_and_hop_become_derived_tables() {
        let mut s = statement(
            "SELECT window_start, count(*) FROM TUMBLE(Readings, ts, INTERVAL '1 minute') GROUP BY 1",
        );
        let found = rewrite(&mut s).unwrap();
        assert_eq!(
            found,
            vec![WindowFunction {
                kind: WindowKind::Tumble,
                relation: "readings".into(),
                time_column: "ts".into(),
                size_micros: 60_000_000,
            }]
        );
        assert!(s.to_string().contains("date_bin"), "{s}");

        let mut s =
            statement("SELECT * FROM HOP(r, ts, INTERVAL '30 seconds', INTERVAL '5 minutes') AS h");
        let found = rewrite(&mut s).unwrap();
        assert_eq!(found[0].size_micros, 300_000_000);
        assert_eq!(s.to_string().matches("UNION ALL").count(), 9, "{s}");

        let mut s =
            statement("SELECT * FROM HOP(r, ts, INTERVAL '2 seconds', INTERVAL '3 seconds')");
        rewrite(&mut s).unwrap();
        assert_eq!(s.to_string().matches("WHERE").count(), 1, "{s}");

        assert!(rewrite(&mut statement("SELECT * FROM TUMBLE(r, ts)")).is_err());
        assert!(
            rewrite(&mut statement(
                "SELECT * FROM SESSION(r, ts, INTERVAL '1 second')"
            ))
            .is_err()
        );
        let mut plain = statement("SELECT * FROM r");
        assert!(rewrite(&mut plain).unwrap().is_empty());
    }
}
