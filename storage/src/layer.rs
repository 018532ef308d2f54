//! An epoch's writes: gathered by a [`WriteBatch`] as they come, then held as a [`Layer`] in
//! key order until sled has them.
//!
//! Keys and values are copied into one buffer, so a write costs no allocation of its own.
//! The batch is put in key order once, at commit. An epoch writes thousands of keys that
//! share long prefixes (a relation's or an operator's). Comparing them byte by byte is what
//! such a sort costs, so each key's first [`HEAD_WORDS`] words are read as integers and
//! compared first; keys equal that far are compared by their next words, and so on.
//!
//! A put may say that its key is new ([`WriteBatch::put_new`]): the store holds no value
//! under it. Much of what an epoch writes is gone a few epochs later (a join's row for a
//! count that has since changed, a window's group once the window closes). A key whose
//! first write in a batch is new and whose last is a deletion leaves no trace in the layer,
//! and the store's writer drops such a key when the layers it moves into sled together
//! hold both writes: sled never sees the key at all.

/// Words of a key compared as integers before its bytes: enough to pass a state key's space,
/// view and operator (13 bytes) and reach its own bytes.
const HEAD_WORDS: usize = 3;

/// Where one write lives in the buffer: its key, then its value (none for a deletion).
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: usize,
    key_len: usize,
    value_len: Option<usize>,
    /// The key had no value before this write (see [`WriteBatch::put_new`]).
    new: bool,
}

impl Entry {
    fn key<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.at..self.at + self.key_len]
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let from = self.at + self.key_len;
        self.value_len.map(|len| &bytes[from..from + len])
    }
}

/// The writes of one epoch, applied all together by [`Store::commit`]. A later write of a
/// key replaces an earlier one.
///
/// [`Store::commit`]: crate::Store::commit
#[derive(Default)]
pub struct WriteBatch {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of the keys and values written (a deletion counts its key).
    written: u64,
}

impl WriteBatch {
    /// An empty batch with room for `bytes` of keys and values in `entries` writes.
    pub fn with_capacity(bytes: usize, entries: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries),
            written: 0,
        }
    }

    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.put_parts(&[key.as_ref()], value.as_ref());
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.delete_parts(&[key.as_ref()]);
    }

    /// [`WriteBatch::put`] of the key made of `parts` (a prefix and what follows it), without
    /// putting the key together first.
    pub fn put_parts(&mut self, parts: &[&[u8]], value: &[u8]) {
        self.push_put(parts, value, false);
    }

    /// A put of a key that has no value before it: neither in the store nor earlier in this
    /// batch. The caller knows (its state in memory is what the store holds): a key put new
    /// and deleted before it reaches sled is never written there. A key that does have a
    /// value must not be put this way, or a deletion that follows may leave it in sled.
    pub fn put_new(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.put_new_parts(&[key.as_ref()], value.as_ref());
    }

    /// [`WriteBatch::put_new`] of the key made of `parts`.
    pub fn put_new_parts(&mut self, parts: &[&[u8]], value: &[u8]) {
        self.push_put(parts, value, true);
    }

    fn push_put(&mut self, parts: &[&[u8]], value: &[u8], new: bool) {
        let entry = self.key(parts);
        self.bytes.extend_from_slice(value);
        self.written += value.len() as u64;
        self.entries.push(Entry {
            value_len: Some(value.len()),
            new,
            ..entry
        });
    }

    /// [`WriteBatch::delete`] of the key made of `parts`.
    pub fn delete_parts(&mut self, parts: &[&[u8]]) {
        let entry = self.key(parts);
        self.entries.push(entry);
    }

    /// Copies a key into the buffer: a deletion's entry until a value follows.
    fn key(&mut self, parts: &[&[u8]]) -> Entry {
        let at = self.bytes.len();
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        let key_len = self.bytes.len() - at;
        self.written += key_len as u64;
        Entry {
            at,
            key_len,
            value_len: None,
            new: false,
        }
    }

    /// Bytes of the keys and values written (a deletion counts its key).
    pub fn bytes(&self) -> u64 {
        self.written
    }

    /// The writes in the order made: each key, its value (None for a deletion), and whether
    /// the put said the key was new.
    pub fn writes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>, bool)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.key(&self.bytes), e.value(&self.bytes), e.new))
    }

    /// Number of writes in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The writes in key order, the last write of a key winning; a key put new and then
    /// deleted is left out.
    pub(crate) fn into_layer(self) -> Layer {
        let WriteBatch { bytes, entries, .. } = self;
        let mut order: Vec<(Head, u32)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (head(e.key(&bytes)), i as u32))
            .collect();
        // By heads and then by when they were written, as integers; then each run of equal
        // heads (keys equal that far) by the heads that follow, and so on (see
        // [`sort_runs`]), so that equal keys stay in the order written and the last of a run
        // is the newest.
        order.sort_unstable();
        sort_runs(&mut order, &entries, &bytes, 0);
        let mut sorted: Vec<Entry> = Vec::with_capacity(order.len());
        // Equal keys were taken as deep as each other and end with equal heads: where the
        // heads differ, so do the keys, and their bytes need no comparing.
        let mut last_head = None;
        for (h, i) in order {
            let entry = entries[i as usize];
            let same_head = last_head.replace(h) == Some(h);
            match sorted.last_mut() {
                // Whether the key was new is its first write's to say.
                Some(last) if same_head && last.key(&bytes) == entry.key(&bytes) => {
                    *last = Entry {
                        new: last.new,
                        ..entry
                    }
                }
                _ => {
                    drop_vanished(&mut sorted, |e| e.new && e.value_len.is_none());
                    sorted.push(entry)
                }
            }
        }
        drop_vanished(&mut sorted, |e| e.new && e.value_len.is_none());
        Layer {
            bytes,
            entries: sorted,
        }
    }
}

