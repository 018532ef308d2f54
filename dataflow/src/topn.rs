//! Ranking within partitions: `ROW_NUMBER()`, `RANK()` and `DENSE_RANK()` over
//! `PARTITION BY .. ORDER BY ..`, optionally cut at a limit (`WHERE rn <= 3`), and
//! `ORDER BY .. LIMIT n` over a whole relation (a leaderboard).
//!
//! Each partition keeps its rows in order. For every partition an epoch touches, the operator
//! retracts the ranked rows it emitted before and inserts the ranked rows as they stand now,
//! down to the limit, from the first place the epoch changed (the rows before it keep their
//! numbers); rows that kept their rank cancel out. So when a member of the top N is deleted
//! or drops, the next one moves up. The work per touched partition is the number of ranked
//! rows (the limit, or the whole partition without one).
//!
//! A row's place is its ORDER BY values in Arrow's row format (computed for a whole change at
//! once), then its encoding: places compare as bytes.
//!
//! Ties: rows equal in the ORDER BY columns share a RANK or DENSE_RANK. ROW_NUMBER (and
//! `ORDER BY .. LIMIT`) breaks ties by the row's encoding, so the choice among tied rows is
//! stable across epochs and restarts; SQL leaves it open.
//!
//! Over append-only input a row that falls below the limit can never rise again (nothing
//! above it can be deleted), so it is forgotten: state stays at the limit per partition.
//! Such bounded partitions are stored one key each (the partition's rows in one value), so
//! that a change to a partition is one write of a short key; unbounded ones are stored a key
//! per row, so that a change costs the rows it changes, not the partition.

mod ordered;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::SortOptions;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;

use crate::codec::{self, BatchBuilder, Decoder, Part, RowEncoder};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap};
use ordered::{Ordered, Place};

/// How rows are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbering {
    /// 1, 2, 3, ... (ties broken by the row's encoding).
    RowNumber,
    /// Tied rows share a number, and the next number skips as many as tied.
    Rank,
    /// Tied rows share a number, and the next number follows on.
    DenseRank,
}

/// One ORDER BY column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortColumn {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// The first byte of a partition's key in the layout by partition: no row encoding starts
/// with it (a row's first byte is its first value's type tag), so the two layouts can be
/// told apart when state written in one is read by an operator that uses the other.
const PARTITION: u8 = 0xF0;

/// A row read back: the key it was stored under, whether that key is its partition's, the
/// row's encoding and its multiplicity.
type Stored = (Vec<u8>, bool, Vec<u8>, i64);

/// A ranked row: its encoding, its number and its multiplicity.
type Ranked<'a> = (&'a [u8], u64, i64);

/// How a ranking numbers and cuts a partition's rows.
#[derive(Clone, Copy)]
struct Ranker {
    /// Appends the number as the last column (a window function); `None`: rows as they are.
    numbering: Option<Numbering>,
    /// The largest number kept (`None`: every row).
    limit: Option<u64>,
    /// The input's width.
    width: usize,
}

