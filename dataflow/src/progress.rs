//! What the epoch driver records about each relation as it goes, committed with each epoch:
//! a stream's watermark and late rows, a view's state size. `eddy_catalog.progress` and
//! `eddy_catalog.late_rows` read these records.

use arrow::array::{Array, BooleanArray, TimestampMicrosecondArray};
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
    /// Streams fed by a replayable source: how far it has been read (for Nexmark, the
    /// number of the next event). The stream's contents are what the source yields up to it.
    #[serde(default)]
    pub source_offset: Option<u64>,
    /// The offset that `rows`, `late_rows` and `watermark` account for. It stays behind
    /// `source_offset` while no view reads the stream (its rows are not generated then), and
    /// catches up by a replay when one does.
    #[serde(default)]
    pub applied_offset: u64,
}

/// Which rows of a batch are on time against a watermark (a row without event time never
/// is; before any watermark every other row is), and the largest event time among them.
pub fn on_time(
    times: &TimestampMicrosecondArray,
    watermark: Option<i64>,
) -> (BooleanArray, Option<i64>) {
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
