//! Ranking within partitions: `ROW_NUMBER()`, `RANK()` and `DENSE_RANK()` over
//! `PARTITION BY .. ORDER BY ..`, optionally cut at a limit (`WHERE rn <= 3`), and
//! `ORDER BY .. LIMIT n` over a whole relation (a leaderboard).
//!
//! Each partition keeps its rows in order. For every partition an epoch touches, the operator
//! retracts the ranked rows it emitted before and inserts the ranked rows as they stand now,
//! down to the limit; rows that kept their rank cancel out. So when a member of the top N is
//! deleted or drops, the next one moves up. The work per touched partition is the number of
//! ranked rows (the limit, or the whole partition without one).
//!
//! Ties: rows equal in the ORDER BY columns share a RANK or DENSE_RANK. ROW_NUMBER (and
//! `ORDER BY .. LIMIT`) breaks ties by the row's encoding, so the choice among tied rows is
//! stable across epochs and restarts; SQL leaves it open.
//!
//! Over append-only input a row that falls below the limit can never rise again (nothing
//! above it can be deleted), so it is forgotten: state stays at the limit per partition.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;

use crate::codec::{self, BatchBuilder, Decoder, Part, RowEncoder, decode_row, encode_row};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap};

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

/// A row's place in its partition: its ORDER BY values, then its encoding.
#[derive(Clone, Debug)]
struct Place {
    order: Vec<ScalarValue>,
    row: Vec<u8>,
    spec: Arc<[SortColumn]>,
}

impl Place {
    /// Equal in every ORDER BY column (tied).
    fn ties(&self, other: &Place) -> bool {
        self.compare_order(other) == Ordering::Equal
    }

    fn compare_order(&self, other: &Place) -> Ordering {
        compare_orders(&self.order, &other.order, &self.spec)
    }
}

/// Compares two rows' ORDER BY values.
fn compare_orders(a: &[ScalarValue], b: &[ScalarValue], spec: &[SortColumn]) -> Ordering {
    for ((a, b), s) in a.iter().zip(b).zip(spec) {
        let o = match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if s.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if s.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = codec::compare_values(a, b);
                if s.descending { o.reverse() } else { o }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

impl PartialEq for Place {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Place {}
impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare_order(other)
            .then_with(|| self.row.cmp(&other.row))
    }
}

/// A partition's rows in order (each place holds its row's encoding), with multiplicities.
type Ordered = BTreeMap<Place, i64>;

/// A ranked row: its encoding, its number and its multiplicity.
type Ranked<'a> = (&'a [u8], u64, i64);

/// A changed row: its place and weight.
type Change = (Place, i64);

/// Ranks rows within partitions; see the module documentation.
pub struct TopN {
    partition: Vec<usize>,
    order: Arc<[SortColumn]>,
    /// Appends the number as the last column (a window function); `None`: rows as they are.
    numbering: Option<Numbering>,
    /// The largest number kept (`None`: every row).
    limit: Option<u64>,
    /// The input only inserts: rows that fall below the limit can be forgotten.
    append_only: bool,
    /// The input's width.
    width: usize,
    schema: SchemaRef,
    partitions: FastMap<Vec<u8>, Ordered>,
    /// Distinct rows held over all partitions (counted as they come and go: progress asks
    /// every epoch).
    held: usize,
    /// Rows (encoded) whose multiplicity changed since the last checkpoint, with their
    /// partition's key and ORDER BY values.
    dirty: FastMap<Vec<u8>, (Vec<u8>, Vec<ScalarValue>)>,
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
        Ok(Self {
            partition,
            order: order.into(),
            numbering,
            limit,
            append_only,
            width,
            schema,
            partitions: FastMap::default(),
            held: 0,
            dirty: FastMap::default(),
        })
    }

    fn place(&self, values: &[ScalarValue], row: Vec<u8>) -> Place {
        Place {
            order: self
                .order
                .iter()
                .map(|s| values[s.column].clone())
                .collect(),
            row,
            spec: self.order.clone(),
        }
    }

    fn partition_key(&self, values: &[ScalarValue]) -> DataflowResult<Vec<u8>> {
        let key: Vec<ScalarValue> = self.partition.iter().map(|c| values[*c].clone()).collect();
        encode_row(&key)
    }

    /// The ranked rows of a partition, down to the limit: (values, number, multiplicity).
    /// Also returns where ranking stopped: the first place wholly past the limit, if any.
    fn ranked<'a>(&self, rows: &'a Ordered) -> (Vec<Ranked<'a>>, Option<Place>) {
        let limit = self.limit.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut position = 0u64; // rows so far
        let mut distinct = 0u64; // distinct ORDER BY values so far
        let mut previous: Option<&Place> = None;
        let mut number = 0u64;
        for (place, n) in rows {
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
                        return (out, Some(place.clone()));
                    }
                    // A row whose copies straddle the limit is kept: some of it ranks.
                    for _ in 0..(*n as u64).min(room) {
                        position += 1;
                        out.push((place.row.as_slice(), position, 1));
                    }
                }
                Some(Numbering::Rank | Numbering::DenseRank) => {
                    if number > limit {
                        return (out, Some(place.clone()));
                    }
                    position += *n as u64;
                    out.push((place.row.as_slice(), number, *n));
                }
            }
        }
        (out, None)
    }

    fn emit(
        &self,
        rows: &Ordered,
        sign: i64,
        out: &mut (BatchBuilder, Vec<i64>),
    ) -> DataflowResult<Option<Place>> {
        let (ranked, cut) = self.ranked(rows);
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
        Ok(cut)
    }

    /// Whether a row with these ORDER BY values, inserted into an append-only input, lands
    /// below the limit of its partition for good, so that it changes nothing: with numbers
    /// that ties do not share, it sorts after the last of at least `limit` rows the partition
    /// held before the epoch, none of which can leave. (A tie is not judged here: the row's
    /// encoding would break it.)
    fn below_the_cut(&self, key: &[u8], order: &[ScalarValue]) -> bool {
        let (true, Some(limit), Some(Numbering::RowNumber) | None) =
            (self.append_only, self.limit, self.numbering)
        else {
            return false;
        };
        let Some(rows) = self.partitions.get(key) else {
            return false;
        };
        match rows.last_key_value() {
            Some((last, _)) if rows.len() as u64 >= limit => {
                compare_orders(order, &last.order, &self.order) == Ordering::Greater
            }
            _ => false,
        }
    }

    /// Notes that a row's multiplicity changed.
    fn touch(&mut self, key: &[u8], place: &Place) {
        self.dirty
            .insert(place.row.clone(), (key.to_vec(), place.order.clone()));
    }
}