/// Sorts each run of equal heads in `order` (sorted by heads taken `depth` heads into
/// their keys, then by when written) by the keys' next heads, and so on down the keys. A run
/// whose keys all end within the heads compared is sorted by their bytes, stably: keys that
/// differ only in trailing zero bytes have equal heads. Keys that share long prefixes (a
/// join's rows under one key) so cost an integer sort per head rather than a byte comparison
/// of their prefixes per comparison. Past [`RUN_DEPTH`] heads a run is sorted by its bytes
/// too, so that a key of any length costs a bounded recursion.
fn sort_runs(order: &mut [(Head, u32)], entries: &[Entry], bytes: &[u8], depth: usize) {
    let skip = (depth + 1) * HEAD_BYTES;
    let mut from = 0;
    while from < order.len() {
        let run = order[from..]
            .iter()
            .take_while(|(h, _)| *h == order[from].0)
            .count();
        let keys = &mut order[from..from + run];
        from += run;
        if run == 1 {
            continue;
        }
        let key = |i: u32| entries[i as usize].key(bytes);
        if depth < RUN_DEPTH && keys.iter().any(|(_, i)| key(*i).len() > skip) {
            for (h, i) in keys.iter_mut() {
                *h = head(key(*i).get(skip..).unwrap_or_default());
            }
            keys.sort_unstable();
            sort_runs(keys, entries, bytes, depth + 1);
        } else {
            keys.sort_by(|(_, a), (_, b)| key(*a).cmp(key(*b)));
        }
    }
}

/// A key's first words, zero-padded: two keys whose heads differ compare as their heads do
/// (a key that ends inside the head is smaller than any longer key that differs from it
/// there, as a padding zero is no larger than any byte).
pub(crate) type Head = [u64; HEAD_WORDS];

const HEAD_BYTES: usize = HEAD_WORDS * 8;

/// How many heads deep [`sort_runs`] goes before comparing a run's keys as bytes.
const RUN_DEPTH: usize = 8;

fn head(key: &[u8]) -> Head {
    // A key as long as the head is read in place, as whole words: copying the bytes of each
    // word (a call to `memcpy` for a slice of unknown length) cost more than the sort's
    // comparisons. Only a shorter key is copied, once, into a padded head.
    let mut padded = [0u8; HEAD_BYTES];
    let bytes = match key.first_chunk::<HEAD_BYTES>() {
        Some(bytes) => bytes,
        None => {
            padded[..key.len()].copy_from_slice(key);
            &padded
        }
    };
    let (words, _) = bytes.as_chunks::<8>();
    std::array::from_fn(|i| u64::from_be_bytes(words[i]))
}

