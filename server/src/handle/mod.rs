//! One module per statement family: each turns a parsed statement into an [`Outcome`].

pub mod copy;
pub mod ddl;
pub mod dml;
pub mod naming;
pub mod query;
pub mod roles;
pub mod session;
pub mod show;
pub mod subscribe;
mod text;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use eddy_catalog::{Catalog, Relation};
use eddy_sql::compat::ClientSession;
use eddy_sql::context::QueryEngine;
use eddy_sql::parser::Statement;
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::Store;
use sqlparser::ast::Statement as SqlStatement;

use crate::engine::Engine;

/// What every session shares.
pub struct Shared {
    pub engine: Engine,
    pub catalog: Arc<Catalog>,
    pub store: Arc<Store>,
    pub query: QueryEngine,
    /// The users who may log in with a password.
    pub roles: Arc<crate::auth::Roles>,
    /// Set when a graceful shutdown begins: statements not yet started are refused (57P01)
    /// so that the running ones can drain.
    pub shutting_down: std::sync::atomic::AtomicBool,
}

/// The result of a statement, before it is put on the wire.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        tag: &'static str,
    },
    /// A command tag, with a row count where Postgres gives one (`INSERT 0 3`).
    Done {
        tag: String,
        rows: Option<u64>,
    },
    TransactionStart(String),
    TransactionEnd(String),
    /// `COPY ... FROM STDIN`: the client sends the rows next.
    CopyIn(copy::CopyTarget),
    /// A notice to send before the outcome (`relation already exists, skipping`).
    Notice(String, Box<Outcome>),
    /// `SUBSCRIBE`: rows are pushed as epochs commit, until the client cancels or leaves.
    Subscribe(Box<subscribe::Subscription>),
    /// `COPY ... TO STDOUT`: rows sent as COPY data.
    CopyOut {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        options: copy::CopyOptions,
    },
    /// Settings the client is told the new values of (ParameterStatus), before the outcome.
    Reported(Vec<(String, String)>, Box<Outcome>),
}

impl Outcome {
    pub fn done(tag: &str) -> Outcome {
        Outcome::Done {
            tag: tag.to_string(),
            rows: None,
        }
    }
}

/// Runs a statement for a client's session.
pub async fn execute(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &Statement,
    params: &[ScalarValue],
) -> SqlResult<Outcome> {
    if session.read_only()
        && let Some(what) = write_kind(stmt)
    {
        return Err(SqlError::ReadOnlyTransaction(what));
    }
    match stmt {
        Statement::CreateStream { .. }
        | Statement::CreateMaterializedView { .. }
        | Statement::CreateSink { .. }
        | Statement::Rename { .. }
        | Statement::AddColumn { .. }
        | Statement::Drop { .. } => ddl::execute(shared, session, stmt).await,
        Statement::ExplainView {
            query,
            emit_on_window_close,
        } => ddl::explain(shared, query, *emit_on_window_close).await,
        Statement::ShowRelations(kind) => show::relations(shared, *kind),
        Statement::ShowCreate { kind, name } => show::create(shared, *kind, name),
        Statement::Flush => {
            shared.engine.flush().await?;
            Ok(Outcome::done("FLUSH"))
        }
        Statement::Subscribe {
            name,
            options,
            copy,
        } => Ok(Outcome::Subscribe(Box::new(subscribe::start(
            shared, name, options, *copy,
        )?))),
        Statement::InsertValues(ins) => dml::insert_literals(shared, ins).await,
        Statement::Sql(s) => execute_sql(shared, session, s, params).await,
    }
}

