//! Sinks: `CREATE SINK name FROM relation WITH (connector = ..., output_mode = ..., ...)`,
//! checked against the relation they read, and the connector each one writes with.

use datafusion::common::DFSchema;
use datafusion::common::Dependency;
use datafusion::logical_expr::LogicalPlan;
use eddy_catalog::{Column, Connector, Relation, RelationKind};
use eddy_connectors::kafka_sink::{KafkaSink, KafkaSinkConfig};
use eddy_connectors::postgres::{PostgresSink, PostgresSinkConfig};
use eddy_connectors::redis_sink::{RedisSink, RedisSinkConfig};
use eddy_connectors::{OutputMode, SinkWriter};
use sqlparser::ast::SqlOption;

use crate::sources::option_map;
use crate::streaming::ranking_key;
use crate::{SqlError, SqlResult};

/// Where a sink writes.
#[derive(Clone, Debug)]
pub enum SinkTarget {
    Postgres(PostgresSinkConfig),
    Redis(RedisSinkConfig),
    Kafka(KafkaSinkConfig),
}

impl SinkTarget {
    /// The target of a sink relation.
    pub fn of(sink: &Relation) -> SqlResult<SinkTarget> {
        let c = sink
            .connector
            .as_ref()
            .ok_or_else(|| SqlError::Internal(format!("sink {} has no connector", sink.name)))?;
        Self::from_connector(c)
    }

    fn from_connector(c: &Connector) -> SqlResult<SinkTarget> {
        match c.name.as_str() {
            "postgres" => Ok(SinkTarget::Postgres(PostgresSinkConfig::from_options(
                &c.options,
            )?)),
            "redis" => Ok(SinkTarget::Redis(RedisSinkConfig::from_options(
                &c.options,
            )?)),
            "kafka" => Ok(SinkTarget::Kafka(KafkaSinkConfig::from_options(
                &c.options,
            )?)),
            other => Err(SqlError::InvalidParameter(format!(
                "unknown sink connector \"{other}\" (known: kafka, postgres, redis)"
            ))),
        }
    }

    /// Connects to the target and prepares it (a table created when missing), for the sink
    /// `sink_id` that writes rows of `columns` by `key`.
    pub async fn open(
        &self,
        columns: &[Column],
        key: &[usize],
        sink_id: &str,
    ) -> SqlResult<Box<dyn SinkWriter>> {
        Ok(match self {
            SinkTarget::Postgres(config) => {
                Box::new(PostgresSink::connect(config, columns, key, sink_id).await?)
            }
            SinkTarget::Redis(config) => Box::new(RedisSink::connect(config, key).await?),
            SinkTarget::Kafka(config) => Box::new(KafkaSink::connect(config, key, sink_id).await?),
        })
    }

    /// Checks that a sink can deliver: its target answers and takes its rows.
    pub async fn check(&self, sink: &Relation) -> SqlResult<()> {
        self.open(&sink.columns, &sink.primary_key, &sink.name)
            .await
            .map(|_| ())
    }

    pub fn mode(&self) -> OutputMode {
        match self {
            SinkTarget::Postgres(p) => p.mode,
            SinkTarget::Redis(r) => r.mode,
            SinkTarget::Kafka(k) => k.mode,
        }
    }

    fn primary_key(&self) -> Option<&[String]> {
        match self {
            SinkTarget::Postgres(p) => p.primary_key.as_deref(),
            SinkTarget::Redis(r) => r.primary_key.as_deref(),
            SinkTarget::Kafka(k) => k.primary_key.as_deref(),
        }
    }
}

/// A sink's connector and the key it writes by (column positions of `from`), checked
/// against the relation it reads: append needs a relation that never retracts a row, update
/// a key (the `primary_key` option, a table's primary key, or the one a view's query implies).
pub fn sink_connector(
    sink: &str,
    from: &Relation,
    options: &[SqlOption],
) -> SqlResult<(Connector, Vec<usize>)> {
    let map = option_map(options, "sink")?;
    let name = map
        .get("connector")
        .map(|c| c.to_ascii_lowercase())
        .ok_or_else(|| {
            SqlError::InvalidParameter(format!(
                "sink \"{sink}\" needs a connector (WITH (connector = 'postgres', ...))"
            ))
        })?;
    let connector = Connector { name, options: map };
    let target = SinkTarget::from_connector(&connector)?;
    if !from.is_stored() {
        return Err(SqlError::WrongObjectType(format!(
            "a sink reads a stream, a table or a materialized view; \"{}\" is a {}",
            from.name, from.kind
        )));
    }
    let key = match target.mode() {
        OutputMode::Append => {
            let append_only = from.kind == RelationKind::Stream
                || (from.kind == RelationKind::MaterializedView
                    && (from.append_only || from.emit_on_window_close));
            if !append_only {
                return Err(SqlError::InvalidParameter(format!(
                    "output_mode 'append' needs a relation whose rows never change, and {} \
                     \"{}\" updates and deletes rows: use output_mode 'update' or 'complete'",
                    from.kind, from.name
                )));
            }
            vec![]
        }
        OutputMode::Complete => vec![],
        OutputMode::Update => match target.primary_key() {
            Some(names) => names
                .iter()
                .map(|n| {
                    from.column_index(n).ok_or_else(|| {
                        SqlError::UnknownColumn(format!(
                            "primary_key column \"{n}\" is not a column of \"{}\"",
                            from.name
                        ))
                    })
                })
                .collect::<SqlResult<Vec<_>>>()?,
            None if !from.primary_key.is_empty() => from.primary_key.clone(),
            None => {
                return Err(SqlError::InvalidParameter(format!(
                    "output_mode 'update' writes rows by key, and {} \"{}\" has none that Eddy \
                     can tell: name one with primary_key = 'col[, col...]'",
                    from.kind, from.name
                )));
            }
        },
    };
    Ok((connector, key))
}

/// The unique key a query's plan implies for its rows, as column positions: the smallest one
/// its functional dependencies give (the GROUP BY columns of an aggregate, carried through
/// projections), or else the one a ROW_NUMBER ranking gives ([`ranking_key`]), if any.
/// `optimized` is the plan the view's dataflow is planned from.
pub fn implied_key(schema: &DFSchema, optimized: &LogicalPlan) -> Vec<usize> {
    let key = dependency_key(schema);
    if key.is_empty() {
        return ranking_key(optimized).unwrap_or_default();
    }
    key
}

fn dependency_key(schema: &DFSchema) -> Vec<usize> {
    let n = schema.fields().len();
    schema
        .functional_dependencies()
        .iter()
        .filter(|d| {
            d.mode == Dependency::Single
                && !d.source_indices.is_empty()
                && (0..n).all(|c| d.target_indices.contains(&c))
        })
        .map(|d| {
            let mut key = d.source_indices.clone();
            key.sort_unstable();
            key
        })
        .min_by_key(|k| k.len())
        .unwrap_or_default()
}
