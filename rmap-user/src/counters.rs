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
    /// Each counter by its name (`Counter::name`), in the kernel's order; an object in JSON.
    #[serde(serialize_with = "as_object")]
    pub counters: Vec<(&'static str, u64)>,
    /// Walks per page type.
    pub per_type: Vec<TypeWalks>,
}

/// The walks of one page type, counted in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TypeWalks {
    /// `PageType::name`.
    #[serde(rename = "type")]
    pub page_type: &'static str,
    pub walks: u64,
    /// Walks by duration: bucket i counts the walks of 2^i ≤ ns < 2^(i+1).
    pub log2_buckets: Vec<u64>,
}

fn as_object<S: serde::Serializer>(pairs: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(name, v)| (name, v)))
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
            .find(|w| w.page_type == t.name())
            .map_or(0, |w| w.walks)
    }

    /// From the sums over CPUs of the `COUNTS` map (one per `Counter`) and of the `HIST` map
    /// (`LOG2_BUCKETS` per `PageType`).
    pub fn from_sums(counts: &[u64], hist: &[u64]) -> Self {
        Self {
            counters: Counter::ALL
                .iter()
                .map(|c| (c.name(), counts.get(*c as usize).copied().unwrap_or(0)))
                .collect(),
            per_type: PageType::ALL
                .iter()
                .map(|t| {
                    let from = (*t as usize * LOG2_BUCKETS).min(hist.len());
                    let to = (from + LOG2_BUCKETS).min(hist.len());
                    let log2_buckets = hist[from..to].to_vec();
                    TypeWalks {
                        page_type: t.name(),
                        walks: log2_buckets.iter().sum(),
                        log2_buckets,
                    }
                })
                .collect(),
        }
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

/// Reads and sums the counters and histograms over CPUs.
pub fn read(ebpf: &Ebpf) -> Result<KernelCounts, CountersError> {
    let counts = sum_map(ebpf, "COUNTS", COUNTERS)?;
    let hist = sum_map(ebpf, "HIST", PAGE_TYPES * LOG2_BUCKETS)?;
    Ok(KernelCounts::from_sums(&counts, &hist))
}
