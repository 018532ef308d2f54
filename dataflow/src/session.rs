//! Session windows: rows of one partition whose event times lie less than a gap apart form one
//! session, from its first event (`window_start`) to its last event plus the gap
//! (`window_end`).
//!
//! [`SessionWindow`] tags every input row with the bounds of the session it belongs to; an
//! aggregate grouped by the bounds then computes per session. A change can move bounds: a row
//! that extends a session moves its end, a row that bridges two sessions merges them, and a
//! deleted row can split one. So the operator keeps the rows of open sessions, and for each
//! partition an epoch touches it retracts the rows of the sessions near the change under their
//! old bounds and inserts them under their new bounds. The work per change is proportional to
//! the sessions it touches, not to the partition.
//!
//! A session whose end is at or below its stream's watermark can no longer change: a row that
//! could still join it would be behind the watermark, and late rows are dropped at the stream.
//! Its rows are then forgotten, which keeps state bounded on an endless stream.
//!
//! When the query reads nothing of the rows but the partition columns and the bounds
//! (`SELECT bidder, count(*) ... GROUP BY bidder, window_start, window_end`), every row of a
//! session would come out the same: the operator then yields one row per session, weighted
//! by its rows ([`SessionWindow::per_session`]), and a session that moves moves as two rows
//! however many it holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;

use crate::codec::{BatchBuilder, Decoder, Part, RowEncoder, decode_row, encode_row};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::window::micros;
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

/// The rows of one partition at one event time: encoded row -> multiplicity.
type RowsAt = FastMap<Vec<u8>, i64>;

/// One partition's rows by event time.
#[derive(Default)]
struct Partition {
    rows: BTreeMap<i64, RowsAt>,
}

/// A session: its first and last event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    first: i64,
    last: i64,
}

impl Partition {
    /// The earliest event time chained to `t` through event times less than `gap` apart,
    /// going back from `t` (which need not be held).
    fn chain_start(&self, t: i64, gap: i64) -> i64 {
        let mut start = t;
        for &earlier in self.rows.range(..t).rev().map(|(k, _)| k) {
            if start - earlier >= gap {
                break;
            }
            start = earlier;
        }
        start
    }

    /// The latest event time chained to `t`, going forward.
    fn chain_end(&self, t: i64, gap: i64) -> i64 {
        let mut end = t;
        for &later in self.rows.range(t.saturating_add(1)..).map(|(k, _)| k) {
            if later - end >= gap {
                break;
            }
            end = later;
        }
        end
    }

    /// The sessions of the rows between `lo` and `hi`, inclusive.
    fn sessions(&self, lo: i64, hi: i64, gap: i64) -> Vec<Session> {
        let mut out: Vec<Session> = Vec::new();
        for &t in self.rows.range(lo..=hi).map(|(k, _)| k) {
            match out.last_mut() {
                Some(s) if t - s.last < gap => s.last = t,
                _ => out.push(Session { first: t, last: t }),
            }
        }
        out
    }
}

/// Tags rows with their session's bounds; see the module documentation.
pub struct SessionWindow {
    /// Input columns that partition sessions (the GROUP BY keys besides the bounds).
    partition: Vec<usize>,
    /// The input column of the event time.
    time: usize,
    /// Microseconds; rows less than this apart share a session.
    gap: i64,
    /// The stream whose watermark closes sessions, when there is one.
    closed_by: Option<u64>,
    /// The input's columns (the partition columns alone, per session), then `window_start`
    /// and `window_end`.
    schema: SchemaRef,
    /// The input's column count.
    width: usize,
    /// Yields one row per session: its partition columns and bounds.
    per_session: bool,
    partitions: FastMap<Vec<u8>, Partition>,
    /// Rows whose multiplicity changed since the last checkpoint: (partition, time, row).
    dirty: FastSet<(Vec<u8>, i64, Vec<u8>)>,
    /// The watermark up to which sessions have been freed.
    freed_to: Option<i64>,
}

impl SessionWindow {
    /// `input` is the schema of the rows to tag; the output adds `window_start` and
    /// `window_end`, of the event time's type.
    pub fn new(
        input: &SchemaRef,
        partition: Vec<usize>,
        time: usize,
        gap: i64,
        closed_by: Option<u64>,
    ) -> DataflowResult<Self> {
        if gap <= 0 {
            return Err(DataflowError::Internal(
                "a session gap must be positive".into(),
            ));
        }
        let time_type = input.field(time).data_type().clone();
        if !matches!(time_type, DataType::Timestamp(TimeUnit::Microsecond, _)) {
            return Err(DataflowError::Internal(format!(
                "a session window over a time of type {time_type}"
            )));
        }
        Ok(Self {
            partition,
            time,
            gap,
            closed_by,
            schema: Self::output_schema(input, time),
            width: input.fields().len(),
            per_session: false,
            partitions: FastMap::default(),
            dirty: FastSet::default(),
            freed_to: None,
        })
    }

