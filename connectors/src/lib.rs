//! Eddy's sources: where a stream's rows come from when no client writes them.
//!
//! A stream declared `WITH (connector = '...', ...)` is fed by its connector instead of by
//! INSERT or COPY. Today that is [`nexmark`], the benchmark's generated auction site, whose
//! events are a pure function of their number: such a stream keeps only how far it has read
//! (its offset), committed with each epoch, and its history is replayed when a new view needs
//! it.

mod java_random;
pub mod nexmark;

use thiserror::Error;

/// A connector's options could not be used.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown {connector} option \"{option}\" (known: {known})")]
    UnknownOption {
        connector: &'static str,
        option: String,
        known: String,
    },
    #[error("unknown connector \"{0}\" (known: nexmark)")]
    UnknownConnector(String),
}

impl ConnectorError {
    fn invalid(option: &str, value: &str, expected: &str) -> Self {
        ConnectorError::Invalid(format!(
            "invalid value for option \"{option}\": \"{value}\" (expected {expected})"
        ))
    }
}

pub type ConnectorResult<T> = Result<T, ConnectorError>;
