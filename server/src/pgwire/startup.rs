//! Connection start-up: the database a client names, TLS when the server demands it, then
//! trust or a SCRAM-SHA-256 password exchange (see [`crate::auth`]). Start-up registers the
//! connection (its key cancels its running statement), makes its session from the startup
//! parameters, and reports the session's settings as Postgres does.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{self, AuthSource, ServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use eddy_sql::compat::ClientSession;

use super::registered;
use crate::auth::Roles;
use crate::handle::Shared;

/// The databases a client may connect to: Eddy's one database and its alias.
const DATABASES: [&str; 2] = [eddy_sql::context::DATABASE, "postgres"];

/// Who may connect, and how.
#[derive(Clone, Default)]
pub struct Security {
    /// The users a SCRAM-SHA-256 exchange checks passwords against; None: trust.
    pub passwords: Option<Arc<Roles>>,
    /// Refuse connections without TLS.
    pub tls_required: bool,
}

/// One connection's start-up.
pub struct Startup {
    shared: Arc<Shared>,
    connections: Arc<ConnectionManager>,
    tls_required: bool,
    /// The password exchange, when passwords are asked for.
    scram: Option<SASLAuthStartupHandler<Registering>>,
}

impl Startup {
    pub fn new(
        shared: Arc<Shared>,
        connections: Arc<ConnectionManager>,
        security: &Security,
    ) -> Self {
        let scram = security.passwords.clone().map(|roles| {
            let source: Arc<dyn AuthSource> = roles;
            SASLAuthStartupHandler::new(Arc::new(Registering(shared.clone())))
                .with_scram(ScramAuth::new(source))
                .with_connection_manager(connections.clone())
        });
        Self {
            shared,
            connections,
            tls_required: security.tls_required,
            scram,
        }
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

/// Where pgwire's default pid and key generator comes from.
struct Keys;

impl NoopStartupHandler for Keys {}

#[async_trait]
impl StartupHandler for Startup {
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
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if let Some(database) = startup.parameters.get("database")
                && !DATABASES.contains(&database.as_str())
            {
                return Err(fatal(
                    "3D000",
                    format!("database \"{database}\" does not exist"),
                ));
            }
            if self.tls_required && !client.is_secure() {
                return Err(fatal(
                    "28000",
                    "the server accepts only TLS connections (connect with sslmode=require)".into(),
                ));
            }
        }
        if let Some(scram) = &self.scram {
            return match scram.on_startup(client, message).await {
                // Named after the user the client connects as, as Postgres names it.
                Err(PgWireError::InvalidPassword(_)) => {
                    let user = client.metadata().get(METADATA_USER).cloned();
                    Err(fatal(
                        "28P01",
                        format!(
                            "password authentication failed for user \"{}\"",
                            user.unwrap_or_default()
                        ),
                    ))
                }
                other => other,
            };
        }
        // Trust: any user, no password.
        let PgWireFrontendMessage::Startup(startup) = &message else {
            return Ok(());
        };
        auth::protocol_negotiation(client, startup).await?;
        auth::save_startup_parameters_to_metadata(client, startup);
        let (pid, secret) = Keys.pid_secret_key_generator().generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.connections.register(pid, secret);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        let session = registered(&self.shared, client);
        auth::finish_authentication(client, &Reported(session)).await
    }
}

/// The parameters a server reports at start-up, from the new session's settings.
struct Reported(Arc<ClientSession>);

impl ServerParameterProvider for Reported {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        let mut reported: HashMap<String, String> = self.0.reported().into_iter().collect();
        reported.insert("session_authorization".into(), self.0.user.clone());
        reported.insert("in_hot_standby".into(), "off".into());
        Some(reported)
    }
}

/// After a password exchange succeeds: makes the session, then reports its settings.
struct Registering(Arc<Shared>);

impl ServerParameterProvider for Registering {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        Reported(registered(&self.0, client)).server_parameters(client)
    }
}
