//! The Nexmark queries as Eddy runs them (`bench/nexmark/*.sql`), shared by the benchmark
//! harness and the test that checks each view against its batch query.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// The statements that create the three streams; `:options` stands for the generator's.
pub const SOURCES: &str = include_str!("../../bench/nexmark/sources.sql");

/// Each query's name and SQL (a SELECT, maintained as a materialized view).
pub const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../../bench/nexmark/q0.sql")),
    ("q1", include_str!("../../bench/nexmark/q1.sql")),
    ("q2", include_str!("../../bench/nexmark/q2.sql")),
    ("q3", include_str!("../../bench/nexmark/q3.sql")),
    ("q4", include_str!("../../bench/nexmark/q4.sql")),
    ("q5", include_str!("../../bench/nexmark/q5.sql")),
    ("q7", include_str!("../../bench/nexmark/q7.sql")),
    ("q8", include_str!("../../bench/nexmark/q8.sql")),
    ("q9", include_str!("../../bench/nexmark/q9.sql")),
    ("q11", include_str!("../../bench/nexmark/q11.sql")),
    ("q14", include_str!("../../bench/nexmark/q14.sql")),
    ("q15", include_str!("../../bench/nexmark/q15.sql")),
    ("q16", include_str!("../../bench/nexmark/q16.sql")),
    ("q17", include_str!("../../bench/nexmark/q17.sql")),
    ("q18", include_str!("../../bench/nexmark/q18.sql")),
    ("q19", include_str!("../../bench/nexmark/q19.sql")),
    ("q20", include_str!("../../bench/nexmark/q20.sql")),
    ("q21", include_str!("../../bench/nexmark/q21.sql")),
    ("q22", include_str!("../../bench/nexmark/q22.sql")),
    ("tumble", include_str!("../../bench/nexmark/tumble.sql")),
];

/// The SQL of a query by name.
pub fn query(name: &str) -> Option<&'static str> {
    QUERIES.iter().find(|(n, _)| *n == name).map(|(_, q)| *q)
}

/// The query's SELECT without its leading comment lines.
pub fn select(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Creates the three streams with these generator options (`key = 'value', ...`).
pub async fn create_sources(client: &Client, options: &str) -> Result<()> {
    client
        .batch_execute(&SOURCES.replace(":options", options))
        .await
        .context("creating the Nexmark streams")
}

/// How far the Nexmark streams have read (the next event number), as committed.
pub async fn offset(client: &Client) -> Result<i64> {
    crate::source_offset(client, "bid").await
}
