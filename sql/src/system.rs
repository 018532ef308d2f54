//! The `eddy_catalog` schema: system tables about the pipeline as it runs. Figures that
//! survive a restart come from the progress records the epoch driver commits with each
//! epoch; rates, durations and lag from its live [`Metrics`].
//!
//! - `progress`: one row per stream, table, materialized view and sink (and per view still
//!   being backfilled): its status, the last epoch that changed it, input and processing
//!   rates, the last epoch's duration and lag, a stream's watermark, rows accepted and
//!   dropped as late, a view's state (rows, bytes), a backfill's progress, how far a stream's
//!   connector has read (`source_offset`, `source_positions`), the records its source could
//!   not read (`dead_letters`), a sink's undelivered changes (`backlog`) and why a source or
//!   sink is not working (`source_error`).
//! - `epochs`: the most recent epochs: what started them, when, how long they took, the rows
//!   they took in and the bytes they wrote.
//! - `sessions`: the open client connections and what they run.
//! - `late_rows`: the most recent rows each stream dropped because they arrived behind its
//!   watermark, with their event time and the watermark they missed.
//! - `dead_letters`: the most recent records each stream's source could not read, with
//!   where they were and why.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::datatypes::{IntervalMonthDayNano, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use eddy_catalog::{RelationKind, Snapshot, SqlType};
use eddy_dataflow::metrics::{Backfill, Metrics};
use eddy_dataflow::progress::{DeadLetterRecord, LateRow, Progress};
use eddy_storage::{Store, keys};

use crate::SqlResult;
use crate::compat::rows::TableBuilder;
use crate::compat::session::Sessions;

/// The schema the system tables live in.
pub const SCHEMA: &str = "eddy_catalog";

/// The names of the system tables.
pub const TABLES: [&str; 5] = [
    "progress",
    "epochs",
    "sessions",
    "late_rows",
    "dead_letters",
];

/// What the system tables read.
pub struct Sources<'a> {
    pub catalog: &'a Snapshot,
    pub store: &'a Store,
    pub metrics: &'a Metrics,
    pub sessions: &'a Sessions,
}

/// The system table of that name, with its current contents.
pub fn table(name: &str, from: &Sources<'_>) -> SqlResult<Option<Arc<dyn TableProvider>>> {
    let table = match name {
        "progress" => progress(from)?,
        "epochs" => epochs(from.metrics)?,
        "sessions" => sessions(from.sessions)?,
        "late_rows" => late_rows(from.catalog, from.store)?,
        "dead_letters" => dead_letters(from.catalog, from.store)?,
        _ => return Ok(None),
    };
    Ok(Some(table.finish()?))
}

fn builder(columns: &[(&str, SqlType)]) -> TableBuilder {
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| t.field(n, true))
            .collect::<Vec<_>>(),
    ));
    TableBuilder::with_schema(schema)
}

fn text(v: Option<&str>) -> ScalarValue {
    ScalarValue::Utf8(v.map(str::to_string))
}

fn big(v: Option<u64>) -> ScalarValue {
    ScalarValue::Int64(v.map(|v| v as i64))
}

fn double(v: Option<f64>) -> ScalarValue {
    ScalarValue::Float64(v)
}

fn interval(d: Option<Duration>) -> ScalarValue {
    ScalarValue::IntervalMonthDayNano(
        d.map(|d| IntervalMonthDayNano::new(0, 0, d.as_nanos().min(i64::MAX as u128) as i64)),
    )
}

/// An event time (timestamp without time zone), in microseconds.
fn event_time(micros: Option<i64>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(micros, None)
}

/// A moment of the server's clock (timestamp with time zone).
fn moment(t: Option<SystemTime>) -> ScalarValue {
    let micros = t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
    ScalarValue::TimestampMicrosecond(micros.map(|d| d.as_micros() as i64), Some("UTC".into()))
}

/// What `eddy_catalog.progress` and the Prometheus endpoint say about one relation.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub relation: String,
    pub kind: String,
    /// `running`, `backfilling` or `error` (then `error` says why).
    pub status: &'static str,
    /// The last epoch that changed it (None while it is being backfilled).
    pub epoch: Option<u64>,
    pub input_rows_per_sec: f64,
    pub processed_rows_per_sec: f64,
    pub last_epoch_duration: Option<Duration>,
    pub lag: Option<Duration>,
    pub last_commit: Option<SystemTime>,
    /// Event time, microseconds since the Unix epoch.
    pub watermark: Option<i64>,
    pub rows: u64,
    pub late_rows: u64,
    pub state_rows: Option<u64>,
    pub state_bytes: Option<u64>,
    pub backfill: Option<Backfill>,
    pub source_offset: Option<u64>,
    pub source_positions: Option<String>,
    pub dead_letters: u64,
    /// A sink's changes not yet delivered (outbox entries).
    pub backlog: Option<u64>,
    pub error: Option<String>,
    /// A view with a trigger interval: rows waiting for its next tick, and when it comes.
    pub pending_rows: Option<u64>,
    pub next_trigger: Option<SystemTime>,
}

