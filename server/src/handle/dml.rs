//! INSERT (with ON CONFLICT), UPDATE and DELETE.
//!
//! The rows of an INSERT are computed by DataFusion (it maps the column list, fills missing
//! columns with NULL and casts to the target types); UPDATE and DELETE become physical
//! expressions over the target's rows, evaluated by the epoch driver against the rows as they
//! are when the write is applied.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ParamValues, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::ExprWithAlias;
use eddy_catalog::{Relation, RelationKind, SqlType};
use eddy_sql::context::Rows;
use eddy_sql::names::{normalize_ident, normalize_object_name};
use eddy_sql::values::{Literal, LiteralInsert};
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::{
    Assignment, AssignmentTarget, Expr as SqlExpr, FromTable, Insert, ObjectName, OnConflictAction,
    OnInsert, SetExpr, Statement as SqlStatement, TableFactor, TableObject, TableWithJoins,
};

use crate::engine::{OnConflict, WriteOp};

use super::{Outcome, Shared, resolve, text};

pub async fn execute(
    shared: &Shared,
    stmt: &SqlStatement,
    params: &[ScalarValue],
) -> SqlResult<Outcome> {
    match stmt {
        SqlStatement::Insert(_) => insert(shared, stmt, params).await,
        SqlStatement::Update(u) => {
            let (rel, alias) = target_of(shared, &u.table)?;
            writable_table(&rel, "update")?;
            if u.from.is_some() || u.returning.is_some() {
                return Err(SqlError::Unsupported("UPDATE ... FROM / RETURNING".into()));
            }
            let schema = DFSchema::try_from_qualified_schema(alias.as_str(), &rel.schema())?;
            let predicate = u
                .selection
                .as_ref()
                .map(|e| physical(shared, e, &schema, params))
                .transpose()?;
            let assignments = assignments(shared, &rel, &u.assignments, &schema, params)?;
            let n = shared
                .engine
                .write(WriteOp::Update {
                    relation: rel.id,
                    predicate,
                    assignments,
                })
                .await?
                .rows;
            Ok(Outcome::Done {
                tag: "UPDATE".into(),
                rows: Some(n),
            })
        }
        SqlStatement::Delete(d) => {
            let tables = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let [table] = tables.as_slice() else {
                return Err(SqlError::Unsupported("DELETE from several tables".into()));
            };
            if d.using.is_some() || d.returning.is_some() || d.limit.is_some() {
                return Err(SqlError::Unsupported(
                    "DELETE ... USING / RETURNING / LIMIT".into(),
                ));
            }
            let (rel, alias) = target_of(shared, table)?;
            writable_table(&rel, "delete from")?;
            let schema = DFSchema::try_from_qualified_schema(alias.as_str(), &rel.schema())?;
            let predicate = d
                .selection
                .as_ref()
                .map(|e| physical(shared, e, &schema, params))
                .transpose()?;
            let n = shared
                .engine
                .write(WriteOp::Delete {
                    relation: rel.id,
                    predicate,
                })
                .await?
                .rows;
            Ok(Outcome::Done {
                tag: "DELETE".into(),
                rows: Some(n),
            })
        }
        _ => Err(SqlError::Internal("not a DML statement".into())),
    }
}

fn target_of(shared: &Shared, t: &TableWithJoins) -> SqlResult<(Arc<Relation>, String)> {
    if !t.joins.is_empty() {
        return Err(SqlError::Unsupported(
            "joins in an UPDATE or DELETE target".into(),
        ));
    }
    let TableFactor::Table { name, alias, .. } = &t.relation else {
        return Err(SqlError::Unsupported(format!(
            "{} as a write target",
            t.relation
        )));
    };
    let rel = resolve(shared, &normalize_object_name(name)?)?;
    let alias = alias
        .as_ref()
        .map(|a| normalize_ident(&a.name))
        .unwrap_or_else(|| rel.name.clone());
    Ok((rel, alias))
}

fn writable_table(rel: &Relation, verb: &str) -> SqlResult<()> {
    match rel.kind {
        RelationKind::Table => Ok(()),
        RelationKind::Stream => Err(SqlError::WrongObjectType(format!(
            "cannot {verb} stream \"{}\": streams are append-only",
            rel.name
        ))),
        kind => Err(SqlError::WrongObjectType(format!(
            "cannot {verb} {kind} \"{}\"",
            rel.name
        ))),
    }
}

