//! Incremental equi-joins: inner, outer (left, right, full), semi and anti.
//!
//! State: each side's rows indexed by join key (a multiset per key). For an epoch with
//! changes `dL` and `dR` the inner change is `dL ⋈ R + (L + dL) ⋈ dR`: left changes meet the
//! right side as it was, then right changes meet the left side as it now is. A residual
//! (non-equi) condition filters the joined rows. Rows whose key has a NULL never match
//! (SQL equality), unless the join compares keys with `IS NOT DISTINCT FROM`.
//!
//! The other kinds are built from the rows of a side that have no match ("unmatched"): an
//! outer join adds them padded with NULLs, an anti join is them, a semi join is the side
//! minus them. A row is unmatched while the other side holds no row under its key, so only
//! keys whose other side changed can flip their rows: for those keys every row is retracted
//! as it stood before the epoch and inserted as it stands after, and the two cancel before
//! any output is built where the row did not flip; elsewhere only the rows that changed do.
//! With a residual condition, "a row under its key" becomes "a row under its key for which
//! the condition holds", evaluated for the rows in question against their key's rows on the
//! other side.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::codec::{BatchBuilder, Part, RowEncoder};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::window::micros_at;
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

mod expiry;
mod not_in;
mod side;

pub use expiry::TimeBound;
use not_in::NULL_KEY;
use side::{Restoring, Side};

/// An encoded row (see [`crate::codec`]): what a side holds, shared by its index, its time
/// index and its dirty set. Output rows are decoded from it straight into Arrow columns.
type Row = Arc<[u8]>;

/// An encoded join key.
type Key = Arc<[u8]>;

/// The rows of one side that share a join key, with their multiplicities.
type Bucket = FastMap<Row, i64>;

/// A changed row of an input: its join key (None when a NULL keeps it from matching), its
/// encoding, and its event time where the side's rows expire.
struct Change {
    key: Option<Key>,
    row: Row,
    time: Option<i64>,
}

/// Which rows a join returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// Left rows that have a match (`EXISTS`, `IN`), once each.
    LeftSemi,
    /// Left rows that have no match (`NOT EXISTS`).
    LeftAnti,
    RightSemi,
    RightAnti,
}

impl JoinKind {
    /// Whether the output holds matched pairs.
    fn pairs(self) -> bool {
        matches!(
            self,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        )
    }

    /// What the output makes of a side's unmatched rows.
    fn unmatched(self, side: Which) -> Unmatched {
        use JoinKind as K;
        match (self, side) {
            (K::Left | K::Full, Which::Left) | (K::Right | K::Full, Which::Right) => {
                Unmatched::Padded
            }
            (K::LeftAnti, Which::Left) | (K::RightAnti, Which::Right) => Unmatched::Rows,
            (K::LeftSemi, Which::Left) | (K::RightSemi, Which::Right) => Unmatched::Complement,
            _ => Unmatched::Ignored,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Left,
    Right,
}

/// How unmatched rows of a side show in the output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unmatched {
    Ignored,
    /// With NULLs in the other side's columns (outer joins).
    Padded,
    /// As they are (anti joins).
    Rows,
    /// The side's rows that are not unmatched (semi joins).
    Complement,
}

/// Incremental join on equal keys, with an optional residual condition.
pub struct Join {
    kind: JoinKind,
    left_keys: Vec<Arc<dyn PhysicalExpr>>,
    right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Evaluated over a pair of rows (`pair_schema`): a pair matches only where it holds.
    residual: Option<Arc<dyn PhysicalExpr>>,
    /// Both sides' columns, left then right (the output schema, unless a semi or anti join).
    pair_schema: SchemaRef,
    nulls_equal: bool,
    left_width: usize,
    right_width: usize,
    schema: SchemaRef,
    left: Side,
    right: Side,
    /// `NOT IN (subquery)`: an anti join with SQL's NULL rules (see [`Join::not_in`]).
    null_aware: bool,
    /// With `null_aware`: rows on the right, and those among them whose key is NULL.
    right_rows: i64,
    right_nulls: i64,
    /// Frees rows behind the watermarks (interval joins of streams).
    time_bound: Option<TimeBound>,
}

impl Join {
    /// An inner join; `schema` is the left side's columns, then the right side's.
    pub fn new(
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        residual: Option<Arc<dyn PhysicalExpr>>,
        nulls_equal: bool,
        left_width: usize,
        schema: SchemaRef,
    ) -> Self {
        let right_width = schema.fields().len() - left_width;
        Self::with_kind(
            JoinKind::Inner,
            left_keys,
            right_keys,
            residual,
            nulls_equal,
            (left_width, right_width),
            schema.clone(),
            schema,
        )
    }

