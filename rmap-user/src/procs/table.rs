//! The per-process walk table: a [`TopTable`] keyed by process (tgid and start time). A walk
//! read before its process's start time is known gets a provisional row (start 0), which
//! becomes the process's row once the start time is read.
use rmap_common::WalkEvent;

use super::{ProcKey, Process};
pub use crate::top::{OTHER, TOP};
use crate::{stats::Row, top::TopTable};

/// See the module's doc.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    table: TopTable<ProcKey>,
}

impl ProcessTable {
    pub fn record(&mut self, ev: &WalkEvent, process: Process<'_>) {
        let key = ProcKey {
            tgid: ev.tgid,
            start: process.start,
        };
        // The provisional row of this tgid (start time not yet read) is this process's.
        let provisional = ProcKey {
            tgid: ev.tgid,
            start: 0,
        };
        if key.start != 0 && !self.table.has_row(&key) {
            self.table.rekey(provisional, key, process.name);
        }
        // Thread names: JVM threads rename themselves (`GC Thread#0`, `C2 CompilerThre`).
        self.table
            .record(key, process.name, &crate::events::text(&ev.comm), ev);
    }

    /// Bytes the rows hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// Processes with a row.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Processes with the slowest walks first, at most `limit`, then "other" when some walks
    /// went there.
    pub fn rows(&self, limit: usize) -> Vec<Row> {
        self.table.rows(limit, |k, name| format!("{name}/{}", k.tgid))
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
