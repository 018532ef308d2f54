//! `eddy-bench nexmark`: each Nexmark query as a materialized view in a fresh server fed by
//! the built-in Nexmark source, timed from the view's creation until it has taken every event.
//!
//! The streams are created first; they produce nothing until a view reads them, so the clock
//! starts with the CREATE MATERIALIZED VIEW and stops when the committed offset reaches the
//! last event (the offset commits with the view's changes, so the view is then complete).
//! CPU time and peak RSS are the server process's, from `/proc`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eddy_tests::{TestServer, compare_rows, nexmark, sorted_rows};

use crate::progress;

/// What one run measured.
pub struct Run {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

/// Runs the named queries (`all`: every query) over `events` events each.
pub async fn nexmark(queries: &[String], events: u64, per_epoch: u64, check: bool) -> Result<()> {
    let names: Vec<&str> = if queries.iter().any(|q| q == "all") {
        nexmark::QUERIES.iter().map(|(n, _)| *n).collect()
    } else {
        queries.iter().map(String::as_str).collect()
    };
    for name in names {
        let sql = nexmark::query(name).with_context(|| format!("no Nexmark query {name}"))?;
        let run = run(name, sql, events, per_epoch, check).await?;
        let rate = events as f64 / run.seconds;
        let per_cpu = events as f64 / run.cpu_seconds;
        println!(
            "nexmark {name} events={events} seconds={:.3} events_per_sec={rate:.0} \
             cpu_seconds={:.3} events_per_cpu_sec={per_cpu:.0} peak_rss_mb={:.1}",
            run.seconds, run.cpu_seconds, run.peak_rss_mb
        );
        crate::report(
            "nexmark",
            serde_json::json!({
                "query": name, "events": events, "seconds": run.seconds,
                "events_per_sec": rate, "cpu_seconds": run.cpu_seconds,
                "events_per_cpu_sec": per_cpu, "peak_rss_mb": run.peak_rss_mb,
            }),
        );
    }
    Ok(())
}

async fn run(name: &str, sql: &str, events: u64, per_epoch: u64, check: bool) -> Result<Run> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    nexmark::create_sources(
        &client,
        &format!("events = '{events}', max_events_per_epoch = '{per_epoch}'"),
    )
    .await?;
    let pid = server.pid().context("the server is not running")?;
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE MATERIALIZED VIEW nexmark_{name} AS {}",
            nexmark::select(sql)
        ))
        .await
        .with_context(|| format!("creating the view of {name}"))?;
    let mut last_report = Instant::now();
    loop {
        let offset = nexmark::offset(&client).await?;
        if offset as u64 >= events {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(&format!(
                "{name}: {offset} of {events} events ({:.0}%)",
                offset as f64 * 100.0 / events as f64
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds(pid)? - cpu_before;
    let peak_rss_mb = peak_rss_mb(pid)?;
    if check {
        let view = sorted_rows(&client, &format!("SELECT * FROM nexmark_{name}")).await?;
        let batch = sorted_rows(&client, &nexmark::select(sql)).await?;
        if let Err(e) = compare_rows(&view, &batch) {
            bail!("{name}: the view differs from its batch query: {e}");
        }
        progress(&format!(
            "{name}: the view equals its batch query ({} rows)",
            view.len()
        ));
    }
    Ok(Run {
        seconds,
        cpu_seconds,
        peak_rss_mb,
    })
}

/// User plus system CPU time of a process so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports CPU times in USER_HZ, 100 on every architecture it runs on today.
    100.0
}

/// The largest resident set the process has had, in MiB.
fn peak_rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no VmHWM in /proc status")?
        .parse::<f64>()?;
    Ok(kb / 1024.0)
}