    /// A join of any kind. `widths` are the column counts of the two sides; `pair_schema`
    /// both sides' columns, over which `residual` is evaluated; `schema` the output's: both
    /// sides' columns (nullable where padded), or one side's for semi and anti joins.
    #[allow(clippy::too_many_arguments)]
    pub fn with_kind(
        kind: JoinKind,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        residual: Option<Arc<dyn PhysicalExpr>>,
        nulls_equal: bool,
        widths: (usize, usize),
        pair_schema: SchemaRef,
        schema: SchemaRef,
    ) -> Self {
        let (left_width, right_width) = widths;
        Self {
            kind,
            left_keys,
            right_keys,
            residual,
            pair_schema,
            nulls_equal,
            left_width,
            right_width,
            schema,
            left: Side::default(),
            right: Side::default(),
            null_aware: false,
            right_rows: 0,
            right_nulls: 0,
            time_bound: None,
        }
    }

    /// An input's changed rows: each one's key, encoding and (where `side`'s rows expire)
    /// event time.
    fn changes(
        &self,
        exprs: &[Arc<dyn PhysicalExpr>],
        side: &Side,
        d: &Delta,
    ) -> DataflowResult<Vec<Change>> {
        let keys: Vec<ArrayRef> = exprs
            .iter()
            .map(|e| Ok(e.evaluate(&d.batch)?.into_array(d.len())?))
            .collect::<DataflowResult<_>>()?;
        let key_encoder = RowEncoder::new(&keys);
        let row_encoder = RowEncoder::new(d.batch.columns());
        let times = side.time_column.map(|c| d.batch.column(c));
        let mut buf = Vec::new();
        (0..d.len())
            .map(|i| {
                let key = if !self.nulls_equal && keys.iter().any(|k| k.is_null(i)) {
                    None
                } else {
                    buf.clear();
                    key_encoder.encode(i, &mut buf)?;
                    Some(Key::from(&buf[..]))
                };
                buf.clear();
                row_encoder.encode(i, &mut buf)?;
                let time = match times {
                    Some(t) => micros_at(t, i)?,
                    None => None,
                };
                Ok(Change {
                    key,
                    row: Row::from(&buf[..]),
                    time,
                })
            })
            .collect()
    }

    /// A batch of output rows: pairs (both sides' columns, NULLs for a missing side) or, with
    /// `pairs` false, the one side each row has (semi and anti joins).
    fn batch(&self, schema: &SchemaRef, rows: &Rows, pairs: bool) -> DataflowResult<RecordBatch> {
        fn part(row: &Option<Row>, width: usize) -> Part<'_> {
            match row {
                Some(r) => Part::Row(r, width),
                None => Part::Nulls(width),
            }
        }
        let mut builder = BatchBuilder::new(schema, rows.rows.len());
        for (left, right) in &rows.rows {
            match (pairs, left, right) {
                (true, _, _) => {
                    builder.push(&[part(left, self.left_width), part(right, self.right_width)])?
                }
                (false, Some(l), _) => builder.push(&[Part::Row(l, self.left_width)])?,
                (false, None, Some(r)) => builder.push(&[Part::Row(r, self.right_width)])?,
                (false, None, None) => {
                    return Err(DataflowError::Internal("an output row of no side".into()));
                }
            }
        }
        builder.finish()
    }
}

