//! How stored relations lay out their rows in the store's `rows` space, and reading them back.
//!
//! - A stream is a log: key `seq` (u64, big-endian, dense from 0), value the encoded row.
//! - A table is keyed: key the encoded primary key (or a hidden u64 row id when it has none),
//!   value the encoded row.
//! - A view is a multiset: key the encoded row, value its multiplicity (i64).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use eddy_storage::{Store, keys};

use crate::codec::{batch_from_rows, decode_row};
use crate::{DataflowError, DataflowResult};

/// How a relation's rows are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Log,
    Keyed,
    Multiset,
}

/// Decodes a stored multiplicity.
pub fn decode_count(v: &[u8]) -> DataflowResult<i64> {
    Ok(i64::from_le_bytes(v.try_into().map_err(|_| {
        DataflowError::Corrupt("row multiplicity".into())
    })?))
}

/// Calls `f` with the relation's rows in batches of at most `chunk` rows.
pub fn scan(
    store: &Store,
    rel: u64,
    layout: Layout,
    schema: &SchemaRef,
    chunk: usize,
    mut f: impl FnMut(RecordBatch) -> DataflowResult<()>,
) -> DataflowResult<()> {
    scan_from(store, &keys::rows_prefix(rel), layout, schema, chunk, |b| {
        f(b).map(|()| true)
    })
}

/// Like [`scan`], for the rows whose keys start with `prefix`: a relation's rows prefix
/// followed by encoded values. A multiset's keys are its encoded rows and the encoding is
/// self-delimiting, so the prefix of a view's leading column values finds exactly the rows
/// that hold them. `f` returns whether to go on.
pub fn scan_from(
    store: &Store,
    prefix: &[u8],
    layout: Layout,
    schema: &SchemaRef,
    chunk: usize,
    mut f: impl FnMut(RecordBatch) -> DataflowResult<bool>,
) -> DataflowResult<()> {
    let width = schema.fields().len();
    let mut rows: Vec<Vec<ScalarValue>> = Vec::with_capacity(chunk.min(4096));
    for entry in store.scan_prefix(prefix) {
        let (k, v) = entry?;
        match layout {
            Layout::Log | Layout::Keyed => rows.push(decode_row(&v, width)?),
            Layout::Multiset => {
                let row = decode_row(&k[keys::ROWS_PREFIX_LEN..], width)?;
                let n = decode_count(&v)?;
                for _ in 1..n {
                    rows.push(row.clone());
                }
                rows.push(row);
            }
        }
        if rows.len() >= chunk {
            let go_on = f(batch_from_rows(schema, &rows)?)?;
            rows.clear();
            if !go_on {
                return Ok(());
            }
        }
    }
    if !rows.is_empty() {
        f(batch_from_rows(schema, &rows)?)?;
    }
    Ok(())
}

/// All of a relation's rows.
pub fn read_all(
    store: &Store,
    rel: u64,
    layout: Layout,
    schema: &SchemaRef,
) -> DataflowResult<Vec<RecordBatch>> {
    let mut out = Vec::new();
    scan(store, rel, layout, schema, 8192, |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Stages the removal of all of a relation's rows.
pub fn stage_drop(
    store: &Store,
    rel: u64,
    batch: &mut eddy_storage::WriteBatch,
) -> DataflowResult<()> {
    for entry in store.scan_prefix(&keys::rows_prefix(rel)) {
        batch.delete(entry?.0);
    }
    Ok(())
}

/// The next free sequential key (stream sequence number or hidden row id) of a relation whose
/// rows are keyed by a big-endian u64: one past the last stored key, or 0.
pub fn next_sequential_key(store: &Store, rel: u64) -> DataflowResult<u64> {
    match store.last_in_prefix(&keys::rows_prefix(rel))? {
        Some((k, _)) => {
            let b: [u8; 8] = k[keys::ROWS_PREFIX_LEN..]
                .try_into()
                .map_err(|_| DataflowError::Corrupt("sequential row key".into()))?;
            Ok(u64::from_be_bytes(b) + 1)
        }
        None => Ok(0),
    }
}
