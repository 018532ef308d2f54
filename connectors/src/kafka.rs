//! Kafka as a source: `CREATE STREAM ... WITH (connector = 'kafka', brokers = '...',
//! topic = '...', format = 'json' | 'csv', ...)`.
//!
//! The client is rskafka: pure Rust (no librdkafka to build), and Eddy needs none of what it
//! leaves out. Eddy does not use consumer groups: the offset of every partition is part of the
//! stream's progress, committed in the same epoch as the rows read up to it, so after a crash
//! the reader resumes exactly after the last committed row.
//!
//! A [`KafkaReader`] fetches every partition in a task of its own (long polls, so an idle
//! partition costs nothing), decodes records in blocks ([`crate::format`]) and hands out
//! [`SourceBatch`]es of at most `max_rows_per_epoch` records. It reports which partitions
//! have been idle for `idle_timeout`, so that a silent partition does not hold the stream's
//! watermark back forever.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use rskafka::BackoffConfig;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::format::{DeadLetter, Format, RecordDecoder};
use crate::options::{Options, parse_duration};
use crate::{ConnectorError, ConnectorResult, PartBatch, SourceBatch, SourceReader};

/// Longest a fetch waits at the broker for records to arrive. Kafka answers as soon as a
/// record arrives; some brokers (Tansu) wait the whole time, so it is short: it bounds the
/// latency a record can gain waiting there.
const FETCH_WAIT_MS: i32 = 50;
/// Least time between two fetches of a partition that came back empty.
const EMPTY_FETCH_PAUSE: Duration = Duration::from_millis(20);
/// Most bytes one fetch of a partition returns.
const FETCH_MAX_BYTES: i32 = 4 << 20;
/// Fetched blocks a partition may have waiting to be taken (the reader's memory bound).
const FETCHES_AHEAD: usize = 2;
/// How long a request keeps retrying an unreachable broker before the error surfaces.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
}

/// A Kafka stream's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSource {
    pub brokers: Vec<String>,
    pub topic: String,
    pub format: Format,
    pub start_offset: StartOffset,
    /// Most records one epoch takes.
    pub max_rows_per_epoch: usize,
    /// A partition that yields nothing for this long no longer holds the watermark back.
    pub idle_timeout: Duration,
}

const KNOWN: &[&str] = &[
    "connector",
    "brokers",
    "topic",
    "format",
    "start_offset",
    "max_rows_per_epoch",
    "idle_timeout",
];

impl KafkaSource {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("kafka", KNOWN, options)?;
        let brokers: Vec<String> = opts
            .required("brokers")?
            .split(',')
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        if brokers.is_empty() {
            return Err(ConnectorError::invalid(
                "brokers",
                "",
                "host:port[,host:port...]",
            ));
        }
        let start_offset = match opts.get("start_offset").unwrap_or("earliest") {
            s if s.eq_ignore_ascii_case("earliest") => StartOffset::Earliest,
            s if s.eq_ignore_ascii_case("latest") => StartOffset::Latest,
            s => {
                return Err(ConnectorError::invalid(
                    "start_offset",
                    s,
                    "'earliest' or 'latest'",
                ));
            }
        };
        Ok(Self {
            brokers,
            topic: opts.required("topic")?.to_string(),
            format: Format::parse(opts.get("format").unwrap_or("json"))?,
            start_offset,
            max_rows_per_epoch: opts.positive("max_rows_per_epoch", 100_000)? as usize,
            idle_timeout: match opts.get("idle_timeout") {
                Some(v) => parse_duration("idle_timeout", v)?,
                None => Duration::from_secs(10),
            },
        })
    }

    /// Connects and checks that the topic exists; answers its partitions.
    pub async fn check(&self) -> ConnectorResult<BTreeSet<i32>> {
        let client = self.client().await?;
        partitions(&client, &self.topic).await
    }

    async fn client(&self) -> ConnectorResult<Client> {
        connect(&self.brokers).await
    }
}

/// A client of the brokers; requests give up after a few seconds of failures.
pub(crate) async fn connect(brokers: &[String]) -> ConnectorResult<Client> {
    ClientBuilder::new(brokers.to_vec())
        .backoff_config(BackoffConfig {
            deadline: Some(REQUEST_DEADLINE),
            max_backoff: Duration::from_secs(1),
            ..BackoffConfig::default()
        })
        .build()
        .await
        .map_err(|e| {
            ConnectorError::Unavailable(format!("cannot reach Kafka at {}: {e}", brokers.join(",")))
        })
}

