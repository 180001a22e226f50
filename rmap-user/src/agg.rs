//! Aggregation of walk events into HDR histograms per page type, per purpose and per process.
//! Plain data, no I/O: unit-tested without root.
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use rmap_common::{FLAG_OFFCPU_VALID, PageType, WalkEvent};
use serde::Serialize;

use crate::procs::{Process, table::ProcessTable};

/// Highest trackable walk: one hour, in ns (a walk longer than that is clamped).
const MAX_NS: u64 = 3_600_000_000_000;

/// Latency of a group of walks.
#[derive(Clone, Debug)]
pub struct Stats {
    pub hist: Histogram<u64>,
    /// Off-CPU part, summed over walks where it was measured.
    pub offcpu_total_ns: u64,
    pub offcpu_max_ns: u64,
    /// Walks whose off-CPU part was measured.
    pub offcpu_walks: u64,
    pub locked: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid"),
            offcpu_total_ns: 0,
            offcpu_max_ns: 0,
            offcpu_walks: 0,
            locked: 0,
        }
    }
}

impl Stats {
    /// 2 significant digits (1%): for the per-process rows, of which there are many.
    ///
    /// # Panics
    /// Never: the bounds are constants that `new_with_bounds` accepts.
    pub fn coarse() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_NS, 2).expect("static histogram bounds are valid"),
            ..Self::default()
        }
    }

    pub fn record(&mut self, ev: &WalkEvent) {
        self.hist.saturating_record(ev.duration_ns.clamp(1, MAX_NS));
        if ev.flags & FLAG_OFFCPU_VALID != 0 {
            self.offcpu_walks += 1;
            self.offcpu_total_ns += ev.offcpu_ns;
            self.offcpu_max_ns = self.offcpu_max_ns.max(ev.offcpu_ns);
        }
        self.locked += u64::from(ev.locked != 0);
    }

    /// Adds another group's walks (same histogram bounds, so the add cannot fail).
    pub fn merge(&mut self, other: &Stats) {
        if let Err(e) = self.hist.add(&other.hist) {
            log::warn!("merging histograms: {e:?}");
        }
        self.offcpu_total_ns += other.offcpu_total_ns;
        self.offcpu_max_ns = self.offcpu_max_ns.max(other.offcpu_max_ns);
        self.offcpu_walks += other.offcpu_walks;
        self.locked += other.locked;
    }

    pub fn row(&self, key: String) -> Row {
        let h = &self.hist;
        let q = |p: f64| h.value_at_quantile(p);
        Row {
            key,
            count: h.len(),
            min_ns: h.min(),
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: h.max(),
            mean_ns: h.mean() as u64,
            offcpu_total_ns: self.offcpu_total_ns,
            offcpu_max_ns: self.offcpu_max_ns,
            offcpu_measured: self.offcpu_walks,
            locked: self.locked,
        }
    }
}

/// One summary line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: String,
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: u64,
    pub offcpu_total_ns: u64,
    pub offcpu_max_ns: u64,
    pub offcpu_measured: u64,
    pub locked: u64,
}

/// All groups.
#[derive(Clone, Debug, Default)]
pub struct Aggregator {
    pub types: BTreeMap<PageType, Stats>,
    /// By page type, then purpose: nested so that the per-event lookup borrows the purpose.
    pub purposes: BTreeMap<PageType, BTreeMap<String, Stats>>,
    /// By process (tgid and start time), bounded ([`ProcessTable`]).
    pub processes: ProcessTable,
}

impl Aggregator {
    /// Called per event: allocates only for a purpose or process not seen before.
    pub fn record(&mut self, ev: &WalkEvent, purpose: &str, process: Process<'_>) {
        let ty = PageType::from_u32(ev.page_type);
        self.types.entry(ty).or_default().record(ev);
        let purposes = self.purposes.entry(ty).or_default();
        match purposes.get_mut(purpose) {
            Some(s) => s.record(ev),
            None => purposes.entry(purpose.to_string()).or_default().record(ev),
        }
        self.processes.record(ev, process);
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::tests::event;

    #[test]
    fn per_type_percentiles() {
        let mut a = Aggregator::default();
        for i in 1..=1000u64 {
            a.record(
                &event(PageType::Anon, i * 1000, 1),
                "migrate",
                Process::named("java"),
            );
        }
        a.record(
            &event(PageType::Ksm, 705_119_858, 2),
            "migrate",
            Process::named("java"),
        );
        let rows = a.type_rows();
        assert_eq!(
            rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["ksm", "anon"]
        );
        let anon = &rows[1];
        assert_eq!(anon.count, 1000);
        assert_eq!(anon.min_ns, 1000);
        // 3 significant digits: within 0.1%.
        assert!(
            (anon.p50_ns as f64 - 500_000.0).abs() / 500_000.0 < 0.001,
            "{}",
            anon.p50_ns
        );
        assert!(
            (anon.p99_ns as f64 - 990_000.0).abs() / 990_000.0 < 0.001,
            "{}",
            anon.p99_ns
        );
        assert!((anon.max_ns as f64 - 1_000_000.0).abs() / 1_000_000.0 < 0.001);
        assert_eq!(anon.offcpu_measured, 1000);
        assert_eq!(anon.offcpu_total_ns, (1..=1000u64).map(|i| i * 250).sum::<u64>());
        let ksm = &rows[0];
        assert!((ksm.max_ns as f64 - 705_119_858.0).abs() / 705e6 < 0.001);
    }

    #[test]
    fn purposes_and_processes() {
        let mut a = Aggregator::default();
        a.record(&event(PageType::Ksm, 10, 1), "migrate", Process::named("java"));
        a.record(
            &event(PageType::Ksm, 20, 1),
            "remove-migration",
            Process::named("java"),
        );
        let mut other = event(PageType::File, 5_000, 1);
        other.tgid = 1;
        a.record(&other, "referenced", Process::named("kswapd0"));
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
        a.record(&event(PageType::Anon, 0, 1), "x", Process::named("c"));
        a.record(&event(PageType::Anon, u64::MAX, 1), "x", Process::named("c"));
        let r = &a.type_rows()[0];
        assert_eq!(r.count, 2);
        assert_eq!(r.min_ns, 1);
        assert!(r.max_ns >= MAX_NS / 2);
    }
}
