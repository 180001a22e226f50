//! Types shared by the eBPF programs and the userspace loader.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that the byte layout written by the
//! kernel side is exactly the layout read by userspace; sizes are asserted at compile time.
#![no_std]
// The public items are the contract between the eBPF object and userspace: each says what it
// holds and in which unit. (Set here, not in Cargo.toml: a member that inherits the workspace's
// lints cannot add its own there.)
#![deny(missing_docs)]

mod owner;
pub use owner::{
    CGROUP_MAX_DEPTH, FLAG_KTHREAD, FLAG_OWNER_VALID, MEMCG_DATA_FLAGS, OWNER_FILTER_ENTRIES,
    OWNER_FILTER_SET, OwnerLayout, PF_KTHREAD,
};
pub mod stall;

/// Page type of the folio being walked, as the kernel dispatches in `rmap_walk()`
/// (mm/rmap.c: `folio_test_ksm` → `rmap_walk_ksm`, `folio_test_anon` → `rmap_walk_anon`,
/// else `rmap_walk_file`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageType {
    /// A KSM page (`rmap_walk_ksm`).
    Ksm = 0,
    /// An anonymous folio (`rmap_walk_anon`).
    Anon = 1,
    /// A file-backed folio (`rmap_walk_file`).
    File = 2,
    /// The folio could not be classified (e.g. `folio->mapping` unreadable).
    Unknown = 3,
}

/// Number of page types, including `Unknown`; the size of the per-type histogram table.
pub const PAGE_TYPES: usize = 4;

impl PageType {
    /// Every page type, in index order.
    pub const ALL: [PageType; PAGE_TYPES] =
        [PageType::Ksm, PageType::Anon, PageType::File, PageType::Unknown];

    /// The type stored as `v` in [`WalkEvent::page_type`]; unknown values are `Unknown`.
    pub const fn from_u32(v: u32) -> PageType {
        match v {
            0 => PageType::Ksm,
            1 => PageType::Anon,
            2 => PageType::File,
            _ => PageType::Unknown,
        }
    }

    /// Name in reports, JSON and `--types`.
    pub const fn name(self) -> &'static str {
        match self {
            PageType::Ksm => "ksm",
            PageType::Anon => "anon",
            PageType::File => "file",
            PageType::Unknown => "unknown",
        }
    }

    /// Bit of this type in the [`globals::TYPE_MASK`] load-time global.
    pub const fn mask_bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Classifies a folio from the low bits of `folio->mapping`
    /// (include/linux/page-flags.h: `PAGE_MAPPING_ANON` = 1, `PAGE_MAPPING_KSM` = 3).
    pub const fn from_mapping(mapping: u64) -> PageType {
        match mapping & 3 {
            3 => PageType::Ksm,
            1 => PageType::Anon,
            _ => PageType::File,
        }
    }
}

/// Which kernel hook produced an event.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `raw_tp` `rmap_walk_start`/`rmap_walk_end` (v5–v7 ABI).
    RawTpPair = 0,
    /// Classic tracepoint `rmap/rmap_walk_start`/`rmap_walk_end`.
    TpPair = 1,
    /// `raw_tp` `rmap_walk` with `duration_ns` (v4 ABI).
    RawTpV4 = 2,
    /// Classic tracepoint `rmap/rmap_walk` (v4 ABI).
    TpV4 = 3,
    /// fentry/fexit on a walker function.
    Fentry = 4,
    /// kprobe/kretprobe on a walker function.
    Kprobe = 5,
}

impl Source {
    /// The source stored as `v` in [`WalkEvent::source`], if it is one.
    pub const fn from_u32(v: u32) -> Option<Source> {
        Some(match v {
            0 => Source::RawTpPair,
            1 => Source::TpPair,
            2 => Source::RawTpV4,
            3 => Source::TpV4,
            4 => Source::Fentry,
            5 => Source::Kprobe,
            _ => return None,
        })
    }

