//! The DataFusion table of a stored relation: rows are read from the store when the query's
//! physical plan is made, and only the rows the query can need.
//!
//! Equality on a view's leading columns (`WHERE k = 42`, the shape of a point read) becomes a
//! prefix scan of the view's multiset, and equality on every primary key column of a table a
//! single lookup; everything else is a full scan. The filters stay in the plan, so a lookup
//! only has to return a superset of the matching rows.
//!
//! A query sees one epoch across all its tables: the session holds a [`ReadPin`] (a hold on
//! the store's read gate) from before planning until the scans have read their rows, and
//! releases it before the query runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use eddy_catalog::Relation;
use eddy_dataflow::codec::{encode_row, encode_value};
use eddy_dataflow::relations::{self, Layout};
use eddy_storage::{EpochPin, Store, keys};
use parking_lot::Mutex;

use crate::SqlError;
use crate::sources::{Source, committed_offset, replay};

/// A front-end error where the store layer's is expected.
fn internal(e: SqlError) -> eddy_dataflow::DataflowError {
    eddy_dataflow::DataflowError::Internal(e.to_string())
}

/// Rows per batch handed to DataFusion.
const SCAN_CHUNK: usize = 8192;

/// A session's hold on one epoch of the store, kept in its config's extensions.
#[derive(Default)]
pub struct ReadPin(Mutex<Option<EpochPin>>);

impl ReadPin {
    pub fn new(pin: EpochPin) -> Self {
        Self(Mutex::new(Some(pin)))
    }

    /// Lets commits proceed again; scans after this each hold the gate for themselves.
    pub fn release(&self) {
        self.0.lock().take();
    }

    fn held(&self) -> bool {
        self.0.lock().is_some()
    }
}

/// A stream, table or materialized view as a DataFusion table.
pub struct StoredTable {
    relation: Arc<Relation>,
    layout: Layout,
    /// The relation's schema with every column nullable (see `context::nullable`).
    schema: SchemaRef,
    store: Arc<Store>,
}

impl fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTable")
            .field("relation", &self.relation.name)
            .field("layout", &self.layout)
            .finish()
    }
}

impl StoredTable {
    pub fn new(
        relation: Arc<Relation>,
        layout: Layout,
        schema: SchemaRef,
        store: Arc<Store>,
    ) -> Self {
        Self {
            relation,
            layout,
            schema,
            store,
        }
    }

    /// The column and value of a `column = literal` filter.
    fn equality(&self, filter: &Expr) -> Option<(usize, ScalarValue)> {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = filter
        else {
            return None;
        };
        let (column, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => return None,
        };
        let index = self.schema.index_of(&column.name).ok()?;
        let value = value.cast_to(self.schema.field(index).data_type()).ok()?;
        Some((index, value))
    }

    /// The store keys (or key prefix) that hold every row the filters can accept.
    fn lookup(&self, filters: &[Expr]) -> Result<Lookup, DataFusionError> {
        let bound: HashMap<usize, ScalarValue> =
            filters.iter().filter_map(|f| self.equality(f)).collect();
        let encode_err = |e: eddy_dataflow::DataflowError| DataFusionError::External(e.into());
        match self.layout {
            Layout::Multiset => {
                let mut prefix = keys::rows_prefix(self.relation.id);
                for c in 0..self.schema.fields().len() {
                    let Some(v) = bound.get(&c) else { break };
                    encode_value(v, &mut prefix).map_err(encode_err)?;
                }
                Ok(Lookup::Prefix(prefix))
            }
            Layout::Keyed if !self.relation.primary_key.is_empty() => {
                // Keys encode the key's columns in order, so the leading ones bound are a
                // prefix of the keys that hold them.
                let pk = &self.relation.primary_key;
                let leading: Vec<ScalarValue> =
                    pk.iter().map_while(|c| bound.get(c).cloned()).collect();
                let key = keys::row(self.relation.id, &encode_row(&leading).map_err(encode_err)?);
                Ok(match leading.len() == pk.len() {
                    true => Lookup::Key(key),
                    false => Lookup::Prefix(key),
                })
            }
            Layout::Keyed | Layout::Log => Ok(Lookup::Prefix(keys::rows_prefix(self.relation.id))),
        }
    }

    fn read(
        &self,
        lookup: &Lookup,
        limit: Option<usize>,
    ) -> eddy_dataflow::DataflowResult<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let mut rows = 0;
        let mut collect = |b: RecordBatch| {
            rows += b.num_rows();
            out.push(b);
            Ok(limit.is_none_or(|l| rows < l))
        };
        if let Some(source) = Source::of(&self.relation)
            .map_err(internal)?
            .filter(|s| s.replayable().is_some())
        {
            // A replayable stream stores no rows: its history is replayed up to its offset.
            let offset = committed_offset(&self.store, &self.relation).map_err(internal)?;
            return replay(&self.relation, &source, offset, |b| {
                let b = RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())?;
                Ok(collect(b)?)
            })
            .map(|_| out)
            .map_err(internal);
        }
        match lookup {
            Lookup::Prefix(prefix) => relations::scan_from(
                &self.store,
                prefix,
                self.layout,
                &self.schema,
                SCAN_CHUNK,
                &mut collect,
            )?,
            Lookup::Key(key) => {
                if let Some(v) = self.store.get(key)? {
                    let row = eddy_dataflow::codec::decode_row(&v, self.schema.fields().len())?;
                    collect(eddy_dataflow::codec::batch_from_rows(&self.schema, &[row])?)?;
                }
            }
        }
        Ok(out)
    }
}

/// Where a scan reads: every row under a key prefix (the relation's whole prefix for a full
/// scan), or the one row under a key.
enum Lookup {
    Prefix(Vec<u8>),
    Key(Vec<u8>),
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>, DataFusionError> {
        Ok(filters
            .iter()
            .map(|f| match self.equality(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let lookup = self.lookup(filters)?;
        // DataFusion passes a limit only when every filter was applied exactly, and these
        // filters are applied again above the scan.
        let limit = if filters.is_empty() { limit } else { None };
        let pinned = state
            .config()
            .get_extension::<ReadPin>()
            .is_some_and(|p| p.held());
        let batches = {
            let _one_epoch = (!pinned).then(|| self.store.read());
            self.read(&lookup, limit)
                .map_err(|e| DataFusionError::External(e.into()))?
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
