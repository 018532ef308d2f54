//! Live figures of the running pipeline, kept in memory by the epoch driver and read by
//! `eddy_catalog.progress`, `eddy_catalog.epochs` and the Prometheus endpoint.
//!
//! What must survive a restart (watermarks, row counts, source positions) is in
//! [`Progress`](crate::progress::Progress), committed with each epoch. What is here describes
//! the process as it runs: rates over the last [`RATE_WINDOW`], the last epoch's duration and
//! lag, the recent epochs, and the views being backfilled. It starts empty at each start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The span over which rates are averaged.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How many of the most recent epochs `eddy_catalog.epochs` shows.
pub const EPOCHS_KEPT: usize = 256;

/// What started an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochKind {
    /// Writes of clients (INSERT, UPDATE, DELETE, COPY) and of push connectors.
    Write,
    /// Rows a replayable source generated.
    Source,
    /// A CREATE (with a view's backfill or a sink's snapshot).
    Create,
    /// A DROP.
    Drop,
    /// An ALTER, or a CREATE OR REPLACE swapping a view's new version in.
    Alter,
    /// Views with a trigger interval taking what arrived since their last run.
    Trigger,
}

impl EpochKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EpochKind::Write => "write",
            EpochKind::Source => "source",
            EpochKind::Create => "create",
            EpochKind::Drop => "drop",
            EpochKind::Alter => "alter",
            EpochKind::Trigger => "trigger",
        }
    }
}

/// One committed epoch.
#[derive(Clone, Debug)]
pub struct EpochRecord {
    pub id: u64,
    pub kind: EpochKind,
    pub started: SystemTime,
    /// From the first write staged to the commit on disk.
    pub duration: Duration,
    /// Rows of change entering streams and tables.
    pub rows: u64,
    /// Bytes of keys and values written to the store.
    pub bytes: u64,
    /// Write commands folded into it.
    pub writes: usize,
}

/// What one relation did in one epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelationEpoch {
    /// Rows of change it took in: rows written to a stream or table, rows of its sources'
    /// changes that a view read.
    pub rows_in: u64,
    /// Rows of change it committed.
    pub rows_out: u64,
    /// Time spent on it: a view's operators; for streams and tables, the epoch's staging.
    pub busy: Duration,
}

/// The live figures of one relation.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Rows taken in since the server started.
    pub rows_in: u64,
    /// Rows of change committed since the server started.
    pub rows_out: u64,
    /// The last epoch that changed it.
    pub last_epoch: Option<u64>,
    /// That epoch's duration.
    pub last_duration: Duration,
    /// How long the oldest row of that epoch waited between its arrival and the commit.
    pub lag: Duration,
    /// When that epoch committed.
    pub last_commit: Option<SystemTime>,
    /// (when, rows in, time spent) of the epochs within the rate window.
    recent: VecDeque<(Instant, u64, Duration)>,
}

impl Live {
    /// Rows taken in per second over the rate window (or since start, when that is shorter).
    pub fn input_rate(&self, now: Instant, uptime: Duration) -> f64 {
        let span = RATE_WINDOW.min(uptime).max(Duration::from_millis(100));
        let rows: u64 = self.in_window(now).map(|(_, rows, _)| rows).sum();
        rows as f64 / span.as_secs_f64()
    }

    /// Rows processed per second of work over the rate window: how fast it could go.
    pub fn processed_rate(&self, now: Instant) -> f64 {
        let (rows, busy) = self
            .in_window(now)
            .fold((0u64, Duration::ZERO), |(r, b), (_, rows, busy)| {
                (r + rows, b + *busy)
            });
        if busy.is_zero() {
            0.0
        } else {
            rows as f64 / busy.as_secs_f64()
        }
    }

    fn in_window(&self, now: Instant) -> impl Iterator<Item = &(Instant, u64, Duration)> {
        self.recent
            .iter()
            .filter(move |(at, _, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
    }
}

/// A view being built from the history of its sources.
#[derive(Clone, Debug)]
pub struct Backfill {
    pub started: SystemTime,
    /// Rows of history read so far.
    pub done: u64,
    /// Rows of history in all, as counted when it started; None when a source regenerates
    /// its history (Nexmark), whose size is known only once generated.
    pub total: Option<u64>,
}

impl Backfill {
    /// Percent done (100 when there is nothing to read), if the total is known.
    pub fn percent(&self) -> Option<f64> {
        self.total.map(|t| match t {
            0 => 100.0,
            t => (self.done.min(t) as f64 * 100.0) / t as f64,
        })
    }
}

/// Totals since the server started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub epochs: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Seconds spent in epochs, summed.
    pub busy: Duration,
}

#[derive(Default)]
struct Inner {
    relations: HashMap<u64, Live>,
    epochs: VecDeque<EpochRecord>,
    backfills: BTreeMap<String, Backfill>,
    totals: Totals,
}

/// The live figures, shared by the driver (which writes them) and readers.
pub struct Metrics {
    started: Instant,
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("uptime", &self.uptime())
            .finish()
    }
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The figures stay usable even if a holder panicked: they are only figures.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records a committed epoch and what each relation did in it. `arrived`: when the
    /// oldest of its rows reached the server.
    pub fn record_epoch(
        &self,
        record: EpochRecord,
        arrived: Option<Instant>,
        relations: &HashMap<u64, RelationEpoch>,
    ) {
        let now = Instant::now();
        let committed = record.started + record.duration;
        let lag = arrived.map_or(record.duration, |a| now.saturating_duration_since(a));
        let mut inner = self.inner();
        for (&id, work) in relations {
            let live = inner.relations.entry(id).or_default();
            live.rows_in += work.rows_in;
            live.rows_out += work.rows_out;
            live.last_epoch = Some(record.id);
            live.last_duration = record.duration;
            live.lag = lag;
            live.last_commit = Some(committed);
            live.recent.push_back((now, work.rows_in, work.busy));
            while live
                .recent
                .front()
                .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
            {
                live.recent.pop_front();
            }
        }
        inner.totals.epochs += 1;
        inner.totals.rows += record.rows;
        inner.totals.bytes += record.bytes;
        inner.totals.busy += record.duration;
        if inner.epochs.len() == EPOCHS_KEPT {
            inner.epochs.pop_front();
        }
        inner.epochs.push_back(record);
    }

