//! Eddy's incremental dataflow engine.
//!
//! Every change is a [`Delta`]: an Arrow batch of rows plus a weight per row (+1 insert,
//! -1 delete; an update is both). A view is a [`Dataflow`] of [`Operator`]s: stateless ones
//! (projection, filter, union) map deltas row by row; stateful ones (aggregate, join) keep
//! state in memory, write what changed into the epoch's [`WriteBatch`] at each checkpoint,
//! and read it back after a restart. The engine does no I/O of its own and knows no SQL: the
//! SQL layer builds dataflows from DataFusion plans, and the epoch driver feeds them.
//!
//! Event time enters through the [`EpochContext`]: each stream's watermark. [`window`] has
//! the operators that act on it: aggregates free the state of closed windows, and a close
//! gate holds a view's rows until their window closes. [`SessionWindow`] tags rows with the
//! session they belong to, merging and splitting sessions as rows come and go.
//!
//! [`relations`] holds the on-disk layout of streams, tables and view contents, and reads
//! them back as Arrow batches; [`codec`] is the row encoding they share. [`progress`] is what
//! the epoch driver commits about each relation as it goes, [`metrics`] the live figures it
//! keeps in memory (rates, epoch durations, backfills).
//!
//! [`WriteBatch`]: eddy_storage::WriteBatch

mod aggregate;
pub mod codec;
mod delta;
mod error;
mod join;
pub mod metrics;
mod operator;
mod over;
pub mod progress;
pub mod relations;
mod session;
mod shares;
mod stateless;
#[cfg(test)]
mod testing;
mod topn;
pub mod window;

/// Hash maps and sets keyed by encoded rows: ahash hashes short byte keys several times faster
/// than the standard library's SipHash, and is still seeded per process.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

pub use aggregate::{AggKind, AggSpec, Aggregate};
pub use delta::Delta;
pub use error::{DataflowError, DataflowResult};
pub use join::{Join, JoinKind, TimeBound};
pub use operator::{Dataflow, EpochContext, Explain, Input, Operator, StateBound, StateWriter};
pub use over::OverWindow;
pub use session::SessionWindow;
pub use stateless::{Filter, Project, Union};
pub use topn::{Numbering, SortColumn, TopN};
