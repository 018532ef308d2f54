//! The epoch log: every committed [`Layer`] appended to a file and (for a durable commit)
//! synced before the commit returns, so that sled can take the layer later, off the commit
//! path.
//!
//! The log is a directory of numbered segment files. A segment holds records
//! `[payload length: u32 LE][crc32: u32 LE][segment number: u64 LE][payload]`, the checksum
//! covering the segment number and the payload; a payload is the layer's entries in key
//! order, each `[1][key length: u32][key][value length: u32][value]` for a put or
//! `[0][key length: u32][key]` for a deletion. The writer of sled rotates to a new segment
//! when it takes the layers committed so far, and lets go of the old segments once those
//! layers are flushed in sled. At start-up every segment left is replayed into sled, in
//! order: records are idempotent as a sequence, so one that sled already holds is harmless.
//! A record that is torn (a crash mid-append, before the commit returned), zero, or from
//! another segment ends the segment's replay.
//!
//! Besides layers the log holds the inputs of epochs whose layer need not be synced (see
//! [`crate::Store::log_input`]): the top byte of a record's segment word says what the record
//! is (0 a layer, 1 an epoch's input `[epoch: u64 LE][bytes]`, 2 the cancellation of an
//! epoch's input `[epoch: u64 LE]`; segment numbers stay below 2^56). Replay hands the
//! inputs back, the latest of each epoch that no later record cancelled, for the engine to
//! apply again where their layers did not survive.
//!
//! A sync of a file that grew must also write its new length to the file system's journal,
//! which on ext4 doubles its cost. So segments are written in place rather than appended
//! to: a segment is made ready ahead of its turn, off the commit path, with its first
//! [`SEGMENT_BYTES`] already on disk, either zeros or an old segment's bytes. Old segments
//! are kept as spares for that, their stale records told apart by the segment number every
//! record carries. Files of the earlier format (`segment-N.log`, records without a segment
//! number) are still replayed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sled::IVec;
use tracing::warn;

use crate::layer::Layer;

/// Bytes a segment has on disk before its first record: commits that fit are written in
/// place. A larger run of epochs grows the file, as appending did.
pub(crate) const SEGMENT_BYTES: u64 = 4 << 20;
/// Old segments kept for reuse.
const SPARES: usize = 2;
/// Bytes before a record's payload.
const HEADER: usize = 16;
/// The bits of a record's segment word that hold the segment number; the top byte says what
/// the record holds.
const SEGMENT_MASK: u64 = (1 << 56) - 1;

/// What a record holds.
#[derive(Clone, Copy)]
enum Content {
    Layer = 0,
    Input = 1,
    Cancel = 2,
}

impl Content {
    /// The content a record's segment word names in its top byte.
    fn of(word: u64) -> Option<Self> {
        match word >> 56 {
            0 => Some(Content::Layer),
            1 => Some(Content::Input),
            2 => Some(Content::Cancel),
            _ => None,
        }
    }
}

/// The epoch log's open segment.
pub(crate) struct Wal {
    dir: PathBuf,
    /// Shared with whoever syncs it off the log's lock (see [`Wal::file`]).
    file: Arc<File>,
    segment: u64,
    /// Where the next record goes in `file`.
    end: u64,
    /// The next segment, made ready by [`Wal::ready_next`] (its number and file).
    next: Option<(u64, File)>,
    /// Reused for each record.
    buf: Vec<u8>,
}

/// A layer read back from the log: its writes in order.
pub(crate) type Replayed = Vec<(IVec, Option<IVec>)>;

/// What the log held at start-up.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The layers, in order.
    pub layers: Vec<Replayed>,
    /// The latest input of each epoch that was not cancelled, by epoch.
    pub inputs: BTreeMap<u64, Vec<u8>>,
}

/// One record read back.
enum Record {
    Layer(Replayed),
    Input(u64, Vec<u8>),
    Cancel(u64),
}