    /// The live figures of a relation (default ones if it did nothing since the start).
    pub fn relation(&self, id: u64) -> Live {
        self.inner().relations.get(&id).cloned().unwrap_or_default()
    }

    /// Forgets dropped relations.
    pub fn forget(&self, ids: impl IntoIterator<Item = u64>) {
        let mut inner = self.inner();
        for id in ids {
            inner.relations.remove(&id);
        }
    }

    /// The most recent epochs, oldest first.
    pub fn epochs(&self) -> Vec<EpochRecord> {
        self.inner().epochs.iter().cloned().collect()
    }

    pub fn totals(&self) -> Totals {
        self.inner().totals
    }

    /// A view's backfill begins: `total` rows of history to read.
    pub fn backfill_started(&self, view: &str, total: Option<u64>) {
        self.inner().backfills.insert(
            view.to_string(),
            Backfill {
                started: SystemTime::now(),
                done: 0,
                total,
            },
        );
    }

    /// `rows` more rows of a view's history were read.
    pub fn backfill_advanced(&self, view: &str, rows: u64) {
        if let Some(b) = self.inner().backfills.get_mut(view) {
            b.done += rows;
        }
    }

    /// A view's backfill is over (committed or failed).
    pub fn backfill_finished(&self, view: &str) {
        self.inner().backfills.remove(view);
    }

    /// The backfill of that view, if one runs.
    pub fn backfill(&self, view: &str) -> Option<Backfill> {
        self.inner().backfills.get(view).cloned()
    }

    /// Every backfill that runs, by view name.
    pub fn backfills(&self) -> BTreeMap<String, Backfill> {
        self.inner().backfills.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(id: u64, rows: u64) -> EpochRecord {
        EpochRecord {
            id,
            kind: EpochKind::Write,
            started: SystemTime::now(),
            duration: Duration::from_millis(2),
            rows,
            bytes: rows * 10,
            writes: 1,
        }
    }

    #[test]
    fn rates_count_the_rows_of_the_window() {
        let metrics = Metrics::default();
        let work = RelationEpoch {
            rows_in: 500,
            rows_out: 500,
            busy: Duration::from_millis(5),
        };
        metrics.record_epoch(epoch(1, 500), None, &HashMap::from([(7, work)]));
        metrics.record_epoch(epoch(2, 500), None, &HashMap::from([(7, work)]));
        let live = metrics.relation(7);
        assert_eq!(
            (live.rows_in, live.rows_out, live.last_epoch),
            (1000, 1000, Some(2))
        );
        // 1000 rows in 10 ms of work.
        let processed = live.processed_rate(Instant::now());
        assert!((processed - 100_000.0).abs() < 1.0, "{processed}");
        // Over a window of one second: 1000 rows per second.
        let input = live.input_rate(Instant::now(), Duration::from_secs(1));
        assert!((input - 1000.0).abs() < 1.0, "{input}");
        // Out of the window, nothing.
        let later = Instant::now() + RATE_WINDOW + Duration::from_secs(1);
        assert_eq!(live.input_rate(later, Duration::from_secs(60)), 0.0);
        assert_eq!(metrics.totals().rows, 1000);
        assert_eq!(metrics.epochs().len(), 2);
    }

    #[test]
    fn epochs_kept_are_the_most_recent() {
        let metrics = Metrics::default();
        for id in 1..=(EPOCHS_KEPT as u64 + 10) {
            metrics.record_epoch(epoch(id, 1), None, &HashMap::new());
        }
        let epochs = metrics.epochs();
        assert_eq!(epochs.len(), EPOCHS_KEPT);
        assert_eq!(epochs.first().map(|e| e.id), Some(11));
        assert_eq!(metrics.totals().epochs, EPOCHS_KEPT as u64 + 10);
    }

    #[test]
    fn backfills_report_their_share() {
        let metrics = Metrics::default();
        metrics.backfill_started("v", Some(400));
        metrics.backfill_advanced("v", 100);
        assert_eq!(metrics.backfill("v").and_then(|b| b.percent()), Some(25.0));
        metrics.backfill_finished("v");
        assert!(metrics.backfill("v").is_none());
        metrics.backfill_started("empty", Some(0));
        assert_eq!(
            metrics.backfill("empty").and_then(|b| b.percent()),
            Some(100.0)
        );
        metrics.backfill_started("replayed", None);
        assert_eq!(metrics.backfill("replayed").and_then(|b| b.percent()), None);
    }
}
