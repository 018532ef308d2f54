//! DataFusion sessions over Eddy's relations.
//!
//! Every statement is planned in a fresh session whose `public` schema holds exactly the
//! relations it references, as [`StoredTable`]s that read the store when the physical plan is
//! made. A query's session pins one epoch (see [`crate::table`]) so that a query touching
//! several views sees them all at that epoch. Plain views are registered as DataFusion views
//! over the same session.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::catalog::{
    CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::datasource::ViewTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use eddy_catalog::{Relation, RelationKind, Snapshot};
use eddy_dataflow::relations::Layout;
use eddy_storage::{EpochPin, Store};
use sqlparser::ast::Statement as SqlStatement;

use crate::compat::binding::{Binding, Build, bound_table};
use crate::compat::{self, ClientSession, Sessions};
use crate::names::DEFAULT_SCHEMA;
use crate::table::{ReadPin, StoredTable};
use crate::windows::{WindowFunction, WindowKind, Windowing, session_placeholder};
use crate::{SqlError, SqlResult, parser};

/// The database name clients connect to.
pub const DATABASE: &str = "eddy";

/// How a relation lays out its rows: a log for what only grows (streams, append-only
/// views), rows by key for tables and views with a key, a multiset of rows for other views.
pub fn layout(rel: &Relation) -> Layout {
    match rel.kind {
        RelationKind::Stream => Layout::Log,
        RelationKind::Table => Layout::Keyed,
        RelationKind::MaterializedView if rel.append_only => Layout::Log,
        RelationKind::MaterializedView if rel.keyed_rows => Layout::Keyed,
        RelationKind::MaterializedView | RelationKind::View | RelationKind::Sink => {
            Layout::Multiset
        }
    }
}

/// The schema with every column nullable: NOT NULL is enforced by the epoch driver (with the
/// constraint's SQLSTATE), not by DataFusion's plan checks.
fn nullable(schema: &arrow::datatypes::SchemaRef) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// A statement as DataFusion plans it: window table functions become derived tables (or,
/// for a dataflow, placeholders), and what the rewrite found.
fn prepare(
    statement: &SqlStatement,
    windowing: Windowing,
) -> SqlResult<(SqlStatement, Vec<WindowFunction>)> {
    let mut statement = statement.clone();
    compat::rewrite::name_function_columns(&mut statement);
    let found = crate::windows::rewrite(&mut statement, windowing)?;
    Ok((statement, found))
}

/// What a session is for: whether it reads rows, and how it plans windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Queries: the tables read their rows from one epoch, pinned until [`release`].
    Load,
    /// Planning only (views, DML targets, Describe): no scan runs.
    SchemaOnly,
    /// Planning a materialized view's dataflow: no scan runs, and SESSION windows are
    /// placeholders for the streaming planner.
    Dataflow,
}

impl Rows {
    /// How a session made for this rewrites window table functions.
    pub fn windowing(self) -> Windowing {
        match self {
            Rows::Dataflow => Windowing::Dataflow,
            Rows::Load | Rows::SchemaOnly => Windowing::Batch,
        }
    }
}

/// A session's [`Rows`], kept in its config so that [`QueryEngine::plan`] rewrites windows
/// the way the session was made for.
struct Purpose(Rows);

/// Releases a [`Rows::Load`] session's hold on its epoch, once its physical plan is made
/// (the scans have read their rows then). Must come before anything that waits for a commit.
pub fn release(ctx: &SessionContext) {
    if let Some(pin) = ctx.state().config().get_extension::<ReadPin>() {
        pin.release();
    }
}

/// The shared DataFusion configuration from which per-statement sessions are made, and the
/// open client sessions.
#[derive(Clone)]
pub struct QueryEngine {
    base: SessionState,
    pub sessions: Arc<Sessions>,
    /// The live figures of the pipeline (the epoch driver writes them).
    pub metrics: Arc<eddy_dataflow::metrics::Metrics>,
    /// The session of work no client runs (planning views and writes).
    internal: Arc<ClientSession>,
    /// The answers of repeated catalog queries, under the current catalog snapshot.
    pub catalog_results: Arc<compat::cache::CatalogResults>,
    /// The physical plans of those queries, run again after a definition change.
    pub catalog_plans: Arc<compat::plans::CatalogPlans>,
}

