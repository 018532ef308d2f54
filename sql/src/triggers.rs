//! Trigger intervals: how often a materialized view takes its sources' changes.
//!
//! `'asap'` (the default, Spark's default trigger) runs a view in every epoch that changes its
//! sources. An interval (`'5 seconds'`, `'500 ms'`, `'1 minute'`) runs it once per interval,
//! at wall-clock multiples of the interval, over everything that arrived since its last run,
//! as Spark's processing-time trigger does. A view takes `WITH (trigger = ...)` at CREATE;
//! the server's `trigger` setting applies to views that do not say.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlparser::ast::SqlOption;

use crate::sources::option_map;
use crate::{SqlError, SqlResult};

/// The options `CREATE MATERIALIZED VIEW name WITH (...)` knows.
const VIEW_OPTIONS: &[&str] = &["trigger"];

/// A trigger as written: `'asap'` or a positive duration. Zero stands for `'asap'`.
pub fn parse(value: &str) -> SqlResult<Duration> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("asap") {
        return Ok(Duration::ZERO);
    }
    eddy_connectors::parse_duration("trigger", value).map_err(|_| {
        SqlError::InvalidParameter(format!(
            "invalid value for option \"trigger\": \"{value}\" (expected 'asap' or a \
             duration such as '500 ms' or '5 seconds')"
        ))
    })
}

/// A view's `WITH (...)` options: its trigger in microseconds (0 for `'asap'`), None when
/// it names none. Unknown options are refused with the ones it knows.
pub fn view_options(options: &[SqlOption]) -> SqlResult<Option<u64>> {
    let map: BTreeMap<String, String> = option_map(options, "materialized view")?;
    if let Some(unknown) = map.keys().find(|k| !VIEW_OPTIONS.contains(&k.as_str())) {
        return Err(SqlError::InvalidParameter(format!(
            "unknown materialized view option \"{unknown}\" (known: {})",
            VIEW_OPTIONS.join(", ")
        )));
    }
    let Some(value) = map.get("trigger") else {
        return Ok(None);
    };
    let every = parse(value)?;
    if !every.is_zero() && every < Duration::from_millis(1) {
        return Err(SqlError::InvalidParameter(format!(
            "trigger '{value}' is shorter than a millisecond: use 'asap' to run the view in \
             every epoch"
        )));
    }
    Ok(Some(every.as_micros() as u64))
}

/// A trigger in the form [`parse`] reads back: `'asap'`, whole seconds, milliseconds, or
/// fractional seconds.
pub fn text(micros: u64) -> String {
    match micros {
        0 => "asap".into(),
        m if m % 1_000_000 == 0 => format!("{} seconds", m / 1_000_000),
        m if m % 1_000 == 0 => format!("{} ms", m / 1_000),
        m => format!("{} seconds", m as f64 / 1e6),
    }
}

/// The instant, at a wall-clock multiple of `every` since the Unix epoch, of the first tick
/// after `now` (microseconds since the epoch).
pub fn next_tick(now_micros: u64, every: Duration) -> u64 {
    let every = (every.as_micros() as u64).max(1);
    (now_micros / every + 1) * every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_back_as_written() {
        for (written, micros) in [
            ("asap", 0),
            ("5 seconds", 5_000_000),
            ("500 ms", 500_000),
            ("1 minute", 60_000_000),
            ("1.5 s", 1_500_000),
            ("0.0015 seconds", 1_500),
        ] {
            assert_eq!(
                parse(written).unwrap().as_micros() as u64,
                micros,
                "{written}"
            );
            assert_eq!(parse(&text(micros)).unwrap().as_micros() as u64, micros);
        }
        assert!(parse("soon").is_err());
    }

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let second = Duration::from_secs(1);
        assert_eq!(next_tick(0, second), 1_000_000);
        assert_eq!(next_tick(999_999, second), 1_000_000);
        assert_eq!(next_tick(1_000_000, second), 2_000_000);
        assert_eq!(next_tick(7_300_000, Duration::from_secs(5)), 10_000_000);
    }
}
