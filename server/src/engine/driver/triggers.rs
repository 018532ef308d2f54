//! Views with a trigger interval (`WITH (trigger = '5 seconds')`, or the server's `trigger`
//! setting). Epochs go on as usual: writes commit, streams append, other views follow. Such
//! a view's share of each epoch (its sources' changes, as wide as it reads them) is staged
//! under `pending/<view>/<epoch>/<source>` in that epoch's batch instead of being applied. At
//! the view's next tick (a wall-clock multiple of its interval) a trigger epoch takes
//! everything pending, runs the view once over it, deletes what it took and commits, so what
//! the view shows, its state and its downstream views move in one step per interval, and a
//! restart finds the pending changes where the epochs that made them left them.
//!
//! Writes never wait for a tick, so a view's error cannot be charged to the write that caused
//! it: a trigger epoch that fails is retried view by view, and a view that fails alone stops
//! (its progress row says why) until it is replaced or the server restarts.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_catalog::{RelationKind, Snapshot};
use eddy_dataflow::metrics::EpochKind;
use eddy_dataflow::progress::Progress;
use eddy_dataflow::relations::{decode_change, encode_change};
use eddy_dataflow::{Dataflow, Delta};
use eddy_sql::{SqlError, SqlResult, triggers};
use eddy_storage::{Store, WriteBatch, keys};
use tracing::warn;

use super::{Driver, Epoch, combined};

/// A view's trigger: its interval, and when the changes waiting for it are taken.
#[derive(Clone, Debug)]
pub(super) struct Trigger {
    every: Duration,
    /// The tick (microseconds since the Unix epoch) that takes the pending changes; None
    /// while nothing is pending.
    due: Option<u64>,
    /// Why the view stopped, when a trigger epoch failed on it alone.
    failed: Option<String>,
}

impl Trigger {
    fn is_due(&self, now: u64) -> bool {
        self.failed.is_none() && self.due.is_some_and(|d| d <= now)
    }
}

/// Microseconds since the Unix epoch.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Driver {
    /// The trigger interval of each materialized view that has one: its own, or the
    /// server's. A view that had one keeps its next tick (and its failure).
    pub(super) fn load_triggers(&mut self) -> SqlResult<()> {
        let snapshot = self.catalog.snapshot();
        let now = now_micros();
        let mut next = HashMap::new();
        for view in snapshot.of_kind(RelationKind::MaterializedView) {
            let every = match view.trigger_micros {
                Some(micros) => Duration::from_micros(micros),
                None => self.default_trigger,
            };
            if every.is_zero() {
                continue;
            }
            let trigger = match self.triggers.remove(&view.id) {
                Some(t) if t.every == every => t,
                _ => {
                    let pending = self
                        .store
                        .scan_prefix(&keys::pending_prefix(view.id))
                        .next()
                        .transpose()?
                        .is_some();
                    Trigger {
                        every,
                        due: pending.then(|| triggers::next_tick(now, every)),
                        failed: None,
                    }
                }
            };
            next.insert(view.id, trigger);
        }
        self.triggers = next;
        Ok(())
    }

    /// When the earliest view's pending changes are due.
    pub(super) fn trigger_due(&self) -> Option<Instant> {
        let due = self
            .triggers
            .values()
            .filter(|t| t.failed.is_none())
            .filter_map(|t| t.due)
            .min()?;
        let wait = Duration::from_micros(due.saturating_sub(now_micros()));
        Some(Instant::now() + wait)
    }

    /// Runs every view whose tick has come over what is pending for it, in one epoch; when
    /// that fails, each of them in an epoch of its own, stopping those that fail alone.
    pub(super) fn trigger_epoch(&mut self) {
        let now = now_micros();
        let due: Vec<u64> = self
            .triggers
            .iter()
            .filter(|(_, t)| t.is_due(now))
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() || self.tick(&due).is_ok() {
            return;
        }
        self.recover();
        for view in due {
            if let Err(e) = self.tick(&[view]) {
                self.recover();
                self.stop_trigger(view, e);
            }
        }
    }

    fn tick(&mut self, views: &[u64]) -> SqlResult<()> {
        let mut epoch = Epoch::new(EpochKind::Trigger);
        epoch.ticking = views.to_vec();
        self.commit_epoch(epoch, None)
    }

    /// Stops a view whose pending changes it cannot apply, and says why in its progress.
    fn stop_trigger(&mut self, view: u64, error: SqlError) {
        let name = self
            .catalog
            .snapshot()
            .by_id(view)
            .map_or_else(|| view.to_string(), |v| v.name.clone());
        let message = format!(
            "stopped: the changes since its last trigger fail ({error}); replace the view \
             (CREATE OR REPLACE MATERIALIZED VIEW) to go on"
        );
        warn!(view = %name, %error, "a view with a trigger interval stopped");
        let mut epoch = Epoch::new(EpochKind::Trigger);
        let recorded = Progress::load(&self.store, view).map(|p| {
            let mut progress = p.unwrap_or_default();
            progress.source_error = Some(message.clone());
            epoch.batch.put(keys::progress(view), progress.encode());
        });
        if let Err(e) = recorded
            .map_err(SqlError::from)
            .and_then(|_| self.commit(epoch))
        {
            warn!(view = %name, error = %e, "cannot record why a view stopped");
        }
        if let Some(trigger) = self.triggers.get_mut(&view) {
            trigger.failed = Some(message);
        }
    }

    /// Forgets a view's trigger state (it was replaced: its next version starts afresh).
    pub(super) fn reset_trigger(&mut self, view: u64) {
        self.triggers.remove(&view);
    }

    /// [`Driver::load_triggers`] after the in-memory state was rolled back to the last
    /// committed epoch: when each view's pending changes are due is read from the store again;
    /// stopped views stay stopped.
    pub(super) fn reload_triggers(&mut self) -> SqlResult<()> {
        let stopped: HashMap<u64, String> = self
            .triggers
            .drain()
            .filter_map(|(id, t)| t.failed.map(|f| (id, f)))
            .collect();
        self.load_triggers()?;
        for (id, failed) in stopped {
            if let Some(t) = self.triggers.get_mut(&id) {
                t.failed = Some(failed);
            }
        }
        Ok(())
    }
}

