use thiserror::Error;

use crate::RelationKind;

/// Errors of the catalog.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("relation \"{0}\" does not exist")]
    UnknownRelation(String),
    #[error("relation \"{0}\" already exists")]
    DuplicateRelation(String),
    #[error("\"{name}\" is a {actual}, not a {expected}")]
    WrongKind {
        name: String,
        actual: RelationKind,
        expected: RelationKind,
    },
    #[error("cannot drop {kind} {name} because other objects depend on it")]
    HasDependents {
        kind: RelationKind,
        name: String,
        dependents: Vec<String>,
    },
    #[error("type \"{0}\" is not supported")]
    UnsupportedType(String),
    #[error(transparent)]
    Storage(#[from] eddy_storage::StorageError),
    #[error("corrupt catalog entry: {0}")]
    Corrupt(String),
}

pub type CatalogResult<T> = Result<T, CatalogError>;
