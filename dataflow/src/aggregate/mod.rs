//! Grouped aggregation under inserts and deletes.
//!
//! State per group: the number of rows and one accumulator per aggregate. Every accumulator
//! is retractable: count and sum add signed weights; variance and standard deviation add
//! signed power sums in floats (exact for integer values while the sum of their squares stays
//! below 2^53); min, max, bool_and, bool_or and DISTINCT keep the multiset of values so that
//! deleting the current minimum reveals the next one. Over input that is never retracted (a
//! stream, an append-only view) min, max, bool_and and bool_or keep the extreme alone.
//! string_agg keeps the multiset too, and joins its values in ascending order.
//! approx_count_distinct is count(DISTINCT), exact. first_value and last_value by an order
//! keep the multiset of (order, value) pairs, NULL values included, and take the value at
//! the end the order (and its NULLS FIRST/LAST) names; last_value is first_value by the
//! reversed order. array_agg keeps the same pairs (ordered by the value itself without an
//! ORDER BY) and lists every value in order. A group whose row count drops to zero
//! disappears (except for the single group of an aggregate without GROUP BY, which always has
//! its row, as in SQL). The accumulators are in [`accumulator`].
//!
//! Output: for each group touched in an epoch, `-old_row` and `+new_row` (nothing when equal).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use crate::codec::{BatchBuilder, Decoder, Part, RowEncoder, decode_row, encode_value};
use crate::operator::{EpochContext, Explain, Operator, StateBound, StateWriter};
use crate::window::Expiry;

mod accumulator;
mod output;
mod preagg;

use crate::{DataflowError, DataflowResult, Delta, FastMap};
use accumulator::{Acc, Num, Ordered, as_f64, bump, bump_ranked, extend_extreme, keeps_smallest};
use output::{Value, finish_value, value_column};

/// Which aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    /// Variance and standard deviation, of a sample (n - 1) or of a population (n).
    Variance {
        sample: bool,
    },
    Stddev {
        sample: bool,
    },
    /// `string_agg(x, separator)`, the values in ascending order (so `ORDER BY x` or none).
    StringAgg,
    /// `first_value(x ORDER BY o)`: `x` of the row that comes first by `o` (`last_value`
    /// is first_value with the order reversed). NULL values count; ties between equal
    /// orders go to the smallest value.
    FirstBy {
        descending: bool,
        nulls_first: bool,
    },
    /// `array_agg(x ORDER BY o)`: every `x`, NULLs included, in the order of `o` (the value
    /// itself without an ORDER BY); ties between equal orders in the order of the values.
    ArrayAgg {
        descending: bool,
        nulls_first: bool,
    },
}

/// One aggregate of the output row.
pub struct AggSpec {
    pub kind: AggKind,
    /// The argument; `None` for `count(*)`.
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    pub distinct: bool,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub output_type: DataType,
    /// `string_agg`'s separator.
    pub separator: String,
    /// The `ORDER BY` expression of `first_value` and `array_agg`.
    pub order: Option<Arc<dyn PhysicalExpr>>,
}

/// Groups by encoded key.
type GroupMap = hashbrown::HashMap<Vec<u8>, Group>;

#[derive(Clone, Debug)]
struct Group {
    rows: i64,
    accs: Vec<Acc>,
    /// The last apply that touched the group (see [`Aggregate::applies`]).
    touched: u64,
}

impl Group {
    fn new(rows: i64, accs: Vec<Acc>) -> Self {
        Self {
            rows,
            accs,
            touched: 0,
        }
    }
}

/// An aggregate's argument column, typed where a fast path reads it without a
/// `ScalarValue` per row.
enum ArgView<'a> {
    /// `count(*)`.
    Star,
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    /// A column whose NULLs are its validity bits.
    Plain(&'a ArrayRef),
    /// Other columns (dictionaries, NULL-typed, ...): through `ScalarValue`.
    Any,
}

impl<'a> ArgView<'a> {
    fn of(arg: &'a Option<ArrayRef>) -> Self {
        let Some(a) = arg else {
            return ArgView::Star;
        };
        match a.data_type() {
            DataType::Int64 => ArgView::Int64(a.as_primitive()),
            DataType::Float64 => ArgView::Float64(a.as_primitive()),
            DataType::Null
            | DataType::Dictionary(..)
            | DataType::RunEndEncoded(..)
            | DataType::Union(..) => ArgView::Any,
            _ => ArgView::Plain(a),
        }
    }