    /// Name in reports and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Source::RawTpPair => "raw_tp",
            Source::TpPair => "tp",
            Source::RawTpV4 => "raw_tp-v4",
            Source::TpV4 => "tp-v4",
            Source::Fentry => "fentry",
            Source::Kprobe => "kprobe",
        }
    }
}

/// [`WalkEvent::flags`]: `offcpu_ns` was measured (the hook saw the walk's start).
pub const FLAG_OFFCPU_VALID: u32 = 1;

/// One reverse-mapping walk, sent through the ring buffer when it passes the filters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkEvent {
    /// `bpf_ktime_get_ns()` at the start of the walk.
    pub start_ns: u64,
    /// Wall time of the walk, in ns.
    pub duration_ns: u64,
    /// Part of `duration_ns` the walking thread spent switched out (`sched_switch`).
    pub offcpu_ns: u64,
    /// Kernel address of the folio.
    pub folio: u64,
    /// Kernel address of the `struct rmap_walk_control`.
    pub rwc: u64,
    /// `rwc->rmap_one`: the per-VMA callback, which tells why the walk happened.
    pub rmap_one: u64,
    /// Thread id of the walker.
    pub pid: u32,
    /// Process id of the walker.
    pub tgid: u32,
    /// CPU the walk ended on.
    pub cpu: u32,
    /// [`PageType`] as u32.
    pub page_type: u32,
    /// 1 when the caller already held the rmap lock (`rmap_walk_locked`).
    pub locked: u32,
    /// [`Source`] as u32.
    pub source: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Waits of other threads on a lock this walk held (`--stalls`; 0 without it), counted
    /// when each wait began: see [`stall`].
    pub stall_waits: u32,
    /// Command name of the walking thread (`task->comm`), NUL-padded.
    pub comm: [u8; 16],
    /// Command name of the walking thread's process (`task->group_leader->comm`), NUL-padded;
    /// all zero when unreadable.
    pub process: [u8; 16],
    /// Id of the memory cgroup the folio is charged to (its directory's inode number under
    /// /sys/fs/cgroup), valid with [`FLAG_OWNER_VALID`]: whose memory was walked.
    pub cgroup_id: u64,
}

/// Size of [`WalkEvent`] in bytes (asserted below), as userspace reads it from the ring buffer.
pub const WALK_EVENT_SIZE: usize = 120;
const _: () = assert!(core::mem::size_of::<WalkEvent>() == WALK_EVENT_SIZE);
const _: () = assert!(core::mem::align_of::<WalkEvent>() == 8);

/// Indices into the per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Walks that ended and passed the filters. Not counted by the eBPF programs (its slot
    /// stays 0): userspace derives it, the latency histograms' total plus `HistFull`.
    WalksSeen = 0,
    /// Events written to the ring buffer. Counted in `RECORDS` (slot `RECORDS_SENT`), not in
    /// the per-CPU counters: userspace reads it from there.
    EventsSent = 1,
    /// `bpf_ringbuf_reserve` failures: events lost, counted here.
    RingbufDrops = 2,
    /// Walk ends with no matching start (or a start whose folio/rwc did not match).
    Unpaired = 3,
    /// Walk starts that found their own thread's earlier start still in flight (its end was
    /// never seen; replaced).
    Overlapping = 4,
    /// Walks that ended but were dropped by the pid/comm/type filters.
    Filtered = 5,
    /// Walk starts not measured: every slot of their thread in the in-flight table was held
    /// by a live walk (their ends then count as `Unpaired`).
    InflightFull = 6,
    /// Walk starts that took over another thread's slot held longer than the stale age
    /// (`globals::INFLIGHT_STALE_NS`): that walk's end was never seen.
    InflightEvicted = 7,
    /// Walks the latency histograms could not count (every purpose slot held by another
    /// purpose): the summary says so.
    HistFull = 8,
}

