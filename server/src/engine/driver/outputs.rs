//! What a view's change in an epoch writes: its stored rows (appended to its log, put under
//! its key, or counted in its multiset), its operators' changed state and its progress.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use eddy_catalog::Relation;
use eddy_dataflow::codec::RowEncoder;
use eddy_dataflow::progress::Progress;
use eddy_dataflow::relations::{self, decode_count};
use eddy_dataflow::{Dataflow, Delta};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{Store, WriteBatch, keys};
use tracing::warn;

/// Stages what a view's change in epoch `epoch` writes: its stored rows, its operators'
/// changed state and its progress record.
pub(super) fn stage_view_output(
    store: &Store,
    next_seq: &mut HashMap<u64, u64>,
    view: &Relation,
    flow: &mut Dataflow,
    out: &Delta,
    epoch: u64,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    store_view_change(store, next_seq, view, out, batch)?;
    flow.checkpoint(view.id, batch)?;
    record_view_progress(flow, view.id, epoch, batch);
    Ok(())
}

/// Records a view's state size with the epoch that changed it.
pub(super) fn record_view_progress(flow: &Dataflow, view: u64, epoch: u64, batch: &mut WriteBatch) {
    let progress = Progress {
        epoch,
        state_rows: flow.state_rows() as u64,
        state_bytes: flow.state_bytes(),
        ..Progress::default()
    };
    batch.put(keys::progress(view), progress.encode());
}

/// A view's change in the view's declared column types, as it is stored (so that a lookup by
/// value encodes keys the same way), read by the views over it and sent to subscribers.
pub(super) fn declared(view: &Relation, delta: Delta) -> SqlResult<Delta> {
    let schema = view.schema();
    if delta.batch.schema().fields() == schema.fields() {
        return Ok(delta);
    }
    let columns = delta
        .batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                Ok(arrow::compute::cast(c, f.data_type())?)
            }
        })
        .collect::<SqlResult<Vec<_>>>()?;
    let batch = RecordBatch::try_new(schema, columns)?;
    Ok(Delta::new(batch, delta.weights))
}

/// Stores a view's (consolidated, [`declared`]) change: appended to its log if it is
/// append-only, put under its keys if it is stored by key, applied to its multiset of rows
/// otherwise.
pub(super) fn store_view_change(
    store: &Store,
    next_seq: &mut HashMap<u64, u64>,
    view: &Relation,
    delta: &Delta,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    if !view.append_only {
        return materialize(store, view, delta, batch);
    }
    if delta.is_empty() {
        return Ok(());
    }
    let rows = match delta.weights.iter().all(|w| *w == 1) {
        true => delta.batch.clone(),
        false => {
            // A row n times is n entries of the log; a retraction cannot be stored.
            let mut take = Vec::with_capacity(delta.len());
            for (i, w) in delta.weights.iter().enumerate() {
                if *w < 0 {
                    return Err(SqlError::Internal(format!(
                        "append-only view {} would lose a row",
                        view.name
                    )));
                }
                take.extend(std::iter::repeat_n(i as u32, *w as usize));
            }
            let take = arrow::array::UInt32Array::from(take);
            arrow::compute::take_record_batch(&delta.batch, &take)?
        }
    };
    let first = match next_seq.get(&view.id) {
        Some(s) => *s,
        None => relations::next_log_seq(store, view.id)?,
    };
    for (seq, block) in relations::encode_log_blocks(std::slice::from_ref(&rows), first)? {
        batch.put(keys::row(view.id, &seq.to_be_bytes()), block);
    }
    next_seq.insert(view.id, first + rows.num_rows() as u64);
    Ok(())
}

/// Applies a view's (consolidated, [`declared`]) change to its stored multiset of rows.
fn materialize(
    store: &Store,
    view: &Relation,
    delta: &Delta,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    if view.keyed_rows {
        return materialize_keyed(view, delta, batch);
    }
    let columns = delta.batch.columns();
    // A view with a key holds each row at most once: a consolidated change inserts a row
    // that is not there (+1) or deletes one that is (-1), so the stored count need not be
    // read.
    let unique = !view.primary_key.is_empty();
    let view = view.id;
    let encoder = RowEncoder::new(columns);
    let mut key = keys::rows_prefix(view);
    let prefix = key.len();
    for i in 0..delta.len() {
        key.truncate(prefix);
        encoder.encode(i, &mut key)?;
        let (old, new) = match (unique, delta.weights[i]) {
            (true, 1) => (0, 1),
            (true, -1) => (1, 0),
            (_, weight) => {
                let old = match store.get(&key)? {
                    Some(v) => decode_count(&v)?,
                    None => 0,
                };
                (old, old + weight)
            }
        };
        match new {
            0 => batch.delete(&key),
            // A row the view did not hold: if a later epoch deletes it before sled has it,
            // sled never sees it.
            n if n > 0 && old == 0 => batch.put_new(&key, n.to_le_bytes()),
            n if n > 0 => batch.put(&key, n.to_le_bytes()),
            _ => {
                warn!(view, "view row would have a negative count");
                return Err(SqlError::Internal(format!(
                    "view {view} would hold a row {} times",
                    new
                )));
            }
        }
    }
    Ok(())
}

/// Applies a (consolidated, [`declared`]) change to a view stored by its key: a row deleted
/// goes from under its key, then a row inserted is put there, so that a changed row (deleted
/// and inserted under one key) is a single write; a deletion the next row's insertion
/// overwrites (as an aggregate emits a changed group) is not written at all. The key is
/// unique in the view, so a consolidated change holds each row at most once either way.
fn materialize_keyed(view: &Relation, delta: &Delta, batch: &mut WriteBatch) -> SqlResult<()> {
    let columns = delta.batch.columns();
    let key_columns: Vec<_> = view
        .primary_key
        .iter()
        .map(|&c| columns[c].clone())
        .collect();
    let key_encoder = RowEncoder::new(&key_columns);
    let row_encoder = RowEncoder::new(columns);
    let mut key = keys::rows_prefix(view.id);
    let prefix = key.len();
    let mut row = Vec::new();
    let mut next = Vec::new();
    let weights = &delta.weights;
    for sign in [-1, 1] {
        for (i, &weight) in weights.iter().enumerate() {
            if weight.signum() != sign {
                continue;
            }
            if weight.abs() != 1 {
                return Err(SqlError::Internal(format!(
                    "view {} would hold a row {weight} times under its key",
                    view.name
                )));
            }
            key.truncate(prefix);
            key_encoder.encode(i, &mut key)?;
            if sign < 0 {
                // A group's old row is mostly followed by its new one, whose put replaces it.
                if weights.get(i + 1) == Some(&1) {
                    next.clear();
                    key_encoder.encode(i + 1, &mut next)?;
                    if key[prefix..] == next[..] {
                        continue;
                    }
                }
                batch.delete(&key);
            } else {
                row.clear();
                row_encoder.encode(i, &mut row)?;
                batch.put(&key, &row);
            }
        }
    }
    Ok(())
}