pub(crate) async fn partitions(client: &Client, topic: &str) -> ConnectorResult<BTreeSet<i32>> {
    let topics = client
        .list_topics()
        .await
        .map_err(|e| ConnectorError::Unavailable(format!("cannot list Kafka topics: {e}")))?;
    topics
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.partitions)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ConnectorError::NotFound(format!("Kafka topic \"{topic}\" does not exist")))
}

/// What a partition's fetch task hands over.
type Fetched = (i32, Result<Vec<RecordAndOffset>, String>);

/// Reads a topic from given offsets, block by block.
pub struct KafkaReader {
    source: KafkaSource,
    decoder: RecordDecoder,
    fetched: mpsc::Receiver<Fetched>,
    tasks: Vec<JoinHandle<()>>,
    /// Each partition's next offset to hand out; partitions without a committed offset are
    /// handed out once with no rows, so that where they start is committed too.
    offsets: BTreeMap<i32, i64>,
    unannounced: BTreeSet<i32>,
    /// Records fetched but not yet handed out (beyond an epoch's worth).
    pending: BTreeMap<i32, Vec<RecordAndOffset>>,
    last_seen: BTreeMap<i32, Instant>,
    /// The idle partitions as last reported.
    idle: BTreeSet<i32>,
}

impl KafkaReader {
    /// Connects and starts fetching every partition from its committed offset (`committed`:
    /// partition -> next offset), or from the source's start offset where it has none.
    pub async fn open(
        source: KafkaSource,
        schema: SchemaRef,
        committed: &BTreeMap<i32, i64>,
    ) -> ConnectorResult<Self> {
        let decoder = RecordDecoder::new(source.format, schema)?;
        let client = source.client().await?;
        let partitions = partitions(&client, &source.topic).await?;
        let (tx, fetched) = mpsc::channel(FETCHES_AHEAD * partitions.len());
        let mut offsets = BTreeMap::new();
        let mut unannounced = BTreeSet::new();
        let mut tasks = Vec::new();
        let now = Instant::now();
        for &p in &partitions {
            let pc = client
                .partition_client(source.topic.clone(), p, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| ConnectorError::Unavailable(format!("Kafka partition {p}: {e}")))?;
            let start = match committed.get(&p) {
                Some(o) => *o,
                None => {
                    unannounced.insert(p);
                    let at = match source.start_offset {
                        StartOffset::Earliest => OffsetAt::Earliest,
                        StartOffset::Latest => OffsetAt::Latest,
                    };
                    pc.get_offset(at).await.map_err(|e| {
                        ConnectorError::Unavailable(format!("Kafka partition {p}: {e}"))
                    })?
                }
            };
            offsets.insert(p, start);
            tasks.push(tokio::spawn(fetch_partition(
                Arc::new(pc),
                start,
                tx.clone(),
            )));
        }
        Ok(Self {
            last_seen: partitions.iter().map(|p| (*p, now)).collect(),
            source,
            decoder,
            fetched,
            tasks,
            offsets,
            unannounced,
            pending: BTreeMap::new(),
            idle: BTreeSet::new(),
        })
    }

    /// Opens at committed positions given by part name (the partition number).
    pub async fn open_at(
        source: KafkaSource,
        schema: SchemaRef,
        committed: &BTreeMap<String, i64>,
    ) -> ConnectorResult<Self> {
        let committed = committed
            .iter()
            .filter_map(|(part, offset)| Some((part.parse::<i32>().ok()?, *offset)))
            .collect();
        Self::open(source, schema, &committed).await
    }
}

#[async_trait::async_trait]
impl SourceReader for KafkaReader {
    /// Records from any partition that has some (at most `max_rows_per_epoch`), decoded.
    async fn next_batch(&mut self, wait: Duration) -> ConnectorResult<Option<SourceBatch>> {
        if self.pending.is_empty() && self.unannounced.is_empty() {
            match tokio::time::timeout(wait, self.fetched.recv()).await {
                Ok(Some(f)) => self.take(f)?,
                Ok(None) => {
                    return Err(ConnectorError::Unavailable(
                        "the Kafka fetchers stopped".into(),
                    ));
                }
                Err(_) => {}
            }
        }
        while let Ok(f) = self.fetched.try_recv() {
            self.take(f)?;
        }
        let now = Instant::now();
        let idle: BTreeSet<i32> = self
            .last_seen
            .iter()
            .filter(|(p, seen)| {
                now.duration_since(**seen) >= self.source.idle_timeout
                    && !self.pending.contains_key(p)
            })
            .map(|(p, _)| *p)
            .collect();
        let idle_changed = idle != self.idle;
        if self.pending.is_empty() && self.unannounced.is_empty() && !idle_changed {
            return Ok(None);
        }
        self.idle = idle;
        Ok(Some(self.cut()))
    }
}