impl Ranker {
    /// The ranked rows of a partition, down to the limit, from place `from` on (the numbers
    /// count the rows before it), and how many distinct rows come before the first one
    /// wholly past the limit (all of them if none is).
    fn ranked<'a>(&self, rows: &'a Ordered, from: &Place) -> (Vec<Ranked<'a>>, usize) {
        let limit = self.limit.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut position = 0u64; // rows so far
        let mut distinct = 0u64; // distinct ORDER BY values so far
        let mut previous: Option<&Place> = None;
        let mut number = 0u64;
        for (kept, (place, n)) in rows.iter().enumerate() {
            let shown = place >= from;
            let tied = previous.is_some_and(|p| p.ties(place));
            match self.numbering {
                Some(Numbering::Rank) if !tied => number = position + 1,
                Some(Numbering::DenseRank) if !tied => {
                    distinct += 1;
                    number = distinct;
                }
                _ => {}
            }
            previous = Some(place);
            match self.numbering {
                Some(Numbering::RowNumber) | None => {
                    // Each copy of a repeated row takes its own number.
                    let room = limit.saturating_sub(position);
                    if room == 0 {
                        return (out, kept);
                    }
                    // A row whose copies straddle the limit is kept: some of it ranks.
                    for _ in 0..(n as u64).min(room) {
                        position += 1;
                        if shown {
                            out.push((place.row(), position, 1));
                        }
                    }
                }
                Some(Numbering::Rank | Numbering::DenseRank) => {
                    if number > limit {
                        return (out, kept);
                    }
                    position += n as u64;
                    if shown {
                        out.push((place.row(), number, n));
                    }
                }
            }
        }
        (out, rows.len())
    }

    /// Adds a partition's ranked rows from place `from` on to the output with the given sign;
    /// returns how many distinct rows rank (see [`Ranker::ranked`]).
    fn emit(
        &self,
        rows: &Ordered,
        from: &Place,
        sign: i64,
        out: &mut (BatchBuilder, Vec<i64>),
    ) -> DataflowResult<usize> {
        let (ranked, kept) = self.ranked(rows, from);
        let mut number_bytes = Vec::new();
        for (row, number, n) in ranked {
            match self.numbering {
                Some(_) => {
                    number_bytes.clear();
                    codec::encode_value(&ScalarValue::UInt64(Some(number)), &mut number_bytes)?;
                    out.0
                        .push(&[Part::Row(row, self.width), Part::Row(&number_bytes, 1)])?;
                }
                None => out.0.push(&[Part::Row(row, self.width)])?,
            }
            out.1.push(sign * n);
        }
        Ok(kept)
    }
}

/// Ranks rows within partitions; see the module documentation.
pub struct TopN {
    partition: Vec<usize>,
    order: Vec<SortColumn>,
    /// The ORDER BY columns to Arrow's row format.
    converter: RowConverter,
    ranker: Ranker,
    /// The input only inserts: rows that fall below the limit can be forgotten.
    append_only: bool,
    /// Partitions are stored one key each (they are bounded); otherwise a key per row.
    by_partition: bool,
    /// The input's columns.
    input: SchemaRef,
    schema: SchemaRef,
    partitions: FastMap<Vec<u8>, Ordered>,
    /// Distinct rows held over all partitions (counted as they come and go: progress asks
    /// every epoch).
    held: usize,
    /// Partitions changed since the last checkpoint and, when stored by row, the rows of each
    /// whose multiplicity changed (possibly more than once). hashbrown's map, for one lookup
    /// by a borrowed key.
    dirty: hashbrown::HashMap<Vec<u8>, Vec<Place>>,
    /// Keys read back in the other layout, deleted at the next checkpoint.
    stale: Vec<Vec<u8>>,
}

impl TopN {
    /// `schema` is the input's columns, plus the number's column with a `numbering`.
    pub fn new(
        partition: Vec<usize>,
        order: Vec<SortColumn>,
        numbering: Option<Numbering>,
        limit: Option<u64>,
        append_only: bool,
        schema: SchemaRef,
    ) -> DataflowResult<Self> {
        let width = schema.fields().len() - usize::from(numbering.is_some());
        if limit == Some(0) && numbering.is_none() {
            return Err(DataflowError::Internal("LIMIT 0 ranks nothing".into()));
        }
        let input = Arc::new(Schema::new(schema.fields()[..width].to_vec()));
        let converter = RowConverter::new(
            order
                .iter()
                .map(|s| {
                    SortField::new_with_options(
                        input.field(s.column).data_type().clone(),
                        SortOptions {
                            descending: s.descending,
                            nulls_first: s.nulls_first,
                        },
                    )
                })
                .collect(),
        )?;
        Ok(Self {
            partition,
            order,
            converter,
            ranker: Ranker {
                numbering,
                limit,
                width,
            },
            append_only,
            by_partition: append_only && limit.is_some(),
            input,
            schema,
            partitions: FastMap::default(),
            held: 0,
            dirty: hashbrown::HashMap::default(),
            stale: Vec::new(),
        })
    }