/// Replaces `$n` placeholders with the bound parameter values.
fn bind(expr: Expr, params: &[ScalarValue]) -> SqlResult<Expr> {
    Ok(expr
        .transform(|e| match &e {
            Expr::Placeholder(p) => {
                let idx: usize = p.id.trim_start_matches('$').parse().unwrap_or(0);
                match idx.checked_sub(1).and_then(|i| params.get(i)) {
                    Some(v) => Ok(Transformed::yes(lit(v.clone()))),
                    None => Err(datafusion::error::DataFusionError::Plan(format!(
                        "no value for parameter {}",
                        p.id
                    ))),
                }
            }
            _ => Ok(Transformed::no(e)),
        })?
        .data)
}

fn physical(
    shared: &Shared,
    e: &SqlExpr,
    schema: &DFSchema,
    params: &[ScalarValue],
) -> SqlResult<Arc<dyn PhysicalExpr>> {
    let state = shared.query.state();
    let logical = state.create_logical_expr_from_sql_expr(
        ExprWithAlias {
            expr: e.clone(),
            alias: None,
        },
        schema,
    )?;
    Ok(state.create_physical_expr(bind(logical, params)?, schema)?)
}

fn assignments(
    shared: &Shared,
    rel: &Relation,
    items: &[Assignment],
    schema: &DFSchema,
    params: &[ScalarValue],
) -> SqlResult<Vec<(usize, Arc<dyn PhysicalExpr>)>> {
    items
        .iter()
        .map(|a| {
            let AssignmentTarget::ColumnName(name) = &a.target else {
                return Err(SqlError::Unsupported("assigning a tuple of columns".into()));
            };
            let col = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(normalize_ident)
                .unwrap_or_default();
            let idx = rel.column_index(&col).ok_or_else(|| {
                SqlError::UnknownColumn(format!(
                    "column \"{col}\" of relation \"{}\" does not exist",
                    rel.name
                ))
            })?;
            let value = physical(shared, &a.value, schema, params)?;
            super::check_assignment(
                &value.data_type(schema.as_arrow())?,
                rel.schema().field(idx),
            )?;
            Ok((idx, value))
        })
        .collect()
}

