//! Window table functions and intervals.
//!
//! `TUMBLE(rel, time_col, size)` and `HOP(rel, time_col, slide, size)` in FROM are rewritten,
//! before DataFusion plans the statement, into derived tables over `rel` that add the columns
//! `window_start` and `window_end`: a tumbling window's start is [`tumble_start`] of the
//! event time (`date_bin` on the timestamps' integers); a hopping window is a UNION ALL of
//! one such projection per window a row belongs to. The
//! rewritten query is ordinary SQL, so an ad hoc SELECT, the batch oracle and a view's
//! incremental dataflow all read windows the same way.
//!
//! Windows are aligned to the Unix epoch, as in Flink and RisingWave.
//!
//! `SESSION(rel, time_col, gap)` groups the rows of each partition (the query's GROUP BY
//! columns other than the window bounds) into sessions of event times less than `gap` apart,
//! from the first event to the last event plus the gap. In a [`Windowing::Batch`] rewrite it
//! becomes window functions over `rel` (a running count of the gaps numbers the sessions);
//! in a [`Windowing::Dataflow`] rewrite, which plans a materialized view, it becomes a scan of
//! a placeholder table ([`session_placeholder`]) that the streaming planner replaces with a
//! session operator. The placeholder keeps DataFusion from moving filters on other columns
//! below the sessions, which would change them.

pub mod tumble_start;

use std::ops::ControlFlow;

use crate::dialect::EddyDialect;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, GroupByExpr, Ident, ObjectName, Query, Select, SelectItem,
    SetExpr, Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::names::{normalize_ident, normalize_object_name};
use crate::{SqlError, SqlResult};

/// Microseconds per day, for intervals given in days.
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Most windows one row may fall into with HOP (size / slide).
const MAX_HOP_WINDOWS: i64 = 1024;

/// The kind of window a table function makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Tumble,
    Hop,
    Session,
}

/// How a statement's windows are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windowing {
    /// Into SQL that computes them over the relation's rows as they are (queries, the oracle).
    Batch,
    /// For the streaming planner: SESSION windows become placeholder scans.
    Dataflow,
}

/// The name prefix of the placeholder tables that stand for SESSION windows in a dataflow
/// rewrite: `__eddy_session_<n>` stands for the n-th window the rewrite found.
const SESSION_PLACEHOLDER: &str = "__eddy_session_";

/// The placeholder table name of the n-th window of a statement.
pub fn session_placeholder(n: usize) -> String {
    format!("{SESSION_PLACEHOLDER}{n}")
}

/// Which window a placeholder table name stands for.
pub fn session_index(table: &str) -> Option<usize> {
    table.strip_prefix(SESSION_PLACEHOLDER)?.parse().ok()
}

