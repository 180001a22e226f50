//! The in-kernel per-CPU counters and latency histograms, summed over CPUs, and what is derived
//! from them rather than counted per walk in the kernel: `WalksSeen` and the log2 histograms.
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
};
use rmap_common::{
    COUNTERS, Counter, HIST_BUCKETS, HistKey, LOG2_BUCKETS, LatencyHist, PAGE_TYPES, PURPOSE_SLOTS,
    PURPOSE_UNREADABLE, PageType, RECORDS_SENT, hist_bucket_low, hist_index, log2_bucket, maps,
};
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

/// Named counters as one JSON object (`#[serde(serialize_with)]`).
pub fn as_object<S: serde::Serializer>(pairs: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(name, v)| (name, v)))
}

/// The value of the counter named `name` among `pairs` (0 when absent).
pub fn named(pairs: &[(&'static str, u64)], name: &str) -> u64 {
    pairs.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

impl KernelCounts {
    pub fn get(&self, c: Counter) -> u64 {
        named(&self.counters, c.name())
    }

    pub fn walks_of(&self, t: PageType) -> u64 {
        self.per_type
            .iter()
            .find(|w| w.page_type == t.name())
            .map_or(0, |w| w.walks)
    }

    /// From the sums over CPUs of the `COUNTS` map (one per `Counter`) and the log2
    /// histograms (`LOG2_BUCKETS` per `PageType`, see [`log2_from_latency`]).
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

/// Records sent through the ring buffer: a shared array's slot, not a per-CPU counter (the one
/// counter bumped per record, kept off the per-CPU array's lookup helper).
fn records_sent(ebpf: &Ebpf) -> Result<u64, CountersError> {
    let name = maps::RECORDS;
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let arr = Array::<_, u64>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    arr.get(&RECORDS_SENT, 0).map_err(|e| CountersError::Map(name, e))
}

/// Reads and sums the counters and histograms over CPUs; `WalksSeen` and the log2 histograms
/// are derived from the latency histograms (the programs do not count them per walk).
pub fn read(ebpf: &Ebpf) -> Result<KernelCounts, CountersError> {
    let mut counts = sum_map(ebpf, maps::COUNTS, COUNTERS)?;
    counts[Counter::EventsSent as usize] = records_sent(ebpf)?;
    let hist = log2_from_latency(&read_latency(ebpf)?);
    counts[Counter::WalksSeen as usize] = walks_seen(&hist, counts[Counter::HistFull as usize]);
    Ok(KernelCounts::from_sums(&counts, &hist))
}

/// Walks that passed the filters: those the latency histograms hold, and those they had no
/// room for (`HistFull`, counted where the kernel failed to add them).
pub fn walks_seen(log2: &[u64], hist_full: u64) -> u64 {
    log2.iter().sum::<u64>() + hist_full
}

/// Log2 histograms per page type (`LOG2_BUCKETS` each, index `type * LOG2_BUCKETS + bucket`)
/// from the latency histograms. Exact: every latency bucket lies within one power of two
/// (`hist_bucket`: 16 sub-buckets per power, exact values below 16 ns), so each goes whole into
/// the log2 bucket of its lower bound. Only walks past 2^`HIST_MAX_EXP` ns (137 s), which share
/// the last latency bucket, land in that bound's power instead of their own.
pub fn log2_from_latency(latency: &Latency) -> Vec<u64> {
    let mut hist = vec![0; PAGE_TYPES * LOG2_BUCKETS];
    for (key, buckets) in latency {
        let t = PageType::from_u32(key.page_type) as usize;
        for (i, n) in (0u32..).zip(buckets) {
            hist[t * LOG2_BUCKETS + log2_bucket(hist_bucket_low(i)) as usize] += n;
        }
    }
    hist
}

/// The in-kernel latency histograms: (key, walks per bucket).
pub type Latency = Vec<(HistKey, Vec<u64>)>;

/// Reads the `LATENCY` histograms of every purpose the kernel gave a slot in `PURPOSES`: one
/// per (page type, purpose) seen so far.
pub fn read_latency(ebpf: &Ebpf) -> Result<Latency, CountersError> {
    let purposes = read_purposes(ebpf)?;
    let name = maps::LATENCY;
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let hists = Array::<_, LatencyHist>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    let mut out = Vec::new();
    for (slot, rmap_one) in purposes {
        for page_type in PageType::ALL {
            let sum = hists
                .get(&hist_index(slot, page_type as u32), 0)
                .map_err(|e| CountersError::Map(name, e))?
                .buckets
                .to_vec();
            if sum.iter().any(|&n| n > 0) {
                let key = HistKey {
                    rmap_one,
                    page_type: page_type as u32,
                    _pad: 0,
                };
                out.push((key, sum));
            }
        }
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// Entry `index` of a per-CPU array of histograms, summed over CPUs.
pub fn summed_hist<T: std::borrow::Borrow<aya::maps::MapData>>(
    hists: &PerCpuArray<T, LatencyHist>,
    index: u32,
) -> Result<Vec<u64>, aya::maps::MapError> {
    let per_cpu = hists.get(&index, 0)?;
    let mut sum = vec![0u64; HIST_BUCKETS];
    for cpu in &*per_cpu {
        for (s, v) in sum.iter_mut().zip(cpu.buckets.iter()) {
            *s += v;
        }
    }
    Ok(sum)
}

/// The claimed slots of `PURPOSES`: (slot, `rmap_one`), 0 for an unreadable one.
fn read_purposes(ebpf: &Ebpf) -> Result<Vec<(u32, u64)>, CountersError> {
    let name = maps::PURPOSES;
    let map = ebpf.map(name).ok_or(CountersError::Missing(name))?;
    let slots = Array::<_, u64>::try_from(map).map_err(|e| CountersError::Map(name, e))?;
    let mut out = Vec::new();
    for slot in 0..PURPOSE_SLOTS {
        match slots.get(&slot, 0).map_err(|e| CountersError::Map(name, e))? {
            0 => {}
            PURPOSE_UNREADABLE => out.push((slot, 0)),
            rmap_one => out.push((slot, rmap_one)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rmap_common::{HIST_BUCKETS, HistKey, LOG2_BUCKETS, PageType, hist_bucket, log2_bucket};

    use super::{log2_from_latency, walks_seen};

    /// Durations counted both ways: the log2 histogram derived from the latency buckets equals
    /// the one counted per walk with `log2_bucket`.
    #[test]
    fn log2_derived_from_latency_is_exact() {
        // Every value up to 64 ns (the exact buckets and the first powers), then spread to 50 s.
        let durations: Vec<u64> = (0..64)
            .chain((0..40_000u64).map(|i| i * i * 37 % 50_000_000_000 + i % 17))
            .collect();
        let mut anon = vec![0u64; HIST_BUCKETS];
        let mut file = vec![0u64; HIST_BUCKETS];
        let mut want = vec![0u64; rmap_common::PAGE_TYPES * LOG2_BUCKETS];
        for (i, &d) in durations.iter().enumerate() {
            let (h, t) = if i % 3 == 0 {
                (&mut file, PageType::File)
            } else {
                (&mut anon, PageType::Anon)
            };
            h[hist_bucket(d) as usize] += 1;
            want[t as usize * LOG2_BUCKETS + log2_bucket(d) as usize] += 1;
        }
        let key = |t: PageType, rmap_one| HistKey {
            rmap_one,
            page_type: t as u32,
            _pad: 0,
        };
        // Two purposes of anon (the second empty) and one of file.
        let latency = vec![
            (key(PageType::Anon, 1), anon),
            (key(PageType::Anon, 2), vec![0; HIST_BUCKETS]),
            (key(PageType::File, 1), file),
        ];
        let got = log2_from_latency(&latency);
        assert_eq!(got, want);
        assert_eq!(walks_seen(&got, 3), durations.len() as u64 + 3);
    }
}