/// One committed epoch's writes in key order, one per key: what reads consult before sled
/// while the layer waits for the store's writer.
#[derive(Debug)]
pub(crate) struct Layer {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

/// A write as a layer holds it: the key and its value, or None for a deletion.
pub(crate) type Write<'a> = (&'a [u8], Option<&'a [u8]>);

/// A write with its key's head and whether the key was new before it (see
/// [`WriteBatch::put_new`]), as [`newest`] merges them.
pub(crate) type Headed<'a> = (Head, Write<'a>, bool);

impl Layer {
    /// The layer's write of a key, if it has one.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = self
            .entries
            .binary_search_by(|e| e.key(&self.bytes).cmp(key))
            .ok()?;
        Some(self.entries[i].value(&self.bytes))
    }

    /// Every write in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = Write<'_>> + '_ {
        self.entries.iter().map(|e| self.write(e))
    }

    /// Every write in key order, with its key's head.
    pub(crate) fn headed(&self) -> impl Iterator<Item = Headed<'_>> + '_ {
        self.entries.iter().map(|e| self.headed_write(e))
    }

    /// The writes whose keys start with `prefix`, in key order.
    pub(crate) fn under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = Write<'a>> + 'a {
        self.entries_under(prefix).map(|e| self.write(e))
    }

    /// [`Layer::under`], each write with its key's head.
    pub(crate) fn headed_under<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Headed<'a>> + 'a {
        self.entries_under(prefix).map(|e| self.headed_write(e))
    }

    fn entries_under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = &'a Entry> + 'a {
        let from = self
            .entries
            .partition_point(|e| e.key(&self.bytes) < prefix);
        self.entries[from..]
            .iter()
            .take_while(move |e| e.key(&self.bytes).starts_with(prefix))
    }

    fn write(&self, e: &Entry) -> Write<'_> {
        (e.key(&self.bytes), e.value(&self.bytes))
    }

    fn headed_write(&self, e: &Entry) -> Headed<'_> {
        let write = self.write(e);
        (head(write.0), write, e.new)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What [`newest`] does with a key that the layers put new and then delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vanished {
    /// Keep its deletion: a reader's merge, whose deletions hide what sled may hold (the
    /// writer may be moving an earlier put of the key into sled meanwhile).
    Keep,
    /// Leave it out: the writer's merge of layers none of which sled has begun to take, so
    /// that sled has no value under the key and needs no deletion.
    Drop,
}

/// The newest write of each key among layers' writes (each in key order; the layers given
/// oldest first), in key order: a merge, each key's writes taken together. Keys compare by
/// their heads first, as in the sort that made each layer.
pub(crate) fn newest<'a, I>(
    layers: impl IntoIterator<Item = I>,
    vanished: Vanished,
) -> Vec<Write<'a>>
where
    I: Iterator<Item = Headed<'a>>,
{
    let mut merge = Tournament::new(layers.into_iter().collect());
    let mut merged: Vec<Write<'a>> = Vec::with_capacity(merge.remaining());
    // Whether the last key of `merged` was new before its oldest write, and may vanish.
    let mut was_new = false;
    let drops = vanished == Vanished::Drop;
    while let Some((_, (key, value), new)) = merge.pop() {
        match merged.last_mut() {
            Some(last) if last.0 == key => *last = (key, value),
            _ => {
                drop_vanished(&mut merged, |w| drops && was_new && w.1.is_none());
                merged.push((key, value));
                was_new = new;
            }
        }
    }
    drop_vanished(&mut merged, |w| drops && was_new && w.1.is_none());
    merged
}

/// A merge of sorted layers as a tournament (a loser tree): each inner node keeps the
/// layer that lost the match played there, the root's winner is the next write. Taking a
/// write replays only the matches on its layer's path, a comparison per level, and moves
/// layer numbers rather than writes. Of equal keys the older layer's write wins first.
struct Tournament<'a, I> {
    layers: Vec<I>,
    /// Each layer's next write (None once it has no more).
    next: Vec<Option<Headed<'a>>>,
    /// Inner node `n` (1 up to the number of layers) holds the loser of its match; layer
    /// `i` is the leaf at `layers.len() + i`, and node `n`'s children are `2n` and `2n + 1`.
    losers: Vec<u32>,
    winner: u32,
}

