//! PostgreSQL as a sink: `CREATE SINK s FROM v WITH (connector = 'postgres', url = '...',
//! table = '...', output_mode = 'update' | 'append' | 'complete' [, primary_key = 'a,b'])`.
//!
//! Exactly once: every delivery (the change of one epoch, or one chunk of a first snapshot)
//! is one transaction that also records how far the sink has delivered, in the table
//! `eddy_sink_progress (sink, epoch, chunk)` of the target database. After a crash the sink
//! reads that row back and skips whatever was already delivered.
//!
//! - `update`: the target table is keyed by the relation's key; a change upserts the rows
//!   inserted under a key and deletes the keys only retracted.
//! - `append`: rows are inserted (the relation never retracts rows).
//! - `complete`: each delivery replaces the table's contents with the whole result.
//!
//! The target table is created when missing, with the relation's columns and, in update
//! mode, its key as the primary key. Values are sent as SQL literals cast to the column's
//! type, so every type Eddy stores round-trips through Postgres' own input functions.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use eddy_catalog::{Column, SqlType};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::options::Options;
use crate::{ConnectorError, ConnectorResult, OutputMode, SinkChange, SinkWriter};

/// How long connecting may take before CREATE SINK (or a retry) gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per INSERT or DELETE statement.
const ROWS_PER_STATEMENT: usize = 500;
/// The table in the target database that records what each sink delivered.
pub const PROGRESS_TABLE: &str = "eddy_sink_progress";

const KNOWN: &[&str] = &["connector", "url", "table", "output_mode", "primary_key"];

/// A PostgreSQL sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresSinkConfig {
    pub url: String,
    /// The target table, possibly schema-qualified (`public.revenue`).
    pub table: String,
    pub mode: OutputMode,
    /// Key columns given by `primary_key` (else the relation's own key is used).
    pub primary_key: Option<Vec<String>>,
}

impl PostgresSinkConfig {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("postgres", KNOWN, options)?;
        Ok(Self {
            url: opts.required("url")?.to_string(),
            table: opts.required("table")?.to_string(),
            mode: OutputMode::parse(opts.required("output_mode")?)?,
            primary_key: opts.key_columns("primary_key"),
        })
    }
}

