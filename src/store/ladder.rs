//! Row counts of multi-row statements drawn from a short ladder: a statement's limit and the
//! powers of two below it.
//!
//! A connection keeps its prepared statements by their SQL text, and a multi-row `INSERT` or an
//! `IN` list built for exactly the rows at hand has a text of its own for every count: a page of
//! 31 rows and one of 33 are two statements, each compiled afresh. SQLite compiling a
//! statement of a few hundred rows costs several times what running it does (a 1000-row,
//! 21-column `INSERT` of integers in memory: 5.1 ms to prepare, 0.6 ms to bind and run, with the
//! library this build bundles), and under single appends the busiest SQLite thread spent 22 %
//! of its samples preparing, 2.5 % once the views' page statements took these counts
//! (BENCHMARKS.md, "The canonical writer, and page statements from a ladder of sizes"). Counts
//! from the ladder give each builder a handful of texts, which the connection's cache keeps.

/// Splits `rows` into chunks whose lengths are on the ladder: `max` while that many remain,
/// then the largest power of two not above what remains, until nothing does. A remainder of
/// `r` rows takes as many statements as `r` has bits set (at most about log2 `max`), each of
/// them prepared once per connection.
pub(crate) fn chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// `items` (at most `max`, not empty) lengthened to the ladder's next step by repeating the
/// last one, for a list where a repeat changes nothing (`x IN (…)`).
pub(crate) fn padded<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    let mut padded = items.to_vec();
    if let Some(last) = items.last() {
        let len = items.len().next_power_of_two().min(max.max(items.len()));
        padded.resize(len, last.clone());
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_on_the_ladder(n: usize, max: usize) -> bool {
        n == max || (n.is_power_of_two() && n < max)
    }

    #[test]
    fn chunks_keep_every_row_in_order_in_lengths_from_the_ladder() {
        for max in [1, 7, 500, 512] {
            for n in (0..1300)
                .step_by(7)
                .chain([1, 2, 3, 31, 33, 499, 500, 501, 1000, 1024])
            {
                let rows: Vec<usize> = (0..n).collect();
                let chunks: Vec<&[usize]> = chunks(&rows, max).collect();
                assert!(
                    chunks.iter().all(|c| is_on_the_ladder(c.len(), max)),
                    "{n} rows at most {max}: {:?}",
                    chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
                );
                assert_eq!(chunks.concat(), rows, "{n} rows at most {max}");
            }
        }
        let lengths =
            |n: usize| -> Vec<usize> { chunks(&vec![0; n], 500).map(<[i32]>::len).collect() };
        assert_eq!(lengths(1234), [500, 500, 128, 64, 32, 8, 2]);
        assert_eq!(lengths(31), [16, 8, 4, 2, 1]);
        assert_eq!(lengths(0), Vec::<usize>::new());
    }

    #[test]
    fn a_padded_list_repeats_its_last_item_up_to_the_next_step() {
        assert_eq!(padded(&[1, 2, 3], 500), [1, 2, 3, 3]);
        assert_eq!(padded(&[1, 2, 3, 4], 500), [1, 2, 3, 4]);
        assert_eq!(padded(&[9], 500), [9]);
        assert_eq!(padded(&(0..300).collect::<Vec<_>>(), 500).len(), 500);
        assert_eq!(padded(&(0..500).collect::<Vec<_>>(), 500).len(), 500);
        assert!(padded::<u8>(&[], 500).is_empty());
    }
}