    /// Whether row `i` holds a value (`count(*)` counts every row); `None` for a column read
    /// through `ScalarValue`.
    fn is_valid(&self, i: usize) -> Option<bool> {
        match self {
            ArgView::Star => Some(true),
            ArgView::Int64(a) => Some(a.is_valid(i)),
            ArgView::Float64(a) => Some(a.is_valid(i)),
            ArgView::Plain(a) => Some(a.is_valid(i)),
            ArgView::Any => None,
        }
    }
}

/// Incremental GROUP BY.
pub struct Aggregate {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggSpec>,
    /// Input type of each aggregate's argument (for sums).
    arg_types: Vec<Option<DataType>>,
    schema: SchemaRef,
    /// The leading columns of `schema`: the group key.
    key_schema: SchemaRef,
    /// Groups by encoded key (hashbrown's map, for one lookup per row by a borrowed key,
    /// with its default hasher, foldhash, the fastest here on short byte keys).
    groups: GroupMap,
    /// Groups changed since the last checkpoint, each with whether it was held then (and so
    /// is in the store).
    dirty: FastMap<Vec<u8>, bool>,
    /// How many times `apply` has run: a group touched in this one has it as `touched`.
    applies: u64,
    /// Groups keyed by a window that a watermark closes: their state is freed then.
    expiry: Option<Expiry>,
    /// Open groups by the time at which they close (with `expiry`).
    closing: BTreeMap<i64, Vec<Vec<u8>>>,
    /// The input is never retracted: min and max keep their extreme alone.
    append_only: bool,
}