/// A window table function found in a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowFunction {
    pub kind: WindowKind,
    /// The normalized name of the relation it windows.
    pub relation: String,
    /// The normalized name of its time column.
    pub time_column: String,
    /// The window size in microseconds (for SESSION, the gap).
    pub size_micros: i64,
    /// SESSION: the columns that partition sessions (empty: one partition).
    pub partition: Vec<String>,
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
pub fn rewrite(statement: &mut Statement, windowing: Windowing) -> SqlResult<Vec<WindowFunction>> {
    let mut rewriter = Rewriter {
        windowing,
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
    windowing: Windowing,
    found: Vec<WindowFunction>,
    error: Option<SqlError>,
}

impl Rewriter {
    /// Rewrites the SESSION windows in a select's FROM, which needs the select's GROUP BY.
    fn sessions(&mut self, select: &mut Select) -> SqlResult<()> {
        let mut partition: Option<Vec<String>> = None;
        let factors = select.from.iter_mut().flat_map(|t| {
            std::iter::once(&mut t.relation).chain(t.joins.iter_mut().map(|j| &mut j.relation))
        });
        let mut targets = Vec::new();
        for factor in factors {
            if let TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = factor
                && name.to_string().eq_ignore_ascii_case("session")
            {
                targets.push(factor);
            }
        }
        for factor in targets {
            let TableFactor::Table { alias, args, .. } = factor else {
                unreachable!("a SESSION table factor");
            };
            let args = args.as_ref().map(|a| a.args.clone()).unwrap_or_default();
            if partition.is_none() {
                partition = Some(session_partition(&select.projection, &select.group_by)?);
            }
            let keys = partition.clone().unwrap_or_default();
            let n = self.found.len();
            let (replacement, window) =
                session_factor(&args, keys, alias.clone(), n, self.windowing)?;
            *factor = replacement;
            self.found.push(window);
        }
        Ok(())
    }
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = self.sessions(select)
        {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

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
                    "SESSION windows are supported in the FROM clause of a SELECT only".into(),
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
        WindowKind::Session => unreachable!("SESSION windows are rewritten per select"),
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
    // Window bounds are offset by a fixed length: a duration, which Arrow adds to a timestamp
    // as an integer (an interval goes through calendar arithmetic, row by row).
    let iv = |m: i64| format!("arrow_cast({m}, 'Duration(Microsecond)')");
    let stride = |m: i64| format!("INTERVAL '{m} microseconds'");
    let rel_sql = relation.to_string();
    let ts = time.to_string();
    let (size, sql) = match kind {
        WindowKind::Tumble => {
            let size = micros[0];
            let start = format!("{}({ts}, {})", tumble_start::NAME, stride(size));
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
                        "{}({ts}, {}) - {}",
                        tumble_start::NAME,
                        stride(slide),
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
        WindowKind::Session => unreachable!("SESSION windows are rewritten per select"),
    };
    let query = Parser::new(&EddyDialect)
        .try_with_sql(&sql)?
        .parse_query()?;
    let window = WindowFunction {
        kind,
        relation: normalize_object_name(&relation)?,
        time_column: normalize_ident(&time),
        size_micros: size,
        partition: vec![],
    };
    Ok((*query, window))
}

/// The columns that partition a select's sessions: its GROUP BY columns (by name, position
/// or output alias) other than the window bounds.
fn session_partition(projection: &[SelectItem], group_by: &GroupByExpr) -> SqlResult<Vec<String>> {
    let GroupByExpr::Expressions(exprs, modifiers) = group_by else {
        return Err(SqlError::Unsupported(
            "GROUP BY ALL with a SESSION window".into(),
        ));
    };
    if !modifiers.is_empty() {
        return Err(SqlError::Unsupported(
            "ROLLUP, CUBE or GROUPING SETS with a SESSION window".into(),
        ));
    }
    let column = |e: &Expr| -> Option<String> {
        match e {
            Expr::Identifier(i) => Some(normalize_ident(i)),
            Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident),
            _ => None,
        }
    };
    let item_column = |item: &SelectItem| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => column(e),
        _ => None,
    };
    let mut keys: Vec<String> = Vec::new();
    for e in exprs {
        let key = match e {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| projection.get(i.checked_sub(1)?))
                    .and_then(item_column),
                _ => None,
            },
            Expr::Identifier(i) => {
                let name = normalize_ident(i);
                // An output alias of a column stands for that column.
                projection
                    .iter()
                    .find_map(|item| match item {
                        SelectItem::ExprWithAlias { expr, alias }
                            if normalize_ident(alias) == name =>
                        {
                            column(expr)
                        }
                        _ => None,
                    })
                    .or(Some(name))
            }
            e => column(e),
        };
        let Some(key) = key else {
            return Err(SqlError::Unsupported(format!(
                "grouping a SESSION window by {e}: sessions are partitioned by GROUP BY columns"
            )));
        };
        if key != "window_start" && key != "window_end" && !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The table factor that replaces `SESSION(args)`, named `alias` (or after its relation).
fn session_factor(
    args: &[FunctionArg],
    partition: Vec<String>,
    alias: Option<TableAlias>,
    n: usize,
    windowing: Windowing,
) -> SqlResult<(TableFactor, WindowFunction)> {
    if args.len() != 3 {
        return Err(SqlError::InvalidParameter(format!(
            "SESSION takes 3 arguments, not {}",
            args.len()
        )));
    }
    let relation = name_of(&argument(args, 0, "SESSION")?, "relation")?;
    let time = match argument(args, 1, "SESSION")? {
        Expr::Identifier(i) => i,
        other => {
            return Err(SqlError::InvalidParameter(format!(
                "{other} is not a column name"
            )));
        }
    };
    let gap = interval_micros(&argument(args, 2, "SESSION")?)?;
    if gap <= 0 {
        return Err(SqlError::InvalidParameter(
            "a SESSION gap must be positive".into(),
        ));
    }
    let window = WindowFunction {
        kind: WindowKind::Session,
        relation: normalize_object_name(&relation)?,
        time_column: normalize_ident(&time),
        size_micros: gap,
        partition,
    };
    let alias = alias.unwrap_or_else(|| TableAlias {
        explicit: true,
        name: Ident::new(window.relation.clone()),
        columns: vec![],
        at: None,
    });
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let source = match windowing {
        Windowing::Dataflow => quoted(&session_placeholder(n)),
        Windowing::Batch => format!("({})", session_sql(&relation, &window)),
    };
    let sql = format!("SELECT * FROM {source} {alias}");
    let query = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)?
        .parse_query()?;
    let SetExpr::Select(select) = *query.body else {
        unreachable!("a SELECT");
    };
    let factor = select
        .from
        .into_iter()
        .next()
        .map(|t| t.relation)
        .expect("one table in FROM");
    Ok((factor, window))
}

