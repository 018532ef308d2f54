//! The Postgres wire protocol front end: the only module that speaks pgwire. It translates
//! protocol messages into statement executions ([`crate::handle`]) and their outcomes back
//! into protocol messages.

mod arrays;
pub mod encode;
pub mod error;
mod params;
mod prepared;
mod startup;

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use futures::{Sink, SinkExt, stream};
use parking_lot::Mutex;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::RowDescription;
use pgwire::messages::extendedquery::{Parse, ParseComplete};
use pgwire::messages::response::{NoticeResponse, TransactionStatus};
use pgwire::messages::startup::{ParameterStatus, SecretKey};

use eddy_sql::compat::ClientSession;
use eddy_sql::parser::{self, Statement};
use eddy_sql::{SqlError, SqlResult};

use crate::handle::copy::{CopyFormat, Incoming};
use crate::handle::subscribe::Subscription;
use crate::handle::{self, Outcome, Shared};
use error::to_pg;
use prepared::{deallocate, remember_prepared};
pub use startup::Security;
use startup::Startup;

/// The handlers of every connection.
pub struct Handlers {
    shared: Arc<Shared>,
    parser: Arc<Parser>,
    /// Every connection by its process id and secret key, for cancel requests.
    connections: Arc<ConnectionManager>,
    security: Security,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>, security: Security) -> Self {
        let parser = Arc::new(Parser {
            shared: shared.clone(),
        });
        let connections = Arc::new(ConnectionManager::new());
        // pg_cancel_backend(pid) cancels like a cancel request with that session's key.
        let manager = connections.clone();
        shared.query.sessions.set_canceller(move |pid, key| {
            let manager = manager.clone();
            let key = SecretKey::Bytes(bytes::Bytes::copy_from_slice(key));
            tokio::spawn(async move { manager.cancel(pid, &key).await });
        });
        Self {
            shared,
            parser,
            connections,
            security,
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Connection {
            shared: self.shared.clone(),
            parser: self.parser.clone(),
        })
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Connection {
            shared: self.shared.clone(),
            parser: self.parser.clone(),
        })
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        // Per connection: a password exchange keeps its state in the handler.
        Arc::new(Startup::new(
            self.shared.clone(),
            self.connections.clone(),
            &self.security,
        ))
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.connections.clone()))
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(Connection {
            shared: self.shared.clone(),
            parser: self.parser.clone(),
        })
    }
}

/// A prepared statement: the parsed statement with its parameter and result types.
#[derive(Clone)]
pub struct Prepared {
    /// The statement's text, for `pg_stat_activity`.
    text: String,
    statement: Option<Arc<Statement>>,
    params: Vec<Option<DataType>>,
    schema: Option<SchemaRef>,
}

