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
//! as it stood before the epoch and inserted as it stands after; elsewhere only the rows that
//! changed do. With a residual condition, "a row under its key" becomes "a row under its key
//! for which the condition holds", evaluated for the rows in question against their key's
//! rows on the other side.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use crate::codec::{self, Decoder, decode_row, encode_row};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::{DataflowError, DataflowResult, Delta, FastMap, FastSet};

mod expiry;
mod not_in;

pub use expiry::TimeBound;
use not_in::NULL_KEY;

/// The rows of one side that share a join key: encoded row -> (values, multiplicity).
type Bucket = FastMap<Vec<u8>, (Vec<ScalarValue>, i64)>;

/// A row's encoded join key (None when a NULL keeps it from matching) and its values.
type KeyedRow = (Option<Vec<u8>>, Vec<ScalarValue>);

#[derive(Default)]
struct Side {
    index: FastMap<Vec<u8>, Bucket>,
    /// (key, row) pairs changed since the last checkpoint.
    dirty: FastSet<(Vec<u8>, Vec<u8>)>,
    /// With a time bound: the column of the rows' event time, and the rows by that time.
    time_column: Option<usize>,
    times: expiry::TimeIndex,
    /// Distinct rows held (counted as they come and go: progress asks every epoch).
    held: usize,
}

impl Side {
    fn add(&mut self, key: &[u8], row: Vec<ScalarValue>, w: i64) -> DataflowResult<()> {
        let row_bytes = encode_row(&row)?;
        let bucket = self.index.entry(key.to_vec()).or_default();
        let entry = bucket.entry(row_bytes.clone()).or_insert((row, 0));
        let was = entry.1;
        entry.1 += w;
        let now = entry.1;
        if now < 0 {
            return Err(DataflowError::Internal(
                "join side holds a negative row".into(),
            ));
        }
        let timed = self.time_column.is_some();
        let arrived = (timed && was == 0 && now > 0).then(|| entry.0.clone());
        match (was, now) {
            (0, n) if n > 0 => self.held += 1,
            (w, 0) if w > 0 => self.held -= 1,
            _ => {}
        }
        if now == 0 {
            bucket.remove(&row_bytes);
            if bucket.is_empty() {
                self.index.remove(key);
            }
        }
        if let Some(values) = arrived {
            self.index_time(key, &row_bytes, &values);
        }
        self.dirty.insert((key.to_vec(), row_bytes));
        Ok(())
    }

    fn checkpoint(&mut self, tag: u8, state: &mut StateWriter<'_>) {
        for (key, row) in self.dirty.drain() {
            let mut k = Vec::with_capacity(5 + key.len() + row.len());
            k.push(tag);
            k.extend((key.len() as u32).to_be_bytes());
            k.extend_from_slice(&key);
            k.extend_from_slice(&row);
            match self.index.get(&key).and_then(|b| b.get(&row)) {
                Some((_, w)) => state.put(&k, w.to_le_bytes().to_vec()),
                None => state.delete(&k),
            }
        }
    }

    fn rows(&self) -> usize {
        self.held
    }
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

    /// Each row's encoded key (None when a NULL keeps it from matching) and values.
    fn keyed_rows(
        &self,
        exprs: &[Arc<dyn PhysicalExpr>],
        d: &Delta,
    ) -> DataflowResult<Vec<KeyedRow>> {
        let keys: Vec<ArrayRef> = exprs
            .iter()
            .map(|e| Ok(e.evaluate(&d.batch)?.into_array(d.len())?))
            .collect::<DataflowResult<_>>()?;
        (0..d.len())
            .map(|i| {
                let k = codec::row_values(&keys, i)?;
                let key = if !self.nulls_equal && k.iter().any(|v| v.is_null()) {
                    None
                } else {
                    Some(encode_row(&k)?)
                };
                Ok((key, codec::row_values(d.batch.columns(), i)?))
            })
            .collect()
    }
}

/// Rows with weights, gathered for one output batch.
#[derive(Default)]
struct Rows {
    rows: Vec<Vec<ScalarValue>>,
    weights: Vec<i64>,
}

impl Rows {
    fn push(&mut self, row: Vec<ScalarValue>, weight: i64) {
        self.rows.push(row);
        self.weights.push(weight);
    }
}

impl Join {
    /// The change of one side's unmatched rows over an epoch, given that side's changes and
    /// the keys whose other side changes. Call before the epoch's changes are added to the
    /// state (`after == false`: the part computed from the state as it was) and once after
    /// (`after == true`: the part from the state as it is).
    fn unmatched(
        &self,
        side: Which,
        changes: &[KeyedRow],
        weights: &[i64],
        flipping: &FastSet<Vec<u8>>,
        after: bool,
        out: &mut Rows,
    ) -> DataflowResult<()> {
        let mine = match side {
            Which::Left => &self.left,
            Which::Right => &self.right,
        };
        let sign = if after { 1 } else { -1 };
        // Rows whose matching is in question, with the weight they count with if unmatched.
        let mut candidates: Vec<(&[u8], &Vec<ScalarValue>, i64)> = Vec::new();
        for key in flipping {
            for (row, n) in mine.index.get(key).into_iter().flat_map(|b| b.values()) {
                candidates.push((key, row, sign * n));
            }
        }
        if !after {
            // Keys whose other side stays as it is: only the rows that changed change.
            for ((key, row), w) in changes.iter().zip(weights) {
                match key {
                    None => out.push(row.clone(), *w),
                    Some(k) if !flipping.contains(k) => candidates.push((k, row, *w)),
                    Some(_) => {}
                }
            }
        }
        let matched = self.matched(side, &candidates)?;
        for ((_, row, w), m) in candidates.into_iter().zip(matched) {
            if !m {
                out.push(row.clone(), w);
            }
        }
        Ok(())
    }