/// Slots of the `RECORDS` array (all CPUs together, atomic): records sent through the ring
/// buffer (what `Counter::EventsSent` reports), and the sequence that picks the records that
/// look whether to wake the reader.
pub const RECORDS_SLOTS: u32 = 2;
/// `RECORDS` slot: records sent.
pub const RECORDS_SENT: u32 = 0;
/// `RECORDS` slot: the reader wakeup sequence.
pub const RECORDS_WAKE_SEQ: u32 = 1;

/// Number of counters: the size of the per-CPU counter array.
pub const COUNTERS: usize = 9;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::WalksSeen,
        Counter::EventsSent,
        Counter::RingbufDrops,
        Counter::Unpaired,
        Counter::Overlapping,
        Counter::Filtered,
        Counter::InflightFull,
        Counter::InflightEvicted,
        Counter::HistFull,
    ];

    /// Name in reports, JSON and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::WalksSeen => "walks",
            Counter::EventsSent => "events",
            Counter::RingbufDrops => "ringbuf_drops",
            Counter::Unpaired => "unpaired",
            Counter::Overlapping => "overlapping",
            Counter::Filtered => "filtered",
            Counter::InflightFull => "inflight_full",
            Counter::InflightEvicted => "inflight_evicted",
            Counter::HistFull => "hist_full",
        }
    }
}

/// Buckets per page type of the log2 histograms (derived in userspace from the latency
/// histograms): bucket `i` counts durations `d` (ns) with `floor(log2(d)) == i` (bucket 0 also
/// holds `d == 0`).
pub const LOG2_BUCKETS: usize = 64;

/// Index of a duration in the log2 histogram (userspace folds the latency buckets into these).
pub const fn log2_bucket(ns: u64) -> u32 {
    // checked_ilog2 is None only for 0, which shares bucket 0 with 1.
    match ns.checked_ilog2() {
        Some(b) => b,
        None => 0,
    }
}

/// State of one walk in flight: a slot of the in-flight table (rmap-ebpf `inflight.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Inflight {
    /// Who holds the slot: [`inflight_owner`] of the walker's thread id and the walk's start;
    /// 0 when the slot is free.
    pub owner: u64,
    /// `bpf_ktime_get_ns()` at the start of the walk.
    pub start_ns: u64,
    /// Kernel address of the folio (matched at the walk's end).
    pub folio: u64,
    /// Kernel address of the `struct rmap_walk_control` (matched at the walk's end).
    pub rwc: u64,
    /// `bpf_ktime_get_ns()` when the thread was switched out, 0 while it runs.
    pub switched_out_ns: u64,
    /// Time switched out so far, in ns.
    pub offcpu_ns: u64,
    /// The walk's purpose (`rwc->rmap_one`), read when it starts; 0 when unreadable.
    pub rmap_one: u64,
    /// [`PageType`] known from the hook (`Unknown`: classify from the folio) and whether the
    /// caller already held the rmap lock, in one word ([`Inflight::kind`]).
    pub kind: u32,
    /// Waits of other threads on a lock this walk holds, so far (`--stalls`; added to
    /// atomically by the contention hook on another CPU).
    pub stall_waits: u32,
}

const _: () = assert!(core::mem::size_of::<Inflight>() == 64);

impl Inflight {
    /// The bit of [`Inflight::kind`] set when the caller held the rmap lock.
    pub const LOCKED: u32 = 1 << 8;

    /// [`Inflight::kind`] of a walk of `page_type` with `locked` (0 or 1).
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk start: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn kind(page_type: u32, locked: u32) -> u32 {
        page_type | (locked << 8)
    }

    /// The page type of a [`Inflight::kind`].
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn page_type_of(kind: u32) -> u32 {
        kind & 0xff
    }

    /// Whether a [`Inflight::kind`] says the caller held the rmap lock (0 or 1).
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn locked_of(kind: u32) -> u32 {
        (kind >> 8) & 1
    }
}

