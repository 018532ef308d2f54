//! The operator contract and the dataflow graph that strings operators together.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use eddy_storage::{Store, WriteBatch, keys};

use crate::{DataflowResult, Delta};

/// One step of a view's dataflow. An operator sees each epoch's input deltas once, in order,
/// and returns the change of its output; whatever it must remember between epochs is its
/// state, which it writes out at checkpoints and reads back after a restart.
pub trait Operator: Send {
    /// Consumes the epoch's change of each input; returns the change of the output.
    fn apply(&mut self, inputs: &[Delta], epoch: &EpochContext) -> DataflowResult<Delta>;

    /// The schema of the output.
    fn schema(&self) -> SchemaRef;

    /// Writes state changed since the last checkpoint into the epoch's batch.
    fn checkpoint(&mut self, _state: &mut StateWriter<'_>) -> DataflowResult<()> {
        Ok(())
    }

    /// Loads state written by earlier checkpoints.
    fn restore(
        &mut self,
        _state: &mut dyn Iterator<Item = DataflowResult<(Vec<u8>, Vec<u8>)>>,
    ) -> DataflowResult<()> {
        Ok(())
    }

    /// Rows (or entries) of state held, for progress reporting.
    fn state_rows(&self) -> usize {
        0
    }

    /// What it is and what state it keeps, for EXPLAIN.
    fn explain(&self) -> Explain;

    /// The columns of its (single) input it reads, when that is only some of them; `None`:
    /// any of them.
    fn columns_read(&self) -> Option<Vec<usize>> {
        None
    }
}

/// An operator as EXPLAIN shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explain {
    pub operator: String,
    pub state: StateBound,
    /// The stream whose watermark frees state, if one does.
    pub watermark: Option<u64>,
}

impl Explain {
    pub fn stateless(operator: impl Into<String>) -> Self {
        Self {
            operator: operator.into(),
            state: StateBound::None,
            watermark: None,
        }
    }
}

/// What bounds an operator's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateBound {
    None,
    /// What it holds; a watermark or a limit frees what it no longer needs.
    Bounded(String),
    /// What it holds, which grows with its inputs.
    Grows(String),
}

impl std::fmt::Display for StateBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateBound::None => f.write_str("no state"),
            StateBound::Bounded(what) => write!(f, "state (bounded): {what}"),
            StateBound::Grows(what) => write!(f, "state (grows): {what}"),
        }
    }
}

/// What an epoch knows besides its changes: the watermark of every stream that has one, in
/// microseconds since the Unix epoch (event times at or below it are final).
#[derive(Clone, Debug, Default)]
pub struct EpochContext {
    pub watermarks: HashMap<u64, i64>,
    /// The changes are part of a relation's history, fed in parts (a new view's backfill):
    /// rows of other inputs, or of later parts, are still to come even where the watermark
    /// says they are late, so no state may be freed on the strength of it.
    pub replaying: bool,
}

impl EpochContext {
    pub fn watermark(&self, stream: u64) -> Option<i64> {
        self.watermarks.get(&stream).copied()
    }
}

/// Writes one operator's state keys into an epoch's batch, under its own prefix.
pub struct StateWriter<'a> {
    prefix: Vec<u8>,
    batch: &'a mut WriteBatch,
    sizes: &'a mut EntrySizes,
}

