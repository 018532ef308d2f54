//! One input's rows as a join holds them, and how they are stored.
//!
//! Rows are indexed by join key, each with its multiplicity. They are stored one key each
//! (`[tag][key length][key][row] -> multiplicity`), written at each checkpoint for the
//! rows that changed since the last one.
//!
//! A side that only grows and loses rows only to the watermarks (an append-only input of a
//! join bounded by event time, such as Nexmark q7's bids) is stored by checkpoint instead:
//! the rows it took since the last checkpoint, and still holds, go into one segment, a single
//! stored value; a segment is deleted once the watermarks have freed every row in it; and the
//! time before which rows are freed (the side's horizon) is stored beside them. Restoring
//! reads the segments and keeps the rows at or after the horizon, which are exactly the rows
//! held: a row is freed as soon as the horizon passes its time. Written a key a row, such a
//! side writes every row twice (once new, once deleted) and the store moves each write on
//! its own; by segment, it writes a row once, in bulk, and a segment freed before the store
//! moves it is never moved at all.
//!
//! Either way, state written in the other layout (by an older plan of the view) is read and
//! rewritten in the side's own at the next checkpoint.

use std::collections::BTreeMap;

use super::{Bucket, Key, Row, expiry};
use crate::codec::{Decoder, decode_row};
use crate::operator::StateWriter;
use crate::window::micros;
use crate::{DataflowError, DataflowResult, FastMap};

/// The kinds of stored entries, added to a side's tag (0: left, 1: right).
const ROW: u8 = 0;
const SEGMENT: u8 = 2;
const HORIZON: u8 = 4;

#[derive(Default)]
pub(super) struct Side {
    pub(super) index: FastMap<Key, Bucket>,
    /// Rows stored one key each: (key, row) pairs changed since the last checkpoint, each
    /// with whether the pair was held then (and so is in the store).
    pub(super) dirty: FastMap<(Key, Row), bool>,
    /// With a time bound: the column of the rows' event time, and the rows by that time.
    pub(super) time_column: Option<usize>,
    pub(super) times: expiry::TimeIndex,
    /// Distinct rows held (counted as they come and go: progress asks every epoch).
    held: usize,
    /// Stored by segment (append-only sides that expire).
    pub(super) journal: Option<Journal>,
    /// Stored keys of the other layout, to delete at the next checkpoint.
    stale: Vec<Vec<u8>>,
}

/// How a side stored by segment stands.
#[derive(Default)]
pub(super) struct Journal {
    /// Rows taken since the last checkpoint: key, row, copies and event time.
    fresh: Vec<(Key, Row, i64, Option<i64>)>,
    /// Stored segments by number, each with the latest time of its rows.
    segments: BTreeMap<u64, i64>,
    next: u64,
    /// Rows before this time have been freed; and the horizon as stored.
    pub(super) horizon: Option<i64>,
    stored_horizon: Option<i64>,
}

/// A row read back from the store, before the side takes it.
pub(super) struct Restored {
    key: Key,
    row: Row,
    copies: i64,
    time: Option<i64>,
}

impl Side {
    /// Adds `w` copies of a row under its key (`time`: its event time, if the side's rows
    /// expire).
    pub(super) fn add(
        &mut self,
        key: &Key,
        row: &Row,
        w: i64,
        time: Option<i64>,
    ) -> DataflowResult<()> {
        if self.journal.is_some() && w < 0 {
            return Err(DataflowError::Internal(
                "an append-only join input retracted a row".into(),
            ));
        }
        let (key, was) = self.hold(key, row, w, time)?;
        match &mut self.journal {
            Some(journal) => journal.fresh.push((key, row.clone(), w, time)),
            None => {
                self.dirty.entry((key, row.clone())).or_insert(was != 0);
            }
        }
        Ok(())
    }

