//! What the epoch driver records about each relation as it goes, committed with each epoch:
//! a stream's watermark and late rows, a view's state size. `eddy_catalog.progress` and
//! `eddy_catalog.late_rows` read these records.

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, TimestampMicrosecondArray};
use arrow::buffer::BooleanBuffer;
use serde::{Deserialize, Serialize};

use eddy_storage::{Store, keys};

use crate::{DataflowError, DataflowResult};

/// The progress of one relation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The last epoch that changed the relation.
    pub epoch: u64,
    /// Streams with a WATERMARK: the watermark, in microseconds since the Unix epoch.
    #[serde(default)]
    pub watermark: Option<i64>,
    /// Rows accepted (streams).
    #[serde(default)]
    pub rows: u64,
    /// Rows dropped as late, ever (streams).
    #[serde(default)]
    pub late_rows: u64,
    /// Rows (or entries) of operator state held (materialized views).
    #[serde(default)]
    pub state_rows: u64,
    /// Bytes of that state in the store, estimated (materialized views).
    #[serde(default)]
    pub state_bytes: u64,
    /// Streams fed by a replayable source: how far it has been read (for Nexmark, the
    /// number of the next event). The stream's contents are what the source yields up to it.
    #[serde(default)]
    pub source_offset: Option<u64>,
    /// The offset that `rows`, `late_rows` and `watermark` account for. It stays behind
    /// `source_offset` while no view reads the stream (its rows are not generated then), and
    /// catches up by a replay when one does.
    #[serde(default)]
    pub applied_offset: u64,
    /// Streams fed by a partitioned source (Kafka): each part's position and event time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, PartProgress>,
    /// Records the stream's source could not read, ever.
    #[serde(default)]
    pub dead_letters: u64,
    /// Tables that mirror an external table: when a read of it was last applied
    /// (microseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<i64>,
    /// Why the stream's source is not reading (unreachable, failed), until it reads again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    /// Materialized views with a trigger interval: rows of their sources' changes waiting
    /// for the next tick.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_rows: u64,
    /// ... and when that tick comes (microseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_trigger: Option<i64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One part (a Kafka partition) of a stream's source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartProgress {
    /// The next position to read: every record before it is applied (or dead-lettered).
    pub offset: i64,
    /// The largest event time accepted from it.
    #[serde(default)]
    pub max_event_time: Option<i64>,
    /// Whether it has yielded nothing for the source's idle timeout (then it does not hold
    /// the watermark back).
    #[serde(default)]
    pub idle: bool,
}

/// The watermark of a stream whose source has parts: the smallest of their largest event
/// times, over the parts that are not idle, minus the delay; it never goes back. A part that
/// has yielded no event time (and is not idle) holds it where it is. When every part is idle
/// the source is quiet, and everything it yielded counts: the largest event time of all.
pub fn parts_watermark(
    watermark: Option<i64>,
    parts: &BTreeMap<String, PartProgress>,
    delay: i64,
) -> Option<i64> {
    let mut active = parts.values().filter(|p| !p.idle).peekable();
    if active.peek().is_none() {
        let largest = parts.values().filter_map(|p| p.max_event_time).max();
        return advance(watermark, largest, delay);
    }
    let mut slowest = i64::MAX;
    for p in active {
        match p.max_event_time {
            Some(t) => slowest = slowest.min(t),
            None => return watermark,
        }
    }
    advance(watermark, Some(slowest), delay)
}

/// A record a stream's source could not read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// The epoch in which it was read.
    pub epoch: u64,
    /// Where in the source it was (a Kafka partition and offset).
    pub position: String,
    /// The record, cut.
    pub payload: String,
    pub error: String,
}

impl DeadLetterRecord {
    pub fn decode(bytes: &[u8]) -> DataflowResult<DeadLetterRecord> {
        serde_json::from_slice(bytes)
            .map_err(|e| DataflowError::Internal(format!("corrupt dead letter: {e}")))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("dead letters serialize")
    }
}

/// Which rows of a batch are on time against a watermark (a row without event time never
/// is; before any watermark every other row is), and the largest event time among them.
pub fn on_time(
    times: &TimestampMicrosecondArray,
    watermark: Option<i64>,
) -> (BooleanArray, Option<i64>) {
    // The common case, every row valid and on time, by one pass the compiler vectorizes.
    if times.null_count() == 0 && !times.is_empty() {
        let (smallest, largest) = times
            .values()
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
        if watermark.is_none_or(|w| smallest >= w) {
            let all = BooleanArray::new(BooleanBuffer::new_set(times.len()), None);
            return (all, Some(largest));
        }
    }
    let mut largest = None;
    let on_time: BooleanArray = (0..times.len())
        .map(|i| {
            let ok = times.is_valid(i) && watermark.is_none_or(|w| times.value(i) >= w);
            if ok {
                largest = largest.max(Some(times.value(i)));
            }
            Some(ok)
        })
        .collect();
    (on_time, largest)
}

