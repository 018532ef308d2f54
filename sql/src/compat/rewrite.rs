//! Rewrites of statements so that DataFusion plans what Postgres clients send.

use sqlparser::ast::Statement as SqlStatement;

fn parse_expr(text: &str) -> Option<sqlparser::ast::Expr> {
    let dialect = crate::dialect::EddyDialect;
    sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// Calls `f` with every SELECT of a query body, through UNION/INTERSECT/EXCEPT.
fn for_each_select(
    body: &mut sqlparser::ast::SetExpr,
    f: &mut dyn FnMut(&mut sqlparser::ast::Select),
) {
    use sqlparser::ast::SetExpr;
    match body {
        SetExpr::Select(select) => f(select),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, f);
            for_each_select(right, f);
        }
        _ => {}
    }
}

/// The function name of the library's rewrite of `'f'::regproc`:
/// `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'f')`.
fn regproc_name(query: &sqlparser::ast::Query) -> Option<String> {
    let text = query.to_string();
    let name = text
        .strip_prefix("SELECT oid FROM pg_catalog.pg_proc WHERE proname = '")?
        .strip_suffix('\'')?;
    (!name.contains('\'')).then(|| name.to_string())
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

/// What the catalog queries of tools need beyond the library's rules, so that DataFusion
/// plans them:
/// - `ARRAY(SELECT x ...)` becomes `(SELECT array_agg(v) FROM (SELECT x ...) AS a(v))`, or
///   NULL when correlated;
/// - a correlated scalar subquery in a select list becomes NULL, elsewhere `max()` of itself;
/// - `x IN (subquery)` in a select list or ORDER BY becomes `array_has(...)` over its rows;
/// - `LIKE ... ESCAPE 'c'` becomes `LIKE like_escape(..., 'c')`;
/// - `generate_subscripts(a, 1)` becomes the unnested positions of `a`;
/// - a scalar function in FROM (`string_to_array(...) s`) becomes a one-row derived table;
/// - the bare keyword `user` becomes `session_user()`;
/// - a name computed as text cast to `regclass`/`regtype` becomes `to_regclass(...)`;
/// - `'f'::regproc` is the name `'f'`, as the regproc columns of the catalogs hold names;
/// - pgjdbc's `information_schema._pg_expandarray(a)` becomes the unnested `(x, n)` records,
///   and `(record).field` becomes `record['field']`.
///
/// Returns whether it rewrote any; `None` if a rewritten part does not parse.
pub fn catalog_rewrites(statement: &mut SqlStatement) -> Option<bool> {
    use sqlparser::ast::{Expr, FunctionArguments, VisitMut, VisitorMut};
    use std::ops::ControlFlow;

    struct Arrays(usize);
    impl VisitorMut for Arrays {
        type Break = ();
        // `FROM string_to_array(...) s`: Postgres takes any function in FROM, a scalar one
        // as one row; DataFusion only table functions. The rest become `(SELECT f(...) AS s)`.
        fn pre_visit_table_factor(
            &mut self,
            factor: &mut sqlparser::ast::TableFactor,
        ) -> ControlFlow<()> {
            use sqlparser::ast::TableFactor;
            const TABLE_FUNCTIONS: [&str; 8] = [
                "generate_series",
                "range",
                "unnest",
                "pg_get_keywords",
                "generate_subscripts",
                "json_each",
                "jsonb_each",
                "regexp_split_to_table",
            ];
            let TableFactor::Table {
                name,
                args: Some(args),
                alias,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let Some(function) = name.0.last().and_then(|p| p.as_ident()) else {
                return ControlFlow::Continue(());
            };
            if TABLE_FUNCTIONS
                .iter()
                .any(|f| function.value.eq_ignore_ascii_case(f))
            {
                return ControlFlow::Continue(());
            }
            let alias_name = alias
                .as_ref()
                .map_or_else(|| function.value.clone(), |a| a.name.value.clone());
            let column = alias
                .as_ref()
                .and_then(|a| a.columns.first())
                .map_or_else(|| alias_name.clone(), |c| c.name.value.clone());
            let text = format!(
                "(SELECT {name}({args}) AS \"{column}\") AS \"{alias_name}\"",
                args = args
                    .args
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let dialect = crate::dialect::EddyDialect;
            let parsed = sqlparser::parser::Parser::new(&dialect)
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_table_factor());
            match parsed {
                Ok(derived) => {
                    *factor = derived;
                    self.0 += 1;
                    ControlFlow::Continue(())
                }
                Err(_) => ControlFlow::Break(()),
            }
        }
        // A correlated scalar subquery in a select list is, in the catalogs' queries, a
        // lookup of something Eddy's objects do not have (a default, a comment, an identity,
        // a collation): NULL, as the catalogs would answer. DataFusion cannot plan most of
        // them (inside CASE, with functions over outer columns).
        fn pre_visit_query(&mut self, query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
            struct Nulls(usize);
            impl VisitorMut for Nulls {
                type Break = ();
                fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                    match expr {
                        Expr::Subquery(q) if is_correlated(q) => {
                            *expr = Expr::value(sqlparser::ast::Value::Null);
                            self.0 += 1;
                        }
                        // What `unnest` got is an array: a typed NULL, which unnests to no
                        // rows (an untyped one cannot be planned).
                        Expr::Function(f)
                            if f.name.to_string().eq_ignore_ascii_case("unnest")
                                && matches!(&f.args, sqlparser::ast::FunctionArguments::List(l)
                                    if l.args.len() == 1 && l.args[0].to_string() == "NULL") =>
                        {
                            match parse_expr("unnest(CAST(NULL AS TEXT[]))") {
                                Some(e) => *expr = e,
                                None => return ControlFlow::Break(()),
                            }
                        }
                        // DataFusion plans `x IN (subquery)` only as a filter: elsewhere
                        // it is a lookup in the subquery's rows, gathered once.
                        Expr::InSubquery {
                            expr: needle,
                            subquery,
                            negated,
                        } if !is_correlated(subquery) => {
                            let text = format!(
                                "{}array_has((SELECT array_agg(eddy_in.v) FROM ({subquery}) \
                                 AS eddy_in(v)), {needle})",
                                if *negated { "NOT " } else { "" }
                            );
                            match parse_expr(&text) {
                                Some(e) => {
                                    *expr = e;
                                    self.0 += 1;
                                }
                                None => return ControlFlow::Break(()),
                            }
                        }
                        _ => {}
                    }
                    ControlFlow::Continue(())
                }
            }
            let mut nulls = Nulls(0);
            for_each_select(query.body.as_mut(), &mut |select| {
                let mut seen = std::collections::HashSet::new();
                for (position, item) in select.projection.iter_mut().enumerate() {
                    let _ = item.visit(&mut nulls);
                    // Unnamed items with the same text (`SELECT a, NULL, NULL`) get names of
                    // their own: DataFusion wants distinct names, Postgres does not care.
                    if let sqlparser::ast::SelectItem::UnnamedExpr(e) = item
                        && !seen.insert(e.to_string())
                    {
                        *item = sqlparser::ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: sqlparser::ast::Ident::new(format!("column{}", position + 1)),
                        };
                    }
                }
            });
            if let Some(order_by) = query.order_by.as_mut() {
                let _ = order_by.visit(&mut nulls);
            }
            self.0 += nulls.0;
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
                // `CAST(format(...) AS regclass)`: a name computed as text, looked up.
                Expr::Cast {
                    expr: inner,
                    data_type,
                    ..
                } if matches!(inner.as_ref(), Expr::Function(_) | Expr::BinaryOp { .. })
                    && ["regclass", "regtype"]
                        .iter()
                        .any(|r| data_type.to_string().eq_ignore_ascii_case(r)) =>
                {
                    format!("to_{}({inner})", data_type.to_string().to_lowercase())
                }
                // The SQL-standard `user`: the session's user.
                Expr::Function(f)
                    if matches!(f.args, FunctionArguments::None)
                        && f.name.to_string().eq_ignore_ascii_case("user") =>
                {
                    // Quoted: unquoted, `session_user` is a keyword without parentheses.
                    "\"session_user\"()".to_string()
                }
                // `'f'::regproc`, which the library turns into an oid lookup in pg_proc; its
                // copy of pg_type holds function names in regproc columns (as Postgres
                // prints them), so the name is what compares.
                Expr::Subquery(q) if regproc_name(q).is_some() => {
                    format!("'{}'", regproc_name(q).unwrap_or_default())
                }
                // `(record).field`, which DataFusion reads as `record['field']`.
                Expr::CompoundFieldAccess { root, access_chain }
                    if access_chain.iter().all(|a| {
                        matches!(a, sqlparser::ast::AccessExpr::Dot(Expr::Identifier(_)))
                    }) =>
                {
                    let mut text = format!("({root})");
                    for a in access_chain.iter() {
                        if let sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field)) = a {
                            text.push_str(&format!("['{}']", field.value.to_lowercase()));
                        }
                    }
                    text
                }
                // pgjdbc's `information_schema._pg_expandarray(a)`: the elements of `a` with
                // their positions, one row each, as records `(x, n)`.
                Expr::Function(f)
                    if f.name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .is_some_and(|i| i.value.eq_ignore_ascii_case("_pg_expandarray")) =>
                {
                    let FunctionArguments::List(list) = &f.args else {
                        return ControlFlow::Continue(());
                    };
                    let Some(array) = list.args.first() else {
                        return ControlFlow::Continue(());
                    };
                    format!("unnest(eddy_expand_array({array}))")
                }
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

/// The catalogs' vector columns: Postgres' `int2vector` and `oidvector`, whose subscripts
/// start at 0; Eddy's catalogs hold them as arrays, whose subscripts start at 1.
const VECTOR_COLUMNS: &[&str] = &[
    "indkey",
    "indclass",
    "indcollation",
    "indoption",
    "proargtypes",
];

/// Rewrites ahead of the library's rules:
/// - `relkind = ANY($1)`: the parameter is an array, as Postgres reads it by the context.
///   Typed so (`CAST($1 AS TEXT[])`: tools compare names and kinds this way), the lookup
///   plans before the value is bound, whatever the library's rules make of the comparison.
/// - `oid::regtype::text` is the type's name (`bigint`), not its number.
/// - `i.indkey[n]` (a [`VECTOR_COLUMNS`] subscript, from 0) becomes `i.indkey[n + 1]`.
/// - `generate_series(...)` in a select list yields rows in Postgres and an array in
///   DataFusion: it becomes `unnest(generate_series(...))` (psqlODBC's foreign key listing).
pub fn ahead_of_library(statement: &mut SqlStatement) {
    use sqlparser::ast::{AccessExpr, Expr, SelectItem, Subscript, VisitMut, VisitorMut};
    use std::ops::ControlFlow;

    struct Arrays;
    impl VisitorMut for Arrays {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
            for_each_select(query.body.as_mut(), &mut |select| {
                for item in &mut select.projection {
                    if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } =
                        item
                        && let Expr::Function(f) = e
                        && f.name.to_string().eq_ignore_ascii_case("generate_series")
                        && let Some(rows) = parse_expr(&format!("unnest({e})"))
                    {
                        *e = rows;
                    }
                }
            });
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            // `indkey[n]` or `i.indkey[n]`, which parses as `i` with `.indkey` and `[n]`.
            if let Expr::CompoundFieldAccess { root, access_chain } = expr
                && let Some((AccessExpr::Subscript(Subscript::Index { index }), path)) =
                    access_chain.split_last_mut()
                && let Some(column) = match (path.last(), root.as_ref()) {
                    (Some(AccessExpr::Dot(Expr::Identifier(i))), _) => Some(i),
                    (None, Expr::Identifier(i)) => Some(i),
                    (None, Expr::CompoundIdentifier(parts)) => parts.last(),
                    _ => None,
                }
                && VECTOR_COLUMNS.contains(&column.value.to_ascii_lowercase().as_str())
                && let Some(from_one) = parse_expr(&format!("({index}) + 1"))
            {
                *index = from_one;
            }
            if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = expr
                && matches!(right.as_ref(), Expr::Value(v)
                    if matches!(v.value, sqlparser::ast::Value::Placeholder(_)))
                && let Some(cast) = parse_expr(&format!("CAST({right} AS TEXT[])"))
            {
                **right = cast;
            }
            // `atttypid::regtype::text` is the type's name, as format_type writes it.
            if let Expr::Cast {
                expr: inner,
                data_type: outer,
                ..
            } = expr
                && outer.to_string().eq_ignore_ascii_case("text")
                && let Expr::Cast {
                    expr: oid,
                    data_type: regtype,
                    ..
                } = inner.as_ref()
                && regtype.to_string().eq_ignore_ascii_case("regtype")
                && let Some(name) = parse_expr(&format!("format_type({oid}, NULL)"))
            {
                *expr = name;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Arrays);
}

/// Postgres names the column of a function that returns single values (`unnest`,
/// `generate_series`) in FROM after the function, or after the alias when there is one;
/// DataFusion would call it `value` or `UNNEST(a)`. Adds that name as a column alias.
pub fn name_function_columns(statement: &mut SqlStatement) {
    use sqlparser::ast::{
        Ident, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
    };
    use std::ops::ControlFlow;

    const FUNCTIONS: [&str; 2] = ["unnest", "generate_series"];
    struct Names;
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let (function, alias) = match factor {
                TableFactor::UNNEST {
                    alias, array_exprs, ..
                } if array_exprs.len() == 1 => ("unnest".to_string(), alias),
                TableFactor::Table {
                    name,
                    args: Some(_),
                    alias,
                    ..
                } => match name.0.last().and_then(|p| p.as_ident()) {
                    Some(i) if FUNCTIONS.iter().any(|f| i.value.eq_ignore_ascii_case(f)) => {
                        (i.value.to_lowercase(), alias)
                    }
                    _ => return ControlFlow::Continue(()),
                },
                _ => return ControlFlow::Continue(()),
            };
            match alias {
                Some(a) if a.columns.is_empty() => {
                    let column = a.name.value.clone();
                    a.columns.push(TableAliasColumnDef::from_name(column));
                }
                Some(_) => {}
                None => {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(function.clone()),
                        columns: vec![TableAliasColumnDef::from_name(function)],
                        at: None,
                    });
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Names);
}
