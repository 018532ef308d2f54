//! `NOT IN (subquery)`: a left anti join with SQL's NULL rules.

use arrow::array::{BooleanArray, RecordBatch};

use super::{Join, Key, Row, Rows, Which};
use crate::operator::EpochContext;
use crate::{DataflowResult, Delta};

/// Under `NOT IN`, what the right side makes of the left rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NotIn {
    /// No rows: every left row qualifies, even one whose value is NULL.
    Empty,
    /// A NULL among them: no left row qualifies (each comparison is unknown or false).
    HasNull,
    /// Left rows with a non-NULL value that no right row equals qualify.
    Plain,
}

/// The key under which rows whose join key is NULL are kept (real keys are never empty).
pub(super) const NULL_KEY: &[u8] = &[];

impl Join {
    /// Makes a left anti join `NOT IN (subquery)`, whose NULLs differ from `NOT EXISTS`: with
    /// no right rows every left row qualifies; with a NULL among them none does; otherwise a
    /// left row qualifies when its value is not NULL and no right row equals it.
    pub fn not_in(mut self) -> Self {
        self.null_aware = true;
        self
    }

    fn not_in_mode(rows: i64, nulls: i64) -> NotIn {
        if rows == 0 {
            NotIn::Empty
        } else if nulls > 0 {
            NotIn::HasNull
        } else {
            NotIn::Plain
        }
    }

    /// Every left row that qualifies in a mode, from the state as it is.
    fn not_in_rows(&self, mode: NotIn, sign: i64, out: &mut Rows) -> DataflowResult<()> {
        let all = self
            .left
            .index
            .iter()
            .flat_map(|(k, b)| b.iter().map(move |(row, n)| (&k[..], row, *n)));
        match mode {
            NotIn::HasNull => {}
            NotIn::Empty => {
                for (_, row, n) in all {
                    out.one(Which::Left, row, sign * n);
                }
            }
            NotIn::Plain => {
                let candidates: Vec<(&[u8], &Row, i64)> =
                    all.filter(|(k, _, _)| *k != NULL_KEY).collect();
                let matched = self.matched(Which::Left, &candidates)?;
                for ((_, row, n), m) in candidates.into_iter().zip(matched) {
                    if !m {
                        out.one(Which::Left, row, sign * n);
                    }
                }
            }
        }
        Ok(())
    }

    /// An epoch of `NOT IN`: as an anti join while the right side keeps non-NULL rows; when
    /// it becomes empty, gains its first NULL or loses its last, every left row is judged
    /// again.
    pub(super) fn apply_not_in(
        &mut self,
        inputs: &[Delta],
        epoch: &EpochContext,
    ) -> DataflowResult<Delta> {
        let (dl, dr) = (&inputs[0], &inputs[1]);
        let left_rows = self.changes(&self.left_keys, &self.left, dl)?;
        let right_rows = self.changes(&self.right_keys, &self.right, dr)?;
        let (mut rows, mut nulls) = (self.right_rows, self.right_nulls);
        for (c, w) in right_rows.iter().zip(&dr.weights) {
            rows += w;
            if c.key.is_none() {
                nulls += w;
            }
        }
        let (before, after) = (
            Self::not_in_mode(self.right_rows, self.right_nulls),
            Self::not_in_mode(rows, nulls),
        );
        let mut judged = Rows::default();
        if before != after {
            self.not_in_rows(before, -1, &mut judged)?;
        }
        // Rows with a NULL key are kept aside on both sides; the rest take the anti join.
        let has_key: BooleanArray = left_rows.iter().map(|c| Some(c.key.is_some())).collect();
        let null_key = Key::from(NULL_KEY);
        for (c, w) in left_rows.iter().zip(&dl.weights) {
            if c.key.is_none() {
                self.left.add(&null_key, &c.row, *w, c.time)?;
            }
        }
        for (c, w) in right_rows.iter().zip(&dr.weights) {
            if c.key.is_none() {
                self.right.add(&null_key, &c.row, *w, c.time)?;
            }
        }
        let anti = self.apply_equi(&[dl.filter(&has_key)?, dr.clone()], epoch)?;
        (self.right_rows, self.right_nulls) = (rows, nulls);
        match (before, after) {
            (NotIn::Plain, NotIn::Plain) => Ok(anti),
            (NotIn::Empty, NotIn::Empty) => Ok(dl.clone()),
            (NotIn::HasNull, NotIn::HasNull) => Ok(Delta::new(
                RecordBatch::new_empty(self.schema.clone()),
                vec![],
            )),
            _ => {
                self.not_in_rows(after, 1, &mut judged)?;
                let batch = self.batch(&self.schema, &judged, false)?;
                Ok(Delta::new(batch, judged.weights))
            }
        }
    }
}
