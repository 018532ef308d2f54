//! Numbered rows at a steady rate of event time, as Spark's `rate` source makes them:
//! `CREATE STREAM r (ts TIMESTAMP, value BIGINT) WITH (connector = 'rate', rows_per_second =
//! '1000')`.
//!
//! Row `n` is `(base_time + n / rows_per_second, n)`. Like [`crate::nexmark`], a row is a
//! function of its number and the options alone, so the stream stores no rows: it keeps how
//! far it has read, and replays the rest. By default the rows come at their own pace in
//! wall-clock time (`rows_per_second` of them each second, from when a view first reads the
//! stream); `paced = 'false'` hands them over as fast as the engine takes them, which is how
//! a pipeline is load-tested without an external system in the way.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use eddy_catalog::SqlType;

use crate::options::{Options, parse_timestamp};
use crate::{ConnectorError, ConnectorResult, Generator};

/// The options a rate stream takes, besides `connector`.
pub const OPTIONS: &[&str] = &[
    "connector",
    "rows_per_second",
    "rows",
    "paced",
    "base_time",
    "max_rows_per_epoch",
];

/// Most rows one epoch may take: they are held in memory at once.
const MAX_ROWS_PER_EPOCH: u64 = 10_000_000;
/// Most rows a stream may have (row numbers and their times stay far from overflow).
const MAX_ROWS: u64 = 1 << 53;
const MICROS: u64 = 1_000_000;

/// A rate stream's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSource {
    /// Rows per second of event time (and of wall-clock time, when paced).
    pub rows_per_second: u64,
    /// Rows in all (None: no end).
    pub rows: Option<u64>,
    /// Whether rows wait for their time to come (false: as fast as the engine takes them).
    pub paced: bool,
    /// Event time of row 0, in microseconds since the Unix epoch.
    pub base_time_micros: i64,
    pub max_rows_per_epoch: u64,
}

impl RateSource {
    /// Reads a stream's options. `base_time` is required here: CREATE STREAM records the
    /// statement's time when it is not given, so that a replay yields the same rows.
    pub fn from_options(
        map: &std::collections::BTreeMap<String, String>,
    ) -> ConnectorResult<RateSource> {
        let options = Options::new("rate", OPTIONS, map)?;
        let at_most = |key: &str, n: u64, limit: u64| {
            if n > limit {
                return Err(ConnectorError::invalid(
                    key,
                    &n.to_string(),
                    &format!("at most {limit}"),
                ));
            }
            Ok(n)
        };
        let rows = match options.get("rows") {
            Some(_) => Some(at_most("rows", options.positive("rows", 1)?, MAX_ROWS)?),
            None => None,
        };
        let paced = match options.get("paced").map(|p| p.trim().to_ascii_lowercase()) {
            None => true,
            Some(p) if p == "true" => true,
            Some(p) if p == "false" => false,
            Some(p) => return Err(ConnectorError::invalid("paced", &p, "true or false")),
        };
        Ok(RateSource {
            rows_per_second: at_most(
                "rows_per_second",
                options.positive("rows_per_second", 1)?,
                1_000_000_000,
            )?,
            rows,
            paced,
            base_time_micros: parse_timestamp("base_time", options.required("base_time")?)?,
            max_rows_per_epoch: at_most(
                "max_rows_per_epoch",
                options.positive("max_rows_per_epoch", 100_000)?,
                MAX_ROWS_PER_EPOCH,
            )?,
        })
    }

    /// Records the statement's time as `base_time` when the options give none, so that
    /// every replay of the stream yields the same rows.
    pub fn fill_in_base_time(map: &mut std::collections::BTreeMap<String, String>) {
        map.entry("base_time".into()).or_insert_with(|| {
            chrono::Utc::now()
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string()
        });
    }

    /// The default columns: the event time and the row's number, named as in Spark.
    pub fn columns() -> Vec<(&'static str, SqlType)> {
        vec![("ts", SqlType::Timestamp), ("value", SqlType::BigInt)]
    }

