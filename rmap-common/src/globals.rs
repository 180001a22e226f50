//! Names of the load-time globals the eBPF object reads (set with
//! `EbpfLoader::override_global` before the programs are loaded).

/// u32: the [`crate::filters`] bits of the filters in use; 0 (none) lets a walk's start
/// and end skip every filter at one test.
pub const FILTERS: &str = "FILTERS";
/// u32: only walks of this tgid (0: all).
pub const FILTER_TGID: &str = "FILTER_TGID";
/// [u8; 16]: only walks whose comm equals this (all zero: all).
pub const FILTER_COMM: &str = "FILTER_COMM";
/// u32: bit set of [`crate::PageType::mask_bit`] to record.
pub const TYPE_MASK: &str = "TYPE_MASK";
/// u64: walks shorter than this are counted but not sent.
pub const MIN_DURATION_NS: &str = "MIN_DURATION_NS";
/// u32: byte offset of `mapping` in `struct folio` (from BTF).
pub const FOLIO_MAPPING_OFF: &str = "FOLIO_MAPPING_OFF";
/// u32: byte offset of `rmap_one` in `struct rmap_walk_control` (from BTF).
pub const RWC_RMAP_ONE_OFF: &str = "RWC_RMAP_ONE_OFF";
/// [`crate::TpLayout`]: field offsets of the classic tracepoints (from their format files).
pub const TP_LAYOUT: &str = "TP_LAYOUT";
/// u32: offset of `next_pid` in the `sched/sched_switch` record.
pub const SCHED_NEXT_PID_OFF: &str = "SCHED_NEXT_PID_OFF";
/// u64: bytes waiting in the ring buffer at which a record wakes the reader up (below it,
/// records are submitted without a wakeup and the reader polls on a timer).
pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";
/// u64: one record in `WAKE_CHECK_MASK + 1` (a power of two) looks at the ring's fill to
/// decide whether to wake the reader.
pub const WAKE_CHECK_MASK: &str = "WAKE_CHECK_MASK";
/// [`crate::OwnerLayout`]: struct offsets from a folio to its memory cgroup and from a task
/// to its process (from BTF).
pub const OWNER_LAYOUT: &str = "OWNER_LAYOUT";
/// u64: only walks of folios charged to this cgroup (by id) or below it (0: all).
pub const FILTER_CGROUP: &str = "FILTER_CGROUP";
/// [u8; 16]: only walks whose process (thread-group leader) comm equals this (zero: all).
pub const FILTER_PROCESS: &str = "FILTER_PROCESS";
/// [`crate::stall::StallLayout`]: offsets the lock-contention hooks follow (from BTF).
pub const STALL_LAYOUT: &str = "STALL_LAYOUT";
/// u32: slots of the in-flight table minus one (the `INFLIGHT` array's size, a power of two
/// set at load time): a thread's slot index is masked with it.
pub const INFLIGHT_MASK: &str = "INFLIGHT_MASK";
/// u64: age in ns past which a start may take over another thread's in-flight slot.
pub const INFLIGHT_STALE_NS: &str = "INFLIGHT_STALE_NS";
/// u64: the kernel's lowest text address (`_stext`; 0 when kallsyms hides it). A purpose
/// below it is no function: a stale read (a kretprobe's saved `rwc` reused by then), counted
/// as unreadable rather than given a histogram slot of its own.
pub const TEXT_START: &str = "TEXT_START";
