//! PostgreSQL as the source of a table: `CREATE TABLE users (id BIGINT PRIMARY KEY, ...)
//! WITH (connector = 'postgres', url = '...', table = 'users' [, poll_interval = '1s'])`.
//!
//! The table mirrors the upstream table: it is loaded when created and kept in sync by
//! reading the upstream table every `poll_interval` and applying the difference from the
//! previous read (rows added, changed and removed, by the Eddy table's primary key). Syncing
//! by state makes it exactly-once by construction: applying a read twice changes nothing, and
//! after a restart the first read is compared with the table's stored contents, so changes
//! made upstream while Eddy was down are applied too. The cost of a read is the upstream
//! table's size, which suits reference data (users, products, plans); a large, fast-changing
//! table belongs in a stream.
//!
//! Values are read as text, formatted by the upstream server the way Eddy parses them
//! (timestamps in UTC, intervals as months, days and microseconds), and converted to the
//! declared column types by Eddy.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_catalog::{Column, SqlType};
use tokio::task::JoinHandle;

use crate::options::Options;
use crate::postgres::{connect, quote, quote_qualified, redact};
use crate::{ConnectorError, ConnectorResult, parse_duration};

const KNOWN: &[&str] = &["connector", "url", "table", "poll_interval"];
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// A table mirrored from a PostgreSQL table.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresTableSource {
    pub url: String,
    /// The upstream table, possibly schema-qualified.
    pub table: String,
    /// How often the upstream table is read.
    pub poll_interval: Duration,
}

/// One row as the upstream server formatted it (None: NULL).
pub type TextRow = Vec<Option<String>>;

impl PostgresTableSource {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("postgres", KNOWN, options)?;
        Ok(Self {
            url: opts.required("url")?.to_string(),
            table: opts.required("table")?.to_string(),
            poll_interval: match opts.get("poll_interval") {
                Some(v) => parse_duration("poll_interval", v)?,
                None => DEFAULT_POLL,
            },
        })
    }

    /// Connects and checks that the upstream table has the columns, of types that convert.
    pub async fn check(&self, columns: &[Column]) -> ConnectorResult<()> {
        let reader = self.open(columns).await?;
        reader
            .client
            .simple_query(&format!("{} LIMIT 0", reader.select))
            .await
            .map_err(|e| upstream_error(&self.table, e))?;
        Ok(())
    }

    /// Connects, ready to read the columns (by name) of the upstream table.
    pub async fn open(&self, columns: &[Column]) -> ConnectorResult<TableReader> {
        let (client, connection) = connect(&self.url).await?;
        let exprs: Vec<String> = columns.iter().map(as_text).collect();
        Ok(TableReader {
            client,
            connection,
            select: format!(
                "SELECT {} FROM {}",
                exprs.join(", "),
                quote_qualified(&self.table)
            ),
            table: self.table.clone(),
            url: redact(&self.url),
        })
    }
}

/// A connection that reads the upstream table whole.
pub struct TableReader {
    client: tokio_postgres::Client,
    connection: JoinHandle<()>,
    select: String,
    table: String,
    url: String,
}

