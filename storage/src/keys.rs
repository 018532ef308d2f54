//! The key layout of the store. Every key starts with a one-byte space tag; ids are big-endian
//! so that a prefix scan returns a relation's rows (and a stream's log) in order.
//!
//! | space | key | value |
//! |---|---|---|
//! | meta | `0x01 name` | space-specific (the epoch counter, the next relation id) |
//! | catalog | `0x02 rel_id` | a relation's definition (JSON) |
//! | rows | `0x03 rel_id row_key` | stream: `seq -> row`; table: `pk -> row`; view: `row -> count` |
//! | state | `0x04 rel_id operator_id state_key` | operator-defined |
//! | progress | `0x05 rel_id` | a relation's progress: watermark, late rows, state size (JSON) |
//! | late | `0x06 rel_id seq` | one late row of a stream (JSON), the most recent ones only |
//! | outbox | `0x08 sink_id epoch chunk` | a change a sink has yet to deliver (encoded rows and weights) |
//! | dead | `0x07 rel_id seq` | one record a stream's source could not read (JSON), the most recent ones only |
//! | pending | `0x09 view_id epoch source_id` | a source's change a view with a trigger interval has yet to take (encoded rows and weights) |

const META: u8 = 0x01;
const CATALOG: u8 = 0x02;
const ROWS: u8 = 0x03;
const STATE: u8 = 0x04;
const PROGRESS: u8 = 0x05;
const LATE: u8 = 0x06;
const DEAD: u8 = 0x07;
const OUTBOX: u8 = 0x08;
const PENDING: u8 = 0x09;

/// A named cell in the meta space.
pub fn meta(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(META);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The catalog entry of a relation.
pub fn catalog(rel: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(CATALOG);
    k.extend_from_slice(&rel.to_be_bytes());
    k
}

/// The prefix under which all catalog entries live.
pub fn catalog_prefix() -> Vec<u8> {
    vec![CATALOG]
}

/// The prefix under which a relation's rows live.
pub fn rows_prefix(rel: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ROWS);
    k.extend_from_slice(&rel.to_be_bytes());
    k
}

/// One row of a relation.
pub fn row(rel: u64, row_key: &[u8]) -> Vec<u8> {
    let mut k = rows_prefix(rel);
    k.extend_from_slice(row_key);
    k
}

/// The prefix of all operator state that belongs to one view.
pub fn view_state_prefix(rel: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(STATE);
    k.extend_from_slice(&rel.to_be_bytes());
    k
}

/// The prefix of one operator's state inside a view's dataflow.
pub fn state_prefix(rel: u64, operator: u32) -> Vec<u8> {
    let mut k = view_state_prefix(rel);
    k.extend_from_slice(&operator.to_be_bytes());
    k
}

fn tagged(tag: u8, rel: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(tag);
    k.extend_from_slice(&rel.to_be_bytes());
    k
}

/// The progress record of a relation.
pub fn progress(rel: u64) -> Vec<u8> {
    tagged(PROGRESS, rel)
}

/// The prefix under which all progress records live.
pub fn progress_prefix() -> Vec<u8> {
    vec![PROGRESS]
}

/// The prefix under which a stream's late rows live.
pub fn late_prefix(rel: u64) -> Vec<u8> {
    tagged(LATE, rel)
}

/// The prefix under which all late rows live.
pub fn all_late_prefix() -> Vec<u8> {
    vec![LATE]
}

/// One late row of a stream.
pub fn late_row(rel: u64, seq: u64) -> Vec<u8> {
    let mut k = late_prefix(rel);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix under which a stream's dead letters live.
pub fn dead_prefix(rel: u64) -> Vec<u8> {
    tagged(DEAD, rel)
}

/// The prefix under which all dead letters live.
pub fn all_dead_prefix() -> Vec<u8> {
    vec![DEAD]
}

/// One dead letter of a stream.
pub fn dead_letter(rel: u64, seq: u64) -> Vec<u8> {
    let mut k = dead_prefix(rel);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix under which a sink's undelivered changes live, in order.
pub fn outbox_prefix(sink: u64) -> Vec<u8> {
    tagged(OUTBOX, sink)
}

/// One undelivered change of a sink: the epoch that made it and its chunk in that epoch.
pub fn outbox(sink: u64, epoch: u64, chunk: u64) -> Vec<u8> {
    let mut k = outbox_prefix(sink);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The prefix under which the changes a view with a trigger interval has yet to take live,
/// in the order of the epochs that made them.
pub fn pending_prefix(view: u64) -> Vec<u8> {
    tagged(PENDING, view)
}

/// One source's change in one epoch, waiting for a view's next trigger.
pub fn pending(view: u64, epoch: u64, source: u64) -> Vec<u8> {
    let mut k = pending_prefix(view);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&source.to_be_bytes());
    k
}

/// The source of a [`pending`] key.
pub fn pending_source(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(17..25)?.try_into().ok()?))
}

/// The (epoch, chunk) of an [`outbox`] key.
pub fn outbox_position(key: &[u8]) -> Option<(u64, u64)> {
    let rest = key.get(9..25)?;
    Some((
        u64::from_be_bytes(rest[..8].try_into().ok()?),
        u64::from_be_bytes(rest[8..].try_into().ok()?),
    ))
}

/// The length of a [`rows_prefix`], to strip it from scanned keys.
pub const ROWS_PREFIX_LEN: usize = 9;
/// The length of a [`state_prefix`], to strip it from scanned keys.
pub const STATE_PREFIX_LEN: usize = 13;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_nest() {
        assert!(row(7, b"abc").starts_with(&rows_prefix(7)));
        assert_eq!(rows_prefix(7).len(), ROWS_PREFIX_LEN);
        assert_eq!(state_prefix(7, 2).len(), STATE_PREFIX_LEN);
        assert!(state_prefix(7, 2).starts_with(&view_state_prefix(7)));
        assert!(!rows_prefix(7).starts_with(&rows_prefix(8)));
    }

    #[test]
    fn sequence_keys_sort_in_order() {
        let a = row(1, &255u64.to_be_bytes());
        let b = row(1, &256u64.to_be_bytes());
        assert!(a < b);
    }
}
