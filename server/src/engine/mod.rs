//! The epoch driver: the one writer of the store.
//!
//! Sessions send it [`Command`]s over a channel. It takes the first waiting command and every
//! other command already queued behind it, stages their writes as one epoch (stream appends,
//! table changes), runs every dependent view's dataflow over the epoch's changes, and commits
//! catalog, rows, view contents and operator state in one atomic batch. Only then does each
//! writer get its answer: a write that returns is durable and visible in every view.
//!
//! A command that fails alone is answered with its error and leaves no trace. If running the
//! views fails (an expression error such as a division by zero), the in-memory operator state
//! may be half updated: the driver reloads it from the last committed epoch, then retries the
//! epoch's writes one at a time so that only the offending write fails.

mod driver;
mod mirrors;
mod readers;
mod sinks;
mod tables;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use eddy_catalog::{Relation, RelationKind};
use eddy_connectors::SourceBatch;
use eddy_dataflow::Dataflow;
use eddy_dataflow::Delta;
use eddy_sql::{SqlError, SqlResult};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use driver::{Alter, Driver, DriverOptions, ViewPlanner, committed_epoch};
pub use readers::Readers;
pub use sinks::SinkWriters;

/// Epochs a subscriber may fall behind before it is dropped.
pub const SUBSCRIBER_BACKLOG: usize = 1024;

/// What one committed epoch changed: the consolidated change of every stream, table and
/// materialized view it touched. Published to subscribers after the commit.
pub struct Committed {
    pub epoch: u64,
    pub changes: std::collections::HashMap<u64, Delta>,
    /// Relations the epoch dropped (their subscriptions end).
    pub dropped: Vec<u64>,
}

/// A change to a stored relation.
#[derive(Clone)]
pub enum WriteOp {
    /// Rows appended to a stream (already of the stream's schema).
    Append {
        relation: u64,
        rows: Vec<RecordBatch>,
    },
    /// Rows inserted into a table (already of the table's schema).
    Insert {
        relation: u64,
        rows: Vec<RecordBatch>,
        on_conflict: OnConflict,
    },
    /// `UPDATE`: new values of some columns where the predicate holds.
    Update {
        relation: u64,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    },
    /// `DELETE` where the predicate holds.
    Delete {
        relation: u64,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    },
    /// What a stream's source read: rows appended to the stream, each part's position and the
    /// records it could not read, all committed together.
    Ingest {
        relation: u64,
        batch: Arc<SourceBatch>,
    },
    /// A read of the external table a table mirrors, as its difference from the table:
    /// `upserts` replace the rows under their keys, `deletes` (rows as last read) remove
    /// theirs, and with `whole` (a first read) every row whose key is not among `upserts`
    /// goes too. Applying it again changes nothing.
    Sync {
        relation: u64,
        upserts: RecordBatch,
        deletes: RecordBatch,
        whole: bool,
        /// Rows the external table held.
        upstream_rows: u64,
    },
    /// Why a stream's source is not reading, or a sink not delivering (None: it works
    /// again), shown in its progress.
    Status {
        relation: u64,
        error: Option<String>,
    },
}

impl WriteOp {
    /// New rows for a relation: appended to a stream's log, inserted into a table.
    pub fn new_rows(rel: &Relation, rows: Vec<RecordBatch>, on_conflict: OnConflict) -> Self {
        match rel.kind {
            RelationKind::Stream => WriteOp::Append {
                relation: rel.id,
                rows,
            },
            _ => WriteOp::Insert {
                relation: rel.id,
                rows,
                on_conflict,
            },
        }
    }
}

/// What an insert does when a row's primary key is taken.
#[derive(Clone)]
pub enum OnConflict {
    Error,
    DoNothing,
    /// Assignments evaluated over `existing row ++ proposed row` (`EXCLUDED`), where the
    /// optional predicate holds.
    DoUpdate {
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    },
}

/// What a committed write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows affected (inserted, appended, updated or deleted).
    pub rows: u64,
    /// Rows of a stream dropped because they arrived behind its watermark.
    pub late: u64,
    /// Records a source could not read.
    pub dead: u64,
}