pub struct Parser {
    shared: Arc<Shared>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = parser::parse(sql).map_err(|e| error::to_pg_in(&e, sql))?;
        if stmts.len() > 1 {
            return Err(to_pg(&SqlError::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let Some(statement) = stmts.pop() else {
            return Ok(None);
        };
        let session = client_session(client);
        let (mut params, schema) = handle::describe(&self.shared, &session, &statement)
            .await
            .map_err(|e| to_pg(&e))?;
        for i in params::array_operands(&statement) {
            if let Some(slot) = params.get_mut(i) {
                let element = match slot.take() {
                    Some(DataType::List(item)) => item.data_type().clone(),
                    Some(scalar) => scalar,
                    None => DataType::Utf8,
                };
                *slot = Some(DataType::new_list(element, true));
            }
        }
        Ok(Some(Prepared {
            text: sql.to_string(),
            statement: Some(Arc::new(statement)),
            params,
            schema,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.iter().map(params::pg_type_of).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.schema {
            Some(s) => encode::fields(s, format.unwrap_or(&Format::UnifiedText)),
            None => vec![],
        })
    }
}

/// The startup parameters that are settings (`psql` sends `application_name`, JDBC
/// `TimeZone` and `DateStyle`, ...).
const STARTUP_SETTINGS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "search_path",
    "statement_timeout",
    "IntervalStyle",
    "lc_messages",
];

/// The connection's session, made on its first statement from its startup parameters and
/// registered for `pg_stat_activity`.
fn client_session<C: ClientInfo>(client: &C) -> Arc<ClientSession> {
    client.session_extensions().get_or_insert_with(|| {
        let metadata = client.metadata();
        let (pid, secret) = client.pid_and_secret_key();
        let session = ClientSession::new(
            pid,
            metadata
                .get(pgwire::api::METADATA_USER)
                .map_or("eddy", String::as_str),
            metadata
                .get(pgwire::api::METADATA_DATABASE)
                .map_or(eddy_sql::context::DATABASE, String::as_str),
            Some(client.socket_addr()),
        )
        .with_cancel_key(secret.to_bytes().to_vec());
        for name in STARTUP_SETTINGS {
            if let Some(value) = metadata.get(*name)
                && let Err(e) = session.set(name, value)
            {
                tracing::debug!(pid, "startup parameter {name} = {value} not taken: {e}");
            }
        }
        session
    })
}

/// Makes a connection's session at start-up and registers it for `pg_stat_activity`.
pub(crate) fn registered<C: ClientInfo>(shared: &Shared, client: &C) -> Arc<ClientSession> {
    let session = client_session(client);
    shared.query.sessions.register(&session);
    session
}

/// What a statement may do given the state of the client's transaction: inside a failed
/// transaction block only its end (COMMIT rolls back) or a ROLLBACK TO a savepoint (which
/// makes the block usable again) is accepted, as in Postgres.
fn in_failed_transaction<C: ClientInfo>(
    client: &mut C,
    stmt: &Statement,
) -> Option<SqlResult<Outcome>> {
    use sqlparser::ast::Statement as Sql;
    if client.transaction_status() != TransactionStatus::Error {
        return None;
    }
    Some(match stmt {
        Statement::Sql(s) => match **s {
            Sql::Rollback {
                savepoint: Some(_), ..
            } => {
                client.set_transaction_status(TransactionStatus::Transaction);
                Ok(Outcome::done("ROLLBACK"))
            }
            Sql::Commit { .. } | Sql::Rollback { .. } => {
                Ok(Outcome::TransactionEnd("ROLLBACK".into()))
            }
            _ => Err(SqlError::InFailedTransaction),
        },
        _ => Err(SqlError::InFailedTransaction),
    })
}

/// Aborts a spawned task when dropped: a statement whose connection stops waiting for it (a
/// cancel request, a timeout, the client leaving), the HTTP endpoint at shutdown.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a statement for a client: transaction state, activity and the statement timeout.
/// The statement runs as a task of its own, so that a timeout or a cancel request answers
/// the client at once even while the statement is busy computing, and the NOTICE messages
/// it sends on the way (a backfill's progress) reach the client as they come.
async fn run<C>(
    shared: &Arc<Shared>,
    client: &mut C,
    text: &str,
    stmt: &Arc<Statement>,
    params: &[datafusion::common::ScalarValue],
) -> SqlResult<Outcome>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let session = client_session(client);
    if let Some(outcome) = in_failed_transaction(client, stmt) {
        if let Ok(Outcome::TransactionEnd(_)) = &outcome {
            session.end_transaction();
            session.end_statement(false);
        }
        return outcome;
    }
    if shared
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(SqlError::ShuttingDown);
    }
    session.begin_statement(text);
    let mut notices = session.listen_notices();
    let task = {
        let (shared, session) = (shared.clone(), session.clone());
        let (stmt, params) = (stmt.clone(), params.to_vec());
        tokio::spawn(async move { handle::execute(&shared, &session, &stmt, &params).await })
    };
    let mut task = AbortOnDrop(task);
    let finishing = async {
        loop {
            tokio::select! {
                done = &mut task.0 => break done,
                Some(message) = notices.recv() => {
                    // A client gone away shows when the statement's answer is sent.
                    let _ = notice(client, &message).await;
                }
            }
        }
    };
    let finished = match session.statement_timeout() {
        Some(limit) => tokio::time::timeout(limit, finishing)
            .await
            .map_err(|_| SqlError::StatementTimeout),
        None => Ok(finishing.await),
    };
    while let Ok(message) = notices.try_recv() {
        let _ = notice(client, &message).await;
    }
    let result = match finished {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(SqlError::Internal(format!("statement failed: {join}"))),
        Err(timeout) => Err(timeout),
    };
    let in_transaction = match &result {
        Ok(Outcome::TransactionStart(_)) => true,
        Ok(Outcome::TransactionEnd(_)) => false,
        _ => client.transaction_status() != TransactionStatus::Idle,
    };
    session.end_statement(in_transaction);
    result
}

/// The per-connection COPY in progress.
#[derive(Default)]
struct CopyState {
    inner: Mutex<Option<Incoming>>,
}

struct Connection {
    shared: Arc<Shared>,
    parser: Arc<Parser>,
}

async fn notice<C>(client: &mut C, message: &str) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let info = ErrorInfo::new("NOTICE".into(), "00000".into(), message.into());
    client
        .send(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await?;
    Ok(())
}

impl Connection {
    /// Pushes a subscription's rows until the client cancels (pgwire then drops this future),
    /// the client goes away (a send fails) or the subscription fails. Rows of one epoch are
    /// flushed together. `describe`: send the row description first (simple protocol).
    async fn stream<C>(
        &self,
        client: &mut C,
        mut subscription: Subscription,
        format: &Format,
        describe: bool,
    ) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let text = subscription.copy;
        let fields = Arc::new(encode::fields(
            &subscription.schema,
            if text { &Format::UnifiedText } else { format },
        ));
        if text {
            let columns = fields.len() as i16;
            client
                .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                    0,
                    columns,
                    vec![0; columns as usize],
                )))
                .await?;
        } else if describe {
            let description = RowDescription::new(fields.iter().map(Into::into).collect());
            client
                .send(PgWireBackendMessage::RowDescription(description))
                .await?;
        }
        loop {
            let batch = subscription.next().await.map_err(|e| to_pg(&e))?;
            for row in encode::rows(&fields, &[batch])? {
                let message = if text {
                    PgWireBackendMessage::CopyData(CopyData::new(encode::copy_text_line(&row)))
                } else {
                    PgWireBackendMessage::DataRow(row)
                };
                client.feed(message).await?;
            }
            client.flush().await?;
        }
    }

    async fn respond<C>(
        &self,
        client: &mut C,
        outcome: Outcome,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(match outcome {
            Outcome::Rows {
                schema,
                batches,
                tag,
            } => {
                let fields = Arc::new(encode::fields(&schema, format));
                let rows = encode::rows(&fields, &batches)?;
                let mut resp = QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)));
                resp.set_command_tag(tag);
                Response::Query(resp)
            }
            Outcome::Done { tag, rows } => Response::Execution(match (tag.as_str(), rows) {
                ("INSERT 0", Some(n)) => Tag::new("INSERT").with_oid(0).with_rows(n as usize),
                (t, Some(n)) => Tag::new(t).with_rows(n as usize),
                (t, None) => Tag::new(t),
            }),
            Outcome::TransactionStart(t) => Response::TransactionStart(Tag::new(&t)),
            Outcome::TransactionEnd(t) => Response::TransactionEnd(Tag::new(&t)),
            Outcome::CopyIn(target) => {
                let columns = target.relation.columns.len();
                let state = client
                    .session_extensions()
                    .get_or_insert_with(CopyState::default);
                *state.inner.lock() = Some(Incoming::new(target));
                Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
            }
            Outcome::Notice(message, inner) => {
                notice(client, &message).await?;
                Box::pin(self.respond(client, *inner, format)).await?
            }
            Outcome::CopyOut {
                schema,
                batches,
                options,
            } => {
                let layout = encode::CopyLayout {
                    csv: options.format == CopyFormat::Csv,
                    delimiter: options.delimiter,
                    null: options.null,
                };
                let fields = Arc::new(encode::fields(&schema, &Format::UnifiedText));
                let mut lines: Vec<bytes::Bytes> = encode::rows(&fields, &batches)?
                    .iter()
                    .map(|row| encode::copy_line(row, &layout))
                    .collect();
                if options.header {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    // With the first row, so that the header is not counted as one.
                    let mut first = layout.header(&names);
                    if let Some(row) = lines.first() {
                        first.extend_from_slice(row);
                        lines[0] = first.into();
                    } else {
                        lines.push(first.into());
                    }
                }
                let columns = schema.fields().len();
                let data = lines.into_iter().map(|l| Ok(CopyData::new(l)));
                Response::CopyOut(CopyResponse::new(0, columns, stream::iter(data)))
            }
            Outcome::Reported(changes, inner) => {
                for (name, value) in changes {
                    client
                        .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name, value,
                        )))
                        .await?;
                }
                Box::pin(self.respond(client, *inner, format)).await?
            }
            // Extended protocol: the row description went out with Describe.
            Outcome::Subscribe(subscription) => {
                self.stream(client, *subscription, format, false).await?;
                Response::EmptyQuery
            }
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmts = parser::parse(query).map_err(|e| error::to_pg_in(&e, query))?;
        let mut responses = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            let outcome = match deallocate(client, &stmt) {
                Some(done) => done,
                None => run(&self.shared, client, query, &Arc::new(stmt), &[]).await,
            };
            match outcome {
                Ok(Outcome::Subscribe(subscription)) => {
                    let end = self
                        .stream(client, *subscription, &Format::UnifiedText, true)
                        .await;
                    match end {
                        Err(PgWireError::UserError(info)) => responses.push(Response::Error(info)),
                        Err(e) => return Err(e),
                        Ok(()) => {}
                    }
                    break;
                }
                Ok(outcome) => {
                    let copy = matches!(outcome, Outcome::CopyIn(_));
                    responses.push(self.respond(client, outcome, &Format::UnifiedText).await?);
                    if copy {
                        break;
                    }
                }
                Err(e) => {
                    let PgWireError::UserError(info) = to_pg(&e) else {
                        unreachable!()
                    };
                    responses.push(Response::Error(info));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// pgwire's own handling of Parse, noting the statement's name for `DEALLOCATE ALL`.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_string();
        remember_prepared(client, &name);
        let parser = self.query_parser();
        match StoredStatement::parse(client, &message, parser).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let Some(stmt) = &prepared.statement else {
            return Ok(Response::EmptyQuery);
        };
        let types: Vec<Type> = (0..portal.parameter_len())
            .map(|i| {
                portal
                    .statement
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| params::pg_type_of(prepared.params.get(i).unwrap_or(&None)))
            })
            .collect();
        let values = params::decode(portal, &types, &prepared.params).map_err(|e| to_pg(&e))?;
        let outcome = match deallocate(client, stmt) {
            Some(done) => done,
            None => run(&self.shared, client, &prepared.text, stmt, &values).await,
        }
        .map_err(|e| to_pg(&e))?;
        self.respond(client, outcome, &portal.result_column_format)
            .await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let types = (0..stmt.params.len().max(target.parameter_types.len()))
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| params::pg_type_of(stmt.params.get(i).unwrap_or(&None)))
            })
            .collect();
        let fields = self.parser.get_result_schema(stmt, None)?;
        Ok(DescribeStatementResponse::new(types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.parser.get_result_schema(
            &portal.statement.statement,
            Some(&portal.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = client
            .session_extensions()
            .get_or_insert_with(CopyState::default);
        let progress = state
            .inner
            .lock()
            .as_mut()
            .and_then(|copy| copy.receive(&data.data));
        if let Some(message) = progress {
            notice(client, &message).await?;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = client
            .session_extensions()
            .get_or_insert_with(CopyState::default);
        let taken = state.inner.lock().take();
        let Some(Incoming { target, data, .. }) = taken else {
            return Err(to_pg(&SqlError::Internal("no COPY in progress".into())));
        };
        let written = handle::copy::finish(&self.shared, &target, &data)
            .await
            .map_err(|e| to_pg(&e))?;
        if let Some(message) = written.late_notice(&target.relation.name) {
            notice(client, &message).await?;
        }
        let tag = Tag::new("COPY").with_rows(written.rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = client
            .session_extensions()
            .get_or_insert_with(CopyState::default);
        state.inner.lock().take();
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}

/// Errors from executing a statement, as a result for callers that need a `SqlResult`.
pub fn sql_result<T>(r: SqlResult<T>) -> PgWireResult<T> {
    r.map_err(|e| to_pg(&e))
}
