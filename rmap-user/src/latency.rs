//! The kernel's log-linear latency histograms (`rmap_common::hist_bucket`) as `HdrHistograms`:
//! the source of every count and percentile per page type and purpose, whatever the ring
//! buffer dropped. Plain data, no I/O.
use hdrhistogram::Histogram;
use rmap_common::{HistKey, PageType, hist_bucket_mid};

use crate::{
    counters::Latency,
    stats::{MAX_NS, Stats},
};

/// A histogram with the aggregator's bounds, holding each bucket's walks at the bucket's
/// midpoint: within `rmap_common::HIST_RELATIVE_ERROR` (3.1%) of the true duration, plus the
/// HdrHistogram's own 0.1% (3 significant digits).
pub fn to_hdr(buckets: &[u64]) -> Histogram<u64> {
    // The aggregator's bounds, so that its `add`s of these cannot fail.
    let mut h = Stats::default().hist;
    record(&mut h, buckets);
    h
}

/// Adds the walks of the kernel's `buckets` to `h`, each at its bucket's midpoint (see
/// [`to_hdr`]): no histogram is built on the way.
pub fn record(h: &mut Histogram<u64>, buckets: &[u64]) {
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        h.saturating_record_n(hist_bucket_mid(i as u32).clamp(1, MAX_NS), n);
    }
}

/// The walks of `now` not already in `before` (both cumulative reads of the same map).
pub fn minus(now: &Latency, before: &Latency) -> Latency {
    now.iter()
        .map(|(key, buckets)| {
            let old = before.iter().find(|(k, _)| k == key).map(|(_, b)| b.as_slice());
            let diff = match old {
                Some(old) => buckets
                    .iter()
                    .zip(old.iter().chain(std::iter::repeat(&0)))
                    .map(|(n, o)| n.saturating_sub(*o))
                    .collect(),
                None => buckets.clone(),
            };
            (*key, diff)
        })
        .collect()
}

/// Each histogram's buckets with its page type and purpose name (`purpose` names an `rmap_one`
/// address).
pub fn named(latency: &Latency, mut purpose: impl FnMut(u64) -> String) -> Vec<(PageType, String, &[u64])> {
    latency
        .iter()
        .filter(|(_, b)| b.iter().any(|&n| n > 0))
        .map(
            |(
                HistKey {
                    rmap_one, page_type, ..
                },
                b,
            )| { (PageType::from_u32(*page_type), purpose(*rmap_one), b.as_slice()) },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, HIST_RELATIVE_ERROR, hist_bucket};

    use super::*;

    /// Durations spread over 100 ns … 100 s, bucketed as the kernel does and converted: the
    /// count is exact, and min, p50, p90, p99 and max are those of an exact HdrHistogram of the
    /// same durations within the stated precision.
    #[test]
    fn kernel_buckets_to_hdr_keep_percentiles() {
        let mut exact = Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).expect("bounds");
        let mut buckets = vec![0u64; HIST_BUCKETS];
        // A deterministic log-uniform spread: 100 ns · 10^(6·x), x in [0, 1).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x >> 11) as f64 / (1u64 << 53) as f64;
            let ns = (100.0 * 10f64.powf(9.0 * f)) as u64;
            exact.record(ns).expect("in range");
            buckets[hist_bucket(ns) as usize] += 1;
        }
        let h = to_hdr(&buckets);
        assert_eq!(h.len(), exact.len());
        let tolerance = HIST_RELATIVE_ERROR + 0.002;
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let (got, want) = (h.value_at_quantile(q) as f64, exact.value_at_quantile(q) as f64);
            assert!(
                (got - want).abs() / want <= tolerance,
                "q{q}: {got} vs exact {want}"
            );
        }
    }

    #[test]
    fn interval_is_the_difference() {
        let key = HistKey {
            rmap_one: 7,
            page_type: 1,
            _pad: 0,
        };
        let other = HistKey { rmap_one: 8, ..key };
        let before = vec![(key, vec![1, 2, 3])];
        let now = vec![(key, vec![1, 5, 3]), (other, vec![0, 0, 4])];
        assert_eq!(
            minus(&now, &before),
            vec![(key, vec![0, 3, 0]), (other, vec![0, 0, 4])]
        );
    }
}
