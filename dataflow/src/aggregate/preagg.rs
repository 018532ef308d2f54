//! Pre-aggregation of a large change, on every core.
//!
//! When every group key column holds integers (or dates, timestamps) without NULLs and every
//! aggregate only adds (`count`, and `sum` or `avg` of integers, without DISTINCT or
//! FILTER), the rows of a change are first summed per distinct key: each core takes a share
//! of the rows and sums them in a table of its own, keyed by the key's integer values. Only
//! then does each distinct key of each share touch the group's state, once, with the sums.
//! Integer sums are exact in any order, so the result is the row-by-row one. A windowed
//! count over a thousand keys so looks a group up once per key and share instead of once
//! per row, and the per-row work (hashing a few integers) runs in parallel.

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use hashbrown::HashTable;

use super::accumulator::{Acc, Num};
use super::{AggKind, AggSpec};

/// Changes at least this long are pre-aggregated; shorter ones go row by row.
pub(super) const MIN_ROWS: usize = 4096;
/// Most key columns summed this way.
const MAX_KEYS: usize = 4;

/// What one aggregate adds per row.
enum Adds<'a> {
    /// `count(*)`: the row's weight.
    Rows,
    /// `count(x)`: the weight of rows where `x` is not NULL.
    Valid(&'a ArrayRef),
    /// `sum(x)` or `avg(x)` of integers: weight times value, and the weight, where `x` is
    /// not NULL.
    Ints(&'a ArrayRef, Cow<'a, [i64]>),
}

/// How a change can be pre-aggregated: its key columns as integers and what each aggregate
/// adds.
pub(super) struct Plan<'a> {
    keys: Vec<Cow<'a, [i64]>>,
    adds: Vec<Adds<'a>>,
}

/// One share's sums: for each distinct key, in order of first appearance, the first row
/// that has it and what its rows add up to.
pub(super) struct Partial {
    /// The first row of each distinct key.
    pub(super) firsts: Vec<usize>,
    /// The summed weights of each key's rows.
    pub(super) rows: Vec<i64>,
    /// Per aggregate, per key: what its rows add (a count, or a sum and a count).
    sums: Vec<Vec<(i128, i64)>>,
}

