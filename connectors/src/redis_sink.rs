//! Redis as a sink: `CREATE SINK s FROM v WITH (connector = 'redis', url = 'redis://...',
//! key = 'board', output_mode = 'update' | 'append' | 'complete')`.
//!
//! - `update` and `complete`: the hash `key` holds one field per row of the relation, named by
//!   the row's key (a JSON object of the key columns) and holding the row as a JSON object; a
//!   retracted key is removed from the hash.
//! - `append`: each new row is pushed, as a JSON object, onto the list `key`.
//!
//! Exactly once: every delivery is one `MULTI ... EXEC` transaction that also sets
//! `<key>:eddy_position` to the delivery's position, read back after a crash so that nothing
//! delivered is delivered again. The writes are idempotent by key besides.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use arrow::array::RecordBatch;

use crate::format::rows_as_json;
use crate::options::Options;
use crate::{ConnectorError, ConnectorResult, OutputMode, SinkChange, SinkWriter};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const KNOWN: &[&str] = &["connector", "url", "key", "output_mode", "primary_key"];

/// A Redis sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSinkConfig {
    pub url: String,
    /// The hash (or list, in append mode) the sink writes.
    pub key: String,
    pub mode: OutputMode,
    pub primary_key: Option<Vec<String>>,
}

impl RedisSinkConfig {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("redis", KNOWN, options)?;
        Ok(Self {
            url: opts.required("url")?.to_string(),
            key: opts.required("key")?.to_string(),
            mode: OutputMode::parse(opts.required("output_mode")?)?,
            primary_key: opts.key_columns("primary_key"),
        })
    }
}

/// A connection to Redis, ready to deliver.
pub struct RedisSink {
    connection: MultiplexedConnection,
    config: RedisSinkConfig,
    key: Vec<usize>,
    /// Where the position of the last delivery is kept.
    position_key: String,
}

impl RedisSink {
    pub async fn connect(config: &RedisSinkConfig, key: &[usize]) -> ConnectorResult<Self> {
        let unreachable = |e: String| {
            ConnectorError::Unavailable(format!("cannot connect to Redis at {}: {e}", config.url))
        };
        let client = ::redis::Client::open(config.url.as_str()).map_err(|e| {
            ConnectorError::invalid("url", &config.url, &format!("a Redis URL ({e})"))
        })?;
        let mut connection =
            tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| unreachable("timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        ::redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            connection,
            position_key: format!("{}:eddy_position", config.key),
            config: config.clone(),
            key: key.to_vec(),
        })
    }
}

fn failed(e: ::redis::RedisError) -> ConnectorError {
    ConnectorError::Unavailable(format!("Redis: {e}"))
}

#[async_trait::async_trait]
impl SinkWriter for RedisSink {
    async fn delivered(&mut self) -> ConnectorResult<Option<(u64, u64)>> {
        let value: Option<String> = ::redis::cmd("GET")
            .arg(&self.position_key)
            .query_async(&mut self.connection)
            .await
            .map_err(failed)?;
        let Some(value) = value else {
            return Ok(None);
        };
        let parsed = value
            .split_once(':')
            .and_then(|(e, c)| Some((e.parse().ok()?, c.parse().ok()?)));
        parsed.map(Some).ok_or_else(|| {
            ConnectorError::Invalid(format!(
                "{} holds \"{value}\", not a position epoch:chunk",
                self.position_key
            ))
        })
    }

    async fn deliver(
        &mut self,
        (epoch, chunk): (u64, u64),
        change: &SinkChange,
        replace: bool,
    ) -> ConnectorResult<()> {
        let key = &self.config.key;
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        if replace || self.config.mode == OutputMode::Complete {
            pipe.cmd("DEL").arg(key).ignore();
        }
        let rows = rows_as_json(&change.rows)?;
        match self.config.mode {
            OutputMode::Append => {
                for (row, w) in rows.iter().zip(&change.weights) {
                    for _ in 0..(*w).max(0) {
                        pipe.cmd("RPUSH").arg(key).arg(row).ignore();
                    }
                }
            }
            OutputMode::Update | OutputMode::Complete => {
                let fields = self.fields(&change.rows)?;
                let mut set = HashSet::new();
                for (i, w) in change.weights.iter().enumerate() {
                    if *w > 0 && set.insert(&fields[i]) {
                        pipe.cmd("HSET")
                            .arg(key)
                            .arg(&fields[i])
                            .arg(&rows[i])
                            .ignore();
                    }
                }
                for (i, w) in change.weights.iter().enumerate() {
                    if *w < 0 && !set.contains(&fields[i]) {
                        pipe.cmd("HDEL").arg(key).arg(&fields[i]).ignore();
                    }
                }
            }
        }
        pipe.cmd("SET")
            .arg(&self.position_key)
            .arg(format!("{epoch}:{chunk}"))
            .ignore();
        pipe.query_async::<()>(&mut self.connection)
            .await
            .map_err(failed)
    }
}

impl RedisSink {
    /// Each row's field in the hash: its key columns as a JSON object (the whole row when
    /// the sink has no key, in complete mode).
    fn fields(&self, rows: &RecordBatch) -> ConnectorResult<Vec<String>> {
        match self.key.is_empty() {
            true => rows_as_json(rows),
            false => rows_as_json(&rows.project(&self.key).map_err(|e| {
                ConnectorError::Invalid(format!("cannot take the key columns: {e}"))
            })?),
        }
    }
}
