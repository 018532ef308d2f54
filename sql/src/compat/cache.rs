//! Results of catalog queries, kept per catalog snapshot.
//!
//! Tools ask the same introspection queries again and again (psql's `\d`, a BI tool's sync of
//! every table), and planning one costs far more than answering it: the catalogs are small,
//! the queries are joins of five tables with subqueries. A query whose answer follows from
//! the catalog snapshot and the client's session alone (it reads only catalog tables built
//! from the snapshot, and calls only functions of their arguments, the snapshot and the
//! session's settings) is answered from here until the snapshot changes.
//!
//! A result is found by the statement, its parameters, the user, the database and every
//! session setting, and only under the snapshot it was computed from (compared by identity:
//! every definition change publishes a new snapshot). The cache is bounded; when it is full
//! it starts over.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use eddy_catalog::Snapshot;
use parking_lot::Mutex;
use sqlparser::ast::Statement as SqlStatement;

use super::{ClientSession, INFORMATION_SCHEMA, PG_CATALOG};

/// How many results are kept at most.
const MAX_ENTRIES: usize = 512;
/// How many bytes of results are kept at most, and the most one result may take.
const MAX_BYTES: usize = 64 << 20;
const MAX_RESULT_BYTES: usize = 4 << 20;

/// Catalog tables whose rows follow from something other than the snapshot and the session:
/// the open sessions, and the roles (which `CREATE ROLE` changes without a new snapshot).
const LIVE_TABLES: &[&str] = &["pg_stat_activity", "pg_roles", "pg_user", "pg_authid"];

/// Functions Postgres calls stable whose result follows from their arguments, the catalog
/// snapshot and the session's settings, besides the `pg_*_is_visible` ones
/// ([`super::functions::VISIBILITY`]). Immutable functions need no listing; every other stable
/// function, `now()` or `pg_backend_pid()` for one, keeps a query out of the cache.
const SNAPSHOT_STABLE: &[&str] = &[
    "version",
    "current_database",
    "current_catalog",
    "current_schema",
    "current_schemas",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "current_setting",
    "format",
    "format_type",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_get_expr",
    "pg_get_viewdef",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_get_function_result",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_functiondef",
    "pg_get_triggerdef",
    "pg_get_ruledef",
    "pg_get_serial_sequence",
    "pg_get_userbyid",
    "pg_tablespace_location",
    "pg_encoding_to_char",
    "pg_relation_is_publishable",
    "pg_table_is_visible",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_column_privilege",
    "has_any_column_privilege",
    "has_function_privilege",
    "has_sequence_privilege",
    "to_regclass",
    "to_regtype",
    "quote_ident",
    "parse_ident",
    "pg_get_partkeydef",
    "pg_get_statisticsobjdef_columns",
    "pg_partition_ancestors",
];

