use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::lock_api::ArcRwLockReadGuard;
use parking_lot::{Condvar, Mutex, MutexGuard, RawRwLock, RwLock, RwLockReadGuard};
use sled::IVec;
use tracing::{debug, error};

use crate::error::StorageResult;
use crate::layer::{Layer, Vanished, WriteBatch, newest};
use crate::wal::Wal;

/// Most committed layers waiting for sled before a commit waits for the writer.
const MAX_LAYERS: usize = 64;
/// Most bytes in layers waiting for sled before a commit waits for the writer.
const MAX_LAYER_BYTES: u64 = 256 * 1024 * 1024;
/// Layers the writer lets gather before it moves them into sled. Epochs rewrite much of what
/// the epochs before them wrote (a group's state, its row in a view), sled's cost is per key,
/// and the writer writes each key of the layers it takes once.
const GATHER_LAYERS: usize = 16;
/// Bytes of waiting layers at which the writer stops gathering.
const GATHER_BYTES: u64 = 64 * 1024 * 1024;
/// Longest the writer lets a layer wait for others. A source's epochs come a few a second
/// (Nexmark's of 100,000 events): in a second a dozen gather, and a key the later ones
/// rewrite or delete (a window's count, a join's row for it) reaches sled once or not at
/// all. Reads consult the waiting layers meanwhile; commits wait only at [`MAX_LAYERS`] or
/// [`MAX_LAYER_BYTES`].
const GATHER_FOR: Duration = Duration::from_millis(1000);

/// The durable store: one sled tree, the epoch log that makes a commit durable before sled
/// has it, and the read gate that isolates scans from commits.
///
/// A commit appends its batch to the epoch log (synced when durable) and adds it, in memory,
/// as the newest of the layers that reads consult before sled. A writer thread moves layers
/// into sled (several at once, the newest write of a key winning) and then drops them and
/// their log segments. The commit path so pays one log append, not sled's per-key cost.
pub struct Store {
    inner: Arc<Inner>,
    /// Held shared by readers while they copy rows out, exclusively by [`Store::commit`]
    /// while it adds a layer: a reader sees all of an epoch or none of it.
    gate: Arc<RwLock<()>>,
    writer: Option<JoinHandle<()>>,
    /// Syncs a log file off the caller's thread (None for a temporary store).
    syncer: Option<Sender<SyncRequest>>,
    /// Epoch inputs the log held at start-up, until the engine takes them.
    inputs: Mutex<BTreeMap<u64, Vec<u8>>>,
}

/// A file to sync and where to say how it went.
type SyncRequest = (Arc<File>, SyncSender<io::Result<()>>);

/// An epoch's input written to the log and on its way to disk (see [`Store::log_input`]). It
/// holds the log until its epoch's layer follows it ([`LoggedInput::commit_and`]) or the
/// epoch is given up ([`LoggedInput::cancel`]).
pub struct LoggedInput<'a> {
    store: &'a Store,
    wal: MutexGuard<'a, Option<Wal>>,
    epoch: u64,
    /// Says when the input is on disk (None: nothing to wait for).
    synced: Option<Receiver<io::Result<()>>>,
}

struct Inner {
    db: sled::Db,
    /// Committed layers not yet in sled, oldest first.
    layers: RwLock<Vec<Arc<Layer>>>,
    /// The epoch log (None for a temporary store). Held by a commit from its append until
    /// its layer is in `layers`, so that a rotation splits the log where the layers split.
    wal: Mutex<Option<Wal>>,
    writer: Mutex<WriterState>,
    /// Wakes the writer (a commit) and those who wait for it (a layer written).
    signal: Condvar,
}

#[derive(Default)]
struct WriterState {
    stop: bool,
    /// Bytes of each layer waiting, oldest first.
    sizes: std::collections::VecDeque<u64>,
    /// Layers written into sled so far (a flush waits for this to pass its count).
    written: u64,
    /// Layers committed so far.
    committed: u64,
    /// Flushes waiting for the writer (which then stops gathering).
    flushes: usize,
    /// The writer leaves layers where they are (tests of what a crash leaves).
    #[cfg(test)]
    paused: bool,
}

