//! Streams fed by connectors: the definition checked at CREATE STREAM, and the history of a
//! replayable source (one that yields the same rows again from any offset) replayed for a
//! query or a new view's backfill.

use std::collections::BTreeMap;
use std::ops::Range;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use eddy_catalog::{Column, Connector, Relation};
use eddy_connectors::file::{FileReader, FileSource};
use eddy_connectors::format::RecordDecoder;
use eddy_connectors::kafka::{KafkaReader, KafkaSource};
use eddy_connectors::nexmark::{self, NexmarkSource};
use eddy_connectors::postgres_source::PostgresTableSource;
use eddy_connectors::rate::RateSource;
use eddy_connectors::{ConnectorError, Generator, SourceReader};
use eddy_dataflow::progress::{self, Progress};
use eddy_dataflow::relations;
use eddy_storage::{Store, keys};
use sqlparser::ast::{Expr, SqlOption, Value};

use crate::context::layout;
use crate::{SqlError, SqlResult};

impl From<ConnectorError> for SqlError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Unavailable(m) => SqlError::ConnectionFailure(m),
            ConnectorError::NotFound(m) => SqlError::UndefinedObject(m),
            other => SqlError::InvalidParameter(other.to_string()),
        }
    }
}

/// What feeds a stream with a connector.
#[derive(Clone, Debug)]
pub enum Source {
    Nexmark(NexmarkSource),
    Rate(RateSource),
    Kafka(KafkaSource),
    File(FileSource),
}

impl Source {
    /// The source of a stream, if it has a connector.
    pub fn of(rel: &Relation) -> SqlResult<Option<Source>> {
        if rel.kind != eddy_catalog::RelationKind::Stream {
            return Ok(None);
        }
        rel.connector
            .as_ref()
            .map(|c| Self::from_connector(&rel.name, c))
            .transpose()
    }

    fn from_connector(stream: &str, c: &Connector) -> SqlResult<Source> {
        match c.name.as_str() {
            "nexmark" => Ok(Source::Nexmark(NexmarkSource::from_options(
                stream, &c.options,
            )?)),
            "rate" => Ok(Source::Rate(RateSource::from_options(&c.options)?)),
            "kafka" => Ok(Source::Kafka(KafkaSource::from_options(&c.options)?)),
            "file" => Ok(Source::File(FileSource::from_options(&c.options)?)),
            other => Err(ConnectorError::UnknownConnector(other.to_string()).into()),
        }
    }

    /// Checks that the source can feed a stream of this schema: for an external system, that
    /// it answers and has what the options name.
    pub async fn check(&self, schema: arrow::datatypes::SchemaRef) -> SqlResult<()> {
        match self {
            Source::Nexmark(_) | Source::Rate(_) => Ok(()),
            Source::Kafka(k) => {
                RecordDecoder::new(k.format, schema)?;
                k.check().await?;
                Ok(())
            }
            Source::File(f) => {
                RecordDecoder::new(f.format, schema)?;
                f.check()?;
                Ok(())
            }
        }
    }

    /// A reader of an external source from committed positions (part -> position); None
    /// for a replayable source, which the driver generates itself.
    pub async fn open_reader(
        &self,
        schema: arrow::datatypes::SchemaRef,
        committed: &BTreeMap<String, i64>,
    ) -> SqlResult<Option<Box<dyn SourceReader>>> {
        Ok(match self {
            Source::Nexmark(_) | Source::Rate(_) => None,
            Source::Kafka(k) => Some(Box::new(
                KafkaReader::open_at(k.clone(), schema, committed).await?,
            )),
            Source::File(f) => Some(Box::new(FileReader::open(f.clone(), schema, committed)?)),
        })
    }

    /// A source that yields the same rows again from any offset: its stream stores none.
    pub fn replayable(&self) -> Option<&dyn Generator> {
        match self {
            Source::Nexmark(n) => Some(n),
            Source::Rate(r) => Some(r),
            Source::Kafka(_) | Source::File(_) => None,
        }
    }
}