/// The figures of every stream, table, materialized view and sink, then of every view
/// still being backfilled.
pub fn figures(from: &Sources<'_>) -> SqlResult<Vec<Figures>> {
    let (now, uptime) = (Instant::now(), from.metrics.uptime());
    let mut backfills = from.metrics.backfills();
    let mut out = Vec::new();
    for rel in from
        .catalog
        .relations()
        .filter(|r| r.kind != RelationKind::View)
    {
        let p = Progress::load(from.store, rel.id)?.unwrap_or_default();
        let live = from.metrics.relation(rel.id);
        let backlog = match rel.kind {
            RelationKind::Sink => {
                let mut n = 0u64;
                for entry in from.store.scan_prefix(&keys::outbox_prefix(rel.id)) {
                    entry?;
                    n += 1;
                }
                Some(n)
            }
            _ => None,
        };
        let stateful = rel.kind == RelationKind::MaterializedView;
        // A view being replaced: its new version is being built.
        let backfill = backfills.remove(&rel.name);
        out.push(Figures {
            relation: rel.name.clone(),
            kind: rel.kind.to_string(),
            status: match (&p.source_error, &backfill) {
                (Some(_), _) => "error",
                (None, Some(_)) => "backfilling",
                (None, None) => "running",
            },
            epoch: Some(p.epoch),
            input_rows_per_sec: live.input_rate(now, uptime),
            processed_rows_per_sec: live.processed_rate(now),
            last_epoch_duration: live.last_epoch.map(|_| live.last_duration),
            lag: live.last_epoch.map(|_| live.lag),
            last_commit: live.last_commit,
            watermark: p.watermark,
            rows: p.rows,
            late_rows: p.late_rows,
            state_rows: stateful.then_some(p.state_rows),
            state_bytes: stateful.then_some(p.state_bytes),
            backfill,
            source_offset: p.source_offset,
            source_positions: (!p.parts.is_empty()).then(|| {
                p.parts
                    .iter()
                    .map(|(part, at)| format!("{part}:{}", at.offset))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            dead_letters: p.dead_letters,
            backlog,
            error: p.source_error,
            pending_rows: stateful.then_some(p.pending_rows),
            next_trigger: p.next_trigger.and_then(|t| {
                SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(u64::try_from(t).ok()?))
            }),
        });
    }
    // Views still being built are not in the catalog yet.
    for (name, b) in backfills {
        out.push(Figures {
            relation: name,
            kind: RelationKind::MaterializedView.to_string(),
            status: "backfilling",
            backfill: Some(b),
            ..Figures::default()
        });
    }
    Ok(out)
}

fn progress(from: &Sources<'_>) -> SqlResult<TableBuilder> {
    let mut t = builder(&[
        ("relation", SqlType::Text),
        ("kind", SqlType::Text),
        ("status", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("input_rows_per_sec", SqlType::Double),
        ("processed_rows_per_sec", SqlType::Double),
        ("last_epoch_duration", SqlType::Interval),
        ("lag", SqlType::Interval),
        ("last_commit", SqlType::Timestamptz),
        ("watermark", SqlType::Timestamp),
        ("rows", SqlType::BigInt),
        ("late_rows", SqlType::BigInt),
        ("state_rows", SqlType::BigInt),
        ("state_bytes", SqlType::BigInt),
        ("backfill_rows", SqlType::BigInt),
        ("backfill_total", SqlType::BigInt),
        ("backfill_percent", SqlType::Double),
        ("source_offset", SqlType::BigInt),
        ("source_positions", SqlType::Text),
        ("dead_letters", SqlType::BigInt),
        ("backlog", SqlType::BigInt),
        ("source_error", SqlType::Text),
        ("pending_rows", SqlType::BigInt),
        ("next_trigger", SqlType::Timestamptz),
    ]);
    for f in figures(from)? {
        let b = f.backfill.as_ref();
        t.row(&[
            ("relation", text(Some(&f.relation))),
            ("kind", text(Some(&f.kind))),
            ("status", text(Some(f.status))),
            ("epoch", big(f.epoch)),
            ("input_rows_per_sec", double(Some(f.input_rows_per_sec))),
            (
                "processed_rows_per_sec",
                double(Some(f.processed_rows_per_sec)),
            ),
            ("last_epoch_duration", interval(f.last_epoch_duration)),
            ("lag", interval(f.lag)),
            ("last_commit", moment(f.last_commit)),
            ("watermark", event_time(f.watermark)),
            ("rows", big(Some(f.rows))),
            ("late_rows", big(Some(f.late_rows))),
            ("state_rows", big(f.state_rows)),
            ("state_bytes", big(f.state_bytes)),
            ("backfill_rows", big(b.map(|b| b.done))),
            ("backfill_total", big(b.and_then(|b| b.total))),
            ("backfill_percent", double(b.and_then(Backfill::percent))),
            ("source_offset", big(f.source_offset)),
            ("source_positions", text(f.source_positions.as_deref())),
            ("dead_letters", big(Some(f.dead_letters))),
            ("backlog", big(f.backlog)),
            ("source_error", text(f.error.as_deref())),
            ("pending_rows", big(f.pending_rows)),
            ("next_trigger", moment(f.next_trigger)),
        ])?;
    }
    Ok(t)
}

fn epochs(metrics: &Metrics) -> SqlResult<TableBuilder> {
    let mut t = builder(&[
        ("epoch", SqlType::BigInt),
        ("kind", SqlType::Text),
        ("started", SqlType::Timestamptz),
        ("duration", SqlType::Interval),
        ("rows", SqlType::BigInt),
        ("bytes", SqlType::BigInt),
        ("writes", SqlType::BigInt),
    ]);
    for e in metrics.epochs().iter().rev() {
        t.row(&[
            ("epoch", big(Some(e.id))),
            ("kind", text(Some(e.kind.as_str()))),
            ("started", moment(Some(e.started))),
            ("duration", interval(Some(e.duration))),
            ("rows", big(Some(e.rows))),
            ("bytes", big(Some(e.bytes))),
            ("writes", big(Some(e.writes as u64))),
        ])?;
    }
    Ok(t)
}

fn sessions(sessions: &Sessions) -> SqlResult<TableBuilder> {
    let mut t = builder(&[
        ("pid", SqlType::Int),
        ("user_name", SqlType::Text),
        ("database", SqlType::Text),
        ("application_name", SqlType::Text),
        ("client_addr", SqlType::Text),
        ("connected", SqlType::Timestamptz),
        ("state", SqlType::Text),
        ("query", SqlType::Text),
        ("query_start", SqlType::Timestamptz),
        ("xact_start", SqlType::Timestamptz),
    ]);
    let micros = |m: Option<i64>| ScalarValue::TimestampMicrosecond(m, Some("UTC".into()));
    for s in sessions.list() {
        let activity = s.activity();
        t.row(&[
            ("pid", ScalarValue::Int32(Some(s.pid))),
            ("user_name", text(Some(&s.user))),
            ("database", text(Some(&s.database))),
            (
                "application_name",
                text(s.get("application_name").ok().as_deref()),
            ),
            (
                "client_addr",
                text(s.client_addr.map(|a| a.to_string()).as_deref()),
            ),
            ("connected", micros(Some(s.started))),
            ("state", text(Some(activity.state))),
            ("query", text(Some(&activity.query))),
            ("query_start", micros(activity.query_start)),
            ("xact_start", micros(activity.xact_start)),
        ])?;
    }
    Ok(t)
}

/// The relation an id-prefixed key (late row, dead letter) belongs to.
fn key_relation(key: &[u8]) -> Option<u64> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

fn late_rows(catalog: &Snapshot, store: &Store) -> SqlResult<TableBuilder> {
    let mut t = builder(&[
        ("stream", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("event_time", SqlType::Timestamp),
        ("watermark", SqlType::Timestamp),
        ("behind", SqlType::Interval),
        ("row", SqlType::Text),
    ]);
    for entry in store.scan_prefix(&keys::all_late_prefix()) {
        let (key, value) = entry?;
        let Some(rel) = key_relation(&key).and_then(|id| catalog.by_id(id)) else {
            continue;
        };
        let late = LateRow::decode(&value)?;
        let behind = match (late.event_time, late.watermark) {
            (Some(t), Some(w)) => Some(Duration::from_micros(w.saturating_sub(t).max(0) as u64)),
            _ => None,
        };
        t.row(&[
            ("stream", text(Some(&rel.name))),
            ("epoch", big(Some(late.epoch))),
            ("event_time", event_time(late.event_time)),
            ("watermark", event_time(late.watermark)),
            ("behind", interval(behind)),
            ("row", text(Some(&late.row))),
        ])?;
    }
    Ok(t)
}

fn dead_letters(catalog: &Snapshot, store: &Store) -> SqlResult<TableBuilder> {
    let mut t = builder(&[
        ("stream", SqlType::Text),
        ("epoch", SqlType::BigInt),
        ("position", SqlType::Text),
        ("payload", SqlType::Text),
        ("error", SqlType::Text),
    ]);
    for entry in store.scan_prefix(&keys::all_dead_prefix()) {
        let (key, value) = entry?;
        let Some(rel) = key_relation(&key).and_then(|id| catalog.by_id(id)) else {
            continue;
        };
        let letter = DeadLetterRecord::decode(&value)?;
        t.row(&[
            ("stream", text(Some(&rel.name))),
            ("epoch", big(Some(letter.epoch))),
            ("position", text(Some(&letter.position))),
            ("payload", text(Some(&letter.payload))),
            ("error", text(Some(&letter.error))),
        ])?;
    }
    Ok(t)
}
