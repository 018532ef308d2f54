use thiserror::Error;

/// Errors of the durable store.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Sled(#[from] sled::Error),
    #[error("epoch log I/O error: {0}")]
    Log(#[from] std::io::Error),
    #[error("corrupt stored value under key {key:?}: {reason}")]
    Corrupt { key: Vec<u8>, reason: String },
}

pub type StorageResult<T> = Result<T, StorageError>;
