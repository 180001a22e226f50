//! The kernel's exact stall figures: its counters and the histogram of every wait, summed
//! over CPUs (records may be dropped; these are not).
use aya::{Ebpf, maps::PerCpuArray};
use rmap_common::{
    LatencyHist, hist_bucket_mid, maps,
    stall::{STALL_COUNTERS, StallCounter},
};
use serde::Serialize;

use crate::counters::{CountersError, summed_hist};

/// The stall counters and wait histogram.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StallCounts {
    /// Each counter by its name (`StallCounter::name`).
    #[serde(serialize_with = "crate::counters::as_object")]
    pub counters: Vec<(&'static str, u64)>,
    /// Waits per log-linear bucket (`rmap_common::hist_bucket`).
    #[serde(skip)]
    pub buckets: Vec<u64>,
}

impl StallCounts {
    pub fn get(&self, c: StallCounter) -> u64 {
        crate::counters::named(&self.counters, c.name())
    }

    /// The waits in the histogram.
    pub fn waits(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0..=1) of the waits, in ns, at its bucket's midpoint (within
    /// `rmap_common::HIST_RELATIVE_ERROR`); 0 without waits.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let n = self.waits();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return hist_bucket_mid(i as u32);
            }
        }
        0
    }
}

/// Reads the stall counters and histogram.
pub fn read(ebpf: &Ebpf) -> Result<StallCounts, CountersError> {
    let name = maps::STALL_COUNTS;
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let arr = PerCpuArray::<_, u64>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    let mut counters = Vec::with_capacity(STALL_COUNTERS);
    for c in StallCounter::ALL {
        let v = arr.get(&(c as u32), 0).map_err(|e| CountersError::Map(name, e))?;
        counters.push((c.name(), v.iter().sum()));
    }
    let name = maps::STALL_HIST;
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let hist = PerCpuArray::<_, LatencyHist>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    let buckets = summed_hist(&hist, 0).map_err(|e| CountersError::Map(name, e))?;
    Ok(StallCounts { counters, buckets })
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, hist_bucket};

    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut buckets = vec![0u64; HIST_BUCKETS];
        buckets[hist_bucket(1_000) as usize] = 99;
        buckets[hist_bucket(1_000_000) as usize] = 1;
        let c = StallCounts {
            counters: Vec::new(),
            buckets,
        };
        assert_eq!(c.waits(), 100);
        let p50 = c.quantile_ns(0.5);
        assert!((970..=1_030).contains(&p50), "p50 {p50}");
        let max = c.quantile_ns(1.0);
        assert!((969_000..=1_031_000).contains(&max), "max {max}");
        assert_eq!(StallCounts::default().quantile_ns(0.5), 0);
    }
}
