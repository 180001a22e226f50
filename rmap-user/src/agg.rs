//! Aggregation of walks into HDR histograms per page type, per purpose and per process.
//! Per page type and purpose, counts and percentiles come from the kernel's histograms
//! (`set_latency`), which count every walk; ring records add only what they alone carry
//! (off-CPU time, locked walks) and the per-process tables. Plain data, no I/O: unit-tested
//! without root.
use std::collections::BTreeMap;

use rmap_common::{PageType, WalkEvent};

use crate::{
    owners::{self, names::OwnerNames},
    procs::{Process, table::ProcessTable},
    stats::{Row, Stats},
    top::TopTable,
};

/// All groups.
#[derive(Clone, Debug, Default)]
pub struct Aggregator {
    pub types: BTreeMap<PageType, Stats>,
    /// By page type, then purpose: nested so that the per-event lookup borrows the purpose.
    pub purposes: BTreeMap<PageType, BTreeMap<String, Stats>>,
    /// By process (tgid and start time), bounded ([`ProcessTable`]).
    pub processes: ProcessTable,
    /// By owner: the memory cgroup of the walked folio (its id), bounded, each with its
    /// walkers (process names, kernel threads in brackets).
    pub owners: TopTable<u64>,
    /// Ring records seen: the walks the per-process tables, CSV and slow-walk lines cover.
    pub records: u64,
}

impl Aggregator {
    /// Called per event: allocates only for a purpose or process not seen before.
    pub fn record(&mut self, ev: &WalkEvent, purpose: &str, process: Process<'_>) {
        self.records += 1;
        self.side(ev, purpose);
        self.tables(ev, process);
    }

    /// Counts a record and what only records carry per page type and purpose (off-CPU time,
    /// locked walks), without the per-process and per-owner tables: an interval's part, folded
    /// into the run's by [`Self::add_side`].
    pub fn record_side(&mut self, ev: &WalkEvent, purpose: &str) {
        self.records += 1;
        self.side(ev, purpose);
    }

    /// Counts a record in the per-process and per-owner tables only.
    pub fn record_tables(&mut self, ev: &WalkEvent, process: Process<'_>) {
        self.records += 1;
        self.tables(ev, process);
    }

    fn side(&mut self, ev: &WalkEvent, purpose: &str) {
        let ty = PageType::from_u32(ev.page_type);
        self.types
            .entry(ty)
            .or_insert_with(Stats::side_only)
            .record_side(ev);
        let purposes = self.purposes.entry(ty).or_default();
        match purposes.get_mut(purpose) {
            Some(s) => s.record_side(ev),
            None => purposes
                .entry(purpose.to_string())
                .or_insert_with(Stats::side_only)
                .record_side(ev),
        }
    }

    fn tables(&mut self, ev: &WalkEvent, process: Process<'_>) {
        self.processes.record(ev, process);
        let mut buf = [0u8; 18];
        self.owners
            .record(owners::owner_of(ev), "", owners::walker(ev, &mut buf), ev);
    }

    /// Adds the per-type and per-purpose record counts of `other` (see [`Self::record_side`]),
    /// not its histograms, which come from the kernel's.
    pub fn add_side(&mut self, other: &Aggregator) {
        for (ty, s) in &other.types {
            self.types.entry(*ty).or_default().merge_side(s);
        }
        for (ty, by) in &other.purposes {
            let mine = self.purposes.entry(*ty).or_default();
            for (purpose, s) in by {
                match mine.get_mut(purpose) {
                    Some(m) => m.merge_side(s),
                    None => mine.entry(purpose.clone()).or_default().merge_side(s),
                }
            }
        }
    }

    /// Sets the latency of each page type and purpose from the kernel's histograms' buckets
    /// (see `latency::named`), replacing what was there: a type's is the sum of its purposes'.
    /// The buckets are recorded in place: no histogram is built per kernel histogram.
    pub fn set_latency(&mut self, hists: Vec<(PageType, String, &[u64])>) {
        for s in self.types.values_mut() {
            s.reset_latency();
        }
        for by in self.purposes.values_mut() {
            for s in by.values_mut() {
                s.reset_latency();
            }
        }
        for (ty, purpose, buckets) in hists {
            crate::latency::record(&mut self.types.entry(ty).or_default().hist, buckets);
            let p = self.purposes.entry(ty).or_default().entry(purpose).or_default();
            crate::latency::record(&mut p.hist, buckets);
        }
    }

