//! `compat`: what a client or BI tool waits for before it shows anything — connection set-up
//! (startup, parameter status, ready), psql's `\d` listing (simple protocol, as psql sends
//! it), its `\d name` queries (extended protocol, as drivers send them), and the listing
//! right after a definition changed — on Eddy and on PostgreSQL with the same relations, in
//! the same run.

use std::time::Instant;

use anyhow::Result;
use tokio_postgres::NoTls;

use crate::{Peer, progress, quantile};

/// psql's `\d` (version 15): every relation with its kind and owner.
const LIST_RELATIONS: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','v','m','S','f','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

/// psql's `\d name` (version 15), its two main queries: the relation by name, then its
/// columns by oid (`{oid}` is replaced).
const FIND_RELATION: &str = r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(t_7)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#;

const COLUMNS: &str = r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '{oid}' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#;

/// Relations of each kind the listing shows.
const TABLES: usize = 20;

struct Figures {
    connect_us: Vec<f64>,
    list_us: Vec<f64>,
    describe_us: Vec<f64>,
    /// The listing right after a definition changed (nothing of an earlier answer applies).
    changed_us: Vec<f64>,
}

/// Times `reps` connections and `reps` of each catalog query against `conninfo`.
async fn measure(conninfo: &str, reps: usize) -> Result<Figures> {
    let mut connect_us = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
        connect_us.push(started.elapsed().as_secs_f64() * 1e6);
        drop(client);
        let _ = connection.await;
    }
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(connection);
    let mut list_us = Vec::with_capacity(reps);
    let mut describe_us = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let rows = client.simple_query(LIST_RELATIONS).await?;
        list_us.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(
            rows.len() > 2 * TABLES,
            "\\d listed {} messages",
            rows.len()
        );

        let started = Instant::now();
        let found = client.query(FIND_RELATION, &[]).await?;
        let oid: u32 = found
            .first()
            .map(|r| r.get::<_, u32>(0))
            .ok_or_else(|| anyhow::anyhow!("\\d t_7 found no relation"))?;
        let columns = client
            .query(&COLUMNS.replace("{oid}", &oid.to_string()), &[])
            .await?;
        describe_us.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(columns.len() == 3, "t_7 has {} columns", columns.len());
    }
    let mut changed_us = Vec::with_capacity(reps);
    for _ in 0..reps {
        client
            .batch_execute("CREATE TABLE bench_changed (id BIGINT PRIMARY KEY)")
            .await?;
        let started = Instant::now();
        client.simple_query(LIST_RELATIONS).await?;
        changed_us.push(started.elapsed().as_secs_f64() * 1e6);
        client.batch_execute("DROP TABLE bench_changed").await?;
    }
    for v in [
        &mut connect_us,
        &mut list_us,
        &mut describe_us,
        &mut changed_us,
    ] {
        v.sort_by(f64::total_cmp);
    }
    Ok(Figures {
        connect_us,
        list_us,
        describe_us,
        changed_us,
    })
}

/// The relations both sides list: tables, and a materialized view over each (the same
/// statement in both).
fn schema() -> String {
    (0..TABLES)
        .map(|i| {
            format!(
                "CREATE TABLE t_{i} (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(10,2)); \
                 CREATE MATERIALIZED VIEW v_{i} AS \
                 SELECT name, count(*) AS n FROM t_{i} GROUP BY name;"
            )
        })
        .collect()
}

pub async fn compat(reps: usize, peer: &Peer, peer_conninfo: &str) -> Result<()> {
    progress(&format!(
        "compat: {reps} connections and catalog listings over {TABLES} tables and {TABLES} views"
    ));
    let server = eddy_tests::TestServer::start().await?;
    server.client().await?.batch_execute(&schema()).await?;
    let eddy_conninfo = format!(
        "host=127.0.0.1 port={} user=bench dbname=eddy",
        server.port()
    );
    let eddy = measure(&eddy_conninfo, reps).await?;

    let mut pg = None;
    if let Some(pgc) = &peer.0 {
        progress("compat: postgres");
        pgc.batch_execute(
            "DROP SCHEMA IF EXISTS eddy_bench_compat CASCADE; CREATE SCHEMA eddy_bench_compat",
        )
        .await?;
        // The listing shows what is visible on the search path: the bench's schema only.
        pgc.batch_execute(&format!(
            "SET search_path = eddy_bench_compat; {}",
            schema()
        ))
        .await?;
        let conninfo = format!("{peer_conninfo} options='-c search_path=eddy_bench_compat'");
        pg = Some(measure(&conninfo, reps).await);
        pgc.batch_execute("DROP SCHEMA eddy_bench_compat CASCADE")
            .await?;
    }
    let pg = pg.transpose()?;

    println!("compat: medians (p99) over {reps} repetitions, {TABLES} tables + {TABLES} views");
    let line = |name: &str, ours: &[f64], theirs: Option<&Vec<f64>>| {
        let o = quantile(ours, 0.5);
        match theirs {
            Some(t) => {
                let p = quantile(t, 0.5);
                println!(
                    "  {name:<22} eddy {o:>8.0} µs (p99 {:>6.0})   postgres {p:>8.0} µs (p99 {:>6.0})   ratio {:.2}",
                    quantile(ours, 0.99),
                    quantile(t, 0.99),
                    o / p
                );
                println!(
                    "RESULT {{\"bench\":\"compat\",\"figure\":\"{name}\",\"eddy_us\":{o:.0},\"postgres_us\":{p:.0},\"ratio\":{:.3}}}",
                    o / p
                );
            }
            None => {
                println!(
                    "  {name:<22} eddy {o:>8.0} µs (p99 {:>6.0})",
                    quantile(ours, 0.99)
                );
                println!(
                    "RESULT {{\"bench\":\"compat\",\"figure\":\"{name}\",\"eddy_us\":{o:.0}}}"
                );
            }
        }
    };
    line(
        "connect",
        &eddy.connect_us,
        pg.as_ref().map(|p| &p.connect_us),
    );
    line(
        "\\d listing",
        &eddy.list_us,
        pg.as_ref().map(|p| &p.list_us),
    );
    line(
        "\\d name",
        &eddy.describe_us,
        pg.as_ref().map(|p| &p.describe_us),
    );
    line(
        "\\d after a change",
        &eddy.changed_us,
        pg.as_ref().map(|p| &p.changed_us),
    );
    Ok(())
}
