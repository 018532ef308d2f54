//! Interval joins free their state behind the watermarks.
//!
//! An inner join of two streams whose condition bounds the distance between their event
//! times (`b.ts BETWEEN a.ts AND a.ts + INTERVAL '1 hour'`: `lower <= l.ts - r.ts <= upper`,
//! or equal windows of both) can forget a row once no row still to come can match it. Rows
//! still to come are at or after their stream's watermark (later ones are dropped as late),
//! so a left row is done once `l.ts - lower < wm(right)` and a right row once
//! `r.ts + upper < wm(left)`. Dropping a row from the state changes nothing the join has
//! emitted; a stream never retracts it.
//!
//! An input that does retract rows qualifies too when its changes follow the event time of
//! the rows that caused them: an aggregate grouped by a window changes a group only when a
//! row of that window arrives, so every change it makes to come, retraction or not, is at or
//! after `watermark + floor` in its window column (Nexmark q5 joins two counts per window on
//! the window). Such a side's rows are freed only once its own changes to come can no longer
//! reach them either: a row freed and then retracted would leave the join's output wrong.
//!
//! Joins other than inner (semi, anti, outer) are bounded only by an equi-join key of two
//! equal times (Nexmark q5's join on the window becomes a semi join once only one side's
//! columns are selected). There a key is freed whole, both sides at once, when neither
//! side's changes to come can be at its time: its output is final then.

use std::collections::{BTreeMap, VecDeque};

use super::{Join, Key, Row, Side};
use crate::operator::EpochContext;

/// How far apart the times of matching rows can be, and which streams' watermarks decide
/// that rows can no longer match.
///
/// The time columns follow their streams' event time `ts` from below: a column's value is
/// never less than `ts + floor` (`floor` is 0 for the event time itself, minus the window
/// size for a window's start). Rows still to come have `ts` at or after their watermark, so
/// their column is at or after `watermark + floor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeBound {
    /// The time column of the left input, the stream whose watermark it follows, and its
    /// floor (microseconds, at most 0).
    pub left_column: usize,
    pub left_stream: u64,
    pub left_floor: i64,
    pub right_column: usize,
    pub right_stream: u64,
    pub right_floor: i64,
    /// Bounds of `l - r` over the two columns, in microseconds (None: unbounded that way).
    pub lower: Option<i64>,
    pub upper: Option<i64>,
    /// Whether the left (right) input retracts rows, and so frees them only behind its own
    /// watermark as well.
    pub left_retracts: bool,
    pub right_retracts: bool,
    /// Free whole keys, both sides' rows at once: the columns are a pair of the equi-join's
    /// keys, equal, so the rows under a key share one time, and a key goes once no change to
    /// come on either side can be at that time. What joins other than inner need: a key's
    /// output (a semi join's matches, an outer join's padded rows) depends on all of its rows,
    /// so none may go while another could still change.
    pub whole_keys: bool,
}

impl TimeBound {
    /// The rows of each side that no change to come can involve: left rows before the first
    /// time, right rows before the second. That is, rows no future row of the other side can
    /// match and, on a side that retracts, that no retraction of its own can reach; with
    /// whole keys, one time for both sides.
    fn horizons(&self, epoch: &EpochContext) -> (Option<i64>, Option<i64>) {
        if self.whole_keys {
            // No change to come on either side is before both sides' own horizons.
            let dead = epoch
                .watermark(self.left_stream)
                .zip(epoch.watermark(self.right_stream))
                .map(|(l, r)| {
                    l.saturating_add(self.left_floor)
                        .min(r.saturating_add(self.right_floor))
                });
            return (dead, dead);
        }
        // A left row needs a right row at or before `l - lower`; those to come are at or
        // after `wm(right) + right_floor`.
        let left = self
            .lower
            .zip(epoch.watermark(self.right_stream))
            .map(|(lower, wm)| wm.saturating_add(self.right_floor).saturating_add(lower));
        // A right row needs a left row at or before `r + upper`.
        let right = self
            .upper
            .zip(epoch.watermark(self.left_stream))
            .map(|(upper, wm)| wm.saturating_add(self.left_floor).saturating_sub(upper));
        // A side's own changes to come are at or after its watermark plus its floor.
        let own = |retracts: bool, stream: u64, floor: i64| match retracts {
            true => epoch.watermark(stream).map(|wm| wm.saturating_add(floor)),
            false => Some(i64::MAX),
        };
        let behind = |horizon: Option<i64>, own: Option<i64>| Some(horizon?.min(own?));
        (
            behind(
                left,
                own(self.left_retracts, self.left_stream, self.left_floor),
            ),
            behind(
                right,
                own(self.right_retracts, self.right_stream, self.right_floor),
            ),
        )
    }

