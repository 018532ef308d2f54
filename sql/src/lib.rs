//! Eddy's SQL front end.
//!
//! Text goes in, typed statements and plans come out:
//! 1. [`parser`] splits and parses statements: Eddy's own (CREATE STREAM, SHOW STREAMS,
//!    FLUSH, ...) here, everything else through sqlparser's PostgreSQL dialect ([`dialect`]
//!    wraps it to read literals without a detour). [`values`] reads an INSERT of literal rows
//!    in one pass, without sqlparser.
//! 2. [`context`] makes a DataFusion session per statement whose tables are the Eddy
//!    relations the statement references, with rows (queries) or without (planning).
//! 3. [`streaming`] turns the optimized logical plan of a materialized view into an
//!    incremental dataflow, or refuses it naming what it cannot maintain.
//!    [`windows`] rewrites the window table functions TUMBLE and HOP into plain SQL first.
//!    [`subqueries`] turns one-row scalar subqueries into joins first.
//!    [`point`] answers reads by key (`SELECT .. FROM view WHERE k = $1`) without a plan.
//! 4. [`ddl`] turns column definitions into catalog columns; [`alter`] rewrites the stored
//!    definitions a rename touches; [`triggers`] reads a view's trigger interval.
//! 5. [`sources`] checks connector options and replays a replayable stream's history;
//!    [`sinks`] checks a sink's options against the relation it reads.
//! 6. [`compat`] serves `pg_catalog`, `information_schema` and the system functions clients
//!    and BI tools call, and keeps each connection's settings.
//! 7. [`system`] serves the `eddy_catalog` system tables (progress, epochs, sessions, late
//!    rows, dead letters) and the figures the metrics endpoint exports.
//!
//! Errors are [`SqlError`]s, one variant per kind of failure a client can tell apart.

pub mod alter;
pub mod compat;
pub mod context;
pub mod ddl;
pub mod dialect;
mod error;
pub mod interval_join;
pub mod literals;
pub mod names;
pub mod over;
pub mod parser;
pub mod point;
pub mod sinks;
pub mod sources;
pub mod streaming;
pub mod subqueries;
pub mod system;
pub mod table;
pub mod triggers;
pub mod values;
pub mod windows;

pub use error::{SqlError, SqlResult};