impl StateWriter<'_> {
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.sizes.add(self.prefix.len() + key.len() + value.len());
        self.batch.put_parts(&[&self.prefix, key], value);
    }

    /// [`StateWriter::put`] of a key the operator did not hold at its last checkpoint (see
    /// `WriteBatch::put_new`): if a later epoch deletes it before sled has it, sled never
    /// sees it.
    pub fn put_new(&mut self, key: &[u8], value: &[u8]) {
        self.sizes.add(self.prefix.len() + key.len() + value.len());
        self.batch.put_new_parts(&[&self.prefix, key], value);
    }

    /// [`StateWriter::put`] of a value that holds `entries` entries of state (a ranking's
    /// partition), counted as that many for the estimate of state bytes.
    pub fn put_holding(&mut self, key: &[u8], value: &[u8], entries: usize) {
        self.sizes.entries += entries.max(1) as u64;
        self.sizes.bytes += (self.prefix.len() + key.len() + value.len()) as u64;
        self.batch.put_parts(&[&self.prefix, key], value);
    }

    /// [`StateWriter::put_new`] of a value that holds `entries` entries of state (a join
    /// side's segment of rows), counted as that many for the estimate of state bytes.
    pub fn put_new_holding(&mut self, key: &[u8], value: &[u8], entries: usize) {
        self.sizes.entries += entries.max(1) as u64;
        self.sizes.bytes += (self.prefix.len() + key.len() + value.len()) as u64;
        self.batch.put_new_parts(&[&self.prefix, key], value);
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.batch.delete_parts(&[&self.prefix, key]);
    }

    /// Writes how many copies of an entry are held; none deletes it.
    pub fn count(&mut self, key: &[u8], held: i64) {
        match held {
            0 => self.delete(key),
            n => self.put(key, &n.to_le_bytes()),
        }
    }
}

/// Where an operator's input comes from.
#[derive(Clone, Debug)]
pub enum Input {
    /// The changes of a stored relation (stream, table or view), by relation id.
    Source { relation: u64, schema: SchemaRef },
    /// The output of an earlier node of the same dataflow.
    Node(usize),
}

struct Node {
    operator: Box<dyn Operator>,
    inputs: Vec<Input>,
}

/// A view's dataflow: operators in topological order; the last one's output is the view's
/// change. Operator ids (their positions) key their state, so a dataflow rebuilt from the same
/// definition finds its state again.
#[derive(Default)]
pub struct Dataflow {
    nodes: Vec<Node>,
    /// Sizes of the state entries read at restore and written since.
    sizes: EntrySizes,
}

/// How many state entries were seen and their bytes: their mean size times the number of
/// entries held estimates the bytes of state (as Spark estimates its state stores' memory).
#[derive(Clone, Copy, Debug, Default)]
struct EntrySizes {
    entries: u64,
    bytes: u64,
}

impl EntrySizes {
    fn add(&mut self, bytes: usize) {
        self.entries += 1;
        self.bytes += bytes as u64;
    }
}

impl Dataflow {
    /// Adds an operator reading the given inputs; returns its id.
    pub fn push(&mut self, operator: Box<dyn Operator>, inputs: Vec<Input>) -> usize {
        debug_assert!(inputs.iter().all(|i| match i {
            Input::Node(n) => *n < self.nodes.len(),
            Input::Source { .. } => true,
        }));
        self.nodes.push(Node { operator, inputs });
        self.nodes.len() - 1
    }