impl Aggregate {
    /// Frees the state of groups whose window has closed. Only sound when a closed group
    /// never changes again: the input only inserts rows and late rows were dropped upstream,
    /// or its changes follow the window's time (counts per window, from such an input).
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = Some(expiry);
        self
    }

    /// Whether a watermark frees its groups.
    pub fn expires(&self) -> bool {
        self.expiry.is_some()
    }

    /// Drops the groups the watermark has closed; their output rows stay in the view.
    fn expire(&mut self, epoch: &EpochContext) {
        let Some(wm) = self.expiry.as_ref().and_then(|e| epoch.watermark(e.stream)) else {
            return;
        };
        let open = match wm.checked_add(1) {
            Some(next) => self.closing.split_off(&next),
            None => BTreeMap::new(),
        };
        let closed = std::mem::replace(&mut self.closing, open);
        for key in closed.into_values().flatten() {
            if self.groups.remove(&key).is_some() {
                // Held before this epoch, unless this epoch made it (and said so).
                self.dirty.entry(key).or_insert(true);
            }
        }
    }
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggs: Vec<AggSpec>,
        input_schema: &SchemaRef,
        schema: SchemaRef,
    ) -> DataflowResult<Self> {
        let arg_types = aggs
            .iter()
            .map(|a| {
                a.arg
                    .as_ref()
                    .map(|e| e.data_type(input_schema))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_schema = Arc::new(schema.project(&(0..group_exprs.len()).collect::<Vec<_>>())?);
        Ok(Self {
            group_exprs,
            aggs,
            arg_types,
            schema,
            key_schema,
            groups: hashbrown::HashMap::default(),
            dirty: FastMap::default(),
            applies: 0,
            expiry: None,
            closing: BTreeMap::new(),
            append_only: false,
        })
    }

    /// Declares that the input only ever grows, so that min, max, bool_and and bool_or keep
    /// one value per group instead of every value (a deletion would then be an error).
    pub fn over_append_only(mut self, append_only: bool) -> Self {
        self.append_only = append_only;
        self
    }

    fn is_global(&self) -> bool {
        self.group_exprs.is_empty()
    }

    fn new_accs(&self) -> Vec<Acc> {
        new_accs(&self.aggs, &self.arg_types, self.append_only)
    }

    fn is_live(&self, g: &Group) -> bool {
        g.rows > 0 || self.is_global()
    }

    /// Takes one input's change into the groups: each group it touches for the first time in
    /// this apply is noted in `touched`, its values before in `old`.
    fn take(
        &mut self,
        input: &Delta,
        applies: u64,
        global: bool,
        touched: &mut Vec<(Vec<u8>, Option<usize>)>,
        old: &mut Vec<Value>,
    ) -> DataflowResult<()> {
        let keys: Vec<ArrayRef> = self
            .group_exprs
            .iter()
            .map(|e| evaluate(e, input))
            .collect::<DataflowResult<_>>()?;
        // One column (or none) per aggregate: its argument, FILTER or ORDER BY.
        let per_agg = |part: fn(&AggSpec) -> Option<&Arc<dyn PhysicalExpr>>| {
            self.aggs
                .iter()
                .map(|a| part(a).map(|e| evaluate(e, input)).transpose())
                .collect::<DataflowResult<Vec<Option<ArrayRef>>>>()
        };
        let args = per_agg(|a| a.arg.as_ref())?;
        let filters = per_agg(|a| a.filter.as_ref())?;
        let orders = per_agg(|a| a.order.as_ref())?;

        let encoder = RowEncoder::new(&keys);
        let views: Vec<ArgView<'_>> = args.iter().map(ArgView::of).collect();
        let Aggregate {
            groups,
            aggs,
            arg_types,
            expiry,
            closing,
            append_only,
            ..
        } = self;
        let entering = Entering {
            aggs,
            arg_types,
            append_only: *append_only,
            expiry,
            applies,
            global,
            keys: &keys,
        };
        let plan = (input.len() >= preagg::MIN_ROWS)
            .then(|| {
                let sample = new_accs(aggs, arg_types, *append_only);
                preagg::Plan::of(&keys, aggs, &args, &sample)
            })
            .flatten();
        let mut key = Vec::with_capacity(64);
        if let Some(plan) = plan {
            // Summed per distinct key first (in parallel shares); each key then touches its
            // group once per share.
            for part in plan.run(&input.weights) {
                for g in 0..part.len() {
                    let row = part.firsts[g];
                    key.clear();
                    encoder.encode(row, &mut key)?;
                    let group = entering.enter(groups, closing, touched, old, &key, row)?;
                    group.rows += part.rows[g];
                    part.add_to(g, &mut group.accs);
                }
            }
            return Ok(());
        }
        for i in 0..input.len() {
            let w = input.weights[i];
            key.clear();
            encoder.encode(i, &mut key)?;
            let group = entering.enter(groups, closing, touched, old, &key, i)?;
            group.rows += w;
            for (j, acc) in group.accs.iter_mut().enumerate() {
                if let Some(f) = &filters[j]
                    && (!f.as_boolean().is_valid(i) || !f.as_boolean().value(i))
                {
                    continue;
                }
                if accumulate_fast(acc, &views[j], i, w) {
                    continue;
                }
                if let (Acc::Ranked(ranked), Some(a), Some(o)) = (&mut *acc, &args[j], &orders[j]) {
                    // first_value and array_agg count NULL values too.
                    let order = Ordered(ScalarValue::try_from_array(o, i)?);
                    let value = Ordered(ScalarValue::try_from_array(a, i)?);
                    bump_ranked(ranked, order, value, w);
                    continue;
                }
                let value = match &args[j] {
                    None => None,
                    Some(a) => {
                        let v = ScalarValue::try_from_array(a, i)?;
                        if v.is_null() {
                            continue;
                        }
                        Some(v)
                    }
                };
                match acc {
                    Acc::Count(n) => *n += w,
                    Acc::Sum { sum, n } => {
                        sum.add(value.as_ref().expect("sum has an argument"), w)?;
                        *n += w;
                    }
                    Acc::Values(values) => {
                        bump(values, value.expect("min/max/distinct have an argument"), w)
                    }
                    Acc::Extreme(extreme) => extend_extreme(
                        extreme,
                        keeps_smallest(aggs[j].kind),
                        value.expect("min/max have an argument"),
                        w,
                    )?,
                    Acc::Ranked(_) => {
                        return Err(DataflowError::Internal(
                            "first_value without its argument or order".into(),
                        ));
                    }
                    Acc::Moments { n, sum, squares } => {
                        let x = as_f64(value.as_ref().expect("variance has an argument"))?;
                        let w = w as f64;
                        *n += w as i64;
                        *sum += w * x;
                        *squares += w * x * x;
                    }
                }
            }
        }

        Ok(())
    }
}

/// What an apply needs to bring a group into it.
struct Entering<'a> {
    aggs: &'a [AggSpec],
    arg_types: &'a [Option<DataType>],
    append_only: bool,
    expiry: &'a Option<Expiry>,
    applies: u64,
    global: bool,
    /// The change's key columns.
    keys: &'a [ArrayRef],
}