/// SESSION windows as window functions: a row opens a session when it is the first of its
/// partition or at least the gap after the row before it; a running count of openings numbers
/// the sessions, whose bounds are then their first and last event (plus the gap).
fn session_sql(relation: &ObjectName, window: &WindowFunction) -> String {
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let ts = quoted(&window.time_column);
    let keys: Vec<String> = window.partition.iter().map(|k| quoted(k)).collect();
    let partition_by = |extra: Option<&str>| {
        let all: Vec<String> = keys
            .iter()
            .cloned()
            .chain(extra.map(String::from))
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("PARTITION BY {}", all.join(", "))
        }
    };
    let gap = window.size_micros;
    let opens = format!(
        "CASE WHEN CAST({ts} AS BIGINT) - lag(CAST({ts} AS BIGINT)) OVER ({} ORDER BY {ts}) < {gap} \
         THEN 0 ELSE 1 END",
        partition_by(None)
    );
    let numbered = format!(
        "sum(\"__eddy_opens\") OVER ({} ORDER BY {ts}, \"__eddy_opens\" DESC \
         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        partition_by(None)
    );
    let per_session = partition_by(Some("\"__eddy_session\""));
    format!(
        "SELECT * EXCLUDE (\"__eddy_session\"), min({ts}) OVER ({per_session}) AS window_start, \
         max({ts}) OVER ({per_session}) + INTERVAL '{gap} microseconds' AS window_end \
         FROM (SELECT * EXCLUDE (\"__eddy_opens\"), {numbered} AS \"__eddy_session\" \
         FROM (SELECT *, {opens} AS \"__eddy_opens\" FROM {relation} WHERE {ts} IS NOT NULL) \
         AS \"__eddy_opened\") AS \"__eddy_numbered\""
    )
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
        let found = rewrite(&mut s, Windowing::Batch).unwrap();
        assert_eq!(
            found,
            vec![WindowFunction {
                kind: WindowKind::Tumble,
                relation: "readings".into(),
                time_column: "ts".into(),
                size_micros: 60_000_000,
                partition: vec![],
            }]
        );
        assert!(s.to_string().contains(tumble_start::NAME), "{s}");

        let mut s =
            statement("SELECT * FROM HOP(r, ts, INTERVAL '30 seconds', INTERVAL '5 minutes') AS h");
        let found = rewrite(&mut s, Windowing::Batch).unwrap();
        assert_eq!(found[0].size_micros, 300_000_000);
        assert_eq!(s.to_string().matches("UNION ALL").count(), 9, "{s}");

        let mut s =
            statement("SELECT * FROM HOP(r, ts, INTERVAL '2 seconds', INTERVAL '3 seconds')");
        rewrite(&mut s, Windowing::Batch).unwrap();
        assert_eq!(s.to_string().matches("WHERE").count(), 1, "{s}");

        assert!(
            rewrite(
                &mut statement("SELECT * FROM TUMBLE(r, ts)"),
                Windowing::Batch
            )
            .is_err()
        );
        let mut plain = statement("SELECT * FROM r");
        assert!(rewrite(&mut plain, Windowing::Batch).unwrap().is_empty());
    }

    #[test]
    fn sessions_are_partitioned_by_the_group_by_columns() {
        let sql = "SELECT user_id AS u, window_start, count(*) \
                   FROM SESSION(clicks, ts, INTERVAL '20 seconds') AS c \
                   GROUP BY u, 2, c.page, window_end";
        let mut s = statement(sql);
        let found = rewrite(&mut s, Windowing::Batch).unwrap();
        assert_eq!(
            found,
            vec![WindowFunction {
                kind: WindowKind::Session,
                relation: "clicks".into(),
                time_column: "ts".into(),
                size_micros: 20_000_000,
                partition: vec!["user_id".into(), "page".into()],
            }]
        );
        let text = s.to_string();
        assert!(
            text.contains("PARTITION BY \"user_id\", \"page\""),
            "{text}"
        );
        assert!(text.contains("AS c"), "{text}");

        let mut s = statement(sql);
        rewrite(&mut s, Windowing::Dataflow).unwrap();
        let text = s.to_string();
        assert!(text.contains("FROM \"__eddy_session_0\" AS c"), "{text}");
        assert_eq!(session_index("__eddy_session_0"), Some(0));

        for bad in [
            "SELECT count(*) FROM SESSION(r, ts, INTERVAL '1 second') GROUP BY lower(k)",
            "SELECT count(*) FROM SESSION(r, ts, INTERVAL '0 seconds')",
            "SELECT count(*) FROM SESSION(r, ts)",
        ] {
            assert!(
                rewrite(&mut statement(bad), Windowing::Batch).is_err(),
                "{bad}"
            );
        }
    }
}
