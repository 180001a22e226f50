//! Every map of the object, in one place.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use rmap_common::{COUNTERS, Inflight, LOG2_BUCKETS, PAGE_TYPES};

/// Per-walk events for userspace (1 MiB: ~10,000 events of 96 bytes in flight).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Walks in flight, by thread id. Walks do not nest within a thread.
#[map]
pub static INFLIGHT: HashMap<u32, Inflight> = HashMap::with_max_entries(8192, 0);

/// `rmap_common::Counter` values, per CPU so that they never contend and stay exact.
#[map]
pub static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS as u32, 0);

/// Per page type log2 histograms of walk durations: index `type * LOG2_BUCKETS + bucket`.
#[map]
pub static HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries((PAGE_TYPES * LOG2_BUCKETS) as u32, 0);

#[inline(always)]
pub fn bump(index: u32) {
    if let Some(slot) = COUNTS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, preemption is disabled while a BPF program runs.
        unsafe { *slot += 1 };
    }
}
