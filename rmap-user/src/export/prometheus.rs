//! `--prometheus ADDR` (with --attach-only): `/metrics` in the OpenMetrics text format, encoded
//! by prometheus-client (served by `endpoint`). The walk series are labelled by `page_type`
//! and purpose, both from small fixed sets, so their count stays bounded however many
//! processes and folios walk. Every value comes from the kernel's counters and latency histograms, so no
//! ring-buffer drop changes it. Opt-in (`--prometheus-cgroups N`): walks per owner and, with
//! `--stalls`, waits per victim cgroup, each labelled by cgroup path and, for a pod's cgroup,
//! by namespace, pod and container, bounded to the top N and "other".
use prometheus_client::{
    encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder, text::encode},
    metrics::{counter::Counter, family::Family, info::Info},
    registry::{Registry, Unit},
};
use rmap_common::{Counter as KernelCounter, HistKey, PageType};

use super::prom_hist::{Buckets, KernelHistogram};
use crate::{
    counters::{KernelCounts, Latency, TypeWalks},
    owners::names::PodLabels,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WalkLabels {
    page_type: String,
    purpose: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    page_type: String,
}

/// A cgroup: its path, and its pod's names where it is a pod's (left out otherwise).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct OwnerLabel {
    cgroup: String,
    namespace: String,
    pod: String,
    container: String,
}

impl OwnerLabel {
    /// The labels of cgroup `path` with its pod's names.
    pub fn new(path: &str, pod: Option<&PodLabels>) -> Self {
        let (namespace, pod_name, container) = pod.map_or_else(Default::default, |p| {
            (p.namespace.clone(), p.pod.clone(), p.container.clone())
        });
        Self {
            cgroup: path.to_string(),
            namespace,
            pod: pod_name,
            container,
        }
    }

    /// The row of the cgroups beyond the top.
    pub fn other() -> Self {
        Self {
            cgroup: crate::top::OTHER.into(),
            ..Self::default()
        }
    }
}

impl EncodeLabelSet for OwnerLabel {
    /// `cgroup`, then the pod's labels that have a value (an empty label is no label to
    /// Prometheus: writing none keeps a non-pod's series short).
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("cgroup", self.cgroup.as_str()).encode(encoder.encode_label())?;
        for (key, value) in [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
        ] {
            if !value.is_empty() {
                (key, value.as_str()).encode(encoder.encode_label())?;
            }
        }
        Ok(())
    }
}

type Seconds = Counter<f64, std::sync::atomic::AtomicU64>;

/// `--prometheus-cgroups N`: walks per owner for the top N owners, the rest as "other".
struct OwnerMetrics {
    top: usize,
    walks: Family<OwnerLabel, Counter>,
    seconds: Family<OwnerLabel, Seconds>,
}

/// `--prometheus-cgroups N` with `--stalls`: waits per victim cgroup, the top N and "other".
struct VictimMetrics {
    top: usize,
    waits: Family<OwnerLabel, Counter>,
    seconds: Family<OwnerLabel, Seconds>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    attach_mode: String,
    kernel: String,
}

