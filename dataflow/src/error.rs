use thiserror::Error;

/// Errors of the dataflow engine.
#[derive(Debug, Error)]
pub enum DataflowError {
    /// Evaluating an expression failed (division by zero, a bad cast, ...).
    #[error(transparent)]
    Eval(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Storage(#[from] eddy_storage::StorageError),
    /// A plan or value the engine cannot maintain; names the construct.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// Stored bytes that do not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A violated invariant of the engine itself (a negative multiplicity, say).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type DataflowResult<T> = Result<T, DataflowError>;