/// Whether a query's answer follows from the catalog snapshot and the session alone: it
/// reads at least one catalog table, no other table and no live catalog table, and every
/// function it calls is immutable or one of [`SNAPSHOT_STABLE`].
pub fn cacheable(plan: &LogicalPlan) -> bool {
    let mut catalog_scans = 0usize;
    let mut ok = true;
    let walked = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let name = &scan.table_name;
                let catalog_table = matches!(name.schema(), Some(PG_CATALOG | INFORMATION_SCHEMA))
                    && !LIVE_TABLES.contains(&name.table());
                if !catalog_table {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                catalog_scans += 1;
            }
            LogicalPlan::Extension(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Statement(_) => {
                ok = false;
                return Ok(TreeNodeRecursion::Stop);
            }
            _ => {}
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                if !deterministic(e) {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    walked.is_ok() && ok && catalog_scans > 0
}

/// Whether one expression node gives the same value for the same snapshot, session and
/// input rows.
fn deterministic(e: &Expr) -> bool {
    match e {
        Expr::ScalarFunction(f) => match f.func.signature().volatility {
            Volatility::Immutable => true,
            Volatility::Stable => {
                SNAPSHOT_STABLE.contains(&f.name())
                    || super::functions::VISIBILITY.contains(&f.name())
            }
            Volatility::Volatile => false,
        },
        Expr::AggregateFunction(f) => f.func.signature().volatility != Volatility::Volatile,
        Expr::WindowFunction(_) => true,
        Expr::ScalarVariable(..) => false,
        _ => true,
    }
}

/// What is kept of a query: its rows, or what Describe answers (the parameter types and
/// the result schema).
#[derive(Clone)]
pub enum Answer {
    Rows(SchemaRef, Vec<RecordBatch>),
    Described(Vec<Option<DataType>>, SchemaRef),
}

impl Answer {
    fn kind(&self) -> Kind {
        match self {
            Answer::Rows(..) => Kind::Rows,
            Answer::Described(..) => Kind::Described,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Answer::Rows(_, batches) => batches.iter().map(|b| b.get_array_memory_size()).sum(),
            Answer::Described(params, schema) => {
                (params.len() + schema.fields().len()) * std::mem::size_of::<DataType>()
            }
        }
    }
}

/// Which [`Answer`] a lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Rows,
    Described,
}

/// A kept answer and what it answers.
struct Entry {
    kind: Kind,
    statement: SqlStatement,
    params: Vec<ScalarValue>,
    session: SessionKey,
    answer: Answer,
    bytes: usize,
}

impl Entry {
    fn answers(
        &self,
        kind: Kind,
        statement: &SqlStatement,
        params: &[ScalarValue],
        session: &SessionKey,
    ) -> bool {
        self.kind == kind
            && self.session == *session
            && self.params == params
            && self.statement == *statement
    }
}

/// What of a client's session a catalog query's answer may depend on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct SessionKey {
    user: String,
    database: String,
    settings: Vec<(String, String)>,
}

impl SessionKey {
    fn of(session: &ClientSession) -> Self {
        Self {
            user: session.user.clone(),
            database: session.database.clone(),
            settings: session.changed_settings(),
        }
    }
}

#[derive(Default)]
struct State {
    /// The snapshot every kept answer was computed from.
    snapshot: Option<Arc<Snapshot>>,
    entries: HashMap<u64, Vec<Entry>>,
    count: usize,
    bytes: usize,
}

/// The answers of catalog queries under the current catalog snapshot.
#[derive(Default)]
pub struct CatalogResults {
    hasher: RandomState,
    state: Mutex<State>,
    hits: AtomicU64,
}

/// How much the cache holds and how often it answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub results: usize,
    pub bytes: usize,
    /// Queries answered (or described) from the cache since the server started.
    pub hits: u64,
}

/// The key of an answer not kept yet; [`CatalogResults::insert`] keeps it.
pub struct Pending {
    kind: Kind,
    pub(super) hash: u64,
    pub(super) session: SessionKey,
}

