//! How stored relations lay out their rows in the store's `rows` space, and reading them back.
//!
//! - A stream is a log of blocks: key the sequence number (u64, big-endian, dense from 0) of
//!   the block's first row, value a block of up to [`LOG_BLOCK_ROWS`] rows (a u32 row count,
//!   then the encoded rows one after another). Blocks keep the store's key count, and so the
//!   cost of an append, independent of how many rows a write carries.
//! - A table is keyed: key the encoded primary key (or a hidden u64 row id when it has none),
//!   value the encoded row.
//! - A view with a key (its GROUP BY columns) is keyed like a table: a changed row is one
//!   write under its key. Other views, and views of earlier versions, are multisets: key the
//!   encoded row, value its multiplicity (i64).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use eddy_storage::{Store, keys};

use crate::codec::{BatchBuilder, Decoder, Part, RowEncoder, batch_from_rows, decode_row};
use crate::{DataflowError, DataflowResult};

/// How a relation's rows are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Log,
    Keyed,
    Multiset,
}

/// Rows per block of a stream's log.
pub const LOG_BLOCK_ROWS: usize = 1024;

/// Encodes rows of batches as log blocks: (first sequence number, block) pairs, numbered
/// from `first_seq`.
pub fn encode_log_blocks(
    batches: &[RecordBatch],
    first_seq: u64,
) -> DataflowResult<Vec<(u64, Vec<u8>)>> {
    let mut blocks = Vec::new();
    let mut seq = first_seq;
    let mut block = Vec::new();
    let mut rows_in_block = 0u32;
    let mut start = seq;
    for batch in batches {
        let encoder = RowEncoder::new(batch.columns());
        for i in 0..batch.num_rows() {
            if rows_in_block == 0 {
                block = 0u32.to_le_bytes().to_vec();
                start = seq;
            }
            encoder.encode(i, &mut block)?;
            rows_in_block += 1;
            seq += 1;
            if rows_in_block as usize == LOG_BLOCK_ROWS {
                block[..4].copy_from_slice(&rows_in_block.to_le_bytes());
                blocks.push((start, std::mem::take(&mut block)));
                rows_in_block = 0;
            }
        }
    }
    if rows_in_block > 0 {
        block[..4].copy_from_slice(&rows_in_block.to_le_bytes());
        blocks.push((start, block));
    }
    Ok(blocks)
}

/// The number of rows in a log block.
fn log_block_rows(block: &[u8]) -> DataflowResult<u32> {
    let head: [u8; 4] = block
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| DataflowError::Corrupt("log block header".into()))?;
    Ok(u32::from_le_bytes(head))
}

/// Appends the rows of a log block to `rows`, each `width` values wide. Blocks do not
/// record their width: it is the block's values over its rows, so that a block written
/// before `ALTER STREAM ... ADD COLUMN` widened the stream still reads (the added columns
/// NULL in its rows), and a reader that knows fewer columns gets the leading ones.
fn decode_log_block(
    block: &[u8],
    width: usize,
    rows: &mut Vec<Vec<ScalarValue>>,
) -> DataflowResult<()> {
    let n = log_block_rows(block)? as usize;
    // Nearly every block is as wide as the reader: decoded straight into rows.
    let start = rows.len();
    let mut d = Decoder::new(&block[4..]);
    rows.reserve(n);
    for _ in 0..n {
        match (0..width).map(|_| d.value()).collect() {
            Ok(row) => rows.push(row),
            Err(_) => break,
        }
    }
    if rows.len() - start == n && d.is_empty() {
        return Ok(());
    }
    rows.truncate(start);
    let mut d = Decoder::new(&block[4..]);
    let mut values = Vec::with_capacity(n * width);
    while !d.is_empty() {
        values.push(d.value()?);
    }
    let stored = values.len().checked_div(n).unwrap_or(0);
    if n == 0 || stored == 0 || stored * n != values.len() {
        return Err(DataflowError::Corrupt(format!(
            "log block of {n} rows holds {} values, for rows of {width}",
            values.len()
        )));
    }
    let mut values = values.into_iter();
    for _ in 0..n {
        let mut row = Vec::with_capacity(width);
        row.extend(values.by_ref().take(stored.min(width)));
        row.resize(width, ScalarValue::Null);
        values
            .by_ref()
            .take(stored.saturating_sub(width))
            .for_each(drop);
        rows.push(row);
    }
    Ok(())
}

/// The sequence number the next row appended to a stream's log gets.
pub fn next_log_seq(store: &Store, rel: u64) -> DataflowResult<u64> {
    match store.last_in_prefix(&keys::rows_prefix(rel))? {
        Some((k, v)) => Ok(sequential_key(&k)? + u64::from(log_block_rows(&v)?)),
        None => Ok(0),
    }
}

