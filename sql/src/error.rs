use datafusion::error::DataFusionError;
use eddy_catalog::CatalogError;
use eddy_dataflow::DataflowError;
use thiserror::Error;

/// Errors of parsing, planning and executing statements. Each variant is one kind of failure
/// a client can tell apart (the server maps each to its SQLSTATE in one place).
#[derive(Debug, Error)]
pub enum SqlError {
    #[error("{0}")]
    Syntax(String),
    #[error("relation \"{0}\" does not exist")]
    UnknownRelation(String),
    #[error("relation \"{0}\" already exists")]
    DuplicateRelation(String),
    #[error("{0}")]
    UnknownColumn(String),
    #[error("{0}")]
    DuplicateColumn(String),
    /// An object other than a relation or column that already exists (a role).
    #[error("{0}")]
    DuplicateObject(String),
    #[error("{0}")]
    WrongObjectType(String),
    /// A definition that cannot stand (a view reading itself, a replacement that changes
    /// the columns others read).
    #[error("{0}")]
    InvalidDefinition(String),
    /// A table definition that cannot work (42P16), e.g. a mirrored table without a key.
    #[error("{0}")]
    InvalidTableDefinition(String),
    #[error("{0}")]
    DatatypeMismatch(String),
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot drop {kind} {name} because other objects depend on it")]
    DependentObjects {
        kind: String,
        name: String,
        dependents: Vec<String>,
    },
    #[error("duplicate key value violates unique constraint \"{0}\"")]
    UniqueViolation(String),
    #[error("null value in column \"{0}\" violates not-null constraint")]
    NotNullViolation(String),
    #[error("division by zero")]
    DivisionByZero,
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// An external system (a Kafka broker, a database) could not be reached.
    #[error("{0}")]
    ConnectionFailure(String),
    /// An external object (a topic, a table) does not exist.
    #[error("{0}")]
    UndefinedObject(String),
    #[error("prepared statement \"{0}\" does not exist")]
    UnknownPreparedStatement(String),
    /// A read-only setting (`SET server_version = ...`).
    #[error("{0}")]
    CantChangeRuntimeParam(String),
    /// A write inside a read-only transaction.
    #[error("cannot execute {0} in a read-only transaction")]
    ReadOnlyTransaction(String),
    /// A statement inside a transaction block that an earlier error aborted.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    #[error("canceling statement due to user request")]
    Canceled,
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
}

pub type SqlResult<T> = Result<T, SqlError>;

impl From<sqlparser::parser::ParserError> for SqlError {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        match e {
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                SqlError::Syntax("statement is nested too deeply".into())
            }
            sqlparser::parser::ParserError::TokenizerError(m)
            | sqlparser::parser::ParserError::ParserError(m) => SqlError::Syntax(m),
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        use arrow::error::ArrowError;
        match e {
            DataFusionError::SQL(p, _) => (*p).into(),
            DataFusionError::SchemaError(s, _) => {
                let msg = s.to_string();
                match *s {
                    datafusion::common::SchemaError::FieldNotFound { .. } => {
                        SqlError::UnknownColumn(msg)
                    }
                    _ => SqlError::Syntax(msg),
                }
            }
            DataFusionError::ArrowError(a, _) => match *a {
                ArrowError::DivideByZero => SqlError::DivisionByZero,
                ArrowError::CastError(m) | ArrowError::ParseError(m) => SqlError::InvalidText(m),
                ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
                    SqlError::OutOfRange(m)
                }
                other => SqlError::Internal(other.to_string()),
            },
            DataFusionError::NotImplemented(m) => SqlError::Unsupported(m),
            DataFusionError::Plan(m) => classify_plan_message(m),
            DataFusionError::Execution(m) => classify_execution_message(m),
            DataFusionError::Context(_, inner) => (*inner).into(),
            DataFusionError::Diagnostic(_, inner) => (*inner).into(),
            DataFusionError::Shared(inner) => SqlError::Internal(inner.to_string()),
            other => SqlError::Internal(other.strip_backtrace()),
        }
    }
}

/// DataFusion reports several client errors as plain planning errors; tell them apart.
fn classify_plan_message(m: String) -> SqlError {
    if let Some(rest) = m.strip_prefix("table '")
        && m.ends_with("' not found")
    {
        let name = rest.trim_end_matches("' not found");
        let name = name.rsplit('.').next().unwrap_or(name);
        return SqlError::UnknownRelation(name.to_string());
    }
    if m.contains("Cannot infer common argument type")
        || m.contains("cannot be cast")
        || m.contains("Cannot automatically convert")
        || m.contains("No function matches")
        || m.contains("does not support")
        || m.contains("Cannot coerce")
        || m.contains("Failed to coerce")
        || m.contains("non-boolean predicate")
    {
        return SqlError::DatatypeMismatch(m);
    }
    if m.contains("Correlated scalar subquery must be aggregated") {
        return SqlError::Unsupported(
            "a correlated scalar subquery whose rows are not aggregated (it would need to \
             yield at most one row per outer row): aggregate it, as in (SELECT max(x) FROM t \
             WHERE t.k = o.k), or write the lookup as a LEFT JOIN"
                .into(),
        );
    }
    if m.to_ascii_lowercase().contains("correlated") {
        return SqlError::Unsupported(m);
    }
    if m.contains("Invalid function") || m.contains("not found") {
        return SqlError::UnknownColumn(m);
    }
    SqlError::Syntax(m)
}

fn classify_execution_message(m: String) -> SqlError {
    if m.contains("Divide by zero") || m.contains("division by zero") {
        SqlError::DivisionByZero
    } else if m.contains("Cast error") || m.contains("Cannot cast") || m.contains("parse") {
        SqlError::InvalidText(m)
    } else if m.contains("overflow") || m.contains("out of range") {
        SqlError::OutOfRange(m)
    } else if m.contains("no valid cast exists") {
        // A VALUES row of one type for a column of another, found while planning.
        SqlError::DatatypeMismatch(m)
    } else {
        SqlError::Internal(m)
    }
}

impl From<CatalogError> for SqlError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::UnknownRelation(n) => SqlError::UnknownRelation(n),
            CatalogError::DuplicateRelation(n) => SqlError::DuplicateRelation(n),
            e @ CatalogError::WrongKind { .. } => SqlError::WrongObjectType(e.to_string()),
            CatalogError::HasDependents {
                kind,
                name,
                dependents,
            } => SqlError::DependentObjects {
                kind: kind.to_string(),
                name,
                dependents,
            },
            CatalogError::UnsupportedType(t) => {
                SqlError::Unsupported(format!("type \"{t}\" is not supported"))
            }
            e @ (CatalogError::Storage(_) | CatalogError::Corrupt(_)) => {
                SqlError::Internal(e.to_string())
            }
        }
    }
}

impl From<DataflowError> for SqlError {
    fn from(e: DataflowError) -> Self {
        match e {
            DataflowError::Eval(d) => d.into(),
            DataflowError::Arrow(a) => DataFusionError::from(a).into(),
            DataflowError::Unsupported(m) => SqlError::Unsupported(format!("{m} is not supported")),
            e @ (DataflowError::Storage(_)
            | DataflowError::Corrupt(_)
            | DataflowError::Internal(_)) => SqlError::Internal(e.to_string()),
        }
    }
}

impl From<eddy_storage::StorageError> for SqlError {
    fn from(e: eddy_storage::StorageError) -> Self {
        SqlError::Internal(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        DataFusionError::from(e).into()
    }
}