/// The owner word of an in-flight slot: the thread id in the low 32 bits, the start time in
/// units of 2^20 ns (about a millisecond; `bpf_ktime_get_ns() >> 20`, wrapping every 52 days)
/// in the high 32, so that a start can judge a slot stale and take it over with one
/// compare-and-swap of the word it judged. A shift, not a division by 10^6: BPF has no
/// multiply-high, so LLVM emits a real division for that, on every walk start.
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk start: inlined rather than a BPF-to-BPF call"
)]
#[inline(always)]
pub const fn inflight_owner(tid: u32, start_ns: u64) -> u64 {
    ((start_ns >> INFLIGHT_TIME_SHIFT) << 32) | tid as u64
}

/// The unit of an owner word's start time: 2^20 ns.
pub const INFLIGHT_TIME_SHIFT: u32 = 20;

/// The in-flight table's size for `wanted` slots: the next power of two (1 for 0), so that a
/// slot index is a mask, not a division (`INFLIGHT_MASK` is this minus one).
pub const fn inflight_slots(wanted: u32) -> u32 {
    if wanted <= 1 {
        1
    } else {
        wanted.next_power_of_two()
    }
}

/// Sub-buckets per power of two of the latency histograms, as a power of two: 2^4 = 16 linear
/// sub-buckets, so a bucket spans at most 1/16 of its lower bound.
pub const HIST_SUB_BITS: u32 = 4;
/// Linear sub-buckets per power of two.
pub const HIST_SUB: u64 = 1 << HIST_SUB_BITS;
/// Highest power of two with its own buckets: 2^37 ns ≈ 137 s; longer walks share the last bucket.
pub const HIST_MAX_EXP: u32 = 37;
/// Buckets of one latency histogram: values below `2 * HIST_SUB` have one bucket each (exact),
/// then `HIST_SUB` per power of two up to `HIST_MAX_EXP`.
pub const HIST_BUCKETS: usize = ((HIST_MAX_EXP - HIST_SUB_BITS + 2) as usize) * HIST_SUB as usize;
/// Largest relative error of a value reported as its bucket's midpoint: half a bucket's width
/// over its lower bound, 1/32 = 3.125%.
pub const HIST_RELATIVE_ERROR: f64 = 0.5 / HIST_SUB as f64;

/// Log-linear bucket of a duration in ns (HDR-like): exact below 32 ns, then 16 linear
/// sub-buckets per power of two; monotonic, and at most `HIST_BUCKETS - 1`.
#[expect(
    clippy::inline_always,
    reason = "runs in the walk and stall hooks: inlined rather than a BPF-to-BPF call for a few instructions"
)]
#[inline(always)]
pub const fn hist_bucket(ns: u64) -> u64 {
    // All in u64: with u32 arithmetic LLVM bounds-checks a zero-extended copy and indexes with
    // the original register, which the verifier then sees as unbounded.
    if ns < HIST_SUB {
        return ns;
    }
    let e = ilog2(ns);
    if e > HIST_MAX_EXP as u64 {
        return HIST_BUCKETS as u64 - 1;
    }
    let sub = (ns >> (e - HIST_SUB_BITS as u64)) - HIST_SUB;
    (e - HIST_SUB_BITS as u64 + 1) * HIST_SUB + sub
}

/// `floor(log2(x))` for `x > 0`, without a branch: BPF has no count-leading-zeros
/// instruction, and LLVM's expansion of `ilog2` (the bits smeared, then counted with three
/// masks and a multiply) or a halving search both cost about sixty instructions per walk. Here
/// the smeared value, `2^(e+1) - 1`, is multiplied by a de Bruijn sequence, whose top six bits
/// are then distinct for every `e`: an index into [`LOG2_BY_DEBRUIJN`].
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
)]
#[inline(always)]
const fn ilog2(mut x: u64) -> u64 {
    x |= x >> 1;
    x |= x >> 2;
    x |= x >> 4;
    x |= x >> 8;
    x |= x >> 16;
    x |= x >> 32;
    LOG2_BY_DEBRUIJN[(x.wrapping_mul(DEBRUIJN) >> 58) as usize] as u64
}