/// A connection to the target database, ready to deliver.
pub struct PostgresSink {
    client: tokio_postgres::Client,
    connection: JoinHandle<()>,
    /// The target table, quoted.
    table: String,
    columns: Vec<Column>,
    key: Vec<usize>,
    mode: OutputMode,
    /// This sink's row in the progress table.
    sink_id: String,
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl PostgresSink {
    /// Connects, creates the target and progress tables when missing, and checks that an
    /// existing target has the columns.
    pub async fn connect(
        config: &PostgresSinkConfig,
        columns: &[Column],
        key: &[usize],
        sink_id: &str,
    ) -> ConnectorResult<Self> {
        let (client, connection) = connect(&config.url).await?;
        let sink = Self {
            client,
            connection,
            table: quote_qualified(&config.table),
            columns: columns.to_vec(),
            key: key.to_vec(),
            mode: config.mode,
            sink_id: sink_id.to_string(),
        };
        sink.prepare().await?;
        Ok(sink)
    }

    async fn prepare(&self) -> ConnectorResult<()> {
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), c.sql_type))
            .collect();
        if self.mode == OutputMode::Update {
            let key: Vec<String> = self
                .key
                .iter()
                .map(|k| quote(&self.columns[*k].name))
                .collect();
            defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({});\
             CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} \
               (sink TEXT PRIMARY KEY, epoch BIGINT NOT NULL, chunk BIGINT NOT NULL)",
            self.table,
            defs.join(", ")
        );
        self.client.batch_execute(&ddl).await.map_err(failed)?;
        // An existing table must have every column (by name).
        let probe: Vec<String> = self.columns.iter().map(|c| quote(&c.name)).collect();
        self.client
            .batch_execute(&format!(
                "SELECT {} FROM {} LIMIT 0",
                probe.join(", "),
                self.table
            ))
            .await
            .map_err(|e| {
                ConnectorError::Invalid(format!(
                    "the sink's target table {} does not fit its columns: {}",
                    self.table,
                    message(&e)
                ))
            })?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SinkWriter for PostgresSink {
    async fn delivered(&mut self) -> ConnectorResult<Option<(u64, u64)>> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT epoch, chunk FROM {PROGRESS_TABLE} WHERE sink = $1"),
                &[&self.sink_id],
            )
            .await
            .map_err(failed)?;
        Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)))
    }

    async fn deliver(
        &mut self,
        (epoch, chunk): (u64, u64),
        change: &SinkChange,
        replace: bool,
    ) -> ConnectorResult<()> {
        let mut statements = Vec::new();
        if replace || self.mode == OutputMode::Complete {
            statements.push(format!("DELETE FROM {}", self.table));
        }
        let columns = change.rows.columns();
        match self.mode {
            OutputMode::Update => {
                let mut upserted: HashSet<Vec<String>> = HashSet::new();
                let mut inserts = Vec::new();
                for (i, w) in change.weights.iter().enumerate() {
                    if *w > 0 && upserted.insert(self.key_values(columns, i)?) {
                        inserts.push(i);
                    }
                }
                let deletes: Vec<Vec<String>> = change
                    .weights
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| **w < 0)
                    .map(|(i, _)| self.key_values(columns, i))
                    .collect::<ConnectorResult<Vec<_>>>()?
                    .into_iter()
                    .filter(|k| !upserted.contains(k))
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                for keys in deletes.chunks(ROWS_PER_STATEMENT) {
                    statements.push(self.delete_keys(keys));
                }
                for rows in inserts.chunks(ROWS_PER_STATEMENT) {
                    statements.push(self.insert(columns, rows, true)?);
                }
            }
            OutputMode::Append | OutputMode::Complete => {
                let mut rows = Vec::new();
                for (i, w) in change.weights.iter().enumerate() {
                    rows.extend(std::iter::repeat_n(i, (*w).max(0) as usize));
                }
                for rows in rows.chunks(ROWS_PER_STATEMENT) {
                    statements.push(self.insert(columns, rows, false)?);
                }
            }
        }
        let tx = self.client.transaction().await.map_err(failed)?;
        for statement in &statements {
            tx.batch_execute(statement).await.map_err(failed)?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {PROGRESS_TABLE} (sink, epoch, chunk) VALUES ($1, $2, $3) \
                 ON CONFLICT (sink) DO UPDATE SET epoch = EXCLUDED.epoch, chunk = EXCLUDED.chunk"
            ),
            &[&self.sink_id, &(epoch as i64), &(chunk as i64)],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(())
    }
}

impl PostgresSink {
    fn key_values(&self, columns: &[ArrayRef], row: usize) -> ConnectorResult<Vec<String>> {
        self.key
            .iter()
            .map(|k| literal(&columns[*k], row, &self.columns[*k].sql_type))
            .collect()
    }

    fn delete_keys(&self, keys: &[Vec<String>]) -> String {
        let names: Vec<String> = self
            .key
            .iter()
            .map(|k| quote(&self.columns[*k].name))
            .collect();
        let tuples: Vec<String> = keys.iter().map(|k| format!("({})", k.join(", "))).collect();
        format!(
            "DELETE FROM {} WHERE ({}) IN ({})",
            self.table,
            names.join(", "),
            tuples.join(", ")
        )
    }

    fn insert(
        &self,
        columns: &[ArrayRef],
        rows: &[usize],
        upsert: bool,
    ) -> ConnectorResult<String> {
        let names: Vec<String> = self.columns.iter().map(|c| quote(&c.name)).collect();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", self.table, names.join(", "));
        for (n, &i) in rows.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            let values = columns
                .iter()
                .zip(&self.columns)
                .map(|(c, col)| literal(c, i, &col.sql_type))
                .collect::<ConnectorResult<Vec<_>>>()?;
            let _ = write!(sql, "({})", values.join(", "));
        }
        if upsert {
            let key: Vec<String> = self
                .key
                .iter()
                .map(|k| quote(&self.columns[*k].name))
                .collect();
            let rest: Vec<String> = (0..self.columns.len())
                .filter(|c| !self.key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(&self.columns[c].name)))
                .collect();
            let _ = match rest.is_empty() {
                true => write!(sql, " ON CONFLICT ({}) DO NOTHING", key.join(", ")),
                false => write!(
                    sql,
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    rest.join(", ")
                ),
            };
        }
        Ok(sql)
    }
}