    /// Changes the copies of a row held, without recording the change for the store;
    /// returns the index's copy of the key and the copies held before.
    fn hold(
        &mut self,
        key: &Key,
        row: &Row,
        w: i64,
        time: Option<i64>,
    ) -> DataflowResult<(Key, i64)> {
        // Rows under one key share the index's copy of it (an occupied entry's key is the
        // one the index holds).
        let entry = self.index.entry(key.clone());
        let key = entry.key().clone();
        let bucket = entry.or_default();
        let n = bucket.entry(row.clone()).or_insert(0);
        let was = *n;
        *n += w;
        let now = *n;
        if now < 0 {
            return Err(DataflowError::Internal(
                "join side holds a negative row".into(),
            ));
        }
        match (was, now) {
            (0, n) if n > 0 => self.held += 1,
            (w, 0) if w > 0 => self.held -= 1,
            _ => {}
        }
        if now == 0 {
            bucket.remove(row);
            if bucket.is_empty() {
                self.index.remove(&key);
            }
        }
        if let Some(t) = time.filter(|_| was == 0 && now > 0) {
            self.times.push(t, key.clone(), row.clone());
        }
        Ok((key, was))
    }

    /// A held row was freed by the watermarks (see [`Side::forget_before`]).
    pub(super) fn freed(&mut self, key: &Key, row: Row) {
        self.held -= 1;
        if self.journal.is_none() {
            // Held before this epoch unless this epoch added it.
            self.dirty.entry((key.clone(), row)).or_insert(true);
        }
    }

    /// Writes what changed since the last checkpoint under `tag` (the side's).
    pub(super) fn checkpoint(&mut self, tag: u8, state: &mut StateWriter<'_>) {
        for key in self.stale.drain(..) {
            state.delete(&key);
        }
        if let Some(journal) = &mut self.journal {
            journal.checkpoint(tag, &self.index, state);
        }
        let mut k = Vec::new();
        for ((key, row), stored) in self.dirty.drain() {
            let held = self.index.get(&key).and_then(|b| b.get(&row));
            if held.is_none() && !stored {
                // Came and went since the last checkpoint.
                continue;
            }
            row_key(tag, &key, &row, &mut k);
            match held {
                Some(w) if stored => state.put(&k, &w.to_le_bytes()),
                Some(w) => state.put_new(&k, &w.to_le_bytes()),
                None => state.delete(&k),
            }
        }
    }

    pub(super) fn rows(&self) -> usize {
        self.held
    }

    /// The rows under a key, with their multiplicities.
    pub(super) fn under(&self, key: &[u8]) -> impl Iterator<Item = (&Row, &i64)> {
        self.index.get(key).into_iter().flatten()
    }
}