impl KafkaReader {
    fn take(&mut self, (partition, fetched): Fetched) -> ConnectorResult<()> {
        let records = fetched.map_err(|e| {
            ConnectorError::Unavailable(format!(
                "fetching Kafka topic \"{}\" partition {partition}: {e}",
                self.source.topic
            ))
        })?;
        if !records.is_empty() {
            self.last_seen.insert(partition, Instant::now());
            self.pending.entry(partition).or_default().extend(records);
        }
        Ok(())
    }

    /// Hands out up to an epoch's worth of the pending records, decoded.
    fn cut(&mut self) -> SourceBatch {
        let mut budget = self.source.max_rows_per_epoch;
        let mut batch = SourceBatch {
            idle: self.idle.iter().map(|p| p.to_string()).collect(),
            ..SourceBatch::default()
        };
        let partitions: Vec<i32> = self
            .pending
            .keys()
            .chain(self.unannounced.iter())
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for p in partitions {
            let from = self.offsets[&p];
            let records = match self.pending.get_mut(&p) {
                Some(records) if budget > 0 => {
                    let n = records.len().min(budget);
                    budget -= n;
                    let rest = records.split_off(n);
                    let taken = std::mem::replace(records, rest);
                    if records.is_empty() {
                        self.pending.remove(&p);
                    }
                    taken
                }
                _ if self.unannounced.contains(&p) => vec![],
                _ => continue,
            };
            self.unannounced.remove(&p);
            let to = records.last().map_or(from, |r| r.offset + 1);
            let payloads: Vec<&[u8]> = records
                .iter()
                .map(|r| r.record.value.as_deref().unwrap_or_default())
                .collect();
            let decoded = self.decoder.decode(&payloads);
            for (i, error) in decoded.refused {
                let r = &records[i];
                batch.dead_letters.push(DeadLetter::new(
                    format!("partition {p} offset {}", r.offset),
                    payloads[i],
                    error,
                ));
            }
            self.offsets.insert(p, to);
            batch.parts.push(PartBatch {
                part: p.to_string(),
                from,
                to,
                rows: decoded.rows,
            });
        }
        batch
    }
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Fetches one partition from `offset` on, forever, handing each non-empty block over.
///
/// Records travel in batches, and a fetch from an offset inside a batch must still yield
/// that batch's records from the offset on. Some brokers (Tansu) answer it with the batches
/// that start at or after the offset instead, which would skip the records before the next
/// batch. So when a fetch starts past the offset asked for, the fetch asks again from
/// further back (doubling the distance) until the batch holding the offset comes back, and
/// only then are the records before the offset dropped. A true gap (a compacted log) shows
/// as a batch that starts past the offset right after the batch before it: it is accepted.
/// The same holds when the offset lies inside the partition's last batch: the fetch then
/// comes back empty although the partition's high watermark is past the offset.
async fn fetch_partition(pc: Arc<PartitionClient>, mut offset: i64, tx: mpsc::Sender<Fetched>) {
    let partition = pc.partition();
    // How far before `offset` the next fetch starts, and whether it starts right after a
    // batch that ended before `offset`.
    let mut back = 0i64;
    let mut after_batch = false;
    loop {
        let asked = Instant::now();
        let from = offset - back;
        let (records, high_watermark) = match pc
            .fetch_records(from, 1..FETCH_MAX_BYTES, FETCH_WAIT_MS)
            .await
        {
            Ok(fetched) => fetched,
            Err(e) => {
                let _ = tx.send((partition, Err(e.to_string()))).await;
                return;
            }
        };
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            if high_watermark > offset && from > 0 && !after_batch {
                // Records from `offset` on exist, but no batch starts at or after it.
                back = (back * 2).max(16).min(offset);
                continue;
            }
            (back, after_batch) = (0, false);
            if asked.elapsed() < EMPTY_FETCH_PAUSE {
                // A broker that answers an empty fetch at once (without waiting for
                // records) is not asked again right away.
                tokio::time::sleep(EMPTY_FETCH_PAUSE - asked.elapsed()).await;
            }
            continue;
        };
        if first.offset > offset && from > 0 && !after_batch {
            // The batch holding `offset` was skipped: ask from further back.
            back = (back * 2).max(16).min(offset);
            continue;
        }
        if last.offset < offset {
            // Everything before `offset`: the next batch starts right after this one.
            back = offset - (last.offset + 1);
            after_batch = true;
            continue;
        }
        (back, after_batch) = (0, false);
        let records: Vec<RecordAndOffset> =
            records.into_iter().filter(|r| r.offset >= offset).collect();
        offset = records.last().map_or(offset, |r| r.offset + 1);
        if tx.send((partition, Ok(records))).await.is_err() {
            return;
        }
    }
}