/// A de Bruijn sequence B(2, 6): each of its 64 six-bit windows is distinct.
const DEBRUIJN: u64 = 0x03f7_9d71_b4cb_0a89;

/// `e` at the index `((2^(e+1) - 1) * DEBRUIJN) >> 58`, for `e` in 0..64.
const LOG2_BY_DEBRUIJN: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut e = 0;
    while e < 64 {
        let smeared = if e == 63 { u64::MAX } else { (1u64 << (e + 1)) - 1 };
        table[(smeared.wrapping_mul(DEBRUIJN) >> 58) as usize] = e as u8;
        e += 1;
    }
    table
};

/// Lowest duration (ns) of bucket `i` (the inverse of [`hist_bucket`] on bucket bounds).
pub const fn hist_bucket_low(i: u32) -> u64 {
    if (i as u64) < HIST_SUB {
        return i as u64;
    }
    let e = i / HIST_SUB as u32 + HIST_SUB_BITS - 1;
    let sub = (i as u64) % HIST_SUB;
    (HIST_SUB + sub) << (e - HIST_SUB_BITS)
}

/// Width (ns) of bucket `i`: 1 for the exact buckets.
pub const fn hist_bucket_width(i: u32) -> u64 {
    if (i as u64) < HIST_SUB {
        return 1;
    }
    1 << (i / HIST_SUB as u32 - 1)
}

/// Midpoint (ns) of bucket `i`: where a walk known only by its bucket is counted, within
/// [`HIST_RELATIVE_ERROR`] of its duration (the exact buckets: their one duration).
pub const fn hist_bucket_mid(i: u32) -> u64 {
    hist_bucket_low(i) + (hist_bucket_width(i) - 1) / 2
}

/// Which latency histogram: a page type and a purpose (`rwc->rmap_one`; 0 when unreadable).
/// The kernel keeps them in `LATENCY` at [`hist_index`] of the purpose's slot in `PURPOSES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistKey {
    /// `rwc->rmap_one`, the per-VMA callback: which names the purpose.
    pub rmap_one: u64,
    /// [`PageType`] as u32.
    pub page_type: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<HistKey>() == 16);

/// One latency histogram: walk counts by [`hist_bucket`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LatencyHist {
    /// Walks per bucket.
    pub buckets: [u64; HIST_BUCKETS],
}

const _: () = assert!(core::mem::size_of::<LatencyHist>() == HIST_BUCKETS * 8);
const _: () = assert!(HIST_BUCKETS == 560);

/// Purposes (`rwc->rmap_one`) the kernel keeps histograms for: a handful exist
/// (`try_to_unmap_one`, `try_to_migrate_one`, `folio_referenced_one`, `page_mkclean_one`,
/// `remove_migration_pte`, …). A power of two (slots are found by masking).
pub const PURPOSE_SLOTS: u32 = 8;

/// `PURPOSES` holds this for a purpose of 0 (`rmap_one` unreadable): 0 marks a free slot, and
/// no function lives at address 1.
pub const PURPOSE_UNREADABLE: u64 = 1;

/// Histograms (purpose slot × page type) the kernel keeps, preallocated: 32 × 4.4 KiB =
/// 140 KiB.
pub const HIST_KEYS: u32 = PURPOSE_SLOTS * PAGE_TYPES as u32;

/// Index in `LATENCY` of the histogram of purpose slot `slot` and page type `page_type`.
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call for two instructions"
)]
#[inline(always)]
pub const fn hist_index(slot: u32, page_type: u32) -> u32 {
    slot * PAGE_TYPES as u32 + page_type
}

/// Bits of `globals::FILTERS`: which filters a run uses.
pub mod filters {
    /// `FILTER_TGID`.
    pub const TGID: u32 = 1;
    /// `FILTER_COMM`.
    pub const COMM: u32 = 1 << 1;
    /// `FILTER_PROCESS`.
    pub const PROCESS: u32 = 1 << 2;
    /// `FILTER_CGROUP`.
    pub const CGROUP: u32 = 1 << 3;
    /// `TYPE_MASK` other than every type.
    pub const TYPES: u32 = 1 << 4;
}

