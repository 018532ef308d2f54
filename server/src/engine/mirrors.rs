//! Mirrored tables: a task per table declared `WITH (connector = 'postgres', ...)` that reads
//! the upstream table every poll interval and hands the driver the difference from its
//! previous read as a [`WriteOp::Sync`].
//!
//! The first read after the task starts (a new table, a restart, a lost connection) goes to
//! the driver whole, and the driver compares it with the stored table: rows changed or
//! removed upstream while the task was not reading are applied then. Later reads carry only
//! their difference, so an unchanged upstream table costs a read and nothing else. A read
//! that cannot be applied (the upstream server is gone, a value does not convert, a key is
//! held twice) is retried from a new connection after a growing pause, its reason in the
//! table's progress (`eddy_catalog.progress.source_error`).

use std::convert::Infallible;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use eddy_catalog::Relation;
use eddy_connectors::postgres_source::{self, PostgresTableSource, TextRow};
use eddy_sql::{SqlError, SqlResult};
use tracing::{info, warn};

use super::readers::{FIRST_RETRY, retry_after};
use super::{Engine, WriteOp};
use crate::handle::cast_to_column;

/// Keeps a table in sync with the upstream table until the server stops.
pub(super) async fn mirror_table(rel: Arc<Relation>, source: PostgresTableSource, engine: Engine) {
    let mut status: Option<String> = None;
    let mut pause = FIRST_RETRY;
    loop {
        let failure = match keep_in_sync(&rel, &source, &engine, &mut status).await {
            Err(SqlError::ShuttingDown) => return,
            Err(e) => e.to_string(),
            Ok(never) => match never {},
        };
        warn!(table = %rel.name, error = %failure, retry_in = ?pause, "cannot sync the table");
        if !retry_after(&engine, &rel, &mut status, failure, &mut pause).await {
            return;
        }
    }
}

/// Reads the upstream table over one connection and applies each read's difference.
async fn keep_in_sync(
    rel: &Relation,
    source: &PostgresTableSource,
    engine: &Engine,
    status: &mut Option<String>,
) -> SqlResult<Infallible> {
    let reader = source.open(&rel.columns).await?;
    info!(table = %rel.name, upstream = %source.table, "syncing");
    let mut last = None;
    loop {
        let rows = reader.read().await?;
        let upstream_rows = rows.len() as u64;
        let read = postgres_source::by_key(&source.table, rows, &rel.primary_key)?;
        let (upserts, deletes, whole) = match &last {
            None => (read.values().cloned().collect(), vec![], true),
            Some(before) => {
                let diff = postgres_source::diff(before, &read);
                (diff.upserts, diff.deletes, false)
            }
        };
        if whole || !upserts.is_empty() || !deletes.is_empty() {
            let op = WriteOp::Sync {
                relation: rel.id,
                upserts: typed(rel, &upserts)?,
                deletes: typed(rel, &deletes)?,
                whole,
                upstream_rows,
            };
            engine.write(op).await?;
            *status = None;
        }
        last = Some(read);
        tokio::time::sleep(source.poll_interval).await;
    }
}

/// Rows read as text, converted to the table's column types.
fn typed(rel: &Relation, rows: &[TextRow]) -> SqlResult<RecordBatch> {
    let schema = rel.schema();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let text: StringArray = rows.iter().map(|r| r[i].as_deref()).collect();
            cast_to_column(&(Arc::new(text) as ArrayRef), field)
        })
        .collect::<SqlResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}
