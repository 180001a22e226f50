//! Every map of the object, in one place.
use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd};

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use rmap_common::{
    COUNTERS, HIST_KEYS, Inflight, LatencyHist, OWNER_FILTER_ENTRIES, PURPOSE_SLOTS, RECORDS_SLOTS,
    stall::{STALL_COUNTERS, StallCounter, Waiting},
};

/// Per-walk events for userspace. 1 MiB here (~10,000 events of 96 bytes in flight); userspace
/// sets the size at load time (`--ringbuf-kib`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Walks in flight: the slots of the in-flight table (`inflight.rs`), found by thread id.
/// Userspace sets the size at load time (`--inflight-entries`, rounded up to a power of two)
/// and passes the size minus one as `INFLIGHT_MASK`.
#[map]
pub static INFLIGHT: Array<Inflight> = Array::with_max_entries(8192, 0);

/// The in-flight table where the kernel's BPF has no compare-and-swap (`INFLIGHT_HASH`): walks
/// in flight by thread id, in an LRU hash (a start whose end was never seen is evicted in time
/// instead of holding an entry for good). Userspace sizes it as `INFLIGHT`, and shrinks
/// whichever of the two is unused to one entry.
#[map]
pub static INFLIGHT_TIDS: LruHashMap<u32, Inflight> = LruHashMap::with_max_entries(1, 0);

/// Records sent through `EVENTS`, all CPUs together, in a plain array: its lookups are inlined
/// by the verifier, where a per-CPU array's are a helper call on 6.1 (inlined from 6.10,
/// kernel/bpf/arraymap.c `percpu_array_map_gen_lookup`). `RECORDS_SENT`: exact, atomic adds;
/// `RECORDS_WAKE_SEQ`: a sequence that picks the records that look whether to wake the reader
/// (walk.rs `record`).
#[map]
pub static RECORDS: Array<u64> = Array::with_max_entries(RECORDS_SLOTS, 0);

/// `rmap_common::Counter` values, per CPU so that they never contend (see `bump`).
#[map]
pub static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS as u32, 0);

/// Log-linear latency histograms by (purpose slot, page type), at `rmap_common::hist_index`:
/// the source of the summary's counts and percentiles, so that ring buffer drops and
/// `--min-duration-us` cannot change them. An array, not a hash keyed by (purpose, type): a
/// walk's end finds its histogram without hashing a key (kernel/bpf/hashtab.c
/// `__htab_map_lookup_elem`: jhash and a bucket walk per lookup). Shared by every CPU, with
/// atomic adds, not per CPU: a plain array's lookup is inlined by the verifier, a per-CPU
/// array's is a helper call before 6.10; walks are thousands a second, not millions, so the
/// adds rarely meet on a cache line.
#[map]
pub static LATENCY: Array<LatencyHist> = Array::with_max_entries(HIST_KEYS, 0);

/// The purpose (`rwc->rmap_one`) each slot of `LATENCY` counts, claimed by the first walk of
/// that purpose (`purpose.rs`); shared by every CPU, so a plain array (inlined lookups).
#[map]
pub static PURPOSES: Array<u64> = Array::with_max_entries(PURPOSE_SLOTS, 0);

/// Slot → purpose, the claims behind `PURPOSES`: a slot is claimed by inserting it here with
/// `BPF_NOEXIST` (the hash's bucket lock makes one insert win), then published in `PURPOSES`.
/// A helper call only at a purpose's first walks; no compare-and-swap, which kernels before
/// `BPF_CMPXCHG` lack.
#[map]
pub static PURPOSE_CLAIMS: HashMap<u32, u64> = HashMap::with_max_entries(PURPOSE_SLOTS, 0);

/// Index 0: when (the `bpf_ktime_get_ns` clock) userspace had attached the `sched_switch` hook,
/// 0 before, so that off-CPU time is only claimed measured for walks that began after: the
/// hook saw their every switch (written by userspace after the programs are loaded, hence a
/// map and not a frozen load-time global; read at a walk's end, for its record only).
#[map]
pub static OFFCPU_ON: Array<u64> = Array::with_max_entries(1, 0);

/// `--pod`/`--namespace`: the pod cgroups (ids) a walked folio's cgroup or an ancestor must be
/// in, kept up to date by userspace; looked at only when `FILTER_CGROUP` is `OWNER_FILTER_SET`.
#[map]
pub static OWNER_FILTER: HashMap<u64, u8> = HashMap::with_max_entries(OWNER_FILTER_ENTRIES, 0);