/// What a view with a trigger interval does in an epoch: run now (its tick came) over the
/// changes returned, or wait (its share staged for its next tick, or it stopped).
pub(super) enum TriggerStep {
    /// Staged for later (or stopped): the view does not run in this epoch.
    Wait,
    /// Its tick: everything pending plus this epoch's changes.
    Run(HashMap<u64, Delta>),
}

/// Decides a view's step in an epoch (None: it has no trigger) and stages or takes its
/// pending changes accordingly.
#[allow(clippy::too_many_arguments)]
pub(super) fn trigger_step(
    store: &Store,
    snapshot: &Snapshot,
    trigger: Option<&mut Trigger>,
    view: u64,
    flow: &Dataflow,
    changes: &HashMap<u64, Delta>,
    ticking: bool,
    next_epoch: u64,
    batch: &mut WriteBatch,
) -> SqlResult<Option<TriggerStep>> {
    let Some(trigger) = trigger else {
        return Ok(None);
    };
    if trigger.failed.is_some() {
        return Ok(Some(TriggerStep::Wait));
    }
    let schemas = flow.source_schemas();
    if !ticking {
        let mut staged = 0;
        for (source, schema) in &schemas {
            if let Some(change) = changes.get(source).filter(|c| !c.is_empty()) {
                let part = change.clone().leading(schema)?;
                batch.put(
                    keys::pending(view, next_epoch, *source),
                    encode_change(&part, false)?,
                );
                staged += part.len() as u64;
            }
        }
        if staged > 0 {
            let due = *trigger
                .due
                .get_or_insert_with(|| triggers::next_tick(now_micros(), trigger.every));
            // What waits, and until when, in the view's progress row.
            let mut progress = Progress::load(store, view)?.unwrap_or_default();
            progress.pending_rows += staged;
            progress.next_trigger = i64::try_from(due).ok();
            batch.put(keys::progress(view), progress.encode());
        }
        return Ok(Some(TriggerStep::Wait));
    }
    let mut parts: HashMap<u64, Vec<Delta>> = HashMap::new();
    for entry in store.scan_prefix(&keys::pending_prefix(view)) {
        let (key, value) = entry?;
        let source = keys::pending_source(&key)
            .ok_or_else(|| SqlError::Internal("corrupt pending key".into()))?;
        let schema = schemas.get(&source).ok_or_else(|| {
            SqlError::Internal(format!("view {view} holds a change of relation {source}"))
        })?;
        parts
            .entry(source)
            .or_default()
            .push(decode_change(&value, schema)?.0);
        batch.delete(key);
    }
    for (source, schema) in &schemas {
        if let Some(change) = changes.get(source).filter(|c| !c.is_empty()) {
            parts
                .entry(*source)
                .or_default()
                .push(change.clone().leading(schema)?);
        }
    }
    let mut input = HashMap::with_capacity(parts.len());
    for (source, parts) in parts {
        let kind = snapshot
            .by_id(source)
            .map_or(RelationKind::Table, |r| r.kind);
        let delta = combined(kind, &schemas[&source], &parts)?;
        if !delta.is_empty() {
            input.insert(source, delta);
        }
    }
    trigger.due = None;
    Ok(Some(TriggerStep::Run(input)))
}
