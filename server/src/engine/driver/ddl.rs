//! CREATE and DROP in the driver: a new relation's epoch (a view backfilled from its sources'
//! history, a sink's first snapshot, a replayable stream joining its group), and drops with
//! their dependents.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use eddy_catalog::{Relation, RelationKind, Snapshot};
use eddy_dataflow::metrics::{EpochKind, RelationEpoch};
use eddy_dataflow::progress::Progress;
use eddy_dataflow::relations;
use eddy_dataflow::{Dataflow, Delta};
use eddy_sql::sources::{self, Source};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{WriteBatch, keys};

use super::feeds::group_key;
use super::{BACKFILL_CHUNK, Driver, Epoch, declared, stage_view_output};

impl Driver {
    pub(super) fn create(
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
        if let Some(flow) = &dataflow {
            pin_input_widths(&snapshot, &mut relation, flow);
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
        let reload = fed.is_some()
            || relation.kind == RelationKind::Sink
            || (relation.kind == RelationKind::Table && relation.connector.is_some());
        self.catalog.install(Arc::new(relation));
        if reload {
            self.load_connectors()?;
        }
        self.load_triggers()?;
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
        let next = self.epoch + 1;
        stage_view_output(
            &self.store,
            &mut self.next_seq,
            view,
            flow,
            &out,
            next,
            &mut epoch.batch,
        )?;
        Ok(replayed)
    }

    /// Feeds a view's dataflow everything its sources hold, chunk by chunk, its progress in
    /// the live figures. Answers the view's contents (consolidated, in its declared types)
    /// and the progress of the replayable sources it replayed.
    pub(super) fn build(
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
        let mut context = self.epoch_context();
        let mut outputs = vec![flow.apply(&HashMap::new(), &context)?];
        let mut after = context.clone();
        context.replaying = true;
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
        // Now that the whole history is in, state the watermarks make useless can go; and a
        // replay may have moved a stream's watermark past the one the history was read at
        // (a stream nothing read lags): windows it closed close now.
        outputs.push(flow.apply(&HashMap::new(), &after)?);
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

    pub(super) fn drop_relations(
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
        self.load_triggers()?;
        Ok(dropped)
    }
}

/// Records, for each relation a view's dataflow reads with fewer columns than the relation
/// has now (it was planned before an `ADD COLUMN` committed), the columns it reads, so that
/// the view is planned alike at the next start.
pub(super) fn pin_input_widths(snapshot: &Snapshot, view: &mut Relation, flow: &Dataflow) {
    for (source, width) in flow.source_widths() {
        if snapshot
            .by_id(source)
            .is_some_and(|r| r.columns.len() > width)
        {
            view.input_columns.insert(source, width);
        }
    }
}