impl Entering<'_> {
    /// The group of `key`, whose row `row` of the change is about to change it: made (and
    /// filed under the time its window closes) when new, and noted among the groups this
    /// apply touched, with its values before, the first time.
    fn enter<'g>(
        &self,
        groups: &'g mut GroupMap,
        closing: &mut BTreeMap<i64, Vec<Vec<u8>>>,
        touched: &mut Vec<(Vec<u8>, Option<usize>)>,
        old: &mut Vec<Value>,
        key: &[u8],
        row: usize,
    ) -> DataflowResult<&'g mut Group> {
        let mut fresh = false;
        let group = groups.entry_ref(key).or_insert_with(|| {
            fresh = true;
            Group::new(0, new_accs(self.aggs, self.arg_types, self.append_only))
        });
        if fresh {
            track_closing(self.expiry, closing, key, |c| {
                self.keys
                    .get(c)
                    .map(|k| ScalarValue::try_from_array(k, row))
                    .transpose()
                    .map_err(DataflowError::from)
            })?;
        }
        if group.touched != self.applies {
            group.touched = self.applies;
            let at = match !fresh && (group.rows > 0 || self.global) {
                true => {
                    let at = old.len();
                    finish_into(self.aggs, self.arg_types, group, old)?;
                    Some(at)
                }
                false => None,
            };
            touched.push((key.to_vec(), at));
        }
        Ok(group)
    }
}

/// Files a new group under the time its window closes, when a watermark frees it; `value`
/// gives the group's key value in a column (the window's end, when it has one).
fn track_closing(
    expiry: &Option<Expiry>,
    closing: &mut BTreeMap<i64, Vec<Vec<u8>>>,
    key: &[u8],
    value: impl FnOnce(usize) -> DataflowResult<Option<ScalarValue>>,
) -> DataflowResult<()> {
    let Some(e) = expiry else {
        return Ok(());
    };
    if let Some(t) = value(e.column)?.and_then(|v| e.closes_at_value(&v)) {
        closing.entry(t).or_default().push(key.to_vec());
    }
    Ok(())
}

/// Fresh accumulators for a new group.
fn new_accs(aggs: &[AggSpec], arg_types: &[Option<DataType>], append_only: bool) -> Vec<Acc> {
    aggs.iter()
        .zip(arg_types)
        .map(|(a, t)| match (a.kind, a.distinct) {
            (AggKind::Count, false) => Acc::Count(0),
            (AggKind::Sum | AggKind::Avg, false) => Acc::Sum {
                sum: Num::zero_for(t.as_ref().unwrap_or(&DataType::Int64)),
                n: 0,
            },
            (AggKind::Variance { .. } | AggKind::Stddev { .. }, false) => Acc::Moments {
                n: 0,
                sum: 0.0,
                squares: 0.0,
            },
            (AggKind::Min | AggKind::Max | AggKind::BoolAnd | AggKind::BoolOr, false)
                if append_only =>
            {
                Acc::Extreme(None)
            }
            (AggKind::FirstBy { .. } | AggKind::ArrayAgg { .. }, _) => Acc::Ranked(BTreeMap::new()),
            _ => Acc::Values(BTreeMap::new()),
        })
        .collect()
}

/// Appends a group's aggregate values (its output row after the key) to `out`.
fn finish_into(
    aggs: &[AggSpec],
    arg_types: &[Option<DataType>],
    g: &Group,
    out: &mut Vec<Value>,
) -> DataflowResult<()> {
    for ((spec, acc), arg_type) in aggs.iter().zip(&g.accs).zip(arg_types) {
        out.push(finish_value(spec, acc, arg_type.as_ref())?);
    }
    Ok(())
}