/// Names of the load-time globals the eBPF object reads (set with
/// `EbpfLoader::override_global` before the programs are loaded).
pub mod globals {
    /// u32: the [`super::filters`] bits of the filters in use; 0 (none) lets a walk's start
    /// and end skip every filter at one test.
    pub const FILTERS: &str = "FILTERS";
    /// u32: only walks of this tgid (0: all).
    pub const FILTER_TGID: &str = "FILTER_TGID";
    /// [u8; 16]: only walks whose comm equals this (all zero: all).
    pub const FILTER_COMM: &str = "FILTER_COMM";
    /// u32: bit set of [`super::PageType::mask_bit`] to record.
    pub const TYPE_MASK: &str = "TYPE_MASK";
    /// u64: walks shorter than this are counted but not sent.
    pub const MIN_DURATION_NS: &str = "MIN_DURATION_NS";
    /// u32: byte offset of `mapping` in `struct folio` (from BTF).
    pub const FOLIO_MAPPING_OFF: &str = "FOLIO_MAPPING_OFF";
    /// u32: byte offset of `rmap_one` in `struct rmap_walk_control` (from BTF).
    pub const RWC_RMAP_ONE_OFF: &str = "RWC_RMAP_ONE_OFF";
    /// [`super::TpLayout`]: field offsets of the classic tracepoints (from their format files).
    pub const TP_LAYOUT: &str = "TP_LAYOUT";
    /// u32: offset of `next_pid` in the `sched/sched_switch` record.
    pub const SCHED_NEXT_PID_OFF: &str = "SCHED_NEXT_PID_OFF";
    /// u64: bytes waiting in the ring buffer at which a record wakes the reader up (below it,
    /// records are submitted without a wakeup and the reader polls on a timer).
    pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";
    /// u64: one record in `WAKE_CHECK_MASK + 1` (a power of two) looks at the ring's fill to
    /// decide whether to wake the reader.
    pub const WAKE_CHECK_MASK: &str = "WAKE_CHECK_MASK";
    /// [`super::OwnerLayout`]: struct offsets from a folio to its memory cgroup and from a task
    /// to its process (from BTF).
    pub const OWNER_LAYOUT: &str = "OWNER_LAYOUT";
    /// u64: only walks of folios charged to this cgroup (by id) or below it (0: all).
    pub const FILTER_CGROUP: &str = "FILTER_CGROUP";
    /// [u8; 16]: only walks whose process (thread-group leader) comm equals this (zero: all).
    pub const FILTER_PROCESS: &str = "FILTER_PROCESS";
    /// [`super::stall::StallLayout`]: offsets the lock-contention hooks follow (from BTF).
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
}

