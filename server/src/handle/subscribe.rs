//! SUBSCRIBE: a relation's changes pushed to a client as they commit.
//!
//! A subscription listens to committed epochs before it reads its snapshot, and reads the
//! snapshot with the epoch it belongs to, so that it can skip exactly the epochs the snapshot
//! already holds: nothing is missed and nothing repeated. Rows carry the epoch that made them
//! and their operation (`insert` or `delete`) ahead of the relation's columns.
//!
//! Output modes, as in Spark: `update` (every change), `append` (only inserts; refused for a
//! relation whose rows can change: allowed on streams and EMIT ON WINDOW CLOSE views) and
//! `complete` (the whole contents after every epoch that changed them).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use eddy_catalog::{Relation, RelationKind};
use eddy_dataflow::Delta;
use eddy_dataflow::codec::{batch_from_rows, encode_row, row_values};
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::SqlOption;
use tokio::sync::broadcast;

use super::{Shared, resolve};
use crate::engine::{Committed, committed_epoch};

/// The column holding the epoch of a change.
pub const EPOCH_COLUMN: &str = "eddy_epoch";
/// The column holding a change's operation.
pub const OP_COLUMN: &str = "eddy_op";

/// How changes are put out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    Append,
    Update,
    Complete,
}

/// A running subscription.
pub struct Subscription {
    /// `eddy_epoch`, `eddy_op`, then the relation's columns.
    pub schema: SchemaRef,
    /// Written as COPY text, for psql.
    pub copy: bool,
    relation: Arc<Relation>,
    mode: OutputMode,
    rx: broadcast::Receiver<Arc<Committed>>,
    /// The snapshot, until it has been sent.
    snapshot: Option<(u64, Vec<RecordBatch>)>,
    /// Epochs up to this one are in the snapshot.
    after: u64,
    /// Complete mode: the current contents (encoded row -> (row, count)).
    contents: BTreeMap<Vec<u8>, (Vec<ScalarValue>, i64)>,
}

/// The columns a subscription to a relation puts out.
pub fn schema(shared: &Shared, name: &str) -> SqlResult<SchemaRef> {
    output_schema(&*resolve(shared, name)?)
}

fn output_schema(relation: &Relation) -> SqlResult<SchemaRef> {
    if relation
        .columns
        .iter()
        .any(|c| c.name == EPOCH_COLUMN || c.name == OP_COLUMN)
    {
        return Err(SqlError::DuplicateColumn(format!(
            "\"{}\" has a column named {EPOCH_COLUMN} or {OP_COLUMN}",
            relation.name
        )));
    }
    let mut fields = vec![
        Field::new(EPOCH_COLUMN, DataType::Int64, false),
        Field::new(OP_COLUMN, DataType::Utf8, false),
    ];
    fields.extend(
        relation
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone()),
    );
    Ok(Arc::new(Schema::new(fields)))
}

/// Checks a SUBSCRIBE and starts listening; the snapshot is read here too.
pub fn start(
    shared: &Shared,
    name: &str,
    options: &[SqlOption],
    copy: bool,
) -> SqlResult<Subscription> {
    let relation = resolve(shared, name)?;
    if !relation.is_stored() {
        return Err(SqlError::WrongObjectType(format!(
            "\"{name}\" is a plain view; SUBSCRIBE reads streams, tables and materialized views"
        )));
    }
    let mut snapshot = true;
    let mut mode = OutputMode::Update;
    for o in options {
        let (key, value) = eddy_sql::sources::option_key_value(o, "SUBSCRIBE")?;
        let value = value.to_ascii_lowercase();
        match (key.as_str(), value.as_str()) {
            ("snapshot", "true" | "on") => snapshot = true,
            ("snapshot", "false" | "off") => snapshot = false,
            ("output_mode", "append") => mode = OutputMode::Append,
            ("output_mode", "update") => mode = OutputMode::Update,
            ("output_mode", "complete") => mode = OutputMode::Complete,
            _ => {
                return Err(SqlError::InvalidParameter(format!(
                    "SUBSCRIBE option {key} = '{value}' is not known (snapshot = true|false, \
                     output_mode = 'append'|'update'|'complete')"
                )));
            }
        }
    }
    let append_only = relation.kind == RelationKind::Stream
        || relation.emit_on_window_close
        || relation.append_only;
    if mode == OutputMode::Append && !append_only {
        return Err(SqlError::InvalidParameter(format!(
            "output_mode 'append' needs rows that never change, and the rows of {} \"{name}\" \
             can; use 'update', or a stream or an EMIT ON WINDOW CLOSE view",
            relation.kind
        )));
    }
    let schema = output_schema(&relation)?;

    // Listen first, then read: every epoch after the snapshot's reaches the receiver.
    let rx = shared.engine.subscribe();
    let (epoch, rows) = {
        let _pin = shared.store.pin();
        let epoch = committed_epoch(&shared.store)?;
        let rows = if snapshot || mode == OutputMode::Complete {
            let mut rows = vec![];
            eddy_sql::sources::read_history(&shared.store, &relation, 8192, |b| {
                rows.push(b);
                Ok(true)
            })?;
            rows
        } else {
            vec![]
        };
        (epoch, rows)
    };
    let mut subscription = Subscription {
        schema,
        copy,
        relation,
        mode,
        rx,
        snapshot: None,
        after: epoch,
        contents: BTreeMap::new(),
    };
    if mode == OutputMode::Complete {
        for batch in &rows {
            subscription.absorb(&Delta::inserts(batch.clone()))?;
        }
    }
    if snapshot {
        subscription.snapshot = Some((epoch, rows));
    }
    Ok(subscription)
}

