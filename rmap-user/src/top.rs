//! A bounded table of walks by key (a process, a cgroup): at most [`TOP`] keys have a row; the
//! walks of the others go to an "other" row, so that the rows always add up to every walk read.
//!
//! Rows are given by walk count as [`crate::rank`] says (the evicted row is folded into
//! "other"). A row therefore holds the walks since it was given, its earlier ones are in
//! "other". Each row's histogram has 2 significant digits (1%), about a seventh of the size of
//! the per-type ones.
use std::hash::Hash;

// Looked up for every walk record: foldhash (seeded per process) is several times faster than
// std's SipHash on these integer keys, which the kernel hands out.
use foldhash::HashMap;

use rmap_common::WalkEvent;

use crate::{
    rank::{self, Candidates},
    stats::{Part, Row, Stats},
};

/// Most keys with a row of their own.
pub const TOP: usize = 64;
/// Most keys counted while waiting for a row; the set is emptied when full.
pub const CANDIDATES: usize = 16 * TOP;

/// The key of the row of walks of keys without their own row.
pub const OTHER: &str = "other";
/// Most parts (thread names of a process, walkers of an owner) named under one row; the walks
/// of further parts are counted under [`OTHER`].
pub const PARTS: usize = 8;

/// One key's row.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub stats: Stats,
    /// Walks by part, the first [`PARTS`] seen, then [`OTHER`].
    parts: Vec<(String, u64)>,
    /// Walks counted for ranking: those of the row plus those counted as a candidate before
    /// ([`crate::rank`]).
    rank: u64,
}

impl Entry {
    /// Counts a walk of `part`: no allocation once the part has its place.
    fn add_part(&mut self, part: &str) {
        if let Some(p) = self.parts.iter_mut().find(|(n, _)| n == part) {
            p.1 += 1;
        } else if self.parts.len() < PARTS {
            self.parts.push((part.to_string(), 1));
        } else if let Some(p) = self.parts.iter_mut().find(|(n, _)| n == OTHER) {
            p.1 += 1;
        } else {
            // The last place becomes "other": its part's walks and this one.
            if let Some(last) = self.parts.last_mut() {
                *last = (OTHER.to_string(), last.1 + 1);
            }
        }
    }

    /// The parts, most walks first.
    fn parts(&self) -> Vec<Part> {
        let mut parts: Vec<Part> = self
            .parts
            .iter()
            .map(|(name, walks)| Part {
                name: name.clone(),
                walks: *walks,
            })
            .collect();
        parts.sort_by(|a, b| b.walks.cmp(&a.walks).then_with(|| a.name.cmp(&b.name)));
        parts
    }
}

/// See the module's doc.
#[derive(Clone, Debug)]
pub struct TopTable<K> {
    rows: HashMap<K, Entry>,
    candidates: Candidates<K>,
    /// Walks of keys without a row.
    other: Option<Stats>,
    /// The row of least rank, when known (cleared when that row changes): spares a scan of
    /// the rows for each walk of a key without one.
    smallest: Option<(K, u64)>,
}

impl<K> Default for TopTable<K> {
    fn default() -> Self {
        Self {
            rows: HashMap::default(),
            candidates: Candidates::new(CANDIDATES),
            other: None,
            smallest: None,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> TopTable<K> {
    /// Counts `ev` under `key` and its `part`; `name` labels the row if one is made for it.
    pub fn record(&mut self, key: K, name: &str, part: &str, ev: &WalkEvent) {
        if let Some(e) = self.rows.get_mut(&key) {
            e.stats.record(ev);
            e.add_part(part);
            e.rank += 1;
            if self.smallest.is_some_and(|(k, _)| k == key) {
                self.smallest = None;
            }
            return;
        }
        if self.rows.len() < TOP {
            self.insert(key, name, part, ev, 1);
            return;
        }
        let smallest = self
            .smallest
            .or_else(|| rank::least(self.rows.iter().map(|(k, e)| (*k, e.rank))));
        self.smallest = smallest;
        if let Some(seen) = self.candidates.admit(key, 1, smallest)
            && let Some((smallest, _)) = smallest
            && let Some(out) = self.rows.remove(&smallest)
        {
            self.other.get_or_insert_with(Stats::coarse).merge(&out.stats);
            self.smallest = None;
            self.insert(key, name, part, ev, seen);
        } else {
            self.other.get_or_insert_with(Stats::coarse).record(ev);
        }
    }

    /// Gives the row of `from` to `to` under a new name (a provisional key that became known);
    /// false when `from` has no row or `to` has one already.
    pub fn rekey(&mut self, from: K, to: K, name: &str) -> bool {
        if self.rows.contains_key(&to) {
            return false;
        }
        let Some(mut e) = self.rows.remove(&from) else {
            return false;
        };
        e.name = name.to_string();
        self.rows.insert(to, e);
        self.smallest = None;
        true
    }

    /// Whether `key` has a row.
    pub fn has_row(&self, key: &K) -> bool {
        self.rows.contains_key(key)
    }

    fn insert(&mut self, key: K, name: &str, part: &str, ev: &WalkEvent, rank: u64) {
        let mut stats = Stats::coarse();
        stats.record(ev);
        let mut e = Entry {
            name: name.to_string(),
            stats,
            parts: Vec::new(),
            rank,
        };
        e.add_part(part);
        self.rows.insert(key, e);
    }

    /// Bytes the rows hold on the heap: their histograms, most of it, and the candidates.
    pub fn heap_bytes(&self) -> usize {
        let rows: usize = self
            .rows
            .values()
            .map(|e| crate::memory::hist_bytes(&e.stats.hist) + size_of::<(K, Entry)>())
            .sum();
        let other = self
            .other
            .as_ref()
            .map_or(0, |s| crate::memory::hist_bytes(&s.hist));
        rows + other + self.candidates.heap_bytes()
    }

    /// Keys with a row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.other.is_none()
    }

    /// Every row with its key (unordered).
    pub fn entries(&self) -> impl Iterator<Item = (&K, &Entry)> {
        self.rows.iter()
    }

    /// Rows labelled by `label(key, name)`, the slowest walks first, at most `limit`, then
    /// "other" when some walks went there.
    pub fn rows(&self, limit: usize, label: impl Fn(&K, &str) -> String) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(k, e)| Row {
                parts: e.parts(),
                ..e.stats.row(label(k, &e.name))
            })
            .collect();
        rows.sort_by(|a, b| b.max_ns.cmp(&a.max_ns).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(limit);
        if let Some(other) = &self.other {
            rows.push(other.row(OTHER.to_string()));
        }
        rows
    }
}
