//! What a catalog query's plan reads its catalog and session from, late.
//!
//! The catalog tables and the functions that look objects up are bound to one [`Binding`]
//! per session: the tables build their rows when the plan runs, from the snapshot and client
//! bound then, and the functions read them per call. A plan made once can therefore run again
//! under a later snapshot, or for another client with the same settings, once it is rebound
//! ([`super::plans`]): nothing of the catalog is folded into it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DataFusionError;
use datafusion::datasource::MemTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use eddy_catalog::Snapshot;
use parking_lot::Mutex;

use super::ClientSession;
use crate::{SqlError, SqlResult};

/// The catalog snapshot and the client a session's catalog tables and functions answer for.
pub struct Binding {
    bound: Mutex<Bound>,
    /// Whether every catalog table of the session builds its rows from the binding.
    complete: AtomicBool,
}

struct Bound {
    snapshot: Arc<Snapshot>,
    client: Arc<ClientSession>,
    /// Counts the rebindings: rows built under an earlier one are not used.
    generation: u64,
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound = self.bound.lock();
        f.debug_struct("Binding")
            .field("pid", &bound.client.pid)
            .field("generation", &bound.generation)
            .finish()
    }
}

impl Binding {
    pub fn new(snapshot: Arc<Snapshot>, client: Arc<ClientSession>) -> Arc<Self> {
        Arc::new(Self {
            bound: Mutex::new(Bound {
                snapshot,
                client,
                generation: 0,
            }),
            complete: AtomicBool::new(true),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.bound.lock().snapshot.clone()
    }

    pub fn client(&self) -> Arc<ClientSession> {
        self.bound.lock().client.clone()
    }

    /// Answers for `snapshot` and `client` from now on.
    pub fn rebind(&self, snapshot: Arc<Snapshot>, client: Arc<ClientSession>) {
        let mut bound = self.bound.lock();
        bound.snapshot = snapshot;
        bound.client = client;
        bound.generation += 1;
    }

    /// Whether a plan made in the session answers for any later binding: every catalog
    /// table it could read builds its rows from the binding.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Relaxed)
    }

    /// What the binding holds now, with its generation.
    fn current(&self) -> (Arc<Snapshot>, Arc<ClientSession>, u64) {
        let bound = self.bound.lock();
        (
            bound.snapshot.clone(),
            bound.client.clone(),
            bound.generation,
        )
    }
}

/// Builds a catalog table's contents for a snapshot and a client.
pub type Build = dyn Fn(&Arc<Snapshot>, &Arc<ClientSession>) -> SqlResult<Option<Arc<dyn TableProvider>>>
    + Send
    + Sync;

/// The catalog table `build` makes for what the binding holds now (`None` if there is no
/// such table), as one whose rows are built again when a plan reading it runs, for what the
/// binding holds then. The rows built now serve the first run.
pub fn bound_table(
    binding: &Arc<Binding>,
    build: Arc<Build>,
) -> SqlResult<Option<Arc<dyn TableProvider>>> {
    let (snapshot, client, generation) = binding.current();
    let Some(built) = build(&snapshot, &client)? else {
        return Ok(None);
    };
    let Some(rows) = rows_of(built.as_ref()) else {
        // Not rows in memory: what it reads is not known to follow the binding.
        binding.complete.store(false, Ordering::Relaxed);
        return Ok(Some(built));
    };
    let schema = built.schema();
    let partition = BoundRows {
        schema: schema.clone(),
        binding: binding.clone(),
        build,
        first: Mutex::new(Some((generation, rows))),
    };
    Ok(Some(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?)))
}

/// The rows of an in-memory table.
fn rows_of(table: &dyn TableProvider) -> Option<Vec<RecordBatch>> {
    let memory = table.downcast_ref::<MemTable>()?;
    let mut rows = Vec::new();
    for partition in &memory.batches {
        rows.extend(partition.try_read().ok()?.iter().cloned());
    }
    Some(rows)
}

struct BoundRows {
    schema: SchemaRef,
    binding: Arc<Binding>,
    build: Arc<Build>,
    /// The rows built with the table, for the first run under the same binding.
    first: Mutex<Option<(u64, Vec<RecordBatch>)>>,
}

impl fmt::Debug for BoundRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundRows")
            .field("binding", &self.binding)
            .finish()
    }
}

impl BoundRows {
    fn rows(&self) -> SqlResult<Vec<RecordBatch>> {
        let (snapshot, client, generation) = self.binding.current();
        if let Some((built_at, rows)) = self.first.lock().take()
            && built_at == generation
        {
            return Ok(rows);
        }
        let table = (self.build)(&snapshot, &client)?
            .ok_or_else(|| SqlError::Internal("a catalog table is gone from the catalog".into()))?;
        let rows = rows_of(table.as_ref()).ok_or_else(|| {
            SqlError::Internal("a catalog table is no longer held in memory".into())
        })?;
        if rows.iter().any(|b| b.schema() != self.schema) {
            return Err(SqlError::Internal(
                "a catalog table changed its columns".into(),
            ));
        }
        Ok(rows)
    }
}

impl PartitionStream for BoundRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows: Vec<Result<RecordBatch, DataFusionError>> = match self.rows() {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(DataFusionError::External(Box::new(e)))],
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(rows),
        ))
    }
}
