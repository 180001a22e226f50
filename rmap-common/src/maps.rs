//! Names of the maps userspace reads, resizes or writes.

/// Ring buffer of [`crate::WalkEvent`]s; its size is set at load time (`--ringbuf-kib`).
pub const EVENTS: &str = "EVENTS";
/// Array of [`crate::Inflight`] slots (the in-flight table); its size is set at load time.
pub const INFLIGHT: &str = "INFLIGHT";
/// LRU hash of [`crate::Inflight`] by thread id: the in-flight table of the programs
/// named `*_lru`, for kernels without BPF compare-and-swap; sized at load time.
pub const INFLIGHT_TIDS: &str = "INFLIGHT_TIDS";
/// Hash of purpose slot → purpose: a new purpose claims a slot of `PURPOSES` by inserting
/// it here first (`BPF_NOEXIST`), so that two CPUs cannot claim one slot for two purposes.
pub const PURPOSE_CLAIMS: &str = "PURPOSE_CLAIMS";
/// Array of [`crate::RECORDS_SLOTS`] u64: records sent, the reader wakeup sequence.
pub const RECORDS: &str = "RECORDS";
/// Per-CPU counters, one per [`crate::Counter`].
pub const COUNTS: &str = "COUNTS";
/// Array of [`crate::HIST_KEYS`] [`crate::LatencyHist`]s, at [`crate::hist_index`] (one for
/// every CPU, added to atomically).
pub const LATENCY: &str = "LATENCY";
/// Array of [`crate::PURPOSE_SLOTS`] u64: the purpose (`rmap_one`) of each slot, 0: free,
/// [`crate::PURPOSE_UNREADABLE`] for 0.
pub const PURPOSES: &str = "PURPOSES";
/// One-entry u64 array: when (`CLOCK_MONOTONIC` ns, the clock of `bpf_ktime_get_ns`)
/// userspace had attached the `sched_switch` hook; 0 before.
pub const OFFCPU_ON: &str = "OFFCPU_ON";
/// Ring buffer of [`crate::stall::StallEvent`]s (`--stalls`); sized at load time.
pub const STALLS: &str = "STALLS";
/// Hash of waits in progress by thread id ([`crate::stall::Waiting`]).
pub const WAITING: &str = "WAITING";
/// One-entry array: the number of entries in `WAITING` (`contention_end`'s gate).
pub const WAITS_OPEN: &str = "WAITS_OPEN";
/// Per-CPU counters, one per [`crate::stall::StallCounter`].
pub const STALL_COUNTS: &str = "STALL_COUNTS";
/// Per-CPU one-entry array: the [`crate::LatencyHist`] of stall waits.
pub const STALL_HIST: &str = "STALL_HIST";
/// Hash of cgroup ids (u64 → u8) the folio's cgroup or an ancestor must be in when
/// `FILTER_CGROUP` is [`crate::OWNER_FILTER_SET`]; filled by userspace.
pub const OWNER_FILTER: &str = "OWNER_FILTER";
