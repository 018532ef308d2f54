//! Schema changes of a running pipeline: renames, and a view's new version built beside the
//! old one and swapped in within one epoch.
//!
//! Each commits its catalog change together with the store's epoch (see
//! [`Store::commit_and`](eddy_storage::Store::commit_and)), so that a reader sees the old
//! definitions with the old rows or the new with the new, never a mix.

use std::collections::HashMap;
use std::sync::Arc;

use eddy_catalog::{Column, Relation, RelationKind, Snapshot};
use eddy_dataflow::codec::{encode_row, row_values};
use eddy_dataflow::metrics::EpochKind;
use eddy_dataflow::relations::{self, Layout};
use eddy_dataflow::{Dataflow, Delta};
use eddy_sql::context::layout;
use eddy_sql::sources;
use eddy_sql::{SqlError, SqlResult, alter};
use eddy_storage::{WriteBatch, keys};

use super::ddl::pin_input_widths;
use super::{BACKFILL_CHUNK, Driver, Epoch, record_view_progress, store_view_change};

/// A change of definitions.
pub enum Alter {
    /// `ALTER <kind> name RENAME TO to`.
    Rename {
        kind: RelationKind,
        name: String,
        to: String,
        if_exists: bool,
    },
    /// `CREATE OR REPLACE MATERIALIZED VIEW`: the new definition and its dataflow.
    Replace {
        view: Box<Relation>,
        dataflow: Dataflow,
    },
    /// `ALTER STREAM | TABLE name ADD COLUMN`: `column` as the catalog keeps it, and
    /// `definition` as the relation's CREATE text shows it.
    AddColumn {
        kind: RelationKind,
        name: String,
        if_exists: bool,
        column: Column,
        definition: String,
        if_not_exists: bool,
    },
}

impl Driver {
    /// Applies a change of definitions; answers the NOTICE to give when IF [NOT] EXISTS made
    /// it a no-op.
    pub(super) fn alter(&mut self, change: Alter) -> SqlResult<Option<String>> {
        let missing = |name: &str| Some(format!("relation \"{name}\" does not exist, skipping"));
        match change {
            Alter::Rename {
                kind,
                name,
                to,
                if_exists,
            } => Ok(match self.rename(kind, &name, &to, if_exists)? {
                true => None,
                false => missing(&name),
            }),
            Alter::Replace { view, dataflow } => self.replace(*view, dataflow).map(|()| None),
            Alter::AddColumn {
                kind,
                name,
                if_exists,
                column,
                definition,
                if_not_exists,
            } => {
                let snapshot = self.catalog.snapshot();
                let Some(rel) = Self::existing(&snapshot, kind, &name, if_exists)? else {
                    return Ok(missing(&name));
                };
                if rel.column_index(&column.name).is_some() {
                    let exists = format!(
                        "column \"{}\" of relation \"{name}\" already exists",
                        column.name
                    );
                    return match if_not_exists {
                        true => Ok(Some(format!("{exists}, skipping"))),
                        false => Err(SqlError::DuplicateColumn(exists)),
                    };
                }
                self.add_column(&snapshot, &rel, column, &definition)
                    .map(|()| None)
            }
        }
    }

    fn existing(
        snapshot: &Snapshot,
        kind: RelationKind,
        name: &str,
        if_exists: bool,
    ) -> SqlResult<Option<Arc<Relation>>> {
        match snapshot.get(name) {
            None if if_exists => Ok(None),
            None => Err(SqlError::UnknownRelation(name.to_string())),
            Some(rel) if rel.kind != kind => Err(SqlError::WrongObjectType(format!(
                "\"{name}\" is not a {kind}"
            ))),
            Some(rel) => Ok(Some(rel.clone())),
        }
    }

