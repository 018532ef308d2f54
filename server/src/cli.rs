//! The `eddy` command: logging, configuration, and the server until SIGINT or SIGTERM.
//!
//! The first signal shuts down gracefully (see [`crate::server::run`]); a second one exits at
//! once. Either way the store stays consistent: an epoch is applied whole or not at all.

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing::warn;
use tracing_subscriber::EnvFilter;

use crate::config::{Args, Config};

/// Exit status when a second signal cuts the shutdown short.
const EXIT_AT_ONCE: i32 = 130;

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
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (first, shutdown) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut first = Some(first);
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
                match first.take() {
                    Some(first) => {
                        let _ = first.send(());
                    }
                    None => {
                        warn!("second signal: exiting at once");
                        std::process::exit(EXIT_AT_ONCE);
                    }
                }
            }
        });
        crate::server::run(config, async move {
            let _ = shutdown.await;
        })
        .await
    })
}
