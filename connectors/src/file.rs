//! Files as a source: `CREATE STREAM logs (...) WITH (connector = 'file', path = '/data/in',
//! format = 'json' | 'csv')`.
//!
//! Every regular file in the folder (names starting with `.` are skipped, as files being
//! written under a temporary name usually are) is read line by line, one record per line, in
//! name order; files that appear later are picked up, and lines appended to a file are read
//! as they come. Only whole lines are read: a line still being written waits for its newline.
//! Each file is a part of the stream's source whose position is the byte offset read up to,
//! committed with the epoch that applied its rows, so a restart neither skips nor repeats a
//! line. A file that has not grown for `idle_timeout` no longer holds the watermark back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;

use crate::format::{DeadLetter, Format, RecordDecoder};
use crate::options::{Options, parse_duration};
use crate::{ConnectorError, ConnectorResult, PartBatch, SourceBatch, SourceReader};

/// Most bytes read from one file per batch.
const READ_BYTES: usize = 4 << 20;

const KNOWN: &[&str] = &[
    "connector",
    "path",
    "format",
    "max_rows_per_epoch",
    "idle_timeout",
];

/// A file stream's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSource {
    /// The folder whose files are read.
    pub path: PathBuf,
    pub format: Format,
    pub max_rows_per_epoch: usize,
    pub idle_timeout: Duration,
}

impl FileSource {
    pub fn from_options(options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let opts = Options::new("file", KNOWN, options)?;
        Ok(Self {
            path: PathBuf::from(opts.required("path")?),
            format: Format::parse(opts.get("format").unwrap_or("json"))?,
            max_rows_per_epoch: opts.positive("max_rows_per_epoch", 100_000)? as usize,
            idle_timeout: match opts.get("idle_timeout") {
                Some(v) => parse_duration("idle_timeout", v)?,
                None => Duration::from_secs(10),
            },
        })
    }

    /// Checks that the folder exists and can be listed.
    pub fn check(&self) -> ConnectorResult<()> {
        self.files().map(|_| ())
    }

    /// The files to read, by name.
    fn files(&self) -> ConnectorResult<BTreeSet<String>> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| {
            let what = format!("folder {}: {e}", self.path.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => ConnectorError::NotFound(what),
                _ => ConnectorError::Unavailable(what),
            }
        })?;
        let mut names = BTreeSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.file_type().is_ok_and(|t| t.is_file()) {
                names.insert(name);
            }
        }
        Ok(names)
    }
}

/// Reads a folder's files from given positions.
pub struct FileReader {
    source: FileSource,
    decoder: RecordDecoder,
    /// Each file's next byte to read.
    offsets: BTreeMap<String, i64>,
    /// When each file last yielded a line (or was first seen).
    last_seen: BTreeMap<String, Instant>,
    idle: BTreeSet<String>,
}

impl FileReader {
    /// A reader resuming at `committed` (file name -> byte offset).
    pub fn open(
        source: FileSource,
        schema: SchemaRef,
        committed: &BTreeMap<String, i64>,
    ) -> ConnectorResult<Self> {
        source.check()?;
        Ok(Self {
            decoder: RecordDecoder::new(source.format, schema)?,
            source,
            offsets: committed.clone(),
            last_seen: BTreeMap::new(),
            idle: BTreeSet::new(),
        })
    }

    /// Whole lines of `name` from its offset: up to `budget` of them and [`READ_BYTES`].
    fn read_lines(
        &self,
        name: &str,
        from: i64,
        budget: usize,
    ) -> ConnectorResult<Vec<(i64, Vec<u8>)>> {
        let path = self.source.path.join(name);
        let failed = |e: std::io::Error| {
            ConnectorError::Unavailable(format!("reading {}: {e}", path.display()))
        };
        let mut file = File::open(&path).map_err(failed)?;
        let len = file.metadata().map_err(failed)?.len() as i64;
        if len <= from {
            return Ok(vec![]);
        }
        file.seek(SeekFrom::Start(from as u64)).map_err(failed)?;
        let mut buf = Vec::with_capacity(((len - from) as usize).min(READ_BYTES));
        file.take(READ_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(failed)?;
        let mut lines = Vec::new();
        let mut at = 0usize;
        while lines.len() < budget {
            let Some(end) = buf[at..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = &buf[at..at + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lines.push((from + at as i64, line.to_vec()));
            at += end + 1;
        }
        Ok(lines)
    }
}

#[async_trait::async_trait]
impl SourceReader for FileReader {
    async fn next_batch(&mut self, wait: Duration) -> ConnectorResult<Option<SourceBatch>> {
        let started = Instant::now();
        loop {
            let now = Instant::now();
            let mut batch = SourceBatch::default();
            let mut budget = self.source.max_rows_per_epoch;
            for name in self.source.files()? {
                let from = *self.offsets.get(&name).unwrap_or(&0);
                self.last_seen.entry(name.clone()).or_insert(now);
                if budget == 0 {
                    continue;
                }
                let lines = self.read_lines(&name, from, budget)?;
                // Blank lines are skipped, not dead letters.
                let Some((last_at, last)) = lines.last() else {
                    continue;
                };
                let to = last_at + last.len() as i64 + 1;
                let records: Vec<&(i64, Vec<u8>)> = lines
                    .iter()
                    .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                    .collect();
                let payloads: Vec<&[u8]> = records.iter().map(|(_, l)| l.as_slice()).collect();
                let decoded = self.decoder.decode(&payloads);
                for (i, error) in decoded.refused {
                    batch.dead_letters.push(DeadLetter::new(
                        format!("file {name} byte {}", records[i].0),
                        payloads[i],
                        error,
                    ));
                }
                budget = budget.saturating_sub(lines.len());
                self.offsets.insert(name.clone(), to);
                self.last_seen.insert(name.clone(), now);
                batch.parts.push(PartBatch {
                    part: name,
                    from,
                    to: to.max(from),
                    rows: decoded.rows,
                });
            }
            let idle: BTreeSet<String> = self
                .last_seen
                .iter()
                .filter(|(_, seen)| now.duration_since(**seen) >= self.source.idle_timeout)
                .map(|(name, _)| name.clone())
                .collect();
            let idle_changed = idle != self.idle;
            if !batch.parts.is_empty() || idle_changed {
                self.idle = idle;
                batch.idle = self.idle.iter().cloned().collect();
                return Ok(Some(batch));
            }
            if started.elapsed() >= wait {
                return Ok(None);
            }
            tokio::time::sleep(POLL.min(wait)).await;
        }
    }
}

/// How often a folder is looked at while nothing new is in it.
const POLL: Duration = Duration::from_millis(50);
