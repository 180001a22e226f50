//! Latency statistics of a group of walks, plain data below every table that holds them
//! (`agg`, `top`, `procs`, `latency`, the exports): the HDR histogram with off-CPU and locked
//! counts ([`Stats`]), one summary line ([`Row`]) and a row's parts ([`Part`]).
use hdrhistogram::Histogram;
use rmap_common::{FLAG_OFFCPU_VALID, WalkEvent};
use serde::Serialize;

/// Highest trackable walk: one hour, in ns (a walk longer than that is clamped).
pub const MAX_NS: u64 = 3_600_000_000_000;

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

    /// Off-CPU and locked counts only, its histogram a placeholder of a few hundred bytes: a
    /// page type's or purpose's of an interval, whose latency comes from the kernel when the
    /// interval ends (`agg::Aggregator::set_latency` gives it a histogram then).
    ///
    /// # Panics
    /// Never: a one-digit histogram is always valid.
    pub fn side_only() -> Self {
        Self {
            hist: Histogram::new(1).expect("a one-digit histogram is valid"),
            ..Self::default()
        }
    }

    /// Empties the histogram for the kernel's latency, first giving a placeholder
    /// ([`Self::side_only`]) the aggregator's bounds.
    pub fn reset_latency(&mut self) {
        if self.hist.high() == MAX_NS && self.hist.sigfig() == 3 {
            self.hist.reset();
        } else {
            self.hist = Self::default().hist;
        }
    }

    pub fn record(&mut self, ev: &WalkEvent) {
        self.hist.saturating_record(ev.duration_ns.clamp(1, MAX_NS));
        self.record_side(ev);
    }

    /// What only a ring record carries: off-CPU time and the locked flag (the duration is
    /// counted by the kernel's histograms).
    pub fn record_side(&mut self, ev: &WalkEvent) {
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
        self.merge_side(other);
    }

    /// Adds another group's off-CPU and locked counts, not its histogram.
    pub fn merge_side(&mut self, other: &Stats) {
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
            parts: Vec::new(),
            pod: None,
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
    /// Thread names of a process row, walkers of an owner row (absent elsewhere).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// An owner row's pod, when its cgroup is a pod's (absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::owners::names::PodLabels>,
}

/// Walks of one part of a row: a thread name of a process, a walker of an owner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub name: String,
    pub walks: u64,
}