/// Adds row `i` of a typed argument to a count, a sum or a multiset without reading it
/// through `ScalarValue::try_from_array`; false when the accumulator or the argument's type
/// has no such path.
fn accumulate_fast(acc: &mut Acc, arg: &ArgView<'_>, i: usize, w: i64) -> bool {
    match (acc, arg) {
        (Acc::Count(n), arg) => match arg.is_valid(i) {
            Some(true) => *n += w,
            Some(false) => {}
            None => return false,
        },
        (
            Acc::Sum {
                sum: Num::Int(s),
                n,
            },
            ArgView::Int64(a),
        ) => {
            if a.is_valid(i) {
                *s += a.value(i) as i128 * w as i128;
                *n += w;
            }
        }
        (
            Acc::Sum {
                sum: Num::Float(s),
                n,
            },
            ArgView::Float64(a),
        ) => {
            if a.is_valid(i) {
                *s += a.value(i) * w as f64;
                *n += w;
            }
        }
        // Min, max and DISTINCT: the value as `ScalarValue::try_from_array` would give it.
        (Acc::Values(values), ArgView::Int64(a)) => {
            if a.is_valid(i) {
                bump(values, ScalarValue::Int64(Some(a.value(i))), w);
            }
        }
        (Acc::Values(values), ArgView::Float64(a)) => {
            if a.is_valid(i) {
                bump(values, ScalarValue::Float64(Some(a.value(i))), w);
            }
        }
        _ => return false,
    }
    true
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, input: &Delta) -> DataflowResult<ArrayRef> {
    Ok(expr.evaluate(&input.batch)?.into_array(input.len())?)
}

impl Operator for Aggregate {
    fn explain(&self) -> Explain {
        let keys: Vec<String> = self.group_exprs.iter().map(|e| e.to_string()).collect();
        let aggs: Vec<String> = self
            .aggs
            .iter()
            .map(|a| {
                let arg = a.arg.as_ref().map_or("*".to_string(), |e| e.to_string());
                let distinct = if a.distinct { "DISTINCT " } else { "" };
                format!("{:?}({distinct}{arg})", a.kind).to_lowercase()
            })
            .collect();
        let what = "one entry per group, with the values of min, max and DISTINCT aggregates";
        Explain {
            operator: format!("Aggregate by [{}]: {}", keys.join(", "), aggs.join(", ")),
            state: match &self.expiry {
                Some(_) => StateBound::Bounded(format!(
                    "{what}; a group is freed when the watermark passes its window"
                )),
                None => StateBound::Grows(what.into()),
            },
            watermark: self.expiry.map(|e| e.stream),
        }
    }