impl<'a, I: Iterator<Item = Headed<'a>>> Tournament<'a, I> {
    fn new(mut layers: Vec<I>) -> Self {
        let next: Vec<Option<Headed<'a>>> = layers.iter_mut().map(Iterator::next).collect();
        let k = layers.len();
        let mut merge = Tournament {
            layers,
            next,
            losers: vec![0; k],
            winner: 0,
        };
        // Play every match from the leaves up, noting each match's winner until its
        // parent's is played.
        let mut winners = vec![0u32; 2 * k];
        for (i, w) in winners[k..].iter_mut().enumerate() {
            *w = i as u32;
        }
        for n in (1..k).rev() {
            let (a, b) = (winners[2 * n], winners[2 * n + 1]);
            let (w, l) = if merge.before(b, a) { (b, a) } else { (a, b) };
            winners[n] = w;
            merge.losers[n] = l;
        }
        merge.winner = if k > 1 { winners[1] } else { 0 };
        merge
    }

    /// Writes not yet taken, as far as the layers tell.
    fn remaining(&self) -> usize {
        let held = self.next.iter().filter(|n| n.is_some()).count();
        held + self.layers.iter().map(|l| l.size_hint().0).sum::<usize>()
    }

    /// Whether layer `a`'s next write comes before layer `b`'s: a smaller key, or the same
    /// key in an older layer. A layer with no more writes comes last.
    fn before(&self, a: u32, b: u32) -> bool {
        match (&self.next[a as usize], &self.next[b as usize]) {
            (Some((ha, (ka, _), _)), Some((hb, (kb, _), _))) => (ha, ka, a) < (hb, kb, b),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The next write of the merge.
    fn pop(&mut self) -> Option<Headed<'a>> {
        let w = self.winner as usize;
        let taken = self.next.get_mut(w)?.take()?;
        self.next[w] = self.layers[w].next();
        let mut winner = self.winner;
        let mut n = (self.layers.len() + w) / 2;
        while n >= 1 {
            if self.before(self.losers[n], winner) {
                std::mem::swap(&mut self.losers[n], &mut winner);
            }
            n /= 2;
        }
        self.winner = winner;
        Some(taken)
    }
}

