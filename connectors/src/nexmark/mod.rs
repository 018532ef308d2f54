//! The Nexmark benchmark's auction site as a source: `CREATE STREAM bid (...) WITH
//! (connector = 'nexmark', ...)`, likewise `person` and `auction`.
//!
//! Every event is a function of its event number and the settings alone (see
//! [`generator`]), so a Nexmark stream stores no rows: its contents are the events of the
//! numbers `[0, offset)`, and replaying them gives the same rows every time. Streams with the
//! same settings share one event sequence: the engine advances them together, one block of
//! event numbers per epoch, so in every epoch the three relations have covered the same
//! events (a join sees aligned event time).

pub mod generator;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Schema, SchemaRef};
use eddy_catalog::SqlType;

pub use generator::EventKind;

use crate::{ConnectorError, ConnectorResult, Generator};

/// The generator's settings: the reference's defaults, some of them options.
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkConfig {
    /// Events in all (None: no end).
    pub events: Option<u64>,
    /// Events per second of event time: sets the event times, not how fast events come.
    pub event_rate: u64,
    /// Events are shuffled within groups of this many (1: in order).
    pub out_of_order_group_size: u64,
    /// Event time of the first event, in milliseconds since the Unix epoch.
    pub base_time_ms: i64,
    /// Event numbers per epoch (the block size).
    pub max_events_per_epoch: u64,
    /// Events per second of wall-clock time (None: as fast as the engine takes them).
    pub max_events_per_second: Option<u64>,
    pub avg_person_bytes: usize,
    pub avg_auction_bytes: usize,
    pub avg_bid_bytes: usize,
    /// One in this many auctions is by a random seller; the rest by a hot one.
    pub hot_sellers_ratio: i32,
    pub hot_auctions_ratio: i32,
    pub hot_bidders_ratio: i32,
    pub num_active_people: i64,
    pub num_in_flight_auctions: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        Self {
            events: None,
            event_rate: 10_000,
            out_of_order_group_size: 1,
            // 2024-01-01 00:00:00 UTC: a fixed start, so runs are reproducible.
            base_time_ms: 1_704_067_200_000,
            max_events_per_epoch: 100_000,
            max_events_per_second: None,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_sellers_ratio: 4,
            hot_auctions_ratio: 2,
            hot_bidders_ratio: 4,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
        }
    }
}

/// Most events a source may have (event ids stay far from overflow).
const MAX_EVENTS: u64 = 1 << 53;
/// Most events one epoch may take: its rows are held in memory at once.
const MAX_EVENTS_PER_EPOCH: u64 = 10_000_000;

/// The options a Nexmark stream takes, besides `connector`.
pub const OPTIONS: &[&str] = &[
    "table",
    "events",
    "event_rate",
    "out_of_order_group_size",
    "base_time",
    "max_events_per_epoch",
    "max_events_per_second",
];

/// One Nexmark stream: which relation it is and the generator it shares.
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkSource {
    pub kind: EventKind,
    pub config: NexmarkConfig,
}

impl NexmarkSource {
    /// Reads a stream's options. `table` says which relation it is (`person`, `auction` or
    /// `bid`); without it, the stream's name must be one of those.
    pub fn from_options(
        stream: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<NexmarkSource> {
        let mut config = NexmarkConfig::default();
        let mut kind = None;
        for (key, value) in options {
            let at_most = |n: u64, limit: u64| -> ConnectorResult<u64> {
                if n > limit {
                    return Err(ConnectorError::invalid(
                        key,
                        value,
                        &format!("at most {limit}"),
                    ));
                }
                Ok(n)
            };
            let number = || -> ConnectorResult<u64> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConnectorError::invalid(key, value, "a positive integer"))
            };
            match key.as_str() {
                "connector" => {}
                "table" => kind = Some(kind_named(value)?),
                "events" => config.events = Some(at_most(number()?, MAX_EVENTS)?),
                "event_rate" => config.event_rate = at_most(number()?, 1_000_000_000)?,
                "out_of_order_group_size" => {
                    config.out_of_order_group_size = at_most(number()?, MAX_EVENTS)?
                }
                "max_events_per_epoch" => {
                    config.max_events_per_epoch = at_most(number()?, MAX_EVENTS_PER_EPOCH)?
                }
                "max_events_per_second" => config.max_events_per_second = Some(number()?),
                "base_time" => {
                    config.base_time_ms = crate::parse_timestamp(key, value)?.div_euclid(1000)
                }
                other => {
                    return Err(ConnectorError::UnknownOption {
                        connector: "nexmark",
                        option: other.to_string(),
                        known: OPTIONS.join(", "),
                    });
                }
            }
        }
        let kind = match kind {
            Some(k) => k,
            None => kind_named(stream).map_err(|_| {
                ConnectorError::Invalid(format!(
                    "say which Nexmark relation stream \"{stream}\" is: table = 'person', \
                     'auction' or 'bid'"
                ))
            })?,
        };
        Ok(NexmarkSource { kind, config })
    }

    /// The columns of the relation, as Nexmark defines them.
    pub fn columns(&self) -> Vec<(&'static str, SqlType)> {
        columns(self.kind)
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns()
                .into_iter()
                .map(|(name, t)| t.field(name, true))
                .collect::<Vec<_>>(),
        ))
    }

    /// This relation's rows among the events numbered `range`, in event-number order.
    pub fn generate(&self, range: Range<u64>) -> RecordBatch {
        self.generate_columns(range, None)
    }
}