async fn execute_sql(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &SqlStatement,
    params: &[ScalarValue],
) -> SqlResult<Outcome> {
    match stmt {
        SqlStatement::Query(_) | SqlStatement::Explain { .. } => {
            query::execute(shared, session, stmt, params).await
        }
        SqlStatement::CreateTable(_) | SqlStatement::CreateView(_) => {
            ddl::execute_sql(shared, stmt).await
        }
        SqlStatement::CreateRole(_)
        | SqlStatement::AlterRole { .. }
        | SqlStatement::Drop {
            object_type: sqlparser::ast::ObjectType::Role,
            ..
        } => roles::execute(shared, stmt),
        SqlStatement::Drop { .. } => ddl::execute_sql(shared, stmt).await,
        SqlStatement::Insert(_) | SqlStatement::Update(_) | SqlStatement::Delete(_) => {
            dml::execute(shared, stmt, params).await
        }
        SqlStatement::Copy { to: true, .. } => copy::copy_out(shared, session, stmt).await,
        SqlStatement::Copy { .. } => copy::start(shared, stmt),
        SqlStatement::StartTransaction { modes, .. } => {
            use sqlparser::ast::{TransactionAccessMode, TransactionMode};
            let read_only = modes.iter().rev().find_map(|m| match m {
                TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => Some(true),
                TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => Some(false),
                _ => None,
            });
            session.begin_transaction(read_only);
            Ok(Outcome::TransactionStart("BEGIN".into()))
        }
        SqlStatement::Commit { .. } => {
            session.end_transaction();
            Ok(Outcome::TransactionEnd("COMMIT".into()))
        }
        // Savepoints are accepted so that drivers' nested transactions work; every write
        // commits in its own epoch, so there is nothing to roll back to.
        SqlStatement::Savepoint { .. } => Ok(Outcome::done("SAVEPOINT")),
        SqlStatement::ReleaseSavepoint { .. } => Ok(Outcome::done("RELEASE")),
        SqlStatement::Rollback {
            savepoint: Some(_), ..
        } => Ok(Outcome::done("ROLLBACK")),
        SqlStatement::Rollback { .. } => {
            session.end_transaction();
            Ok(Outcome::TransactionEnd("ROLLBACK".into()))
        }
        SqlStatement::Set(set) => session::set(session, set),
        SqlStatement::Reset(reset) => session::reset(session, &reset.reset),
        SqlStatement::ShowVariable { variable } => session::show(session, variable),
        SqlStatement::Discard { .. } => Ok(session::discard(session)),
        other => Err(SqlError::Unsupported(format!(
            "statement {} is not supported",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// What a statement writes, named as Postgres names it in a read-only transaction's error;
/// `None` for statements that only read.
fn write_kind(stmt: &Statement) -> Option<String> {
    let kind = match stmt {
        Statement::CreateStream { .. } => "CREATE STREAM",
        Statement::CreateMaterializedView { .. } => "CREATE MATERIALIZED VIEW",
        Statement::CreateSink { .. } => "CREATE SINK",
        Statement::Drop { .. } => "DROP",
        Statement::Rename { .. } | Statement::AddColumn { .. } => "ALTER",
        Statement::InsertValues(_) => "INSERT",
        Statement::Sql(s) => match **s {
            SqlStatement::Insert(_) => "INSERT",
            SqlStatement::Update(_) => "UPDATE",
            SqlStatement::Delete(_) => "DELETE",
            SqlStatement::Copy { to: false, .. } => "COPY",
            SqlStatement::CreateTable(_) => "CREATE TABLE",
            SqlStatement::CreateView(_) => "CREATE VIEW",
            SqlStatement::CreateRole(_) => "CREATE ROLE",
            SqlStatement::AlterRole { .. } => "ALTER ROLE",
            SqlStatement::Drop { .. } => "DROP",
            _ => return None,
        },
        _ => return None,
    };
    Some(kind.to_string())
}

/// The result schema and parameter types of a statement, without running it.
pub async fn describe(
    shared: &Shared,
    session: &Arc<ClientSession>,
    stmt: &Statement,
) -> SqlResult<(Vec<Option<arrow::datatypes::DataType>>, Option<SchemaRef>)> {
    match stmt {
        Statement::Sql(s) if matches!(**s, SqlStatement::Query(_)) => {
            query::describe(shared, session, s).await
        }
        Statement::Sql(s) if matches!(**s, SqlStatement::Insert(_)) => {
            Ok((dml::describe_params(shared, s).await?, None))
        }
        // Like Postgres, a COPY names a missing or wrong target when it is prepared, not when
        // its data starts to arrive.
        Statement::Sql(s) if matches!(**s, SqlStatement::Copy { to: false, .. }) => {
            copy::start(shared, s)?;
            Ok((vec![], None))
        }
        Statement::ShowRelations(_) => Ok((vec![], Some(show::relations_schema()))),
        Statement::Subscribe {
            name, copy: false, ..
        } => Ok((vec![], Some(subscribe::schema(shared, name)?))),
        Statement::ShowCreate { .. } => Ok((vec![], Some(show::create_schema()))),
        Statement::ExplainView { .. } => Ok((vec![], Some(ddl::explain_schema()))),
        Statement::Sql(s) if matches!(**s, SqlStatement::ShowVariable { .. }) => {
            Ok((vec![], Some(session::show_schema(s))))
        }
        _ => Ok((vec![], None)),
    }
}

/// Looks a relation up by its (normalized) name.
pub fn resolve(shared: &Shared, name: &str) -> SqlResult<Arc<Relation>> {
    Ok(shared.catalog.snapshot().resolve(name)?.clone())
}

/// Casts a column of computed values to a stored column's type, strictly (a value that does
/// not convert is an error, not a NULL). Text to bytea reads Postgres' hex and escape forms.
pub fn cast_to_column(
    array: &arrow::array::ArrayRef,
    field: &arrow::datatypes::Field,
) -> SqlResult<arrow::array::ArrayRef> {
    use arrow::array::{Array, AsArray, BinaryArray};
    use arrow::datatypes::DataType;
    if !field.is_nullable() && array.null_count() > 0 {
        return Err(SqlError::NotNullViolation(field.name().clone()));
    }
    if matches!(
        eddy_catalog::SqlType::from_field(field),
        Some(eddy_catalog::SqlType::Json | eddy_catalog::SqlType::Jsonb)
    ) && array.data_type() == &DataType::Utf8
    {
        for v in array.as_string::<i32>().iter().flatten() {
            serde_json::from_str::<serde_json::Value>(v).map_err(|e| {
                SqlError::InvalidText(format!("invalid input syntax for type json: {e}"))
            })?;
        }
    }
    if array.data_type() == field.data_type() {
        return Ok(array.clone());
    }
    if let Some(text) = array.as_string_opt::<i32>()
        && let Some(read) = text::read(text, field.data_type())
    {
        return Ok(read);
    }
    if field.data_type() == &DataType::Binary && array.data_type() == &DataType::Utf8 {
        let text = array.as_string::<i32>();
        let values = text
            .iter()
            .map(|v| v.map(eddy_sql::literals::decode_bytea).transpose())
            .collect::<SqlResult<Vec<_>>>()?;
        return Ok(std::sync::Arc::new(BinaryArray::from_iter(values)));
    }
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let out = arrow::compute::cast_with_options(array, field.data_type(), &strict)
        .map_err(|e| SqlError::InvalidText(format!("column \"{}\": {e}", field.name())))?;
    if !field.is_nullable() && out.null_count() > 0 {
        return Err(SqlError::NotNullViolation(field.name().clone()));
    }
    Ok(out)
}

/// Postgres' assignment rule for a value computed as `from` going into `field`: among
/// numbers, booleans, dates and times, and bytes, only casts within one kind are implicit
/// (`INSERT INTO t (flag) VALUES (12)` is 42804, as `flag = 12::bool` would not be). Text and
/// untyped values go anywhere their text reads as the column's type (checked as they are
/// cast), and anything goes into a text column.
pub fn check_assignment(
    from: &arrow::datatypes::DataType,
    field: &arrow::datatypes::Field,
) -> SqlResult<()> {
    use arrow::datatypes::DataType as T;
    #[derive(PartialEq)]
    enum Kind {
        Number,
        Boolean,
        Time,
        Bytes,
        Other,
    }
    let kind = |t: &T| match t {
        t if t.is_numeric() => Kind::Number,
        T::Boolean => Kind::Boolean,
        T::Date32
        | T::Date64
        | T::Time32(_)
        | T::Time64(_)
        | T::Timestamp(..)
        | T::Interval(_)
        | T::Duration(_) => Kind::Time,
        T::Binary | T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => Kind::Bytes,
        _ => Kind::Other,
    };
    let (source, target) = (kind(from), kind(field.data_type()));
    if source == Kind::Other || target == Kind::Other || source == target {
        return Ok(());
    }
    let name =
        |t: Option<eddy_catalog::SqlType>| t.map_or_else(|| "unknown".into(), |t| t.to_string());
    Err(SqlError::DatatypeMismatch(format!(
        "column \"{}\" is of type {} but expression is of type {}",
        field.name(),
        name(eddy_catalog::SqlType::from_field(field)),
        name(eddy_catalog::SqlType::from_arrow(from)),
    )))
}