/// The watermark once rows up to event time `largest` were accepted: it trails the largest
/// event time by `delay` and never goes back.
pub fn advance(watermark: Option<i64>, largest: Option<i64>, delay: i64) -> Option<i64> {
    match largest {
        Some(t) => {
            let candidate = t.saturating_sub(delay);
            Some(watermark.map_or(candidate, |w| w.max(candidate)))
        }
        None => watermark,
    }
}

impl Progress {
    pub fn load(store: &Store, rel: u64) -> DataflowResult<Option<Progress>> {
        store
            .get(&keys::progress(rel))?
            .map(|v| Self::decode(&v))
            .transpose()
    }

    pub fn decode(bytes: &[u8]) -> DataflowResult<Progress> {
        serde_json::from_slice(bytes)
            .map_err(|e| DataflowError::Internal(format!("corrupt progress record: {e}")))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("progress serializes")
    }
}

/// A row that arrived behind its stream's watermark and was not applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateRow {
    /// The epoch in which it arrived.
    pub epoch: u64,
    /// Its event time (None: it had none), in microseconds since the Unix epoch.
    pub event_time: Option<i64>,
    /// The watermark it missed (None: a row without event time before any watermark).
    pub watermark: Option<i64>,
    /// The row, as text.
    pub row: String,
}

impl LateRow {
    pub fn decode(bytes: &[u8]) -> DataflowResult<LateRow> {
        serde_json::from_slice(bytes)
            .map_err(|e| DataflowError::Internal(format!("corrupt late row: {e}")))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("late rows serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_older_than_the_watermark_are_late() {
        let mask = |a: &BooleanArray| a.iter().map(|v| v == Some(true)).collect::<Vec<_>>();
        let times = TimestampMicrosecondArray::from(vec![5, 9, 7]);
        // All on time (the vectorized path), and without a watermark.
        for watermark in [Some(5), None] {
            let (ok, largest) = on_time(&times, watermark);
            assert_eq!((mask(&ok), largest), (vec![true; 3], Some(9)));
        }
        let (ok, largest) = on_time(&times, Some(6));
        assert_eq!((mask(&ok), largest), (vec![false, true, true], Some(9)));
        // A row without an event time is never on time.
        let times = TimestampMicrosecondArray::from(vec![Some(5), None, Some(3)]);
        let (ok, largest) = on_time(&times, Some(4));
        assert_eq!((mask(&ok), largest), (vec![true, false, false], Some(5)));
        let (ok, largest) = on_time(&TimestampMicrosecondArray::from(Vec::<i64>::new()), None);
        assert_eq!((ok.len(), largest), (0, None));
    }

    fn part(max: Option<i64>, idle: bool) -> PartProgress {
        PartProgress {
            offset: 0,
            max_event_time: max,
            idle,
        }
    }

    #[test]
    fn the_slowest_active_part_sets_the_watermark() {
        let mut parts = BTreeMap::from([
            ("0".to_string(), part(Some(100), false)),
            ("1".to_string(), part(None, false)),
        ]);
        // A part without event time that is not idle holds the watermark.
        assert_eq!(parts_watermark(None, &parts, 10), None);
        parts.get_mut("1").unwrap().idle = true;
        assert_eq!(parts_watermark(None, &parts, 10), Some(90));
        // A part that speaks again counts again, but the watermark never goes back.
        *parts.get_mut("1").unwrap() = part(Some(50), false);
        assert_eq!(parts_watermark(Some(90), &parts, 10), Some(90));
        parts.get_mut("1").unwrap().max_event_time = Some(120);
        assert_eq!(parts_watermark(Some(90), &parts, 10), Some(90));
        parts.get_mut("0").unwrap().max_event_time = Some(130);
        assert_eq!(parts_watermark(Some(90), &parts, 10), Some(110));
        // All idle: the source is quiet, the largest event time of all counts.
        for p in parts.values_mut() {
            p.idle = true;
        }
        assert_eq!(parts_watermark(Some(110), &parts, 10), Some(120));
    }
}