/// Adds one to `*slot` with an atomic add (BPF_ATOMIC add). Per-CPU slots alone are not enough:
/// kprobe and tracepoint programs run with preemption disabled, but fentry trampolines disable
/// migration only (kernel/bpf/trampoline.c, `__bpf_prog_enter_recur` calls `migrate_disable`),
/// so a task preempting the program on the same CPU could interleave a plain read-modify-write.
/// The BPF target's `core` has no `AtomicU64::fetch_add`; the intrinsic, its result unused,
/// compiles to `lock *(u64 *)(r + off) += r` (checked with `llvm-objdump -d`).
#[inline(always)]
pub fn add_one(slot: *mut u64) {
    add(slot, 1);
}

/// Adds `delta` to `*slot` atomically (wrapping: `u64::MAX` subtracts one); see `add_one`.
#[inline(always)]
pub fn add(slot: *mut u64, delta: u64) {
    // SAFETY: callers pass an aligned u64 of a map value, valid while the map lives.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, delta) };
}

/// Compare-and-swap of `*slot`: true when it held `old` and now holds `new` (BPF_ATOMIC
/// BPF_CMPXCHG, fully ordered). Kernels without that instruction reject a program that contains
/// it (inflight.rs: the programs of the `Hashed` table have none).
#[inline(always)]
pub fn compare_swap(slot: *mut u64, old: u64, new: u64) -> bool {
    // SAFETY: callers pass an aligned u64 of a map value, valid while the map lives.
    unsafe { atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(slot, old, new).1 }
}

/// Moves `*slot` to its next value and returns the value moved from, by a plain read and
/// write: CPUs racing may read the same value or lose a step, which only shifts which records
/// are picked (walk.rs `record`).
#[inline(always)]
pub fn next(slot: *mut u64) -> u64 {
    // SAFETY: callers pass an aligned u64 of a map value, valid while the map lives.
    unsafe {
        let old = core::ptr::read_volatile(slot);
        core::ptr::write_volatile(slot, old.wrapping_add(1));
        old
    }
}

/// Adds one to a counter of `COUNTS` (this CPU's slot, atomically: see `add_one`).
#[inline(always)]
pub fn bump(index: u32) {
    if let Some(slot) = COUNTS.get_ptr_mut(index) {
        add_one(slot);
    }
}

/// Waits on locks held by walks (`--stalls`), sent when each wait ends. Userspace sets the
/// size at load time (a page when `--stalls` is off).
#[map]
pub static STALLS: RingBuf = RingBuf::with_byte_size(256 << 10, 0);

/// Waits in progress by thread id: a thread waits on one lock at a time. LRU, so that a wait
/// whose end was missed (attached between its begin and end) cannot fill it for good.
#[map]
pub static WAITING: LruHashMap<u32, Waiting> = LruHashMap::with_max_entries(4096, 0);

/// Index 0: entries in `WAITING`, all CPUs together (a wait may end on another CPU than the one
/// it began on). While 0, `contention_end` leaves at once instead of looking its thread up: it
/// fires at the end of every contended lock's wait on the host. An entry the LRU evicts is
/// never taken back out, so the count can only stay too high: then the lookup is made, as
/// without it.
#[map]
pub static WAITS_OPEN: Array<u64> = Array::with_max_entries(1, 0);

/// Adds `delta` (wrapping: `u64::MAX` subtracts one) to `WAITS_OPEN`, atomically.
#[inline(always)]
pub fn waits_open_add(delta: u64) {
    if let Some(slot) = WAITS_OPEN.get_ptr_mut(0) {
        add(slot, delta);
    }
}

/// Whether `WAITING` may hold an entry.
#[inline(always)]
pub fn waits_open() -> bool {
    WAITS_OPEN.get(0).is_none_or(|n| *n != 0)
}

/// `rmap_common::stall::StallCounter` values, per CPU.
#[map]
pub static STALL_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STALL_COUNTERS as u32, 0);

/// Log-linear histogram of stall waits, per CPU: the source of `rmap_walk_stall_seconds`
/// whatever the stall ring buffer drops.
#[map]
pub static STALL_HIST: PerCpuArray<LatencyHist> = PerCpuArray::with_max_entries(1, 0);

/// Adds one to a stall counter (this CPU's slot, atomically: see `add_one`).
#[inline(always)]
pub fn bump_stall(index: StallCounter) {
    if let Some(slot) = STALL_COUNTS.get_ptr_mut(index as u32) {
        add_one(slot);
    }
}
