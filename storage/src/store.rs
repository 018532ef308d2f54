use std::path::Path;

use std::sync::Arc;

use parking_lot::lock_api::ArcRwLockReadGuard;
use parking_lot::{RawRwLock, RwLock, RwLockReadGuard};
use sled::IVec;

use crate::error::StorageResult;

/// The durable store: one sled tree plus the read gate that isolates scans from commits.
pub struct Store {
    db: sled::Db,
    /// Held shared by readers while they copy rows out, exclusively by [`Store::commit`]:
    /// sled's `apply_batch` is atomic for crash recovery but not isolated from a running scan.
    gate: Arc<RwLock<()>>,
}

/// A shared hold on the store: no commit can land while it lives.
pub type ReadGuard<'a> = RwLockReadGuard<'a, ()>;

/// A [`ReadGuard`] that owns its hold, so that it can live across awaits and move between
/// threads (a query pins one epoch from planning until its scans have read their rows).
pub type EpochPin = ArcRwLockReadGuard<RawRwLock, ()>;

impl Store {
    /// Opens (or creates) the store in a directory.
    pub fn open(path: &Path) -> StorageResult<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        Ok(Self {
            db,
            gate: Arc::new(RwLock::new(())),
        })
    }

    /// A temporary store that disappears on drop (tests).
    pub fn temporary() -> StorageResult<Self> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Self {
            db,
            gate: Arc::new(RwLock::new(())),
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
        Ok(self.db.get(key)?)
    }

    /// Every pair under a prefix, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = StorageResult<(IVec, IVec)>> + '_ {
        self.db.scan_prefix(prefix).map(|r| r.map_err(Into::into))
    }

    /// The last pair under a prefix.
    pub fn last_in_prefix(&self, prefix: &[u8]) -> StorageResult<Option<(IVec, IVec)>> {
        Ok(self.db.scan_prefix(prefix).next_back().transpose()?)
    }

    /// Applies a batch atomically; with `durable` it is flushed to disk before returning.
    pub fn commit(&self, batch: WriteBatch, durable: bool) -> StorageResult<()> {
        self.commit_and(batch, durable, || {})
    }

    /// [`Store::commit`], running `then` (a catalog change made visible) before any reader
    /// can pin the new epoch: a reader that pins before it takes its catalog snapshot sees
    /// definitions and rows of the same epoch, and (with `durable`) only flushed ones.
    pub fn commit_and(
        &self,
        batch: WriteBatch,
        durable: bool,
        then: impl FnOnce(),
    ) -> StorageResult<()> {
        // Readers pin the gate: with `durable`, the flush happens before they can see the
        // batch, so nothing a reader saw is lost by a crash.
        let _exclusive = self.gate.write();
        self.db.apply_batch(batch.inner)?;
        if durable {
            self.db.flush()?;
        }
        then();
        Ok(())
    }

    /// A name for this store that no other store has: what it calls itself in external
    /// systems (a sink's progress row in its target). Made on first use and kept.
    pub fn instance_id(&self) -> StorageResult<String> {
        let key = crate::keys::meta("instance");
        if let Some(v) = self.db.get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{:x}{:x}", nanos, std::process::id());
        // Two callers racing agree on whichever id landed first.
        let _ = self
            .db
            .compare_and_swap(&key, None as Option<&[u8]>, Some(id.as_bytes()))?;
        self.db.flush()?;
        let v = self
            .db
            .get(&key)?
            .expect("the instance id was just written");
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes everything committed so far to disk (what a commit that was not durable left
    /// in memory).
    pub fn flush(&self) -> StorageResult<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> StorageResult<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

/// The writes of one epoch, applied all together by [`Store::commit`].
#[derive(Default)]
pub struct WriteBatch {
    inner: sled::Batch,
    ops: usize,
    bytes: u64,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += (key.len() + value.len()) as u64;
        self.inner.insert(key, value);
        self.ops += 1;
    }

    pub fn delete(&mut self, key: impl Into<IVec>) {
        let key = key.into();
        self.bytes += key.len() as u64;
        self.inner.remove(key);
        self.ops += 1;
    }

    /// Bytes of the keys and values written (a deletion counts its key).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of writes in the batch.
    pub fn len(&self) -> usize {
        self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;

    #[test]
    fn batch_applies_together_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = WriteBatch::default();
            batch.put(keys::row(1, b"a"), b"1".to_vec());
            batch.put(keys::row(1, b"b"), b"2".to_vec());
            batch.put(keys::meta("epoch"), 9u64.to_be_bytes().to_vec());
            store.commit(batch, true).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let rows: Vec<_> = store
            .scan_prefix(&keys::rows_prefix(1))
            .map(|r| r.unwrap().1.to_vec())
            .collect();
        assert_eq!(rows, vec![b"1".to_vec(), b"2".to_vec()]);
        let last = store
            .last_in_prefix(&keys::rows_prefix(1))
            .unwrap()
            .unwrap();
        assert_eq!(&*last.0, keys::row(1, b"b").as_slice());
    }

    #[test]
    fn delete_removes() {
        let store = Store::temporary().unwrap();
        let mut batch = WriteBatch::default();
        batch.put(keys::row(2, b"x"), b"1".to_vec());
        store.commit(batch, false).unwrap();
        let mut batch = WriteBatch::default();
        batch.delete(keys::row(2, b"x"));
        assert_eq!(batch.len(), 1);
        store.commit(batch, false).unwrap();
        assert!(store.get(&keys::row(2, b"x")).unwrap().is_none());
    }
}
