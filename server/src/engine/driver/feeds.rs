//! The epoch driver's sources: streams fed by connectors, grouped by the sequence they
//! share and advanced one block per epoch while some view reads them.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use eddy_catalog::{Relation, RelationKind};
use eddy_sql::sources::{self, Source};
use eddy_sql::{SqlError, SqlResult};
use tracing::error;

use eddy_dataflow::metrics::EpochKind;

use super::{Driver, SinkSpec};

/// Replayable streams whose sources have equal keys share one sequence.
pub(super) fn group_key(source: &Source) -> String {
    match source.replayable() {
        Some(generator) => generator.group_key(),
        // Not replayable: a stream of its own (read by a reader task, never grouped).
        None => format!("{source:?}"),
    }
}

/// Streams that read one source together: every epoch advances all of them over the same
/// block of the source (for Nexmark, the same event numbers).
pub(super) struct SourceGroup {
    /// The members and their sources, which differ only in the relation they produce.
    members: Vec<(u64, Source)>,
    /// How far the members have read, as of the last committed epoch.
    pub(super) offset: u64,
    /// Wall-clock pacing (a source's `max_events_per_second`): when and where it started.
    paced_from: Option<(Instant, u64)>,
    /// Set when an epoch of the group failed: it stops until the server restarts.
    failed: Option<String>,
}

impl SourceGroup {
    fn source(&self) -> &Source {
        &self.members[0].1
    }

    /// When its next block is due (`now` when it is not paced; None: never, it ended or
    /// failed).
    pub(super) fn due(&mut self, now: Instant) -> Option<Instant> {
        if self.failed.is_some() {
            return None;
        }
        let block = sources::next_block(self.source(), self.offset)?;
        let Some(rate) = self.source().replayable()?.pace() else {
            return Some(now);
        };
        let (start, from) = *self.paced_from.get_or_insert((now, self.offset));
        let ahead = block.end.saturating_sub(from) as f64 / rate as f64;
        Some(start + Duration::from_secs_f64(ahead))
    }
}

impl Driver {
    /// Groups the streams fed by replayable connectors by the sequence they share, at their
    /// committed offsets, and runs a reader for every stream fed by an external system.
    pub(super) fn load_connectors(&mut self) -> SqlResult<()> {
        let snapshot = self.catalog.snapshot();
        let mut groups: BTreeMap<String, SourceGroup> = BTreeMap::new();
        let mut external = BTreeMap::new();
        for rel in snapshot.of_kind(RelationKind::Stream) {
            let Some(source) = Source::of(rel)? else {
                continue;
            };
            if source.replayable().is_none() {
                external.insert(rel.id, (rel.clone(), source));
                continue;
            }
            let offset = self.progress_of(rel.id)?.source_offset.unwrap_or(0);
            let group = groups.entry(group_key(&source)).or_insert(SourceGroup {
                members: vec![],
                offset,
                paced_from: None,
                failed: None,
            });
            group.offset = group.offset.max(offset);
            group.members.push((rel.id, source));
        }
        // Pacing and failures carry over for groups that stay.
        for (key, group) in groups.iter_mut() {
            if let Some(old) = self.sources.get(key) {
                group.paced_from = old.paced_from;
                group.failed = old.failed.clone();
            }
        }
        self.sources = groups;
        let mut mirrors = BTreeMap::new();
        for rel in snapshot.of_kind(RelationKind::Table) {
            if let Some(source) = sources::mirror_of(rel)? {
                mirrors.insert(rel.id, (rel.clone(), source));
            }
        }
        if let Some(c) = &mut self.connectors {
            c.readers.sync(&external, &mirrors);
        }
        let mut sinks = BTreeMap::new();
        for sink in snapshot.of_kind(RelationKind::Sink) {
            let from = sink
                .depends_on
                .first()
                .and_then(|id| snapshot.by_id(*id))
                .ok_or_else(|| SqlError::Internal(format!("sink {} reads nothing", sink.name)))?;
            sinks.insert(
                sink.id,
                SinkSpec {
                    sink: sink.clone(),
                    from: from.clone(),
                },
            );
        }
        self.sinks = sinks.iter().map(|(id, s)| (*id, s.from.id)).collect();
        if let Some(c) = &mut self.connectors {
            c.sinks.sync(&sinks);
        }
        Ok(())
    }

    /// The relations some materialized view reads.
    fn read_relations(&self) -> HashSet<u64> {
        self.views.values().flat_map(|f| f.sources()).collect()
    }