    /// The ORDER BY values of a batch's rows in Arrow's row format, and its partition columns.
    fn orders(&self, columns: &[ArrayRef]) -> DataflowResult<(Rows, Vec<ArrayRef>)> {
        let order: Vec<ArrayRef> = self
            .order
            .iter()
            .map(|s| columns[s.column].clone())
            .collect();
        let partition = self.partition.iter().map(|c| columns[*c].clone()).collect();
        Ok((self.converter.convert_columns(&order)?, partition))
    }

    /// The rows of a change: each one's partition key, place and weight, except those that an
    /// append-only input drops below the cut.
    fn places(
        &self,
        change: &Delta,
        mut each: impl FnMut(&[u8], Place, i64),
    ) -> DataflowResult<()> {
        let columns = change.batch.columns();
        let (orders, partition) = self.orders(columns)?;
        let (rows, keys) = (RowEncoder::new(columns), RowEncoder::new(&partition));
        let (mut key, mut row) = (Vec::new(), Vec::new());
        for (i, &weight) in change.weights.iter().enumerate() {
            key.clear();
            keys.encode(i, &mut key)?;
            let order = orders.row(i);
            if self.below_the_cut(&key, order.as_ref()) {
                continue;
            }
            row.clear();
            rows.encode(i, &mut row)?;
            each(&key, Place::new(order.as_ref(), &row), weight);
        }
        Ok(())
    }

    /// Whether a row with these ORDER BY values, inserted into an append-only input, lands
    /// below the limit of its partition for good, so that it changes nothing: with numbers
    /// that ties do not share, it sorts after the last of at least `limit` rows the partition
    /// held before the epoch, none of which can leave. (A tie is not judged here: the row's
    /// encoding would break it.)
    fn below_the_cut(&self, key: &[u8], order: &[u8]) -> bool {
        let (true, Some(limit), Some(Numbering::RowNumber) | None) =
            (self.append_only, self.ranker.limit, self.ranker.numbering)
        else {
            return false;
        };
        self.partitions.get(key).is_some_and(|rows| {
            rows.len() as u64 >= limit && rows.last().is_some_and(|last| order > last.order())
        })
    }