/// Output rows with weights, gathered for one batch: each row's left part and right part
/// (None: NULLs in a pair, or not in the output of a semi or anti join).
#[derive(Default)]
struct Rows {
    rows: Vec<(Option<Row>, Option<Row>)>,
    weights: Vec<i64>,
}

impl Rows {
    fn pair(&mut self, left: &Row, right: &Row, weight: i64) {
        self.rows.push((Some(left.clone()), Some(right.clone())));
        self.weights.push(weight);
    }

    /// A row of one side alone.
    fn one(&mut self, side: Which, row: &Row, weight: i64) {
        self.rows.push(match side {
            Which::Left => (Some(row.clone()), None),
            Which::Right => (None, Some(row.clone())),
        });
        self.weights.push(weight);
    }
}

/// One side's rows on their way out as unmatched (or, for a semi join, as not unmatched),
/// with the weights of equal rows summed. A row whose matching is in question is taken out as
/// it stood before the epoch and put back as it stands after; where its matching did not
/// change the two cancel here, before any output is built.
#[derive(Default)]
struct Tally {
    weights: FastMap<Row, i64>,
}

impl Tally {
    fn add(&mut self, row: &Row, weight: i64) {
        match self.weights.get_mut(row) {
            Some(w) => *w += weight,
            None => {
                self.weights.insert(row.clone(), weight);
            }
        }
    }

    /// The rows whose weights do not cancel, as output rows of `side`.
    fn emit(self, side: Which, out: &mut Rows) {
        for (row, w) in self.weights {
            if w != 0 {
                out.one(side, &row, w);
            }
        }
    }
}

impl Join {
    fn side(&self, side: Which) -> &Side {
        match side {
            Which::Left => &self.left,
            Which::Right => &self.right,
        }
    }

    /// The change of one side's unmatched rows over an epoch, given that side's changes and
    /// the keys whose other side changes, tallied as the output takes them (negated for a
    /// semi join, whose output is the rows that are not unmatched). Call before the epoch's
    /// changes are added to the state (`after == false`: the part computed from the state as
    /// it was) and once after (`after == true`: the part from the state as it is).
    fn unmatched(
        &self,
        side: Which,
        changes: &[Change],
        weights: &[i64],
        flipping: &FastSet<Key>,
        after: bool,
        out: &mut Tally,
    ) -> DataflowResult<()> {
        let mine = self.side(side);
        let sign = if after { 1 } else { -1 };
        let taken = match self.kind.unmatched(side) {
            Unmatched::Complement => -1,
            _ => 1,
        };
        // Rows whose matching is in question, with the weight they count with if unmatched.
        let mut candidates: Vec<(&[u8], &Row, i64)> = Vec::new();
        for key in flipping {
            for (row, n) in mine.under(key) {
                candidates.push((&key[..], row, sign * n));
            }
        }
        if !after {
            // Keys whose other side stays as it is: only the rows that changed change.
            for (c, w) in changes.iter().zip(weights) {
                match &c.key {
                    None => out.add(&c.row, taken * w),
                    Some(k) if !flipping.contains(k) => candidates.push((&k[..], &c.row, *w)),
                    Some(_) => {}
                }
            }
        }
        let matched = self.matched(side, &candidates)?;
        for ((_, row, w), m) in candidates.into_iter().zip(matched) {
            if !m {
                out.add(row, taken * w);
            }
        }
        Ok(())
    }