impl<'a> Plan<'a> {
    /// The plan for a change whose key columns are `keys` and whose aggregates' arguments
    /// are `args`; None when something in it is not a sum of integers.
    pub(super) fn of(
        keys: &'a [ArrayRef],
        aggs: &[AggSpec],
        args: &'a [Option<ArrayRef>],
        accs: &[Acc],
    ) -> Option<Plan<'a>> {
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return None;
        }
        let keys = keys
            .iter()
            .map(|k| (k.null_count() == 0).then(|| integers(k)).flatten())
            .collect::<Option<Vec<_>>>()?;
        let adds = aggs
            .iter()
            .zip(args)
            .zip(accs)
            .map(|((spec, arg), acc)| {
                if spec.distinct || spec.filter.is_some() || spec.order.is_some() {
                    return None;
                }
                match (spec.kind, arg, acc) {
                    (AggKind::Count, None, Acc::Count(_)) => Some(Adds::Rows),
                    // Where the validity bits are the NULLs (not a dictionary's, say).
                    (AggKind::Count, Some(a), Acc::Count(_))
                        if a.data_type().is_primitive()
                            || matches!(a.data_type(), DataType::Utf8 | DataType::Boolean) =>
                    {
                        Some(Adds::Valid(a))
                    }
                    (
                        AggKind::Sum | AggKind::Avg,
                        Some(a),
                        Acc::Sum {
                            sum: Num::Int(_), ..
                        },
                    ) => Some(Adds::Ints(a, integers(a)?)),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Plan { keys, adds })
    }

    /// Sums the rows with `weights` in shares, one per core (at most), in parallel.
    pub(super) fn run(&self, weights: &[i64]) -> Vec<Partial> {
        crate::shares::map(&crate::shares::shares(weights.len()), |rows| {
            self.sum(rows, weights)
        })
    }

    fn hash(&self, i: usize) -> u64 {
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for k in &self.keys {
            h = (h.rotate_left(23) ^ k[i] as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        h ^ (h >> 29)
    }

    fn same_key(&self, i: usize, j: usize) -> bool {
        self.keys.iter().all(|k| k[i] == k[j])
    }

    /// The sums of the rows `rows`.
    fn sum(&self, rows: std::ops::Range<usize>, weights: &[i64]) -> Partial {
        let mut table: HashTable<u32> = HashTable::new();
        let mut hashes: Vec<u64> = Vec::new();
        let mut part = Partial {
            firsts: Vec::new(),
            rows: Vec::new(),
            sums: self.adds.iter().map(|_| Vec::new()).collect(),
        };
        for i in rows {
            let h = self.hash(i);
            let firsts = &part.firsts;
            let g = match table.find(h, |&g| self.same_key(firsts[g as usize], i)) {
                Some(&g) => g as usize,
                None => {
                    let g = part.firsts.len();
                    part.firsts.push(i);
                    part.rows.push(0);
                    for sums in &mut part.sums {
                        sums.push((0, 0));
                    }
                    hashes.push(h);
                    table.insert_unique(h, g as u32, |&g| hashes[g as usize]);
                    g
                }
            };
            let w = weights[i];
            part.rows[g] += w;
            for (adds, sums) in self.adds.iter().zip(&mut part.sums) {
                let (sum, count) = &mut sums[g];
                match adds {
                    Adds::Rows => *count += w,
                    Adds::Valid(a) => {
                        if a.is_valid(i) {
                            *count += w;
                        }
                    }
                    Adds::Ints(a, values) => {
                        if a.is_valid(i) {
                            *sum += values[i] as i128 * w as i128;
                            *count += w;
                        }
                    }
                }
            }
        }
        part
    }
}

impl Partial {
    pub(super) fn len(&self) -> usize {
        self.firsts.len()
    }

    /// Adds the sums of distinct key `g` to a group's accumulators.
    pub(super) fn add_to(&self, g: usize, accs: &mut [Acc]) {
        for (sums, acc) in self.sums.iter().zip(accs) {
            let (sum, count) = sums[g];
            match acc {
                Acc::Count(n) => *n += count,
                Acc::Sum {
                    sum: Num::Int(s),
                    n,
                } => {
                    *s += sum;
                    *n += count;
                }
                _ => unreachable!("a plan only pre-aggregates counts and integer sums"),
            }
        }
    }
}

/// A column's values as 64-bit integers (whatever its NULLs hold), for the integer types
/// whose every value fits.
fn integers(a: &ArrayRef) -> Option<Cow<'_, [i64]>> {
    fn widen<T>(values: &[T]) -> Cow<'static, [i64]>
    where
        T: Copy + Into<i64>,
    {
        Cow::Owned(values.iter().map(|v| (*v).into()).collect())
    }
    Some(match a.data_type() {
        DataType::Int64 => Cow::Borrowed(a.as_primitive::<Int64Type>().values()),
        DataType::Date64 => Cow::Borrowed(a.as_primitive::<Date64Type>().values()),
        DataType::Timestamp(unit, _) => Cow::Borrowed(match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().values(),
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().values(),
            TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().values(),
            TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().values(),
        }),
        DataType::Int32 => widen(a.as_primitive::<Int32Type>().values()),
        DataType::Date32 => widen(a.as_primitive::<Date32Type>().values()),
        DataType::Int16 => widen(a.as_primitive::<Int16Type>().values()),
        DataType::Int8 => widen(a.as_primitive::<Int8Type>().values()),
        DataType::UInt32 => widen(a.as_primitive::<UInt32Type>().values()),
        DataType::UInt16 => widen(a.as_primitive::<UInt16Type>().values()),
        DataType::UInt8 => widen(a.as_primitive::<UInt8Type>().values()),
        _ => return None,
    })
}
