use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow::array::{Array, RecordBatch};
use datafusion::common::ScalarValue;
use eddy_catalog::{Catalog, Relation, RelationKind, Snapshot};
use eddy_dataflow::codec::{encode_row, row_values};
use eddy_dataflow::metrics::{EpochKind, EpochRecord, Metrics, RelationEpoch};
use eddy_dataflow::progress::Progress;
use eddy_dataflow::relations::{self, decode_count};
use eddy_dataflow::{Dataflow, Delta, EpochContext};
use eddy_sql::sources::{self, Source};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{Store, WriteBatch, keys};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::Connectors;
use super::sinks::SinkSpec;
use super::tables::{Overlay, stage_table_write};
use super::{Command, Committed, WriteOp, Written};

mod alter;
mod feeds;
mod streams;

pub use alter::Alter;

use feeds::{SOURCE_POLL, SourceGroup, group_key};

/// A write waiting for its epoch: what, when it reached the server, and whom to answer.
type PendingWrite = (WriteOp, Instant, oneshot::Sender<SqlResult<Written>>);

/// Rebuilds a materialized view's dataflow from its definition (at start-up, and to roll
/// back in-memory state after a failed epoch).
pub trait ViewPlanner: Send {
    fn plan(&self, view: &Relation, catalog: &Arc<Snapshot>) -> SqlResult<Dataflow>;
}

/// Rows per chunk when a new view reads the history of its sources.
const BACKFILL_CHUNK: usize = 65_536;
/// Most write commands folded into one epoch.
const MAX_WRITES_PER_EPOCH: usize = 4096;
const EPOCH: &str = "epoch";

/// The state of one epoch being staged.
pub(super) struct Epoch {
    pub batch: WriteBatch,
    /// The change of each stream and table, in staging order.
    pub changes: HashMap<u64, Vec<Delta>>,
    /// Table rows staged in this epoch but not yet committed (key -> row or deleted).
    pub overlay: Overlay,
    /// Streams whose progress (watermark, counts) this epoch changed.
    pub progressed: HashSet<u64>,
    /// What it is for, for `eddy_catalog.epochs`.
    kind: EpochKind,
    started: (Instant, SystemTime),
    /// When the oldest of its rows reached the server.
    arrived: Option<Instant>,
    /// Write commands folded into it.
    writes: usize,
    /// What each relation did in it.
    work: HashMap<u64, RelationEpoch>,
}

impl Epoch {
    pub(super) fn new(kind: EpochKind) -> Self {
        Self {
            batch: WriteBatch::default(),
            changes: HashMap::new(),
            overlay: Overlay::default(),
            progressed: HashSet::new(),
            kind,
            started: (Instant::now(), SystemTime::now()),
            arrived: None,
            writes: 0,
            work: HashMap::new(),
        }
    }
}

/// How the driver runs: durability and what it keeps.
pub struct DriverOptions {
    /// Flush each epoch to disk before acknowledging it.
    pub durable: bool,
    /// How many of its most recent late rows each stream keeps.
    pub late_rows_kept: u64,
    /// Where the live figures go.
    pub metrics: Arc<Metrics>,
}

/// The single writer: owns every view's dataflow and the epoch counter.
pub struct Driver {
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    planner: Box<dyn ViewPlanner>,
    views: BTreeMap<u64, Dataflow>,
    /// Next sequence number of each stream's log (loaded lazily).
    next_seq: HashMap<u64, u64>,
    /// Progress of each stream (loaded lazily): watermark and counts.
    progress: HashMap<u64, Progress>,
    /// How many of its most recent late rows each stream keeps.
    late_rows_kept: u64,
    /// Where committed changes go to subscribers.
    committed: broadcast::Sender<Arc<Committed>>,
    /// Streams fed by replayable connectors, grouped by the event sequence they share.
    sources: BTreeMap<String, SourceGroup>,
    /// Each sink and the relation it reads.
    sinks: BTreeMap<u64, u64>,
    /// The tasks that feed streams from external systems and deliver sinks (None: neither
    /// runs).
    connectors: Option<Connectors>,
    epoch: u64,
    durable: bool,
    metrics: Arc<Metrics>,
}

