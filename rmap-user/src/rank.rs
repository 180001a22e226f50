//! Who gets a row of a bounded table (the Space-Saving algorithm): a key without a row, once
//! every row is taken, is counted in a bounded candidate set; when its count there passes the
//! rank of the least-ranked row, it takes that row's place, ranked with all it has counted. The
//! rank of a row is its weight (walks, waited ns) plus what it counted as a candidate, so that a
//! row just given is not at once taken by a key with less in all. Ties between rows go to the
//! smallest key, so that the same input always gives the same rows.
use std::hash::Hash;

// Looked up for every record of a key without a row: foldhash (seeded per process) is several
// times faster than std's SipHash on these integer keys, which the kernel hands out.
use foldhash::HashMap;

/// The keys counted while waiting for a row; emptied when full.
#[derive(Clone, Debug)]
pub struct Candidates<K> {
    counts: HashMap<K, u64>,
    limit: usize,
}

impl<K> Candidates<K> {
    /// At most `limit` keys counted at once.
    pub fn new(limit: usize) -> Self {
        Self {
            counts: HashMap::default(),
            limit,
        }
    }

    /// Bytes the set holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * size_of::<(K, u64)>()
    }
}

impl<K: Copy + Eq + Hash> Candidates<K> {
    /// Counts `weight` for `key`, which has no row while every row is taken; `least` is the
    /// least-ranked row with its rank ([`least`]). When `key` has now counted more than that
    /// rank, it leaves the set and its count, this `weight` included, is returned: the caller
    /// moves the `least` row to "other" and gives `key` a row of that rank.
    pub fn admit(&mut self, key: K, weight: u64, least: Option<(K, u64)>) -> Option<u64> {
        if self.counts.len() >= self.limit && !self.counts.contains_key(&key) {
            self.counts.clear();
        }
        let seen = self.counts.entry(key).or_insert(0);
        *seen += weight;
        let seen = *seen;
        let (_, rank) = least?;
        if seen <= rank {
            return None;
        }
        self.counts.remove(&key);
        Some(seen)
    }
}

/// The least-ranked of `rows` (key and rank), the smallest key among equals.
pub fn least<K: Ord>(rows: impl Iterator<Item = (K, u64)>) -> Option<(K, u64)> {
    rows.min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_takes_a_row_once_it_passes_the_least_rank() {
        let mut c = Candidates::new(4);
        assert_eq!(c.admit(7u32, 2, Some((1, 3))), None);
        assert_eq!(c.admit(7, 1, Some((1, 3))), None);
        assert_eq!(c.admit(7, 1, Some((1, 3))), Some(4));
        // Admitted: counted afresh.
        assert_eq!(c.admit(7, 1, Some((1, 3))), None);
    }

    #[test]
    fn a_full_set_is_emptied_for_a_new_key() {
        let mut c = Candidates::new(2);
        c.admit(1u32, 5, Some((0, 10)));
        c.admit(2, 5, Some((0, 10)));
        c.admit(3, 1, Some((0, 10)));
        assert_eq!(c.admit(1, 6, Some((0, 10))), None, "1's earlier 5 were forgotten");
    }

    #[test]
    fn ties_go_to_the_smallest_key() {
        assert_eq!(least([(9u32, 2), (3, 2), (5, 4)].into_iter()), Some((3, 2)));
        assert_eq!(least(std::iter::empty::<(u32, u64)>()), None);
    }
}
