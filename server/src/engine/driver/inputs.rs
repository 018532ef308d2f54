//! What the epoch log keeps of a write epoch before its layer (see
//! `eddy_storage::Store::log_input`): the rows each client write carried, appended to a
//! stream or inserted into a table. Staged again in order over the state of the epoch
//! before, they make the same epoch, so an epoch whose layer a crash lost is computed again
//! at start-up instead of synced on its commit path.
//!
//! Only epochs of such writes take this path, and only up to [`MOST_ROWS`] rows: their
//! staging needs nothing but the rows (an UPDATE's or DELETE's predicate, an upsert's
//! assignments, are expressions).
//! `[writes: i64]`, then for each `[kind: i64][relation: i64][batches: i64]` and for each
//! batch `[columns: i64][rows: i64]` followed by its rows in Eddy's row encoding; the kind
//! is [`APPEND`], [`INSERT`] or [`INSERT_OR_NOTHING`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use eddy_catalog::Snapshot;
use eddy_dataflow::codec::{BatchBuilder, Decoder, RowEncoder};
use eddy_sql::{SqlError, SqlResult};

use crate::engine::{OnConflict, WriteOp};

/// Rows appended to a stream.
const APPEND: i64 = 0;
/// Rows inserted into a table; a key already there fails the write.
const INSERT: i64 = 1;
/// Rows inserted into a table; `ON CONFLICT DO NOTHING`.
const INSERT_OR_NOTHING: i64 = 2;

/// Most rows an epoch's input holds. A larger epoch (a bulk COPY) is synced as a whole:
/// writing its rows twice costs more than its sync, which then is a small part of its time.
const MOST_ROWS: usize = 65_536;

/// The input of an epoch of these writes, or None unless every one carries only rows and
/// they are at most [`MOST_ROWS`].
pub(super) fn encode<'a>(writes: impl Iterator<Item = &'a WriteOp>) -> SqlResult<Option<Vec<u8>>> {
    let mut out = vec![0; 8];
    let mut count = 0i64;
    let mut total = 0;
    for write in writes {
        let (kind, relation, rows) = match write {
            WriteOp::Append { relation, rows } => (APPEND, relation, rows),
            WriteOp::Insert {
                relation,
                rows,
                on_conflict: OnConflict::Error,
            } => (INSERT, relation, rows),
            WriteOp::Insert {
                relation,
                rows,
                on_conflict: OnConflict::DoNothing,
            } => (INSERT_OR_NOTHING, relation, rows),
            _ => return Ok(None),
        };
        total += rows.iter().map(RecordBatch::num_rows).sum::<usize>();
        if total > MOST_ROWS {
            return Ok(None);
        }
        count += 1;
        for n in [kind, *relation as i64, rows.len() as i64] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for batch in rows {
            out.extend_from_slice(&(batch.num_columns() as i64).to_le_bytes());
            out.extend_from_slice(&(batch.num_rows() as i64).to_le_bytes());
            let encoder = RowEncoder::new(batch.columns());
            for i in 0..batch.num_rows() {
                encoder.encode(i, &mut out)?;
            }
        }
    }
    out[..8].copy_from_slice(&count.to_le_bytes());
    Ok(Some(out))
}

/// The writes of an input that [`encode`] wrote, read as rows of their relations as the
/// catalog now defines them (an epoch whose input is replayed ran under this catalog: a
/// definition change is an epoch of its own, synced).
pub(super) fn decode(bytes: &[u8], catalog: &Snapshot) -> SqlResult<Vec<WriteOp>> {
    let mut d = Decoder::new(bytes);
    let count = d.i64()?;
    let mut writes = Vec::new();
    for _ in 0..count {
        let kind = d.i64()?;
        let relation = d.i64()? as u64;
        let rows = decode_rows(&mut d, bytes.len(), relation, catalog)?;
        writes.push(match kind {
            APPEND => WriteOp::Append { relation, rows },
            INSERT | INSERT_OR_NOTHING => WriteOp::Insert {
                relation,
                rows,
                on_conflict: match kind {
                    INSERT => OnConflict::Error,
                    _ => OnConflict::DoNothing,
                },
            },
            other => return Err(corrupt(&format!("has a write of kind {other}"))),
        });
    }
    if !d.is_empty() {
        return Err(corrupt("has trailing bytes"));
    }
    Ok(writes)
}

