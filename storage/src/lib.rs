//! Eddy's durable store.
//!
//! Everything Eddy keeps — the catalog, stream logs, table rows, view contents, operator state
//! and the epoch counter — lives in one sled tree, under the key layout of [`keys`]. This crate
//! is the only one that imports sled, and it knows nothing of SQL or operators: it stores bytes.
//!
//! Guarantees:
//! - A [`WriteBatch`] committed with [`Store::commit`] is all or nothing, also after a crash:
//!   an epoch's effects on every relation and every operator land together.
//! - When `commit` returns with `durable = true`, the batch is on disk: in the epoch log,
//!   which a writer thread later moves into sled (several epochs at once, off the commit
//!   path); reads consult the epochs still waiting before sled, and a restart replays the
//!   log, so nobody can tell where a committed batch lives.
//! - [`Store::log_input`] makes an epoch durable through its input instead: the input is
//!   synced while the caller computes the epoch, whose batch then commits unsynced; inputs of
//!   epochs whose batch a crash lost come back from [`Store::logged_inputs`].
//! - Readers that scan while holding a [`ReadGuard`] see no commit in between: commits wait
//!   for open guards to add their layer, and guards wait for a commit in flight (the writer
//!   thread changes sled only under layers that still hide its work, so it needs no guard).
//!   Guards are held only while copying rows out, never while a query runs.

mod error;
pub mod keys;
mod layer;
mod store;
mod wal;

pub use error::{StorageError, StorageResult};
pub use layer::WriteBatch;
pub use store::{EpochPin, LoggedInput, ReadGuard, Store};