    /// Whether each row of `side` (with its key) has a match on the other side as it now
    /// is: a row under the same key, for which the residual condition holds if there is one.
    fn matched(
        &self,
        side: Which,
        candidates: &[(&[u8], &Vec<ScalarValue>, i64)],
    ) -> DataflowResult<Vec<bool>> {
        let theirs = match side {
            Which::Left => &self.right,
            Which::Right => &self.left,
        };
        let Some(cond) = &self.residual else {
            return Ok(candidates
                .iter()
                .map(|(k, _, _)| theirs.index.contains_key(*k))
                .collect());
        };
        // Every pair of a candidate and a row under its key, evaluated at once.
        let mut pairs = Vec::new();
        let mut owner = Vec::new();
        for (i, (key, row, _)) in candidates.iter().enumerate() {
            for (other, _) in theirs.index.get(*key).into_iter().flat_map(|b| b.values()) {
                let pair: Vec<ScalarValue> = match side {
                    Which::Left => row.iter().chain(other).cloned().collect(),
                    Which::Right => other.iter().chain(row.iter()).cloned().collect(),
                };
                pairs.push(pair);
                owner.push(i);
            }
        }
        let mut matched = vec![false; candidates.len()];
        if pairs.is_empty() {
            return Ok(matched);
        }
        let batch = codec::batch_from_rows(&self.pair_schema, &pairs)?;
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
        let left_rows = self.keyed_rows(&self.left_keys, dl)?;
        let right_rows = self.keyed_rows(&self.right_keys, dr)?;

        // Unmatched rows of each side that the output needs, before the state changes.
        let tracks = |side| self.kind.unmatched(side) != Unmatched::Ignored;
        let (mut unmatched_left, mut unmatched_right) = (Rows::default(), Rows::default());
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
        for (i, (key, row)) in left_rows.iter().enumerate() {
            let w = dl.weights[i];
            let Some(key) = key else { continue };
            if pairs && let Some(bucket) = self.right.index.get(key) {
                for (r, rw) in bucket.values() {
                    let mut pair = row.clone();
                    pair.extend(r.iter().cloned());
                    joined.push(pair, w * rw);
                }
            }
            self.left.add(key, row.clone(), w)?;
        }
        for (i, (key, row)) in right_rows.iter().enumerate() {
            let w = dr.weights[i];
            let Some(key) = key else { continue };
            if pairs && let Some(bucket) = self.left.index.get(key) {
                for (l, lw) in bucket.values() {
                    let mut pair = l.clone();
                    pair.extend(row.iter().cloned());
                    joined.push(pair, w * lw);
                }
            }
            self.right.add(key, row.clone(), w)?;
        }

        let batch = codec::batch_from_rows(&self.schema, &joined.rows)?;
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
        let batch = codec::batch_from_rows(&self.schema, &more.rows)?;
        Delta::concat(&self.schema, &[out, Delta::new(batch, more.weights)])
    }

    /// The keys of changed rows.
    fn keys_of(rows: &[KeyedRow]) -> FastSet<Vec<u8>> {
        rows.iter().filter_map(|(k, _)| k.clone()).collect()
    }

    /// A side's unmatched change as output rows, per what the join kind makes of them.
    fn unmatched_output(
        &self,
        side: Which,
        unmatched: Rows,
        changes: &[KeyedRow],
        weights: &[i64],
        out: &mut Rows,
    ) {
        match self.kind.unmatched(side) {
            Unmatched::Ignored => {}
            Unmatched::Rows => {
                for (row, w) in unmatched.rows.into_iter().zip(unmatched.weights) {
                    out.push(row, w);
                }
            }
            Unmatched::Complement => {
                for ((_, row), w) in changes.iter().zip(weights) {
                    out.push(row.clone(), *w);
                }
                for (row, w) in unmatched.rows.into_iter().zip(unmatched.weights) {
                    out.push(row, -w);
                }
            }
            Unmatched::Padded => {
                for (row, w) in unmatched.rows.into_iter().zip(unmatched.weights) {
                    let padded = match side {
                        Which::Left => row
                            .into_iter()
                            .chain(std::iter::repeat_n(ScalarValue::Null, self.right_width))
                            .collect(),
                        Which::Right => std::iter::repeat_n(ScalarValue::Null, self.left_width)
                            .chain(row)
                            .collect(),
                    };
                    out.push(padded, w);
                }
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
                    "the rows of both inputs until the other input's watermark passes them".into(),
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
        for entry in state {
            let (k, v) = entry?;
            let corrupt = || DataflowError::Corrupt("join state key".into());
            let (&tag, rest) = k.split_first().ok_or_else(corrupt)?;
            let len_bytes: [u8; 4] = rest
                .get(..4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let key = rest.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            let row_bytes = rest[4 + len..].to_vec();
            let (side, width) = match tag {
                0 => (&mut self.left, self.left_width),
                1 => (&mut self.right, self.right_width),
                _ => return Err(corrupt()),
            };
            let row = decode_row(&row_bytes, width)?;
            let w = Decoder::new(&v).i64()?;
            side.index_time(&key, &row_bytes, &row);
            let replaced = side
                .index
                .entry(key)
                .or_default()
                .insert(row_bytes, (row, w));
            if replaced.is_none() {
                side.held += 1;
            }
        }
        let count = |b: &Bucket| b.values().map(|(_, n)| *n).sum::<i64>();
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
