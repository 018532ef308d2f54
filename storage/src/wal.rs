//! The epoch log: every committed [`Layer`] appended to a file and (for a durable commit)
//! synced before the commit returns, so that sled can take the layer later, off the commit
//! path.
//!
//! The log is a directory of numbered segment files. A segment holds records
//! `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`; a payload is the layer's
//! entries in key order, each `[1][key length: u32][key][value length: u32][value]` for a put
//! or `[0][key length: u32][key]` for a deletion. The writer of sled rotates to a new segment
//! when it takes the layers committed so far, and deletes the old segments once those layers
//! are flushed in sled. At start-up every segment left is replayed into sled, in order:
//! records are idempotent as a sequence, so one that sled already holds is harmless. A torn
//! record at the end (a crash mid-append, before the commit returned) ends the replay.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sled::IVec;
use tracing::warn;

use crate::layer::Layer;

/// The epoch log's open segment.
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    /// Reused for each record.
    buf: Vec<u8>,
}

/// A layer read back from the log: its writes in order.
pub(crate) type Replayed = Vec<(IVec, Option<IVec>)>;

impl Wal {
    /// Opens the log in `dir`, returning it with the records of the segments left there (to
    /// be applied to sled before anything reads; then [`Wal::remove_replayed`]).
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Vec<Replayed>)> {
        fs::create_dir_all(dir)?;
        let segments = segments(dir)?;
        let mut records = Vec::new();
        for (_, path) in &segments {
            read_segment(path, &mut records)?;
        }
        let next = segments.last().map_or(0, |(n, _)| n + 1);
        let wal = Self {
            dir: dir.to_path_buf(),
            file: create_segment(dir, next)?,
            segment: next,
            buf: Vec::new(),
        };
        Ok((wal, records))
    }

    /// Deletes the segments that [`Wal::open`] found, once sled has their records.
    pub(crate) fn remove_replayed(&self) -> io::Result<()> {
        self.remove_before(self.segment)
    }

    /// Appends a layer; with `sync` it is on disk when this returns (and so is every record
    /// before it).
    pub(crate) fn append(&mut self, layer: &Layer, sync: bool) -> io::Result<()> {
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&[0; 8]);
        buf.reserve(layer.len() * 9);
        for (key, value) in layer.iter() {
            buf.push(value.is_some() as u8);
            put_bytes(buf, key)?;
            if let Some(v) = value {
                put_bytes(buf, v)?;
            }
        }
        let len = u32::try_from(buf.len() - 8).map_err(|_| too_large())?;
        let crc = crc32fast::hash(&buf[8..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all(buf)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Starts a new segment for the records to come; returns its number. Every record
    /// appended so far is in the segments before it, and on disk: sled gets them only after
    /// this, so that even without synced commits sled never holds part of an epoch that the
    /// log could lose.
    pub(crate) fn rotate(&mut self) -> io::Result<u64> {
        self.file.sync_data()?;
        let next = self.segment + 1;
        self.file = create_segment(&self.dir, next)?;
        self.segment = next;
        Ok(next)
    }

    /// Deletes the segments before segment `n` (their records are all in sled), including
    /// any an earlier failed attempt left.
    pub(crate) fn remove_before(&self, n: u64) -> io::Result<()> {
        for (m, path) in segments(&self.dir)? {
            if m < n {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Bytes of the open segment.
    pub(crate) fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }
}

/// The segments in `dir`, in order, with their numbers.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let n = path
                .file_name()?
                .to_str()?
                .strip_prefix("segment-")?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((n, path))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("segment-{n:020}.log"))
}

fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, n))?;
    // The new file's name must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_large())?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an epoch too large for the log",
    )
}

/// Appends the whole records of a segment to `out`; stops at a torn or corrupt one.
fn read_segment(path: &Path, out: &mut Vec<Replayed>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    while at < bytes.len() {
        match parse_record(&bytes[at..]) {
            Some((record, used)) => {
                out.push(record);
                at += used;
            }
            None => {
                warn!(
                    segment = %path.display(),
                    offset = at,
                    "the epoch log ends in a torn record; it was never acknowledged"
                );
                break;
            }
        }
    }
    Ok(())
}

/// One record and its length in bytes, or None if it is incomplete or corrupt.
fn parse_record(bytes: &[u8]) -> Option<(Replayed, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(8..8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut entries = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let put = *payload.get(at)? == 1;
        at += 1;
        let key = take_bytes(payload, &mut at)?;
        let value = match put {
            true => Some(take_bytes(payload, &mut at)?),
            false => None,
        };
        entries.push((key, value));
    }
    Some((entries, 8 + len))
}

fn take_bytes(payload: &[u8], at: &mut usize) -> Option<IVec> {
    let len = u32::from_le_bytes(payload.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let bytes = payload.get(*at + 4..*at + 4 + len)?;
    *at += 4 + len;
    Some(IVec::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Layer {
        let mut batch = crate::WriteBatch::default();
        for (k, v) in entries {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch.into_layer()
    }

    #[test]
    fn records_read_back_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, replayed) = Wal::open(dir.path()).unwrap();
            assert!(replayed.is_empty());
            wal.append(&layer(&[("a", Some("1")), ("b", None)]), true)
                .unwrap();
            assert_eq!(wal.rotate().unwrap(), 1);
            wal.append(&layer(&[("a", Some("2"))]), true).unwrap();
        }
        // A crash mid-append leaves part of a record.
        let last = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);

        let (wal, replayed) = Wal::open(dir.path()).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 3);
        let expected = vec![
            vec![
                (IVec::from("a"), Some(IVec::from("1"))),
                (IVec::from("b"), None),
            ],
            vec![(IVec::from("a"), Some(IVec::from("2")))],
        ];
        assert_eq!(replayed, expected);
        wal.remove_replayed().unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_record_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&layer(&[("k", Some("v"))]), true).unwrap();
        }
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let end = bytes.len() - 1;
        bytes[end] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, replayed) = Wal::open(dir.path()).unwrap();
        assert!(replayed.is_empty());
    }
}