/// A shared hold on the store: no commit can land while it lives.
pub type ReadGuard<'a> = RwLockReadGuard<'a, ()>;

/// A [`ReadGuard`] that owns its hold, so that it can live across awaits and move between
/// threads (a query pins one epoch from planning until its scans have read their rows).
pub type EpochPin = ArcRwLockReadGuard<RawRwLock, ()>;

impl Store {
    /// Opens (or creates) the store in a directory, replaying what the epoch log holds that
    /// sled may not.
    pub fn open(path: &Path) -> StorageResult<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let (mut wal, replayed) = Wal::open(&wal_dir(path))?;
        if !replayed.layers.is_empty() {
            let mut batch = sled::Batch::default();
            for (key, value) in replayed.layers.into_iter().flatten() {
                match value {
                    Some(v) => batch.insert(key, v),
                    None => batch.remove(key),
                }
            }
            db.apply_batch(batch)?;
            db.flush()?;
        }
        // The inputs move into the new segment before the old segments go: until the engine
        // has committed their epochs again, they are all that holds those rows.
        for (epoch, input) in &replayed.inputs {
            wal.append_input(*epoch, input)?;
        }
        if !replayed.inputs.is_empty() {
            wal.file().sync_data()?;
        }
        wal.remove_replayed()?;
        Self::start(db, Some(wal), replayed.inputs)
    }

    /// A temporary store that disappears on drop (tests).
    pub fn temporary() -> StorageResult<Self> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::start(db, None, BTreeMap::new())
    }

    fn start(
        db: sled::Db,
        wal: Option<Wal>,
        inputs: BTreeMap<u64, Vec<u8>>,
    ) -> StorageResult<Self> {
        let syncer = match wal.is_some() {
            true => {
                let (tx, rx) = std::sync::mpsc::channel::<SyncRequest>();
                std::thread::Builder::new()
                    .name("store-syncer".into())
                    .spawn(move || {
                        for (file, reply) in rx {
                            let _ = reply.send(file.sync_data());
                        }
                    })?;
                Some(tx)
            }
            false => None,
        };
        let inner = Arc::new(Inner {
            db,
            layers: RwLock::new(Vec::new()),
            wal: Mutex::new(wal),
            writer: Mutex::new(WriterState::default()),
            signal: Condvar::new(),
        });
        let writer = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || inner.write_layers())?
        };
        Ok(Self {
            inner,
            gate: Arc::new(RwLock::new(())),
            writer: Some(writer),
            syncer,
            inputs: Mutex::new(inputs),
        })
    }

    /// Blocks commits until the guard is dropped, so that several scans see one epoch.
    pub fn read(&self) -> ReadGuard<'_> {
        self.gate.read()
    }

    /// Like [`Store::read`], as an owned guard. Whoever holds it must not take another hold
    /// (a waiting commit would block the second and so both).
    pub fn pin(&self) -> EpochPin {
        self.gate.read_arc()
    }

    pub fn get(&self, key: &[u8]) -> StorageResult<Option<IVec>> {
        {
            let layers = self.inner.layers.read();
            for layer in layers.iter().rev() {
                if let Some(value) = layer.get(key) {
                    return Ok(value.map(IVec::from));
                }
            }
        }
        Ok(self.inner.db.get(key)?)
    }

    /// Every pair under a prefix, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = StorageResult<(IVec, IVec)>> + '_ {
        let overlay = self.overlay(prefix);
        Merged {
            sled: self.inner.db.scan_prefix(prefix).peekable(),
            overlay: overlay.into_iter().peekable(),
        }
    }

    /// The last pair under a prefix.
    pub fn last_in_prefix(&self, prefix: &[u8]) -> StorageResult<Option<(IVec, IVec)>> {
        let overlay = self.overlay(prefix);
        let from_overlay = overlay
            .iter()
            .rev()
            .find_map(|(k, v)| Some((k.clone(), v.clone()?)));
        let mut from_sled = None;
        for pair in self.inner.db.scan_prefix(prefix).rev() {
            let (key, value) = pair?;
            if overlay.binary_search_by(|(k, _)| k.cmp(&key)).is_err() {
                from_sled = Some((key, value));
                break;
            }
        }
        Ok(match (from_overlay, from_sled) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    /// What the waiting layers hold under a prefix, the newest write of each key, in key
    /// order.
    fn overlay(&self, prefix: &[u8]) -> Vec<(IVec, Option<IVec>)> {
        let layers = self.inner.layers.read();
        let owned = |(k, v): (&[u8], Option<&[u8]>)| (IVec::from(k), v.map(IVec::from));
        match layers.len() {
            0 => Vec::new(),
            1 => layers[0].under(prefix).map(owned).collect(),
            _ => newest(
                layers.iter().map(|l| l.headed_under(prefix)),
                Vanished::Keep,
            )
            .into_iter()
            .map(owned)
            .collect(),
        }
    }

    /// Applies a batch atomically; with `durable` it is on disk before returning.
    pub fn commit(&self, batch: WriteBatch, durable: bool) -> StorageResult<()> {
        self.commit_and(batch, durable, || {})
    }

    /// [`Store::commit`], running `then` (a catalog change made visible) before any reader
    /// can pin the new epoch: a reader that pins before it takes its catalog snapshot sees
    /// definitions and rows of the same epoch, and (with `durable`) only ones on disk.
    pub fn commit_and(
        &self,
        batch: WriteBatch,
        durable: bool,
        then: impl FnOnce(),
    ) -> StorageResult<()> {
        let inner = &self.inner;
        let bytes = batch.bytes();
        let layer = Arc::new(batch.into_layer());
        inner.wait_for_room();
        let mut wal = inner.wal.lock();
        if let Some(wal) = wal.as_mut() {
            // Readers go on meanwhile: the layer is not theirs to see until it is on disk.
            wal.append(&layer, durable)?;
        }
        self.publish(layer, bytes, wal, then);
        Ok(())
    }

    /// Writes the input of epoch `epoch` (whatever the caller needs to compute the epoch
    /// again) to the log and starts syncing it on another thread, so that the epoch's layer,
    /// computed meanwhile, is committed without a sync of its own: the commit waits only for
    /// the input to be on disk. A crash can then lose the layer but not the input, which
    /// [`Store::logged_inputs`] hands back at the next start for its epoch to be computed
    /// again. The log stays held until the epoch commits or is cancelled, so that no rotation
    /// parts an input from its layer.
    pub fn log_input(&self, epoch: u64, input: &[u8]) -> StorageResult<LoggedInput<'_>> {
        self.inner.wait_for_room();
        let mut wal = self.inner.wal.lock();
        let synced = match (wal.as_mut(), &self.syncer) {
            (Some(log), Some(syncer)) => {
                log.append_input(epoch, input)?;
                let (reply, synced) = sync_channel(1);
                syncer
                    .send((log.file(), reply))
                    .map_err(|_| io::Error::other("the epoch log's syncer stopped"))?;
                Some(synced)
            }
            _ => None,
        };
        Ok(LoggedInput {
            store: self,
            wal,
            epoch,
            synced,
        })
    }

    /// The inputs of epochs that the log held at start-up (see [`Store::log_input`]), by
    /// epoch; the caller keeps those whose epochs did not commit. Taken once.
    pub fn logged_inputs(&self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut *self.inputs.lock())
            .into_iter()
            .collect()
    }

    /// Makes a layer written to the log (under `wal`) visible and hands it to the writer.
    fn publish(
        &self,
        layer: Arc<Layer>,
        bytes: u64,
        wal: MutexGuard<'_, Option<Wal>>,
        then: impl FnOnce(),
    ) {
        let inner = &self.inner;
        {
            let _exclusive = self.gate.write();
            inner.layers.write().push(layer);
            then();
        }
        {
            // Before the log is let go: the writer takes layers and their sizes together.
            let mut state = inner.writer.lock();
            state.sizes.push_back(bytes);
            state.committed += 1;
        }
        drop(wal);
        inner.signal.notify_all();
    }

    /// A name for this store that no other store has: what it calls itself in external
    /// systems (a sink's progress row in its target). Made on first use and kept.
    pub fn instance_id(&self) -> StorageResult<String> {
        let db = &self.inner.db;
        let key = crate::keys::meta("instance");
        if let Some(v) = db.get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{:x}{:x}", nanos, std::process::id());
        // Two callers racing agree on whichever id landed first.
        let _ = db.compare_and_swap(&key, None as Option<&[u8]>, Some(id.as_bytes()))?;
        db.flush()?;
        let v = db.get(&key)?.expect("the instance id was just written");
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes everything committed so far into sled and to disk.
    pub fn flush(&self) -> StorageResult<()> {
        let inner = &self.inner;
        let mut state = inner.writer.lock();
        let target = state.committed;
        state.flushes += 1;
        while state.written < target {
            inner.signal.notify_all();
            inner.signal.wait(&mut state);
        }
        state.flushes -= 1;
        drop(state);
        inner.db.flush()?;
        Ok(())
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> StorageResult<u64> {
        let log = self.inner.wal.lock().as_ref().map_or(0, Wal::len);
        Ok(self.inner.db.size_on_disk()? + log)
    }
}

impl LoggedInput<'_> {
    /// Commits the epoch's batch like [`Store::commit_and`] with durability: its layer is
    /// written to the log unsynced and made visible once the input is on disk.
    pub fn commit_and(mut self, batch: WriteBatch, then: impl FnOnce()) -> StorageResult<()> {
        let bytes = batch.bytes();
        let layer = Arc::new(batch.into_layer());
        if let Some(wal) = self.wal.as_mut() {
            wal.append(&layer, false)?;
        }
        self.wait()?;
        self.store.publish(layer, bytes, self.wal, then);
        Ok(())
    }

    /// Gives the epoch up: its input is not to be applied again.
    pub fn cancel(mut self) -> StorageResult<()> {
        // Whether it reached the disk or not, the cancellation follows it.
        let _ = self.wait();
        if let Some(wal) = self.wal.as_mut() {
            wal.append_cancel(self.epoch)?;
        }
        Ok(())
    }

    fn wait(&mut self) -> StorageResult<()> {
        if let Some(synced) = self.synced.take() {
            synced
                .recv()
                .map_err(|_| io::Error::other("the epoch log's syncer stopped"))??;
        }
        Ok(())
    }
}

