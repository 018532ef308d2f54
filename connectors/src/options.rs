//! A connector's `WITH (...)` options: checked against the ones it knows, read by type.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{ConnectorError, ConnectorResult};

/// The options of one connector (keys in lower case, values as written).
pub struct Options<'a> {
    map: &'a BTreeMap<String, String>,
}

impl<'a> Options<'a> {
    /// Refuses an option the connector does not know, naming those it does.
    pub fn new(
        connector: &'static str,
        known: &[&str],
        map: &'a BTreeMap<String, String>,
    ) -> ConnectorResult<Self> {
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConnectorError::UnknownOption {
                connector,
                option: key.clone(),
                known: known
                    .iter()
                    .filter(|k| **k != "connector")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Self { map })
    }

    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &str) -> ConnectorResult<&'a str> {
        self.get(key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ConnectorError::Invalid(format!("option \"{key}\" is required")))
    }

    /// A list of column names (`'a, b'`), lower case.
    pub fn key_columns(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|k| {
            k.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect()
        })
    }

    /// A positive integer option, or `default` when it is not given.
    pub fn positive(&self, key: &str, default: u64) -> ConnectorResult<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConnectorError::invalid(key, v, "a positive integer")),
        }
    }
}

/// A duration written as a number and a unit: `'500 ms'`, `'10s'`, `'2 minutes'`.
pub fn parse_duration(key: &str, value: &str) -> ConnectorResult<Duration> {
    let bad = || ConnectorError::invalid(key, value, "a duration such as '500 ms' or '10 seconds'");
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => number / 1000.0,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => number,
        "m" | "min" | "mins" | "minute" | "minutes" => number * 60.0,
        "h" | "hour" | "hours" => number * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// A timestamp written `'YYYY-MM-DD HH:MM:SS'`, with or without a fraction of a second, as
/// microseconds since the Unix epoch (UTC).
pub fn parse_timestamp(key: &str, value: &str) -> ConnectorResult<i64> {
    chrono::NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_micros())
        .map_err(|_| ConnectorError::invalid(key, value, "a timestamp 'YYYY-MM-DD HH:MM:SS'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("k", "500 ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("k", "10s").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_duration("k", "2 minutes").unwrap(),
            Duration::from_secs(120)
        );
        assert!(parse_duration("k", "soon").is_err());
        assert!(parse_duration("k", "5 parsecs").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("k", "1970-01-01 00:00:01").unwrap(),
            1_000_000
        );
        assert_eq!(
            parse_timestamp("k", "1970-01-01 00:00:00.25").unwrap(),
            250_000
        );
        assert!(parse_timestamp("k", "yesterday").is_err());
    }

    #[test]
    fn unknown_options_are_named() {
        let map = BTreeMap::from([("topik".to_string(), "x".to_string())]);
        let err = Options::new("kafka", &["connector", "topic"], &map)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"topik\"") && err.contains("topic"), "{err}");
    }
}
