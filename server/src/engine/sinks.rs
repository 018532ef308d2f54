//! Sink writers: the tasks that deliver each sink's changes to its external system.
//!
//! The epoch driver writes a sink's changes into the sink's outbox in the store, in the same
//! batch as the epoch that made them (`outbox/<sink>/<epoch>/<chunk>`; a new sink's first
//! entries are its relation's contents). A writer delivers the outbox in order, each entry in
//! one transaction of the target that also records the entry's position there, and then
//! removes it. After a crash, the writer reads the recorded position back and skips what the
//! target already has: every change arrives exactly once. A slow or unreachable target only
//! lets the outbox grow on disk; the pipeline does not wait for it.
//!
//! A target that fails is retried with a growing pause; the reason is the sink's
//! `eddy_catalog.progress.source_error` until it delivers again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use eddy_catalog::Relation;
use eddy_connectors::{OutputMode, SinkChange};
use eddy_dataflow::Delta;
use eddy_dataflow::relations::decode_change;
use eddy_sql::SqlError;
use eddy_sql::sinks::SinkTarget;
use eddy_storage::{Store, WriteBatch, keys};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Engine, WriteOp};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// A sink and the relation it reads.
#[derive(Clone)]
pub struct SinkSpec {
    pub sink: Arc<Relation>,
    pub from: Arc<Relation>,
}

/// The running writers, by sink.
pub struct SinkWriters {
    runtime: Handle,
    engine: Engine,
    store: Arc<Store>,
    /// The last committed epoch: writers wake up when it moves.
    committed: watch::Sender<u64>,
    running: HashMap<u64, JoinHandle<()>>,
}

impl SinkWriters {
    pub fn new(runtime: Handle, engine: Engine, store: Arc<Store>) -> Self {
        Self {
            runtime,
            engine,
            store,
            committed: watch::channel(0).0,
            running: HashMap::new(),
        }
    }

    /// Runs a writer for every sink given, and stops those of sinks no longer given.
    pub fn sync(&mut self, sinks: &BTreeMap<u64, SinkSpec>) {
        self.running.retain(|id, task| {
            let keep = sinks.contains_key(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, spec) in sinks {
            if self.running.contains_key(id) {
                continue;
            }
            let task = self.runtime.spawn(write_sink(
                spec.clone(),
                self.engine.clone(),
                self.store.clone(),
                self.committed.subscribe(),
            ));
            self.running.insert(*id, task);
        }
    }

    /// Tells the writers that an epoch committed (their outboxes may have grown).
    pub fn committed(&self, epoch: u64) {
        self.committed.send_replace(epoch);
    }
}

impl Drop for SinkWriters {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// Delivers a sink's outbox for as long as the sink exists.
async fn write_sink(
    spec: SinkSpec,
    engine: Engine,
    store: Arc<Store>,
    mut committed: watch::Receiver<u64>,
) {
    let mut status: Option<String> = None;
    let mut pause = FIRST_RETRY;
    loop {
        let failure = match deliver(&spec, &store, &mut committed, &engine, &mut status).await {
            Ok(()) => return,
            Err(e) => e,
        };
        warn!(sink = %spec.sink.name, error = %failure, retry_in = ?pause, "cannot deliver the sink's changes");
        if status.as_ref() != Some(&failure) {
            let op = WriteOp::Status {
                relation: spec.sink.id,
                error: Some(failure.clone()),
            };
            if engine.write(op).await.is_err() {
                return;
            }
            status = Some(failure);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_RETRY);
    }
}

/// Connects and delivers the outbox as it grows; returns only on failure (or when the
/// server stops).
async fn deliver(
    spec: &SinkSpec,
    store: &Store,
    committed: &mut watch::Receiver<u64>,
    engine: &Engine,
    status: &mut Option<String>,
) -> Result<(), String> {
    let target = SinkTarget::of(&spec.sink).map_err(|e| e.to_string())?;
    // Unique across Eddy instances writing to one target, and across a sink dropped and
    // created again under its name.
    let instance = store.instance_id().map_err(|e| e.to_string())?;
    let sink_id = format!("{}/{instance}/{}", spec.sink.name, spec.sink.id);
    let mut sink = target
        .open(&spec.sink.columns, &spec.sink.primary_key, &sink_id)
        .await
        .map_err(|e| e.to_string())?;
    let mut delivered = sink.delivered().await.map_err(|e| e.to_string())?;
    info!(sink = %spec.sink.name, ?delivered, "delivering");
    // The sink's columns: those its relation had when the sink was created.
    let schema = spec.sink.schema();
    loop {
        // Whatever commits from here on wakes the next round.
        committed.borrow_and_update();
        let mut pending = Vec::new();
        for entry in store.scan_prefix(&keys::outbox_prefix(spec.sink.id)) {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            let position = keys::outbox_position(&key)
                .ok_or_else(|| format!("corrupt outbox key of sink {}", spec.sink.name))?;
            if target.mode() == OutputMode::Complete {
                // The whole result is delivered once for however many changes wait.
                pending.push((key, position));
                continue;
            }
            if delivered.is_none_or(|d| position > d) {
                let (delta, replace) = decode_change(&value, &schema).map_err(|e| e.to_string())?;
                let change = SinkChange {
                    rows: delta.batch,
                    weights: delta.weights.to_vec(),
                };
                let replace = replace && target.mode() != OutputMode::Append;
                sink.deliver(position, &change, replace)
                    .await
                    .map_err(|e| e.to_string())?;
                delivered = Some(position);
            }
            forget(store, &key)?;
        }
        if let Some((_, last)) = pending.last()
            && delivered.is_none_or(|d| *last > d)
        {
            let change = whole(store, &spec.from, &schema)?;
            sink.deliver(*last, &change, true)
                .await
                .map_err(|e| e.to_string())?;
            delivered = Some(*last);
        }
        for (key, _) in pending {
            forget(store, &key)?;
        }
        if status.is_some() {
            let op = WriteOp::Status {
                relation: spec.sink.id,
                error: None,
            };
            match engine.write(op).await {
                Ok(_) => *status = None,
                Err(SqlError::ShuttingDown) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
        if committed.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// Removes a delivered entry from a sink's outbox.
fn forget(store: &Store, key: &[u8]) -> Result<(), String> {
    let mut batch = WriteBatch::default();
    batch.delete(key);
    store.commit(batch, false).map_err(|e| e.to_string())
}

/// A relation's whole contents as of the last committed epoch, as one change of inserts of
/// the sink's columns.
fn whole(store: &Store, rel: &Relation, schema: &SchemaRef) -> Result<SinkChange, String> {
    let mut batches = Vec::new();
    {
        // One epoch: a scan must not see half of a commit.
        let _one_epoch = store.read();
        eddy_sql::sources::read_history(store, rel, 65_536, |b| {
            batches.push(b);
            Ok(true)
        })
        .map_err(|e| e.to_string())?;
    }
    let rows =
        arrow::compute::concat_batches(&rel.schema(), &batches).map_err(|e| e.to_string())?;
    let rows = Delta::inserts(rows)
        .leading(schema)
        .map_err(|e| e.to_string())?
        .batch;
    Ok(SinkChange {
        weights: vec![1; rows.num_rows()],
        rows,
    })
}
