//! Kafka as a sink: `CREATE SINK s FROM v WITH (connector = 'kafka', brokers = '...',
//! topic = '...', output_mode = 'update' | 'append' | 'complete')`, rows as JSON.
//!
//! - `update`: keyed upserts. A row's message has the row's key (a JSON object of its key
//!   columns) as its key and the row as its value; a key only retracted gets a tombstone (no
//!   value). Messages of one key go to one partition (a hash of the key), so a compacted
//!   topic, or any consumer that keeps the last value per key, holds exactly the view.
//! - `append`: each new row is one message without key; a delivery goes to one partition.
//! - `complete`: every row of the result, each delivery, as in append.
//!
//! Every message carries the headers `eddy_sink` (the sink's identity), `eddy_epoch`,
//! `eddy_chunk` and `eddy_seq`: its position. Kafka has no transaction here (rskafka has no
//! transactional producer), so exactly once is kept per partition instead: when a writer
//! starts it reads the last message of every partition, and when it delivers again what a
//! crash interrupted, it skips every message whose position is not past the last one its
//! partition already holds. A consumer sees each message once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use arrow::array::RecordBatch;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;

use crate::format::rows_as_json;
use crate::kafka::{connect, partitions};
use crate::options::Options;
use crate::{ConnectorError, ConnectorResult, OutputMode, SinkChange, SinkWriter};

const KNOWN: &[&str] = &[
    "connector",
    "brokers",
    "topic",
    "format",
    "output_mode",
    "primary_key",
];
/// Messages per produce request.
const MESSAGES_PER_REQUEST: usize = 1000;

/// A Kafka sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSinkConfig {
    pub brokers: Vec<String>,
    pub topic: String,
    pub mode: OutputMode,
    pub primary_key: Option<Vec<String>>,
}

impl KafkaSinkConfig {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("kafka", KNOWN, options)?;
        if let Some(f) = opts.get("format")
            && !f.eq_ignore_ascii_case("json")
        {
            return Err(ConnectorError::invalid("format", f, "'json'"));
        }
        Ok(Self {
            brokers: opts
                .required("brokers")?
                .split(',')
                .map(|b| b.trim().to_string())
                .collect(),
            topic: opts.required("topic")?.to_string(),
            mode: OutputMode::parse(opts.required("output_mode")?)?,
            primary_key: opts.key_columns("primary_key"),
        })
    }
}

/// A message's place in the sink's output: (epoch, chunk, index in the delivery).
type Position = (u64, u64, u64);

/// A producer to the sink's topic, ready to deliver.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    sink_id: String,
    key: Vec<usize>,
    partitions: Vec<PartitionClient>,
    /// The position of the last message of this sink each partition holds.
    last: HashMap<i32, Position>,
}

impl KafkaSink {
    pub async fn connect(
        config: &KafkaSinkConfig,
        key: &[usize],
        sink_id: &str,
    ) -> ConnectorResult<Self> {
        let client = connect(&config.brokers).await?;
        let mut clients = Vec::new();
        let mut last = HashMap::new();
        for p in partitions(&client, &config.topic).await? {
            let pc = client
                .partition_client(config.topic.clone(), p, UnknownTopicHandling::Retry)
                .await
                .map_err(unavailable)?;
            if let Some(position) = last_position(&pc, sink_id).await? {
                last.insert(p, position);
            }
            clients.push(pc);
        }
        Ok(Self {
            config: config.clone(),
            sink_id: sink_id.to_string(),
            key: key.to_vec(),
            partitions: clients,
            last,
        })
    }

