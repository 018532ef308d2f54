//! Accumulators: the retractable state of one aggregate in one group, and its SQL value.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use super::{AggKind, AggSpec};
use crate::codec::{Decoder, compare_values};
use crate::{DataflowError, DataflowResult};

/// A value with the total order used for min/max and DISTINCT multisets.
#[derive(Clone, Debug)]
pub(super) struct Ordered(pub(super) ScalarValue);

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_values(&self.0, &other.0)
    }
}

/// A running numeric sum, exact for integers and decimals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Num {
    Int(i128),
    Float(f64),
    /// Unscaled, at the input's scale.
    Decimal(i128),
}

impl Num {
    pub(super) fn zero_for(dt: &DataType) -> Num {
        match dt {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Num::Float(0.0),
            DataType::Decimal128(..) => Num::Decimal(0),
            _ => Num::Int(0),
        }
    }

    pub(super) fn add(&mut self, v: &ScalarValue, weight: i64) -> DataflowResult<()> {
        use ScalarValue as S;
        let w = weight as i128;
        match (self, v) {
            (Num::Int(s), S::Int8(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::Int16(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::Int32(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::Int64(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::UInt8(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::UInt16(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::UInt32(Some(x))) => *s += *x as i128 * w,
            (Num::Int(s), S::UInt64(Some(x))) => *s += *x as i128 * w,
            (Num::Float(s), S::Float32(Some(x))) => *s += *x as f64 * weight as f64,
            (Num::Float(s), S::Float64(Some(x))) => *s += *x * weight as f64,
            (Num::Decimal(s), S::Decimal128(Some(x), _, _)) => *s += *x * w,
            (sum, v) => {
                return Err(DataflowError::Unsupported(format!(
                    "summing {} into {sum:?}",
                    v.data_type()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn to_scalar(self, output: &DataType) -> DataflowResult<ScalarValue> {
        let v = match (self, output) {
            (Num::Decimal(s), DataType::Decimal128(p, sc)) => {
                ScalarValue::Decimal128(Some(s), *p, *sc)
            }
            (Num::Int(s), _) => ScalarValue::Int64(Some(bigint(s)?)),
            (Num::Float(s), _) => ScalarValue::Float64(Some(s)),
            (Num::Decimal(s), _) => ScalarValue::Int64(Some(s as i64)),
        };
        Ok(if &v.data_type() == output {
            v
        } else {
            v.cast_to(output)?
        })
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let (tag, bits) = match self {
            Num::Int(v) => (0u8, *v),
            Num::Float(v) => (1u8, v.to_bits() as i128),
            Num::Decimal(v) => (2u8, *v),
        };
        out.push(tag);
        out.extend(bits.to_le_bytes());
    }

    pub(super) fn decode(d: &mut Decoder<'_>) -> DataflowResult<Num> {
        let tag = d.u8()?;
        let lo = d.i64()? as u64 as u128;
        let hi = d.i64()? as u64 as u128;
        let bits = (lo | (hi << 64)) as i128;
        Ok(match tag {
            0 => Num::Int(bits),
            1 => Num::Float(f64::from_bits(bits as u64)),
            2 => Num::Decimal(bits),
            t => return Err(DataflowError::Corrupt(format!("sum tag {t}"))),
        })
    }
}

/// An integer sum as a BIGINT, or the error SQL gives when it does not fit.
pub(super) fn bigint(sum: i128) -> DataflowResult<i64> {
    i64::try_from(sum).map_err(|_| {
        DataflowError::Eval(datafusion::error::DataFusionError::Execution(
            "bigint out of range".into(),
        ))
    })
}

/// The retractable state of one aggregate in one group.
#[derive(Clone, Debug)]
pub(super) enum Acc {
    Count(i64),
    /// Sum and average: the running sum and how many non-null values it holds.
    Sum {
        sum: Num,
        n: i64,
    },
    /// Min, max and every DISTINCT aggregate: the multiset of non-null values.
    Values(BTreeMap<Ordered, i64>),
    /// Min, max, bool_and and bool_or over input that is never retracted: the extreme
    /// alone (which no deletion can take away).
    Extreme(Option<Ordered>),
    /// first_value by an order: the multiset of (order, value) pairs, NULLs included.
    Ranked(BTreeMap<(Ordered, Ordered), i64>),
    /// Variance and standard deviation: how many values, their sum and their sum of squares.
    Moments {
        n: i64,
        sum: f64,
        squares: f64,
    },
}

/// The SQL value of an accumulator.
pub(super) fn finish(
    spec: &AggSpec,
    acc: &Acc,
    arg_type: Option<&DataType>,
) -> DataflowResult<ScalarValue> {
    let null = || ScalarValue::try_new_null(&spec.output_type).map_err(DataflowError::from);
    match acc {
        Acc::Count(n) => Ok(ScalarValue::Int64(Some(*n))),
        Acc::Sum { sum, n } => match spec.kind {
            _ if *n == 0 => null(),
            AggKind::Avg => average(*sum, *n, arg_type, &spec.output_type),
            _ => sum.to_scalar(&spec.output_type),
        },
        Acc::Moments { n, sum, squares } => spread(spec, *n, *sum, *squares),
        Acc::Ranked(ranked) if matches!(spec.kind, AggKind::ArrayAgg { .. }) => {
            array_of(spec, ranked)
        }
        Acc::Ranked(ranked) => match first_by(spec.kind, ranked) {
            Some(value) => cast_to(value, &spec.output_type),
            None => null(),
        },
        Acc::Extreme(v) => v
            .as_ref()
            .map_or_else(null, |v| cast_to(&v.0, &spec.output_type)),
        Acc::Values(values) => match spec.kind {
            AggKind::Variance { .. } | AggKind::Stddev { .. } => {
                let (mut n, mut sum, mut squares) = (0, 0.0, 0.0);
                for v in values.keys() {
                    let x = as_f64(&v.0)?;
                    n += 1;
                    sum += x;
                    squares += x * x;
                }
                spread(spec, n, sum, squares)
            }
            AggKind::Min | AggKind::BoolAnd => values
                .keys()
                .next()
                .map_or_else(null, |v| cast_to(&v.0, &spec.output_type)),
            AggKind::Max | AggKind::BoolOr => values
                .keys()
                .next_back()
                .map_or_else(null, |v| cast_to(&v.0, &spec.output_type)),
            // count(DISTINCT x), and approx_count_distinct(x) kept exact.
            AggKind::Count => cast_to(
                &ScalarValue::Int64(Some(values.len() as i64)),
                &spec.output_type,
            ),
            AggKind::StringAgg => {
                if values.is_empty() {
                    return null();
                }
                let mut parts = Vec::new();
                for (v, n) in values {
                    let text = match &v.0 {
                        ScalarValue::Utf8(Some(s))
                        | ScalarValue::LargeUtf8(Some(s))
                        | ScalarValue::Utf8View(Some(s)) => s.clone(),
                        other => other.to_string(),
                    };
                    let times = if spec.distinct { 1 } else { *n };
                    for _ in 0..times {
                        parts.push(text.clone());
                    }
                }
                cast_to(
                    &ScalarValue::Utf8(Some(parts.join(&spec.separator))),
                    &spec.output_type,
                )
            }
            AggKind::FirstBy { .. } | AggKind::ArrayAgg { .. } => Err(DataflowError::Internal(
                "first_value or array_agg kept as a multiset of values".into(),
            )),
            AggKind::Sum | AggKind::Avg => {
                if values.is_empty() {
                    return null();
                }
                let mut sum = Num::zero_for(arg_type.unwrap_or(&DataType::Int64));
                for v in values.keys() {
                    sum.add(&v.0, 1)?;
                }
                if spec.kind == AggKind::Avg {
                    average(sum, values.len() as i64, arg_type, &spec.output_type)
                } else {
                    sum.to_scalar(&spec.output_type)
                }
            }
        },
    }
}

/// Variance or standard deviation from power sums; NULL without enough values.
fn spread(spec: &AggSpec, n: i64, sum: f64, squares: f64) -> DataflowResult<ScalarValue> {
    let (sample, root) = match spec.kind {
        AggKind::Variance { sample } => (sample, false),
        AggKind::Stddev { sample } => (sample, true),
        _ => {
            return Err(DataflowError::Internal(
                "power sums of another aggregate".into(),
            ));
        }
    };
    let divisor = if sample { n - 1 } else { n };
    if divisor <= 0 {
        return ScalarValue::try_new_null(&spec.output_type).map_err(DataflowError::from);
    }
    let n = n as f64;
    // One division of an exact numerator: equal values give exactly zero.
    let variance = ((n * squares - sum * sum) / (n * divisor as f64)).max(0.0);
    let value = if root { variance.sqrt() } else { variance };
    cast_to(&ScalarValue::Float64(Some(value)), &spec.output_type)
}

/// A numeric value as a float (variance and standard deviation work in floats, as
/// DataFusion's do).
pub(super) fn as_f64(v: &ScalarValue) -> DataflowResult<f64> {
    match v.cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(x)) => Ok(x),
        other => Err(DataflowError::Unsupported(format!(
            "variance of {}",
            other.data_type()
        ))),
    }
}

fn cast_to(v: &ScalarValue, dt: &DataType) -> DataflowResult<ScalarValue> {
    Ok(if &v.data_type() == dt {
        v.clone()
    } else {
        v.cast_to(dt)?
    })
}

fn average(
    sum: Num,
    n: i64,
    arg_type: Option<&DataType>,
    output: &DataType,
) -> DataflowResult<ScalarValue> {
    match (sum, arg_type, output) {
        (
            Num::Decimal(s),
            Some(DataType::Decimal128(_, in_scale)),
            DataType::Decimal128(p, out_scale),
        ) => {
            let shift = (*out_scale - *in_scale).max(0) as u32;
            let scaled = s * 10i128.pow(shift);
            let n = n as i128;
            // Round half away from zero, as Postgres does for numeric.
            let q = scaled / n;
            let r = scaled % n;
            let q = if 2 * r.abs() >= n {
                q + scaled.signum()
            } else {
                q
            };
            Ok(ScalarValue::Decimal128(Some(q), *p, *out_scale))
        }
        (Num::Int(s), _, _) => cast_to(&ScalarValue::Float64(Some(s as f64 / n as f64)), output),
        (Num::Float(s), _, _) => cast_to(&ScalarValue::Float64(Some(s / n as f64)), output),
        (Num::Decimal(s), _, _) => {
            cast_to(&ScalarValue::Float64(Some(s as f64 / n as f64)), output)
        }
    }
}

/// Whether an aggregate keeps the smallest value (min, bool_and) rather than the largest.
pub(super) fn keeps_smallest(kind: AggKind) -> bool {
    matches!(kind, AggKind::Min | AggKind::BoolAnd)
}

/// Takes a value into an extreme; a retraction cannot be, over input that never retracts.
pub(super) fn extend_extreme(
    extreme: &mut Option<Ordered>,
    smallest: bool,
    v: ScalarValue,
    w: i64,
) -> DataflowResult<()> {
    if w < 0 {
        return Err(DataflowError::Internal(
            "a deletion reached a min or max over append-only input".into(),
        ));
    }
    let v = Ordered(v);
    let better = match extreme {
        None => true,
        Some(e) if smallest => v < *e,
        Some(e) => v > *e,
    };
    if better {
        *extreme = Some(v);
    }
    Ok(())
}

/// The values of an ordered multiset of (order, value) pairs as the aggregate reads them,
/// each with its count. Pairs are kept in ascending order (a NULL order sorts before every
/// value); the NULL orders go first or last as asked, and the rest ascending or descending.
fn in_order(
    ranked: &BTreeMap<(Ordered, Ordered), i64>,
    descending: bool,
    nulls_first: bool,
) -> impl Iterator<Item = (&ScalarValue, i64)> {
    let nulls = ranked
        .keys()
        .take_while(|(order, _)| order.0.is_null())
        .count();
    let null_orders = ranked.iter().take(nulls);
    let rest: Box<dyn Iterator<Item = _>> = match descending {
        false => Box::new(ranked.iter().skip(nulls)),
        true => Box::new(ranked.iter().skip(nulls).rev()),
    };
    let (head, tail): (Box<dyn Iterator<Item = _>>, Box<dyn Iterator<Item = _>>) = match nulls_first
    {
        true => (Box::new(null_orders), rest),
        false => (rest, Box::new(null_orders)),
    };
    head.chain(tail)
        .map(|((_, value), count)| (&value.0, *count))
}

/// The value first_value picks: the value of the first pair in order.
fn first_by(kind: AggKind, ranked: &BTreeMap<(Ordered, Ordered), i64>) -> Option<&ScalarValue> {
    let AggKind::FirstBy {
        descending,
        nulls_first,
    } = kind
    else {
        return None;
    };
    in_order(ranked, descending, nulls_first)
        .next()
        .map(|(value, _)| value)
}

/// array_agg's array: every value in order, as many times as it counts (once with DISTINCT);
/// NULL for a group without rows.
fn array_of(
    spec: &AggSpec,
    ranked: &BTreeMap<(Ordered, Ordered), i64>,
) -> DataflowResult<ScalarValue> {
    let (
        AggKind::ArrayAgg {
            descending,
            nulls_first,
        },
        DataType::List(element),
    ) = (spec.kind, &spec.output_type)
    else {
        return Err(DataflowError::Internal(format!(
            "array_agg of type {}",
            spec.output_type
        )));
    };
    if ranked.is_empty() {
        return ScalarValue::try_new_null(&spec.output_type).map_err(DataflowError::from);
    }
    let mut values = Vec::new();
    for (value, count) in in_order(ranked, descending, nulls_first) {
        let value = cast_to(value, element.data_type())?;
        let times = if spec.distinct { 1 } else { count };
        values.extend(std::iter::repeat_n(value, times.max(0) as usize));
    }
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values,
        element.data_type(),
        element.is_nullable(),
    )))
}

/// Takes a weighted (order, value) pair into first_value's multiset.
pub(super) fn bump_ranked(
    ranked: &mut BTreeMap<(Ordered, Ordered), i64>,
    order: Ordered,
    value: Ordered,
    w: i64,
) {
    let key = (order, value);
    let count = ranked.entry(key.clone()).or_insert(0);
    *count += w;
    if *count == 0 {
        ranked.remove(&key);
    }
}

pub(super) fn bump(values: &mut BTreeMap<Ordered, i64>, v: ScalarValue, w: i64) {
    let mut v = v;
    // One key for both zeros: -0.0 == 0.0, so this folds -0.0 into 0.0.
    if let ScalarValue::Float64(Some(x)) = &mut v
        && *x == 0.0
    {
        *x = 0.0;
    }
    let key = Ordered(v);
    let count = values.entry(key.clone()).or_insert(0);
    *count += w;
    if *count == 0 {
        values.remove(&key);
    }
}
