//! The per-process walk table, bounded: at most [`TOP`] processes have a row; the walks of the
//! others go to an "other" row, so that the rows always add up to every walk read.
//!
//! A process without a row is counted in a bounded candidate set; when its count there passes
//! the smallest row's rank, it takes that row's place (the evicted row is folded into "other").
//! A row therefore holds the walks since it was given, its earlier ones are in "other". Each row's
//! histogram has 2 significant digits (1%), about a seventh of the size of the per-type ones.
use std::collections::HashMap;

use rmap_common::WalkEvent;

use super::{ProcKey, Process};
use crate::agg::{Row, Stats};

/// Most processes with a row of their own.
pub const TOP: usize = 64;
/// Most processes counted while waiting for a row; the set is emptied when full.
pub const CANDIDATES: usize = 16 * TOP;

/// The key of the row of walks of processes without their own row.
pub const OTHER: &str = "other";

/// One process's row.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub stats: Stats,
    /// Walks counted for ranking: those of the row plus those counted as a candidate before
    /// (as in the Space-Saving algorithm), so that a row just given is not at once taken by a
    /// process with fewer walks in all.
    rank: u64,
}

/// See the module's doc.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    rows: HashMap<ProcKey, Entry>,
    candidates: HashMap<ProcKey, u64>,
    /// Walks of processes without a row.
    other: Option<Stats>,
    /// The row of least rank, when known (cleared when that row changes): spares a scan of
    /// the rows for each walk of a process without one.
    smallest: Option<(ProcKey, u64)>,
}

impl ProcessTable {
    pub fn record(&mut self, ev: &WalkEvent, process: Process<'_>) {
        let key = ProcKey {
            tgid: ev.tgid,
            start: process.start,
        };
        if let Some(e) = self.rows.get_mut(&key) {
            e.stats.record(ev);
            e.rank += 1;
            if self.smallest.is_some_and(|(k, _)| k == key) {
                self.smallest = None;
            }
            return;
        }
        // The provisional row of this tgid (start time not yet read) is this process's.
        let provisional = ProcKey {
            tgid: ev.tgid,
            start: 0,
        };
        if key.start != 0
            && let Some(mut e) = self.rows.remove(&provisional)
        {
            e.name = process.name.to_string();
            e.stats.record(ev);
            e.rank += 1;
            self.rows.insert(key, e);
            self.smallest = None;
            return;
        }
        if self.rows.len() < TOP {
            self.insert(key, process.name, ev, 1);
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
            self.insert(key, process.name, ev, seen);
        } else {
            self.other.get_or_insert_with(Stats::coarse).record(ev);
        }
    }

    fn insert(&mut self, key: ProcKey, name: &str, ev: &WalkEvent, rank: u64) {
        let mut stats = Stats::coarse();
        stats.record(ev);
        self.rows.insert(
            key,
            Entry {
                name: name.to_string(),
                stats,
                rank,
            },
        );
    }

    /// Processes with a row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.other.is_none()
    }

    /// Processes with the slowest walks first, at most `limit`, then "other" when some walks
    /// went there.
    pub fn rows(&self, limit: usize) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(k, e)| e.stats.row(format!("{}/{}", e.name, k.tgid)))
            .collect();
        rows.sort_by(|a, b| b.max_ns.cmp(&a.max_ns).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(limit);
        if let Some(other) = &self.other {
            rows.push(other.row(OTHER.to_string()));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::PageType;

    use super::*;
    use crate::events::tests::event;

    fn walk(tgid: u32) -> WalkEvent {
        let mut ev = event(PageType::Anon, 1_000, 1);
        ev.tgid = tgid;
        ev
    }

    fn started(start: u64) -> Process<'static> {
        Process { start, name: "p" }
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let mut t = ProcessTable::default();
        t.record(
            &walk(7),
            Process {
                start: 100,
                name: "old",
            },
        );
        t.record(
            &walk(7),
            Process {
                start: 900,
                name: "new",
            },
        );
        let keys: Vec<_> = t.rows(10).into_iter().map(|r| (r.key, r.count)).collect();
        assert_eq!(keys, [("new/7".to_string(), 1), ("old/7".to_string(), 1)]);
    }

    #[test]
    fn a_provisional_row_joins_its_process() {
        let mut t = ProcessTable::default();
        t.record(&walk(7), Process::named("C2 CompilerThre"));
        t.record(
            &walk(7),
            Process {
                start: 100,
                name: "java",
            },
        );
        let rows = t.rows(10);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].key.as_str(), rows[0].count), ("java/7", 2));
    }

    #[test]
    fn top_rows_and_other_add_up() {
        let mut t = ProcessTable::default();
        // TOP light processes first, then a heavy one that arrives when the table is full.
        for tgid in 0..TOP as u32 {
            t.record(&walk(tgid), started(1));
        }
        for _ in 0..10 {
            t.record(&walk(5000), started(1));
        }
        for tgid in 10_000..20_000u32 {
            t.record(&walk(tgid), started(1));
        }
        assert_eq!(t.len(), TOP);
        let rows = t.rows(usize::MAX);
        let total: u64 = rows.iter().map(|r| r.count).sum();
        assert_eq!(total, TOP as u64 + 10 + 10_000);
        let heavy = rows
            .iter()
            .find(|r| r.key == "p/5000")
            .expect("heavy process has a row");
        // Its first walk was counted in "other": the second passed the smallest row's count.
        assert_eq!(heavy.count, 9);
        let other = rows.last().unwrap();
        assert_eq!((other.key.as_str(), other.count), (OTHER, 1 + 1 + 10_000));
    }
}
