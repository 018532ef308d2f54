//! CREATE STREAM / TABLE / MATERIALIZED VIEW / VIEW and DROP.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use eddy_catalog::{Column, RelId, Relation, RelationKind, Snapshot, SqlType};
use eddy_dataflow::codec::is_storable;
use eddy_dataflow::{Dataflow, Input};
use eddy_sql::compat::session::ClientSession;
use eddy_sql::context::{QueryEngine, Rows};
use eddy_sql::names::normalize_object_name;
use eddy_sql::parser::Statement;
use eddy_sql::streaming::ViewOptions;
use eddy_sql::{SqlError, SqlResult, ddl, sources, streaming};
use eddy_storage::Store;
use sqlparser::ast::{CreateTableOptions, Query, Statement as SqlStatement};

use super::naming::postgres_names;
use super::{Outcome, Shared};
use crate::engine::Alter;

pub async fn execute(
    shared: &Shared,
    session: &ClientSession,
    stmt: &Statement,
) -> SqlResult<Outcome> {
    match stmt {
        Statement::CreateStream {
            name,
            columns,
            watermark,
            if_not_exists,
            options,
        } => {
            // A connector may define the columns itself.
            let mut columns = match columns.is_empty() && !options.is_empty() {
                true => vec![],
                false => ddl::columns(columns, &[])?.0,
            };
            let connector = sources::stream_connector(name, &mut columns, options)?;
            if columns.is_empty() {
                return Err(SqlError::Syntax(format!(
                    "stream \"{name}\" needs a column list"
                )));
            }
            let mut defs: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.sql_type))
                .collect();
            let watermark = match watermark {
                Some(w) => {
                    defs.push(format!("WATERMARK FOR {} AS {}", w.column, w.expr));
                    Some(ddl::watermark(&columns, &w.column, &w.expr)?)
                }
                None => None,
            };
            let mut create_sql = format!("CREATE STREAM {name} ({})", defs.join(", "));
            if let Some(c) = &connector {
                let options: Vec<String> = c
                    .options
                    .iter()
                    .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
                    .collect();
                create_sql.push_str(&format!(" WITH ({})", options.join(", ")));
            }
            let mut rel = new_relation(
                name,
                RelationKind::Stream,
                columns,
                vec![],
                None,
                vec![],
                create_sql,
            );
            rel.watermark = watermark;
            rel.connector = connector;
            if let Some(source) = sources::Source::of(&rel)? {
                // An external source must be reachable and able to fill the columns now.
                source.check(rel.schema()).await?;
            }
            created(shared, rel, None, *if_not_exists, "CREATE STREAM").await
        }
        Statement::CreateMaterializedView {
            name,
            query,
            if_not_exists,
            or_replace,
            emit_on_window_close,
            options,
        } => {
            let trigger = eddy_sql::triggers::view_options(options)?;
            let snapshot = shared.catalog.snapshot();
            if *or_replace
                && let Some(existing) = snapshot.get(name)
                && existing.kind != RelationKind::MaterializedView
            {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not a materialized view"
                )));
            }
            let (rel, flow, notes) = plan_view(
                &shared.query,
                &shared.store,
                &snapshot,
                name,
                query,
                ViewKind::new_view(true, *emit_on_window_close),
            )
            .await?;
            let mut rel = rel;
            if trigger.is_some() {
                rel.trigger_micros = trigger;
                rel.create_sql =
                    eddy_sql::alter::view_create_sql(&rel, rel.query.as_deref().unwrap_or(""));
            }
            let view = rel.name.clone();
            let tag = "CREATE MATERIALIZED VIEW";
            let done = match (flow, *or_replace && snapshot.get(&view).is_some()) {
                (Some(dataflow), true) => {
                    let replacing = async {
                        shared
                            .engine
                            .alter(Alter::Replace {
                                view: Box::new(rel),
                                dataflow,
                            })
                            .await
                            .map(|_| Outcome::done(tag))
                    };
                    report_backfill(shared, session, &view, replacing).await?
                }
                (flow, _) => {
                    let creating = created(shared, rel, flow, *if_not_exists, tag);
                    report_backfill(shared, session, &view, creating).await?
                }
            };
            Ok(notes.into_iter().rev().fold(done, |outcome, note| {
                Outcome::Notice(note, Box::new(outcome))
            }))
        }
        Statement::CreateSink {
            name,
            from,
            if_not_exists,
            options,
        } => {
            let snapshot = shared.catalog.snapshot();
            let source = snapshot
                .get(from)
                .ok_or_else(|| SqlError::UnknownRelation(from.clone()))?;
            let (connector, key) = eddy_sql::sinks::sink_connector(name, source, options)?;
            let options: Vec<String> = connector
                .options
                .iter()
                .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
                .collect();
            let create_sql = format!(
                "CREATE SINK {name} FROM {from} WITH ({})",
                options.join(", ")
            );
            let mut rel = new_relation(
                name,
                RelationKind::Sink,
                source.columns.clone(),
                key,
                None,
                vec![source.id],
                create_sql,
            );
            rel.connector = Some(connector);
            // The target must be reachable and fit the relation's rows now.
            eddy_sql::sinks::SinkTarget::of(&rel)?.check(&rel).await?;
            created(shared, rel, None, *if_not_exists, "CREATE SINK").await
        }
        Statement::Drop {
            kind,
            names,
            if_exists,
            cascade,
        } => drop(shared, *kind, names, *if_exists, *cascade).await,
        Statement::Rename {
            kind,
            name,
            to,
            if_exists,
        } => {
            let change = Alter::Rename {
                kind: *kind,
                name: name.clone(),
                to: to.clone(),
                if_exists: *if_exists,
            };
            altered(shared, change, &format!("ALTER {}", kind.sql_name())).await
        }
        Statement::AddColumn {
            kind,
            name,
            if_exists,
            column,
            if_not_exists,
        } => {
            let (mut columns, key) = ddl::columns(std::slice::from_ref(&**column), &[])?;
            let added = columns.remove(0);
            if !key.is_empty() {
                return Err(SqlError::Unsupported(format!(
                    "ADD COLUMN \"{}\" PRIMARY KEY: a relation's key is set when it is created",
                    added.name
                )));
            }
            if !added.nullable {
                return Err(SqlError::Unsupported(format!(
                    "ADD COLUMN \"{}\" NOT NULL: the rows already stored would hold NULL in it \
                     (add it without NOT NULL)",
                    added.name
                )));
            }
            let change = Alter::AddColumn {
                kind: *kind,
                name: name.clone(),
                if_exists: *if_exists,
                column: added,
                definition: column.to_string(),
                if_not_exists: *if_not_exists,
            };
            altered(shared, change, &format!("ALTER {}", kind.sql_name())).await
        }
        _ => Err(SqlError::Internal("not a DDL statement".into())),
    }
}