/// Names of the maps userspace reads, resizes or writes.
pub mod maps {
    /// Ring buffer of [`super::WalkEvent`]s; its size is set at load time (`--ringbuf-kib`).
    pub const EVENTS: &str = "EVENTS";
    /// Array of [`super::Inflight`] slots (the in-flight table); its size is set at load time.
    pub const INFLIGHT: &str = "INFLIGHT";
    /// LRU hash of [`super::Inflight`] by thread id: the in-flight table of the programs
    /// named `*_lru`, for kernels without BPF compare-and-swap; sized at load time.
    pub const INFLIGHT_TIDS: &str = "INFLIGHT_TIDS";
    /// Hash of purpose slot → purpose: a new purpose claims a slot of `PURPOSES` by inserting
    /// it here first (`BPF_NOEXIST`), so that two CPUs cannot claim one slot for two purposes.
    pub const PURPOSE_CLAIMS: &str = "PURPOSE_CLAIMS";
    /// Array of [`super::RECORDS_SLOTS`] u64: records sent, the reader wakeup sequence.
    pub const RECORDS: &str = "RECORDS";
    /// Per-CPU counters, one per [`super::Counter`].
    pub const COUNTS: &str = "COUNTS";
    /// Array of [`super::HIST_KEYS`] [`super::LatencyHist`]s, at [`super::hist_index`] (one for
    /// every CPU, added to atomically).
    pub const LATENCY: &str = "LATENCY";
    /// Array of [`super::PURPOSE_SLOTS`] u64: the purpose (`rmap_one`) of each slot, 0: free,
    /// [`super::PURPOSE_UNREADABLE`] for 0.
    pub const PURPOSES: &str = "PURPOSES";
    /// One-entry u64 array: when (`CLOCK_MONOTONIC` ns, the clock of `bpf_ktime_get_ns`)
    /// userspace had attached the `sched_switch` hook; 0 before.
    pub const OFFCPU_ON: &str = "OFFCPU_ON";
    /// Ring buffer of [`super::stall::StallEvent`]s (`--stalls`); sized at load time.
    pub const STALLS: &str = "STALLS";
    /// Hash of waits in progress by thread id ([`super::stall::Waiting`]).
    pub const WAITING: &str = "WAITING";
    /// One-entry array: the number of entries in `WAITING` (`contention_end`'s gate).
    pub const WAITS_OPEN: &str = "WAITS_OPEN";
    /// Per-CPU counters, one per [`super::stall::StallCounter`].
    pub const STALL_COUNTS: &str = "STALL_COUNTS";
    /// Per-CPU one-entry array: the [`super::LatencyHist`] of stall waits.
    pub const STALL_HIST: &str = "STALL_HIST";
    /// Hash of cgroup ids (u64 → u8) the folio's cgroup or an ancestor must be in when
    /// `FILTER_CGROUP` is [`super::OWNER_FILTER_SET`]; filled by userspace.
    pub const OWNER_FILTER: &str = "OWNER_FILTER";
}

/// Field offsets of the classic `rmap` tracepoint records, parsed from
/// `events/rmap/<event>/format` in userspace. An offset of `u32::MAX` means "absent".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpLayout {
    /// `folio_addr` of `rmap_walk_start` / `rmap_walk_end` (v5–v7).
    pub pair_folio: u32,
    /// `rwc_addr` of the pair.
    pub pair_rwc: u32,
    /// Offset of the pair's `__data_loc char[] page_type` word.
    pub pair_page_type: u32,
    /// `locked` of the pair.
    pub pair_locked: u32,
    /// `folio_addr` of `rmap_walk` (v4).
    pub v4_folio: u32,
    /// `rwc_addr` of v4.
    pub v4_rwc: u32,
    /// `duration_ns` of v4.
    pub v4_duration: u32,
    /// Offset of v4's `__data_loc char[] page_type` word.
    pub v4_page_type: u32,
    /// `locked` of v4.
    pub v4_locked: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
}

impl TpLayout {
    /// Offset of a field this kernel's format file lacks.
    pub const ABSENT: u32 = u32::MAX;
    /// Every field absent: the starting point before the format files are read.
    pub const EMPTY: TpLayout = TpLayout {
        pair_folio: Self::ABSENT,
        pair_rwc: Self::ABSENT,
        pair_page_type: Self::ABSENT,
        pair_locked: Self::ABSENT,
        v4_folio: Self::ABSENT,
        v4_rwc: Self::ABSENT,
        v4_duration: Self::ABSENT,
        v4_page_type: Self::ABSENT,
        v4_locked: Self::ABSENT,
        _pad: 0,
    };
}

const _: () = assert!(core::mem::size_of::<TpLayout>() == 40);