fn sequential_key(key: &[u8]) -> DataflowResult<u64> {
    let b: [u8; 8] = key[keys::ROWS_PREFIX_LEN..]
        .try_into()
        .map_err(|_| DataflowError::Corrupt("sequential row key".into()))?;
    Ok(u64::from_be_bytes(b))
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
    if layout == Layout::Log {
        return scan_rows(store, prefix, layout, width, chunk, |rows| {
            let go_on = f(batch_from_rows(schema, rows)?)?;
            rows.clear();
            Ok(go_on)
        });
    }
    // Keyed and multiset rows are decoded straight into the batch's columns.
    let new_chunk = || BatchBuilder::new(schema, chunk.min(4096));
    let mut rows = new_chunk();
    for entry in store.scan_prefix(prefix) {
        let (k, v) = entry?;
        if layout == Layout::Keyed {
            rows.push(&[Part::Row(&v, width)])?;
        } else {
            let row = &k[keys::ROWS_PREFIX_LEN..];
            for _ in 0..decode_count(&v)? {
                rows.push(&[Part::Row(row, width)])?;
            }
        }
        if rows.len() >= chunk && !f(std::mem::replace(&mut rows, new_chunk()).finish()?)? {
            return Ok(());
        }
    }
    if !rows.is_empty() {
        f(rows.finish()?)?;
    }
    Ok(())
}

/// Like [`scan_from`], with the rows as decoded values: `f` gets chunks of at least `chunk`
/// rows (the last one may be smaller), and may take them out of the vector.
pub fn scan_rows(
    store: &Store,
    prefix: &[u8],
    layout: Layout,
    width: usize,
    chunk: usize,
    mut f: impl FnMut(&mut Vec<Vec<ScalarValue>>) -> DataflowResult<bool>,
) -> DataflowResult<()> {
    let mut rows: Vec<Vec<ScalarValue>> = Vec::with_capacity(chunk.min(4096));
    for entry in store.scan_prefix(prefix) {
        let (k, v) = entry?;
        match layout {
            Layout::Log => decode_log_block(&v, width, &mut rows)?,
            Layout::Keyed => rows.push(decode_row(&v, width)?),
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
            let go_on = f(&mut rows)?;
            rows.clear();
            if !go_on {
                return Ok(());
            }
        }
    }
    if !rows.is_empty() {
        f(&mut rows)?;
    }
    Ok(())
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
    for prefix in [
        keys::late_prefix(rel),
        keys::dead_prefix(rel),
        keys::outbox_prefix(rel),
        keys::pending_prefix(rel),
    ] {
        for entry in store.scan_prefix(&prefix) {
            batch.delete(entry?.0);
        }
    }
    batch.delete(keys::progress(rel));
    Ok(())
}

/// The next free hidden row id of a table without a primary key: one past the last stored
/// key, or 0.
pub fn next_sequential_key(store: &Store, rel: u64) -> DataflowResult<u64> {
    match store.last_in_prefix(&keys::rows_prefix(rel))? {
        Some((k, _)) => Ok(sequential_key(&k)? + 1),
        None => Ok(0),
    }
}

/// Encodes a change (rows and weights) as a sink's outbox holds it; `replace` marks the
/// first chunk of a snapshot, which replaces whatever the sink's target held.
pub fn encode_change(delta: &crate::Delta, replace: bool) -> DataflowResult<Vec<u8>> {
    let mut out = vec![u8::from(replace)];
    out.extend_from_slice(&(delta.len() as u64).to_le_bytes());
    let encoder = RowEncoder::new(delta.batch.columns());
    for (i, w) in delta.weights.iter().enumerate() {
        out.extend_from_slice(&w.to_le_bytes());
        encoder.encode(i, &mut out)?;
    }
    Ok(out)
}

