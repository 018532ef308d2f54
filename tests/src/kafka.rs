//! A real Kafka-protocol broker for the connector suites: Tansu, a Kafka-compatible broker
//! installed from crates.io by `.ci/run` (`.ci/tansu`), run here on 127.0.0.1 with in-memory
//! storage, one per test. The suites produce to it and create topics with rskafka.
//!
//! The broker binary is `EDDY_TANSU` when set, else `tansu` on the PATH or where `.ci/tansu`
//! installs it. A missing broker fails the test that needs it with a message saying how to
//! install one: a connector test never passes without its real service.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

/// How long a broker may take to accept clients.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker process owned by a test, killed when dropped.
pub struct KafkaBroker {
    child: Child,
    port: u16,
    log: PathBuf,
    _home: tempfile::TempDir,
}

/// Where the broker binary is.
fn tansu() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("EDDY_TANSU") {
        return Ok(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/eddy-tools/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file()).context(
        "no Kafka broker: install Tansu with `bash .ci/tansu` (or set EDDY_TANSU to its binary)",
    )
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl KafkaBroker {
    /// Starts a broker on a free port of 127.0.0.1 and waits until it answers.
    pub async fn start() -> Result<Self> {
        let binary = tansu()?;
        let home = tempfile::Builder::new().prefix("eddy-kafka-").tempdir()?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let log = home.path().join("broker.log");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .current_dir(home.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(home.path().join("broker.err"))?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut broker = KafkaBroker {
            child,
            port,
            log,
            _home: home,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = broker.child.try_wait()? {
                bail!("the Kafka broker exited ({status}): {}", broker.log_tail());
            }
            if let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(2), broker.raw_client()).await
                && client.list_topics().await.is_ok()
            {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                bail!("the Kafka broker did not answer: {}", broker.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `host:port`, as a stream's `brokers` option takes it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn raw_client(&self) -> Result<Client> {
        Ok(ClientBuilder::new(vec![self.address()]).build().await?)
    }

    fn log_tail(&self) -> String {
        let err = self.log.with_file_name("broker.err");
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let client = self.raw_client().await?;
        client
            .controller_client()?
            .create_topic(topic, partitions, 1, 5_000)
            .await
            .with_context(|| format!("creating topic {topic}"))?;
        Ok(())
    }

    /// Every record of a topic, partition by partition, in offset order.
    pub async fn read_all(&self, topic: &str) -> Result<Vec<(i32, Record)>> {
        let client = self.raw_client().await?;
        let partitions = client
            .list_topics()
            .await?
            .into_iter()
            .find(|t| t.name == topic)
            .with_context(|| format!("no topic {topic}"))?
            .partitions;
        let mut out = Vec::new();
        for p in partitions {
            let pc = client
                .partition_client(topic.to_string(), p, UnknownTopicHandling::Retry)
                .await?;
            let end = pc.get_offset(OffsetAt::Latest).await?;
            let mut offset = pc.get_offset(OffsetAt::Earliest).await?;
            while offset < end {
                let (records, _) = pc.fetch_records(offset, 1..(4 << 20), 100).await?;
                let Some(last) = records.last() else { break };
                offset = last.offset + 1;
                out.extend(records.into_iter().map(|r| (p, r.record)));
            }
        }
        Ok(out)
    }

    /// A producer for one topic.
    pub async fn producer(&self, topic: &str) -> Result<Producer> {
        Ok(Producer {
            client: self.raw_client().await?,
            topic: topic.to_string(),
        })
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes records to a topic.
pub struct Producer {
    client: Client,
    topic: String,
}

impl Producer {
    /// Appends `values` to one partition, in order.
    pub async fn send(&self, partition: i32, values: &[String]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let pc = self
            .client
            .partition_client(self.topic.clone(), partition, UnknownTopicHandling::Retry)
            .await?;
        let records = values
            .iter()
            .map(|v| Record {
                key: None,
                value: Some(v.clone().into_bytes()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        pc.produce(records, Compression::NoCompression)
            .await
            .with_context(|| format!("producing to {}/{partition}", self.topic))?;
        Ok(())
    }
}