/// The last committed epoch (0 before the first).
pub fn committed_epoch(store: &Store) -> SqlResult<u64> {
    match store.get(&keys::meta(EPOCH))? {
        Some(v) => Ok(u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| SqlError::Internal("corrupt epoch".into()))?,
        )),
        None => Ok(0),
    }
}

impl Driver {
    /// Loads every view's dataflow and state from the store.
    pub fn open(
        store: Arc<Store>,
        catalog: Arc<Catalog>,
        planner: Box<dyn ViewPlanner>,
        options: DriverOptions,
        committed: broadcast::Sender<Arc<Committed>>,
        connectors: Option<Connectors>,
    ) -> SqlResult<Self> {
        let epoch = committed_epoch(&store)?;
        let mut driver = Self {
            store,
            catalog,
            planner,
            views: BTreeMap::new(),
            next_seq: HashMap::new(),
            progress: HashMap::new(),
            late_rows_kept: options.late_rows_kept,
            committed,
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            connectors,
            epoch,
            durable: options.durable,
            metrics: options.metrics,
        };
        driver.reload()?;
        info!(epoch, views = driver.views.len(), "recovered");
        Ok(driver)
    }

    /// Rebuilds all in-memory state from the last committed epoch.
    fn reload(&mut self) -> SqlResult<()> {
        let snapshot = self.catalog.snapshot();
        self.views.clear();
        self.next_seq.clear();
        self.progress.clear();
        for view in snapshot.of_kind(RelationKind::MaterializedView) {
            let mut flow = self.planner.plan(view, &snapshot)?;
            flow.restore(view.id, &self.store)?;
            self.views.insert(view.id, flow);
        }
        // Groups are rebuilt at their committed offsets; a failed one stays stopped.
        self.load_connectors()
    }