    /// The message for each row of a change, with the partition it goes to.
    fn messages(
        &self,
        (epoch, chunk): (u64, u64),
        change: &SinkChange,
    ) -> ConnectorResult<Vec<(usize, Position, Record)>> {
        let rows = rows_as_json(&change.rows)?;
        let n = self.partitions.len();
        let header = |seq: u64| {
            BTreeMap::from([
                ("eddy_sink".to_string(), self.sink_id.clone().into_bytes()),
                ("eddy_epoch".to_string(), epoch.to_string().into_bytes()),
                ("eddy_chunk".to_string(), chunk.to_string().into_bytes()),
                ("eddy_seq".to_string(), seq.to_string().into_bytes()),
            ])
        };
        let record = |seq: u64, key: Option<&String>, value: Option<&String>| Record {
            key: key.map(|k| k.clone().into_bytes()),
            value: value.map(|v| v.clone().into_bytes()),
            headers: header(seq),
            timestamp: chrono::Utc::now(),
        };
        let mut out = Vec::new();
        match self.config.mode {
            OutputMode::Append | OutputMode::Complete => {
                let partition = ((epoch + chunk) % n as u64) as usize;
                for (row, w) in rows.iter().zip(&change.weights) {
                    for _ in 0..(*w).max(0) {
                        let seq = out.len() as u64;
                        out.push((partition, (epoch, chunk, seq), record(seq, None, Some(row))));
                    }
                }
            }
            OutputMode::Update => {
                let keys = rows_as_json(&key_columns(&change.rows, &self.key)?)?;
                let mut upserted = HashSet::new();
                let mut messages: Vec<(&String, Option<&String>)> = Vec::new();
                for (i, w) in change.weights.iter().enumerate() {
                    if *w > 0 && upserted.insert(&keys[i]) {
                        messages.push((&keys[i], Some(&rows[i])));
                    }
                }
                let mut deleted = HashSet::new();
                for (i, w) in change.weights.iter().enumerate() {
                    if *w < 0 && !upserted.contains(&keys[i]) && deleted.insert(&keys[i]) {
                        messages.push((&keys[i], None));
                    }
                }
                for (key, value) in messages {
                    let seq = out.len() as u64;
                    let partition = (hash(key) % n as u64) as usize;
                    out.push((
                        partition,
                        (epoch, chunk, seq),
                        record(seq, Some(key), value),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl SinkWriter for KafkaSink {
    /// Kafka keeps positions per partition: every waiting change is offered again, and
    /// [`deliver`](SinkWriter::deliver) skips what each partition already holds.
    async fn delivered(&mut self) -> ConnectorResult<Option<(u64, u64)>> {
        Ok(None)
    }

    async fn deliver(
        &mut self,
        position: (u64, u64),
        change: &SinkChange,
        _replace: bool,
    ) -> ConnectorResult<()> {
        let mut by_partition: BTreeMap<usize, Vec<(Position, Record)>> = BTreeMap::new();
        for (partition, at, record) in self.messages(position, change)? {
            let pc = &self.partitions[partition];
            if self
                .last
                .get(&pc.partition())
                .is_some_and(|last| at <= *last)
            {
                continue;
            }
            by_partition
                .entry(partition)
                .or_default()
                .push((at, record));
        }
        for (partition, messages) in by_partition {
            let pc = &self.partitions[partition];
            for part in messages.chunks(MESSAGES_PER_REQUEST) {
                let records = part.iter().map(|(_, r)| r.clone()).collect();
                pc.produce(records, Compression::NoCompression)
                    .await
                    .map_err(unavailable)?;
                let (at, _) = part.last().expect("a chunk is never empty");
                self.last.insert(pc.partition(), *at);
            }
        }
        Ok(())
    }
}

fn key_columns(rows: &RecordBatch, key: &[usize]) -> ConnectorResult<RecordBatch> {
    rows.project(key)
        .map_err(|e| ConnectorError::Invalid(format!("cannot take the key columns: {e}")))
}

/// A stable hash of a message key (the same in every run and build).
fn hash(key: &str) -> u64 {
    // FNV-1a: std's hasher is seeded per process.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.as_bytes().hash(&mut h);
    h.finish()
}

fn unavailable(e: rskafka::client::error::Error) -> ConnectorError {
    ConnectorError::Unavailable(format!("Kafka: {e}"))
}

/// The position of the last message a partition holds, if this sink wrote it.
async fn last_position(pc: &PartitionClient, sink_id: &str) -> ConnectorResult<Option<Position>> {
    let end = pc.get_offset(OffsetAt::Latest).await.map_err(unavailable)?;
    let start = pc
        .get_offset(OffsetAt::Earliest)
        .await
        .map_err(unavailable)?;
    if end <= start {
        return Ok(None);
    }
    // Fetches can start at a batch boundary only: step back until the last record comes.
    let target = end - 1;
    let mut back = 0i64;
    let mut from = target;
    loop {
        let (records, _) = pc
            .fetch_records(from, 1..(4 << 20), 0)
            .await
            .map_err(unavailable)?;
        match records.iter().find(|r| r.offset == target) {
            Some(r) => {
                let header = |name: &str| {
                    r.record
                        .headers
                        .get(name)
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                };
                let ours = r.record.headers.get("eddy_sink").map(Vec::as_slice)
                    == Some(sink_id.as_bytes());
                return Ok(
                    match (
                        ours,
                        header("eddy_epoch"),
                        header("eddy_chunk"),
                        header("eddy_seq"),
                    ) {
                        (true, Some(e), Some(c), Some(s)) => Some((e, c, s)),
                        _ => None,
                    },
                );
            }
            None => match records.last() {
                Some(last) if last.offset < target => from = last.offset + 1,
                _ if from > start => {
                    back = (back * 2).max(16);
                    from = (target - back).max(start);
                }
                _ => return Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_stable() {
        assert_eq!(hash("{\"id\":1}"), hash("{\"id\":1}"));
        assert_ne!(hash("{\"id\":1}"), hash("{\"id\":2}"));
    }
}
