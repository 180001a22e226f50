//! Where every walk of a run goes: the run's aggregate, the current interval's, and the
//! outputs asked for (CSV, interval log, Prometheus, slow-walk lines).
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use anyhow::anyhow;
use rmap_common::WalkEvent;

use super::slow::SlowWalks;
use crate::{
    agg::Aggregator,
    counters::{KernelCounts, Latency},
    export::{csv::CsvWriter, hlog::HlogWriter, plot, prometheus::Metrics},
    owners::names::OwnerNames,
    procs::Process,
};

#[derive(Default)]
pub struct Sink {
    /// Every walk of the run.
    pub total: Aggregator,
    interval: Aggregator,
    interval_from: Option<SystemTime>,
    csv: Option<CsvWriter>,
    hlog: Option<HlogWriter>,
    metrics: Option<Arc<Mutex<Metrics>>>,
    slow: Option<SlowWalks>,
    /// Names owners (cgroup paths, pods) for the CSV and the per-owner Prometheus series.
    owners: OwnerNames,
    /// The kernel's cumulative latency histograms at the last `set_latency`…
    latency: Latency,
    /// …and at the start of the current interval.
    latency_from: Latency,
}

impl Sink {
    /// A sink writing the interval log `hlog` and the CSV `csv`, when given: call it once
    /// attached, so that a run that could not attach leaves old files as they were (clap has
    /// checked the paths already). `stalls`: the run counts waits (`--stalls`), which fill the
    /// CSV's `stall_waits` column (see [`CsvWriter::create`]).
    pub fn with_files(hlog: Option<&Path>, csv: Option<&Path>, stalls: bool) -> anyhow::Result<Self> {
        Ok(Self {
            hlog: hlog.map(HlogWriter::create).transpose()?,
            csv: csv.map(|p| CsvWriter::create(p, stalls)).transpose()?,
            interval_from: Some(SystemTime::now()),
            ..Self::default()
        })
    }

    /// Also feeds the Prometheus metrics.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Option<Arc<Mutex<Metrics>>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Names pods from the kubelet's log directory `pod_logs` (default: `/var/log/pods`).
    #[must_use]
    pub fn with_pod_logs(mut self, pod_logs: &Path) -> Self {
        self.owners = OwnerNames::new(pod_logs);
        self
    }

    /// Also prints the walks slower than `threshold_ms`.
    #[must_use]
    pub fn with_slow_walks(mut self, threshold_ms: Option<f64>) -> Self {
        self.slow = threshold_ms.map(SlowWalks::new);
        self
    }

    /// One walk record: its off-CPU and locked counts into the interval's aggregate (the run's
    /// gets them when the interval ends), its process and owner into the run's tables (no
    /// interval shows those), its line into the CSV.
    pub fn record(&mut self, ev: &WalkEvent, purpose: &str, process: Process<'_>) {
        self.interval.record_side(ev, purpose);
        self.total.record_tables(ev, process);
        if let Some(c) = self.csv.as_mut() {
            c.write(ev, purpose, process.name, &mut self.owners);
        }
        if let Some(s) = &self.slow {
            s.record(ev, purpose);
        }
    }