impl Drop for Store {
    /// Writes the waiting layers into sled and stops the writer.
    fn drop(&mut self) {
        self.inner.writer.lock().stop = true;
        self.inner.signal.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl WriterState {
    #[cfg(test)]
    fn is_paused(&self) -> bool {
        self.paused
    }

    #[cfg(not(test))]
    fn is_paused(&self) -> bool {
        false
    }
}

impl Inner {
    /// Blocks while too much waits for sled (the writer falls behind a flood of commits).
    fn wait_for_room(&self) {
        let mut state = self.writer.lock();
        while !state.stop
            && (state.sizes.len() >= MAX_LAYERS
                || state.sizes.iter().sum::<u64>() >= MAX_LAYER_BYTES)
        {
            self.signal.wait(&mut state);
        }
    }

    /// The writer thread: moves committed layers into sled until the store is dropped.
    fn write_layers(&self) {
        if let Err(e) = self.ready_next_segment() {
            error!(error = %e, "cannot make the epoch log's next segment ready");
        }
        // After a failed attempt sled may hold part of what the waiting layers wrote, a put
        // of a new key among it: every deletion is then written.
        let mut vanished = Vanished::Drop;
        loop {
            {
                let mut state = self.writer.lock();
                let mut since: Option<Instant> = None;
                while !state.stop {
                    if state.sizes.is_empty() || state.is_paused() {
                        self.signal.wait(&mut state);
                        continue;
                    }
                    let gathered = state.sizes.len() >= GATHER_LAYERS
                        || state.sizes.iter().sum::<u64>() >= GATHER_BYTES
                        || state.flushes > 0;
                    let until = *since.get_or_insert_with(Instant::now) + GATHER_FOR;
                    if gathered || Instant::now() >= until {
                        break;
                    }
                    self.signal.wait_until(&mut state, until);
                }
                if self.layers.read().is_empty() {
                    if state.stop {
                        return;
                    }
                    continue;
                }
            }
            match self.write_waiting(vanished) {
                Ok(()) => vanished = Vanished::Drop,
                Err(e) => {
                    error!(error = %e, "cannot move committed epochs into sled; retrying");
                    vanished = Vanished::Keep;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Writes every waiting layer into sled, flushes it, and then lets go of the layers and
    /// of the log segments that held them. A key the layers put new and then delete is not
    /// written at all, unless `vanished` keeps it.
    fn write_waiting(&self, vanished: Vanished) -> StorageResult<()> {
        let (taken, segment) = {
            let mut wal = self.wal.lock();
            let taken: Vec<Arc<Layer>> = self.layers.read().clone();
            let segment = wal.as_mut().map(Wal::rotate).transpose()?;
            (taken, segment)
        };
        // Key by key rather than as one sled batch: a batch holds sled's global write lock
        // and stalls every reader of sled until it is done. A crash half way is repaired
        // by the log, which goes only once sled has everything flushed.
        let writes = match taken.as_slice() {
            [one] => one.iter().collect(),
            _ => newest(taken.iter().map(|l| l.headed()), vanished),
        };
        let waited: usize = taken.iter().map(|l| l.len()).sum();
        debug!(
            layers = taken.len(),
            waited,
            written = writes.len(),
            "moving layers into sled"
        );
        for (key, value) in writes {
            match value {
                Some(v) => self.db.insert(key, v)?,
                None => self.db.remove(key)?,
            };
        }
        self.db.flush()?;
        if let Some(segment) = segment
            && let Some(wal) = self.wal.lock().as_ref()
        {
            wal.remove_before(segment)?;
        }
        self.ready_next_segment()?;
        self.layers.write().drain(..taken.len());
        let mut state = self.writer.lock();
        state.sizes.drain(..taken.len());
        state.written += taken.len() as u64;
        self.signal.notify_all();
        Ok(())
    }

    /// Makes the log segment after the open one ready, here on the writer's thread rather
    /// than when a commit waits for the rotation.
    fn ready_next_segment(&self) -> StorageResult<()> {
        let wanted = self.wal.lock().as_ref().and_then(Wal::wants_next);
        if let Some((n, dir)) = wanted {
            let file = crate::wal::make_segment(&dir, n)?;
            if let Some(wal) = self.wal.lock().as_mut() {
                wal.ready_next(n, file);
            }
        }
        Ok(())
    }
}

fn wal_dir(path: &Path) -> PathBuf {
    path.join("epochs")
}

/// Sled's pairs under a prefix merged with the waiting layers' (which win, and whose
/// deletions hide sled's pair).
struct Merged<I: Iterator<Item = sled::Result<(IVec, IVec)>>> {
    sled: std::iter::Peekable<I>,
    overlay: std::iter::Peekable<std::vec::IntoIter<(IVec, Option<IVec>)>>,
}

impl<I: Iterator<Item = sled::Result<(IVec, IVec)>>> Iterator for Merged<I> {
    type Item = StorageResult<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let from_sled = match (self.sled.peek(), self.overlay.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((s, _))), Some((o, _))) => match s.cmp(o) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => {
                        // The layer's write replaces sled's pair.
                        self.sled.next();
                        false
                    }
                    std::cmp::Ordering::Greater => false,
                },
            };
            if from_sled {
                return self.sled.next().map(|r| r.map_err(Into::into));
            }
            if let Some((key, Some(value))) = self.overlay.next() {
                return Some(Ok((key, value)));
            }
            // A deletion: nothing to yield for this key.
        }
    }
}

#[cfg(test)]
mod tests;