impl Generator for NexmarkSource {
    /// Event numbers per epoch: the option, but at most a tenth of a second's worth when
    /// the source is throttled.
    fn block(&self) -> u64 {
        let c = &self.config;
        match c.max_events_per_second {
            Some(rate) => c.max_events_per_epoch.min((rate / 10).max(1)),
            None => c.max_events_per_epoch,
        }
    }

    fn total(&self) -> Option<u64> {
        self.config.events
    }

    fn pace(&self) -> Option<u64> {
        self.config.max_events_per_second
    }

    fn group_key(&self) -> String {
        format!("nexmark {:?}", self.config)
    }

    /// The same rows with only the columns `read` (all when `None`) filled in: the others are
    /// NULL, and text no one reads is neither copied nor, for the trailing `extra` padding,
    /// generated.
    fn generate_columns(&self, range: Range<u64>, read: Option<&[usize]>) -> RecordBatch {
        let config = &self.config;
        let ids = range
            .map(|n| config.event_id(n))
            .filter(|id| EventKind::of(*id) == self.kind);
        let width = self.columns().len();
        let mut b = Builders::new(width, read);
        // `extra` is every relation's last column.
        let extra = b.reads(width - 1);
        let columns: Vec<ArrayRef> = match self.kind {
            EventKind::Person => {
                for id in ids {
                    let p = config.person(id, extra);
                    b.int(0, p.id);
                    b.text(1, &p.name);
                    b.text(2, &p.email_address);
                    b.text(3, &p.credit_card);
                    b.text(4, p.city);
                    b.text(5, p.state);
                    b.time(6, p.date_time_ms);
                    b.text(7, &p.extra);
                    b.end_row();
                }
                b.finish(self.kind)
            }
            EventKind::Auction => {
                for id in ids {
                    let a = config.auction(id, extra);
                    b.int(0, a.id);
                    b.text(1, &a.item_name);
                    b.text(2, &a.description);
                    b.int(3, a.initial_bid);
                    b.int(4, a.reserve);
                    b.time(5, a.date_time_ms);
                    b.time(6, a.expires_ms);
                    b.int(7, a.seller);
                    b.int(8, a.category);
                    b.text(9, &a.extra);
                    b.end_row();
                }
                b.finish(self.kind)
            }
            EventKind::Bid => {
                for id in ids {
                    let x = config.bid(id, extra);
                    b.int(0, x.auction);
                    b.int(1, x.bidder);
                    b.int(2, x.price);
                    b.text(3, x.channel);
                    b.text(4, x.url);
                    b.time(5, x.date_time_ms);
                    b.text(6, &x.extra);
                    b.end_row();
                }
                b.finish(self.kind)
            }
        };
        RecordBatch::try_new(self.schema(), columns).expect("generated columns fit the schema")
    }
}

fn kind_named(name: &str) -> ConnectorResult<EventKind> {
    match name.to_ascii_lowercase().as_str() {
        "person" => Ok(EventKind::Person),
        "auction" => Ok(EventKind::Auction),
        "bid" => Ok(EventKind::Bid),
        _ => Err(ConnectorError::invalid(
            "table",
            name,
            "'person', 'auction' or 'bid'",
        )),
    }
}

/// The standard columns of each relation.
pub fn columns(kind: EventKind) -> Vec<(&'static str, SqlType)> {
    use SqlType::{BigInt, Text, Timestamp};
    match kind {
        EventKind::Person => vec![
            ("id", BigInt),
            ("name", Text),
            ("email_address", Text),
            ("credit_card", Text),
            ("city", Text),
            ("state", Text),
            ("date_time", Timestamp),
            ("extra", Text),
        ],
        EventKind::Auction => vec![
            ("id", BigInt),
            ("item_name", Text),
            ("description", Text),
            ("initial_bid", BigInt),
            ("reserve", BigInt),
            ("date_time", Timestamp),
            ("expires", Timestamp),
            ("seller", BigInt),
            ("category", BigInt),
            ("extra", Text),
        ],
        EventKind::Bid => vec![
            ("auction", BigInt),
            ("bidder", BigInt),
            ("price", BigInt),
            ("channel", Text),
            ("url", Text),
            ("date_time", Timestamp),
            ("extra", Text),
        ],
    }
}

/// Column builders in the order of a relation's columns.
enum Builder {
    Int(Int64Builder),
    Text(StringBuilder),
    Time(TimestampMicrosecondBuilder),
}

/// Column builders of one relation, filling only the columns read.
struct Builders {
    columns: Vec<Option<Builder>>,
    read: Vec<bool>,
    rows: usize,
}

impl Builders {
    fn new(width: usize, read: Option<&[usize]>) -> Self {
        let read = (0..width)
            .map(|i| read.is_none_or(|r| r.contains(&i)))
            .collect();
        Self {
            columns: (0..width).map(|_| None).collect(),
            read,
            rows: 0,
        }
    }