async fn insert(
    shared: &Shared,
    stmt: &SqlStatement,
    params: &[ScalarValue],
) -> SqlResult<Outcome> {
    let SqlStatement::Insert(ins) = stmt else {
        unreachable!()
    };
    let TableObject::TableName(name) = &ins.table else {
        return Err(SqlError::Unsupported("INSERT into a table function".into()));
    };
    let rel = resolve(shared, &normalize_object_name(name)?)?;
    insertable(&rel)?;
    if ins.returning.is_some() {
        return Err(SqlError::Unsupported("INSERT ... RETURNING".into()));
    }
    let on_conflict = match &ins.on {
        None => OnConflict::Error,
        Some(OnInsert::OnConflict(oc)) => {
            if rel.kind != RelationKind::Table || rel.primary_key.is_empty() {
                return Err(SqlError::InvalidParameter(
                    "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                ));
            }
            match &oc.action {
                OnConflictAction::DoNothing => OnConflict::DoNothing,
                OnConflictAction::DoUpdate(du) => {
                    let alias = ins
                        .table_alias
                        .as_ref()
                        .map(|a| normalize_ident(&a.alias))
                        .unwrap_or_else(|| rel.name.clone());
                    let schema =
                        DFSchema::try_from_qualified_schema(alias.as_str(), &rel.schema())?.join(
                            &DFSchema::try_from_qualified_schema("excluded", &rel.schema())?,
                        )?;
                    let predicate = du
                        .selection
                        .as_ref()
                        .map(|e| physical(shared, e, &schema, params))
                        .transpose()?;
                    OnConflict::DoUpdate {
                        assignments: assignments(shared, &rel, &du.assignments, &schema, params)?,
                        predicate,
                    }
                }
            }
        }
        Some(other) => return Err(SqlError::Unsupported(format!("{other}"))),
    };
    let ins = &with_implied_columns(ins, &rel);
    let rows = match literal_rows(ins, &rel)? {
        Some(batch) => vec![batch],
        None => planned_rows(shared, ins, &rel, params).await?,
    };
    write_rows(shared, &rel, rows, on_conflict).await
}

/// An INSERT of literal rows read by the parser's fast path. A target it does not fit (a
/// literal that is not of its column's kind, an unknown column, too many values) sends the
/// statement through sqlparser and the planner, which also report what is wrong.
pub async fn insert_literals(shared: &Shared, ins: &LiteralInsert) -> SqlResult<Outcome> {
    let rel = resolve(shared, &ins.table)?;
    insertable(&rel)?;
    let targets = if ins.columns.is_empty() {
        (ins.width <= rel.columns.len()).then(|| (0..ins.width).collect::<Vec<_>>())
    } else {
        column_positions(ins.columns.iter().map(String::as_str), &rel)
            .filter(|t| t.len() == ins.width)
    };
    let batch = match targets {
        Some(targets) => literal_batch(
            &rel,
            &targets,
            || ins.rows().map(|r| r.map(Some)),
            ins.row_count(),
        )?,
        None => None,
    };
    match batch {
        Some(batch) => write_rows(shared, &rel, vec![batch], OnConflict::Error).await,
        None => {
            let stmts = eddy_sql::parser::parse_general(&ins.sql)?;
            match stmts.as_slice() {
                [eddy_sql::parser::Statement::Sql(stmt)] => execute(shared, stmt, &[]).await,
                _ => Err(SqlError::Internal(
                    "an INSERT read twice differently".into(),
                )),
            }
        }
    }
}

fn insertable(rel: &Relation) -> SqlResult<()> {
    if !matches!(rel.kind, RelationKind::Stream | RelationKind::Table) {
        return Err(SqlError::WrongObjectType(format!(
            "cannot insert into {} \"{}\"",
            rel.kind, rel.name
        )));
    }
    Ok(())
}

async fn write_rows(
    shared: &Shared,
    rel: &Relation,
    rows: Vec<RecordBatch>,
    on_conflict: OnConflict,
) -> SqlResult<Outcome> {
    let written = shared
        .engine
        .write(WriteOp::new_rows(rel, rows, on_conflict))
        .await?;
    let done = Outcome::Done {
        tag: "INSERT 0".into(),
        rows: Some(written.rows),
    };
    Ok(match written.late_notice(&rel.name) {
        Some(notice) => Outcome::Notice(notice, Box::new(done)),
        None => done,
    })
}

/// The rows of an INSERT of plain literals (`VALUES (1, 'a', NULL), ...`), read without
/// planning a query. None when anything needs the planner (see [`literal_batch`]).
fn literal_rows(ins: &Insert, rel: &Relation) -> SqlResult<Option<RecordBatch>> {
    let Some(query) = &ins.source else {
        return Ok(None);
    };
    let SetExpr::Values(values) = query.body.as_ref() else {
        return Ok(None);
    };
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return Ok(None);
    }
    let Some(targets) = target_columns(ins, rel) else {
        return Ok(None);
    };
    let rows = || {
        values
            .rows
            .iter()
            .map(|row| row.iter().map(eddy_sql::values::literal_of))
    };
    if values.rows.iter().any(|row| row.len() != targets.len()) {
        return Ok(None);
    }
    literal_batch(rel, &targets, rows, values.rows.len())
}

/// The `n` rows of literals (None: not a literal) going to the columns at `targets`, read as
/// their columns' types the way COPY reads text. None when anything needs the planner: an
/// expression, a parameter, DEFAULT, a number for a non-numeric column, a fraction for an
/// integer column; the planner then also reports whatever is wrong with the statement.
/// `rows` gives the rows again for a second reading: straight into typed columns first,
/// through text and Arrow's cast when a value is not in its type's plain form.
fn literal_batch<'a, R, L>(
    rel: &Relation,
    targets: &[usize],
    rows: impl Fn() -> R,
    n: usize,
) -> SqlResult<Option<RecordBatch>>
where
    R: Iterator<Item = L>,
    L: Iterator<Item = Option<Literal<'a>>>,
{
    let schema = rel.schema();
    let columns = match typed_columns(&schema, targets, rows(), n) {
        Some(columns) => columns,
        None => match text_columns(rel, targets, rows(), n) {
            Some(columns) => columns,
            None => return Ok(None),
        },
    };
    let columns = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, column)| {
            let column = column.unwrap_or_else(|| arrow::array::new_null_array(&DataType::Utf8, n));
            super::cast_to_column(&column, field)
        })
        .collect::<SqlResult<Vec<_>>>()?;
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}

/// The target columns built straight from the literals (None for a column not targeted),
/// or None when a column's type or a value is not one [`text::Column`] builds.
fn typed_columns<'a>(
    schema: &arrow::datatypes::Schema,
    targets: &[usize],
    rows: impl Iterator<Item = impl Iterator<Item = Option<Literal<'a>>>>,
    n: usize,
) -> Option<Vec<Option<ArrayRef>>> {
    let mut columns = targets
        .iter()
        .map(|&c| text::Column::new(schema.field(c).data_type(), n))
        .collect::<Option<Vec<_>>>()?;
    for row in rows {
        for (literal, column) in row.zip(&mut columns) {
            let added = match literal? {
                Literal::Null => {
                    column.push_null();
                    true
                }
                Literal::Number(number) => column.push(&number, true),
                Literal::Text(text) => column.push(&text, false),
                Literal::Bool(_) => false,
            };
            if !added {
                return None;
            }
        }
    }
    let mut out: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];
    for (&c, column) in targets.iter().zip(columns) {
        out[c] = Some(column.finish());
    }
    Some(out)
}

