//! Splitting a large change's rows into shares that the cores work on at once.
//!
//! An epoch's operators run one after another on the epoch driver's thread; an operator
//! whose per-row work needs nothing but the rows (the aggregate summing rows per key) splits
//! a large change into one share per core and works on the shares in scoped threads. A
//! small change stays on the driver's thread: a thread costs more than it saves.
//!
//! Projections stay whole: evaluating their expressions in shares and putting the columns
//! together again measured no faster (the copy eats the gain).

use std::ops::Range;

/// Rows per share at least.
const MIN_ROWS_PER_SHARE: usize = 65_536;

/// The shares of `n` rows: consecutive ranges, one per core at most (a single range for a
/// small change).
pub(crate) fn shares(n: usize) -> Vec<Range<usize>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let count = cores.min(n / MIN_ROWS_PER_SHARE).max(1);
    let per = n.div_ceil(count).max(1);
    // Each share has at least MIN_ROWS_PER_SHARE rows, so none is empty.
    (0..count)
        .map(|s| s * per..((s + 1) * per).min(n))
        .collect()
}

/// `f` of each share, in order: the first on this thread, the others in scoped threads.
pub(crate) fn map<T: Send>(
    shares: &[Range<usize>],
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    match shares {
        [] => vec![],
        [one] => vec![f(one.clone())],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let f = &f;
            let others: Vec<_> = rest
                .iter()
                .map(|r| {
                    let r = r.clone();
                    scope.spawn(move || f(r))
                })
                .collect();
            let mut out = vec![f(first.clone())];
            for h in others {
                match h.join() {
                    Ok(t) => out.push(t),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_rows_in_order() {
        assert_eq!(shares(0), vec![0..0]);
        assert_eq!(shares(10), vec![0..10]);
        for n in [MIN_ROWS_PER_SHARE * 2, MIN_ROWS_PER_SHARE * 5 + 3] {
            let s = shares(n);
            assert_eq!(s.first().unwrap().start, 0);
            assert_eq!(s.last().unwrap().end, n);
            assert!(s.windows(2).all(|w| w[0].end == w[1].start));
        }
        let doubled = map(&shares(MIN_ROWS_PER_SHARE * 3), |r| r.len() * 2);
        assert_eq!(doubled.iter().sum::<usize>(), MIN_ROWS_PER_SHARE * 6);
    }
}
