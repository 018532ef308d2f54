//! What the epoch driver records about each relation as it goes, committed with each epoch:
//! a stream's watermark and late rows, a view's state size. `eddy_catalog.progress` and
//! `eddy_catalog.late_rows` read these records.

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