/// One write's batches of rows of `relation`; `room` bounds what a count read from the
/// bytes may reserve.
fn decode_rows(
    d: &mut Decoder<'_>,
    room: usize,
    relation: u64,
    catalog: &Snapshot,
) -> SqlResult<Vec<RecordBatch>> {
    let rel = catalog
        .by_id(relation)
        .ok_or_else(|| corrupt(&format!("names relation {relation}, which is gone")))?;
    let schema = rel.schema();
    let batches = d.i64()?;
    let mut rows = Vec::new();
    for _ in 0..batches {
        let columns = d.i64()? as usize;
        let n = d.i64()? as usize;
        let fields = schema
            .fields()
            .get(..columns)
            .ok_or_else(|| corrupt("has more columns than its relation"))?;
        let schema = Arc::new(Schema::new(fields.to_vec()));
        let mut builder = BatchBuilder::new(&schema, n.min(room));
        for _ in 0..n {
            builder.push_from(d)?;
        }
        rows.push(builder.finish()?);
    }
    Ok(rows)
}

fn corrupt(what: &str) -> SqlError {
    SqlError::Internal(format!("a logged epoch input {what}"))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use eddy_catalog::{Column, Relation, RelationKind, SqlType};

    use super::*;

    fn stream() -> Relation {
        let column = Column::nullable;
        let columns = vec![column("id", SqlType::BigInt), column("url", SqlType::Text)];
        Relation {
            id: 12,
            ..Relation::new("clicks", RelationKind::Stream, columns)
        }
    }

    #[test]
    fn appends_read_back_as_written_and_other_writes_are_not_logged() {
        let rel = stream();
        let schema = rel.schema();
        let full = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("/a"), Some("/b"), None])),
            ],
        )
        .unwrap();
        // A write planned before the stream gained its second column.
        let narrow = full.project(&[0]).unwrap();
        let writes = [
            WriteOp::Append {
                relation: 12,
                rows: vec![full.clone(), narrow.clone()],
            },
            WriteOp::Append {
                relation: 12,
                rows: vec![full.slice(0, 0)],
            },
        ];
        let bytes = encode(writes.iter()).unwrap().unwrap();
        let catalog = Snapshot::from_relations([rel]);
        let read = decode(&bytes, &catalog).unwrap();
        let batches: Vec<Vec<RecordBatch>> = read
            .into_iter()
            .map(|w| match w {
                WriteOp::Append { relation: 12, rows } => rows,
                _ => panic!("not the append written"),
            })
            .collect();
        assert_eq!(
            batches,
            vec![vec![full.clone(), narrow], vec![full.slice(0, 0)]]
        );

        let delete = WriteOp::Delete {
            relation: 12,
            predicate: None,
        };
        assert!(encode([&writes[0], &delete].into_iter()).unwrap().is_none());

        let bulk = WriteOp::Append {
            relation: 12,
            rows: vec![
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(vec![1; MOST_ROWS + 1])),
                        Arc::new(StringArray::from(vec!["/"; MOST_ROWS + 1])),
                    ],
                )
                .unwrap(),
            ],
        };
        assert!(encode([&bulk].into_iter()).unwrap().is_none());

        // Inserts into a table keep what a conflict does.
        let inserts =
            [OnConflict::Error, OnConflict::DoNothing].map(|on_conflict| WriteOp::Insert {
                relation: 12,
                rows: vec![full.clone()],
                on_conflict,
            });
        let bytes = encode(inserts.iter()).unwrap().unwrap();
        let read: Vec<(bool, Vec<RecordBatch>)> = decode(&bytes, &catalog)
            .unwrap()
            .into_iter()
            .map(|w| match w {
                WriteOp::Insert {
                    relation: 12,
                    rows,
                    on_conflict,
                } => (matches!(on_conflict, OnConflict::DoNothing), rows),
                _ => panic!("not the insert written"),
            })
            .collect();
        assert_eq!(
            read,
            vec![(false, vec![full.clone()]), (true, vec![full.clone()])]
        );
        assert!(decode(&bytes[..bytes.len() - 1], &catalog).is_err());
    }
}