impl Drop for TableReader {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl TableReader {
    /// Every row of the upstream table, its values as text, in one consistent read.
    pub async fn read(&self) -> ConnectorResult<Vec<TextRow>> {
        if self.connection.is_finished() {
            return Err(ConnectorError::Unavailable(format!(
                "the connection to PostgreSQL at {} was lost",
                self.url
            )));
        }
        let messages = self
            .client
            .simple_query(&self.select)
            .await
            .map_err(|e| upstream_error(&self.table, e))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// The expression that reads a column as text Eddy parses into the column's type.
fn as_text(column: &Column) -> String {
    let c = quote(&column.name);
    match &column.sql_type {
        SqlType::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        SqlType::Numeric { scale, .. } => format!("round({c}::numeric, {scale})::text"),
        SqlType::Timestamptz => {
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
        }
        SqlType::Timestamp => format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        SqlType::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        SqlType::Interval => format!(
            "CASE WHEN {c} IS NOT NULL THEN format('%s months %s days %s microseconds', \
             (extract(year FROM {c}) * 12 + extract(month FROM {c}))::bigint, \
             extract(day FROM {c})::bigint, \
             ((extract(hour FROM {c}) * 3600 + extract(minute FROM {c}) * 60 \
               + extract(second FROM {c})) * 1000000)::bigint) END"
        ),
        _ => format!("{c}::text"),
    }
}

/// An upstream error: a missing table or column is "not found", anything else unavailable.
fn upstream_error(table: &str, e: tokio_postgres::Error) -> ConnectorError {
    match e.as_db_error() {
        Some(db) if ["42P01", "3F000"].contains(&db.code().code()) => {
            ConnectorError::NotFound(format!("PostgreSQL table \"{table}\": {}", db.message()))
        }
        Some(db) if ["42703", "42883", "42846"].contains(&db.code().code()) => {
            ConnectorError::Invalid(format!(
                "PostgreSQL table \"{table}\" cannot fill the columns: {}",
                db.message()
            ))
        }
        Some(db) => ConnectorError::Unavailable(format!("PostgreSQL: {}", db.message())),
        None => ConnectorError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

/// How a read differs from the one before, by key.
#[derive(Debug, Default, PartialEq)]
pub struct TableDiff {
    /// Rows new or changed under their key.
    pub upserts: Vec<TextRow>,
    /// Rows whose key is gone (as they were).
    pub deletes: Vec<TextRow>,
}

/// The rows of one read by key (the values at `key`, as text); a key held by two rows is
/// an error, since the mirror could keep only one of them.
pub fn by_key(
    table: &str,
    rows: Vec<TextRow>,
    key: &[usize],
) -> ConnectorResult<BTreeMap<Vec<Option<String>>, TextRow>> {
    let mut map = BTreeMap::new();
    for row in rows {
        let k: Vec<Option<String>> = key.iter().map(|&i| row[i].clone()).collect();
        if let Some(_twin) = map.insert(k.clone(), row) {
            return Err(ConnectorError::Invalid(format!(
                "PostgreSQL table \"{table}\" has two rows with the key ({})",
                k.iter()
                    .map(|v| v.as_deref().unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(map)
}

/// The difference between two reads keyed by [`by_key`].
pub fn diff(
    before: &BTreeMap<Vec<Option<String>>, TextRow>,
    after: &BTreeMap<Vec<Option<String>>, TextRow>,
) -> TableDiff {
    let upserts = after
        .iter()
        .filter(|(k, row)| before.get(*k) != Some(*row))
        .map(|(_, row)| row.clone())
        .collect();
    let deletes = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(_, row)| row.clone())
        .collect();
    TableDiff { upserts, deletes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>]) -> TextRow {
        values.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn a_diff_has_the_new_changed_and_removed_rows() {
        let before = by_key(
            "t",
            vec![
                row(&[Some("1"), Some("a")]),
                row(&[Some("2"), Some("b")]),
                row(&[Some("3"), None]),
            ],
            &[0],
        )
        .unwrap();
        let after = by_key(
            "t",
            vec![
                row(&[Some("1"), Some("a")]),
                row(&[Some("3"), Some("c")]),
                row(&[Some("4"), Some("d")]),
            ],
            &[0],
        )
        .unwrap();
        let d = diff(&before, &after);
        assert_eq!(
            d.upserts,
            vec![row(&[Some("3"), Some("c")]), row(&[Some("4"), Some("d")])]
        );
        assert_eq!(d.deletes, vec![row(&[Some("2"), Some("b")])]);
        assert_eq!(diff(&after, &after), TableDiff::default());
    }

    #[test]
    fn a_key_held_twice_is_refused() {
        let rows = vec![row(&[Some("1"), Some("a")]), row(&[Some("1"), Some("b")])];
        let e = by_key("users", rows, &[0]).unwrap_err();
        assert!(e.to_string().contains("two rows with the key (1)"), "{e}");
    }

    #[test]
    fn options_are_checked() {
        let options = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let s = PostgresTableSource::from_options(&options(&[
            ("connector", "postgres"),
            ("url", "postgres://127.0.0.1/test"),
            ("table", "public.users"),
            ("poll_interval", "250 ms"),
        ]))
        .unwrap();
        assert_eq!(s.poll_interval, Duration::from_millis(250));
        assert!(PostgresTableSource::from_options(&options(&[("url", "x")])).is_err());
        assert!(
            PostgresTableSource::from_options(&options(&[
                ("url", "x"),
                ("table", "t"),
                ("topic", "t")
            ]))
            .is_err()
        );
    }
}