    /// Serves commands until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut pending: Option<Command> = None;
        loop {
            let first = match pending.take() {
                Some(c) => c,
                None => match self.source_due() {
                    None => match rx.blocking_recv() {
                        Some(c) => c,
                        None => break,
                    },
                    // Sources have work: commands first, then a source epoch when due.
                    Some(due) => match rx.try_recv() {
                        Ok(c) => c,
                        Err(TryRecvError::Disconnected) => break,
                        Err(TryRecvError::Empty) => {
                            let now = Instant::now();
                            if due > now {
                                std::thread::sleep((due - now).min(SOURCE_POLL));
                            } else {
                                self.source_epoch();
                            }
                            continue;
                        }
                    },
                },
            };
            match first {
                Command::Write { op, arrived, reply } => {
                    let mut writes = vec![(op, arrived, reply)];
                    while writes.len() < MAX_WRITES_PER_EPOCH {
                        match rx.try_recv() {
                            Ok(Command::Write { op, arrived, reply }) => {
                                writes.push((op, arrived, reply))
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_epoch(writes);
                }
                Command::Create {
                    relation,
                    dataflow,
                    if_not_exists,
                    reply,
                } => {
                    let r = self.create(*relation, dataflow, if_not_exists);
                    if r.is_err() {
                        self.recover();
                    }
                    let _ = reply.send(r);
                }
                Command::Drop {
                    kind,
                    names,
                    if_exists,
                    cascade,
                    reply,
                } => {
                    let r = self.drop_relations(kind, &names, if_exists, cascade);
                    let _ = reply.send(r);
                }
                Command::Alter { change, reply } => {
                    let r = self.alter(change);
                    if r.is_err() {
                        self.recover();
                    }
                    let _ = reply.send(r);
                }
                Command::Flush { reply } => {
                    let _ = reply.send(());
                }
                Command::Shutdown => break,
            }
        }
        info!("epoch driver stopped");
    }

    fn recover(&mut self) {
        if let Err(e) = self.reload() {
            // Without consistent state no further epoch may commit.
            panic!("cannot reload state after a failed epoch: {e}");
        }
    }

    fn write_epoch(&mut self, writes: Vec<PendingWrite>) {
        let mut epoch = Epoch::new(EpochKind::Write);
        let mut staged = Vec::with_capacity(writes.len());
        let mut ops = Vec::with_capacity(writes.len());
        for (op, arrived, reply) in writes {
            match self.stage_write(&mut epoch, &op) {
                Ok(n) => {
                    staged.push((reply, n));
                    ops.push((op, arrived));
                    epoch.writes += 1;
                    epoch.arrived = Some(epoch.arrived.map_or(arrived, |a| a.min(arrived)));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        if staged.is_empty() {
            return;
        }
        match self.commit_epoch(epoch) {
            Ok(()) => {
                for (reply, n) in staged {
                    let _ = reply.send(Ok(n));
                }
            }
            Err(e) => {
                self.recover();
                if staged.len() == 1 {
                    let (reply, _) = staged.pop().expect("one write");
                    let _ = reply.send(Err(e));
                    return;
                }
                debug!(error = %e, writes = staged.len(), "epoch failed; retrying writes one by one");
                for ((op, arrived), (reply, _)) in ops.into_iter().zip(staged) {
                    self.write_epoch(vec![(op, arrived, reply)]);
                }
            }
        }
    }

    /// Stages one write; on error nothing of it is staged.
    fn stage_write(&mut self, epoch: &mut Epoch, op: &WriteOp) -> SqlResult<Written> {
        let snapshot = self.catalog.snapshot();
        let stream = |relation: &u64| {
            snapshot
                .by_id(*relation)
                .filter(|r| r.kind == RelationKind::Stream)
                .ok_or_else(|| SqlError::UnknownRelation(relation.to_string()))
        };
        match op {
            WriteOp::Append { relation, rows } => {
                let rel = stream(relation)?;
                sources::check_writable(rel)?;
                self.stage_append(epoch, rel, rows, true)
            }
            WriteOp::Ingest { relation, batch } => {
                self.stage_ingest(epoch, stream(relation)?, batch)
            }
            WriteOp::Status { relation, error } => {
                let rel = snapshot
                    .by_id(*relation)
                    .ok_or_else(|| SqlError::UnknownRelation(relation.to_string()))?;
                let mut progress = self.progress_of(rel.id)?;
                progress.source_error = error.clone();
                self.progress.insert(rel.id, progress);
                epoch.progressed.insert(rel.id);
                Ok(Written::default())
            }
            other => Ok(Written {
                rows: stage_table_write(&self.store, &snapshot, epoch, other)?,
                ..Written::default()
            }),
        }
    }

    fn progress_of(&mut self, rel: u64) -> SqlResult<Progress> {
        if let Some(p) = self.progress.get(&rel) {
            return Ok(p.clone());
        }
        let p = Progress::load(&self.store, rel)?.unwrap_or_default();
        self.progress.insert(rel, p.clone());
        Ok(p)
    }

    /// The watermarks views see: those of every stream this driver has loaded.
    fn epoch_context(&self) -> EpochContext {
        EpochContext {
            watermarks: self
                .progress
                .iter()
                .filter_map(|(id, p)| p.watermark.map(|w| (*id, w)))
                .collect(),
        }
    }

    fn next_seq(&mut self, rel: u64) -> SqlResult<u64> {
        if let Some(s) = self.next_seq.get(&rel) {
            return Ok(*s);
        }
        let next = relations::next_log_seq(&self.store, rel)?;
        self.next_seq.insert(rel, next);
        Ok(next)
    }

    /// Runs the views over an epoch's changes and commits everything.
    fn commit_epoch(&mut self, mut epoch: Epoch) -> SqlResult<()> {
        let snapshot = self.catalog.snapshot();
        let mut changes: HashMap<u64, Delta> = HashMap::new();
        for (rel, parts) in epoch.changes.drain() {
            let relation = snapshot
                .by_id(rel)
                .ok_or_else(|| SqlError::Internal(format!("relation {rel} vanished")))?;
            let delta = Delta::concat(&relation.schema(), &parts)?;
            // A stream only inserts: there is nothing to cancel out, and operators take
            // repeated rows as they come.
            let delta = if relation.kind == RelationKind::Stream {
                delta
            } else {
                delta.consolidate()?
            };
            if !delta.is_empty() {
                let rows = delta.len() as u64;
                epoch.work.insert(
                    rel,
                    RelationEpoch {
                        rows_in: rows,
                        rows_out: rows,
                        busy: epoch.started.0.elapsed(),
                    },
                );
                changes.insert(rel, delta);
            }
        }
        for rel in epoch.progressed.drain() {
            if let Some(p) = self.progress.get(&rel) {
                epoch.batch.put(keys::progress(rel), p.encode());
            }
        }
        self.run_views(&snapshot, &mut changes, &mut epoch, None)?;
        self.commit(epoch)?;
        self.publish(changes, vec![]);
        Ok(())
    }

    /// Runs every view (but `skip`) whose sources changed over the changes, in order (a
    /// view's own sources before it), adding each view's change to `changes`; stages what
    /// they store and the sinks' outbox entries.
    fn run_views(
        &mut self,
        snapshot: &Snapshot,
        changes: &mut HashMap<u64, Delta>,
        epoch: &mut Epoch,
        skip: Option<u64>,
    ) -> SqlResult<()> {
        let context = self.epoch_context();
        let next = self.epoch + 1;
        for (&id, flow) in self.views.iter_mut() {
            if Some(id) == skip || !flow.sources().iter().any(|s| changes.contains_key(s)) {
                continue;
            }
            let view = snapshot
                .by_id(id)
                .ok_or_else(|| SqlError::Internal(format!("view {id} vanished")))?;
            let began = Instant::now();
            let rows_in = flow
                .sources()
                .iter()
                .filter_map(|s| changes.get(s))
                .map(|d| d.len() as u64)
                .sum();
            let out = flow.apply(changes, &context)?;
            // An append-only view's rows are all insertions: nothing to cancel out.
            let out = match view.append_only {
                true => out,
                false => out.consolidate()?,
            };
            let out = declared(view, out)?;
            store_view_change(
                &self.store,
                &mut self.next_seq,
                view,
                &out,
                &mut epoch.batch,
            )?;
            flow.checkpoint(id, &mut epoch.batch)?;
            record_view_progress(flow, id, next, &mut epoch.batch);
            epoch.work.insert(
                id,
                RelationEpoch {
                    rows_in,
                    rows_out: out.len() as u64,
                    busy: began.elapsed(),
                },
            );
            if !out.is_empty() {
                changes.insert(id, out);
            }
        }
        for (&sink, from) in &self.sinks {
            if let Some(change) = changes.get(from) {
                epoch.batch.put(
                    keys::outbox(sink, next, 0),
                    relations::encode_change(change, false)?,
                );
            }
        }
        Ok(())
    }

    /// Tells subscribers, if any, what the epoch just committed changed or dropped.
    fn publish(&self, changes: HashMap<u64, Delta>, dropped: Vec<u64>) {
        if self.committed.receiver_count() > 0 {
            // Nobody listening is not an error: subscribers come and go.
            let _ = self.committed.send(Arc::new(Committed {
                epoch: self.epoch,
                changes,
                dropped,
            }));
        }
    }

    /// Commits an epoch's writes and records its figures.
    fn commit(&mut self, epoch: Epoch) -> SqlResult<()> {
        self.commit_and(epoch, || {})
    }

    /// [`Driver::commit`], running `then` (a catalog change made visible) before any reader
    /// can see the epoch.
    fn commit_and(&mut self, epoch: Epoch, then: impl FnOnce()) -> SqlResult<()> {
        let Epoch {
            mut batch,
            kind,
            started,
            arrived,
            writes,
            work,
            ..
        } = epoch;
        self.epoch += 1;
        batch.put(keys::meta(EPOCH), self.epoch.to_be_bytes().to_vec());
        let (entries, bytes) = (batch.len(), batch.bytes());
        self.store.commit_and(batch, self.durable, then)?;
        debug!(epoch = self.epoch, entries, bytes, "epoch committed");
        if let Some(c) = &self.connectors {
            c.sinks.committed(self.epoch);
        }
        let snapshot = self.catalog.snapshot();
        let rows = work
            .iter()
            .filter(|(id, _)| {
                snapshot
                    .by_id(**id)
                    .is_some_and(|r| r.kind != RelationKind::MaterializedView)
            })
            .map(|(_, w)| w.rows_in)
            .sum();
        let record = EpochRecord {
            id: self.epoch,
            kind,
            started: started.1,
            duration: started.0.elapsed(),
            rows,
            bytes,
            writes,
        };
        self.metrics.record_epoch(record, arrived, &work);
        Ok(())
    }

    fn create(
        &mut self,
        mut relation: Relation,
        dataflow: Option<Dataflow>,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        let snapshot = self.catalog.snapshot();
        if snapshot.get(&relation.name).is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(SqlError::DuplicateRelation(relation.name));
        }
        for dep in &relation.depends_on {
            if snapshot.by_id(*dep).is_none() {
                return Err(SqlError::UnknownRelation(format!("relation {dep}")));
            }
        }
        let mut epoch = Epoch::new(EpochKind::Create);
        relation.id = self.catalog.allocate_id(&mut epoch.batch);
        let id = relation.id;
        self.catalog.stage_put(&relation, &mut epoch.batch);
        let fed = Source::of(&relation)?;
        if let Some(mut flow) = dataflow {
            for source in flow.sources() {
                self.progress_of(source)?;
            }
            // The backfill shows in the progress table until its epoch is on disk.
            let done = self
                .backfill(&snapshot, &relation, &mut flow, &mut epoch)
                .and_then(|replayed| self.commit(epoch).map(|()| replayed));
            self.metrics.backfill_finished(&relation.name);
            self.progress.extend(done?);
            self.views.insert(id, flow);
        } else if relation.kind == RelationKind::Sink {
            self.snapshot_for_sink(&snapshot, &relation, &mut epoch.batch)?;
            self.commit(epoch)?;
        } else if let Some(source) = fed.as_ref().filter(|s| s.replayable().is_some()) {
            // A stream joining a group starts where the group is, its history replayed.
            let offset = self.sources.get(&group_key(source)).map_or(0, |g| g.offset);
            // Its figures catch up by a replay once its rows are needed.
            let progress = Progress {
                epoch: self.epoch + 1,
                source_offset: Some(offset),
                ..Progress::default()
            };
            epoch.batch.put(keys::progress(id), progress.encode());
            self.commit(epoch)?;
            self.progress.insert(id, progress);
        } else {
            self.commit(epoch)?;
        }
        let reload = fed.is_some() || relation.kind == RelationKind::Sink;
        self.catalog.install(Arc::new(relation));
        if reload {
            self.load_connectors()?;
        }
        Ok(true)
    }

    /// A new sink's first outbox entries: everything the relation it reads holds now (the
    /// first chunk replaces what its target held).
    fn snapshot_for_sink(
        &mut self,
        snapshot: &Snapshot,
        sink: &Relation,
        batch: &mut WriteBatch,
    ) -> SqlResult<()> {
        let from = sink
            .depends_on
            .first()
            .and_then(|id| snapshot.by_id(*id))
            .ok_or_else(|| SqlError::Internal(format!("sink {} reads nothing", sink.name)))?;
        let next = self.epoch + 1;
        let mut chunk = 0u64;
        sources::read_history(&self.store, from, BACKFILL_CHUNK, |rows| {
            let change = relations::encode_change(&Delta::inserts(rows), chunk == 0)?;
            batch.put(keys::outbox(sink.id, next, chunk), change);
            chunk += 1;
            Ok(true)
        })?;
        if chunk == 0 {
            let empty = Delta::inserts(RecordBatch::new_empty(from.schema()));
            batch.put(
                keys::outbox(sink.id, next, 0),
                relations::encode_change(&empty, true)?,
            );
        }
        Ok(())
    }

    /// Feeds a new view everything its sources hold and stages what it then stores. Answers
    /// the progress of the replayable sources it replayed, up to date (to install once
    /// committed).
    fn backfill(
        &mut self,
        snapshot: &Snapshot,
        view: &Relation,
        flow: &mut Dataflow,
        epoch: &mut Epoch,
    ) -> SqlResult<Vec<(u64, Progress)>> {
        let (out, replayed) = self.build(snapshot, view, flow, epoch)?;
        store_view_change(
            &self.store,
            &mut self.next_seq,
            view,
            &out,
            &mut epoch.batch,
        )?;
        flow.checkpoint(view.id, &mut epoch.batch)?;
        record_view_progress(flow, view.id, self.epoch + 1, &mut epoch.batch);
        Ok(replayed)
    }

    /// Feeds a view's dataflow everything its sources hold, chunk by chunk, its progress in
    /// the live figures. Answers the view's contents (consolidated, in its declared types)
    /// and the progress of the replayable sources it replayed.
    fn build(
        &mut self,
        snapshot: &Snapshot,
        view: &Relation,
        flow: &mut Dataflow,
        epoch: &mut Epoch,
    ) -> SqlResult<(Delta, Vec<(u64, Progress)>)> {
        let began = Instant::now();
        let mut sources = Vec::new();
        for source in flow.sources() {
            let rel = snapshot
                .by_id(source)
                .ok_or_else(|| SqlError::UnknownRelation(source.to_string()))?
                .clone();
            sources.push(rel);
        }
        let mut total = Some(0);
        for rel in &sources {
            let len = sources::history_len(&self.store, rel)?;
            total = total.zip(len).map(|(t, n)| t + n);
        }
        let metrics = self.metrics.clone();
        metrics.backfill_started(&view.name, total);
        let mut read = 0u64;
        let mut replayed = Vec::new();
        // The history is read at the sources' current watermarks: whatever they closed is
        // final.
        let context = self.epoch_context();
        let mut outputs = vec![flow.apply(&HashMap::new(), &context)?];
        let mut after = context.clone();
        for rel in sources {
            let source = rel.id;
            let history = sources::read_history(&self.store, &rel, BACKFILL_CHUNK, |chunk| {
                let rows = chunk.num_rows() as u64;
                let changes = HashMap::from([(source, Delta::inserts(chunk))]);
                outputs.push(flow.apply(&changes, &context)?);
                read += rows;
                metrics.backfill_advanced(&view.name, rows);
                Ok(true)
            })?;
            // A replayed stream's figures are now those of its whole history.
            if let Some(figures) = history {
                let mut progress = self.progress.get(&source).cloned().unwrap_or_default();
                let offset = progress.source_offset.unwrap_or(0);
                figures.record(&mut progress, offset);
                if let Some(w) = progress.watermark {
                    after.watermarks.insert(source, w);
                }
                epoch.batch.put(keys::progress(source), progress.encode());
                replayed.push((source, progress));
            }
        }
        if !replayed.is_empty() {
            // A replay may have moved a stream's watermark past the one the history was read
            // at (a stream nothing read lags): windows it closed close now.
            outputs.push(flow.apply(&HashMap::new(), &after)?);
        }
        let out = declared(
            view,
            Delta::concat(&flow.schema(), &outputs)?.consolidate()?,
        )?;
        epoch.work.insert(
            view.id,
            RelationEpoch {
                rows_in: read,
                rows_out: out.len() as u64,
                busy: began.elapsed(),
            },
        );
        Ok((out, replayed))
    }

    fn drop_relations(
        &mut self,
        kind: RelationKind,
        names: &[String],
        if_exists: bool,
        cascade: bool,
    ) -> SqlResult<Vec<String>> {
        let snapshot = self.catalog.snapshot();
        let mut doomed: BTreeMap<u64, Arc<Relation>> = BTreeMap::new();
        for name in names {
            let Some(rel) = snapshot.get(name) else {
                if if_exists {
                    continue;
                }
                return Err(SqlError::UnknownRelation(name.clone()));
            };
            if rel.kind != kind {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not a {}",
                    kind
                )));
            }
            let order = snapshot.drop_order(rel.id);
            let dependents: Vec<String> = order
                .iter()
                .filter(|r| r.id != rel.id && !names.contains(&r.name))
                .map(|r| r.name.clone())
                .collect();
            if !cascade && !dependents.is_empty() {
                return Err(SqlError::DependentObjects {
                    kind: rel.kind.to_string(),
                    name: name.clone(),
                    dependents,
                });
            }
            doomed.extend(order.into_iter().map(|r| (r.id, r)));
        }
        if doomed.is_empty() {
            return Ok(vec![]);
        }
        let mut epoch = Epoch::new(EpochKind::Drop);
        for rel in doomed.values() {
            self.catalog.stage_delete(rel.id, &mut epoch.batch);
            relations::stage_drop(&self.store, rel.id, &mut epoch.batch)?;
            Dataflow::stage_drop(rel.id, &self.store, &mut epoch.batch)?;
        }
        self.commit(epoch)?;
        self.metrics.forget(doomed.keys().copied());
        self.publish(HashMap::new(), doomed.keys().copied().collect());
        let mut dropped = Vec::new();
        for rel in doomed.values().rev() {
            self.catalog.forget(rel.id);
            self.views.remove(&rel.id);
            self.next_seq.remove(&rel.id);
            self.progress.remove(&rel.id);
            dropped.push(rel.name.clone());
        }
        self.load_connectors()?;
        Ok(dropped)
    }
}

/// Records a view's state size with the epoch that changed it.
fn record_view_progress(flow: &Dataflow, view: u64, epoch: u64, batch: &mut WriteBatch) {
    let progress = Progress {
        epoch,
        state_rows: flow.state_rows() as u64,
        state_bytes: flow.state_bytes(),
        ..Progress::default()
    };
    batch.put(keys::progress(view), progress.encode());
}

/// A view's change in the view's declared column types, as it is stored (so that a lookup by
/// value encodes keys the same way), read by the views over it and sent to subscribers.
fn declared(view: &Relation, delta: Delta) -> SqlResult<Delta> {
    let schema = view.schema();
    if delta.batch.schema().fields() == schema.fields() {
        return Ok(delta);
    }
    let columns = delta
        .batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                Ok(arrow::compute::cast(c, f.data_type())?)
            }
        })
        .collect::<SqlResult<Vec<_>>>()?;
    let batch = RecordBatch::try_new(schema, columns)?;
    Ok(Delta::new(batch, delta.weights))
}