impl Wal {
    /// Opens the log in `dir`, returning it with the records of the segments left there (to
    /// be applied to sled before anything reads; then [`Wal::remove_replayed`]).
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut records = Vec::new();
        for (_, path) in files(dir, LEGACY)? {
            read_legacy_segment(&path, &mut records)?;
        }
        let segments = files(dir, SEGMENT)?;
        for (n, path) in &segments {
            read_segment(path, *n, &mut records)?;
        }
        let next = segments.last().map_or(0, |(n, _)| n + 1);
        // A spare of an earlier run, if there is one; otherwise a new file that grows until
        // the writer makes the next segment ready.
        let file = match files(dir, SPARE)?.is_empty() {
            false => make_segment(dir, next)?,
            true => {
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(SEGMENT.path(dir, next))?;
                sync_dir(dir)?;
                file
            }
        };
        let wal = Self {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            segment: next,
            end: 0,
            next: None,
            buf: Vec::new(),
        };
        let mut recovered = Recovered::default();
        for record in records {
            match record {
                Record::Layer(layer) => recovered.layers.push(layer),
                Record::Input(epoch, bytes) => {
                    recovered.inputs.insert(epoch, bytes);
                }
                Record::Cancel(epoch) => {
                    recovered.inputs.remove(&epoch);
                }
            }
        }
        Ok((wal, recovered))
    }

    /// Lets go of the segments that [`Wal::open`] found, once sled has their records.
    pub(crate) fn remove_replayed(&self) -> io::Result<()> {
        for (_, path) in files(&self.dir, LEGACY)? {
            fs::remove_file(path)?;
        }
        self.remove_before(self.segment)
    }

    /// Appends a layer; with `sync` it is on disk when this returns (and so is every record
    /// before it).
    pub(crate) fn append(&mut self, layer: &Layer, sync: bool) -> io::Result<()> {
        self.write_record(Content::Layer, |buf| {
            buf.reserve(layer.len() * 9);
            for (key, value) in layer.iter() {
                buf.push(value.is_some() as u8);
                put_bytes(buf, key)?;
                if let Some(v) = value {
                    put_bytes(buf, v)?;
                }
            }
            Ok(())
        })?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Appends the input of epoch `epoch`, unsynced: the caller syncs [`Wal::file`].
    pub(crate) fn append_input(&mut self, epoch: u64, input: &[u8]) -> io::Result<()> {
        self.write_record(Content::Input, |buf| {
            buf.extend_from_slice(&epoch.to_le_bytes());
            buf.extend_from_slice(input);
            Ok(())
        })
    }

    /// Cancels the input of epoch `epoch` (its epoch failed), on disk when this returns.
    pub(crate) fn append_cancel(&mut self, epoch: u64) -> io::Result<()> {
        self.write_record(Content::Cancel, |buf| {
            buf.extend_from_slice(&epoch.to_le_bytes());
            Ok(())
        })?;
        self.file.sync_data()
    }

    /// The open segment's file, to sync without holding the log.
    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Writes one record of `content` whose payload `fill` appends to the buffer.
    fn write_record(
        &mut self,
        content: Content,
        fill: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&[0; 8]);
        let word = self.segment | (content as u64) << 56;
        buf.extend_from_slice(&word.to_le_bytes());
        fill(buf)?;
        let len = u32::try_from(buf.len() - HEADER).map_err(|_| too_large())?;
        let crc = crc32fast::hash(&buf[8..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(buf, self.end)?;
        self.end += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment for the records to come; returns its number. Every record
    /// appended so far is in the segments before it, and on disk: sled gets them only after
    /// this, so that even without synced commits sled never holds part of an epoch that the
    /// log could lose.
    pub(crate) fn rotate(&mut self) -> io::Result<u64> {
        self.file.sync_data()?;
        let next = self.segment + 1;
        let file = match self.next.take() {
            Some((n, file)) if n == next => file,
            _ => make_segment(&self.dir, next)?,
        };
        self.file = Arc::new(file);
        self.segment = next;
        self.end = 0;
        Ok(next)
    }

    /// The segment to make ready next, if none is: its number and the log's folder. The
    /// caller makes it with [`make_segment`], without holding the log, and hands it over
    /// with [`Wal::ready_next`].
    pub(crate) fn wants_next(&self) -> Option<(u64, PathBuf)> {
        let n = self.segment + 1;
        match &self.next {
            Some((m, _)) if *m == n => None,
            _ => Some((n, self.dir.clone())),
        }
    }

    /// Takes a segment made ready for number `n`; one that lost the race is left alone.
    pub(crate) fn ready_next(&mut self, n: u64, file: File) {
        if n == self.segment + 1 {
            self.next = Some((n, file));
        }
    }

    /// Lets go of the segments before segment `n` (their records are all in sled),
    /// including any an earlier failed attempt left: the last few are kept as spares.
    pub(crate) fn remove_before(&self, n: u64) -> io::Result<()> {
        let spares = files(&self.dir, SPARE)?;
        let mut room = SPARES.saturating_sub(spares.len());
        for (m, path) in files(&self.dir, SEGMENT)?.into_iter().rev() {
            if m >= n {
                continue;
            }
            if room > 0 && fs::metadata(&path)?.len() >= SEGMENT_BYTES {
                fs::rename(&path, SPARE.path(&self.dir, m))?;
                room -= 1;
            } else {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Bytes of the open segment's records.
    pub(crate) fn len(&self) -> u64 {
        self.end
    }
}

/// Makes segment `n` of the log in `dir` ready to be written in place: a spare renamed, or
/// a new file of [`SEGMENT_BYTES`] zeros, on disk under its name.
pub(crate) fn make_segment(dir: &Path, n: u64) -> io::Result<File> {
    let path = SEGMENT.path(dir, n);
    let file = match files(dir, SPARE)?.into_iter().next() {
        Some((_, spare)) => {
            fs::rename(spare, &path)?;
            OpenOptions::new().write(true).open(&path)?
        }
        None => {
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < SEGMENT_BYTES {
                file.write_all_at(&zeros, at)?;
                at += zeros.len() as u64;
            }
            file.sync_all()?;
            file
        }
    };
    sync_dir(dir)?;
    Ok(file)
}

/// A kind of file in the log's folder: `{prefix}{number:020}{suffix}`.
#[derive(Clone, Copy)]
struct Kind {
    prefix: &'static str,
    suffix: &'static str,
}

const SEGMENT: Kind = Kind {
    prefix: "epochs-",
    suffix: ".log",
};
const SPARE: Kind = Kind {
    prefix: "spare-",
    suffix: ".log",
};
/// Segments of the earlier format.
const LEGACY: Kind = Kind {
    prefix: "segment-",
    suffix: ".log",
};

impl Kind {
    fn path(&self, dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{}{n:020}{}", self.prefix, self.suffix))
    }
}

/// The files of a kind in `dir`, in order, with their numbers.
fn files(dir: &Path, kind: Kind) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let n = path
                .file_name()?
                .to_str()?
                .strip_prefix(kind.prefix)?
                .strip_suffix(kind.suffix)?
                .parse()
                .ok()?;
            Some((n, path))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// A new or renamed file's name must survive a crash too.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

/// Appends the records of segment `n` to `out`, up to the first that is torn, corrupt,
/// zero or another segment's (a spare's stale bytes).
fn read_segment(path: &Path, n: u64, out: &mut Vec<Record>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let word = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        if len == 0 || word & SEGMENT_MASK != n {
            break;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            torn(path, at);
            break;
        };
        match (crc32fast::hash(&bytes[at + 8..at + HEADER + len]) == crc)
            .then(|| parse_record(word, payload))
            .flatten()
        {
            Some(record) => out.push(record),
            None => {
                torn(path, at);
                break;
            }
        }
        at += HEADER + len;
    }
    Ok(())
}

fn torn(path: &Path, at: usize) {
    warn!(
        segment = %path.display(),
        offset = at,
        "the epoch log ends in a torn record; it was never acknowledged"
    );
}

/// Appends the whole records of a segment of the earlier format to `out`.
fn read_legacy_segment(path: &Path, out: &mut Vec<Record>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(record) = bytes
            .get(at + 8..at + 8 + len)
            .filter(|payload| crc32fast::hash(payload) == crc)
            .and_then(parse_payload)
            .map(Record::Layer)
        else {
            torn(path, at);
            break;
        };
        out.push(record);
        at += 8 + len;
    }
    Ok(())
}

/// A record whose segment word is `word`, or None if it is malformed.
fn parse_record(word: u64, payload: &[u8]) -> Option<Record> {
    let epoch = || Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?));
    Some(match Content::of(word)? {
        Content::Layer => Record::Layer(parse_payload(payload)?),
        Content::Input => Record::Input(epoch()?, payload[8..].to_vec()),
        Content::Cancel => Record::Cancel(epoch()?),
    })
}

/// A layer record's writes, or None if its payload is malformed.
fn parse_payload(payload: &[u8]) -> Option<Replayed> {
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
    Some(entries)
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

    fn write(key: &str, value: &str) -> Replayed {
        vec![(IVec::from(key), Some(IVec::from(value)))]
    }

    #[test]
    fn records_read_back_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let torn_at = {
            let (mut wal, replayed) = Wal::open(dir.path()).unwrap();
            assert!(replayed.layers.is_empty());
            wal.append(&layer(&[("a", Some("1")), ("b", None)]), true)
                .unwrap();
            assert_eq!(wal.rotate().unwrap(), 1);
            wal.append(&layer(&[("a", Some("2"))]), true).unwrap();
            wal.len()
        };
        // Segment 1 was made ready in place: its zeros follow the record.
        let last = SEGMENT.path(dir.path(), 1);
        assert_eq!(fs::metadata(&last).unwrap().len(), SEGMENT_BYTES);
        // A crash mid-append leaves part of a record.
        let f = OpenOptions::new().write(true).open(&last).unwrap();
        let mut partial = vec![100, 0, 0, 0, 1, 2, 3, 4];
        partial.extend(1u64.to_le_bytes());
        partial.extend([7; 20]);
        f.write_all_at(&partial, torn_at).unwrap();
        drop(f);

        let (wal, replayed) = Wal::open(dir.path()).unwrap();
        assert_eq!(files(dir.path(), SEGMENT).unwrap().len(), 3);
        let expected = vec![
            vec![
                (IVec::from("a"), Some(IVec::from("1"))),
                (IVec::from("b"), None),
            ],
            write("a", "2"),
        ];
        assert_eq!(replayed.layers, expected);
        wal.remove_replayed().unwrap();
        assert_eq!(files(dir.path(), SEGMENT).unwrap().len(), 1);
        // The full-sized segment is kept for reuse; the small one went.
        assert_eq!(files(dir.path(), SPARE).unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_record_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&layer(&[("k", Some("v"))]), true).unwrap();
        }
        let path = SEGMENT.path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let end = bytes.len() - 1;
        bytes[end] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, replayed) = Wal::open(dir.path()).unwrap();
        assert!(replayed.layers.is_empty());
    }

    #[test]
    fn a_reused_segment_replays_only_its_own_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&layer(&[("a", Some("1"))]), true).unwrap();
            wal.rotate().unwrap();
            // Segment 1 is zero-filled in place; its record is long, so that the next
            // user of the file writes over part of it only.
            let long = "x".repeat(1000);
            wal.append(&layer(&[("b", Some(&long))]), true).unwrap();
            assert_eq!(wal.rotate().unwrap(), 2);
            // Sled has segments 0 and 1: the full-sized one becomes a spare, which the
            // segment after the open one reuses.
            wal.remove_before(2).unwrap();
            assert_eq!(files(dir.path(), SPARE).unwrap().len(), 1);
            let (n, folder) = wal.wants_next().unwrap();
            assert_eq!(n, 3);
            let file = make_segment(&folder, n).unwrap();
            wal.ready_next(n, file);
            assert!(wal.wants_next().is_none());
            assert!(files(dir.path(), SPARE).unwrap().is_empty());
            wal.append(&layer(&[("c", Some("3"))]), true).unwrap();
            assert_eq!(wal.rotate().unwrap(), 3);
            wal.append(&layer(&[("d", Some("4"))]), true).unwrap();
        }
        // Segment 3 still holds the rest of segment 1's record after its own.
        let (_, replayed) = Wal::open(dir.path()).unwrap();
        assert_eq!(replayed.layers, vec![write("c", "3"), write("d", "4")]);
    }

    #[test]
    fn segments_of_the_earlier_format_are_replayed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = vec![];
        let payload = [
            &[1u8][..],
            &1u32.to_le_bytes(),
            b"k",
            &1u32.to_le_bytes(),
            b"v",
        ]
        .concat();
        record.extend((payload.len() as u32).to_le_bytes());
        record.extend(crc32fast::hash(&payload).to_le_bytes());
        record.extend(&payload);
        fs::write(LEGACY.path(dir.path(), 4), &record).unwrap();
        let (wal, replayed) = Wal::open(dir.path()).unwrap();
        assert_eq!(replayed.layers, vec![write("k", "v")]);
        wal.remove_replayed().unwrap();
        assert!(files(dir.path(), LEGACY).unwrap().is_empty());
    }

    #[test]
    fn inputs_read_back_latest_per_epoch_unless_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_input(7, b"first try").unwrap();
            wal.append_cancel(7).unwrap();
            wal.append_input(7, b"second try").unwrap();
            wal.append(&layer(&[("a", Some("1"))]), false).unwrap();
            wal.append_input(8, b"eight").unwrap();
            wal.append_input(9, b"nine").unwrap();
            wal.append_cancel(9).unwrap();
            wal.file().sync_data().unwrap();
        }
        let (_, replayed) = Wal::open(dir.path()).unwrap();
        assert_eq!(replayed.layers, vec![write("a", "1")]);
        let inputs: Vec<(u64, &[u8])> = replayed
            .inputs
            .iter()
            .map(|(e, b)| (*e, b.as_slice()))
            .collect();
        assert_eq!(inputs, vec![(7, &b"second try"[..]), (8, &b"eight"[..])]);
    }
}