    /// Renames a relation; the definitions that name it (views reading it, sinks delivering
    /// it) are rewritten to the new name. Ids, rows and state stay as they are.
    fn rename(
        &mut self,
        kind: RelationKind,
        name: &str,
        to: &str,
        if_exists: bool,
    ) -> SqlResult<bool> {
        let snapshot = self.catalog.snapshot();
        let Some(rel) = Self::existing(&snapshot, kind, name, if_exists)? else {
            return Ok(false);
        };
        if snapshot.get(to).is_some() {
            return Err(SqlError::DuplicateRelation(to.to_string()));
        }
        let changed = alter::renamed(
            snapshot.relations().map(|r| (**r).clone()),
            rel.id,
            name,
            to,
        )?;
        self.redefine(changed)?;
        // Connectors and sink writers know their relations by definition.
        self.load_connectors()?;
        self.load_triggers()?;
        Ok(true)
    }

    /// Commits new definitions of existing relations in an epoch of their own; they become
    /// visible together with it.
    fn redefine(&mut self, changed: Vec<Relation>) -> SqlResult<()> {
        let mut epoch = Epoch::new(EpochKind::Alter);
        for r in &changed {
            self.catalog.stage_put(r, &mut epoch.batch);
        }
        let catalog = self.catalog.clone();
        self.commit_and(epoch, move || {
            catalog.install_all(changed.into_iter().map(Arc::new))
        })
    }

    /// Adds a column at the end of a stream's or table's columns, NULL in the rows it holds.
    /// What reads the relation keeps the columns it was defined over: a materialized view
    /// records how many it reads ([`Relation::input_columns`]) and its dataflow takes the
    /// leading ones of each change, a plain view reads a subquery of the old columns, and
    /// sinks and subscriptions keep their own columns. Rows, state and positions stay as
    /// they are: nothing is rewritten.
    fn add_column(
        &mut self,
        snapshot: &Snapshot,
        rel: &Relation,
        column: Column,
        definition: &str,
    ) -> SqlResult<()> {
        if let Some(connector) = &rel.connector {
            return Err(SqlError::Unsupported(format!(
                "adding a column to {} \"{}\", which connector '{}' feeds (its reader decodes \
                 the columns it was created with); create a new {} with the column instead",
                rel.kind, rel.name, connector.name, rel.kind
            )));
        }
        let before: Vec<String> = rel.columns.iter().map(|c| c.name.clone()).collect();
        let mut widened = rel.clone();
        widened.columns.push(column);
        widened.create_sql = alter::add_column_sql(&rel.create_sql, definition)?;
        let mut changed = vec![widened];
        for reader in snapshot.dependents(rel.id) {
            let mut reader = (**reader).clone();
            match reader.kind {
                RelationKind::MaterializedView => {
                    reader.input_columns.entry(rel.id).or_insert(before.len());
                }
                RelationKind::View => {
                    let query = reader.query.as_deref().unwrap_or_default();
                    let query = alter::narrow_in_query(query, &rel.name, &before)?;
                    reader.create_sql = alter::view_create_sql(&reader, &query);
                    reader.query = Some(query);
                }
                _ => continue,
            }
            changed.push(reader);
        }
        self.redefine(changed)?;
        tracing::info!(relation = %rel.name, columns = before.len() + 1, "column added");
        Ok(())
    }

