//! Eddy's server: the Postgres wire front end, the epoch driver, and the `eddy` binary.
//!
//! - [`cli`]: the `eddy` command (logging, configuration, signals).
//! - [`config`]: settings from `config.toml`, `EDDY_*` variables and flags.
//! - [`engine`]: the epoch driver, the single writer that turns writes into committed epochs
//!   and keeps every materialized view up to date.
//! - [`handle`]: one module per statement family, from parsed statement to [`handle::Outcome`].
//! - [`http`]: the operations endpoint (`/metrics` for Prometheus, `/healthz`).
//! - [`pgwire`]: the protocol layer (the only module that imports `pgwire`), with the Arrow to
//!   Postgres type mapping and the SQLSTATE mapping.
//! - [`server`]: start-up (recovery) and the accept loop.

/// mimalloc: the epoch driver allocates and frees many small buffers per epoch, which the
/// system allocator serves poorly off the main thread (its per-thread arenas grow by mprotect).
/// Built without its transparent-huge-page advice (`no_thp`): memory it returns and takes
/// back each epoch was otherwise faulted in and zeroed 2 MiB at a time, up to a third of
/// the epoch driver's time on aggregations (BENCHMARKS.md, 2026-12-06).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod handle;
pub mod http;
pub mod pgwire;
pub mod server;