/// Removes the last of `writes` if `vanished` says that it leaves no trace.
fn drop_vanished<T>(writes: &mut Vec<T>, vanished: impl Fn(&T) -> bool) {
    if writes.last().is_some_and(vanished) {
        writes.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws below `n` from a seeded xorshift generator: reproducible test data.
    fn draws(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    fn writes(layer: &Layer) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        layer
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn keys_sort_as_bytes_whatever_their_length() {
        // Keys that end inside the compared head, keys equal that far, zero bytes.
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            vec![0],
            vec![0, 0],
            b"a".to_vec(),
            b"ab".to_vec(),
            b"ab\0".to_vec(),
            b"ab\x01".to_vec(),
            vec![7; 24],
            [vec![7; 24], vec![0]].concat(),
            [vec![7; 24], vec![1]].concat(),
            [vec![7; 23], vec![8]].concat(),
            vec![0xff; 30],
        ];
        let mut batch = WriteBatch::default();
        for (i, key) in keys.iter().enumerate().rev() {
            batch.put(key, [i as u8]);
        }
        let layer = batch.into_layer();
        let mut expected = keys.clone();
        expected.sort();
        let got: Vec<Vec<u8>> = layer.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(got, expected);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(layer.get(key), Some(Some(&[i as u8][..])));
        }
        assert_eq!(layer.get(b"abc"), None);
    }

    #[test]
    fn keys_that_share_prefixes_past_several_heads_sort_as_bytes_and_keep_their_last_writes() {
        // Prefixes of 20 to 60 bytes, then a few bytes from a small alphabet (zeros among
        // them), so runs of equal heads go two and three heads deep and keys differ only in
        // trailing zeros.
        let mut draw = draws(0x2545_f491_4f6c_dd1du64);
        let mut batch = WriteBatch::default();
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..3000u32 {
            let mut key = vec![5; [20, 24, 40, 48, 60][draw(5) as usize]];
            key.extend((0..draw(4)).map(|_| draw(3) as u8));
            match draw(5) {
                0 => {
                    batch.delete(&key);
                    expected.insert(key, None);
                }
                _ => {
                    batch.put(&key, i.to_be_bytes());
                    expected.insert(key, Some(i.to_be_bytes().to_vec()));
                }
            }
        }
        assert_eq!(
            writes(&batch.into_layer()),
            expected.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn keys_longer_than_the_heads_sorted_sort_as_bytes() {
        // 100 KB keys equal but for their last byte: the sort stops going down by heads and
        // compares them as bytes.
        let long = |last: u8| [vec![9; 100_000], vec![last]].concat();
        let mut batch = WriteBatch::default();
        for (i, last) in [3u8, 1, 2, 1].into_iter().enumerate() {
            batch.put(long(last), [i as u8]);
        }
        assert_eq!(
            writes(&batch.into_layer()),
            vec![
                (long(1), Some(vec![3])),
                (long(2), Some(vec![2])),
                (long(3), Some(vec![0])),
            ]
        );
    }

    #[test]
    fn keys_with_equal_heads_keep_their_last_writes() {
        let mut batch = WriteBatch::default();
        for (i, key) in [&b"ab\0"[..], b"ab", b"ab\0", b"ab", b"ab\0\0"]
            .iter()
            .enumerate()
        {
            batch.put(key, [i as u8]);
        }
        assert_eq!(
            writes(&batch.into_layer()),
            vec![
                (b"ab".to_vec(), Some(vec![3])),
                (b"ab\0".to_vec(), Some(vec![2])),
                (b"ab\0\0".to_vec(), Some(vec![4])),
            ]
        );
    }

    #[test]
    fn the_last_write_of_a_key_wins_and_prefixes_select() {
        let mut batch = WriteBatch::default();
        batch.put(b"p/b", b"1");
        batch.put_parts(&[b"p/", b"a"], b"1");
        batch.delete(b"p/b");
        batch.put(b"q", b"1");
        batch.delete_parts(&[b"p", b"/a"]);
        batch.put(b"p/a", b"2");
        assert_eq!(batch.len(), 6);
        assert_eq!(batch.bytes(), 3 + 1 + 3 + 1 + 3 + 1 + 1 + 3 + 3 + 1);
        let layer = batch.into_layer();
        assert_eq!(
            writes(&layer),
            vec![
                (b"p/a".to_vec(), Some(b"2".to_vec())),
                (b"p/b".to_vec(), None),
                (b"q".to_vec(), Some(b"1".to_vec())),
            ]
        );
        let under: Vec<&[u8]> = layer.under(b"p/").map(|(k, _)| k).collect();
        assert_eq!(under, vec![&b"p/a"[..], &b"p/b"[..]]);
        assert_eq!(layer.under(b"r").count(), 0);
    }

    #[test]
    fn newest_orders_keys_beyond_their_heads() {
        let long = |tail: &[u8]| [vec![7; 24], tail.to_vec()].concat();
        let mut old = WriteBatch::default();
        old.put(long(&[2]), b"old");
        old.put(long(&[0]), b"old");
        old.put(vec![7; 23], b"old");
        let mut new = WriteBatch::default();
        new.put(long(&[1]), b"new");
        new.put(long(&[2]), b"new");
        new.put(long(&[]), b"new");
        let (old, new) = (old.into_layer(), new.into_layer());
        let merged: Vec<(Vec<u8>, &[u8])> = newest([old.headed(), new.headed()], Vanished::Drop)
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.expect("a put")))
            .collect();
        assert_eq!(
            merged,
            vec![
                (vec![7; 23], &b"old"[..]),
                (long(&[]), &b"new"[..]),
                (long(&[0]), &b"old"[..]),
                (long(&[1]), &b"new"[..]),
                (long(&[2]), &b"new"[..]),
            ]
        );
    }

    #[test]
    fn newest_of_many_layers_is_each_key_s_last_write() {
        // Layers of writes drawn from a few hundred keys that share long prefixes (equal
        // heads, so matches go to the bytes), merged in every count from 1 to 9.
        let mut draw = draws(0x9e37_79b9_7f4a_7c15u64);
        for count in 1..=9usize {
            let layers: Vec<Layer> = (0..count)
                .map(|_| {
                    let mut batch = WriteBatch::default();
                    for _ in 0..draw(200) {
                        let mut key = vec![3; 20 + draw(8) as usize];
                        key.extend((draw(300) as u16).to_be_bytes());
                        match draw(4) {
                            0 => batch.delete(&key),
                            _ => batch.put(&key, [draw(256) as u8]),
                        }
                    }
                    batch.into_layer()
                })
                .collect();
            let mut expected = std::collections::BTreeMap::new();
            for layer in &layers {
                for (k, v) in layer.iter() {
                    expected.insert(k.to_vec(), v.map(<[u8]>::to_vec));
                }
            }
            let merged: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                newest(layers.iter().map(|l| l.headed()), Vanished::Keep)
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect();
            assert_eq!(
                merged,
                expected.into_iter().collect::<Vec<_>>(),
                "{count} layers"
            );
        }
    }

    #[test]
    fn newest_keeps_the_last_layer_s_write() {
        let mut old = WriteBatch::default();
        old.put(b"a", b"1");
        old.put(b"b", b"1");
        let mut new = WriteBatch::default();
        new.delete(b"a");
        new.put(b"c", b"2");
        let mut newer = WriteBatch::default();
        newer.put(b"a", b"3");
        newer.put(b"0", b"3");
        let (old, new, newer) = (old.into_layer(), new.into_layer(), newer.into_layer());
        let merged = newest([old.headed(), new.headed()], Vanished::Drop);
        assert_eq!(
            merged,
            vec![
                (&b"a"[..], None),
                (&b"b"[..], Some(&b"1"[..])),
                (&b"c"[..], Some(&b"2"[..])),
            ]
        );
        let merged = newest([old.headed(), new.headed(), newer.headed()], Vanished::Drop);
        assert_eq!(
            merged,
            vec![
                (&b"0"[..], Some(&b"3"[..])),
                (&b"a"[..], Some(&b"3"[..])),
                (&b"b"[..], Some(&b"1"[..])),
                (&b"c"[..], Some(&b"2"[..])),
            ]
        );
    }

    #[test]
    fn a_key_put_new_and_deleted_in_one_batch_leaves_no_trace() {
        let mut batch = WriteBatch::default();
        batch.put_new(b"gone", b"1");
        batch.put(b"gone", b"2");
        batch.delete(b"gone");
        batch.put_new(b"kept", b"1");
        batch.put(b"kept", b"2");
        // A deletion first: the key may be in the store, whatever follows says.
        batch.delete(b"old");
        batch.put_new(b"old", b"1");
        batch.delete(b"old");
        let layer = batch.into_layer();
        assert_eq!(
            writes(&layer),
            vec![
                (b"kept".to_vec(), Some(b"2".to_vec())),
                (b"old".to_vec(), None),
            ]
        );
        let new: Vec<bool> = layer.headed().map(|(_, _, new)| new).collect();
        assert_eq!(new, vec![true, false]);
    }

    #[test]
    fn the_writer_s_merge_drops_a_key_put_new_then_deleted_and_a_reader_s_keeps_it() {
        let mut first = WriteBatch::default();
        first.put_new(b"a", b"1");
        first.put_new(b"b", b"1");
        first.put(b"c", b"1");
        let mut second = WriteBatch::default();
        second.delete(b"a");
        second.put(b"b", b"2");
        second.delete(b"c");
        let mut third = WriteBatch::default();
        third.delete(b"b");
        third.put_new(b"a", b"3");
        let (first, second, third) = (first.into_layer(), second.into_layer(), third.into_layer());
        fn merge<'a>(layers: &[&'a Layer], vanished: Vanished) -> Vec<Write<'a>> {
            newest(layers.iter().map(|l| l.headed()), vanished)
        }
        // Only the oldest write of a key says whether it was new: `c` may be in sled.
        assert_eq!(
            merge(&[&first, &second], Vanished::Drop),
            vec![(&b"b"[..], Some(&b"2"[..])), (&b"c"[..], None)]
        );
        assert_eq!(
            merge(&[&first, &second], Vanished::Keep),
            vec![
                (&b"a"[..], None),
                (&b"b"[..], Some(&b"2"[..])),
                (&b"c"[..], None)
            ]
        );
        assert_eq!(
            merge(&[&first, &second, &third], Vanished::Drop),
            vec![(&b"a"[..], Some(&b"3"[..])), (&b"c"[..], None)]
        );
        // A later layer alone: `a` was new there too, `b`'s deletion is of a key sled may have.
        assert_eq!(
            merge(&[&second, &third], Vanished::Drop),
            vec![
                (&b"a"[..], Some(&b"3"[..])),
                (&b"b"[..], None),
                (&b"c"[..], None)
            ]
        );
    }
}