    /// Reads back a chunk of stored rows, keeping each one's stored encoding.
    fn restore_rows(&mut self, chunk: &[Stored]) -> DataflowResult<()> {
        let mut builder = BatchBuilder::new(&self.input, chunk.len());
        for (_, _, row, _) in chunk {
            builder.push(&[Part::Row(row, self.ranker.width)])?;
        }
        let batch = builder.finish()?;
        let (orders, partition) = self.orders(batch.columns())?;
        let keys = RowEncoder::new(&partition);
        let mut key = Vec::new();
        for (i, (stored, by_partition, row, n)) in chunk.iter().enumerate() {
            key.clear();
            keys.encode(i, &mut key)?;
            let place = Place::new(orders.row(i).as_ref(), row);
            // State written in the other layout is deleted and written again in this one.
            // (A partition's rows are read one after another under its one key.)
            if *by_partition != self.by_partition {
                if self.stale.last() != Some(stored) {
                    self.stale.push(stored.clone());
                }
                let dirty = self.dirty.entry_ref(key.as_slice()).or_default();
                if !self.by_partition {
                    dirty.push(place.clone());
                }
            }
            let rows = self.partitions.entry(key.clone()).or_default();
            if rows.add(place, *n) != *n {
                return Err(DataflowError::Corrupt(
                    "a ranking's row stored twice".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Operator for TopN {
    fn explain(&self) -> Explain {
        let number = self
            .ranker
            .numbering
            .map_or("rows".to_string(), |n| format!("{n:?}"));
        let limit = self
            .ranker
            .limit
            .map_or("every row".to_string(), |n| format!("up to {n}"));
        let operator = format!(
            "TopN: {number} of partitions by {:?}, ordered by {:?}, {limit}",
            self.partition,
            self.order.iter().map(|s| s.column).collect::<Vec<_>>()
        );
        let state = match (self.append_only, self.ranker.limit) {
            (true, Some(n)) => StateBound::Bounded(format!("the top {n} rows of each partition")),
            _ => StateBound::Grows("every row of each partition".into()),
        };
        Explain {
            operator,
            state,
            watermark: None,
        }
    }

    fn apply(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let input = &inputs[0];
        let mut changes: hashbrown::HashMap<Vec<u8>, Vec<(Place, i64)>> = Default::default();
        self.places(input, |key, place, w| {
            changes.entry_ref(key).or_default().push((place, w))
        })?;
        let (ranker, append_only) = (self.ranker, self.append_only);
        let mut out = (BatchBuilder::new(&self.schema, input.len()), Vec::new());
        for (key, changes) in changes {
            let mut rows = self.partitions.remove(&key).unwrap_or_default();
            self.held -= rows.len();
            // The rows before the first changed place keep their places and numbers: only
            // the rest can change (a new tenth best moves the tenth alone).
            let from = changes
                .iter()
                .map(|(place, _)| place)
                .min()
                .expect("a partition with changes")
                .clone();
            ranker.emit(&rows, &from, -1, &mut out)?;
            let by_row = !self.by_partition;
            let dirty = self.dirty.entry_ref(key.as_slice()).or_default();
            for (place, w) in changes {
                if by_row {
                    dirty.push(place.clone());
                }
                if rows.add(place, w) < 0 {
                    return Err(DataflowError::Internal(
                        "a ranking deleted a row it never held".into(),
                    ));
                }
            }
            let kept = ranker.emit(&rows, &from, 1, &mut out)?;
            if append_only && kept < rows.len() {
                // Nothing above the cut can leave, so nothing below it can rise.
                if by_row {
                    dirty.extend(rows.iter().skip(kept).map(|(p, _)| p.clone()));
                }
                rows.truncate(kept);
            }
            if !rows.is_empty() {
                self.held += rows.len();
                self.partitions.insert(key, rows);
            }
        }
        Delta::new(out.0.finish()?, out.1).consolidate()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        for key in self.stale.drain(..) {
            state.delete(&key);
        }
        let mut stored = vec![PARTITION];
        let mut value = Vec::new();
        for (key, mut places) in std::mem::take(&mut self.dirty) {
            let rows = self.partitions.get(&key);
            if self.by_partition {
                stored.truncate(1);
                stored.extend_from_slice(&key);
                match rows {
                    Some(rows) => {
                        value.clear();
                        for (place, n) in rows.iter() {
                            let row = place.row();
                            value.extend_from_slice(&(row.len() as u32).to_le_bytes());
                            value.extend_from_slice(row);
                            value.extend_from_slice(&n.to_le_bytes());
                        }
                        state.put_holding(&stored, &value, rows.len());
                    }
                    None => state.delete(&stored),
                }
                continue;
            }
            places.sort_unstable();
            places.dedup();
            for place in places {
                state.count(place.row(), rows.map_or(0, |rows| rows.get(&place)));
            }
        }
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        const CHUNK: usize = 4096;
        let mut chunk: Vec<Stored> = Vec::with_capacity(CHUNK);
        for entry in state {
            let (key, value) = entry?;
            if key.first() == Some(&PARTITION) {
                let mut d = Decoder::new(&value);
                while !d.is_empty() {
                    let row = d.len_prefixed()?.to_vec();
                    chunk.push((key.clone(), true, row, d.i64()?));
                }
            } else {
                let n = Decoder::new(&value).i64()?;
                chunk.push((key.clone(), false, key, n));
            }
            if chunk.len() >= CHUNK {
                self.restore_rows(&chunk)?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            self.restore_rows(&chunk)?;
        }
        self.held = self.partitions.values().map(Ordered::len).sum();
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.held
    }
}
