//! What a walk is: its page type, the hook that saw it, and the event the ring buffer carries
//! for it.

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

    /// Bit of this type in the [`crate::globals::TYPE_MASK`] load-time global.
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
    /// when each wait began: see [`crate::stall`].
    pub stall_waits: u32,
    /// Command name of the walking thread (`task->comm`), NUL-padded.
    pub comm: [u8; 16],
    /// Command name of the walking thread's process (`task->group_leader->comm`), NUL-padded;
    /// all zero when unreadable.
    pub process: [u8; 16],
    /// Id of the memory cgroup the folio is charged to (its directory's inode number under
    /// /sys/fs/cgroup), valid with [`crate::FLAG_OWNER_VALID`]: whose memory was walked.
    pub cgroup_id: u64,
}

/// Size of [`WalkEvent`] in bytes (asserted below), as userspace reads it from the ring buffer.
pub const WALK_EVENT_SIZE: usize = 120;
const _: () = assert!(core::mem::size_of::<WalkEvent>() == WALK_EVENT_SIZE);
const _: () = assert!(core::mem::align_of::<WalkEvent>() == 8);