pub async fn execute_sql(shared: &Shared, stmt: &SqlStatement) -> SqlResult<Outcome> {
    match stmt {
        SqlStatement::CreateTable(ct) => {
            if ct.query.is_some() {
                return Err(SqlError::Unsupported("CREATE TABLE ... AS".into()));
            }
            let name = normalize_object_name(&ct.name)?;
            let (columns, pk) = ddl::columns(&ct.columns, &ct.constraints)?;
            let options = match &ct.table_options {
                CreateTableOptions::None => &[][..],
                CreateTableOptions::With(options) => options.as_slice(),
                other => return Err(SqlError::Unsupported(format!("table options {other}"))),
            };
            let connector = sources::table_connector(&name, &pk, options)?;
            let mut rel = new_relation(
                &name,
                RelationKind::Table,
                columns,
                pk,
                None,
                vec![],
                stmt.to_string(),
            );
            rel.connector = connector;
            let mirror = sources::mirror_of(&rel)?;
            let Some(mirror) = mirror.filter(|_| shared.catalog.snapshot().get(&name).is_none())
            else {
                return created(shared, rel, None, ct.if_not_exists, "CREATE TABLE").await;
            };
            // The upstream table must answer with the columns now; the table is then loaded
            // before CREATE returns.
            mirror.check(&rel.columns).await?;
            let outcome = created(shared, rel, None, ct.if_not_exists, "CREATE TABLE").await?;
            let loaded = first_sync(shared, &name).await?;
            Ok(match loaded {
                Some(note) => Outcome::Notice(note, Box::new(outcome)),
                None => outcome,
            })
        }
        SqlStatement::CreateView(cv) => {
            let name = normalize_object_name(&cv.name)?;
            let snapshot = shared.catalog.snapshot();
            let (rel, _, _) = plan_view(
                &shared.query,
                &shared.store,
                &snapshot,
                &name,
                &cv.query,
                ViewKind::new_view(cv.materialized, false),
            )
            .await?;
            if cv.or_replace {
                return Err(SqlError::Unsupported("CREATE OR REPLACE VIEW".into()));
            }
            let tag = if cv.materialized {
                "CREATE MATERIALIZED VIEW"
            } else {
                "CREATE VIEW"
            };
            created(shared, rel, None, cv.if_not_exists, tag).await
        }
        SqlStatement::Drop { object_type, .. } => {
            Err(SqlError::Unsupported(format!("DROP {object_type}")))
        }
        _ => Err(SqlError::Internal("not a DDL statement".into())),
    }
}