impl Subscription {
    /// Keeps the contents up to date (complete mode).
    fn absorb(&mut self, delta: &Delta) -> SqlResult<()> {
        for i in 0..delta.len() {
            let row = row_values(delta.batch.columns(), i)?;
            let key = encode_row(&row)?;
            let entry = self.contents.entry(key.clone()).or_insert((row, 0));
            entry.1 += delta.weights[i];
            if entry.1 <= 0 {
                self.contents.remove(&key);
            }
        }
        Ok(())
    }

    /// The next rows to send: the snapshot first, then each committed epoch that changed the
    /// relation. Fails when the subscriber fell too far behind.
    pub async fn next(&mut self) -> SqlResult<RecordBatch> {
        if let Some((epoch, rows)) = self.snapshot.take() {
            let schema = self.relation.schema();
            let all = arrow::compute::concat_batches(&schema, &rows)?;
            return self.output(epoch, &Delta::inserts(all));
        }
        loop {
            let committed = match self.rx.recv().await {
                Ok(c) => c,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(SqlError::Internal(format!(
                        "the subscriber fell {n} epochs behind and was dropped"
                    )));
                }
                Err(broadcast::error::RecvError::Closed) => return Err(SqlError::ShuttingDown),
            };
            // Dropped: the subscription ends as a read of a missing relation would.
            if committed.dropped.contains(&self.relation.id) {
                return Err(SqlError::UnknownRelation(self.relation.name.clone()));
            }
            if committed.epoch <= self.after {
                continue;
            }
            let Some(delta) = committed.changes.get(&self.relation.id) else {
                continue;
            };
            // The columns the relation had when the subscription began (it may have gained
            // some since).
            let widened;
            let delta = match delta.batch.num_columns() > self.relation.columns.len() {
                true => {
                    widened = delta.clone().leading(&self.relation.schema())?;
                    &widened
                }
                false => delta,
            };
            if self.mode == OutputMode::Complete {
                self.absorb(delta)?;
                let rows: Vec<Vec<ScalarValue>> = self
                    .contents
                    .values()
                    .flat_map(|(row, n)| std::iter::repeat_n(row.clone(), *n as usize))
                    .collect();
                let batch = batch_from_rows(&self.relation.schema(), &rows)?;
                return self.output(committed.epoch, &Delta::inserts(batch));
            }
            return self.output(committed.epoch, delta);
        }
    }

    /// One output row per unit of weight, with the epoch and the operation in front.
    fn output(&self, epoch: u64, delta: &Delta) -> SqlResult<RecordBatch> {
        let mut indices = Vec::new();
        let mut ops = Vec::new();
        for (i, w) in delta.weights.iter().enumerate() {
            let op = if *w > 0 { "insert" } else { "delete" };
            for _ in 0..w.unsigned_abs() {
                indices.push(i as u64);
                ops.push(op);
            }
        }
        let take = UInt64Array::from(indices);
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(vec![
                epoch as i64;
                ops.len()
            ])),
            Arc::new(StringArray::from(ops)),
        ];
        for c in delta.batch.columns() {
            columns.push(arrow::compute::take(c, &take, None)?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