/// A `key = value` option: the key in lower case, the value as written.
pub fn option_key_value(o: &SqlOption, what: &str) -> SqlResult<(String, String)> {
    let SqlOption::KeyValue { key, value } = o else {
        return Err(SqlError::InvalidParameter(format!(
            "{what} option {o} is not key = value"
        )));
    };
    let text = match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Boolean(b) => b.to_string(),
            Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    };
    Ok((key.value.to_ascii_lowercase(), text))
}

/// `WITH (...)` options as a map (keys in lower case); a key given twice is refused.
pub fn option_map(options: &[SqlOption], what: &str) -> SqlResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for o in options {
        let (key, value) = option_key_value(o, what)?;
        if map.insert(key.clone(), value).is_some() {
            return Err(SqlError::InvalidParameter(format!(
                "option \"{key}\" is given twice"
            )));
        }
    }
    Ok(map)
}

/// The connector a CREATE STREAM's options declare (None without `connector`), checked
/// against the stream's columns. A connector that defines its relation's columns fills them
/// in when the statement lists none.
pub fn stream_connector(
    stream: &str,
    columns: &mut Vec<Column>,
    options: &[SqlOption],
) -> SqlResult<Option<Connector>> {
    let map = option_map(options, "stream")?;
    let Some(name) = map.get("connector").map(|c| c.to_ascii_lowercase()) else {
        if let Some(key) = map.keys().next() {
            return Err(SqlError::InvalidParameter(format!(
                "stream option \"{key}\" needs a connector (WITH (connector = 'nexmark', ...))"
            )));
        }
        return Ok(None);
    };
    let mut map = map;
    if name == "rate" {
        RateSource::fill_in_base_time(&mut map);
    }
    let connector = Connector { name, options: map };
    match Source::from_connector(stream, &connector)? {
        Source::Nexmark(source) => check_columns(stream, columns, &source)?,
        Source::Rate(_) => check_rate_columns(stream, columns)?,
        Source::Kafka(_) | Source::File(_) if columns.is_empty() => {
            return Err(SqlError::Syntax(format!(
                "stream \"{stream}\" needs a column list: its {} records are decoded into them",
                connector.name
            )));
        }
        Source::Kafka(_) | Source::File(_) => {}
    }
    Ok(Some(connector))
}

/// The columns a connector defines, for a CREATE STREAM that lists none.
fn implied_columns(standard: Vec<(&str, eddy_catalog::SqlType)>) -> Vec<Column> {
    standard
        .into_iter()
        .map(|(name, sql_type)| Column::nullable(name, sql_type))
        .collect()
}

/// A Nexmark stream's columns must be the standard ones (in order, by name and type).
fn check_columns(stream: &str, columns: &mut Vec<Column>, source: &NexmarkSource) -> SqlResult<()> {
    let standard = source.columns();
    if columns.is_empty() {
        *columns = implied_columns(standard);
        return Ok(());
    }
    let fits = columns.len() == standard.len()
        && columns
            .iter()
            .zip(&standard)
            .all(|(c, (name, t))| c.name == *name && nexmark::fits(&c.sql_type, t));
    if !fits {
        let expected: Vec<String> = standard
            .iter()
            .map(|(name, t)| format!("{name} {t}"))
            .collect();
        return Err(SqlError::DatatypeMismatch(format!(
            "the columns of Nexmark stream \"{stream}\" must be ({})",
            expected.join(", ")
        )));
    }
    Ok(())
}

/// A rate stream's columns: an event time and a row number, named at will (`ts` and
/// `value` when the statement lists none).
fn check_rate_columns(stream: &str, columns: &mut Vec<Column>) -> SqlResult<()> {
    if columns.is_empty() {
        *columns = implied_columns(RateSource::columns());
        return Ok(());
    }
    let types: Vec<_> = columns.iter().map(|c| c.sql_type.clone()).collect();
    if !RateSource::fits(&types) {
        return Err(SqlError::DatatypeMismatch(format!(
            "the columns of rate stream \"{stream}\" must be a TIMESTAMP (the row's event time) \
             and a BIGINT (its number), such as (ts TIMESTAMP, value BIGINT)"
        )));
    }
    Ok(())
}