/// The target columns as text (None for a column not targeted), or None when a literal is
/// not one of its column's kind (see [`literal_text`]).
fn text_columns<'a>(
    rel: &Relation,
    targets: &[usize],
    rows: impl Iterator<Item = impl Iterator<Item = Option<Literal<'a>>>>,
    n: usize,
) -> Option<Vec<Option<ArrayRef>>> {
    let mut texts: Vec<Vec<Option<Cow<'a, str>>>> = vec![Vec::new(); rel.columns.len()];
    for &c in targets {
        texts[c].reserve_exact(n);
    }
    for row in rows {
        for (literal, &c) in row.zip(targets) {
            texts[c].push(literal_text(literal?, &rel.columns[c].sql_type)?);
        }
    }
    Some(
        texts
            .into_iter()
            .map(|text| {
                (!text.is_empty())
                    .then(|| Arc::new(arrow::array::StringArray::from_iter(text)) as ArrayRef)
            })
            .collect(),
    )
}

/// The text of a literal for a column of type `ty`: `Some(None)` for NULL, None when the
/// literal is not one [`literal_batch`] reads as that type.
fn literal_text<'a>(literal: Literal<'a>, ty: &SqlType) -> Option<Option<Cow<'a, str>>> {
    let numeric = matches!(
        ty,
        SqlType::SmallInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::Real
            | SqlType::Double
            | SqlType::Numeric { .. }
    );
    let integer = matches!(ty, SqlType::SmallInt | SqlType::Int | SqlType::BigInt);
    match literal {
        Literal::Null => Some(None),
        Literal::Text(s) => Some(Some(s)),
        Literal::Bool(b) => {
            let text = if b { "true" } else { "false" };
            (*ty == SqlType::Bool).then_some(Some(Cow::Borrowed(text)))
        }
        Literal::Number(n) => {
            let digits = n.strip_prefix('-').unwrap_or(&n);
            let whole = digits.bytes().all(|b| b.is_ascii_digit());
            // Arrow reads no exponent into a decimal; the planner's float literal does.
            let exponent = matches!(ty, SqlType::Numeric { .. }) && digits.contains(['e', 'E']);
            (numeric && (whole || !integer) && !exponent).then_some(Some(n))
        }
    }
}

/// The rows of any other INSERT, computed by DataFusion.
async fn planned_rows(
    shared: &Shared,
    ins: &Insert,
    rel: &Relation,
    params: &[ScalarValue],
) -> SqlResult<Vec<RecordBatch>> {
    let mut plain = ins.clone();
    plain.on = None;
    bytea_values(&mut plain, rel)?;
    let plain = SqlStatement::Insert(plain);
    let snapshot = shared.catalog.snapshot();
    let ctx = shared
        .query
        .session_for(
            &plain,
            &snapshot,
            &shared.store,
            Rows::Load,
            shared.query.internal(),
        )
        .await?;
    let plan = shared.query.plan(&ctx, &plain).await?;
    let LogicalPlan::Dml(dml) = plan else {
        return Err(SqlError::Internal("INSERT did not plan as DML".into()));
    };
    let mut input = dml.input.as_ref().clone();
    check_values(&input, rel)?;
    if !params.is_empty() {
        input = input.with_param_values(ParamValues::List(
            params.iter().cloned().map(Into::into).collect(),
        ))?;
    }
    let df = ctx.execute_logical_plan(input).await?;
    let task = Arc::new(df.task_ctx());
    let physical = df.create_physical_plan().await?;
    // The write below waits for a commit, which the pinned epoch would hold back.
    eddy_sql::context::release(&ctx);
    let batches = datafusion::physical_plan::collect(physical, task).await?;
    let schema = rel.schema();
    batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| super::cast_to_column(c, f))
                .collect::<SqlResult<Vec<_>>>()?;
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect()
}

