use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::array::{Array, RecordBatch};
use datafusion::common::ScalarValue;
use eddy_catalog::{Catalog, Relation, RelationKind, Snapshot};
use eddy_dataflow::codec::row_values;
use eddy_dataflow::metrics::{EpochKind, EpochRecord, Metrics, RelationEpoch};
use eddy_dataflow::progress::Progress;
use eddy_dataflow::relations;
use eddy_dataflow::{Dataflow, Delta, EpochContext};
use eddy_sql::sources;
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{LoggedInput, Store, WriteBatch, keys};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::Connectors;
use super::sinks::SinkSpec;
use super::tables::{Overlay, stage_table_write};
use super::{Command, Committed, WriteOp, Written};

mod alter;
mod ddl;
mod feeds;
mod inputs;
mod outputs;
mod streams;
mod triggers;

pub use alter::Alter;

use feeds::SourceGroup;
use outputs::{declared, record_view_progress, stage_view_output, store_view_change};
use triggers::{Trigger, TriggerStep, trigger_step};

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
    /// Views with a trigger interval that take their pending changes in it (a trigger
    /// epoch); the others stage theirs.
    ticking: Vec<u64>,
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
            ticking: Vec::new(),
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
    /// The trigger interval of views that name none (zero: every epoch, as soon as input
    /// waits).
    pub trigger: Duration,
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
    /// Materialized views with a trigger interval, and when their pending changes are due.
    triggers: HashMap<u64, Trigger>,
    /// The server's trigger interval, for views that name none (zero: as soon as input waits).
    default_trigger: Duration,
    epoch: u64,
    durable: bool,
    metrics: Arc<Metrics>,
    /// Bytes and writes of the last batch of a write epoch and of a source epoch, bounded:
    /// the next of its kind starts with room for as much rather than growing (and copying)
    /// its buffer step by step.
    batch_room: [(usize, usize); 2],
}

/// Most bytes and writes of room a batch starts with (room reserved, not touched: a batch
/// that stays small costs only address space).
const MOST_BATCH_ROOM: (usize, usize) = (64 << 20, 1 << 20);