/// How far a stream's source has been read, as of the last committed epoch.
pub fn committed_offset(store: &Store, rel: &Relation) -> SqlResult<u64> {
    Ok(Progress::load(store, rel.id)?
        .and_then(|p| p.source_offset)
        .unwrap_or(0))
}

/// What a replay went through: the stream's figures at the offset it reached.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Replayed {
    pub watermark: Option<i64>,
    pub rows: u64,
    pub late: u64,
}

impl Replayed {
    /// Puts the figures into a stream's progress record: it now accounts for `offset`.
    pub fn record(&self, progress: &mut Progress, offset: u64) {
        progress.watermark = self.watermark;
        progress.rows = self.rows;
        progress.late_rows = self.late;
        progress.applied_offset = offset;
    }
}

/// The rows a replayable stream holds up to `offset`, in the blocks its epochs took them:
/// each block is judged against the watermark as it stood before it, as it was live, so the
/// same rows are dropped as late. `f` answers whether to go on.
pub fn replay(
    rel: &Relation,
    source: &Source,
    offset: u64,
    mut f: impl FnMut(RecordBatch) -> SqlResult<bool>,
) -> SqlResult<Replayed> {
    let mut replayed = Replayed::default();
    let mut at = 0;
    while let Some(block) = next_block(source, at).filter(|_| at < offset) {
        at = block.end.min(offset);
        let batch = generate(rel, source, block.start..at)?;
        let batch = match rel.watermark {
            Some(wm) => {
                let times = batch
                    .column(wm.column)
                    .as_primitive::<TimestampMicrosecondType>();
                let (on_time, largest) = progress::on_time(times, replayed.watermark);
                replayed.watermark =
                    progress::advance(replayed.watermark, largest, wm.delay_micros);
                let kept = arrow::compute::filter_record_batch(&batch, &on_time)?;
                replayed.late += (batch.num_rows() - kept.num_rows()) as u64;
                kept
            }
            None => batch,
        };
        replayed.rows += batch.num_rows() as u64;
        if batch.num_rows() > 0 && !f(batch)? {
            break;
        }
    }
    Ok(replayed)
}

/// A block of a replayable source's rows, in the stream's schema.
pub fn generate(rel: &Relation, source: &Source, events: Range<u64>) -> SqlResult<RecordBatch> {
    generate_columns(rel, source, events, None)
}

/// [`generate`] with only the columns `read` filled in (all when `None`), the others NULL.
pub fn generate_columns(
    rel: &Relation,
    source: &Source,
    events: Range<u64>,
    read: Option<&[usize]>,
) -> SqlResult<RecordBatch> {
    let Some(source) = source.replayable() else {
        return Err(SqlError::Internal(format!(
            "stream {} cannot replay",
            rel.name
        )));
    };
    let batch = source.generate_columns(events, read);
    Ok(RecordBatch::try_new(
        rel.schema(),
        batch.columns().to_vec(),
    )?)
}

/// The next block of a replayable source from `offset` (None: it has no more, or cannot
/// replay).
pub fn next_block(source: &Source, offset: u64) -> Option<Range<u64>> {
    source.replayable()?.next_block(offset)
}

/// Every row a stored relation holds, in chunks of about `chunk` rows: replayed from its
/// source up to its committed offset for a replayable stream (answering the figures the
/// replay reached), read from the store otherwise. `f` answers whether to go on.
pub fn read_history(
    store: &Store,
    rel: &Relation,
    chunk: usize,
    mut f: impl FnMut(RecordBatch) -> SqlResult<bool>,
) -> SqlResult<Option<Replayed>> {
    if let Some(source) = Source::of(rel)?.filter(|s| s.replayable().is_some()) {
        let offset = committed_offset(store, rel)?;
        return Ok(Some(replay(rel, &source, offset, f)?));
    }
    let mut failed = None;
    relations::scan_from(
        store,
        &keys::rows_prefix(rel.id),
        layout(rel),
        &rel.schema(),
        chunk,
        |b| match f(b) {
            Ok(go_on) => Ok(go_on),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        },
    )?;
    failed.map_or(Ok(None), Err)
}