    /// Whether each row of `side` (with its key) has a match on the other side as it now
    /// is: a row under the same key, for which the residual condition holds if there is one.
    fn matched(&self, side: Which, candidates: &[(&[u8], &Row, i64)]) -> DataflowResult<Vec<bool>> {
        let theirs = self.side(match side {
            Which::Left => Which::Right,
            Which::Right => Which::Left,
        });
        let Some(cond) = &self.residual else {
            return Ok(candidates
                .iter()
                .map(|(k, _, _)| theirs.index.contains_key(*k))
                .collect());
        };
        // Every pair of a candidate and a row under its key, evaluated at once.
        let mut pairs = Rows::default();
        let mut owner = Vec::new();
        for (i, (key, row, _)) in candidates.iter().enumerate() {
            for (other, _) in theirs.under(key) {
                match side {
                    Which::Left => pairs.pair(row, other, 1),
                    Which::Right => pairs.pair(other, row, 1),
                }
                owner.push(i);
            }
        }
        let mut matched = vec![false; candidates.len()];
        if pairs.rows.is_empty() {
            return Ok(matched);
        }
        let batch = self.batch(&self.pair_schema, &pairs, true)?;
        let holds = cond.evaluate(&batch)?.into_array(batch.num_rows())?;
        let holds = holds.as_boolean();
        for (p, i) in owner.into_iter().enumerate() {
            if holds.is_valid(p) && holds.value(p) {
                matched[i] = true;
            }
        }
        Ok(matched)
    }

    /// An epoch of the join on equal keys.
    fn apply_equi(&mut self, inputs: &[Delta], _epoch: &EpochContext) -> DataflowResult<Delta> {
        let (dl, dr) = (&inputs[0], &inputs[1]);
        let left_rows = self.changes(&self.left_keys, &self.left, dl)?;
        let right_rows = self.changes(&self.right_keys, &self.right, dr)?;

        // Unmatched rows of each side that the output needs, before the state changes.
        let tracks = |side| self.kind.unmatched(side) != Unmatched::Ignored;
        let (mut unmatched_left, mut unmatched_right) = (Tally::default(), Tally::default());
        let flipping_left = match tracks(Which::Left) {
            true => Self::keys_of(&right_rows),
            false => FastSet::default(),
        };
        let flipping_right = match tracks(Which::Right) {
            true => Self::keys_of(&left_rows),
            false => FastSet::default(),
        };
        if tracks(Which::Left) {
            self.unmatched(
                Which::Left,
                &left_rows,
                &dl.weights,
                &flipping_left,
                false,
                &mut unmatched_left,
            )?;
        }
        if tracks(Which::Right) {
            self.unmatched(
                Which::Right,
                &right_rows,
                &dr.weights,
                &flipping_right,
                false,
                &mut unmatched_right,
            )?;
        }

        let pairs = self.kind.pairs();
        let mut joined = Rows::default();
        for (c, &w) in left_rows.iter().zip(&dl.weights) {
            let Some(key) = &c.key else { continue };
            if pairs {
                for (r, rw) in self.right.under(key) {
                    joined.pair(&c.row, r, w * rw);
                }
            }
            self.left.add(key, &c.row, w, c.time)?;
        }
        for (c, &w) in right_rows.iter().zip(&dr.weights) {
            let Some(key) = &c.key else { continue };
            if pairs {
                for (l, lw) in self.left.under(key) {
                    joined.pair(l, &c.row, w * lw);
                }
            }
            self.right.add(key, &c.row, w, c.time)?;
        }

        let batch = self.batch(&self.schema, &joined, true)?;
        let mut out = Delta::new(batch, joined.weights);
        if let Some(cond) = &self.residual
            && !out.is_empty()
        {
            // Pairs have both sides' columns, as the residual expects.
            let mask = cond.evaluate(&out.batch)?.into_array(out.len())?;
            out = out.filter(mask.as_boolean())?;
        }

        // And after it changed.
        let mut more = Rows::default();
        if tracks(Which::Left) {
            self.unmatched(
                Which::Left,
                &[],
                &[],
                &flipping_left,
                true,
                &mut unmatched_left,
            )?;
            self.unmatched_output(
                Which::Left,
                unmatched_left,
                &left_rows,
                &dl.weights,
                &mut more,
            );
        }
        if tracks(Which::Right) {
            self.unmatched(
                Which::Right,
                &[],
                &[],
                &flipping_right,
                true,
                &mut unmatched_right,
            )?;
            self.unmatched_output(
                Which::Right,
                unmatched_right,
                &right_rows,
                &dr.weights,
                &mut more,
            );
        }
        if more.rows.is_empty() {
            return Ok(out);
        }
        let batch = self.batch(&self.schema, &more, pairs)?;
        Delta::concat(&self.schema, &[out, Delta::new(batch, more.weights)])
    }

