//! A bounded table of walks by key (a process, a cgroup): at most [`TOP`] keys have a row; the
//! walks of the others go to an "other" row, so that the rows always add up to every walk read.
//!
//! A key without a row is counted in a bounded candidate set; when its count there passes the
//! smallest row's rank, it takes that row's place (the evicted row is folded into "other"). A
//! row therefore holds the walks since it was given, its earlier ones are in "other". Each
//! row's histogram has 2 significant digits (1%), about a seventh of the size of the per-type
//! ones.
use std::hash::Hash;

// Looked up for every walk record: foldhash (seeded per process) is several times faster than
// std's SipHash on these integer keys, which the kernel hands out.
use foldhash::HashMap;

use rmap_common::WalkEvent;

use crate::agg::{Row, Stats};

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
    /// (as in the Space-Saving algorithm), so that a row just given is not at once taken by a
    /// key with fewer walks in all.
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

/// Walks of one part of a row: a thread name of a process, a walker of an owner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub name: String,
    pub walks: u64,
}

/// See the module's doc.
#[derive(Clone, Debug)]
pub struct TopTable<K> {
    rows: HashMap<K, Entry>,
    candidates: HashMap<K, u64>,
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
            candidates: HashMap::default(),
            other: None,
            smallest: None,
        }
    }
}

impl<K: Copy + Eq + Hash> TopTable<K> {
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
        if self.candidates.len() >= CANDIDATES && !self.candidates.contains_key(&key) {
            self.candidates.clear();
        }
        let seen = self.candidates.entry(key).or_insert(0);
        *seen += 1;
        let seen = *seen;
        let smallest = self.smallest.or_else(|| {
            self.rows
                .iter()
                .map(|(k, e)| (*k, e.rank))
                .min_by_key(|(_, n)| *n)
        });
        self.smallest = smallest;
        if let Some((smallest, count)) = smallest
            && seen > count
            && let Some(out) = self.rows.remove(&smallest)
        {
            self.other.get_or_insert_with(Stats::coarse).merge(&out.stats);
            self.candidates.remove(&key);
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
        rows + other + self.candidates.capacity() * size_of::<(K, u64)>()
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