    /// The kernel's latency histograms now (cumulative): the run's counts and percentiles per
    /// page type and purpose, the current interval's (what was added since it began), and the
    /// Prometheus duration histograms.
    pub fn set_latency(
        &mut self,
        now: Latency,
        mut purpose: impl FnMut(u64) -> String,
    ) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.lock()
                .map_err(|_| anyhow!("metrics lock poisoned"))?
                .set_latency(&now, &mut purpose);
        }
        let interval = crate::latency::minus(&now, &self.latency_from);
        self.total.set_latency(crate::latency::named(&now, &mut purpose));
        self.interval
            .set_latency(crate::latency::named(&interval, &mut purpose));
        self.latency = now;
        Ok(())
    }

    /// Ends the current interval: CSV flushed, interval queued to the interval log, returned.
    pub fn end_interval(&mut self) -> Aggregator {
        let now = SystemTime::now();
        let from = self.interval_from.replace(now).unwrap_or(now);
        self.latency_from = self.latency.clone();
        let interval = std::mem::take(&mut self.interval);
        self.total.add_side(&interval);
        if let Some(c) = self.csv.as_mut() {
            c.flush();
        }
        if let Some(h) = self.hlog.as_mut() {
            h.interval(from, now, &interval.types);
        }
        interval
    }

    /// The kernel's counters, to the Prometheus metrics.
    pub fn publish(&mut self, counts: &KernelCounts) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            let mut m = m.lock().map_err(|_| anyhow!("metrics lock poisoned"))?;
            m.update(counts);
            if m.has_owners() {
                m.set_owners(&self.total.owner_rows(usize::MAX, &mut self.owners));
            }
        }
        Ok(())
    }

    /// The kernel's stall histogram (`--stalls`), to the Prometheus metrics.
    pub fn publish_stalls(&mut self, counts: &crate::stalls::kernel::StallCounts) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.lock()
                .map_err(|_| anyhow!("metrics lock poisoned"))?
                .set_stalls(&counts.buckets);
        }
        Ok(())
    }

    /// The waits per victim cgroup (`--stalls` with `--prometheus-cgroups`), named, to the
    /// Prometheus metrics.
    pub fn publish_victims(&mut self, agg: &crate::stalls::agg::StallAgg) -> anyhow::Result<()> {
        use crate::export::prometheus::OwnerLabel;
        let Some(m) = &self.metrics else {
            return Ok(());
        };
        let m = m.lock().map_err(|_| anyhow!("metrics lock poisoned"))?;
        if !m.has_victims() {
            return Ok(());
        }
        let rows: Vec<_> = agg
            .cgroup_rows()
            .into_iter()
            .map(|(id, w)| {
                let label = match id {
                    None => OwnerLabel::other(),
                    Some(0) => OwnerLabel::new("(unknown)", None),
                    Some(id) => OwnerLabel::new(&self.owners.name(id), self.owners.pod(id)),
                };
                (label, w.count, w.total_ns)
            })
            .collect();
        m.set_victims(&rows);
        Ok(())
    }

    /// Ends the last interval, closes the files (reporting a write error) and plots the run
    /// to `svg`; returns the run's aggregate.
    pub fn finish(mut self, svg: Option<&Path>) -> anyhow::Result<Aggregator> {
        self.end_interval();
        if let Some(h) = self.hlog.take() {
            h.finish()?;
        }
        if let Some(c) = self.csv.take() {
            c.finish()?;
        }
        if let Some(svg) = svg {
            plot::plot_types(&self.total.types, svg)?;
        }
        Ok(self.total)
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::PageType;

    use super::*;
    use crate::events::tests::event;

    fn side(a: &Aggregator, key: &str) -> (u64, u64, u64) {
        let rows = a.type_rows().into_iter().chain(a.purpose_rows());
        rows.filter(|r| r.key == key)
            .map(|r| (r.offcpu_measured, r.offcpu_total_ns, r.locked))
            .next()
            .unwrap_or_default()
    }

    /// Each record is counted once: an interval has its off-CPU and locked counts, the run's
    /// are the sum of its intervals', and the per-process table is the run's alone.
    #[test]
    fn intervals_add_up_to_the_run() {
        let mut sink = Sink::default();
        let mut ev = event(PageType::Anon, 1_000, 1);
        for _ in 0..3 {
            sink.record(&ev, "migrate", Process::named("java"));
        }
        let first = sink.end_interval();
        ev.locked = 1;
        for _ in 0..2 {
            sink.record(&ev, "unmap", Process::named("java"));
        }
        let second = sink.end_interval();
        assert_eq!((first.records, second.records), (3, 2));
        assert_eq!(side(&first, "anon"), (3, 750, 0));
        assert_eq!(side(&second, "anon/unmap"), (2, 500, 2));
        assert!(first.processes.is_empty() && second.processes.is_empty());
        let total = sink.finish(None).expect("no files to close");
        assert_eq!(total.records, 5);
        assert_eq!(side(&total, "anon"), (5, 1250, 2));
        assert_eq!(side(&total, "anon/migrate"), (3, 750, 0));
        assert_eq!(side(&total, "anon/unmap"), (2, 500, 2));
        let procs = total.process_rows(10);
        assert_eq!((procs[0].key.as_str(), procs[0].count), ("java/4240", 5));
    }
}