    /// Whether both sides' state is bounded.
    pub fn bounds_both(&self) -> bool {
        self.lower.is_some() && self.upper.is_some()
    }
}

/// A side's rows by event time, for freeing them in time order. Rows mostly come in time
/// order (a stream's disorder is bounded by its watermark): those are appended to a queue,
/// and only a row earlier than the latest queued goes into a tree.
#[derive(Default)]
pub(super) struct TimeIndex {
    ordered: VecDeque<(i64, Key, Row)>,
    disordered: BTreeMap<i64, Vec<(Key, Row)>>,
}

impl TimeIndex {
    pub(super) fn push(&mut self, time: i64, key: Key, row: Row) {
        match self.ordered.back() {
            Some((latest, _, _)) if *latest > time => {
                self.disordered.entry(time).or_default().push((key, row))
            }
            _ => self.ordered.push_back((time, key, row)),
        }
    }

    /// Takes out the rows before `horizon`.
    fn take_before(&mut self, horizon: i64) -> Vec<(Key, Row)> {
        let ahead = self.ordered.partition_point(|(t, _, _)| *t < horizon);
        let mut gone: Vec<(Key, Row)> = self
            .ordered
            .drain(..ahead)
            .map(|(_, key, row)| (key, row))
            .collect();
        let kept = self.disordered.split_off(&horizon);
        gone.extend(
            std::mem::replace(&mut self.disordered, kept)
                .into_values()
                .flatten(),
        );
        gone
    }
}

impl Side {
    /// Forgets every row whose time is before `horizon`; returns how many were forgotten.
    fn forget_before(&mut self, horizon: i64) -> usize {
        let mut forgotten = 0;
        for (key, row) in self.times.take_before(horizon) {
            let Some(bucket) = self.index.get_mut(&key) else {
                continue;
            };
            if bucket.remove(&row).is_some() {
                forgotten += 1;
                if bucket.is_empty() {
                    self.index.remove(&key);
                }
                self.freed(&key, row);
            }
        }
        if let Some(journal) = &mut self.journal {
            // Never back: a watermark does not go back.
            journal.horizon = journal.horizon.max(Some(horizon));
        }
        forgotten
    }
}

impl Join {
    /// Bounds the join's state by its inputs' event times (inputs whose changes follow
    /// them; joins other than inner by whole keys only: see the module documentation).
    pub fn with_time_bound(mut self, bound: TimeBound) -> Self {
        self.left.time_column = Some(bound.left_column);
        self.right.time_column = Some(bound.right_column);
        // A side that never retracts loses rows only here: it is stored by segment.
        self.left.journal = (!bound.left_retracts).then(Default::default);
        self.right.journal = (!bound.right_retracts).then(Default::default);
        self.time_bound = Some(bound);
        self
    }

    /// Frees the rows no future row can match, after an epoch's changes are applied.
    pub(super) fn expire(&mut self, epoch: &EpochContext) {
        let Some(bound) = self.time_bound.filter(|_| !epoch.replaying) else {
            return;
        };
        let (left, right) = bound.horizons(epoch);
        if let Some(h) = left {
            self.left.forget_before(h);
        }
        if let Some(h) = right {
            self.right.forget_before(h);
        }
    }
}