    fn reads(&self, i: usize) -> bool {
        self.read[i]
    }

    fn end_row(&mut self) {
        self.rows += 1;
    }

    fn int(&mut self, i: usize, v: i64) {
        if !self.read[i] {
            return;
        }
        match self.columns[i].get_or_insert_with(|| Builder::Int(Int64Builder::new())) {
            Builder::Int(b) => b.append_value(v),
            _ => unreachable!("column {i} is not an integer"),
        }
    }

    fn text(&mut self, i: usize, v: &str) {
        if !self.read[i] {
            return;
        }
        match self.columns[i].get_or_insert_with(|| Builder::Text(StringBuilder::new())) {
            Builder::Text(b) => b.append_value(v),
            _ => unreachable!("column {i} is not text"),
        }
    }

    fn time(&mut self, i: usize, ms: i64) {
        if !self.read[i] {
            return;
        }
        match self.columns[i]
            .get_or_insert_with(|| Builder::Time(TimestampMicrosecondBuilder::new()))
        {
            Builder::Time(b) => b.append_value(ms * 1000),
            _ => unreachable!("column {i} is not a timestamp"),
        }
    }

    fn finish(self, kind: EventKind) -> Vec<ArrayRef> {
        let rows = self.rows;
        self.columns
            .into_iter()
            .zip(columns(kind))
            .map(|(b, (_, t))| -> ArrayRef {
                match (b, t.arrow_type()) {
                    (Some(Builder::Int(mut b)), _) => Arc::new(b.finish()),
                    (Some(Builder::Text(mut b)), _) => Arc::new(b.finish()),
                    (Some(Builder::Time(mut b)), _) => Arc::new(b.finish()),
                    (None, data_type) => arrow::array::new_null_array(&data_type, rows),
                }
            })
            .collect()
    }
}

/// Whether a declared column type holds what the generator produces.
pub fn fits(declared: &SqlType, standard: &SqlType) -> bool {
    declared.arrow_type() == standard.arrow_type()
        && !matches!(declared, SqlType::Json | SqlType::Jsonb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(options: &[(&str, &str)], stream: &str) -> ConnectorResult<NexmarkSource> {
        let options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NexmarkSource::from_options(stream, &options)
    }

    #[test]
    fn options() {
        let s = source(&[("events", "1000"), ("event_rate", "500")], "bid").unwrap();
        assert_eq!(s.kind, EventKind::Bid);
        assert_eq!(s.config.events, Some(1000));
        let s = source(&[("table", "person")], "people").unwrap();
        assert_eq!(s.kind, EventKind::Person);
        assert!(source(&[], "people").is_err());
        assert!(source(&[("events", "-1")], "bid").is_err());
        assert!(source(&[("speed", "1")], "bid").is_err());
        let a = source(&[("events", "1000")], "bid").unwrap();
        let b = source(&[("events", "1000")], "auction").unwrap();
        assert_eq!(a.group_key(), b.group_key());
    }

    #[test]
    fn blocks_cover_the_events() {
        let s = source(&[("events", "250"), ("max_events_per_epoch", "100")], "bid").unwrap();
        assert_eq!(s.next_block(0), Some(0..100));
        assert_eq!(s.next_block(100), Some(100..200));
        assert_eq!(s.next_block(200), Some(200..250));
        assert_eq!(s.next_block(250), None);
        let throttled = source(&[("max_events_per_second", "50")], "bid").unwrap();
        assert_eq!(throttled.block(), 5);
    }

    #[test]
    fn the_three_relations_split_the_events() {
        let [p, a, b] = ["person", "auction", "bid"].map(|t| source(&[], t).unwrap());
        let (p, a, b) = (
            p.generate(0..1000),
            a.generate(0..1000),
            b.generate(0..1000),
        );
        assert_eq!((p.num_rows(), a.num_rows(), b.num_rows()), (20, 60, 920));
        // Generating a range in pieces gives the same rows.
        let whole = b;
        let bid = source(&[], "bid").unwrap();
        let parts = arrow::compute::concat_batches(
            &whole.schema(),
            &[bid.generate(0..300), bid.generate(300..1000)],
        )
        .unwrap();
        assert_eq!(parts, whole);
    }

    #[test]
    fn columns_no_one_reads_are_null_and_the_rest_unchanged() {
        for table in ["person", "auction", "bid"] {
            let source = source(&[], table).unwrap();
            let whole = source.generate(0..2000);
            let width = whole.num_columns();
            // The first column and the event time; `extra` (the last) left out.
            let time = whole
                .schema()
                .index_of("date_time")
                .expect("every relation has date_time");
            let read = [0, time];
            let some = source.generate_columns(0..2000, Some(&read));
            assert_eq!(some.num_rows(), whole.num_rows(), "{table}");
            for c in 0..width {
                if read.contains(&c) {
                    assert_eq!(some.column(c), whole.column(c), "{table} column {c}");
                } else {
                    assert_eq!(some.column(c).null_count(), some.num_rows(), "{table} {c}");
                }
            }
        }
    }
}
