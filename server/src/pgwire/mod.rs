//! The Postgres wire protocol front end: the only module that speaks pgwire. It translates
//! protocol messages into statement executions ([`crate::handle`]) and their outcomes back
//! into protocol messages.

pub mod encode;
pub mod error;
mod params;

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use futures::{Sink, SinkExt, stream};
use parking_lot::Mutex;
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::RowDescription;
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use eddy_sql::parser::{self, Statement};
use eddy_sql::{SqlError, SqlResult};

use crate::handle::copy::CopyTarget;
use crate::handle::subscribe::Subscription;
use crate::handle::{self, Outcome, Shared};
use error::to_pg;

/// The handlers of every connection.
pub struct Handlers {
    shared: Arc<Shared>,
    parser: Arc<Parser>,
    /// Every connection by its process id and secret key, for cancel requests.
    connections: Arc<ConnectionManager>,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>) -> Self {
        let parser = Arc::new(Parser {
            shared: shared.clone(),
        });
        Self {
            shared,
            parser,
            connections: Arc::new(ConnectionManager::new()),
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
        Arc::new(Trust(NoAuthentication(self.connections.clone())))
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

/// Trust authentication: any user, no password, on the database `eddy` or its alias
/// `postgres` (a client that names no database gets `eddy`).
struct Trust(NoAuthentication);

/// The protocol side of start-up, once the database is known to exist. Registering the
/// connection gives the client a key with which to cancel its running statement.
struct NoAuthentication(Arc<ConnectionManager>);

impl NoopStartupHandler for NoAuthentication {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
    }
}

#[async_trait]
impl StartupHandler for Trust {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message
            && let Some(database) = startup.parameters.get("database")
            && !DATABASES.contains(&database.as_str())
        {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "3D000".into(),
                format!("database \"{database}\" does not exist"),
            ))));
        }
        self.0.on_startup(client, message).await
    }
}

/// The databases a client may connect to: Eddy's one database and its alias.
const DATABASES: [&str; 2] = [eddy_sql::context::DATABASE, "postgres"];

/// A prepared statement: the parsed statement with its parameter and result types.
#[derive(Clone)]
pub struct Prepared {
    statement: Option<Statement>,
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
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = parser::parse(sql).map_err(|e| to_pg(&e))?;
        if stmts.len() > 1 {
            return Err(to_pg(&SqlError::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let Some(statement) = stmts.pop() else {
            return Ok(None);
        };
        let (params, schema) = handle::describe(&self.shared, &statement)
            .await
            .map_err(|e| to_pg(&e))?;
        Ok(Some(Prepared {
            statement: Some(statement),
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

/// The per-connection COPY in progress.
#[derive(Default)]
struct CopyState {
    inner: Mutex<Option<(CopyTarget, Vec<u8>)>>,
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
                *state.inner.lock() = Some((target, Vec::new()));
                Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
            }
            Outcome::Notice(message, inner) => {
                notice(client, &message).await?;
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
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmts = parser::parse(query).map_err(|e| to_pg(&e))?;
        let mut responses = Vec::with_capacity(stmts.len());
        for stmt in &stmts {
            match handle::execute(&self.shared, stmt, &[]).await {
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
        let outcome = handle::execute(&self.shared, stmt, &values)
            .await
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
        if let Some((_, buf)) = state.inner.lock().as_mut() {
            buf.extend_from_slice(&data.data);
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
        let Some((target, data)) = taken else {
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