/// How many rows [`read_history`] yields for a relation; None when its source regenerates
/// them (their number is known only once generated). A table or a view is counted by a scan
/// of its keys.
pub fn history_len(store: &Store, rel: &Relation) -> SqlResult<Option<u64>> {
    if Source::of(rel)?.is_some_and(|s| s.replayable().is_some()) {
        return Ok(None);
    }
    let prefix = keys::rows_prefix(rel.id);
    let len = match layout(rel) {
        relations::Layout::Log => relations::next_log_seq(store, rel.id)?,
        relations::Layout::Keyed => {
            let mut n = 0;
            for entry in store.scan_prefix(&prefix) {
                entry?;
                n += 1;
            }
            n
        }
        relations::Layout::Multiset => {
            let mut n = 0;
            for entry in store.scan_prefix(&prefix) {
                n += relations::decode_count(&entry?.1)?.max(0) as u64;
            }
            n
        }
    };
    Ok(Some(len))
}

/// Checks that a relation accepts rows from clients: a stream fed by a connector, or a
/// table mirrored from one, does not.
pub fn check_writable(rel: &Relation) -> SqlResult<()> {
    match &rel.connector {
        Some(c) if rel.kind == eddy_catalog::RelationKind::Table => {
            Err(SqlError::WrongObjectType(format!(
                "table \"{}\" mirrors its {} connector's table; it takes no INSERT, UPDATE, \
                 DELETE or COPY (change the upstream table instead)",
                rel.name, c.name
            )))
        }
        Some(c) => Err(SqlError::WrongObjectType(format!(
            "stream \"{}\" is fed by its {} connector; it takes no INSERT or COPY",
            rel.name, c.name
        ))),
        None => Ok(()),
    }
}

/// The connector a CREATE TABLE's options declare (None without options): a table can
/// mirror a PostgreSQL table, by its primary key.
pub fn table_connector(
    table: &str,
    primary_key: &[usize],
    options: &[SqlOption],
) -> SqlResult<Option<Connector>> {
    if options.is_empty() {
        return Ok(None);
    }
    let map = option_map(options, "table")?;
    let name = match map.get("connector").map(|c| c.to_ascii_lowercase()) {
        Some(name) if name == "postgres" => name,
        Some(name) if ["kafka", "file", "nexmark", "rate"].contains(&name.as_str()) => {
            return Err(SqlError::InvalidParameter(format!(
                "connector \"{name}\" feeds streams, not tables: use CREATE STREAM {table} (...) \
                 WITH (connector = '{name}', ...)"
            )));
        }
        Some(other) => return Err(ConnectorError::UnknownConnector(other).into()),
        None => {
            let key = map.keys().next().expect("options are not empty");
            return Err(SqlError::InvalidParameter(format!(
                "table option \"{key}\" needs a connector (WITH (connector = 'postgres', ...))"
            )));
        }
    };
    if primary_key.is_empty() {
        return Err(SqlError::InvalidTableDefinition(format!(
            "table \"{table}\" mirrors a PostgreSQL table by its key: declare a PRIMARY KEY"
        )));
    }
    let connector = Connector { name, options: map };
    PostgresTableSource::from_options(&connector.options)?;
    Ok(Some(connector))
}

/// The PostgreSQL table a table mirrors, if it has a connector.
pub fn mirror_of(rel: &Relation) -> SqlResult<Option<PostgresTableSource>> {
    match (&rel.kind, &rel.connector) {
        (eddy_catalog::RelationKind::Table, Some(c)) => {
            Ok(Some(PostgresTableSource::from_options(&c.options)?))
        }
        _ => Ok(None),
    }
}
