//! `--prometheus ADDR` (with --attach-only): `/metrics` in the OpenMetrics text format, encoded
//! by prometheus-client (served by `endpoint`). Labels are `page_type` and purpose only: both come from small fixed
//! sets, so the series count stays bounded however many processes and folios walk.
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::{Registry, Unit},
};
use rmap_common::{Counter as KernelCounter, PageType, WalkEvent};

use crate::counters::{KernelCounts, TypeWalks};

/// exp2 buckets from 1 µs: 2^0 .. 2^23 µs, the last bound 8.39 s (then +Inf).
const BUCKETS: u16 = 24;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WalkLabels {
    page_type: String,
    purpose: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    page_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    attach_mode: String,
    kernel: String,
}

fn walk_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 2.0, BUCKETS))
}

/// The exported metrics; the kernel's counters are cumulative, so the last values seen are kept
/// to add only what is new.
pub struct Metrics {
    registry: Registry,
    durations: Family<WalkLabels, Histogram, fn() -> Histogram>,
    walks: Family<TypeLabel, Counter>,
    drops: Counter,
    unpaired: Counter,
    seen_walks: Vec<(&'static str, u64)>,
    seen_drops: u64,
    seen_unpaired: u64,
}

impl Metrics {
    pub fn new(attach_mode: &str, kernel: &str) -> Self {
        let mut registry = Registry::default();
        let durations =
            Family::<WalkLabels, Histogram, fn() -> Histogram>::new_with_constructor(walk_histogram);
        registry.register_with_unit(
            "rmap_walk_duration",
            "Duration of reverse-mapping walks (rmap_walk), by folio type and the reason for the walk",
            Unit::Seconds,
            durations.clone(),
        );
        let walks = Family::<TypeLabel, Counter>::default();
        registry.register(
            "rmap_walks",
            "Reverse-mapping walks counted in the kernel, by folio type",
            walks.clone(),
        );
        let drops = Counter::default();
        registry.register(
            "rmap_ringbuf_drops",
            "Walk events lost because the BPF ring buffer was full",
            drops.clone(),
        );
        let unpaired = Counter::default();
        registry.register(
            "rmap_unpaired",
            "Walk ends without a recorded start (attached mid-walk, or start lost)",
            unpaired.clone(),
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
            seen_walks: Vec::new(),
            seen_drops: 0,
            seen_unpaired: 0,
        }
    }

    pub fn observe(&self, ev: &WalkEvent, purpose: &str) {
        let labels = WalkLabels {
            page_type: PageType::from_u32(ev.page_type).name().to_string(),
            purpose: purpose.to_string(),
        };
        self.durations
            .get_or_create(&labels)
            .observe(ev.duration_ns as f64 / 1e9);
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
        let drops = counts.get(KernelCounter::RingbufDrops);
        self.drops.inc_by(drops.saturating_sub(self.seen_drops));
        self.seen_drops = self.seen_drops.max(drops);
        let unpaired = counts.get(KernelCounter::Unpaired);
        self.unpaired.inc_by(unpaired.saturating_sub(self.seen_unpaired));
        self.seen_unpaired = self.seen_unpaired.max(unpaired);
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_bounded_labels_and_exp2_buckets() {
        let m = Metrics::new("tracepoint", "6.1.0");
        let ev = WalkEvent {
            page_type: PageType::Ksm as u32,
            duration_ns: 3_000_000,
            pid: 77,
            folio: 0xffff_0000,
            ..Default::default()
        };
        m.observe(&ev, "migrate");
        let text = m.encode().unwrap();
        assert!(
            text.contains("# TYPE rmap_walk_duration_seconds histogram"),
            "{text}"
        );
        let bucket = |le: &str| {
            format!("rmap_walk_duration_seconds_bucket{{le=\"{le}\",page_type=\"ksm\",purpose=\"migrate\"}}")
        };
        assert!(text.contains(&format!("{} 0\n", bucket("0.000001"))), "{text}");
        assert!(text.contains(&format!("{} 0\n", bucket("0.002048"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("0.004096"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("+Inf"))), "{text}");
        assert!(text.contains("rmap_trace_build_info{"), "{text}");
        assert!(!text.contains("pid=") && !text.contains("folio="), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("_bucket{")).count(),
            BUCKETS as usize + 1
        );
    }
}
