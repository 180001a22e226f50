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

/// `rmap_common::Counter` values, per CPU so that they never contend (see `bump` for when an
/// increment can be lost).
#[map]
pub static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS as u32, 0);

/// Per page type log2 histograms of walk durations: index `type * LOG2_BUCKETS + bucket`.
#[map]
pub static HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries((PAGE_TYPES * LOG2_BUCKETS) as u32, 0);

/// Adds one to a counter: a plain read-modify-write of this CPU's slot. The program stays on
/// its CPU while it runs, but only kprobe and tracepoint programs also run with preemption
/// disabled; fentry trampolines disable migration, not preemption (kernel/bpf/trampoline.c,
/// `__bpf_prog_enter_recur` calls `migrate_disable`), so in fentry mode a task preempting the
/// program and running it on the same CPU can make one of the two increments lost. The BPF
/// target's `core` has no atomic read-modify-write to prevent it.
#[inline(always)]
pub fn bump(index: u32) {
    if let Some(slot) = COUNTS.get_ptr_mut(index) {
        // SAFETY: `slot` is this CPU's aligned u64 value of COUNTS, valid while the map lives.
        unsafe { *slot += 1 };
    }
}