/// A value as a SQL literal of its column's type.
fn literal(column: &ArrayRef, row: usize, sql_type: &SqlType) -> ConnectorResult<String> {
    if column.is_null(row) {
        return Ok("NULL".to_string());
    }
    let text = match column.data_type() {
        // An array literal: every element quoted, which Postgres reads for any element type.
        DataType::List(_) => {
            let values = column.as_list::<i32>().value(row);
            let items = (0..values.len())
                .map(|j| match values.is_null(j) {
                    true => Ok("NULL".to_string()),
                    false => value_text(&values, j)
                        .map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""))),
                })
                .collect::<ConnectorResult<Vec<_>>>()?;
            format!("{{{}}}", items.join(","))
        }
        _ => value_text(column, row)?,
    };
    Ok(format!("'{}'::{sql_type}", text.replace('\'', "''")))
}

/// A non-NULL value as Postgres reads it in a literal.
fn value_text(column: &ArrayRef, row: usize) -> ConnectorResult<String> {
    let text = array_value_to_string(column, row)
        .map_err(|e| ConnectorError::Invalid(format!("cannot render a value: {e}")))?;
    Ok(match column.data_type() {
        DataType::Float32 | DataType::Float64 => match text.as_str() {
            "inf" => "Infinity".to_string(),
            "-inf" => "-Infinity".to_string(),
            _ => text,
        },
        DataType::Binary | DataType::LargeBinary => format!("\\x{text}"),
        _ => text,
    })
}

/// Connects to the database at `url`, its connection driven by a task of its own.
pub(crate) async fn connect(
    url: &str,
) -> ConnectorResult<(tokio_postgres::Client, JoinHandle<()>)> {
    let unreachable = |e: String| {
        ConnectorError::Unavailable(format!(
            "cannot connect to PostgreSQL at {}: {e}",
            redact(url)
        ))
    };
    let pg_config: tokio_postgres::Config = url.parse().map_err(|e| {
        ConnectorError::invalid("url", &redact(url), &format!("a PostgreSQL URL ({e})"))
    })?;
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, pg_config.connect(NoTls))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    // Values are read and written in UTC, whatever the database's default.
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .map_err(failed)?;
    Ok((client, connection))
}

/// An identifier, quoted.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A possibly schema-qualified name, each part quoted (a part already in quotes is kept).
pub(crate) fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(|part| {
            let part = part.trim();
            match part.starts_with('"') && part.ends_with('"') && part.len() > 1 {
                true => part.to_string(),
                false => quote(&part.to_ascii_lowercase()),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

fn failed(e: tokio_postgres::Error) -> ConnectorError {
    ConnectorError::Unavailable(format!("PostgreSQL: {}", message(&e)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Float64Array, ListBuilder, StringArray, StringBuilder};

    use super::*;

    #[test]
    fn literals_are_quoted_and_typed() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("it's"), None]));
        assert_eq!(literal(&text, 0, &SqlType::Text).unwrap(), "'it''s'::text");
        assert_eq!(literal(&text, 1, &SqlType::Text).unwrap(), "NULL");
        let float: ArrayRef = Arc::new(Float64Array::from(vec![f64::INFINITY]));
        assert_eq!(
            literal(&float, 0, &SqlType::Double).unwrap(),
            "'Infinity'::double precision"
        );
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..]]));
        assert_eq!(
            literal(&bytes, 0, &SqlType::Bytea).unwrap(),
            "'\\x00ff'::bytea"
        );
        let mut lists = ListBuilder::new(StringBuilder::new());
        lists.append_value([Some("a \"b\""), None, Some("it's")]);
        let lists: ArrayRef = Arc::new(lists.finish());
        assert_eq!(
            literal(&lists, 0, &SqlType::Array(Box::new(SqlType::Text))).unwrap(),
            "'{\"a \\\"b\\\"\",NULL,\"it''s\"}'::text[]"
        );
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(quote_qualified("public.Revenue"), "\"public\".\"revenue\"");
        assert_eq!(quote_qualified("\"Odd\"\"Name\""), "\"Odd\"\"Name\"");
        assert_eq!(
            redact("postgres://eddy:secret@127.0.0.1/test"),
            "postgres://eddy:***@127.0.0.1/test"
        );
    }
}