    /// The relations it reads.
    pub fn sources(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter())
            .filter_map(|i| match i {
                Input::Source { relation, .. } => Some(*relation),
                Input::Node(_) => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The columns of a relation it reads (`None`: any of them). A relation read only by
    /// projections of columns is read in those columns alone.
    pub fn columns_read(&self, relation: u64) -> Option<Vec<usize>> {
        let mut read = Vec::new();
        for node in &self.nodes {
            let reads_it = node
                .inputs
                .iter()
                .any(|i| matches!(i, Input::Source { relation: r, .. } if *r == relation));
            if !reads_it {
                continue;
            }
            match (node.inputs.len(), node.operator.columns_read()) {
                (1, Some(columns)) => read.extend(columns),
                _ => return None,
            }
        }
        read.sort_unstable();
        read.dedup();
        Some(read)
    }

    /// The relations it reads, each with how many of its columns the dataflow was planned
    /// over (the fewest, should it read one twice).
    pub fn source_widths(&self) -> HashMap<u64, usize> {
        self.source_schemas()
            .into_iter()
            .map(|(relation, schema)| (relation, schema.fields().len()))
            .collect()
    }

    /// The relations it reads, each with the schema of the columns the dataflow was planned
    /// over (the narrowest, should it read one twice): what it takes of each change.
    pub fn source_schemas(&self) -> HashMap<u64, SchemaRef> {
        let mut out: HashMap<u64, SchemaRef> = HashMap::new();
        for input in self.nodes.iter().flat_map(|n| n.inputs.iter()) {
            if let Input::Source { relation, schema } = input {
                out.entry(*relation)
                    .and_modify(|s| {
                        if schema.fields().len() < s.fields().len() {
                            *s = schema.clone();
                        }
                    })
                    .or_insert_with(|| schema.clone());
            }
        }
        out
    }

    pub fn schema(&self) -> SchemaRef {
        self.nodes
            .last()
            .expect("a dataflow has a node")
            .operator
            .schema()
    }

    /// Runs one epoch: `changes` holds the change of each source relation that changed.
    pub fn apply(
        &mut self,
        changes: &HashMap<u64, Delta>,
        epoch: &EpochContext,
    ) -> DataflowResult<Delta> {
        let mut outputs: Vec<Delta> = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            let inputs: Vec<Delta> = node
                .inputs
                .iter()
                .map(|i| match i {
                    Input::Source { relation, schema } => match changes.get(relation) {
                        Some(change) => change.clone().leading(schema),
                        None => Ok(Delta::empty(schema.clone())),
                    },
                    Input::Node(n) => Ok(outputs[*n].clone()),
                })
                .collect::<DataflowResult<_>>()?;
            outputs.push(node.operator.apply(&inputs, epoch)?);
        }
        Ok(outputs.pop().expect("a dataflow has a node"))
    }

    /// Writes every operator's changed state into the batch.
    pub fn checkpoint(&mut self, view: u64, batch: &mut WriteBatch) -> DataflowResult<()> {
        for (id, node) in self.nodes.iter_mut().enumerate() {
            let mut writer = StateWriter {
                prefix: keys::state_prefix(view, id as u32),
                batch,
                sizes: &mut self.sizes,
            };
            node.operator.checkpoint(&mut writer)?;
        }
        Ok(())
    }

    /// Loads every operator's state from the store.
    pub fn restore(&mut self, view: u64, store: &Store) -> DataflowResult<()> {
        for (id, node) in self.nodes.iter_mut().enumerate() {
            let prefix = keys::state_prefix(view, id as u32);
            let sizes = &mut self.sizes;
            let mut entries = store.scan_prefix(&prefix).map(|r| {
                r.map(|(k, v)| {
                    sizes.add(k.len() + v.len());
                    (k[keys::STATE_PREFIX_LEN..].to_vec(), v.to_vec())
                })
                .map_err(Into::into)
            });
            node.operator.restore(&mut entries)?;
        }
        Ok(())
    }

    /// Stages the removal of all of a view's state.
    pub fn stage_drop(view: u64, store: &Store, batch: &mut WriteBatch) -> DataflowResult<()> {
        for entry in store.scan_prefix(&keys::view_state_prefix(view)) {
            batch.delete(entry?.0);
        }
        Ok(())
    }

    pub fn state_rows(&self) -> usize {
        self.nodes.iter().map(|n| n.operator.state_rows()).sum()
    }

    /// The bytes its state takes in the store, estimated: entries held times the mean size
    /// of the entries read and written.
    pub fn state_bytes(&self) -> u64 {
        match self.sizes.entries {
            0 => 0,
            n => self.state_rows() as u64 * (self.sizes.bytes / n),
        }
    }

    /// Every node in order: what it reads and what it is.
    pub fn explain(&self) -> Vec<(Vec<Input>, Explain)> {
        self.nodes
            .iter()
            .map(|n| (n.inputs.clone(), n.operator.explain()))
            .collect()
    }
}