impl Default for QueryEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryEngine {
    pub fn new() -> Self {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_target_partitions(1)
            .with_information_schema(false);
        let base = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let mut base = crate::compat::functions::install(base)
            .expect("the Postgres catalog functions install on a fresh session state");
        datafusion::execution::FunctionRegistry::register_expr_planner(
            &mut base,
            Arc::new(crate::literals::UnknownLiterals),
        )
        .expect("an expression planner registers on a fresh session state");
        // approx_distinct under the name Spark, Flink and RisingWave give it.
        let approx = datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf();
        datafusion::execution::FunctionRegistry::register_udaf(
            &mut base,
            Arc::new(
                approx
                    .as_ref()
                    .clone()
                    .with_aliases(["approx_count_distinct"]),
            ),
        )
        .expect("an aggregate function registers on a fresh session state");
        datafusion::execution::FunctionRegistry::register_udf(
            &mut base,
            Arc::new(crate::windows::tumble_start::udf()),
        )
        .expect("a scalar function registers on a fresh session state");
        Self {
            base,
            sessions: Arc::default(),
            metrics: Arc::default(),
            internal: Arc::new(ClientSession::internal()),
            catalog_results: Arc::default(),
            catalog_plans: Arc::default(),
        }
    }

    /// The session for work no client runs: planning views and writes.
    pub fn internal(&self) -> &Arc<ClientSession> {
        &self.internal
    }

    pub fn state(&self) -> &SessionState {
        &self.base
    }

    /// A session for one statement, with the relations it references registered, and the
    /// catalog tables and functions answering for `client`.
    pub async fn session_for(
        &self,
        statement: &SqlStatement,
        catalog: &Arc<Snapshot>,
        store: &Arc<Store>,
        rows: Rows,
        client: &Arc<ClientSession>,
    ) -> SqlResult<SessionContext> {
        self.session_pinned(statement, catalog, store, rows, client, None)
            .await
    }

    /// [`QueryEngine::session_for`]; a query's rows are read at the epoch `pin` holds (the
    /// caller pinned it before it took `catalog`, so that definitions and rows agree), or at
    /// one pinned now.
    pub async fn session_pinned(
        &self,
        statement: &SqlStatement,
        catalog: &Arc<Snapshot>,
        store: &Arc<Store>,
        rows: Rows,
        client: &Arc<ClientSession>,
        pin: Option<EpochPin>,
    ) -> SqlResult<SessionContext> {
        let (prepared, windows) = prepare(statement, rows.windowing())?;
        let df_stmt = DfStatement::Statement(Box::new(prepared));
        let references = self.base.resolve_table_references(&df_stmt)?;
        let mut needed: BTreeMap<u64, Arc<Relation>> = BTreeMap::new();
        let mut todo: Vec<TableReference> = references;
        let mut seen: HashSet<String> = HashSet::new();
        let system = Arc::new(MemorySchemaProvider::new());
        let pg_catalog = Arc::new(MemorySchemaProvider::new());
        let information_schema = Arc::new(MemorySchemaProvider::new());
        let binding = Binding::new(catalog.clone(), client.clone());
        while let Some(r) = todo.pop() {
            let (schema, table) = match r.schema() {
                Some(crate::system::SCHEMA) => {
                    let from = crate::system::Sources {
                        catalog,
                        store,
                        metrics: &self.metrics,
                        sessions: &self.sessions,
                    };
                    (&system, crate::system::table(r.table(), &from)?)
                }
                Some(compat::PG_CATALOG) => {
                    if pg_catalog.table_exist(r.table()) {
                        continue;
                    }
                    let (name, sessions) = (r.table().to_string(), self.sessions.clone());
                    let build: Arc<Build> = Arc::new(move |snapshot, client| {
                        compat::pg_catalog::table(&name, snapshot, client, &sessions)
                    });
                    (&pg_catalog, bound_table(&binding, build)?)
                }
                Some(compat::INFORMATION_SCHEMA) => {
                    if information_schema.table_exist(r.table()) {
                        continue;
                    }
                    let name = r.table().to_string();
                    let build: Arc<Build> = Arc::new(move |snapshot, _| {
                        compat::information_schema::table(&name, snapshot)
                    });
                    (&information_schema, bound_table(&binding, build)?)
                }
                _ => (&system, None),
            };
            if let Some(table) = table {
                if !schema.table_exist(r.table()) {
                    schema.register_table(r.table().to_string(), table)?;
                }
                continue;
            }
            if !matches!(r.schema(), None | Some(DEFAULT_SCHEMA)) {
                continue;
            }
            let name = r.table().to_string();
            if !seen.insert(name.clone()) {
                continue;
            }
            // A sink has no rows to read: it is not a table to queries.
            let Some(rel) = catalog.get(&name).filter(|r| r.is_readable()) else {
                continue;
            };
            if rel.kind == RelationKind::View {
                let query = rel.query.as_deref().unwrap_or_default();
                for s in parser::parse(query)? {
                    if let parser::Statement::Sql(s) = s {
                        let inner = DfStatement::Statement(s);
                        todo.extend(self.base.resolve_table_references(&inner)?);
                    }
                }
            }
            needed.insert(rel.id, rel.clone());
        }

        let schema = Arc::new(MemorySchemaProvider::new());
        for rel in needed.values().filter(|r| r.is_stored()) {
            let table = StoredTable::new(
                rel.clone(),
                layout(rel),
                nullable(&rel.schema()),
                store.clone(),
            );
            schema.register_table(rel.name.clone(), Arc::new(table))?;
        }
        for (n, window) in windows.iter().enumerate() {
            if window.kind == WindowKind::Session
                && let Some(rel) = catalog.get(&window.relation)
            {
                let time = rel.column_index(&window.time_column).ok_or_else(|| {
                    SqlError::UnknownColumn(format!(
                        "column \"{}\" does not exist",
                        window.time_column
                    ))
                })?;
                let table = datafusion::datasource::empty::EmptyTable::new(
                    eddy_dataflow::SessionWindow::output_schema(&nullable(&rel.schema()), time),
                );
                schema.register_table(session_placeholder(n), Arc::new(table))?;
            }
        }
        let catalog_provider = Arc::new(MemoryCatalogProvider::new());
        catalog_provider.register_schema(DEFAULT_SCHEMA, schema.clone())?;
        catalog_provider.register_schema(crate::system::SCHEMA, system)?;
        catalog_provider.register_schema(compat::PG_CATALOG, pg_catalog)?;
        catalog_provider.register_schema(compat::INFORMATION_SCHEMA, information_schema)?;
        // Each session has a catalog list of its own: a clone of the base state would share
        // the base's list, and concurrent statements would replace each other's tables.
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(DATABASE.to_string(), catalog_provider);
        // (A clone with its list swapped, not a SessionStateBuilder: building a state
        // registers every built-in function again, a fifth of a point query's time.)
        let mut state = self.base.clone();
        state.register_catalog_list(catalogs);
        state.config_mut().set_extension(Arc::new(Purpose(rows)));
        state.config_mut().set_extension(binding.clone());
        if rows == Rows::Load {
            // Pinned before any scan: every table of the query reads the same epoch.
            let pin = pin.unwrap_or_else(|| store.pin());
            state
                .config_mut()
                .set_extension(Arc::new(ReadPin::new(pin)));
        }
        let ctx = SessionContext::new_with_state(state);
        compat::functions::bind(&ctx, &binding, &self.sessions);

        // Plain views, in creation order so that a view's own views exist before it.
        for rel in needed.values().filter(|r| r.kind == RelationKind::View) {
            let query = rel.query.clone().unwrap_or_default();
            let plan = self.plan_query_text(&ctx, &query).await?;
            let view: Arc<dyn TableProvider> = Arc::new(ViewTable::new(plan, Some(query)));
            schema.register_table(rel.name.clone(), view)?;
        }
        Ok(ctx)
    }