impl CatalogResults {
    /// The kept answer of `kind` for `statement` with `params` for `session` under
    /// `snapshot`, or the key to keep one under.
    pub fn lookup(
        &self,
        kind: Kind,
        snapshot: &Arc<Snapshot>,
        statement: &SqlStatement,
        params: &[ScalarValue],
        session: &ClientSession,
    ) -> Result<Answer, Pending> {
        let session = SessionKey::of(session);
        let mut h = self.hasher.build_hasher();
        kind.hash(&mut h);
        statement.hash(&mut h);
        params.hash(&mut h);
        session.hash(&mut h);
        let hash = h.finish();
        let state = self.state.lock();
        if state
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
            && let Some(found) = state.entries.get(&hash).and_then(|bucket| {
                bucket
                    .iter()
                    .find(|e| e.answers(kind, statement, params, &session))
            })
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(found.answer.clone());
        }
        Err(Pending {
            kind,
            hash,
            session,
        })
    }

    /// Keeps the answer of a query [`cacheable`] found to follow from `snapshot` and the
    /// session.
    pub fn insert(
        &self,
        pending: Pending,
        snapshot: &Arc<Snapshot>,
        statement: &SqlStatement,
        params: &[ScalarValue],
        answer: Answer,
    ) {
        debug_assert_eq!(pending.kind, answer.kind());
        let bytes = answer.bytes();
        if bytes > MAX_RESULT_BYTES {
            return;
        }
        let mut state = self.state.lock();
        let current = state
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot));
        if !current || state.count >= MAX_ENTRIES || state.bytes + bytes > MAX_BYTES {
            *state = State {
                snapshot: Some(snapshot.clone()),
                ..State::default()
            };
        }
        let bucket = state.entries.entry(pending.hash).or_default();
        if bucket
            .iter()
            .any(|e| e.answers(pending.kind, statement, params, &pending.session))
        {
            return;
        }
        bucket.push(Entry {
            kind: pending.kind,
            statement: statement.clone(),
            params: params.to_vec(),
            session: pending.session,
            answer,
            bytes,
        });
        state.count += 1;
        state.bytes += bytes;
    }

    /// How many results are kept, their size, and the hits so far.
    pub fn figures(&self) -> Figures {
        let state = self.state.lock();
        debug_assert_eq!(
            state.bytes,
            state
                .entries
                .values()
                .flatten()
                .map(|e| e.bytes)
                .sum::<usize>()
        );
        Figures {
            results: state.count,
            bytes: state.bytes,
            hits: self.hits.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{QueryEngine, Rows};
    use crate::parser::{self, Statement};
    use eddy_catalog::{Column, Relation, RelationKind, SqlType};
    use eddy_storage::Store;

    fn snapshot() -> Arc<Snapshot> {
        let column = Column::nullable("user_id", SqlType::BigInt);
        let clicks = Relation {
            id: 9,
            ..Relation::new("clicks", RelationKind::Stream, vec![column])
        };
        Arc::new(Snapshot::from_relations([clicks]))
    }

    fn statement(sql: &str) -> SqlStatement {
        match parser::parse(sql).unwrap().pop() {
            Some(Statement::Sql(s)) => *s,
            _ => panic!("not a query: {sql}"),
        }
    }

    async fn is_cacheable(sql: &str) -> bool {
        let engine = QueryEngine::new();
        let store = Arc::new(Store::temporary().unwrap());
        let stmt = statement(sql);
        let client = engine.internal().clone();
        let ctx = engine
            .session_for(&stmt, &snapshot(), &store, Rows::SchemaOnly, &client)
            .await
            .unwrap();
        let plan = engine.plan(&ctx, &stmt).await.unwrap();
        cacheable(&plan)
    }

    #[tokio::test]
    async fn only_answers_of_the_snapshot_and_session_are_kept() {
        for sql in [
            "SELECT relname FROM pg_catalog.pg_class WHERE pg_catalog.pg_table_is_visible(oid)",
            "SELECT c.relname, n.nspname FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname ~ '^(clicks)$' ORDER BY 1",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            "SELECT current_setting('search_path'), count(*) FROM pg_catalog.pg_attribute",
            "SELECT relname FROM pg_catalog.pg_class WHERE oid IN \
             (SELECT attrelid FROM pg_catalog.pg_attribute WHERE attname = 'user_id')",
        ] {
            assert!(is_cacheable(sql).await, "not kept: {sql}");
        }
        for sql in [
            // No catalog table at all, or rows of a relation.
            "SELECT 1",
            "SELECT user_id FROM clicks",
            "SELECT c.relname FROM pg_catalog.pg_class c, clicks k WHERE k.user_id = c.oid",
            // Live catalog tables.
            "SELECT count(*) FROM pg_catalog.pg_stat_activity",
            "SELECT rolname FROM pg_catalog.pg_roles",
            // Functions of something else than the snapshot and the session.
            "SELECT now(), relname FROM pg_catalog.pg_class",
            "SELECT random(), relname FROM pg_catalog.pg_class",
            "SELECT pg_backend_pid(), relname FROM pg_catalog.pg_class",
            "SELECT pg_catalog.pg_total_relation_size(oid) FROM pg_catalog.pg_class",
            // ... also inside a subquery.
            "SELECT relname FROM pg_catalog.pg_class WHERE oid IN \
             (SELECT user_id FROM clicks)",
        ] {
            assert!(!is_cacheable(sql).await, "kept: {sql}");
        }
    }

    fn rows(n: i64) -> Answer {
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(arrow::array::Int64Array::from(vec![n])) as _,
        )])
        .unwrap();
        Answer::Rows(batch.schema(), vec![batch])
    }

    fn value(answer: Result<Answer, Pending>) -> Option<i64> {
        use arrow::array::AsArray;
        match answer {
            Ok(Answer::Rows(_, b)) => Some(
                b[0].column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0),
            ),
            _ => None,
        }
    }

    #[test]
    fn answers_are_found_by_everything_they_depend_on() {
        let cache = CatalogResults::default();
        let (one, two) = (snapshot(), snapshot());
        let stmt = statement("SELECT relname FROM pg_catalog.pg_class");
        let other = statement("SELECT relname FROM pg_catalog.pg_class WHERE oid > 0");
        let session = ClientSession::internal();
        let params = [ScalarValue::Int64(Some(1))];

        let Err(pending) = cache.lookup(Kind::Rows, &one, &stmt, &params, &session) else {
            panic!("found in an empty cache");
        };
        cache.insert(pending, &one, &stmt, &params, rows(1));
        let found = |snap, stmt, params: &[ScalarValue], session, kind| {
            value(cache.lookup(kind, snap, stmt, params, session))
        };
        assert_eq!(found(&one, &stmt, &params, &session, Kind::Rows), Some(1));
        assert_eq!(found(&two, &stmt, &params, &session, Kind::Rows), None);
        assert_eq!(found(&one, &other, &params, &session, Kind::Rows), None);
        assert_eq!(found(&one, &stmt, &[], &session, Kind::Rows), None);
        assert!(
            cache
                .lookup(Kind::Described, &one, &stmt, &params, &session)
                .is_err()
        );
        let changed = ClientSession::internal();
        changed.set("application_name", "psql").unwrap();
        assert_eq!(found(&one, &stmt, &params, &changed, Kind::Rows), None);
        let someone = ClientSession::new(1, "someone", crate::context::DATABASE, None);
        assert_eq!(found(&one, &stmt, &params, &someone, Kind::Rows), None);
        assert_eq!(cache.figures().hits, 1);
        assert_eq!(cache.figures().results, 1);

        // A newer snapshot starts the cache over.
        let Err(pending) = cache.lookup(Kind::Rows, &two, &stmt, &params, &session) else {
            panic!("found under another snapshot");
        };
        cache.insert(pending, &two, &stmt, &params, rows(2));
        assert_eq!(found(&two, &stmt, &params, &session, Kind::Rows), Some(2));
        assert_eq!(found(&one, &stmt, &params, &session, Kind::Rows), None);
        assert_eq!(cache.figures().results, 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CatalogResults::default();
        let snap = snapshot();
        let session = ClientSession::internal();
        let stmt = statement("SELECT relname FROM pg_catalog.pg_class WHERE oid = $1");
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            let params = [ScalarValue::Int64(Some(i))];
            if let Err(p) = cache.lookup(Kind::Rows, &snap, &stmt, &params, &session) {
                cache.insert(p, &snap, &stmt, &params, rows(i));
            }
            assert!(cache.figures().results <= MAX_ENTRIES);
        }
        let last = [ScalarValue::Int64(Some(MAX_ENTRIES as i64 + 9))];
        assert_eq!(
            value(cache.lookup(Kind::Rows, &snap, &stmt, &last, &session)),
            Some(MAX_ENTRIES as i64 + 9)
        );
    }
}