/// Checks the values an INSERT computes against their columns by Postgres' assignment rule:
/// the planner casts each to its column's type (in the VALUES rows, or over the query), as an
/// explicit cast would.
fn check_values(input: &LogicalPlan, rel: &Relation) -> SqlResult<()> {
    let LogicalPlan::Projection(projection) = input else {
        return Ok(());
    };
    let schema = rel.schema();
    // The planner's cast of a value to its column, if it needed one.
    let check = |value: &Expr, over: &DFSchema, field| match value {
        Expr::Cast(cast) => match cast.expr.get_type(over) {
            Ok(from) => super::check_assignment(&from, field),
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    };
    for e in &projection.expr {
        let Expr::Alias(alias) = e else { continue };
        let Some((_, field)) = schema.fields().find(&alias.name) else {
            continue;
        };
        match (alias.expr.as_ref(), projection.input.as_ref()) {
            (Expr::Column(c), LogicalPlan::Values(values)) => {
                let Ok(at) = values.schema.index_of_column(c) else {
                    continue;
                };
                let none = DFSchema::empty();
                for row in &values.values {
                    if let Some(value) = row.get(at) {
                        check(value, &none, field)?;
                    }
                }
            }
            (value, over) => check(value, over.schema(), field)?,
        }
    }
    Ok(())
}

/// The INSERT with its target columns named when it names none and its VALUES rows are
/// shorter than the relation: as in Postgres, they go to the leading columns and the rest are
/// NULL (which keeps an INSERT written before `ADD COLUMN` working after it).
fn with_implied_columns<'a>(ins: &'a Insert, rel: &Relation) -> Cow<'a, Insert> {
    let width = match ins.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(values)) => values.rows.first().map_or(0, |row| row.len()),
        _ => 0,
    };
    if !ins.columns.is_empty() || width == 0 || width >= rel.columns.len() {
        return Cow::Borrowed(ins);
    }
    let mut ins = ins.clone();
    ins.columns = rel.columns[..width]
        .iter()
        .map(|c| ObjectName::from(vec![eddy_sql::alter::quote_ident(&c.name)]))
        .collect();
    Cow::Owned(ins)
}

/// The positions of the columns an INSERT's values go to, in the order given; None when a
/// named column is unknown or named twice (the planner reports those).
fn target_columns(ins: &Insert, rel: &Relation) -> Option<Vec<usize>> {
    if ins.columns.is_empty() {
        return Some((0..rel.columns.len()).collect());
    }
    let names = ins
        .columns
        .iter()
        .map(|c| normalize_object_name(c).ok())
        .collect::<Option<Vec<_>>>()?;
    column_positions(names.iter().map(String::as_str), rel)
}

/// The positions of the named columns; None when one is unknown or named twice.
fn column_positions<'a>(
    names: impl Iterator<Item = &'a str>,
    rel: &Relation,
) -> Option<Vec<usize>> {
    let mut targets = Vec::new();
    for name in names {
        let i = rel.columns.iter().position(|col| col.name == name)?;
        if targets.contains(&i) {
            return None;
        }
        targets.push(i);
    }
    Some(targets)
}

/// Reads the string literals of a VALUES list that go to bytea columns as Postgres does
/// (`'\x00ff'` is two bytes), not as the text's own bytes.
fn bytea_values(ins: &mut Insert, rel: &Relation) -> SqlResult<()> {
    // An unknown or repeated column is left for the planner to report.
    let Some(targets) = target_columns(ins, rel) else {
        return Ok(());
    };
    let Some(SetExpr::Values(values)) = ins.source.as_mut().map(|q| q.body.as_mut()) else {
        return Ok(());
    };
    for row in &mut values.rows {
        for (expr, &col) in row.iter_mut().zip(&targets) {
            if rel.columns[col].sql_type == SqlType::Bytea {
                eddy_sql::literals::bytea_literal(expr)?;
            }
        }
    }
    Ok(())
}

/// Parameter types of an INSERT, inferred from its target columns.
pub async fn describe_params(
    shared: &Shared,
    stmt: &SqlStatement,
) -> SqlResult<Vec<Option<DataType>>> {
    let SqlStatement::Insert(ins) = stmt else {
        return Ok(vec![]);
    };
    let mut plain = ins.clone();
    if let TableObject::TableName(name) = &ins.table
        && let Ok(rel) = resolve(shared, &normalize_object_name(name)?)
    {
        plain = with_implied_columns(&plain, &rel).into_owned();
    }
    plain.on = None;
    let plain = SqlStatement::Insert(plain);
    let snapshot = shared.catalog.snapshot();
    let ctx = shared
        .query
        .session_for(
            &plain,
            &snapshot,
            &shared.store,
            Rows::SchemaOnly,
            shared.query.internal(),
        )
        .await?;
    let plan = shared.query.plan(&ctx, &plain).await?;
    Ok(super::query::positional(plan.get_parameter_types()?))
}
