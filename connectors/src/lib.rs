//! Eddy's sources: where a stream's rows come from when no client writes them.
//!
//! A stream declared `WITH (connector = '...', ...)` is fed by its connector instead of by
//! INSERT or COPY.
//!
//! - [`nexmark`], the benchmark's generated auction site, whose events are a pure function of
//!   their number: such a stream keeps only how far it has read (its offset), committed with
//!   each epoch, and its history is replayed when a new view needs it.
//! - [`kafka`], a topic's records decoded by a [`format`] (JSON or CSV): the stream stores the
//!   rows it took, and the offset of every partition commits with the epoch that applied the
//!   rows before it (exactly once across crashes). Records that do not decode become
//!   [`format::DeadLetter`]s.
//! - [`rate`], numbered rows at a steady rate of event time, like Spark's `rate` source,
//!   likewise stored as an offset alone.
//! - [`file`], the lines of the files in a folder, likewise, each file's byte offset
//!   committed with the epoch.
//!
//! A table declared with a connector mirrors an external table: [`postgres_source`] reads a
//! PostgreSQL table and applies the difference from its previous read, by primary key.
//!
//! And sinks, which push a relation's changes out, each delivery exactly once: [`postgres`]
//! (one transaction per delivery, with its position recorded in the same transaction),
//! [`redis_sink`] (a MULTI/EXEC per delivery, likewise) and [`kafka_sink`] (keyed upserts or
//! appends, each message's position in its headers, skipped when a partition has it).

pub mod file;
pub mod format;
mod java_random;
pub mod kafka;
pub mod kafka_sink;
pub mod nexmark;
mod options;
pub mod postgres;
pub mod postgres_source;
pub mod rate;
pub mod redis_sink;

use std::ops::Range;

use arrow::array::RecordBatch;
use thiserror::Error;

pub use options::{parse_duration, parse_timestamp};

/// What a source read since its last batch: the rows of each part (a Kafka partition) with
/// the positions they span, and the records that could not be read.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub parts: Vec<PartBatch>,
    pub dead_letters: Vec<format::DeadLetter>,
    /// Parts that have yielded nothing for the source's idle timeout: they do not hold the
    /// stream's watermark back.
    pub idle: Vec<String>,
}

impl SourceBatch {
    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows.num_rows()).sum()
    }
}

/// What a sink emits, as Spark's output modes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// Only new rows, never changed again: the relation must never retract a row.
    Append,
    /// Every changed row, by key: upserts and deletes.
    Update,
    /// The whole result, every time it changes.
    Complete,
}

impl OutputMode {
    pub fn parse(value: &str) -> ConnectorResult<OutputMode> {
        match value.to_ascii_lowercase().as_str() {
            "append" => Ok(OutputMode::Append),
            "update" => Ok(OutputMode::Update),
            "complete" => Ok(OutputMode::Complete),
            _ => Err(ConnectorError::invalid(
                "output_mode",
                value,
                "'append', 'update' or 'complete'",
            )),
        }
    }
}

/// A source whose rows are a function of their number and its options alone ([`nexmark`],
/// [`rate`]): its stream stores only how far it has read, and replays its history from the
/// numbers. Streams whose generators have equal [`Generator::group_key`]s share one sequence
/// and advance together, one block per epoch.
pub trait Generator: std::fmt::Debug + Send + Sync {
    /// Numbers per block: an epoch takes at most one. It depends on the options alone, so
    /// a replay meets the same blocks as the live stream did.
    fn block(&self) -> u64;

    /// Numbers in all (None: no end).
    fn total(&self) -> Option<u64>;

    /// Numbers per second of wall-clock time (None: as fast as the engine takes them).
    fn pace(&self) -> Option<u64>;

    /// Equal keys, one sequence.
    fn group_key(&self) -> String;

    /// The rows of the numbers `range`, in order, with only the columns `read` (all when
    /// `None`) filled in: the others may be NULL.
    fn generate_columns(&self, range: Range<u64>, read: Option<&[usize]>) -> RecordBatch;

    /// The next block from `offset`, or None at the end.
    fn next_block(&self, offset: u64) -> Option<Range<u64>> {
        let block = self.block();
        let end = (offset / block + 1) * block;
        let end = self.total().map_or(end, |n| end.min(n));
        (offset < end).then_some(offset..end)
    }
}

/// Reads a stream's external source batch by batch, from positions it was opened at.
#[async_trait::async_trait]
pub trait SourceReader: Send {
    /// The next batch: what arrived (within the source's limit per epoch), waiting up to
    /// `wait` for something; None when nothing arrived and no part's idleness changed.
    async fn next_batch(
        &mut self,
        wait: std::time::Duration,
    ) -> ConnectorResult<Option<SourceBatch>>;
}

/// A connection to a sink's target, ready to deliver changes in order. Each delivery is
/// identified by its (epoch, chunk) position and lands exactly once: the target records the
/// last position with the change, atomically.
#[async_trait::async_trait]
pub trait SinkWriter: Send {
    /// The position delivered last (None before the first delivery).
    async fn delivered(&mut self) -> ConnectorResult<Option<(u64, u64)>>;
    /// Delivers one change; `replace` first empties the target (a snapshot's first chunk,
    /// or a complete-mode result).
    async fn deliver(
        &mut self,
        position: (u64, u64),
        change: &SinkChange,
        replace: bool,
    ) -> ConnectorResult<()>;
}

/// A change a sink delivers: rows with weights (+n inserted n times, -n retracted).
#[derive(Clone, Debug)]
pub struct SinkChange {
    pub rows: RecordBatch,
    pub weights: Vec<i64>,
}

/// The rows read from one part of a source, from position `from` up to (not including) `to`.
#[derive(Debug)]
pub struct PartBatch {
    pub part: String,
    pub from: i64,
    pub to: i64,
    pub rows: RecordBatch,
}

/// A connector's options could not be used.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown {connector} option \"{option}\" (known: {known})")]
    UnknownOption {
        connector: &'static str,
        option: String,
        known: String,
    },
    #[error("unknown connector \"{0}\" (streams: kafka, file, nexmark, rate; tables: postgres)")]
    UnknownConnector(String),
    /// The external system could not be reached (or failed a request).
    #[error("{0}")]
    Unavailable(String),
    /// The external object (a topic, a table) does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl ConnectorError {
    fn invalid(option: &str, value: &str, expected: &str) -> Self {
        ConnectorError::Invalid(format!(
            "invalid value for option \"{option}\": \"{value}\" (expected {expected})"
        ))
    }
}

pub type ConnectorResult<T> = Result<T, ConnectorError>;
