//! Readers: the tasks that feed streams from external systems (Kafka, files), one per
//! stream, and those that keep mirrored tables in sync ([`mirrors`]).
//!
//! A reader starts from the positions committed in its stream's progress and hands each
//! batch it reads to the epoch driver as a [`WriteOp::Ingest`], waiting for the commit before
//! it hands over the next: rows and positions commit together, so after a crash the next
//! reader resumes right after the last committed record, and at most one batch per stream is
//! in flight (a slow pipeline slows the reader; memory stays bounded).
//!
//! A source that cannot be reached is retried with a growing pause; the reason is in the
//! stream's progress (`eddy_catalog.progress.source_error`) until it reads again. A batch the
//! views cannot take (an expression error on its rows) stops the reader until the server
//! restarts, its error recorded likewise: skipping the rows would lose them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use eddy_catalog::Relation;
use eddy_connectors::postgres_source::PostgresTableSource;
use eddy_dataflow::progress::Progress;
use eddy_sql::SqlError;
use eddy_sql::sources::Source;
use eddy_storage::Store;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Engine, WriteOp, mirrors};

/// How long a reader waits for records before it looks at its partitions' idleness again.
const POLL: Duration = Duration::from_millis(200);
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// The running readers, by stream.
pub struct Readers {
    runtime: Handle,
    engine: Engine,
    store: Arc<Store>,
    running: HashMap<u64, JoinHandle<()>>,
}

impl Readers {
    pub fn new(runtime: Handle, engine: Engine, store: Arc<Store>) -> Self {
        Self {
            runtime,
            engine,
            store,
            running: HashMap::new(),
        }
    }

    /// Runs a reader for every stream given (by id) that reads an external source and for
    /// every table that mirrors an external table, and stops the readers of relations no
    /// longer given.
    pub fn sync(
        &mut self,
        streams: &BTreeMap<u64, (Arc<Relation>, Source)>,
        mirrors: &BTreeMap<u64, (Arc<Relation>, PostgresTableSource)>,
    ) {
        self.running.retain(|id, task| {
            let keep =
                (streams.contains_key(id) || mirrors.contains_key(id)) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, (rel, source)) in streams {
            if self.running.contains_key(id) || source.replayable().is_some() {
                continue;
            }
            let task = self.runtime.spawn(read_source(
                rel.clone(),
                source.clone(),
                self.engine.clone(),
                self.store.clone(),
            ));
            self.running.insert(*id, task);
        }
        for (id, (rel, source)) in mirrors {
            if self.running.contains_key(id) {
                continue;
            }
            let task = self.runtime.spawn(mirrors::mirror_table(
                rel.clone(),
                source.clone(),
                self.engine.clone(),
            ));
            self.running.insert(*id, task);
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// Feeds a stream from its source until the server stops (or its views refuse a batch).
async fn read_source(rel: Arc<Relation>, source: Source, engine: Engine, store: Arc<Store>) {
    let mut status: Option<String> = None;
    let mut pause = FIRST_RETRY;
    loop {
        let failure = match read_from_committed(&rel, &source, &engine, &store, &mut status).await {
            Stop::Shutdown => return,
            Stop::Refused(e) => {
                warn!(stream = %rel.name, error = %e, "the stream's views refused a batch; its reader stops");
                let _ = report(&engine, &rel, &mut status, Some(format!("stopped: {e}"))).await;
                return;
            }
            Stop::Unavailable(e) => e,
        };
        warn!(stream = %rel.name, error = %failure, retry_in = ?pause, "cannot read the stream's source");
        if !retry_after(&engine, &rel, &mut status, failure, &mut pause).await {
            return;
        }
    }
}

/// Records why a source cannot be read (in the relation's progress) and waits before the
/// next try, the pause doubling up to [`LAST_RETRY`]; false when the server is stopping.
pub(super) async fn retry_after(
    engine: &Engine,
    rel: &Relation,
    status: &mut Option<String>,
    failure: String,
    pause: &mut Duration,
) -> bool {
    if report(engine, rel, status, Some(failure)).await.is_err() {
        return false;
    }
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(LAST_RETRY);
    true
}

enum Stop {
    Shutdown,
    /// The source failed; reading resumes from the committed positions after a pause.
    Unavailable(String),
    /// The driver refused a batch.
    Refused(SqlError),
}

/// Opens a reader at the stream's committed positions and feeds the driver until it fails.
async fn read_from_committed(
    rel: &Relation,
    source: &Source,
    engine: &Engine,
    store: &Store,
    status: &mut Option<String>,
) -> Stop {
    let committed: BTreeMap<String, i64> = match Progress::load(store, rel.id) {
        Ok(p) => p
            .unwrap_or_default()
            .parts
            .into_iter()
            .map(|(part, p)| (part, p.offset))
            .collect(),
        Err(e) => return Stop::Unavailable(e.to_string()),
    };
    let mut reader = match source.open_reader(rel.schema(), &committed).await {
        Ok(Some(r)) => r,
        Ok(None) => return Stop::Shutdown,
        Err(e) => return Stop::Unavailable(e.to_string()),
    };
    info!(stream = %rel.name, "reading");
    loop {
        let batch = match reader.next_batch(POLL).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => return Stop::Unavailable(e.to_string()),
        };
        let op = WriteOp::Ingest {
            relation: rel.id,
            batch: Arc::new(batch),
        };
        match engine.write(op).await {
            // A committed batch clears the stream's source error.
            Ok(_) => *status = None,
            Err(SqlError::ShuttingDown) => return Stop::Shutdown,
            Err(e) => return Stop::Refused(e),
        }
    }
}

/// Records the source's error in the stream's progress when it changed.
async fn report(
    engine: &Engine,
    rel: &Relation,
    status: &mut Option<String>,
    error: Option<String>,
) -> Result<(), SqlError> {
    if *status == error {
        return Ok(());
    }
    engine
        .write(WriteOp::Status {
            relation: rel.id,
            error: error.clone(),
        })
        .await?;
    *status = error;
    Ok(())
}
