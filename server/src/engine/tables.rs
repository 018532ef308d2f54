//! Staging table writes: inserts (with ON CONFLICT), updates and deletes, and the reads of
//! the external table a mirrored table follows.
//!
//! A table's rows are keyed by the encoded primary key, or by a hidden row id when it has
//! none. Writes of one epoch see each other through the [`Overlay`]; each write is staged
//! into a local overlay first and merged into the epoch only if all of it succeeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use eddy_catalog::{Relation, RelationKind, Snapshot};
use eddy_dataflow::Delta;
use eddy_dataflow::codec::{batch_from_rows, decode_row, encode_row};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{Store, keys};

use super::driver::{Epoch, check_not_null, values};
use super::{OnConflict, WriteOp};

/// Table rows written but not yet committed: full key -> encoded row, or `None` if deleted.
#[derive(Default)]
pub struct Overlay {
    rows: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Next hidden row id of tables without a primary key.
    next_row_id: HashMap<u64, u64>,
}

/// Reads through a write's own changes, then the epoch's, then the store.
struct View<'a> {
    store: &'a Store,
    epoch: &'a Overlay,
    local: Overlay,
    deltas: Vec<(Vec<ScalarValue>, i64)>,
    affected: u64,
}

impl View<'_> {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        if let Some(v) = self.local.rows.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.epoch.rows.get(key) {
            return Ok(v.clone());
        }
        Ok(self.store.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&mut self, key: Vec<u8>, row: Vec<ScalarValue>) -> SqlResult<()> {
        let encoded = encode_row(&row)?;
        self.put_encoded(key, row, encoded);
        Ok(())
    }

    /// [`View::put`] of a row already encoded.
    fn put_encoded(&mut self, key: Vec<u8>, row: Vec<ScalarValue>, encoded: Vec<u8>) {
        self.local.rows.insert(key, Some(encoded));
        self.deltas.push((row, 1));
    }

    fn delete(&mut self, key: Vec<u8>, old: Vec<ScalarValue>) {
        self.local.rows.insert(key, None);
        self.deltas.push((old, -1));
    }

    /// Every current row of a table with its key.
    fn scan(&self, rel: &Relation) -> SqlResult<Vec<StoredRow>> {
        let prefix = keys::rows_prefix(rel.id);
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for entry in self.store.scan_prefix(&prefix) {
            let (k, v) = entry?;
            merged.insert(k.to_vec(), Some(v.to_vec()));
        }
        for layer in [&self.epoch.rows, &self.local.rows] {
            for (k, v) in layer.range(prefix.clone()..) {
                if !k.starts_with(&prefix) {
                    break;
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        let width = rel.columns.len();
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .map(|(k, v)| Ok((k, decode_row(&v, width)?)))
            .collect()
    }

    fn next_row_id(&mut self, rel: u64) -> SqlResult<u64> {
        let current = match self
            .local
            .next_row_id
            .get(&rel)
            .or(self.epoch.next_row_id.get(&rel))
        {
            Some(n) => *n,
            None => eddy_dataflow::relations::next_sequential_key(self.store, rel)?,
        };
        self.local.next_row_id.insert(rel, current + 1);
        Ok(current)
    }
}

fn key_of(rel: &Relation, row: &[ScalarValue]) -> SqlResult<Vec<u8>> {
    let pk: Vec<ScalarValue> = rel.primary_key.iter().map(|&i| row[i].clone()).collect();
    Ok(keys::row(rel.id, &encode_row(&pk)?))
}

fn constraint_name(rel: &Relation) -> String {
    format!("{}_pkey", rel.name)
}

/// Stages a table write into the epoch; on error nothing is staged.
pub fn stage_table_write(
    store: &Store,
    snapshot: &Snapshot,
    epoch: &mut Epoch,
    op: &WriteOp,
) -> SqlResult<u64> {
    let rel_id = match op {
        WriteOp::Insert { relation, .. }
        | WriteOp::Update { relation, .. }
        | WriteOp::Delete { relation, .. }
        | WriteOp::Sync { relation, .. } => *relation,
        WriteOp::Append { .. } | WriteOp::Ingest { .. } | WriteOp::Status { .. } => {
            unreachable!("stream writes and statuses are staged by the driver")
        }
    };
    let rel = snapshot
        .by_id(rel_id)
        .ok_or_else(|| SqlError::UnknownRelation(rel_id.to_string()))?;
    if rel.kind != RelationKind::Table {
        return Err(SqlError::WrongObjectType(format!(
            "\"{}\" is not a table",
            rel.name
        )));
    }
    if !matches!(op, WriteOp::Sync { .. }) {
        eddy_sql::sources::check_writable(rel)?;
    }
    let mut view = View {
        store,
        epoch: &epoch.overlay,
        local: Overlay::default(),
        deltas: vec![],
        affected: 0,
    };
    match op {
        WriteOp::Insert {
            rows, on_conflict, ..
        } => insert(&mut view, rel, rows, on_conflict)?,
        WriteOp::Update {
            predicate,
            assignments,
            ..
        } => update(&mut view, rel, predicate.as_ref(), assignments)?,
        WriteOp::Delete { predicate, .. } => delete(&mut view, rel, predicate.as_ref())?,
        WriteOp::Sync {
            upserts,
            deletes,
            whole,
            ..
        } => sync(&mut view, rel, upserts, deletes, *whole)?,
        WriteOp::Append { .. } | WriteOp::Ingest { .. } | WriteOp::Status { .. } => {
            unreachable!()
        }
    }
    let View {
        local,
        deltas,
        affected,
        ..
    } = view;
    for (k, v) in local.rows {
        match &v {
            Some(row) => epoch.batch.put(&k, row),
            None => epoch.batch.delete(&k),
        }
        epoch.overlay.rows.insert(k, v);
    }
    epoch.overlay.next_row_id.extend(local.next_row_id);
    if !deltas.is_empty() {
        let schema = rel.schema();
        let (rows, weights): (Vec<_>, Vec<_>) = deltas.into_iter().unzip();
        let batch = batch_from_rows(&schema, &rows)?;
        epoch
            .changes
            .entry(rel.id)
            .or_default()
            .push(Delta::new(batch, weights));
    }
    Ok(affected)
}

fn insert(
    view: &mut View<'_>,
    rel: &Arc<Relation>,
    rows: &[RecordBatch],
    on_conflict: &OnConflict,
) -> SqlResult<()> {
    let schema = rel.schema();
    for batch in rows {
        // Rows of a statement planned before the table gained columns.
        let batch = &eddy_dataflow::codec::widened(batch, &schema)?;
        check_not_null(rel, batch)?;
        for i in 0..batch.num_rows() {
            let row = values(batch, i)?;
            if rel.primary_key.is_empty() {
                let id = view.next_row_id(rel.id)?;
                view.put(keys::row(rel.id, &id.to_be_bytes()), row)?;
                view.affected += 1;
                continue;
            }
            let key = key_of(rel, &row)?;
            let Some(existing) = view.get(&key)? else {
                view.put(key, row)?;
                view.affected += 1;
                continue;
            };
            match on_conflict {
                OnConflict::Error => return Err(SqlError::UniqueViolation(constraint_name(rel))),
                OnConflict::DoNothing => {}
                OnConflict::DoUpdate {
                    assignments,
                    predicate,
                } => {
                    if view.local.rows.get(&key).is_some_and(|v| v.is_some()) {
                        return Err(SqlError::InvalidParameter(
                            "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
                        ));
                    }
                    let old = decode_row(&existing, rel.columns.len())?;
                    let mut both = old.clone();
                    both.extend(row);
                    let schema = doubled_schema(&rel.schema());
                    let pair = batch_from_rows(&schema, &[both])?;
                    if let Some(p) = predicate
                        && !mask(p, &pair)?.value(0)
                    {
                        continue;
                    }
                    let new = assign(rel, &pair, &old, 0, assignments)?;
                    if key_of(rel, &new)? != key {
                        return Err(SqlError::Unsupported(
                            "changing the primary key in ON CONFLICT DO UPDATE".into(),
                        ));
                    }
                    view.delete(key.clone(), old);
                    view.put(key, new)?;
                    view.affected += 1;
                }
            }
        }
    }
    Ok(())
}

/// The schema `existing ++ excluded` that ON CONFLICT expressions are evaluated over.
pub fn doubled_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.extend(schema.fields().iter().map(|f| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_name(format!("excluded.{}", f.name())),
        )
    }));
    Arc::new(Schema::new(fields))
}