impl Operator for TopN {
    fn explain(&self) -> Explain {
        let number = self
            .numbering
            .map_or("rows".to_string(), |n| format!("{n:?}"));
        let limit = self
            .limit
            .map_or("every row".to_string(), |n| format!("up to {n}"));
        let operator = format!(
            "TopN: {number} of partitions by {:?}, ordered by {:?}, {limit}",
            self.partition,
            self.order.iter().map(|s| s.column).collect::<Vec<_>>()
        );
        let state = match (self.append_only, self.limit) {
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
        let mut changes: FastMap<Vec<u8>, Vec<Change>> = FastMap::default();
        let columns = input.batch.columns();
        let partition: Vec<ArrayRef> = self.partition.iter().map(|c| columns[*c].clone()).collect();
        let (rows, keys) = (RowEncoder::new(columns), RowEncoder::new(&partition));
        for i in 0..input.len() {
            let (mut key, mut row) = (Vec::new(), Vec::new());
            keys.encode(i, &mut key)?;
            let order = self
                .order
                .iter()
                .map(|s| ScalarValue::try_from_array(&columns[s.column], i))
                .collect::<Result<Vec<_>, _>>()?;
            if self.below_the_cut(&key, &order) {
                continue;
            }
            rows.encode(i, &mut row)?;
            let place = Place {
                order,
                row,
                spec: self.order.clone(),
            };
            changes
                .entry(key)
                .or_default()
                .push((place, input.weights[i]));
        }
        let mut out = (BatchBuilder::new(&self.schema, input.len()), Vec::new());
        for (key, changes) in changes {
            let mut rows = self.partitions.remove(&key).unwrap_or_default();
            self.held -= rows.len();
            self.emit(&rows, -1, &mut out)?;
            for (place, w) in changes {
                self.touch(&key, &place);
                let now = rows.get(&place).copied().unwrap_or(0) + w;
                if now < 0 {
                    return Err(DataflowError::Internal(
                        "a ranking deleted a row it never held".into(),
                    ));
                }
                match now {
                    0 => rows.remove(&place),
                    n => rows.insert(place, n),
                };
            }
            let cut = self.emit(&rows, 1, &mut out)?;
            if self.append_only
                && let Some(cut) = cut
            {
                // Nothing above the cut can leave, so nothing below it can rise.
                for (place, _) in rows.split_off(&cut) {
                    self.touch(&key, &place);
                }
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
        for (row, (key, order)) in std::mem::take(&mut self.dirty) {
            let place = Place {
                order,
                row,
                spec: self.order.clone(),
            };
            let held = self
                .partitions
                .get(&key)
                .and_then(|rows| rows.get(&place))
                .copied()
                .unwrap_or(0);
            state.count(&place.row, held);
        }
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        for entry in state {
            let (row, value) = entry?;
            let n = Decoder::new(&value).i64()?;
            let values = decode_row(&row, self.width)?;
            let key = self.partition_key(&values)?;
            let place = self.place(&values, row);
            self.partitions.entry(key).or_default().insert(place, n);
        }
        self.held = self.partitions.values().map(BTreeMap::len).sum();
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ApplyNow, delta, schema, sorted};

    const SCORES: &[&str] = &["game:Utf8", "player:Utf8", "points:Int64"];

    fn top(numbering: Option<Numbering>, limit: Option<u64>, append_only: bool) -> TopN {
        let mut columns = SCORES.to_vec();
        if numbering.is_some() {
            columns.push("n:Int64");
        }
        let mut schema = schema(&columns);
        if numbering.is_some() {
            // Window functions number with UInt64.
            let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields[3] = arrow::datatypes::Field::new("n", arrow::datatypes::DataType::UInt64, true);
            schema = Arc::new(arrow::datatypes::Schema::new(fields));
        }
        TopN::new(
            vec![0],
            vec![SortColumn {
                column: 2,
                descending: true,
                nulls_first: false,
            }],
            numbering,
            limit,
            append_only,
            schema,
        )
        .unwrap()
    }

    fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
        let mut rows: Vec<(i64, String)> = rows.iter().map(|(w, r)| (*w, r.to_string())).collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        rows
    }

    #[test]
    fn the_next_row_moves_up_when_a_top_row_goes() {
        let mut t = top(Some(Numbering::RowNumber), Some(2), false);
        let out = t
            .apply_now(&[delta(
                SCORES,
                &[(1, "g|a|10"), (1, "g|b|30"), (1, "g|c|20"), (1, "h|d|5")],
            )])
            .unwrap();
        assert_eq!(
            sorted(&out),
            s(&[(1, "g|b|30|1"), (1, "g|c|20|2"), (1, "h|d|5|1")])
        );
        let out = t.apply_now(&[delta(SCORES, &[(-1, "g|b|30")])]).unwrap();
        assert_eq!(
            sorted(&out),
            s(&[
                (-1, "g|b|30|1"),
                (-1, "g|c|20|2"),
                (1, "g|c|20|1"),
                (1, "g|a|10|2")
            ])
        );
        // A change below the cut changes nothing.
        let out = t.apply_now(&[delta(SCORES, &[(1, "g|e|1")])]).unwrap();
        assert!(out.is_empty());
        assert_eq!(t.state_rows(), 4);
    }

    #[test]
    fn ranks_share_numbers_on_ties() {
        let rows = [(1, "g|a|30"), (1, "g|b|30"), (1, "g|c|20"), (1, "g|d|10")];
        let mut rank = top(Some(Numbering::Rank), Some(2), false);
        let out = rank.apply_now(&[delta(SCORES, &rows)]).unwrap();
        assert_eq!(sorted(&out), s(&[(1, "g|a|30|1"), (1, "g|b|30|1")]));
        let mut dense = top(Some(Numbering::DenseRank), Some(2), false);
        let out = dense.apply_now(&[delta(SCORES, &rows)]).unwrap();
        assert_eq!(
            sorted(&out),
            s(&[(1, "g|a|30|1"), (1, "g|b|30|1"), (1, "g|c|20|2")])
        );
    }

    #[test]
    fn append_only_input_keeps_only_the_top() {
        let mut t = top(None, Some(2), true);
        let out = t
            .apply_now(&[delta(
                SCORES,
                &[(1, "g|a|10"), (1, "g|b|30"), (2, "g|c|20"), (1, "g|d|5")],
            )])
            .unwrap();
        // A repeated row takes as many places as it has copies.
        assert_eq!(sorted(&out), s(&[(1, "g|b|30"), (1, "g|c|20")]));
        assert_eq!(t.state_rows(), 2);
        let out = t.apply_now(&[delta(SCORES, &[(1, "g|e|25")])]).unwrap();
        assert_eq!(sorted(&out), s(&[(-1, "g|c|20"), (1, "g|e|25")]));
        assert_eq!(t.state_rows(), 2);
        // Below the last of the top: nothing changes, nothing is kept. A tie with the last
        // is broken by the row's encoding ("f" after "e"), a new top row cuts the last.
        let out = t
            .apply_now(&[delta(SCORES, &[(1, "g|f|25"), (3, "g|h|1"), (1, "k|a|1")])])
            .unwrap();
        assert_eq!(sorted(&out), s(&[(1, "k|a|1")]));
        assert_eq!(t.state_rows(), 3);
        let out = t
            .apply_now(&[delta(SCORES, &[(1, "g|h|1"), (1, "g|z|99")])])
            .unwrap();
        assert_eq!(sorted(&out), s(&[(-1, "g|e|25"), (1, "g|z|99")]));
        assert_eq!(t.state_rows(), 3);
    }
}
