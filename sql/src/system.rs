//! The `eddy_catalog` schema: system tables about the pipeline as it runs, read from the
//! progress records the epoch driver commits with each epoch.
//!
//! - `progress`: one row per stream, table and materialized view: the last epoch that changed
//!   it, a stream's watermark, rows accepted and rows dropped as late, a view's state size,
//!   how far a stream's connector has read (`source_offset`; Nexmark: events generated).
//!   how far a stream's connector has read (`source_positions`: Kafka partition:offset), the
//!   records its source could not read (`dead_letters`) and why it is not reading
//!   (`source_error`).
//! - `late_rows`: the most recent rows each stream dropped because they arrived behind its
//!   watermark, with their event time and the watermark they missed.
//! - `dead_letters`: the most recent records each stream's source could not read, with
//!   where they were and why.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, IntervalMonthDayNanoBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{IntervalMonthDayNano, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use eddy_catalog::{RelationKind, Snapshot, SqlType};
use eddy_dataflow::progress::{DeadLetterRecord, LateRow, Progress};
use eddy_storage::{Store, keys};

use crate::SqlResult;

/// The schema the system tables live in.
pub const SCHEMA: &str = "eddy_catalog";

/// The system table of that name, with its current contents.
pub fn table(
    name: &str,
    catalog: &Snapshot,
    store: &Store,
) -> SqlResult<Option<Arc<dyn TableProvider>>> {
    let batch = match name {
        "progress" => progress(catalog, store)?,
        "late_rows" => late_rows(catalog, store)?,
        "dead_letters" => dead_letters(catalog, store)?,
        _ => return Ok(None),
    };
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    Ok(Some(Arc::new(table)))
}

fn schema(columns: &[(&str, SqlType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| t.field(n, true))
            .collect::<Vec<_>>(),
    ))
}

fn progress(catalog: &Snapshot, store: &Store) -> SqlResult<RecordBatch> {
    let schema = schema(&[
        ("relation", SqlType::Text),
        ("kind", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("watermark", SqlType::Timestamp),
        ("rows", SqlType::BigInt),
        ("late_rows", SqlType::BigInt),
        ("state_rows", SqlType::BigInt),
        ("source_offset", SqlType::BigInt),
        ("source_positions", SqlType::Text),
        ("dead_letters", SqlType::BigInt),
        ("source_error", SqlType::Text),
    ]);
    let mut relation = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut epoch = Int64Builder::new();
    let mut watermark = TimestampMicrosecondBuilder::new();
    let mut rows = Int64Builder::new();
    let mut late = Int64Builder::new();
    let mut state = Int64Builder::new();
    let mut offset = Int64Builder::new();
    let mut positions = StringBuilder::new();
    let mut dead = Int64Builder::new();
    let mut error = StringBuilder::new();
    for rel in catalog.relations().filter(|r| r.kind != RelationKind::View) {
        let p = Progress::load(store, rel.id)?.unwrap_or_default();
        relation.append_value(&rel.name);
        kind.append_value(rel.kind.to_string());
        epoch.append_value(p.epoch as i64);
        watermark.append_option(p.watermark);
        rows.append_value(p.rows as i64);
        late.append_value(p.late_rows as i64);
        state.append_value(p.state_rows as i64);
        offset.append_option(p.source_offset.map(|o| o as i64));
        positions.append_option((!p.parts.is_empty()).then(|| {
            p.parts
                .iter()
                .map(|(part, at)| format!("{part}:{}", at.offset))
                .collect::<Vec<_>>()
                .join(",")
        }));
        dead.append_value(p.dead_letters as i64);
        error.append_option(p.source_error.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(relation.finish()),
        Arc::new(kind.finish()),
        Arc::new(epoch.finish()),
        Arc::new(watermark.finish()),
        Arc::new(rows.finish()),
        Arc::new(late.finish()),
        Arc::new(state.finish()),
        Arc::new(offset.finish()),
        Arc::new(positions.finish()),
        Arc::new(dead.finish()),
        Arc::new(error.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn late_rows(catalog: &Snapshot, store: &Store) -> SqlResult<RecordBatch> {
    let schema = schema(&[
        ("stream", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("event_time", SqlType::Timestamp),
        ("watermark", SqlType::Timestamp),
        ("behind", SqlType::Interval),
        ("row", SqlType::Text),
    ]);
    let mut stream = StringBuilder::new();
    let mut epoch = Int64Builder::new();
    let mut event_time = TimestampMicrosecondBuilder::new();
    let mut watermark = TimestampMicrosecondBuilder::new();
    let mut behind = IntervalMonthDayNanoBuilder::new();
    let mut row = StringBuilder::new();
    for entry in store.scan_prefix(&keys::all_late_prefix()) {
        let (key, value) = entry?;
        let id = u64::from_be_bytes(key[1..9].try_into().expect("a late row key holds an id"));
        let Some(rel) = catalog.by_id(id) else {
            continue;
        };
        let late = LateRow::decode(&value)?;
        stream.append_value(&rel.name);
        epoch.append_value(late.epoch as i64);
        event_time.append_option(late.event_time);
        watermark.append_option(late.watermark);
        match (late.event_time, late.watermark) {
            (Some(t), Some(w)) => behind.append_value(IntervalMonthDayNano::new(
                0,
                0,
                (w - t).saturating_mul(1_000),
            )),
            _ => behind.append_null(),
        }
        row.append_value(&late.row);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(stream.finish()),
        Arc::new(epoch.finish()),
        Arc::new(event_time.finish()),
        Arc::new(watermark.finish()),
        Arc::new(behind.finish()),
        Arc::new(row.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn dead_letters(catalog: &Snapshot, store: &Store) -> SqlResult<RecordBatch> {
    let schema = schema(&[
        ("stream", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("position", SqlType::Text),
        ("payload", SqlType::Text),
        ("error", SqlType::Text),
    ]);
    let mut stream = StringBuilder::new();
    let mut epoch = Int64Builder::new();
    let mut position = StringBuilder::new();
    let mut payload = StringBuilder::new();
    let mut error = StringBuilder::new();
    for entry in store.scan_prefix(&keys::all_dead_prefix()) {
        let (key, value) = entry?;
        let id = u64::from_be_bytes(key[1..9].try_into().expect("a dead letter key holds an id"));
        let Some(rel) = catalog.by_id(id) else {
            continue;
        };
        let letter = DeadLetterRecord::decode(&value)?;
        stream.append_value(&rel.name);
        epoch.append_value(letter.epoch as i64);
        position.append_value(&letter.position);
        payload.append_value(&letter.payload);
        error.append_value(&letter.error);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(stream.finish()),
        Arc::new(epoch.finish()),
        Arc::new(position.finish()),
        Arc::new(payload.finish()),
        Arc::new(error.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
