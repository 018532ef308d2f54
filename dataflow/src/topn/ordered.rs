//! A partition's rows in rank order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, btree_map};

/// A row's place in its partition: its ORDER BY values in Arrow's row format, which compares
/// as bytes the way a sort orders the values, then the row's own encoding, which breaks ties.
/// The ORDER BY part is self-delimiting, so comparing places as whole byte strings orders
/// them by their ORDER BY values first and by their rows after.
#[derive(Clone, Debug)]
pub(super) struct Place {
    bytes: Box<[u8]>,
    order_len: u32,
}

impl Place {
    pub(super) fn new(order: &[u8], row: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(order.len() + row.len());
        bytes.extend_from_slice(order);
        bytes.extend_from_slice(row);
        Self {
            bytes: bytes.into_boxed_slice(),
            order_len: order.len() as u32,
        }
    }

    /// The ORDER BY values, as Arrow's row format.
    pub(super) fn order(&self) -> &[u8] {
        &self.bytes[..self.order_len as usize]
    }

    /// The row's encoding.
    pub(super) fn row(&self) -> &[u8] {
        &self.bytes[self.order_len as usize..]
    }

    /// Equal in every ORDER BY column (tied).
    pub(super) fn ties(&self, other: &Place) -> bool {
        self.order() == other.order()
    }
}

