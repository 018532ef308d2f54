//! The store's tests: reads over waiting layers, the writer, crashes and replays.

use super::*;
use crate::keys;

impl Store {
    fn pause_writer(&self, paused: bool) {
        self.inner.writer.lock().paused = paused;
        self.inner.signal.notify_all();
    }
}

fn batch(puts: &[(&[u8], &[u8])], deletes: &[&[u8]]) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for (k, v) in puts {
        batch.put(keys::row(7, k), v);
    }
    for k in deletes {
        batch.delete(keys::row(7, k));
    }
    batch
}

/// Every pair of relation 7, through `get`, `scan_prefix` and `last_in_prefix`, which
/// must agree.
fn contents(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefix = keys::rows_prefix(7);
    let scanned: Vec<(Vec<u8>, Vec<u8>)> = store
        .scan_prefix(&prefix)
        .map(|r| {
            r.map(|(k, v)| (k[prefix.len()..].to_vec(), v.to_vec()))
                .unwrap()
        })
        .collect();
    for (k, v) in &scanned {
        let got = store.get(&keys::row(7, k)).unwrap().unwrap();
        assert_eq!(&got.to_vec(), v);
    }
    let last = store.last_in_prefix(&prefix).unwrap();
    assert_eq!(
        last.map(|(k, _)| k[prefix.len()..].to_vec()),
        scanned.last().map(|(k, _)| k.clone())
    );
    scanned
}

fn pairs(expected: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

#[test]
fn reads_see_waiting_layers_over_sled() {
    let store = Store::temporary().unwrap();
    store
        .commit(
            batch(&[(b"a", b"1"), (b"b", b"1"), (b"c", b"1")], &[]),
            true,
        )
        .unwrap();
    store.flush().unwrap();
    store.pause_writer(true);
    // Over sled: an overwrite, a deletion of the last key, a new key in the middle.
    store
        .commit(batch(&[(b"a", b"2"), (b"bb", b"2")], &[b"c"]), true)
        .unwrap();
    // A second layer deletes a key the first wrote and rewrites one sled holds.
    store
        .commit(batch(&[(b"b", b"3")], &[b"bb"]), true)
        .unwrap();
    let expected = pairs(&[(b"a", b"2"), (b"b", b"3")]);
    assert_eq!(contents(&store), expected);
    assert!(store.get(&keys::row(7, b"c")).unwrap().is_none());
    // Once the writer has moved them into sled, the same.
    store.pause_writer(false);
    store.flush().unwrap();
    assert!(store.inner.layers.read().is_empty());
    assert_eq!(contents(&store), expected);
}

#[test]
fn the_last_write_of_a_key_in_a_batch_wins() {
    let store = Store::temporary().unwrap();
    let mut b = WriteBatch::default();
    for (k, v) in [
        (b"z", Some(b"1")),
        (b"a", Some(b"1")),
        (b"z", None),
        (b"a", None),
    ] {
        match v {
            Some(v) => b.put(keys::row(7, k), v),
            None => b.delete(keys::row(7, k)),
        }
    }
    b.put(keys::row(7, b"a"), b"2");
    b.put(keys::row(7, b"m"), b"1");
    assert_eq!(b.len(), 6);
    store.commit(b, true).unwrap();
    let expected = pairs(&[(b"a", b"2"), (b"m", b"1")]);
    assert_eq!(contents(&store), expected);
    store.flush().unwrap();
    assert_eq!(contents(&store), expected);
}

#[test]
fn a_key_put_new_and_deleted_before_sled_has_it_never_reaches_sled() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let row = |k: &[u8]| keys::row(7, k);
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(batch(&[(b"held", b"1")], &[]), true).unwrap();
        store.flush().unwrap();
        store.pause_writer(true);
        let mut first = WriteBatch::default();
        first.put_new(row(b"brief"), b"1");
        first.put_new(row(b"stays"), b"1");
        store.commit(first, true).unwrap();
        let mut second = WriteBatch::default();
        second.delete(row(b"brief"));
        second.put(row(b"stays"), b"2");
        // Marked new against the contract, so that its deletion shows what the
        // writer leaves out: sled keeps the value the deletion would have removed.
        second.put_new(row(b"held"), b"3");
        store.commit(second, true).unwrap();
        let mut third = WriteBatch::default();
        third.delete(row(b"held"));
        store.commit(third, true).unwrap();
        // Readers see every deletion while the layers wait.
        assert_eq!(contents(&store), pairs(&[(b"stays", b"2")]));
        copy_dir(dir.path(), crashed.path());
        store.pause_writer(false);
        store.flush().unwrap();
        assert!(store.inner.db.get(row(b"brief")).unwrap().is_none());
        assert_eq!(store.inner.db.get(row(b"stays")).unwrap().unwrap(), b"2");
        assert_eq!(store.inner.db.get(row(b"held")).unwrap().unwrap(), b"1");
    }
    // The log knows nothing of new keys: replayed, every deletion is applied.
    let store = Store::open(crashed.path()).unwrap();
    assert_eq!(contents(&store), pairs(&[(b"stays", b"2")]));
}