    /// Builds a materialized view's new version beside the old one (readers keep the old
    /// meanwhile), then swaps it in within one epoch. The view keeps its id; what reads it
    /// (views, sinks, subscribers) gets the difference between the two versions as the
    /// view's change, so a sink's target ends equal to the new version without anything
    /// being sent again.
    fn replace(&mut self, mut view: Relation, mut flow: Dataflow) -> SqlResult<()> {
        let snapshot = self.catalog.snapshot();
        pin_input_widths(&snapshot, &mut view, &flow);
        let old = Self::existing(&snapshot, RelationKind::MaterializedView, &view.name, false)?
            .expect("an existing view");
        let id = old.id;
        let dependents: Vec<Arc<Relation>> = snapshot
            .drop_order(id)
            .into_iter()
            .filter(|r| r.id != id)
            .collect();
        if let Some(cycle) = view
            .depends_on
            .iter()
            .find(|d| **d == id || dependents.iter().any(|r| r.id == **d))
        {
            let through = snapshot.by_id(*cycle).map_or("itself", |r| r.name.as_str());
            return Err(SqlError::InvalidDefinition(format!(
                "materialized view \"{}\" cannot read {through}, which reads it",
                view.name
            )));
        }
        if let Some(gone) = view
            .depends_on
            .iter()
            .find(|d| snapshot.by_id(**d).is_none())
        {
            return Err(SqlError::UnknownRelation(format!("relation {gone}")));
        }
        if let Some(first) = dependents.first() {
            if old.columns != view.columns {
                return Err(SqlError::InvalidDefinition(format!(
                    "cannot change the columns of materialized view \"{}\": {} \"{}\" reads \
                     them (the new version must have the same column names and types)",
                    view.name, first.kind, first.name
                )));
            }
            if old.append_only {
                return Err(SqlError::Unsupported(format!(
                    "replacing append-only materialized view \"{}\" while {} \"{}\" reads it",
                    view.name, first.kind, first.name
                )));
            }
        }
        view.id = id;
        for source in flow.sources() {
            self.progress_of(source)?;
        }
        let mut epoch = Epoch::new(EpochKind::Alter);
        let built = self.build(&snapshot, &view, &mut flow, &mut epoch);
        self.metrics.backfill_finished(&view.name);
        let (contents, replayed) = built?;

        // The difference, while the old version's rows are still stored.
        let same_shape = old.columns == view.columns;
        let mut changes = HashMap::new();
        if same_shape {
            let mut parts = vec![contents.clone()];
            sources::read_history(&self.store, &old, BACKFILL_CHUNK, |rows| {
                let n = rows.num_rows();
                parts.push(Delta::new(rows, vec![-1; n]));
                Ok(true)
            })?;
            let diff = Delta::concat(&view.schema(), &parts)?.consolidate()?;
            if !diff.is_empty() {
                changes.insert(id, diff);
            }
        }

        // Out with the old version's rows and state, in with the new's: in one batch, later
        // writes of a key win over earlier deletions.
        relations::stage_drop(&self.store, id, &mut epoch.batch)?;
        Dataflow::stage_drop(id, &self.store, &mut epoch.batch)?;
        self.next_seq.insert(id, 0);
        write_contents(
            &self.store,
            &mut self.next_seq,
            &view,
            &contents,
            &mut epoch.batch,
        )?;
        flow.checkpoint(id, &mut epoch.batch)?;
        record_view_progress(&flow, id, self.epoch + 1, &mut epoch.batch);
        self.catalog.stage_put(&view, &mut epoch.batch);
        for (source, progress) in &replayed {
            epoch.batch.put(keys::progress(*source), progress.encode());
        }
        self.run_views(&snapshot, &mut changes, &mut epoch, Some(id))?;
        let catalog = self.catalog.clone();
        let installed = Arc::new(view);
        let swapped = installed.clone();
        self.commit_and(epoch, move || catalog.install(swapped))?;
        self.progress.extend(replayed);
        self.views.insert(id, flow);
        // Subscribers of a view whose columns changed cannot go on reading it.
        let dropped = if same_shape { vec![] } else { vec![id] };
        self.publish(changes, dropped);
        self.load_connectors()?;
        self.reset_trigger(id);
        self.load_triggers()?;
        tracing::info!(view = %installed.name, "materialized view replaced");
        Ok(())
    }
}

/// Stages a view's whole contents as its stored rows, over nothing (its old rows are staged
/// for deletion in the same batch).
fn write_contents(
    store: &eddy_storage::Store,
    next_seq: &mut HashMap<u64, u64>,
    view: &Relation,
    contents: &Delta,
    batch: &mut WriteBatch,
) -> SqlResult<()> {
    if matches!(layout(view), Layout::Log | Layout::Keyed) {
        return store_view_change(store, next_seq, view, contents, batch);
    }
    let columns = contents.batch.columns();
    for (i, weight) in contents.weights.iter().enumerate() {
        if *weight <= 0 {
            return Err(SqlError::Internal(format!(
                "materialized view {} would hold a row {weight} times",
                view.name
            )));
        }
        let row = encode_row(&row_values(columns, i)?)?;
        batch.put(keys::row(view.id, &row), weight.to_le_bytes());
    }
    Ok(())
}