    /// The rows it yields: the input's columns, then `window_start` and `window_end` of the
    /// event time's type.
    pub fn output_schema(input: &SchemaRef, time: usize) -> SchemaRef {
        let time_type = input.field(time).data_type();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", time_type.clone(), true));
        fields.push(Field::new("window_end", time_type.clone(), true));
        Arc::new(Schema::new(fields))
    }

    /// Yields one row per session, its partition columns and bounds, weighted by the rows it
    /// holds: for queries that read nothing else of the rows.
    pub fn per_session(mut self, input: &SchemaRef) -> Self {
        let mut fields: Vec<Field> = self
            .partition
            .iter()
            .map(|&c| input.field(c).clone())
            .collect();
        fields.extend(
            self.schema.fields()[self.width..]
                .iter()
                .map(|f| f.as_ref().clone()),
        );
        self.schema = Arc::new(Schema::new(fields));
        self.per_session = true;
        self
    }

    fn partition_key(&self, row: &[ScalarValue]) -> DataflowResult<Vec<u8>> {
        let key: Vec<ScalarValue> = self.partition.iter().map(|c| row[*c].clone()).collect();
        encode_row(&key)
    }

    /// A bound as a value of the event time's type.
    fn bound(&self, at: i64) -> ScalarValue {
        let zone = match self
            .schema
            .field(self.schema.fields().len() - 1)
            .data_type()
        {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        ScalarValue::TimestampMicrosecond(Some(at), zone)
    }

    /// Appends the rows of `sessions` in `partition` (under `key`), tagged with their bounds,
    /// with multiplicities times `sign`.
    fn emit(
        &self,
        key: &[u8],
        partition: &Partition,
        sessions: &[Session],
        sign: i64,
        out: &mut (BatchBuilder, Vec<i64>),
    ) -> DataflowResult<()> {
        let width = self.width;
        for s in sessions {
            let bounds = encode_row(&[
                self.bound(s.first),
                self.bound(s.last.saturating_add(self.gap)),
            ])?;
            let rows = partition.rows.range(s.first..=s.last).map(|(_, r)| r);
            if self.per_session {
                let n: i64 = rows.flat_map(|r| r.values()).sum();
                out.0
                    .push(&[Part::Row(key, self.partition.len()), Part::Row(&bounds, 2)])?;
                out.1.push(sign * n);
                continue;
            }
            for rows in rows {
                for (row, n) in rows {
                    out.0
                        .push(&[Part::Row(row, width), Part::Row(&bounds, 2)])?;
                    out.1.push(sign * n);
                }
            }
        }
        Ok(())
    }

    /// Forgets the sessions of a partition that the watermark closed.
    fn free_closed(&mut self, key: &[u8], watermark: i64) {
        let gap = self.gap;
        let Some(partition) = self.partitions.get_mut(key) else {
            return;
        };
        // Sessions are in event-time order and each one ends at its last event plus the gap,
        // so the closed ones come first: find where the first open one starts.
        let mut current: Option<Session> = None;
        for &t in partition.rows.keys() {
            match current {
                Some(ref mut s) if t - s.last < gap => s.last = t,
                Some(s) if s.last.saturating_add(gap) > watermark => break,
                _ => current = Some(Session { first: t, last: t }),
            }
        }
        let open = current.filter(|s| s.last.saturating_add(gap) > watermark);
        let kept = match open.map(|s| s.first) {
            Some(first) => partition.rows.split_off(&first),
            None => BTreeMap::new(),
        };
        for (t, rows) in std::mem::replace(&mut partition.rows, kept) {
            self.dirty
                .extend(rows.into_keys().map(|row| (key.to_vec(), t, row)));
        }
        if partition.rows.is_empty() {
            self.partitions.remove(key);
        }
    }
}

impl Operator for SessionWindow {
    fn explain(&self) -> Explain {
        let operator = format!(
            "SessionWindow: gap {} µs, partitioned by {:?}, time column {}{}",
            self.gap,
            self.partition,
            self.time,
            match self.per_session {
                true => ", one row per session",
                false => "",
            }
        );
        let state = match self.closed_by {
            Some(_) => StateBound::Bounded(
                "rows of open sessions; a session is freed when the watermark passes its end"
                    .into(),
            ),
            None => StateBound::Grows("every row, by partition".into()),
        };
        Explain {
            operator,
            state,
            watermark: self.closed_by,
        }
    }