#[test]
fn a_crash_before_sled_has_the_layers_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .commit(batch(&[(b"a", b"1"), (b"b", b"1")], &[]), true)
            .unwrap();
        store.flush().unwrap();
        store.pause_writer(true);
        store.commit(batch(&[(b"c", b"2")], &[b"a"]), true).unwrap();
        store.commit(batch(&[(b"b", b"3")], &[]), true).unwrap();
        // What a kill at this instant leaves on disk.
        copy_dir(dir.path(), crashed.path());
    }
    let segments = || {
        let mut names: Vec<String> = std::fs::read_dir(wal_dir(crashed.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("epochs-"))
            .collect();
        names.sort();
        names
    };
    let replayed = segments();
    let store = Store::open(crashed.path()).unwrap();
    assert_eq!(contents(&store), pairs(&[(b"b", b"3"), (b"c", b"2")]));
    // Replayed into sled, and the log starts over: the segments replayed are gone, and
    // what is left is a new one (and the next, which the writer may have made ready).
    assert!(store.inner.layers.read().is_empty());
    let left = segments();
    assert!(left.iter().all(|name| !replayed.contains(name)), "{left:?}");
    assert!((1..=2).contains(&left.len()), "{left:?}");
}

#[test]
fn an_input_outlives_a_crash_until_its_epoch_commits_or_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.pause_writer(true);
        // Epoch 1 commits; epoch 2 is cancelled; epoch 3 is cut short by the crash.
        let logged = store.log_input(1, b"one").unwrap();
        logged
            .commit_and(batch(&[(b"a", b"1")], &[]), || {})
            .unwrap();
        store.log_input(2, b"two").unwrap().cancel().unwrap();
        let in_flight = store.log_input(3, b"three").unwrap();
        copy_dir(dir.path(), crashed.path());
        in_flight.cancel().unwrap();
    }
    for _ in 0..2 {
        // Moved into the new log at start-up: a second crash keeps them too.
        let store = Store::open(crashed.path()).unwrap();
        assert_eq!(contents(&store), pairs(&[(b"a", b"1")]));
        assert_eq!(
            store.logged_inputs(),
            vec![(1, b"one".to_vec()), (3, b"three".to_vec())]
        );
        assert!(store.logged_inputs().is_empty());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn batch_applies_together_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(keys::row(1, b"a"), b"1");
        batch.put(keys::row(1, b"b"), b"2");
        batch.put(keys::meta("epoch"), 9u64.to_be_bytes());
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
    batch.put(keys::row(2, b"x"), b"1");
    store.commit(batch, false).unwrap();
    let mut batch = WriteBatch::default();
    batch.delete(keys::row(2, b"x"));
    assert_eq!(batch.len(), 1);
    store.commit(batch, false).unwrap();
    assert!(store.get(&keys::row(2, b"x")).unwrap().is_none());
}
