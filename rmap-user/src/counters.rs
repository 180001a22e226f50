//! The in-kernel per-CPU counters and log2 histograms, summed over CPUs.
use aya::{Ebpf, maps::PerCpuArray};
use rmap_common::{COUNTERS, Counter, LOG2_BUCKETS, PAGE_TYPES, PageType};
use serde::Serialize;

/// Errors reading the kernel-side maps.
#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    /// The map is missing from the object.
    #[error("map {0} missing from the eBPF object")]
    Missing(&'static str),
    /// Reading the map failed.
    #[error("reading map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
}

/// Exact kernel-side totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounts {
    pub counters: Vec<(&'static str, u64)>,
    /// Walks per page type, with their log2 buckets (bucket i: 2^i ≤ ns < 2^(i+1)).
    pub per_type: Vec<(&'static str, u64, Vec<u64>)>,
}

impl KernelCounts {
    pub fn get(&self, c: Counter) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| *n == c.name())
            .map_or(0, |(_, v)| *v)
    }

    pub fn walks_of(&self, t: PageType) -> u64 {
        self.per_type
            .iter()
            .find(|(n, _, _)| *n == t.name())
            .map_or(0, |(_, v, _)| *v)
    }
}

fn sum_map(ebpf: &Ebpf, name: &'static str, len: usize) -> Result<Vec<u64>, CountersError> {
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let arr = PerCpuArray::<_, u64>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    (0..len as u32)
        .map(|i| {
            arr.get(&i, 0)
                .map(|v| v.iter().sum())
                .map_err(|e| CountersError::Map(name, e))
        })
        .collect()
}

pub fn read(ebpf: &Ebpf) -> Result<KernelCounts, CountersError> {
    let counts = sum_map(ebpf, "COUNTS", COUNTERS)?;
    let hist = sum_map(ebpf, "HIST", PAGE_TYPES * LOG2_BUCKETS)?;
    Ok(KernelCounts {
        counters: Counter::ALL
            .iter()
            .map(|c| (c.name(), counts[*c as usize]))
            .collect(),
        per_type: PageType::ALL
            .iter()
            .map(|t| {
                let b = hist[*t as usize * LOG2_BUCKETS..][..LOG2_BUCKETS].to_vec();
                (t.name(), b.iter().sum(), b)
            })
            .collect(),
    })
}