/// The stored key of a row held by a side stored one key a row, written over `k`.
fn row_key(tag: u8, key: &[u8], row: &[u8], k: &mut Vec<u8>) {
    k.clear();
    k.push(tag + ROW);
    k.extend((key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(row);
}

fn segment_key(tag: u8, number: u64) -> Vec<u8> {
    let mut k = vec![tag + SEGMENT];
    k.extend(number.to_be_bytes());
    k
}

impl Journal {
    /// Writes the rows taken since the last checkpoint and still held as one segment,
    /// deletes the segments whose rows are all freed, and stores the horizon.
    fn checkpoint(&mut self, tag: u8, index: &FastMap<Key, Bucket>, state: &mut StateWriter<'_>) {
        // Each row: its key and row, each after a 4-byte length, then copies and time.
        let size = self
            .fresh
            .iter()
            .map(|(k, r, ..)| 24 + k.len() + r.len())
            .sum();
        let mut segment = Vec::with_capacity(size);
        let (mut rows, mut latest) = (0, i64::MIN);
        let mut timeless = Vec::new();
        for (key, row, copies, time) in self.fresh.drain(..) {
            match time {
                None => timeless.push((key, row)),
                Some(t) if self.horizon.is_some_and(|h| t < h) => {}
                Some(t) => {
                    for part in [&key[..], &row[..]] {
                        segment.extend((part.len() as u32).to_le_bytes());
                        segment.extend_from_slice(part);
                    }
                    segment.extend(copies.to_le_bytes());
                    segment.extend(t.to_le_bytes());
                    latest = latest.max(t);
                    rows += 1;
                }
            }
        }
        // Without a time a row is never freed: it is stored as a key of its own, with the
        // copies it has now.
        timeless.sort_unstable();
        timeless.dedup();
        let mut k = Vec::new();
        for (key, row) in timeless {
            if let Some(held) = index.get(&key).and_then(|b| b.get(&row)) {
                row_key(tag, &key, &row, &mut k);
                state.put(&k, &held.to_le_bytes());
            }
        }
        if !segment.is_empty() {
            state.put_new_holding(&segment_key(tag, self.next), &segment, rows);
            self.segments.insert(self.next, latest);
            self.next += 1;
        }
        let Some(horizon) = self.horizon else {
            return;
        };
        self.segments.retain(|&number, &mut latest| {
            let freed = latest < horizon;
            if freed {
                state.delete(&segment_key(tag, number));
            }
            !freed
        });
        if self.stored_horizon != Some(horizon) {
            state.put(&[tag + HORIZON], &horizon.to_le_bytes());
            self.stored_horizon = Some(horizon);
        }
    }
}

/// A side's stored state as read back, entry by entry, before the side takes it: segments
/// wait for the horizon, which is stored after them.
#[derive(Default)]
pub(super) struct Restoring {
    rows: Vec<(Vec<u8>, Restored)>,
    segments: Vec<(u64, Vec<u8>, Vec<Restored>)>,
    horizon: Option<(Vec<u8>, i64)>,
}

impl Restoring {
    /// Reads one stored entry of the side (`key` begins with the entry's tag); `width` is
    /// the side's column count and `time_column` its time column, if its rows expire.
    pub(super) fn read(
        &mut self,
        key: Vec<u8>,
        value: &[u8],
        width: usize,
        time_column: Option<usize>,
    ) -> DataflowResult<()> {
        let corrupt = || DataflowError::Corrupt("join state key".into());
        let (&tag, rest) = key.split_first().ok_or_else(corrupt)?;
        match tag & !1 {
            ROW => {
                let len_bytes: [u8; 4] = rest
                    .get(..4)
                    .ok_or_else(corrupt)?
                    .try_into()
                    .map_err(|_| corrupt())?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let join_key = Key::from(rest.get(4..4 + len).ok_or_else(corrupt)?);
                let row = Row::from(&rest[4 + len..]);
                let time = match time_column {
                    Some(c) => decode_row(&row, width)?.get(c).and_then(micros),
                    None => None,
                };
                let copies = Decoder::new(value).i64()?;
                let restored = Restored {
                    key: join_key,
                    row,
                    copies,
                    time,
                };
                self.rows.push((key, restored));
            }
            SEGMENT => {
                let number: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
                let mut rows = Vec::new();
                let mut d = Decoder::new(value);
                while !d.is_empty() {
                    let key = Key::from(d.len_prefixed()?);
                    let row = Row::from(d.len_prefixed()?);
                    let copies = d.i64()?;
                    let time = Some(d.i64()?);
                    rows.push(Restored {
                        key,
                        row,
                        copies,
                        time,
                    });
                }
                self.segments.push((u64::from_be_bytes(number), key, rows));
            }
            HORIZON => self.horizon = Some((key, Decoder::new(value).i64()?)),
            _ => return Err(corrupt()),
        }
        Ok(())
    }

    /// Gives the side what was read: the rows it held, in its own layout (what is stored
    /// in the other is rewritten at its next checkpoint).
    pub(super) fn restore(self, side: &mut Side) -> DataflowResult<()> {
        let horizon = self.horizon.as_ref().map(|(_, h)| *h);
        let live = |r: &Restored| match (r.time, horizon) {
            (Some(t), Some(h)) => t >= h,
            _ => true,
        };
        for (stored, r) in self.rows {
            side.hold(&r.key, &r.row, r.copies, r.time)?;
            if let (Some(journal), Some(_)) = (&mut side.journal, r.time) {
                // A row with a time goes into the next segment.
                journal.fresh.push((r.key, r.row, r.copies, r.time));
                side.stale.push(stored);
            }
        }
        for (number, stored, rows) in self.segments {
            for r in rows.iter().filter(|r| live(r)) {
                side.hold(&r.key, &r.row, r.copies, r.time)?;
                if side.journal.is_none() {
                    side.dirty.insert((r.key.clone(), r.row.clone()), false);
                }
            }
            match &mut side.journal {
                Some(journal) => {
                    let latest = rows.iter().filter_map(|r| r.time).max();
                    journal.segments.insert(number, latest.unwrap_or(i64::MIN));
                    journal.next = journal.next.max(number + 1);
                }
                None => side.stale.push(stored),
            }
        }
        match (&mut side.journal, self.horizon) {
            (Some(journal), Some((_, h))) => {
                journal.horizon = Some(h);
                journal.stored_horizon = Some(h);
            }
            (None, Some((stored, _))) => side.stale.push(stored),
            (_, None) => {}
        }
        Ok(())
    }
}