    /// The keys of changed rows.
    fn keys_of(rows: &[Change]) -> FastSet<Key> {
        rows.iter().filter_map(|c| c.key.clone()).collect()
    }

    /// A side's unmatched change as output rows, per what the join kind makes of them.
    fn unmatched_output(
        &self,
        side: Which,
        mut unmatched: Tally,
        changes: &[Change],
        weights: &[i64],
        out: &mut Rows,
    ) {
        match self.kind.unmatched(side) {
            Unmatched::Ignored => {}
            // Padded rows lack the other side's part: it builds as NULLs.
            Unmatched::Rows | Unmatched::Padded => unmatched.emit(side, out),
            Unmatched::Complement => {
                for (c, w) in changes.iter().zip(weights) {
                    unmatched.add(&c.row, *w);
                }
                unmatched.emit(side, out);
            }
        }
    }
}

impl Operator for Join {
    fn explain(&self) -> Explain {
        let keys: Vec<String> = self
            .left_keys
            .iter()
            .zip(&self.right_keys)
            .map(|(l, r)| format!("{l} = {r}"))
            .collect();
        let residual = self
            .residual
            .as_ref()
            .map_or(String::new(), |r| format!(" AND {r}"));
        Explain {
            operator: match self.null_aware {
                true => format!(
                    "NOT IN (null-aware anti join) on {}{residual}",
                    keys.join(" AND ")
                ),
                false if keys.is_empty() => format!("{:?} cross join{residual}", self.kind),
                false => format!("{:?} join on {}{residual}", self.kind, keys.join(" AND ")),
            },
            state: match self.time_bound {
                Some(b) if b.bounds_both() => StateBound::Bounded(
                    match b.left_retracts || b.right_retracts || b.whole_keys {
                        // A row waits for its own side's watermark as well.
                        true => "the rows of both inputs until the watermarks pass them",
                        false => {
                            "the rows of both inputs until the other input's watermark passes them"
                        }
                    }
                    .into(),
                ),
                _ => StateBound::Grows("every row of both inputs, by join key".into()),
            },
            watermark: self.time_bound.map(|b| b.left_stream),
        }
    }

    fn apply(&mut self, inputs: &[Delta], epoch: &EpochContext) -> DataflowResult<Delta> {
        if self.null_aware {
            return self.apply_not_in(inputs, epoch);
        }
        let out = self.apply_equi(inputs, epoch)?;
        self.expire(epoch);
        Ok(out)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        self.left.checkpoint(0, state);
        self.right.checkpoint(1, state);
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        let (mut left, mut right) = (Restoring::default(), Restoring::default());
        for entry in state {
            let (k, v) = entry?;
            match k.first() {
                Some(tag) if tag % 2 == 0 => {
                    left.read(k, &v, self.left_width, self.left.time_column)?
                }
                Some(_) => right.read(k, &v, self.right_width, self.right.time_column)?,
                None => return Err(DataflowError::Corrupt("join state key".into())),
            }
        }
        left.restore(&mut self.left)?;
        right.restore(&mut self.right)?;
        let count = |b: &Bucket| b.values().sum::<i64>();
        self.right_rows = self.right.index.values().map(count).sum();
        self.right_nulls = self.right.index.get(NULL_KEY).map_or(0, count);
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.left.rows() + self.right.rows()
    }
}

#[cfg(test)]
mod tests;