/// Classifies the `page_type` string of the tracepoints ("ksm", "anon", "file").
pub fn page_type_from_str(s: &[u8]) -> PageType {
    match s {
        [b'k', b's', b'm', ..] => PageType::Ksm,
        [b'a', b'n', b'o', b'n', ..] => PageType::Anon,
        [b'f', b'i', b'l', b'e', ..] => PageType::File,
        _ => PageType::Unknown,
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: (each) plain #[repr(C)] integers with explicit padding fields, so no implicit
    // padding and no invalid bit patterns; the sizes are asserted above.
    unsafe impl aya::Pod for super::WalkEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TpLayout {}
    // SAFETY: as above (an array of u64).
    unsafe impl aya::Pod for super::LatencyHist {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Inflight {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OwnerLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::StallLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::StallEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::Waiting {}
}

#[cfg(test)]
mod tests {
    use super::{
        HIST_BUCKETS, HIST_RELATIVE_ERROR, hist_bucket, hist_bucket_low, hist_bucket_width, ilog2,
        inflight_owner, inflight_slots, log2_bucket,
    };

    /// The de Bruijn `ilog2` agrees with the standard one at every power of two, either side of
    /// it, and at the extremes.
    #[test]
    fn ilog2_by_debruijn() {
        for e in 0..64 {
            let p = 1u64 << e;
            for v in [p, p | (p >> 1), p.saturating_add(p - 1), p + 1] {
                assert_eq!(ilog2(v), u64::from(v.ilog2()), "{v}");
            }
        }
        assert_eq!(ilog2(u64::MAX), 63);
    }

    #[test]
    fn inflight_table_sizes_are_powers_of_two() {
        let sizes = [0, 1, 2, 3, 5, 8192, 8193].map(inflight_slots);
        assert_eq!(sizes, [1, 1, 2, 4, 8, 8192, 16384]);
    }

    #[test]
    fn inflight_owner_words() {
        assert_eq!(inflight_owner(7, 0), 7);
        // 3 units of 2^20 ns (about 3 ms) in the high word, whatever the rest.
        assert_eq!(inflight_owner(7, (3 << 20) + 12_345), (3 << 32) | 7);
    }

    /// Every value from 0 to past the range maps to a bucket no lower than the previous one, its
    /// bucket's bounds contain it, and the bucket's midpoint is within the stated precision.
    #[test]
    fn hist_buckets_monotonic_and_precise() {
        let mut prev = 0;
        let mut v = 0u64;
        while v < 1 << 39 {
            let b = hist_bucket(v);
            assert!(b >= prev, "{v} ns: bucket {b} < {prev}");
            assert!((b as usize) < HIST_BUCKETS, "{v} ns: bucket {b}");
            prev = b;
            let b = b as u32;
            let (low, width) = (hist_bucket_low(b), hist_bucket_width(b));
            if v < 1 << 38 {
                assert!(low <= v && v < low + width, "{v} ns not in [{low}, +{width})");
                let mid = low as f64 + (width - 1) as f64 / 2.0;
                let err = (mid - v as f64).abs() / v.max(1) as f64;
                assert!(err <= HIST_RELATIVE_ERROR, "{v} ns: midpoint {mid} off by {err}");
            }
            // Dense at first, then a few points per bucket.
            v += 1 + v / 97;
        }
        assert_eq!(hist_bucket(u64::MAX) as usize, HIST_BUCKETS - 1);
        // Every bucket is reachable and the bounds tile the range without gaps.
        for i in 1..HIST_BUCKETS as u32 {
            assert_eq!(
                hist_bucket_low(i - 1) + hist_bucket_width(i - 1),
                hist_bucket_low(i)
            );
            assert_eq!(hist_bucket(hist_bucket_low(i)), u64::from(i));
        }
        // 100 ns … 100 s are inside the range, not in the clamped last bucket.
        assert!((hist_bucket(100_000_000_000) as usize) < HIST_BUCKETS - 1);
    }

    #[test]
    fn log2_buckets() {
        let cases = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 1),
            (1023, 9),
            (1024, 10),
            (u64::MAX, 63),
        ];
        for (ns, bucket) in cases {
            assert_eq!(log2_bucket(ns), bucket, "{ns} ns");
        }
    }
}