    /// When the next source block is due, if a source is read by some view and has more.
    pub(super) fn source_due(&mut self) -> Option<Instant> {
        let read = self.read_relations();
        let now = Instant::now();
        let mut due = None;
        for group in self.sources.values_mut() {
            if group.members.iter().any(|(id, _)| read.contains(id)) {
                if let Some(d) = group.due(now) {
                    due = Some(due.map_or(d, |earliest: Instant| earliest.min(d)));
                }
            } else {
                // Pacing starts afresh when a view comes to read the group again.
                group.paced_from = None;
            }
        }
        due
    }

    /// One epoch of every source group that is due: each member gets the group's next block.
    pub(super) fn source_epoch(&mut self) {
        let now = Instant::now();
        let read = self.read_relations();
        let snapshot = self.catalog.snapshot();
        let watched = self.committed.receiver_count() > 0;
        let mut epoch = self.open_epoch(EpochKind::Source);
        let mut advanced = Vec::new();
        let keys: Vec<String> = self.sources.keys().cloned().collect();
        for key in keys {
            let group = self.sources.get_mut(&key).expect("group of a listed key");
            if !group.members.iter().any(|(id, _)| read.contains(id))
                || group.due(now).is_none_or(|due| due > now)
            {
                continue;
            }
            let Some(block) = sources::next_block(group.source(), group.offset) else {
                continue;
            };
            let members = group.members.clone();
            let staged = members.iter().try_for_each(|(id, source)| {
                let rel = snapshot
                    .by_id(*id)
                    .ok_or_else(|| SqlError::UnknownRelation(id.to_string()))?;
                // A member neither a view nor a subscriber reads only moves its offset; its
                // figures catch up by a replay once its rows are needed.
                if read.contains(id) || watched {
                    self.catch_up(rel, source)?;
                    // Unless someone watches the stream's own rows, only the columns its
                    // views read are generated.
                    let read = match watched {
                        true => None,
                        false => self.columns_read(rel),
                    };
                    let rows =
                        sources::generate_columns(rel, source, block.clone(), read.as_deref())?;
                    self.stage_append(&mut epoch, rel, &[rows], false)?;
                    if let Some(p) = self.progress.get_mut(id) {
                        p.applied_offset = block.end;
                    }
                } else {
                    self.progress_of(*id)?;
                    epoch.progressed.insert(*id);
                }
                if let Some(p) = self.progress.get_mut(id) {
                    p.source_offset = Some(block.end);
                }
                Ok::<_, SqlError>(())
            });
            if let Err(e) = staged {
                self.source_failed(&key, e);
                return;
            }
            advanced.push((key, block.end));
        }
        if advanced.is_empty() {
            return;
        }
        match self.commit_epoch(epoch, None) {
            Ok(()) => {
                for (key, offset) in advanced {
                    if let Some(g) = self.sources.get_mut(&key) {
                        g.offset = offset;
                    }
                }
            }
            Err(e) => {
                self.recover();
                // Which group's rows failed is unknown: stop them all rather than skip rows.
                for (key, _) in advanced {
                    self.source_failed(&key, SqlError::Internal(e.to_string()));
                }
            }
        }
    }

    fn source_failed(&mut self, key: &str, e: SqlError) {
        if let Some(g) = self.sources.get_mut(key) {
            error!(error = %e, offset = g.offset, "a source failed and stopped");
            g.failed = Some(e.to_string());
            // Their progress may be half staged: it is read again as committed.
            for (id, _) in &g.members {
                self.progress.remove(id);
            }
        }
    }

    /// Brings a replayable stream's figures (rows, late rows, watermark) up to its offset,
    /// replaying what was not generated while nothing read it.
    /// The columns of a stream that its views read, and its watermark column; `None` when a
    /// view may read any.
    fn columns_read(&self, rel: &Relation) -> Option<Vec<usize>> {
        let mut read: Vec<usize> = rel.watermark.iter().map(|w| w.column).collect();
        for flow in self.views.values() {
            if flow.sources().contains(&rel.id) {
                read.extend(flow.columns_read(rel.id)?);
            }
        }
        read.sort_unstable();
        read.dedup();
        Some(read)
    }

    fn catch_up(&mut self, rel: &Relation, source: &Source) -> SqlResult<()> {
        let mut progress = self.progress_of(rel.id)?;
        let offset = progress.source_offset.unwrap_or(0);
        if progress.applied_offset != offset {
            sources::replay(rel, source, offset, |_| Ok(true))?.record(&mut progress, offset);
            self.progress.insert(rel.id, progress);
        }
        Ok(())
    }
}