    /// Bytes the aggregate holds on the heap: histograms, most of it (one per page type and
    /// purpose, one per process and owner row).
    pub fn heap_bytes(&self) -> usize {
        let types: usize = self
            .types
            .values()
            .map(|s| crate::memory::hist_bytes(&s.hist))
            .sum();
        let purposes: usize = self
            .purposes
            .values()
            .flat_map(BTreeMap::values)
            .map(|s| crate::memory::hist_bytes(&s.hist))
            .sum();
        types + purposes + self.processes.heap_bytes() + self.owners.heap_bytes()
    }

    /// Kernel-counted walks over all page types (0 before `set_latency`).
    pub fn walks(&self) -> u64 {
        self.types.values().map(|s| s.hist.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.types.values().all(|s| s.hist.is_empty()) && self.records == 0
    }

    pub fn type_rows(&self) -> Vec<Row> {
        self.types
            .iter()
            .map(|(t, s)| s.row(t.name().to_string()))
            .collect()
    }

    pub fn purpose_rows(&self) -> Vec<Row> {
        self.purposes
            .iter()
            .flat_map(|(t, by)| by.iter().map(move |(p, s)| s.row(format!("{}/{p}", t.name()))))
            .collect()
    }

    /// Processes with the slowest walks first, at most `limit`, then the "other" row.
    pub fn process_rows(&self, limit: usize) -> Vec<Row> {
        self.processes.rows(limit)
    }

    /// Owners (cgroup paths, with their pod where they are a pod's) with the slowest walks
    /// first, at most `limit`, then "other".
    pub fn owner_rows(&self, limit: usize, names: &mut OwnerNames) -> Vec<Row> {
        let mut paths = std::collections::HashMap::new();
        let mut pods = std::collections::HashMap::new();
        for (id, _) in self.owners.entries() {
            let path = names.name(*id);
            if let Some(pod) = names.pod(*id) {
                pods.insert(path.clone(), pod.clone());
            }
            paths.insert(*id, path);
        }
        let mut rows = self
            .owners
            .rows(limit, |id, _| paths.get(id).cloned().unwrap_or_default());
        for r in &mut rows {
            r.pod = pods.remove(&r.key);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, HIST_RELATIVE_ERROR, hist_bucket};

    use super::*;
    use crate::events::tests::event;

    /// Records `events` as ring records and, as the kernel would, in log-linear histograms per
    /// (type, purpose) handed to `set_latency`.
    fn feed(a: &mut Aggregator, events: &[(WalkEvent, &str, &str)]) {
        let mut hists: BTreeMap<(PageType, String), Vec<u64>> = BTreeMap::new();
        for (ev, purpose, process) in events {
            a.record(ev, purpose, Process::named(process));
            let b = hists
                .entry((PageType::from_u32(ev.page_type), (*purpose).to_string()))
                .or_insert_with(|| vec![0; HIST_BUCKETS]);
            b[hist_bucket(ev.duration_ns) as usize] += 1;
        }
        a.set_latency(
            hists
                .iter()
                .map(|((t, p), b)| (*t, p.clone(), b.as_slice()))
                .collect(),
        );
    }

    fn near(got: u64, want: f64) -> bool {
        (got as f64 - want).abs() / want <= HIST_RELATIVE_ERROR + 0.001
    }

    #[test]
    fn per_type_percentiles() {
        let mut a = Aggregator::default();
        let mut evs: Vec<_> = (1..=1000u64)
            .map(|i| (event(PageType::Anon, i * 1000, 1), "migrate", "java"))
            .collect();
        evs.push((event(PageType::Ksm, 705_119_858, 2), "migrate", "java"));
        feed(&mut a, &evs);
        let rows = a.type_rows();
        assert_eq!(
            rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["ksm", "anon"]
        );
        let anon = &rows[1];
        assert_eq!(anon.count, 1000);
        // The kernel's buckets: within HIST_RELATIVE_ERROR (plus HdrHistogram's 0.1%).
        assert!(near(anon.min_ns, 1000.0), "{}", anon.min_ns);
        assert!(near(anon.p50_ns, 500_000.0), "{}", anon.p50_ns);
        assert!(near(anon.p99_ns, 990_000.0), "{}", anon.p99_ns);
        assert!(near(anon.max_ns, 1_000_000.0), "{}", anon.max_ns);
        assert_eq!(anon.offcpu_measured, 1000);
        assert_eq!(anon.offcpu_total_ns, (1..=1000u64).map(|i| i * 250).sum::<u64>());
        let ksm = &rows[0];
        assert!(near(ksm.max_ns, 705_119_858.0), "{}", ksm.max_ns);
        assert_eq!(a.walks(), 1001);
        assert_eq!(a.records, 1001);
    }

    /// Counts and percentiles come from the kernel's histograms, not from the records: with
    /// 10 records of 100 walks (a ring buffer that dropped 90), the rows stay the same.
    #[test]
    fn records_do_not_change_latency() {
        let evs: Vec<_> = (1..=100u64)
            .map(|i| (event(PageType::Anon, i * 1000, 1), "migrate", "java"))
            .collect();
        let mut all = Aggregator::default();
        feed(&mut all, &evs);
        let mut buckets = vec![0; HIST_BUCKETS];
        for (ev, _, _) in &evs {
            buckets[hist_bucket(ev.duration_ns) as usize] += 1;
        }
        let mut dropped = Aggregator::default();
        for (ev, p, c) in &evs[..10] {
            dropped.record(ev, p, Process::named(c));
        }
        dropped.set_latency(vec![(PageType::Anon, "migrate".to_string(), buckets.as_slice())]);
        let key = |r: &Row| (r.key.clone(), r.count, r.min_ns, r.p50_ns, r.p99_ns, r.max_ns);
        let rows = |a: &Aggregator| {
            a.type_rows()
                .iter()
                .chain(&a.purpose_rows())
                .map(key)
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&all), rows(&dropped));
        assert_eq!(rows(&dropped)[0].1, 100);
        assert_eq!(dropped.records, 10);
    }

    /// Counting records needs no latency histogram: a page type's and a purpose's get one
    /// when the kernel's latency is set.
    #[test]
    fn side_counts_hold_no_histogram_until_latency_is_set() {
        let full = crate::memory::hist_bytes(&Stats::default().hist);
        let mut a = Aggregator::default();
        let ev = event(PageType::Anon, 1_000, 1);
        a.record_side(&ev, "migrate");
        assert!(a.heap_bytes() < full / 16, "{} bytes", a.heap_bytes());
        let mut buckets = vec![0; HIST_BUCKETS];
        buckets[hist_bucket(ev.duration_ns) as usize] = 1;
        a.set_latency(vec![(PageType::Anon, "migrate".to_string(), buckets.as_slice())]);
        assert!(a.heap_bytes() >= 2 * full, "{} bytes", a.heap_bytes());
        let rows = a.type_rows().into_iter().chain(a.purpose_rows());
        let got: Vec<_> = rows.map(|r| (r.key, r.count, r.offcpu_measured)).collect();
        assert_eq!(
            got,
            [("anon".to_string(), 1, 1), ("anon/migrate".to_string(), 1, 1)]
        );
        assert!(near(a.type_rows()[0].p50_ns, 1_000.0));
    }

    #[test]
    fn purposes_and_processes() {
        let mut a = Aggregator::default();
        let mut other = event(PageType::File, 5_000, 1);
        other.tgid = 1;
        feed(
            &mut a,
            &[
                (event(PageType::Ksm, 10, 1), "migrate", "java"),
                (event(PageType::Ksm, 20, 1), "remove-migration", "java"),
                (other, "referenced", "kswapd0"),
            ],
        );
        let keys: Vec<_> = a.purpose_rows().into_iter().map(|r| (r.key, r.count)).collect();
        assert_eq!(
            keys,
            [
                ("ksm/migrate".to_string(), 1),
                ("ksm/remove-migration".to_string(), 1),
                ("file/referenced".to_string(), 1)
            ]
        );
        let procs = a.process_rows(1);
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0].key, "kswapd0/1");
    }

    #[test]
    fn zero_and_huge_durations_are_clamped() {
        let mut a = Aggregator::default();
        feed(
            &mut a,
            &[
                (event(PageType::Anon, 0, 1), "x", "c"),
                (event(PageType::Anon, u64::MAX, 1), "x", "c"),
            ],
        );
        let r = &a.type_rows()[0];
        assert_eq!(r.count, 2);
        assert_eq!(r.min_ns, 1);
        // The kernel's last bucket starts past 100 s, the end of the stated range.
        assert!(r.max_ns >= 100_000_000_000, "{}", r.max_ns);
    }
}