    fn apply(&mut self, inputs: &[Delta], epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        // The epoch's changes by partition: (event time, encoded row, weight).
        type Change = (i64, Vec<u8>, i64);
        let mut changes: FastMap<Vec<u8>, Vec<Change>> = FastMap::default();
        let columns = input.batch.columns();
        let partition: Vec<ArrayRef> = self.partition.iter().map(|c| columns[*c].clone()).collect();
        let (rows, keys) = (RowEncoder::new(columns), RowEncoder::new(&partition));
        // `new` admits only microsecond timestamps.
        let times = columns[self.time].as_primitive::<TimestampMicrosecondType>();
        for i in 0..input.len() {
            // A row without an event time belongs to no session.
            if times.is_null(i) {
                continue;
            }
            let (mut key, mut row) = (Vec::new(), Vec::new());
            keys.encode(i, &mut key)?;
            rows.encode(i, &mut row)?;
            changes
                .entry(key)
                .or_default()
                .push((times.value(i), row, input.weights[i]));
        }

        let mut out = (BatchBuilder::new(&self.schema, input.len()), Vec::new());
        let touched: Vec<Vec<u8>> = changes.keys().cloned().collect();
        for (key, changes) in changes {
            let mut partition = self.partitions.remove(&key).unwrap_or_default();
            let first = changes.iter().map(|c| c.0).min().expect("a change");
            let last = changes.iter().map(|c| c.0).max().expect("a change");
            // Sessions outside [lo, hi] are more than a gap away from every change, before
            // and after it: neither their rows nor their bounds move.
            let lo = partition.chain_start(first, self.gap);
            let hi = partition.chain_end(last, self.gap);
            let before = partition.sessions(lo, hi, self.gap);
            self.emit(&key, &partition, &before, -1, &mut out)?;
            for (t, row, weight) in changes {
                let at = partition.rows.entry(t).or_default();
                let n = at.entry(row.clone()).or_insert(0);
                *n += weight;
                if *n == 0 {
                    at.remove(&row);
                    if at.is_empty() {
                        partition.rows.remove(&t);
                    }
                } else if *n < 0 {
                    return Err(DataflowError::Internal(
                        "a session window deleted a row it never held".into(),
                    ));
                }
                self.dirty.insert((key.clone(), t, row));
            }
            let after = partition.sessions(lo, hi, self.gap);
            self.emit(&key, &partition, &after, 1, &mut out)?;
            if !partition.rows.is_empty() {
                self.partitions.insert(key, partition);
            }
        }

        if let Some(wm) = self.closed_by.and_then(|s| epoch.watermark(s)) {
            // A partition's sessions can only have closed if the watermark moved, or if rows
            // arrived for it (a backfill reads history the watermark has long passed).
            let keys = match self.freed_to.is_none_or(|f| wm > f) {
                true => self.partitions.keys().cloned().collect(),
                false => touched,
            };
            for key in keys {
                self.free_closed(&key, wm);
            }
            self.freed_to = Some(wm);
        }
        Delta::new(out.0.finish()?, out.1).consolidate()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        for (key, t, row) in std::mem::take(&mut self.dirty) {
            let held = self
                .partitions
                .get(&key)
                .and_then(|p| p.rows.get(&t))
                .and_then(|r| r.get(&row))
                .copied()
                .unwrap_or(0);
            state.count(&row, held);
        }
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        let width = self.width;
        for entry in state {
            let (row, value) = entry?;
            let n = Decoder::new(&value).i64()?;
            let values = decode_row(&row, width)?;
            let t = micros(&values[self.time])
                .ok_or_else(|| DataflowError::Corrupt("session row without a time".into()))?;
            let key = self.partition_key(&values)?;
            self.partitions
                .entry(key)
                .or_default()
                .rows
                .entry(t)
                .or_default()
                .insert(row, n);
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.partitions
            .values()
            .flat_map(|p| p.rows.values())
            .map(FastMap::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::operator::{Dataflow, Input};
    use crate::testing::{delta, schema, sorted};

    const COLUMNS: [&str; 2] = ["user:Utf8", "t:Ts"];

    fn sessions(gap_seconds: i64, closed_by: Option<u64>) -> SessionWindow {
        SessionWindow::new(
            &schema(&COLUMNS),
            vec![0],
            1,
            gap_seconds * 1_000_000,
            closed_by,
        )
        .unwrap()
    }

    fn at(watermark_seconds: i64) -> EpochContext {
        EpochContext {
            watermarks: HashMap::from([(7, watermark_seconds * 1_000_000)]),
            replaying: false,
        }
    }

    /// `(weight, "user|t|start|end")` with times in seconds.
    fn tagged(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
        let d = delta(&["user:Utf8", "t:Ts", "s:Ts", "e:Ts"], rows);
        sorted(&d)
    }

    #[test]
    fn rows_closer_than_the_gap_share_a_session() {
        let mut op = sessions(10, None);
        let out = op
            .apply(
                &[delta(
                    &COLUMNS,
                    &[(1, "a|0"), (1, "a|5"), (1, "b|5"), (1, "a|30")],
                )],
                &EpochContext::default(),
            )
            .unwrap();
        assert_eq!(
            sorted(&out),
            tagged(&[
                (1, "a|0|0|15"),
                (1, "a|5|0|15"),
                (1, "a|30|30|40"),
                (1, "b|5|5|15"),
            ])
        );
        // Exactly the gap apart is a new session.
        let out = op
            .apply(&[delta(&COLUMNS, &[(1, "b|15")])], &EpochContext::default())
            .unwrap();
        assert_eq!(sorted(&out), tagged(&[(1, "b|15|15|25")]));
    }

    #[test]
    fn a_bridging_row_merges_sessions_and_its_delete_splits_them() {
        let mut op = sessions(10, None);
        op.apply(
            &[delta(&COLUMNS, &[(1, "a|0"), (1, "a|18"), (1, "a|40")])],
            &EpochContext::default(),
        )
        .unwrap();
        let out = op
            .apply(&[delta(&COLUMNS, &[(1, "a|9")])], &EpochContext::default())
            .unwrap();
        assert_eq!(
            sorted(&out),
            tagged(&[
                (-1, "a|0|0|10"),
                (1, "a|0|0|28"),
                (1, "a|9|0|28"),
                (-1, "a|18|18|28"),
                (1, "a|18|0|28"),
            ])
        );
        let out = op
            .apply(&[delta(&COLUMNS, &[(-1, "a|9")])], &EpochContext::default())
            .unwrap();
        assert_eq!(
            sorted(&out),
            tagged(&[
                (1, "a|0|0|10"),
                (-1, "a|0|0|28"),
                (-1, "a|9|0|28"),
                (1, "a|18|18|28"),
                (-1, "a|18|0|28"),
            ])
        );
        assert_eq!(op.state_rows(), 3);
    }

    #[test]
    fn per_session_a_session_is_one_row_weighted_by_its_rows() {
        let input = schema(&COLUMNS);
        let mut op = sessions(10, None).per_session(&input);
        let per_session = |rows| sorted(&delta(&["user:Utf8", "s:Ts", "e:Ts"], rows));
        let out = op
            .apply(
                &[delta(
                    &COLUMNS,
                    &[(1, "a|0"), (1, "a|5"), (1, "a|5"), (1, "b|5"), (1, "a|18")],
                )],
                &EpochContext::default(),
            )
            .unwrap();
        assert_eq!(
            sorted(&out),
            per_session(&[(3, "a|0|15"), (1, "a|18|28"), (1, "b|5|15")])
        );
        // A bridging row merges two sessions: each moves as one row.
        let out = op
            .apply(&[delta(&COLUMNS, &[(1, "a|9")])], &EpochContext::default())
            .unwrap();
        assert_eq!(
            sorted(&out),
            per_session(&[(-3, "a|0|15"), (-1, "a|18|28"), (5, "a|0|28")])
        );
        // Its delete splits them again.
        let out = op
            .apply(&[delta(&COLUMNS, &[(-1, "a|9")])], &EpochContext::default())
            .unwrap();
        assert_eq!(
            sorted(&out),
            per_session(&[(3, "a|0|15"), (1, "a|18|28"), (-5, "a|0|28")])
        );
    }

    #[test]
    fn closed_sessions_are_forgotten_and_state_survives_a_restart() {
        let mut op = sessions(10, Some(7));
        op.apply(
            &[delta(
                &COLUMNS,
                &[(1, "a|0"), (1, "a|5"), (1, "a|30"), (1, "b|1")],
            )],
            &at(10),
        )
        .unwrap();
        assert_eq!(op.state_rows(), 4);
        // Sessions a[0, 15) and b[1, 11) close at watermark 15.
        op.apply(&[delta(&COLUMNS, &[])], &at(15)).unwrap();
        assert_eq!(op.state_rows(), 1);

        let schema = schema(&COLUMNS);
        let source = || Input::Source {
            relation: 1,
            schema: schema.clone(),
        };
        let mut flow = Dataflow::default();
        flow.push(Box::new(op), vec![source()]);
        let store = eddy_storage::Store::temporary().unwrap();
        let mut batch = eddy_storage::WriteBatch::default();
        flow.checkpoint(3, &mut batch).unwrap();
        store.commit(batch, false).unwrap();
        let mut restored = Dataflow::default();
        restored.push(Box::new(sessions(10, Some(7))), vec![source()]);
        restored.restore(3, &store).unwrap();
        assert_eq!(restored.state_rows(), 1);
        let changes = HashMap::from([(1, delta(&COLUMNS, &[(1, "a|35")]))]);
        let out = restored.apply(&changes, &at(20)).unwrap();
        assert_eq!(
            sorted(&out),
            tagged(&[(-1, "a|30|30|40"), (1, "a|30|30|45"), (1, "a|35|30|45")])
        );
    }
}
