//! `rmap_walk_duration_seconds` from the kernel's latency histograms: a Prometheus histogram
//! that is *set* to the kernel's cumulative buckets (every walk, whatever the ring buffer
//! dropped) instead of fed one observation per ring record.
//!
//! The bounds are powers of two in nanoseconds (1.024 µs … 8.59 s): each is the lower bound of
//! one of the kernel's log-linear buckets (`rmap_common::hist_bucket`), so every kernel bucket
//! falls whole below one bound and the bucket counts are exact (a walk of exactly 2^k ns counts
//! in the next bound up: kernel buckets include their lower bound). `_sum` is not counted in the
//! kernel: it adds each bucket's midpoint, within `rmap_common::HIST_RELATIVE_ERROR` (3.1%).
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};
use rmap_common::{hist_bucket_low, hist_bucket_mid, hist_bucket_width};

/// First bound: 2^10 ns = 1.024 µs.
const FIRST_EXP: u32 = 10;
/// Bounds 2^10 … 2^33 ns (8.59 s), then +Inf.
pub const BOUNDS: usize = 24;

/// Per-bound counts (not cumulative: the encoder accumulates), the +Inf bucket last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Buckets {
    /// The kernel's buckets (`LatencyHist::buckets`, any length up to `HIST_BUCKETS`) regrouped
    /// under the power-of-two bounds.
    pub fn from_kernel(kernel: &[u64]) -> Self {
        let mut b = Self {
            counts: vec![0; BOUNDS + 1],
            ..Self::default()
        };
        b.add_kernel(kernel);
        b
    }

    /// Adds more kernel buckets (two purposes that have one name).
    pub fn add_kernel(&mut self, kernel: &[u64]) {
        for (i, &n) in kernel.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (low, width) = (hist_bucket_low(i as u32), hist_bucket_width(i as u32));
            self.counts[bound_index(low + width - 1)] += n;
            self.count += n;
            self.sum_seconds += n as f64 * hist_bucket_mid(i as u32) as f64 / 1e9;
        }
    }

    /// The upper bounds in seconds, +Inf last.
    pub fn bounds() -> impl Iterator<Item = f64> {
        (0..BOUNDS)
            .map(|k| (1u64 << (FIRST_EXP + k as u32)) as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
    }
}

/// The first bound that a value of `ns` is below.
fn bound_index(ns: u64) -> usize {
    // ns < 2^(FIRST_EXP + k) ⇔ ilog2(ns) < FIRST_EXP + k.
    let e = if ns == 0 { 0 } else { ns.ilog2() };
    (e + 1).saturating_sub(FIRST_EXP).min(BOUNDS as u32) as usize
}

/// One labelled series, set as a whole each interval.
#[derive(Clone, Debug, Default)]
pub struct KernelHistogram(Arc<Mutex<Buckets>>);

impl KernelHistogram {
    pub fn set(&self, b: Buckets) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = b;
    }
}

impl TypedMetric for KernelHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for KernelHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let b = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let counts = if b.counts.is_empty() {
            vec![0; BOUNDS + 1]
        } else {
            b.counts
        };
        let buckets: Vec<(f64, u64)> = Buckets::bounds().zip(counts).collect();
        encoder.encode_histogram::<NoLabelSet>(b.sum_seconds, b.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, hist_bucket};

    use super::*;

    /// Durations around every bound land in the bound a direct count gives: regrouping the
    /// kernel's buckets loses nothing.
    #[test]
    fn regrouped_counts_are_exact() {
        let mut kernel = vec![0u64; HIST_BUCKETS];
        let mut direct = vec![0u64; BOUNDS + 1];
        let mut values = vec![0, 1, 31, 999, 5_000_000_000_000];
        for k in 0..=BOUNDS as u32 + 1 {
            let p = 1u64 << (FIRST_EXP - 1 + k);
            values.extend([p - 1, p, p + 1, p + p / 3]);
        }
        for &ns in &values {
            kernel[hist_bucket(ns) as usize] += 1;
            // Upper-exclusive: the first bound the value is below.
            let i = Buckets::bounds()
                .position(|s| (ns as f64) < s * 1e9 - 0.5)
                .unwrap_or(BOUNDS);
            direct[i] += 1;
        }
        let b = Buckets::from_kernel(&kernel);
        assert_eq!(b.counts, direct);
        assert_eq!(b.count, values.len() as u64);
    }

    #[test]
    fn sum_within_the_kernel_precision() {
        let mut kernel = vec![0u64; HIST_BUCKETS];
        let values = [1_500u64, 77_000, 3_000_000, 450_000_000];
        for ns in values {
            kernel[hist_bucket(ns) as usize] += 1;
        }
        let want = values.iter().sum::<u64>() as f64 / 1e9;
        let got = Buckets::from_kernel(&kernel).sum_seconds;
        assert!(
            (got - want).abs() / want < rmap_common::HIST_RELATIVE_ERROR,
            "{got} vs {want}"
        );
    }
}
