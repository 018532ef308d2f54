//! Start-up and the accept loop.

use std::sync::Arc;

use eddy_catalog::{Catalog, Relation, Snapshot};
use eddy_dataflow::Dataflow;
use eddy_sql::context::QueryEngine;
use eddy_sql::parser::{self, Statement};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::Store;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::auth::{AuthMethod, Roles};
use crate::config::Config;
use crate::engine::{Connectors, Driver, DriverOptions, Engine, ViewPlanner};
use crate::handle::{Shared, ddl};
use crate::pgwire::{AbortOnDrop, Handlers, Security};

/// Plans views for the driver on the async runtime.
struct Planner {
    query: QueryEngine,
    store: Arc<Store>,
    runtime: tokio::runtime::Handle,
}

impl ViewPlanner for Planner {
    fn plan(&self, view: &Relation, catalog: &Arc<Snapshot>) -> SqlResult<Dataflow> {
        let text = view.query.as_deref().unwrap_or_default();
        let query = match parser::parse(text)?.pop() {
            Some(Statement::Sql(s)) => match *s {
                sqlparser::ast::Statement::Query(q) => q,
                _ => {
                    return Err(SqlError::Internal(format!(
                        "view {} has no query",
                        view.name
                    )));
                }
            },
            _ => {
                return Err(SqlError::Internal(format!(
                    "view {} has no query",
                    view.name
                )));
            }
        };
        // Planned over its inputs as wide as they were when it was defined.
        let (_, flow, _) = self.runtime.block_on(ddl::plan_view(
            &self.query,
            &self.store,
            &catalog.as_seen_by(view),
            &view.name,
            &query,
            ddl::ViewKind {
                materialized: true,
                emit_on_window_close: view.emit_on_window_close,
                plan_version: view.plan_version,
            },
        ))?;
        flow.ok_or_else(|| SqlError::Internal("materialized view without dataflow".into()))
    }
}

/// Opens the store, recovers, and serves connections until `shutdown` resolves. Then shuts
/// down gracefully: stops accepting connections, lets running statements finish (for up to
/// the configured grace), commits every write already sent to the epoch driver, flushes the
/// store and returns.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Arc::new(Store::open(&config.data_dir)?);
    let catalog = Arc::new(Catalog::load(&store)?);
    let query = QueryEngine::new();
    // The first client to look at the catalog should not wait for its copies to load.
    std::thread::Builder::new()
        .name("catalog-warm".into())
        .spawn(eddy_sql::compat::warm)?;

    let planner = Planner {
        query: query.clone(),
        store: store.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let (tx, rx) = mpsc::channel(1024);
    let (committed, _) = tokio::sync::broadcast::channel(crate::engine::SUBSCRIBER_BACKLOG);
    let driver_committed = committed.clone();
    let driver_store = store.clone();
    let driver_catalog = catalog.clone();
    let options = DriverOptions {
        durable: config.sync_commit,
        late_rows_kept: config.late_rows_kept,
        metrics: query.metrics.clone(),
        trigger: config.trigger_interval()?,
    };
    let engine = Engine::new(tx, committed);
    let connectors = Connectors::new(
        tokio::runtime::Handle::current(),
        engine.clone(),
        store.clone(),
    );
    let driver = std::thread::Builder::new()
        .name("epoch-driver".into())
        .spawn(move || {
            match Driver::open(
                driver_store,
                driver_catalog,
                Box::new(planner),
                options,
                driver_committed,
                Some(connectors),
            ) {
                Ok(d) => {
                    d.run(rx);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })?;

    let roles = Arc::new(Roles::new(store.clone(), &config.users));
    let users = roles.names()?;
    if config.auth == AuthMethod::ScramSha256 && users.is_empty() {
        anyhow::bail!(
            "auth = \"scram-sha-256\" needs a user to log in as: set users (EDDY_USERS=name=password)"
        );
    }
    query.sessions.set_roles(users);
    let tls = match config.tls_files() {
        Some((cert, key)) => Some(crate::auth::tls_acceptor(cert, key)?),
        None => None,
    };
    let security = Security {
        passwords: (config.auth == AuthMethod::ScramSha256).then(|| roles.clone()),
        tls_required: config.tls_required,
    };
    let shared = Arc::new(Shared {
        engine,
        catalog,
        store: store.clone(),
        query,
        roles,
        shutting_down: Default::default(),
    });
    // Recovery must finish before the first client is served.
    shared
        .engine
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!("recovery failed: {e}"))?;

    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let endpoint = crate::http::Endpoint::new(shared.clone());
    let http = match &config.http_listen {
        Some(address) => {
            let http = TcpListener::bind(address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {address} (http_listen): {e}"))?;
            info!(address = %http.local_addr()?, "serving /metrics and /healthz");
            Some(AbortOnDrop(tokio::spawn(crate::http::serve(
                http,
                endpoint.clone(),
            ))))
        }
        None => None,
    };
    info!(
        address = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        auth = ?config.auth,
        tls = tls.is_some(),
        "listening"
    );
    let handlers = Arc::new(Handlers::new(shared.clone(), security));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((socket, _)) => {
                        let _ = socket.set_nodelay(true);
                        let handlers = handlers.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                                warn!(error = %e, "connection closed with an error");
                            }
                        });
                    }
                    Err(e) => warn!(error = %e, "accept failed"),
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    endpoint.stopping();
    shared
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    info!("shutting down: no new connections");
    let grace = config.shutdown_grace();
    let deadline = tokio::time::Instant::now() + grace;
    while running_statements(&shared) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let cut = running_statements(&shared);
    if cut > 0 {
        warn!(
            statements = cut,
            ?grace,
            "statements still running are cut short"
        );
    }
    // The driver commits everything sent before it stops; later writes fail as shutting down.
    shared.engine.shutdown().await;
    drop(handlers);
    drop(http);
    let store = shared.store.clone();
    drop(shared);
    match tokio::task::spawn_blocking(move || driver.join()).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "the epoch driver did not start"),
        Ok(Err(_)) | Err(_) => warn!("the epoch driver failed"),
    }
    store.flush()?;
    info!("stopped");
    Ok(())
}

/// Statements of clients that are running now.
fn running_statements(shared: &Shared) -> usize {
    shared
        .query
        .sessions
        .list()
        .iter()
        .filter(|s| s.activity().state == "active")
        .count()
}
