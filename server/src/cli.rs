//! The `eddy` command: logging, configuration and the server until SIGINT or SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Args, Config};

/// Runs the `eddy` command with the process' arguments and environment.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(Args::parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        crate::server::run(config, shutdown).await
    })
}