/// Decodes what [`encode_change`] wrote, into rows of `schema`.
pub fn decode_change(bytes: &[u8], schema: &SchemaRef) -> DataflowResult<(crate::Delta, bool)> {
    let mut d = Decoder::new(bytes);
    let replace = d.u8()? == 1;
    let n = d.i64()? as usize;
    // The count is read from the bytes: reserve no more than they can hold.
    let mut rows = BatchBuilder::new(schema, n.min(bytes.len()));
    let mut weights = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        weights.push(d.i64()?);
        rows.push_from(&mut d)?;
    }
    if !d.is_empty() {
        return Err(DataflowError::Corrupt(
            "trailing bytes after a change".into(),
        ));
    }
    let batch = rows.finish()?;
    Ok((crate::Delta::new(batch, weights), replace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use eddy_storage::WriteBatch;

    use super::*;

    #[test]
    fn changes_round_trip() {
        let batch = rows(0, 5);
        let delta = crate::Delta::new(batch.clone(), vec![1, -1, 2, 1, -3]);
        let bytes = encode_change(&delta, true).unwrap();
        let (back, replace) = decode_change(&bytes, &batch.schema()).unwrap();
        assert!(replace);
        assert_eq!(back.batch, batch);
        assert_eq!(back.weights, delta.weights);
        assert!(decode_change(&bytes[..bytes.len() - 1], &batch.schema()).is_err());
    }

    /// All of a relation's rows.
    fn read_all(
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

    fn rows(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let names: Vec<Option<String>> = (from..to)
            .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
            .collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..to)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn log_blocks_round_trip_and_number_rows_densely() {
        let store = Store::temporary().unwrap();
        let first = rows(0, 1500);
        let second = rows(1500, 2500);
        let blocks = encode_log_blocks(&[first.clone(), second.clone()], 0).unwrap();
        let starts: Vec<u64> = blocks.iter().map(|(s, _)| *s).collect();
        assert_eq!(starts, vec![0, 1024, 2048]);
        let mut batch = WriteBatch::default();
        for (seq, block) in blocks {
            batch.put(keys::row(7, &seq.to_be_bytes()), block);
        }
        store.commit(batch, false).unwrap();
        assert_eq!(next_log_seq(&store, 7).unwrap(), 2500);
        assert_eq!(next_log_seq(&store, 8).unwrap(), 0);

        let read = read_all(&store, 7, Layout::Log, &first.schema()).unwrap();
        let read = arrow::compute::concat_batches(&first.schema(), &read).unwrap();
        let expected = arrow::compute::concat_batches(&first.schema(), &[first, second]).unwrap();
        assert_eq!(read, expected);
    }

    /// Rows written before a column was added read with it NULL, from log blocks and from
    /// keyed rows alike; a reader that knows fewer columns gets the leading ones.
    #[test]
    fn rows_stored_before_a_column_was_added_read_with_it_null() {
        let store = Store::temporary().unwrap();
        let narrow = rows(0, 3);
        let mut wide_fields = narrow.schema().fields().to_vec();
        wide_fields.push(Arc::new(Field::new("extra", DataType::Int64, true)));
        let wide: SchemaRef = Arc::new(Schema::new(wide_fields));
        let late = RecordBatch::try_new(
            wide.clone(),
            vec![
                Arc::new(Int64Array::from(vec![3])),
                Arc::new(StringArray::from(vec!["n3"])),
                Arc::new(Int64Array::from(vec![30])),
            ],
        )
        .unwrap();
        let mut batch = WriteBatch::default();
        for (seq, block) in encode_log_blocks(std::slice::from_ref(&narrow), 0).unwrap() {
            batch.put(keys::row(7, &seq.to_be_bytes()), block);
        }
        for (seq, block) in encode_log_blocks(std::slice::from_ref(&late), 3).unwrap() {
            batch.put(keys::row(7, &seq.to_be_bytes()), block);
        }
        let old_row = crate::codec::encode_row(&[ScalarValue::Int64(Some(1))]).unwrap();
        batch.put(keys::row(8, b"k"), old_row.clone());
        store.commit(batch, false).unwrap();

        let read = read_all(&store, 7, Layout::Log, &wide).unwrap();
        let read = arrow::compute::concat_batches(&wide, &read).unwrap();
        let extra: Vec<Option<i64>> = read
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(extra, vec![None, None, None, Some(30)]);
        assert_eq!(read.column(0).len(), 4);

        let row = crate::codec::decode_row(&old_row, 3).unwrap();
        assert_eq!(row[0], ScalarValue::Int64(Some(1)));
        assert!(row[1].is_null() && row[2].is_null());
        // A reader that knows fewer columns gets the leading ones.
        let first: SchemaRef = Arc::new(narrow.schema().project(&[0]).unwrap());
        let read = read_all(&store, 7, Layout::Log, &first).unwrap();
        let read = arrow::compute::concat_batches(&first, &read).unwrap();
        assert_eq!(read.num_columns(), 1);
        assert_eq!(read.column(0).len(), 4);
        assert_eq!(crate::codec::decode_row(&old_row, 0).unwrap(), vec![]);
        assert!(crate::codec::decode_row(&old_row[..old_row.len() - 1], 1).is_err());
    }
}