/// How long CREATE TABLE waits for a mirrored table's first load.
const FIRST_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until a mirrored table's first read is applied; a NOTICE when it is not in time
/// (the table then fills once it is; its progress says why it waits).
async fn first_sync(shared: &Shared, name: &str) -> SqlResult<Option<String>> {
    let id = shared.catalog.snapshot().resolve(name)?.id;
    let deadline = std::time::Instant::now() + FIRST_SYNC_WAIT;
    loop {
        let progress = eddy_dataflow::progress::Progress::load(&shared.store, id)?;
        if progress.as_ref().is_some_and(|p| p.synced.is_some()) {
            return Ok(None);
        }
        let failed = progress.as_ref().and_then(|p| p.source_error.clone());
        if failed.is_some() || std::time::Instant::now() > deadline {
            let why = failed.unwrap_or_else(|| "its first read takes long".into());
            return Ok(Some(format!(
                "table \"{name}\" is not loaded yet ({why}); it fills once its upstream \
                 table is read, see eddy_catalog.progress"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn new_relation(
    name: &str,
    kind: RelationKind,
    columns: Vec<Column>,
    primary_key: Vec<usize>,
    query: Option<String>,
    depends_on: Vec<RelId>,
    create_sql: String,
) -> Relation {
    Relation {
        primary_key,
        query,
        depends_on,
        create_sql,
        ..Relation::new(name, kind, columns)
    }
}

/// How often a client creating a view hears how far its backfill has come.
const BACKFILL_NOTICE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Awaits a view's creation, telling the client every [`BACKFILL_NOTICE_EVERY`] how far its
/// backfill has come (nothing for a backfill shorter than that).
async fn report_backfill(
    shared: &Shared,
    session: &ClientSession,
    view: &str,
    creating: impl std::future::Future<Output = SqlResult<Outcome>>,
) -> SqlResult<Outcome> {
    tokio::pin!(creating);
    let mut every = tokio::time::interval(BACKFILL_NOTICE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let mut told = None;
    loop {
        tokio::select! {
            done = &mut creating => return done,
            _ = every.tick() => {
                let Some(b) = shared.query.metrics.backfill(view) else { continue };
                if told == Some(b.done) {
                    continue;
                }
                told = Some(b.done);
                let message = match (b.total, b.percent()) {
                    (Some(total), Some(percent)) => format!(
                        "materialized view \"{view}\": backfilled {} of {total} rows ({percent:.0}%)",
                        b.done
                    ),
                    _ => format!("materialized view \"{view}\": backfilled {} rows", b.done),
                };
                session.notice(message);
            }
        }
    }
}

/// Applies a change of definitions; a no-op (IF EXISTS) gets a notice, as in Postgres.
async fn altered(shared: &Shared, change: Alter, tag: &str) -> SqlResult<Outcome> {
    Ok(match shared.engine.alter(change).await? {
        None => Outcome::done(tag),
        Some(skipped) => Outcome::Notice(skipped, Box::new(Outcome::done(tag))),
    })
}

async fn created(
    shared: &Shared,
    rel: Relation,
    flow: Option<Dataflow>,
    if_not_exists: bool,
    tag: &str,
) -> SqlResult<Outcome> {
    let name = rel.name.clone();
    let kind = rel.kind;
    if shared.engine.create(rel, flow, if_not_exists).await? {
        Ok(Outcome::done(tag))
    } else {
        Ok(Outcome::Notice(
            format!("{kind} \"{name}\" already exists, skipping"),
            Box::new(Outcome::done(tag)),
        ))
    }
}

async fn drop(
    shared: &Shared,
    kind: RelationKind,
    names: &[String],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<Outcome> {
    let snapshot = shared.catalog.snapshot();
    let missing: Vec<&String> = names.iter().filter(|n| snapshot.get(n).is_none()).collect();
    let dropped = shared
        .engine
        .drop_relations(kind, names.to_vec(), if_exists, cascade)
        .await?;
    let tag = format!("DROP {}", kind.sql_name());
    let outcome = Outcome::done(&tag);
    match missing.first() {
        Some(n) if if_exists && dropped.len() < names.len() => Ok(Outcome::Notice(
            format!("{kind} \"{n}\" does not exist, skipping"),
            Box::new(outcome),
        )),
        _ => Ok(outcome),
    }
}

/// The columns of a query's result, as a view stores them.
fn view_columns(schema: &SchemaRef) -> SqlResult<Vec<Column>> {
    let mut seen = HashSet::new();
    schema
        .fields()
        .iter()
        .map(|f| {
            if !seen.insert(f.name().clone()) {
                return Err(SqlError::DuplicateColumn(format!(
                    "column \"{}\" specified more than once",
                    f.name()
                )));
            }
            let sql_type = SqlType::from_field(f)
                .filter(|_| is_storable(f.data_type()))
                .ok_or_else(|| {
                    SqlError::Unsupported(format!(
                        "column \"{}\" of type {}",
                        f.name(),
                        f.data_type()
                    ))
                })?;
            Ok(Column::nullable(f.name().clone(), sql_type))
        })
        .collect()
}

/// The result of EXPLAIN CREATE MATERIALIZED VIEW: lines of text, as Postgres' EXPLAIN.
pub fn explain_schema() -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("QUERY PLAN", arrow::datatypes::DataType::Utf8, false),
    ]))
}

/// EXPLAIN CREATE MATERIALIZED VIEW: the dataflow the view would get, an operator a line with
/// what it reads, then the state it keeps and whether a watermark or a limit bounds it, then
/// what would be noticed at CREATE. Nothing is created.
pub async fn explain(
    shared: &Shared,
    query: &Query,
    emit_on_window_close: bool,
) -> SqlResult<Outcome> {
    let snapshot = shared.catalog.snapshot();
    let (_, flow, notes) = plan_view(
        &shared.query,
        &shared.store,
        &snapshot,
        "explained",
        query,
        ViewKind::new_view(true, emit_on_window_close),
    )
    .await?;
    let flow =
        flow.ok_or_else(|| SqlError::Internal("a materialized view without a dataflow".into()))?;
    let name = |id: u64| {
        snapshot
            .by_id(id)
            .map_or_else(|| format!("relation {id}"), |r| r.name.clone())
    };
    let mut lines = Vec::new();
    for (id, (inputs, explain)) in flow.explain().into_iter().enumerate() {
        let from: Vec<String> = inputs
            .iter()
            .map(|i| match i {
                Input::Source { relation, .. } => name(*relation),
                Input::Node(n) => format!("#{n}"),
            })
            .collect();
        lines.push(format!("#{id} {} <- {}", explain.operator, from.join(", ")));
        let watermark = explain
            .watermark
            .map_or(String::new(), |s| format!(" (watermark of {})", name(s)));
        lines.push(format!("    {}{watermark}", explain.state));
    }
    lines.extend(notes.into_iter().map(|n| format!("NOTICE: {n}")));
    let batch = arrow::array::RecordBatch::try_new(
        explain_schema(),
        vec![Arc::new(arrow::array::StringArray::from(lines))],
    )?;
    Ok(Outcome::Rows {
        schema: explain_schema(),
        batches: vec![batch],
        tag: "EXPLAIN",
    })
}

/// What kind of view a query is planned as.
#[derive(Clone, Copy, Debug)]
pub struct ViewKind {
    pub materialized: bool,
    pub emit_on_window_close: bool,
    /// The streaming planner's version a materialized view's dataflow is planned with.
    pub plan_version: u32,
}

impl ViewKind {
    /// A view being defined now: planned by the current planner.
    pub fn new_view(materialized: bool, emit_on_window_close: bool) -> ViewKind {
        ViewKind {
            materialized,
            emit_on_window_close,
            plan_version: streaming::PLAN_VERSION,
        }
    }
}

/// Plans a view's query: its definition and, for a materialized view, its dataflow and what
/// in it keeps state without bound (reported to the client as NOTICEs).
pub async fn plan_view(
    engine: &QueryEngine,
    store: &Arc<Store>,
    snapshot: &Arc<Snapshot>,
    name: &str,
    query: &Query,
    kind: ViewKind,
) -> SqlResult<(Relation, Option<Dataflow>, Vec<String>)> {
    let ViewKind {
        materialized,
        emit_on_window_close,
        plan_version,
    } = kind;
    let stmt = SqlStatement::Query(Box::new(query.clone()));
    let rows = match materialized {
        true => Rows::Dataflow,
        false => Rows::SchemaOnly,
    };
    let windows = eddy_sql::windows::rewrite(&mut stmt.clone(), rows.windowing())?;
    let ctx = engine
        .session_for(&stmt, snapshot, store, rows, engine.internal())
        .await?;
    let plan = engine.plan(&ctx, &stmt).await?;
    let schema = super::query::analyzed_schema(&ctx, &plan);
    let columns = view_columns(&postgres_names(query, &schema))?;
    let depends_on = engine.references(&stmt, snapshot)?;
    let mut notes = Vec::new();
    let mut append_only = false;
    let mut primary_key = Vec::new();
    let (kind, flow) = if materialized {
        let optimized =
            eddy_sql::subqueries::scalar_subqueries_as_joins(ctx.state().optimize(&plan)?)?;
        notes = streaming::unbounded_state(&optimized, snapshot);
        append_only = streaming::is_append_only(&optimized, snapshot);
        // The key an update-mode sink writes the view's rows by, and the view stores them by.
        primary_key = eddy_sql::sinks::implied_key(plan.schema(), &optimized);
        (
            RelationKind::MaterializedView,
            Some(streaming::plan_dataflow(
                &ctx.state(),
                snapshot,
                &optimized,
                &ViewOptions {
                    windows,
                    emit_on_window_close,
                    plan_version,
                },
            )?),
        )
    } else {
        (RelationKind::View, None)
    };
    let emit = if emit_on_window_close {
        " EMIT ON WINDOW CLOSE"
    } else {
        ""
    };
    let create_sql = format!("CREATE {} {name} AS {query}{emit}", kind.sql_name());
    let mut rel = new_relation(
        name,
        kind,
        columns,
        vec![],
        Some(query.to_string()),
        depends_on,
        create_sql,
    );
    rel.emit_on_window_close = emit_on_window_close;
    rel.append_only = append_only;
    if materialized {
        rel.primary_key = primary_key;
        rel.keyed_rows = !append_only && !rel.primary_key.is_empty();
        rel.plan_version = plan_version;
    }
    Ok((rel, flow, notes))
}