    fn apply(&mut self, inputs: &[Delta], epoch: &EpochContext) -> DataflowResult<Delta> {
        // The output row of every touched group as it was before this epoch.
        self.applies += 1;
        let applies = self.applies;
        let global = self.is_global();
        // Each touched group's key, with where its values before this epoch begin in `old`
        // (None: it had no row).
        let width = self.aggs.len();
        // Room for a group per input row, up to a bound (a bulk load touches fewer groups).
        let room = inputs.iter().map(Delta::len).sum::<usize>().min(1 << 16);
        let mut touched: Vec<(Vec<u8>, Option<usize>)> = Vec::with_capacity(room);
        let mut old: Vec<Value> = Vec::with_capacity(room * width);
        if global && !self.groups.contains_key(&[][..]) {
            // The first epoch of an aggregate without GROUP BY creates its one row.
            let mut group = Group::new(0, self.new_accs());
            group.touched = applies;
            self.groups.insert(vec![], group);
            touched.push((vec![], None));
        }

        for input in inputs {
            self.take(input, applies, global, &mut touched, &mut old)?;
        }

        // Each changed group's row out: its key decoded from the group's encoded key, its
        // values as finished.
        let keys_width = self.group_exprs.len();
        let mut out_keys = BatchBuilder::new(&self.key_schema, touched.len() * 2);
        let mut out_values: Vec<Value> = Vec::with_capacity(touched.len() * 2 * width);
        let mut out_weights = Vec::with_capacity(touched.len() * 2);
        let mut new = Vec::with_capacity(width);
        for (key, at) in touched {
            let group = &self.groups[&key];
            if group.rows < 0 {
                return Err(DataflowError::Internal(format!(
                    "group {:?} has {} rows",
                    decode_row(&key, keys_width).ok(),
                    group.rows
                )));
            }
            let live = self.is_live(group);
            new.clear();
            if live {
                finish_into(&self.aggs, &self.arg_types, group, &mut new)?;
            }
            let before = at.map(|at| &old[at..at + width]);
            let after = live.then_some(new.as_slice());
            if before != after {
                for (values, weight) in [(before, -1), (after, 1)] {
                    if let Some(values) = values {
                        out_keys.push(&[Part::Row(&key, keys_width)])?;
                        out_values.extend_from_slice(values);
                        out_weights.push(weight);
                    }
                }
            }
            if !live {
                self.groups.remove(&key);
            }
            // A group had values before this apply exactly when it was not made by it; one
            // made by an earlier apply of this epoch, or gone in one, is already noted.
            self.dirty.entry(key).or_insert(at.is_some());
        }
        self.expire(epoch);
        let mut columns = out_keys.finish()?.columns().to_vec();
        for (j, field) in self.schema.fields().iter().skip(keys_width).enumerate() {
            columns.push(value_column(field.data_type(), &out_values, j, width)?);
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(out_weights.len())),
        )?;
        Ok(Delta::new(batch, out_weights))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn checkpoint(&mut self, state: &mut StateWriter<'_>) -> DataflowResult<()> {
        let mut v = Vec::new();
        for (key, stored) in self.dirty.drain() {
            match self.groups.get(&key) {
                None if stored => state.delete(&key),
                // Came and went since the last checkpoint.
                None => {}
                Some(g) => {
                    v.clear();
                    v.extend(g.rows.to_le_bytes());
                    for acc in &g.accs {
                        match acc {
                            Acc::Count(n) => v.extend(n.to_le_bytes()),
                            Acc::Sum { sum, n } => {
                                sum.encode(&mut v);
                                v.extend(n.to_le_bytes());
                            }
                            Acc::Values(values) => {
                                v.extend((values.len() as u64).to_le_bytes());
                                for (value, count) in values {
                                    encode_value(&value.0, &mut v)?;
                                    v.extend(count.to_le_bytes());
                                }
                            }
                            // Stored as a multiset of its one value, so either form reads
                            // the other's state.
                            Acc::Extreme(extreme) => {
                                v.extend((extreme.is_some() as u64).to_le_bytes());
                                if let Some(value) = extreme {
                                    encode_value(&value.0, &mut v)?;
                                    v.extend(1i64.to_le_bytes());
                                }
                            }
                            Acc::Ranked(ranked) => {
                                v.extend((ranked.len() as u64).to_le_bytes());
                                for ((order, value), count) in ranked {
                                    encode_value(&order.0, &mut v)?;
                                    encode_value(&value.0, &mut v)?;
                                    v.extend(count.to_le_bytes());
                                }
                            }
                            Acc::Moments { n, sum, squares } => {
                                v.extend(n.to_le_bytes());
                                v.extend(sum.to_bits().to_le_bytes());
                                v.extend(squares.to_bits().to_le_bytes());
                            }
                        }
                    }
                    match stored {
                        true => state.put(&key, &v),
                        false => state.put_new(&key, &v),
                    }
                }
            }
        }
        Ok(())
    }

    fn restore(
        &mut self,
        state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        let width = self.group_exprs.len();
        for entry in state {
            let (key, value) = entry?;
            let mut d = Decoder::new(&value);
            let rows = d.i64()?;
            let mut accs = self.new_accs();
            for (acc, spec) in accs.iter_mut().zip(&self.aggs) {
                let spec_kind = spec.kind;
                match acc {
                    Acc::Count(n) => *n = d.i64()?,
                    Acc::Sum { sum, n } => {
                        *sum = Num::decode(&mut d)?;
                        *n = d.i64()?;
                    }
                    Acc::Values(values) => {
                        let len = d.i64()? as u64;
                        for _ in 0..len {
                            let v = d.value()?;
                            let c = d.i64()?;
                            values.insert(Ordered(v), c);
                        }
                    }
                    Acc::Extreme(extreme) => {
                        let len = d.i64()? as u64;
                        for _ in 0..len {
                            let v = d.value()?;
                            let c = d.i64()?;
                            extend_extreme(extreme, keeps_smallest(spec_kind), v, c)?;
                        }
                    }
                    Acc::Ranked(ranked) => {
                        let len = d.i64()? as u64;
                        for _ in 0..len {
                            let order = d.value()?;
                            let value = d.value()?;
                            let c = d.i64()?;
                            ranked.insert((Ordered(order), Ordered(value)), c);
                        }
                    }
                    Acc::Moments { n, sum, squares } => {
                        *n = d.i64()?;
                        *sum = f64::from_bits(d.i64()? as u64);
                        *squares = f64::from_bits(d.i64()? as u64);
                    }
                }
            }
            track_closing(&self.expiry, &mut self.closing, &key, |c| {
                Ok(decode_row(&key, width)?.get(c).cloned())
            })?;
            self.groups.insert(key, Group::new(rows, accs));
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests;