/// Stores a view's (consolidated, [`declared`]) change: appended to its log if it is
/// append-only, applied to its multiset of rows otherwise.
fn store_view_change(
    store: &Store,
    next_seq: &mut HashMap<u64, u64>,
    view: &Relation,
    delta: &Delta,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    if !view.append_only {
        return materialize(store, view, delta, batch);
    }
    if delta.is_empty() {
        return Ok(());
    }
    let rows = match delta.weights.iter().all(|w| *w == 1) {
        true => delta.batch.clone(),
        false => {
            // A row n times is n entries of the log; a retraction cannot be stored.
            let mut take = Vec::with_capacity(delta.len());
            for (i, w) in delta.weights.iter().enumerate() {
                if *w < 0 {
                    return Err(SqlError::Internal(format!(
                        "append-only view {} would lose a row",
                        view.name
                    )));
                }
                take.extend(std::iter::repeat_n(i as u32, *w as usize));
            }
            let take = arrow::array::UInt32Array::from(take);
            arrow::compute::take_record_batch(&delta.batch, &take)?
        }
    };
    let first = match next_seq.get(&view.id) {
        Some(s) => *s,
        None => relations::next_log_seq(store, view.id)?,
    };
    for (seq, block) in relations::encode_log_blocks(std::slice::from_ref(&rows), first)? {
        batch.put(keys::row(view.id, &seq.to_be_bytes()), block);
    }
    next_seq.insert(view.id, first + rows.num_rows() as u64);
    Ok(())
}