    async fn plan_query_text(&self, ctx: &SessionContext, query: &str) -> SqlResult<LogicalPlan> {
        let mut stmts = parser::parse(query)?;
        match stmts.pop() {
            Some(parser::Statement::Sql(s)) => Ok(ctx
                .state()
                .statement_to_plan(DfStatement::Statement(s))
                .await?),
            _ => Err(SqlError::Internal(format!(
                "stored view query does not parse: {query}"
            ))),
        }
    }

    /// The relations a statement names directly (what it depends on).
    pub fn references(&self, statement: &SqlStatement, catalog: &Snapshot) -> SqlResult<Vec<u64>> {
        let (prepared, _) = prepare(statement, Windowing::Batch)?;
        let df_stmt = DfStatement::Statement(Box::new(prepared));
        let mut ids: Vec<u64> = self
            .base
            .resolve_table_references(&df_stmt)?
            .iter()
            .filter(|r| matches!(r.schema(), None | Some(DEFAULT_SCHEMA)))
            .filter_map(|r| catalog.get(r.table()).map(|rel| rel.id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The logical plan of a statement in a session made by [`Self::session_for`].
    pub async fn plan(
        &self,
        ctx: &SessionContext,
        statement: &SqlStatement,
    ) -> SqlResult<LogicalPlan> {
        let rows = ctx
            .state()
            .config()
            .get_extension::<Purpose>()
            .map_or(Rows::SchemaOnly, |p| p.0);
        let (mut statement, _) = prepare(statement, rows.windowing())?;
        crate::literals::rewrite_bytea_casts(&mut statement)?;
        Ok(ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await?)
    }
}