impl Written {
    /// The NOTICE a client gets when some of its rows were late.
    pub fn late_notice(&self, stream: &str) -> Option<String> {
        (self.late > 0).then(|| {
            format!(
                "{} row(s) arrived behind the watermark of stream \"{stream}\" and were not applied; \
                 see eddy_catalog.late_rows",
                self.late
            )
        })
    }
}

/// The driver's tasks outside its thread: readers of external sources, writers of sinks.
pub struct Connectors {
    pub readers: Readers,
    pub sinks: SinkWriters,
}

impl Connectors {
    /// Connector tasks that run on `runtime` and reach the driver through `engine`.
    pub fn new(
        runtime: tokio::runtime::Handle,
        engine: Engine,
        store: Arc<eddy_storage::Store>,
    ) -> Self {
        Self {
            readers: Readers::new(runtime.clone(), engine.clone(), store.clone()),
            sinks: SinkWriters::new(runtime, engine, store),
        }
    }
}

/// A request to the driver.
pub enum Command {
    Write {
        op: WriteOp,
        /// When it reached the server (the epoch's lag counts from its oldest write).
        arrived: std::time::Instant,
        reply: oneshot::Sender<SqlResult<Written>>,
    },
    /// Creates a relation; a materialized view comes with its dataflow and is backfilled
    /// from everything its sources hold. Answers whether it was created (false: it existed
    /// and `if_not_exists` was given).
    Create {
        relation: Box<Relation>,
        dataflow: Option<Dataflow>,
        if_not_exists: bool,
        reply: oneshot::Sender<SqlResult<bool>>,
    },
    /// Drops relations by name; answers the names dropped.
    Drop {
        kind: RelationKind,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
        reply: oneshot::Sender<SqlResult<Vec<String>>>,
    },
    /// Changes definitions (a rename, a view's new version, a new column); answers the
    /// NOTICE to give when IF [NOT] EXISTS made it a no-op.
    Alter {
        change: Alter,
        reply: oneshot::Sender<SqlResult<Option<String>>>,
    },
    /// Answers once every earlier command has committed.
    Flush { reply: oneshot::Sender<()> },
    /// Stops the driver after every earlier command; later ones fail as shutting down.
    Shutdown,
}

/// A session's handle on the driver.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Command>,
    committed: broadcast::Sender<Arc<Committed>>,
}

impl Engine {
    pub fn new(tx: mpsc::Sender<Command>, committed: broadcast::Sender<Arc<Committed>>) -> Self {
        Self { tx, committed }
    }

    /// The changes of every epoch committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.committed.subscribe()
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> SqlResult<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SqlError::ShuttingDown)?;
        rx.await.map_err(|_| SqlError::ShuttingDown)
    }

    /// Applies a write; returns what it did once it has committed.
    pub async fn write(&self, op: WriteOp) -> SqlResult<Written> {
        let arrived = std::time::Instant::now();
        self.call(|reply| Command::Write { op, arrived, reply })
            .await?
    }

    pub async fn create(
        &self,
        relation: Relation,
        dataflow: Option<Dataflow>,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        self.call(|reply| Command::Create {
            relation: Box::new(relation),
            dataflow,
            if_not_exists,
            reply,
        })
        .await?
    }

    pub async fn drop_relations(
        &self,
        kind: RelationKind,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    ) -> SqlResult<Vec<String>> {
        self.call(|reply| Command::Drop {
            kind,
            names,
            if_exists,
            cascade,
            reply,
        })
        .await?
    }

    pub async fn alter(&self, change: Alter) -> SqlResult<Option<String>> {
        self.call(|reply| Command::Alter { change, reply }).await?
    }

    /// Stops the driver once everything sent before has committed, even while sessions
    /// (idle clients, subscriptions) still hold the engine.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }

    /// Whether the epoch driver still takes commands.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    pub async fn flush(&self) -> SqlResult<()> {
        self.call(|reply| Command::Flush { reply }).await
    }
}