/// Applies a view's (consolidated, [`declared`]) change to its stored multiset of rows.
fn materialize(
    store: &Store,
    view: &Relation,
    delta: &Delta,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    let columns = delta.batch.columns();
    let view = view.id;
    for i in 0..delta.len() {
        let row = encode_row(&row_values(columns, i)?)?;
        let key = keys::row(view, &row);
        let old = match store.get(&key)? {
            Some(v) => decode_count(&v)?,
            None => 0,
        };
        let new = old + delta.weights[i];
        match new {
            0 => batch.delete(key),
            n if n > 0 => batch.put(key, n.to_le_bytes().to_vec()),
            _ => {
                warn!(view, "view row would have a negative count");
                return Err(SqlError::Internal(format!(
                    "view {view} would hold a row {} times",
                    new
                )));
            }
        }
    }
    Ok(())
}

/// Rejects NULLs in NOT NULL columns.
pub(super) fn check_not_null(rel: &Relation, batch: &RecordBatch) -> SqlResult<()> {
    for (c, col) in rel.columns.iter().enumerate() {
        if !col.nullable && batch.column(c).null_count() > 0 {
            return Err(SqlError::NotNullViolation(col.name.clone()));
        }
    }
    Ok(())
}

/// The values of a row, for callers that work row by row.
pub(super) fn values(batch: &RecordBatch, i: usize) -> SqlResult<Vec<ScalarValue>> {
    Ok(row_values(batch.columns(), i)?)
}