/// Which of [`Driver`]'s batch rooms an epoch of a kind keeps, if any.
fn batch_room_of(kind: EpochKind) -> Option<usize> {
    match kind {
        EpochKind::Write => Some(0),
        EpochKind::Source => Some(1),
        _ => None,
    }
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
            triggers: HashMap::new(),
            default_trigger: options.trigger,
            epoch,
            durable: options.durable,
            metrics: options.metrics,
            batch_room: [(0, 0); 2],
        };
        driver.reload()?;
        driver.replay_inputs()?;
        info!(
            epoch = driver.epoch,
            views = driver.views.len(),
            "recovered"
        );
        Ok(driver)
    }

    /// Computes again the write epochs whose input the log kept but whose layer a crash
    /// lost (see [`inputs`]), each under its own number, before anything else runs.
    fn replay_inputs(&mut self) -> SqlResult<()> {
        for (epoch, input) in self.store.logged_inputs() {
            if epoch <= self.epoch {
                continue;
            }
            let writes = inputs::decode(&input, &self.catalog.snapshot())?;
            let mut answers = Vec::with_capacity(writes.len());
            let mut pending = Vec::with_capacity(writes.len());
            for op in writes {
                let (reply, answer) = oneshot::channel();
                pending.push((op, Instant::now(), reply));
                answers.push(answer);
            }
            self.epoch = epoch - 1;
            self.write_epoch(pending);
            for mut answer in answers {
                if let Ok(Err(e)) = answer.try_recv() {
                    warn!(epoch, error = %e, "a logged write failed when its epoch was computed again");
                }
            }
            info!(
                epoch,
                "computed again an epoch whose input outlived its layer"
            );
        }
        Ok(())
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
        self.reload_triggers()?;
        // Groups are rebuilt at their committed offsets; a failed one stays stopped.
        self.load_connectors()
    }

    /// Serves commands until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Waits for a command or the next timed epoch, whichever comes first.
        let timer = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(timer) => timer,
            Err(e) => panic!("the epoch driver cannot make its timer: {e}"),
        };
        let mut pending: Option<Command> = None;
        loop {
            // A view's tick comes before further commands: a steady flow of writes must not
            // hold it back.
            if self.trigger_due().is_some_and(|due| due <= Instant::now()) {
                self.trigger_epoch();
                continue;
            }
            let first = match pending.take() {
                Some(c) => c,
                None => match [self.source_due(), self.trigger_due()]
                    .into_iter()
                    .flatten()
                    .min()
                {
                    None => match rx.blocking_recv() {
                        Some(c) => c,
                        None => break,
                    },
                    Some(due) => {
                        // Timed work waits: commands first, then its epoch when due.
                        let waited = match rx.try_recv() {
                            Ok(c) => Ok(Some(c)),
                            Err(TryRecvError::Disconnected) => Ok(None),
                            Err(TryRecvError::Empty) if due <= Instant::now() => Err(()),
                            Err(TryRecvError::Empty) => timer.block_on(async {
                                tokio::time::timeout_at(due.into(), rx.recv())
                                    .await
                                    .map_err(|_| ())
                            }),
                        };
                        match waited {
                            Ok(Some(c)) => c,
                            Ok(None) => break,
                            Err(()) => {
                                // A tick that came runs at the top of the loop.
                                if self.source_due().is_some_and(|d| d <= Instant::now()) {
                                    self.source_epoch();
                                }
                                continue;
                            }
                        }
                    }
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

    /// A new epoch of a kind, its batch with the room the last of its kind took.
    pub(super) fn open_epoch(&self, kind: EpochKind) -> Epoch {
        let mut epoch = Epoch::new(kind);
        if let Some(room) = batch_room_of(kind) {
            let (bytes, entries) = self.batch_room[room];
            epoch.batch = WriteBatch::with_capacity(bytes, entries);
        }
        epoch
    }

    fn write_epoch(&mut self, writes: Vec<PendingWrite>) {
        let mut epoch = self.open_epoch(EpochKind::Write);
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
        // A durable epoch of rows logs its input and computes the epoch while it syncs.
        let input = match self.durable {
            true => inputs::encode(ops.iter().map(|(op, _)| op)),
            false => Ok(None),
        };
        let committed = input.and_then(|input| self.commit_epoch(epoch, input.as_deref()));
        match committed {
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
            WriteOp::Sync {
                relation,
                upstream_rows,
                ..
            } => {
                let rows = stage_table_write(&self.store, &snapshot, epoch, op)?;
                let mut progress = self.progress_of(*relation)?;
                progress.rows = *upstream_rows;
                progress.synced = Some(chrono::Utc::now().timestamp_micros());
                progress.source_error = None;
                self.progress.insert(*relation, progress);
                epoch.progressed.insert(*relation);
                Ok(Written {
                    rows,
                    ..Written::default()
                })
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
            replaying: false,
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

    /// Runs the views over an epoch's changes and commits everything. With an `input` (see
    /// [`inputs`]) the input is logged first and the epoch commits without a sync of its
    /// own once the input is on disk.
    fn commit_epoch(&mut self, mut epoch: Epoch, input: Option<&[u8]>) -> SqlResult<()> {
        let store = self.store.clone();
        let logged = match input {
            Some(input) => Some(store.log_input(self.epoch + 1, input)?),
            None => None,
        };
        if logged.is_some() {
            // A crash here leaves the input and no layer (the crash suites stop here).
            fail::fail_point!("epoch-input-logged", |_| -> SqlResult<()> {
                std::process::abort()
            });
        }
        let changes = match self.run_epoch(&mut epoch) {
            Ok(changes) => changes,
            Err(e) => {
                if let Some(logged) = logged {
                    logged.cancel()?;
                }
                return Err(e);
            }
        };
        match logged {
            Some(logged) => self.commit_logged(epoch, logged)?,
            None => self.commit(epoch)?,
        }
        self.publish(changes, vec![]);
        Ok(())
    }

    /// Stages an epoch's changes of streams and tables and what the views make of them.
    fn run_epoch(&mut self, epoch: &mut Epoch) -> SqlResult<HashMap<u64, Delta>> {
        let snapshot = self.catalog.snapshot();
        let mut changes: HashMap<u64, Delta> = HashMap::new();
        for (rel, parts) in epoch.changes.drain() {
            let relation = snapshot
                .by_id(rel)
                .ok_or_else(|| SqlError::Internal(format!("relation {rel} vanished")))?;
            let delta = combined(relation.kind, &relation.schema(), &parts)?;
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
        self.run_views(&snapshot, &mut changes, epoch, None)?;
        Ok(changes)
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
            if Some(id) == skip {
                continue;
            }
            // A view with a trigger interval stages its share until its tick.
            let taken = match trigger_step(
                &self.store,
                snapshot,
                self.triggers.get_mut(&id),
                id,
                flow,
                changes,
                epoch.ticking.contains(&id),
                next,
                &mut epoch.batch,
            )? {
                Some(TriggerStep::Wait) => continue,
                Some(TriggerStep::Run(input)) => Some(input),
                None => None,
            };
            let input = taken.as_ref().unwrap_or(changes);
            // Rows of its sources' changes: none, and the view has nothing to do.
            let rows_in: u64 = flow
                .sources()
                .iter()
                .filter_map(|s| input.get(s))
                .map(|d| d.len() as u64)
                .sum();
            if rows_in == 0 {
                continue;
            }
            let view = snapshot
                .by_id(id)
                .ok_or_else(|| SqlError::Internal(format!("view {id} vanished")))?;
            let began = Instant::now();
            let out = flow.apply(input, &context)?;
            // An append-only view's rows are all insertions: nothing to cancel out.
            let out = match view.append_only {
                true => out,
                false => out.consolidate()?,
            };
            let out = declared(view, out)?;
            stage_view_output(
                &self.store,
                &mut self.next_seq,
                view,
                flow,
                &out,
                next,
                &mut epoch.batch,
            )?;
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
            let Some(change) = changes.get(from) else {
                continue;
            };
            // A sink keeps the columns its relation had when it was created.
            let encoded = match snapshot.by_id(sink) {
                Some(s) if s.columns.len() < change.batch.num_columns() => {
                    relations::encode_change(&change.clone().leading(&s.schema())?, false)?
                }
                _ => relations::encode_change(change, false)?,
            };
            epoch.batch.put(keys::outbox(sink, next, 0), encoded);
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
        let store = self.store.clone();
        let durable = self.durable;
        self.commit_with(epoch, |batch| store.commit_and(batch, durable, then))
    }

    /// [`Driver::commit`] of an epoch whose input is logged.
    fn commit_logged(&mut self, epoch: Epoch, logged: LoggedInput<'_>) -> SqlResult<()> {
        self.commit_with(epoch, |batch| logged.commit_and(batch, || {}))
    }

    /// Commits an epoch's writes through `commit` and records its figures.
    fn commit_with(
        &mut self,
        epoch: Epoch,
        commit: impl FnOnce(WriteBatch) -> eddy_storage::StorageResult<()>,
    ) -> SqlResult<()> {
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
        batch.put(keys::meta(EPOCH), self.epoch.to_be_bytes());
        let (entries, bytes) = (batch.len(), batch.bytes());
        if let Some(room) = batch_room_of(kind) {
            self.batch_room[room] = (
                (bytes as usize).min(MOST_BATCH_ROOM.0),
                entries.min(MOST_BATCH_ROOM.1),
            );
        }
        if let Err(e) = commit(batch) {
            self.epoch -= 1;
            return Err(e.into());
        }
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
}

/// A relation's changes over one or more epochs as one change. A stream only inserts: there
/// is nothing to cancel out, and operators take repeated rows as they come; other relations'
/// changes are consolidated, so that a row inserted and deleted again is no change.
pub(super) fn combined(
    kind: RelationKind,
    schema: &arrow::datatypes::SchemaRef,
    parts: &[Delta],
) -> SqlResult<Delta> {
    let delta = Delta::concat(schema, parts)?;
    Ok(match kind {
        RelationKind::Stream => delta,
        _ => delta.consolidate()?,
    })
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
