//! Eddy's catalog: the names, ids and definitions of streams, tables and views.
//!
//! Definitions are persisted through the store (key space `catalog`, JSON values) in the same
//! write batch as the epoch that creates or drops them, so a relation and its first contents
//! appear together. In memory the catalog is an immutable [`Snapshot`] swapped on change:
//! planners read a consistent set of definitions without holding a lock.
//!
//! Column types are Postgres types ([`SqlType`]); each maps to one Arrow type, which is what
//! the dataflow and DataFusion see.

mod error;
mod relation;
mod snapshot;
mod types;

pub use error::{CatalogError, CatalogResult};
pub use relation::{Column, Connector, RelId, Relation, RelationKind, Watermark};
pub use snapshot::{Catalog, Snapshot};
pub use types::{PG_TYPE_METADATA_KEY, SqlType};