impl PartialEq for Place {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for Place {}
impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

/// Up to this many distinct rows, a partition is a sorted vector (a deduplication's partition
/// holds one row, a top ten ten); past it, a tree.
const FEW: usize = 32;

/// A partition's distinct rows in order, with their multiplicities. Most partitions are small
/// (a ranking over append-only input keeps at most its limit), and a vector of one row takes a
/// small fraction of the memory of a tree's node.
#[derive(Debug)]
pub(super) enum Ordered {
    Few(Vec<(Place, i64)>),
    Many(BTreeMap<Place, i64>),
}

impl Default for Ordered {
    fn default() -> Self {
        Ordered::Few(Vec::new())
    }
}

impl Ordered {
    pub(super) fn len(&self) -> usize {
        match self {
            Ordered::Few(rows) => rows.len(),
            Ordered::Many(rows) => rows.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many copies of a row it holds.
    pub(super) fn get(&self, place: &Place) -> i64 {
        match self {
            Ordered::Few(rows) => rows
                .binary_search_by(|(p, _)| p.cmp(place))
                .map_or(0, |i| rows[i].1),
            Ordered::Many(rows) => rows.get(place).copied().unwrap_or(0),
        }
    }

    /// Adds `weight` copies of a row and returns how many it holds now; a row left with none
    /// goes. A negative result changes nothing: the caller reports it.
    pub(super) fn add(&mut self, place: Place, weight: i64) -> i64 {
        let now = match self {
            Ordered::Few(rows) => match rows.binary_search_by(|(p, _)| p.cmp(&place)) {
                Ok(i) => {
                    let now = rows[i].1 + weight;
                    match now {
                        0 => drop(rows.remove(i)),
                        n if n > 0 => rows[i].1 = n,
                        _ => {}
                    }
                    now
                }
                Err(i) => {
                    if weight > 0 {
                        rows.insert(i, (place, weight));
                    }
                    weight
                }
            },
            Ordered::Many(rows) => {
                let now = rows.get(&place).copied().unwrap_or(0) + weight;
                match now {
                    0 => drop(rows.remove(&place)),
                    n if n > 0 => drop(rows.insert(place, n)),
                    _ => {}
                }
                now
            }
        };
        self.fit();
        now
    }

    /// The last row in order.
    pub(super) fn last(&self) -> Option<&Place> {
        match self {
            Ordered::Few(rows) => rows.last().map(|(p, _)| p),
            Ordered::Many(rows) => rows.last_key_value().map(|(p, _)| p),
        }
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        match self {
            Ordered::Few(rows) => Iter::Few(rows.iter()),
            Ordered::Many(rows) => Iter::Many(rows.iter()),
        }
    }

    /// Keeps the first `n` distinct rows.
    pub(super) fn truncate(&mut self, n: usize) {
        match self {
            Ordered::Few(rows) => rows.truncate(n),
            Ordered::Many(rows) => {
                if let Some(cut) = rows.keys().nth(n).cloned() {
                    rows.split_off(&cut);
                }
            }
        }
        self.fit();
    }

    /// Moves between the two forms as the partition grows past [`FEW`] rows or shrinks well
    /// below it (not at once, so that a partition on the edge does not flip at every change).
    fn fit(&mut self) {
        match self {
            Ordered::Few(rows) if rows.len() > FEW => {
                *self = Ordered::Many(std::mem::take(rows).into_iter().collect());
            }
            Ordered::Many(rows) if rows.len() < FEW / 2 => {
                *self = Ordered::Few(std::mem::take(rows).into_iter().collect());
            }
            _ => {}
        }
    }
}

/// The rows of an [`Ordered`] in order, with their multiplicities.
pub(super) enum Iter<'a> {
    Few(std::slice::Iter<'a, (Place, i64)>),
    Many(btree_map::Iter<'a, Place, i64>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Place, i64);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(rows) => rows.next().map(|(p, n)| (p, *n)),
            Iter::Many(rows) => rows.next().map(|(p, n)| (p, *n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(order: u8, row: u8) -> Place {
        Place::new(&[order], &[row])
    }

    fn contents(rows: &Ordered) -> Vec<(u8, u8, i64)> {
        rows.iter()
            .map(|(p, n)| (p.order()[0], p.row()[0], n))
            .collect()
    }

    #[test]
    fn rows_stay_in_order_as_the_partition_changes_form() {
        let mut rows = Ordered::default();
        // Insert in a scrambled order past the vector's size, then take most away.
        let order: Vec<u8> = (0..80u16).map(|i| (i * 37 % 80) as u8).collect();
        for &o in &order {
            assert_eq!(rows.add(place(o, 1), 2), 2);
        }
        assert!(matches!(rows, Ordered::Many(_)));
        assert_eq!(rows.len(), 80);
        let expected: Vec<_> = (0..80).map(|o| (o, 1, 2)).collect();
        assert_eq!(contents(&rows), expected);
        assert_eq!(rows.get(&place(5, 1)), 2);
        assert_eq!(rows.add(place(5, 1), -1), 1);
        for o in 10..80 {
            assert_eq!(rows.add(place(o, 1), -2), 0);
        }
        assert!(matches!(rows, Ordered::Few(_)));
        assert_eq!(rows.get(&place(5, 1)), 1);
        assert_eq!(rows.get(&place(50, 1)), 0);
        assert_eq!(rows.last(), Some(&place(9, 1)));
        // Ties on the ORDER BY values are ordered by the row.
        rows.add(place(3, 0), 1);
        let front: Vec<_> = contents(&rows).into_iter().take(5).collect();
        assert_eq!(
            front,
            [(0, 1, 2), (1, 1, 2), (2, 1, 2), (3, 0, 1), (3, 1, 2)]
        );
        assert!(place(3, 0).ties(&place(3, 1)));
        // A deletion of a row not held changes nothing.
        assert_eq!(rows.add(place(42, 1), -1), -1);
        assert_eq!(rows.len(), 11);
        rows.truncate(2);
        assert_eq!(contents(&rows), [(0, 1, 2), (1, 1, 2)]);
    }

    #[test]
    fn a_large_partition_truncates_as_a_tree() {
        let mut rows = Ordered::default();
        for o in 0..100u8 {
            rows.add(place(o, 0), 1);
        }
        rows.truncate(40);
        assert!(matches!(rows, Ordered::Many(_)));
        assert_eq!(rows.len(), 40);
        assert_eq!(rows.last(), Some(&place(39, 0)));
        rows.truncate(3);
        assert!(matches!(rows, Ordered::Few(_)));
        assert_eq!(contents(&rows), [(0, 0, 1), (1, 0, 1), (2, 0, 1)]);
    }
}
