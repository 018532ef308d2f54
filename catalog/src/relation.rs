use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::SqlType;

/// A relation's id: stable for its lifetime, never reused, the key of its rows and state.
pub type RelId = u64;

/// What a relation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RelationKind {
    /// Append-only, unbounded; keeps its history as a log.
    Stream,
    /// Mutable reference data; keyed by its primary key, or a hidden row id without one.
    Table,
    /// A continuous query whose contents are maintained incrementally and stored.
    MaterializedView,
    /// A named query, expanded when read.
    View,
    /// Pushes another relation's changes to an external system; it has no rows of its own.
    Sink,
}

impl RelationKind {
    /// The words Postgres-style DDL uses for it (`DROP MATERIALIZED VIEW`).
    pub fn sql_name(&self) -> &'static str {
        match self {
            RelationKind::Stream => "STREAM",
            RelationKind::Table => "TABLE",
            RelationKind::MaterializedView => "MATERIALIZED VIEW",
            RelationKind::View => "VIEW",
            RelationKind::Sink => "SINK",
        }
    }
}

impl fmt::Display for RelationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelationKind::Stream => "stream",
            RelationKind::Table => "table",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::View => "view",
            RelationKind::Sink => "sink",
        })
    }
}

/// A column of a relation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
}

impl Column {
    /// A column that may hold NULL.
    pub fn nullable(name: impl Into<String>, sql_type: SqlType) -> Self {
        Self {
            name: name.into(),
            sql_type,
            nullable: true,
        }
    }
}

/// The definition of a stream, table or view.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Relation {
    pub id: RelId,
    /// Normalized name (lower case unless it was quoted).
    pub name: String,
    pub kind: RelationKind,
    pub columns: Vec<Column>,
    /// Column positions of the primary key (tables; empty means none). For a materialized
    /// view, the unique key its query implies (its GROUP BY columns), if any; for a sink, the
    /// key it writes by.
    pub primary_key: Vec<usize>,
    /// For views, the defining query (the text after `AS`).
    pub query: Option<String>,
    /// Relations this one reads; a relation cannot be dropped while another depends on it.
    pub depends_on: Vec<RelId>,
    /// The statement that created it, as `SHOW CREATE` prints it.
    pub create_sql: String,
    /// Streams: the event-time column and how far behind the largest event time seen the
    /// watermark trails.
    #[serde(default)]
    pub watermark: Option<Watermark>,
    /// Materialized views: a window's rows appear only once the watermark closes it.
    #[serde(default)]
    pub emit_on_window_close: bool,
    /// Streams fed by a connector (`WITH (connector = ...)`) rather than by clients; sinks:
    /// where they write.
    #[serde(default)]
    pub connector: Option<Connector>,
    /// Materialized views whose rows are never retracted (a query over streams through
    /// projections, filters, unions and inner joins): stored as a log, like a stream.
    #[serde(default)]
    pub append_only: bool,
    /// Materialized views: how many leading columns of a relation it reads the view sees,
    /// for each relation widened by `ALTER ... ADD COLUMN` since the view was defined (the
    /// view is planned, and fed, as if the relation had only those). Absent: all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_columns: BTreeMap<RelId, usize>,
    /// Materialized views: `WITH (trigger = ...)`, in microseconds. The view takes its
    /// sources' changes once per interval; 0 is `'asap'` (every epoch). Absent: the
    /// server's `trigger` setting decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_micros: Option<u64>,
    /// Materialized views with a key (`primary_key`, their GROUP BY columns) created since
    /// views are stored by it: each row under its key, so that a changed row is one write.
    /// Absent: the view is stored as a multiset of rows (views of earlier versions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed_rows: bool,
    /// Materialized views: the version of the streaming planner that planned the view's
    /// dataflow. Its operators' positions key their state, so a restart plans the view with
    /// the same version again. Absent: 0, views planned before identical subplans were shared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plan_version: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A stream's connector: its name and every option as written (keys in lower case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    pub name: String,
    pub options: BTreeMap<String, String>,
}

/// `WATERMARK FOR column AS column - INTERVAL '...'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Position of the event-time column (a TIMESTAMP or TIMESTAMPTZ).
    pub column: usize,
    /// The allowed delay in microseconds (zero or more).
    pub delay_micros: i64,
}

impl Relation {
    /// A relation of `kind` with these columns and nothing more yet: no key, query,
    /// dependencies, watermark, connector or options, and id 0 until the catalog allocates
    /// one.
    pub fn new(name: impl Into<String>, kind: RelationKind, columns: Vec<Column>) -> Self {
        Self {
            id: 0,
            name: name.into(),
            kind,
            columns,
            primary_key: vec![],
            query: None,
            depends_on: vec![],
            create_sql: String::new(),
            watermark: None,
            emit_on_window_close: false,
            connector: None,
            append_only: false,
            input_columns: BTreeMap::new(),
            trigger_micros: None,
            keyed_rows: false,
            plan_version: 0,
        }
    }

    /// The Arrow schema of its rows.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.sql_type.field(&c.name, c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether its contents are stored (streams, tables and materialized views).
    pub fn is_stored(&self) -> bool {
        matches!(
            self.kind,
            RelationKind::Stream | RelationKind::Table | RelationKind::MaterializedView
        )
    }

    /// Whether queries can read it (everything but a sink).
    pub fn is_readable(&self) -> bool {
        self.kind != RelationKind::Sink
    }
}