    /// Whether declared columns take the rows: a timestamp and a bigint, named at will.
    pub fn fits(declared: &[SqlType]) -> bool {
        let standard = Self::columns();
        declared.len() == standard.len()
            && declared
                .iter()
                .zip(&standard)
                .all(|(d, (_, s))| crate::nexmark::fits(d, s))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            Self::columns()
                .into_iter()
                .map(|(name, t)| t.field(name, true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Event time of row `n`, in microseconds since the Unix epoch.
    fn time_of(&self, n: u64) -> i64 {
        let rate = self.rows_per_second;
        let offset = (n / rate) * MICROS + (n % rate) * MICROS / rate;
        self.base_time_micros.saturating_add(offset as i64)
    }
}

impl Generator for RateSource {
    fn block(&self) -> u64 {
        if self.paced {
            self.max_rows_per_epoch
                .min((self.rows_per_second / 10).max(1))
        } else {
            self.max_rows_per_epoch
        }
    }

    fn total(&self) -> Option<u64> {
        self.rows
    }

    fn pace(&self) -> Option<u64> {
        self.paced.then_some(self.rows_per_second)
    }

    fn group_key(&self) -> String {
        format!("rate {self:?}")
    }

    /// Both columns whatever is read: each costs about as little as a column of NULLs.
    fn generate_columns(&self, range: Range<u64>, _read: Option<&[usize]>) -> RecordBatch {
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            range.clone().map(|n| self.time_of(n)),
        ));
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(range.map(|n| n as i64)));
        RecordBatch::try_new(Self::schema(), vec![times, values])
            .expect("generated columns fit the schema")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    use super::*;

    fn source(options: &[(&str, &str)]) -> ConnectorResult<RateSource> {
        let mut map: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("base_time".into())
            .or_insert_with(|| "2024-01-01 00:00:00".into());
        RateSource::from_options(&map)
    }

    #[test]
    fn options() {
        let s = source(&[("rows_per_second", "500"), ("rows", "10")]).unwrap();
        assert_eq!((s.rows_per_second, s.rows, s.paced), (500, Some(10), true));
        assert_eq!(s.pace(), Some(500));
        let s = source(&[("paced", "false")]).unwrap();
        assert_eq!((s.rows_per_second, s.pace()), (1, None));
        assert!(source(&[("rows_per_second", "0")]).is_err());
        assert!(source(&[("paced", "sometimes")]).is_err());
        assert!(source(&[("rowsPerSecond", "5")]).is_err());
        let err = RateSource::from_options(&BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("base_time"), "{err}");
    }

    #[test]
    fn rows_are_numbered_and_spaced_by_the_rate() {
        let s = source(&[("rows_per_second", "4"), ("paced", "false")]).unwrap();
        let batch = s.generate_columns(3..7, None);
        let times = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        let values = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!(values.values(), &[3, 4, 5, 6]);
        let base = s.base_time_micros;
        assert_eq!(
            times.values(),
            &[
                base + 750_000,
                base + 1_000_000,
                base + 1_250_000,
                base + 1_500_000
            ]
        );
        // Pieces give the same rows as the whole.
        let whole = s.generate_columns(0..10, None);
        let parts = arrow::compute::concat_batches(
            &whole.schema(),
            &[
                s.generate_columns(0..4, None),
                s.generate_columns(4..10, None),
            ],
        )
        .unwrap();
        assert_eq!(parts, whole);
    }

    #[test]
    fn blocks_follow_the_pace() {
        let s = source(&[
            ("rows", "250"),
            ("max_rows_per_epoch", "100"),
            ("paced", "false"),
        ])
        .unwrap();
        assert_eq!(s.next_block(0), Some(0..100));
        assert_eq!(s.next_block(200), Some(200..250));
        assert_eq!(s.next_block(250), None);
        // Paced: a tenth of a second's rows per epoch at most.
        let s = source(&[("rows_per_second", "50")]).unwrap();
        assert_eq!(s.block(), 5);
    }

    #[test]
    fn declared_columns_may_be_named_at_will() {
        assert!(RateSource::fits(&[SqlType::Timestamp, SqlType::BigInt]));
        assert!(!RateSource::fits(&[SqlType::BigInt, SqlType::Timestamp]));
        assert!(!RateSource::fits(&[SqlType::Timestamp]));
    }
}