/// The exported metrics; the kernel's counters are cumulative, so the last values seen are kept
/// to add only what is new.
pub struct Metrics {
    registry: Registry,
    durations: Family<WalkLabels, KernelHistogram>,
    walks: Family<TypeLabel, Counter>,
    drops: KernelCount,
    unpaired: KernelCount,
    evicted: KernelCount,
    owners: Option<OwnerMetrics>,
    victims: Option<VictimMetrics>,
    /// `--stalls`: the waits on locks held by walks.
    stalls: Option<KernelHistogram>,
    seen_walks: Vec<(&'static str, u64)>,
}

/// A counter fed from one of the kernel's cumulative counters: each update adds what is new
/// since the largest value seen.
#[derive(Default)]
struct KernelCount {
    counter: Counter,
    seen: u64,
}

impl KernelCount {
    fn update(&mut self, now: u64) {
        self.counter.inc_by(now.saturating_sub(self.seen));
        self.seen = self.seen.max(now);
    }
}

impl Metrics {
    pub fn new(attach_mode: &str, kernel: &str) -> Self {
        let mut registry = Registry::default();
        let durations = Family::<WalkLabels, KernelHistogram>::default();
        registry.register_with_unit(
            "rmap_walk_duration",
            "Duration of reverse-mapping walks (rmap_walk), by folio type and the reason for the walk: \
             every walk, from the kernel's histograms (bounds are powers of two in ns; _sum within 3.1%)",
            Unit::Seconds,
            durations.clone(),
        );
        let walks = Family::<TypeLabel, Counter>::default();
        registry.register(
            "rmap_walks",
            "Reverse-mapping walks counted in the kernel, by folio type",
            walks.clone(),
        );
        let drops = KernelCount::default();
        registry.register(
            "rmap_ringbuf_drops",
            "Walk events lost because the BPF ring buffer was full",
            drops.counter.clone(),
        );
        let unpaired = KernelCount::default();
        registry.register(
            "rmap_unpaired",
            "Walk ends without a recorded start (attached mid-walk, or start lost)",
            unpaired.counter.clone(),
        );
        let evicted = KernelCount::default();
        registry.register(
            "rmap_inflight_evicted",
            "Walk starts that took over an in-flight slot held for over 10 s by a walk whose end was never seen",
            evicted.counter.clone(),
        );
        registry.register(
            "rmap_trace_build",
            "rmap-trace version, attach mode and kernel",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                attach_mode: attach_mode.to_string(),
                kernel: kernel.to_string(),
            }),
        );
        Self {
            registry,
            durations,
            walks,
            drops,
            unpaired,
            evicted,
            owners: None,
            victims: None,
            stalls: None,
            seen_walks: Vec::new(),
        }
    }

    /// Adds `rmap_walk_stall_seconds` (`--stalls`): every wait on a lock held by a walk in
    /// flight (or by a thread waiting for one), from the kernel's histogram. No labels: the
    /// victims are many, the per-victim figures are in the summary and JSON.
    #[must_use]
    pub fn with_stalls(mut self) -> Self {
        let h = KernelHistogram::default();
        self.registry.register_with_unit(
            "rmap_walk_stall",
            "Waits of threads on locks held by reverse-mapping walks in flight (anon_vma, i_mmap \
             rwsems), or behind a thread that waits for one: every wait, from the kernel's histogram \
             (bounds are powers of two in ns; _sum within 3.1%)",
            Unit::Seconds,
            h.clone(),
        );
        self.stalls = Some(h);
        self
    }

    /// Sets `rmap_walk_stall_seconds` to the kernel's cumulative wait histogram.
    pub fn set_stalls(&self, buckets: &[u64]) {
        if let Some(h) = &self.stalls {
            h.set(Buckets::from_kernel(buckets));
        }
    }

    /// Adds the per-owner series for the `top` owners with the most walks (opt-in: a `cgroup`
    /// label per owner, bounded by `top` plus "other").
    #[must_use]
    pub fn with_owners(mut self, top: usize) -> Self {
        let walks = Family::<OwnerLabel, Counter>::default();
        self.registry.register(
            "rmap_owner_walks",
            "Walks by owner: the memory cgroup the walked folio is charged to (a pod's: with namespace, \
             pod and container), the top owners by walks and cgroup=\"other\" (from ring records: walks \
             the ring buffer dropped are missing; a series restarts when its owner re-enters the top)",
            walks.clone(),
        );
        let seconds = Family::<OwnerLabel, Seconds>::default();
        self.registry.register_with_unit(
            "rmap_owner_walk",
            "Time spent walking each owner's folios (from ring records, 1% precision)",
            Unit::Seconds,
            seconds.clone(),
        );
        self.owners = Some(OwnerMetrics { top, walks, seconds });
        self
    }

    /// Whether per-owner series are exported.
    pub fn has_owners(&self) -> bool {
        self.owners.is_some()
    }

    /// Adds the waits per victim cgroup (`--stalls` with `--prometheus-cgroups`) for the `top`
    /// cgroups that waited longest, the rest as cgroup="other".
    #[must_use]
    pub fn with_stall_victims(mut self, top: usize) -> Self {
        let waits = Family::<OwnerLabel, Counter>::default();
        self.registry.register(
            "rmap_stall_victim_waits",
            "Waits of threads on locks held by walks, by the waiting thread's cgroup (a pod's: with \
             namespace, pod and container), the cgroups that waited longest and cgroup=\"other\" \
             (from stall records: waits whose record was dropped are missing)",
            waits.clone(),
        );
        let seconds = Family::<OwnerLabel, Seconds>::default();
        self.registry.register_with_unit(
            "rmap_stall_victim_wait",
            "Time threads waited on locks held by walks, by the waiting thread's cgroup",
            Unit::Seconds,
            seconds.clone(),
        );
        self.victims = Some(VictimMetrics { top, waits, seconds });
        self
    }

    /// Whether per-victim-cgroup series are exported.
    pub fn has_victims(&self) -> bool {
        self.victims.is_some()
    }

    /// Sets the per-victim-cgroup series: `rows` (labels, cumulative waits and ns waited), the
    /// longest waiting first as `StallAgg::cgroup_rows` gives them, "other" among them.
    pub fn set_victims(&self, rows: &[(OwnerLabel, u64, u64)]) {
        let Some(v) = &self.victims else { return };
        v.waits.clear();
        v.seconds.clear();
        let (mut other_waits, mut other_ns) = (0, 0);
        let mut shown = 0;
        for (label, waits, ns) in rows {
            if shown < v.top && label.cgroup != crate::top::OTHER {
                v.waits.get_or_create(label).inc_by(*waits);
                v.seconds.get_or_create(label).inc_by(*ns as f64 / 1e9);
                shown += 1;
            } else {
                other_waits += waits;
                other_ns += ns;
            }
        }
        if other_waits > 0 {
            let label = OwnerLabel::other();
            v.waits.get_or_create(&label).inc_by(other_waits);
            v.seconds.get_or_create(&label).inc_by(other_ns as f64 / 1e9);
        }
    }

    /// Sets the per-owner series from the owner rows (cumulative, most walks first is not
    /// required; "other" last as `TopTable::rows` gives it).
    pub fn set_owners(&self, rows: &[crate::stats::Row]) {
        let Some(o) = &self.owners else { return };
        let mut by_walks: Vec<&crate::stats::Row> =
            rows.iter().filter(|r| r.key != crate::top::OTHER).collect();
        by_walks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        let (mut other_walks, mut other_s) = (0u64, 0f64);
        let seconds = |r: &crate::stats::Row| r.mean_ns as f64 * r.count as f64 / 1e9;
        for r in rows.iter().filter(|r| r.key == crate::top::OTHER) {
            other_walks += r.count;
            other_s += seconds(r);
        }
        o.walks.clear();
        o.seconds.clear();
        for (i, r) in by_walks.iter().enumerate() {
            if i < o.top {
                let label = OwnerLabel::new(&r.key, r.pod.as_ref());
                o.walks.get_or_create(&label).inc_by(r.count);
                o.seconds.get_or_create(&label).inc_by(seconds(r));
            } else {
                other_walks += r.count;
                other_s += seconds(r);
            }
        }
        if other_walks > 0 {
            let label = OwnerLabel::other();
            o.walks.get_or_create(&label).inc_by(other_walks);
            o.seconds.get_or_create(&label).inc_by(other_s);
        }
    }

    /// Sets the duration histograms to the kernel's cumulative latency histograms;
    /// `purpose` names an `rmap_one` address (two addresses may share a name: summed).
    pub fn set_latency(&self, latency: &Latency, mut purpose: impl FnMut(u64) -> String) {
        let mut series: Vec<(WalkLabels, Buckets)> = Vec::new();
        for (
            HistKey {
                rmap_one, page_type, ..
            },
            kernel,
        ) in latency
        {
            let labels = WalkLabels {
                page_type: PageType::from_u32(*page_type).name().to_string(),
                purpose: purpose(*rmap_one),
            };
            match series.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, b)) => b.add_kernel(kernel),
                None => series.push((labels, Buckets::from_kernel(kernel))),
            }
        }
        for (labels, b) in series {
            self.durations.get_or_create(&labels).set(b);
        }
    }

    /// Adds what the kernel counted since the last call.
    pub fn update(&mut self, counts: &KernelCounts) {
        for TypeWalks {
            page_type: ty,
            walks: n,
            ..
        } in &counts.per_type
        {
            let before = self
                .seen_walks
                .iter()
                .find(|(t, _)| t == ty)
                .map_or(0, |(_, v)| *v);
            if *n > before {
                self.walks
                    .get_or_create(&TypeLabel {
                        page_type: ty.to_string(),
                    })
                    .inc_by(n - before);
            }
        }
        self.seen_walks = counts.per_type.iter().map(|w| (w.page_type, w.walks)).collect();
        self.drops.update(counts.get(KernelCounter::RingbufDrops));
        self.unpaired.update(counts.get(KernelCounter::Unpaired));
        self.evicted.update(counts.get(KernelCounter::InflightEvicted));
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, hist_bucket};

    use super::*;
    use crate::export::prom_hist::BOUNDS;

    fn key(rmap_one: u64, ty: PageType) -> HistKey {
        HistKey {
            rmap_one,
            page_type: ty as u32,
            _pad: 0,
        }
    }

    /// Three KSM walks of 3 ms under two `rmap_one` addresses named alike, one anon walk: one
    /// series each, counts exact at the power-of-two bounds, no per-walk labels.
    #[test]
    fn exposition_from_kernel_histograms() {
        let m = Metrics::new("tracepoint", "6.1.0");
        let mut ksm = vec![0u64; HIST_BUCKETS];
        ksm[hist_bucket(3_000_000) as usize] = 2;
        let mut ksm2 = vec![0u64; HIST_BUCKETS];
        ksm2[hist_bucket(3_000_000) as usize] = 1;
        let mut anon = vec![0u64; HIST_BUCKETS];
        anon[hist_bucket(900) as usize] = 1;
        let latency = vec![
            (key(1, PageType::Ksm), ksm),
            (key(2, PageType::Ksm), ksm2),
            (key(3, PageType::Anon), anon),
        ];
        m.set_latency(&latency, |a| {
            if a == 3 { "reclaim" } else { "migrate" }.to_string()
        });
        let text = m.encode().unwrap();
        assert!(
            text.contains("# TYPE rmap_walk_duration_seconds histogram"),
            "{text}"
        );
        let bucket = |le: &str, ty: &str, p: &str| {
            format!("rmap_walk_duration_seconds_bucket{{le=\"{le}\",page_type=\"{ty}\",purpose=\"{p}\"}}")
        };
        // 3 ms lies between 2^21 ns (2.097 ms) and 2^22 ns (4.194 ms).
        assert!(
            text.contains(&format!("{} 0\n", bucket("0.002097152", "ksm", "migrate"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 3\n", bucket("0.004194304", "ksm", "migrate"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 3\n", bucket("+Inf", "ksm", "migrate"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1\n", bucket("0.000001024", "anon", "reclaim"))),
            "{text}"
        );
        assert!(
            text.contains("rmap_walk_duration_seconds_count{page_type=\"ksm\",purpose=\"migrate\"} 3"),
            "{text}"
        );
        assert!(text.contains("rmap_trace_build_info{"), "{text}");
        assert!(!text.contains("pid=") && !text.contains("folio="), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("_bucket{")).count(),
            2 * (BOUNDS + 1)
        );
    }

    /// `--stalls`: one unlabelled histogram of every wait; nothing of it without the option.
    #[test]
    fn stall_histogram_only_with_stalls() {
        let mut waits = vec![0u64; HIST_BUCKETS];
        waits[hist_bucket(500_000) as usize] = 4;
        waits[hist_bucket(30_000_000) as usize] = 1;
        let without = Metrics::new("fentry", "6.1.0");
        without.set_stalls(&waits);
        assert!(!without.encode().unwrap().contains("rmap_walk_stall"));
        let m = Metrics::new("fentry", "6.1.0").with_stalls();
        m.set_stalls(&waits);
        let text = m.encode().unwrap();
        assert!(
            text.contains("# TYPE rmap_walk_stall_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("rmap_walk_stall_seconds_count 5\n"), "{text}");
        // 0.5 ms lies below 2^19 ns (0.524 ms); 30 ms below 2^25 ns (33.6 ms).
        assert!(
            text.contains("rmap_walk_stall_seconds_bucket{le=\"0.000524288\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("rmap_walk_stall_seconds_bucket{le=\"0.033554432\"} 5\n"),
            "{text}"
        );
    }

    /// Opt-in owner series: the top 2 of 3 owners by walks, the third and the table's own
    /// "other" row summed under cgroup="other"; nothing of it without the opt-in.
    #[test]
    fn owner_series_are_bounded() {
        let row = |key: &str, count: u64| crate::stats::Row {
            key: key.into(),
            count,
            mean_ns: 1_000_000,
            ..crate::stats::Stats::default().row(String::new())
        };
        let rows = [row("/a", 5), row("/b", 9), row("/c", 1), row("other", 2)];
        let plain = Metrics::new("fentry", "6.1.0");
        plain.set_owners(&rows);
        assert!(!plain.encode().unwrap().contains("rmap_owner"));
        let m = Metrics::new("fentry", "6.1.0").with_owners(2);
        m.set_owners(&rows);
        let text = m.encode().unwrap();
        for line in [
            "rmap_owner_walks_total{cgroup=\"/b\"} 9",
            "rmap_owner_walks_total{cgroup=\"/a\"} 5",
            "rmap_owner_walks_total{cgroup=\"other\"} 3",
            "rmap_owner_walk_seconds_total{cgroup=\"/b\"} 0.009",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("cgroup=\"/c\""), "{text}");
    }

    /// A pod's owner row is labelled with its namespace, pod and container; victim cgroups
    /// are bounded the same way, only with the opt-in.
    #[test]
    fn pod_labels_and_victim_cgroups() {
        let pod = PodLabels {
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: "app".into(),
            pod_uid: "u".into(),
            container_id: "c".into(),
            qos: "burstable",
        };
        let mut row = crate::stats::Stats::default().row("/kubepods.slice/x".into());
        row.count = 4;
        row.mean_ns = 1_000;
        row.pod = Some(pod.clone());
        let m = Metrics::new("fentry", "6.1.0")
            .with_owners(1)
            .with_stall_victims(1);
        m.set_owners(&[row]);
        m.set_victims(&[
            (OwnerLabel::new("/kubepods.slice/x", Some(&pod)), 3, 2_000_000_000),
            (OwnerLabel::new("/system.slice/a.service", None), 1, 5),
            (OwnerLabel::other(), 2, 5),
        ]);
        let text = m.encode().unwrap();
        for line in [
            "rmap_owner_walks_total{cgroup=\"/kubepods.slice/x\",namespace=\"shop\",pod=\"web-0\",container=\"app\"} 4",
            "rmap_stall_victim_waits_total{cgroup=\"/kubepods.slice/x\",namespace=\"shop\",pod=\"web-0\",container=\"app\"} 3",
            "rmap_stall_victim_wait_seconds_total{cgroup=\"/kubepods.slice/x\",namespace=\"shop\",pod=\"web-0\",container=\"app\"} 2.0",
            "rmap_stall_victim_waits_total{cgroup=\"other\"} 3",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("a.service"), "{text}");
        let plain = Metrics::new("fentry", "6.1.0");
        plain.set_victims(&[(OwnerLabel::other(), 1, 1)]);
        assert!(!plain.encode().unwrap().contains("victim"));
    }
}