fn mask(
    predicate: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> SqlResult<arrow::array::BooleanArray> {
    let m = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let m = m.as_boolean_opt().ok_or_else(|| {
        SqlError::DatatypeMismatch("argument of WHERE must be type boolean".into())
    })?;
    // NULL counts as false.
    Ok(m.iter().map(|v| Some(v == Some(true))).collect())
}

/// Row `i` of `batch`'s base row with the assignments applied.
fn assign(
    rel: &Relation,
    batch: &RecordBatch,
    base: &[ScalarValue],
    i: usize,
    assignments: &[(usize, Arc<dyn PhysicalExpr>)],
) -> SqlResult<Vec<ScalarValue>> {
    let schema = rel.schema();
    let mut row = base.to_vec();
    for (col, expr) in assignments {
        let array = expr.evaluate(batch)?.into_array(batch.num_rows())?;
        let target = schema.field(*col).data_type();
        let array = if array.data_type() != target {
            cast(&array, target)?
        } else {
            array
        };
        let v = ScalarValue::try_from_array(&array, i)?;
        if v.is_null() && !rel.columns[*col].nullable {
            return Err(SqlError::NotNullViolation(rel.columns[*col].name.clone()));
        }
        row[*col] = v;
    }
    Ok(row)
}

/// A row's storage key and its values.
type StoredRow = (Vec<u8>, Vec<ScalarValue>);

fn matching(
    view: &View<'_>,
    rel: &Relation,
    predicate: Option<&Arc<dyn PhysicalExpr>>,
) -> SqlResult<(Vec<StoredRow>, RecordBatch)> {
    let rows = view.scan(rel)?;
    let schema = rel.schema();
    let all = batch_from_rows(
        &schema,
        &rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
    )?;
    let Some(p) = predicate else {
        return Ok((rows, all));
    };
    if rows.is_empty() {
        return Ok((rows, all));
    }
    let m = mask(p, &all)?;
    let filtered = arrow::compute::filter_record_batch(&all, &m)?;
    let picked = rows
        .into_iter()
        .zip(m.iter())
        .filter(|(_, keep)| *keep == Some(true))
        .map(|(r, _)| r)
        .collect();
    Ok((picked, filtered))
}

fn update(
    view: &mut View<'_>,
    rel: &Arc<Relation>,
    predicate: Option<&Arc<dyn PhysicalExpr>>,
    assignments: &[(usize, Arc<dyn PhysicalExpr>)],
) -> SqlResult<()> {
    let (rows, batch) = matching(view, rel, predicate)?;
    let mut updated = Vec::with_capacity(rows.len());
    for (i, (key, old)) in rows.into_iter().enumerate() {
        let new = assign(rel, &batch, &old, i, assignments)?;
        updated.push((key, old, new));
    }
    // Vacate every old key first, so that `SET id = id + 1` does not collide with itself.
    for (key, old, _) in &updated {
        view.delete(key.clone(), old.clone());
    }
    for (key, _, new) in updated {
        let new_key = if rel.primary_key.is_empty() {
            key
        } else {
            key_of(rel, &new)?
        };
        if view.get(&new_key)?.is_some() {
            return Err(SqlError::UniqueViolation(constraint_name(rel)));
        }
        view.put(new_key, new)?;
        view.affected += 1;
    }
    Ok(())
}

fn delete(
    view: &mut View<'_>,
    rel: &Arc<Relation>,
    predicate: Option<&Arc<dyn PhysicalExpr>>,
) -> SqlResult<()> {
    let (rows, _) = matching(view, rel, predicate)?;
    for (key, old) in rows {
        view.delete(key, old);
        view.affected += 1;
    }
    Ok(())
}

/// Applies a read of the external table a table mirrors (see [`WriteOp::Sync`]). A row
/// equal to the stored one under its key changes nothing, so a read applied twice, or a
/// first read after a restart, yields only what really changed.
fn sync(
    view: &mut View<'_>,
    rel: &Arc<Relation>,
    upserts: &RecordBatch,
    deletes: &RecordBatch,
    whole: bool,
) -> SqlResult<()> {
    check_not_null(rel, upserts)?;
    let mut read = std::collections::HashSet::new();
    for i in 0..upserts.num_rows() {
        let row = values(upserts, i)?;
        let key = key_of(rel, &row)?;
        let existing = view.get(&key)?;
        if whole {
            read.insert(key.clone());
        }
        let encoded = encode_row(&row)?;
        if existing.as_ref() == Some(&encoded) {
            continue;
        }
        if let Some(old) = existing {
            view.delete(key.clone(), decode_row(&old, rel.columns.len())?);
        }
        view.put_encoded(key, row, encoded);
        view.affected += 1;
    }
    for i in 0..deletes.num_rows() {
        let key = key_of(rel, &values(deletes, i)?)?;
        if let Some(old) = view.get(&key)? {
            view.delete(key, decode_row(&old, rel.columns.len())?);
            view.affected += 1;
        }
    }
    if whole {
        for (key, old) in view.scan(rel)? {
            if !read.contains(&key) {
                view.delete(key, old);
                view.affected += 1;
            }
        }
    }
    Ok(())
}
