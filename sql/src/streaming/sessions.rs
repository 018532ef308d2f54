//! SESSION windows in a view's dataflow: the `SessionWindow` operator over the columns the
//! query reads (planner version 2), yielding one row per session where it reads only the
//! partition and the bounds.

use std::sync::Arc;

use eddy_catalog::RelationKind;
use eddy_dataflow::{Input, Project, SessionWindow};

use super::{Planner, column, unsupported};
use crate::windows::WindowKind;
use crate::{SqlError, SqlResult};

impl Planner<'_> {
    /// The n-th window of the query, a SESSION window: its relation's rows tagged with their
    /// sessions' bounds, of which the scan reads `projection`. Returns the node, its output
    /// schema, and the projection that reads the scan's columns from it.
    pub(super) fn session(
        &mut self,
        n: usize,
        projection: Option<&[usize]>,
    ) -> SqlResult<(Input, arrow::datatypes::SchemaRef, Option<Vec<usize>>)> {
        let window = self
            .windows
            .get(n)
            .filter(|w| w.kind == WindowKind::Session)
            .ok_or_else(|| SqlError::Internal(format!("no SESSION window {n}")))?;
        let rel = self.catalog.resolve(&window.relation)?;
        if !rel.is_stored() {
            return Err(unsupported(format!(
                "a SESSION window over the plain view {}",
                rel.name
            )));
        }
        let index_of = |name: &str| {
            rel.column_index(name).ok_or_else(|| {
                SqlError::UnknownColumn(format!("column \"{name}\" of {} does not exist", rel.name))
            })
        };
        let time = index_of(&window.time_column)?;
        if !matches!(
            rel.columns[time].sql_type,
            eddy_catalog::SqlType::Timestamp | eddy_catalog::SqlType::Timestamptz
        ) {
            return Err(SqlError::DatatypeMismatch(format!(
                "the time column of a SESSION window must be a timestamp, not {}",
                rel.columns[time].sql_type
            )));
        }
        let partition = window
            .partition
            .iter()
            .map(|c| index_of(c))
            .collect::<SqlResult<Vec<_>>>()?;
        let closed_by = (rel.kind == RelationKind::Stream
            && rel.watermark.is_some_and(|w| w.column == time))
        .then_some(rel.id);
        let schema = rel.schema();
        let source = Input::Source {
            relation: rel.id,
            schema: schema.clone(),
        };
        let Some(read) = projection.filter(|_| self.plan_version >= 2) else {
            let op = SessionWindow::new(&schema, partition, time, window.size_micros, closed_by)?;
            let out = eddy_dataflow::Operator::schema(&op);
            let projection = projection.map(<[usize]>::to_vec);
            return Ok((self.node(Box::new(op), vec![source]), out, projection));
        };
        // The session's rows hold the columns read, its partition and its time (beyond the
        // relation's columns, the scan reads the bounds).
        let width = schema.fields().len();
        let mut kept: Vec<usize> = read.iter().copied().filter(|&c| c < width).collect();
        let per_session = kept.iter().all(|c| partition.contains(c));
        kept.extend(partition.iter().copied());
        kept.push(time);
        kept.sort_unstable();
        kept.dedup();
        // Where an original column is among `columns`.
        let at = |columns: &[usize], c: usize| {
            columns
                .iter()
                .position(|&k| k == c)
                .ok_or_else(|| SqlError::Internal(format!("session column {c} not kept")))
        };
        let narrow = Arc::new(schema.project(&kept)?);
        let mut input = source;
        if kept.len() < width {
            let exprs = kept
                .iter()
                .map(|&c| column(schema.field(c).name(), c))
                .collect();
            input = self.node(Box::new(Project::new(exprs, narrow.clone())), vec![input]);
        }
        let narrow_partition = partition
            .iter()
            .map(|&c| at(&kept, c))
            .collect::<SqlResult<Vec<_>>>()?;
        let op = SessionWindow::new(
            &narrow,
            narrow_partition,
            at(&kept, time)?,
            window.size_micros,
            closed_by,
        )?;
        // The columns the operator yields before the bounds, and where the scan's columns
        // are among them.
        let (op, yielded) = match per_session {
            true => (op.per_session(&narrow), &partition),
            false => (op, &kept),
        };
        let remapped = read
            .iter()
            .map(|&c| match c.checked_sub(width) {
                Some(bound) => Ok(yielded.len() + bound),
                None => at(yielded, c),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let out = eddy_dataflow::Operator::schema(&op);
        Ok((self.node(Box::new(op), vec![input]), out, Some(remapped)))
    }
}
