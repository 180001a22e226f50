//! Loading the eBPF object: the kernel facts it needs and its load-time options (`Filters`),
//! set as globals and map sizes before the programs are loaded. Attaching them: `modes`.
use aya::{Btf, Ebpf, EbpfLoader};
use rmap_common::{OwnerLayout, WALK_EVENT_SIZE, globals, maps, stall::StallLayout};

use crate::kernel::{
    btf::Offsets, features::Features, kallsyms::Kallsyms, layouts::EventLayouts, tracefs::Tracefs,
};

/// The eBPF object built by aya-build from rmap-ebpf.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rmap-trace"));

/// Errors loading the object.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object is the empty stub written when the eBPF build was skipped.
    #[error(
        "this rmap-trace was built without its eBPF object (AYA_BUILD_SKIP); rebuild with `cargo xtask build`"
    )]
    Stub,
    /// aya could not parse or create the object's maps.
    #[error("loading the eBPF object: {0}")]
    Ebpf(#[from] aya::EbpfError),
}

/// Load-time options (`rmap_common::globals`).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Only this process (0: all).
    pub tgid: u32,
    /// Only tasks with this comm (empty: all); at most 15 bytes.
    pub comm: Option<String>,
    /// Bit set of `PageType::mask_bit`.
    pub type_mask: u32,
    /// Walks shorter than this are counted but not sent to userspace.
    pub min_duration_ns: u64,
    /// Size of the ring buffer in bytes, a power of two and a multiple of the page size
    /// (`None`: the object's 1 MiB, [`Filters::ring_bytes`]).
    pub ringbuf_bytes: Option<u32>,
    /// Slots wanted in the in-flight table, rounded up to a power of two (`None`: 8,192,
    /// [`Filters::inflight_slots`]); small only to test a full table.
    pub inflight_entries: Option<u32>,
    /// Age past which a start may take over another thread's in-flight slot (`None`: 10 s,
    /// [`Filters::stale_ns`]); short only to test eviction.
    pub inflight_stale_ns: Option<u64>,
    /// Do not attach the `sched_switch` hook (off-CPU time then shows "n/a"; to test that the
    /// off-CPU flag does not lie).
    pub no_offcpu: bool,
    /// Only folios charged to this cgroup (by id) or below it (0: all).
    pub cgroup_id: u64,
    /// Only tasks whose process (thread-group leader) has this comm (empty: all).
    pub process: Option<String>,
    /// Attribute lock waits to walks (`--stalls`): the stall ring buffer gets its size and the
    /// session attaches the `lock:contention_*` hooks.
    pub stalls: bool,
}

impl Filters {
    /// The ring buffer's size in bytes: `ringbuf_bytes`, else the object's own.
    pub fn ring_bytes(&self) -> u32 {
        self.ringbuf_bytes.unwrap_or(DEFAULT_RINGBUF_BYTES)
    }

    /// Slots of the in-flight table: `inflight_entries` (else 8,192) rounded up to a power of two.
    pub fn inflight_slots(&self) -> u32 {
        rmap_common::inflight_slots(self.inflight_entries.unwrap_or(DEFAULT_INFLIGHT_SLOTS))
    }

    /// The stale age in ns: `inflight_stale_ns` (else 10 s) rounded up to the owner word's time
    /// unit (2^20 ns), which the kernel side counts in.
    pub fn stale_ns(&self) -> u64 {
        self.inflight_stale_ns
            .unwrap_or(INFLIGHT_STALE_NS)
            .next_multiple_of(1 << rmap_common::INFLIGHT_TIME_SHIFT)
    }
}

/// Kernel facts the object needs.
pub struct KernelFacts {
    pub offsets: Offsets,
    /// From a folio to its memory cgroup, from a task to its process…
    pub owner: OwnerLayout,
    /// …and the member the memory cgroup is read from (`folio.memcg_data`), or why owners
    /// cannot be read.
    pub owner_source: Result<&'static str, String>,
    /// The kernel's BPF features the object adapts to.
    pub features: Features,
    /// From a reader-owned rwsem to its last reader (`--stalls`), or why not.
    pub stall: Result<StallLayout, String>,
    pub tracefs: Option<Tracefs>,
    /// Classic tracepoint layouts, and why any that is absent could not be read.
    pub layouts: EventLayouts,
    pub kallsyms: Option<Kallsyms>,
    pub btf: Option<Btf>,
    /// For fentry targets.
    pub kernel_btf: crate::kernel::btf::KernelBtf,
}

impl KernelFacts {
    /// Reads BTF offsets, tracepoint layouts and symbols. BTF is required (struct offsets); a
    /// tracefs format that cannot be used only disables what reads it ([`EventLayouts`]).
    pub fn read() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let kernel_btf = crate::kernel::btf::KernelBtf::open(crate::kernel::btf::VMLINUX_BTF)
            .context("kernel BTF is required for struct offsets")?;
        crate::memory::report("kernel BTF read (btf-rs)", &[]);
        let offsets = kernel_btf.offsets()?;
        let (owner, owner_source) = kernel_btf.owner_layout();
        let stall = kernel_btf.stall_layout().map_err(|e| e.to_string());
        let tracefs = Tracefs::find_or_mount().ok();
        let layouts = tracefs
            .as_ref()
            .map_or_else(EventLayouts::none, EventLayouts::read);
        let kallsyms = Kallsyms::load("/proc/kallsyms").ok();
        let kallsyms_bytes = kallsyms.as_ref().map_or(0, Kallsyms::heap_bytes);
        crate::memory::report("kallsyms read", &[("kallsyms", kallsyms_bytes)]);
        let btf = Btf::from_sys_fs().ok();
        crate::memory::report("kernel BTF read (aya)", &[]);
        Ok(Self {
            offsets,
            owner,
            owner_source,
            features: Features::probe(),
            stall,
            tracefs,
            layouts,
            kallsyms,
            btf,
            kernel_btf,
        })
    }
}

/// Loads the object (maps created, programs not yet loaded) with the options set.
pub fn load_object(filters: &Filters, facts: &KernelFacts) -> Result<Ebpf, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::Stub);
    }
    let (comm, process) = (
        comm_bytes(filters.comm.as_deref()),
        comm_bytes(filters.process.as_deref()),
    );
    let (tgid, mask, min) = (filters.tgid, filters.type_mask, filters.min_duration_ns);
    let (mapping, rmap_one) = (facts.offsets.folio_mapping, facts.offsets.rwc_rmap_one);
    let sched = facts.layouts.sched_next_pid.clone().unwrap_or(0);
    let mut loader = EbpfLoader::new();
    if let Some(bytes) = filters.ringbuf_bytes {
        loader.map_max_entries(maps::EVENTS, bytes);
    }
    let slots = filters.inflight_slots();
    // One in-flight table is used (`Features::program_suffix`), the other shrunk to one entry.
    let (array, hash) = if facts.features.cmpxchg {
        (slots, 1)
    } else {
        (1, slots)
    };
    loader.map_max_entries(maps::INFLIGHT, array);
    loader.map_max_entries(maps::INFLIGHT_TIDS, hash);
    let stale_ns = filters.stale_ns();
    if filters.stalls {
        loader.map_max_entries(maps::STALLS, STALL_RINGBUF_BYTES);
    } else {
        // Nothing writes the stall ring buffer nor the waits-in-progress map: one page instead
        // of its size, a few entries instead of 4,096 (about half a MiB: 64-byte values, 8-byte
        // keys and each element's header).
        loader.map_max_entries(maps::STALLS, PAGE_BYTES);
        loader.map_max_entries(maps::WAITING, UNUSED_WAITING_ENTRIES);
    }
    let stall = facts.stall.clone().unwrap_or(StallLayout::EMPTY);
    // Without kallsyms every purpose is taken as it comes (see `globals::TEXT_START`).
    let text_start: u64 = facts
        .kallsyms
        .as_ref()
        .and_then(|k| k.address_of("_stext"))
        .unwrap_or(0);
    let in_use = filters_in_use(filters);
    Ok(loader
        .override_global(globals::FILTERS, &in_use, true)
        .override_global(globals::FILTER_TGID, &tgid, true)
        .override_global(globals::FILTER_COMM, &comm, true)
        .override_global(globals::TYPE_MASK, &mask, true)
        .override_global(globals::MIN_DURATION_NS, &min, true)
        .override_global(globals::FOLIO_MAPPING_OFF, &mapping, true)
        .override_global(globals::RWC_RMAP_ONE_OFF, &rmap_one, true)
        .override_global(globals::TP_LAYOUT, &facts.layouts.layout, true)
        .override_global(globals::SCHED_NEXT_PID_OFF, &sched, true)
        .override_global(globals::OWNER_LAYOUT, &facts.owner, true)
        .override_global(globals::WAKEUP_BYTES, &wakeup_bytes(filters.ring_bytes()), true)
        .override_global(
            globals::WAKE_CHECK_MASK,
            &wake_check_mask(filters.ring_bytes()),
            true,
        )
        .override_global(globals::INFLIGHT_MASK, &(array - 1), true)
        .override_global(globals::INFLIGHT_STALE_NS, &stale_ns, true)
        .override_global(globals::FILTER_CGROUP, &filters.cgroup_id, true)
        .override_global(globals::FILTER_PROCESS, &process, true)
        .override_global(globals::STALL_LAYOUT, &stall, true)
        .override_global(globals::TEXT_START, &text_start, true)
        .load(OBJECT)?)
}

/// The stall ring buffer with `--stalls`: 2,184 records of 112 bytes (and the ring's 8-byte
/// header each), drained every 50 ms (`session::DRAIN_PERIOD`), so about 43,000 waits/s
/// before a record is dropped (the waits
/// are still counted and in the histogram).
const STALL_RINGBUF_BYTES: u32 = 256 << 10;
/// A ring buffer's smallest size: one page.
const PAGE_BYTES: u32 = 4096;
/// `WAITING` without `--stalls`: never written, but the map must exist for the object to load.
const UNUSED_WAITING_ENTRIES: u32 = 16;

/// The object's ring buffer when `--ringbuf-kib` does not say (rmap-ebpf maps.rs `EVENTS`).
const DEFAULT_RINGBUF_BYTES: u32 = 1 << 20;

/// Slots of the in-flight table when [`Filters::inflight_entries`] does not say: 8,192 of 64
/// bytes (512 KiB). With k walks in flight, a start finds its 4 slots taken with a probability
/// of about (k/8192)^4 (rmap-ebpf inflight.rs).
const DEFAULT_INFLIGHT_SLOTS: u32 = 8192;

/// A slot held this long by a walk is taken for one whose end was missed: over ten times the
/// slowest walks seen (a KSM page behind 20,000 VMAs, under emulation: about 0.6 s).
const INFLIGHT_STALE_NS: u64 = 10_000_000_000;

/// Waiting bytes at which a record wakes the reader: a quarter of the ring, so that a burst
/// is read long before the ring is full while the reader otherwise drains on its timer
/// (`session::DRAIN_PERIOD`).
fn wakeup_bytes(ring_bytes: u32) -> u64 {
    u64::from(ring_bytes / 4)
}

/// Records between two looks at the ring's fill, less one (a mask): a quarter of the records
/// that fill the wakeup threshold, a power of two, at most 64 (8 KiB of 128-byte records) and at
/// least 1, so that even a one-page ring is looked at before it fills.
fn wake_check_mask(ring_bytes: u32) -> u64 {
    let threshold_records = wakeup_bytes(ring_bytes) / (WALK_EVENT_SIZE as u64 + 8);
    let every = (threshold_records / 4).clamp(1, 64);
    (1u64 << every.ilog2()) - 1
}

/// The `rmap_common::filters` bits of the filters `filters` sets.
fn filters_in_use(filters: &Filters) -> u32 {
    use rmap_common::{PageType, filters as bit};
    let every_type = PageType::ALL.iter().fold(0, |m, t| m | t.mask_bit());
    [
        (filters.tgid != 0, bit::TGID),
        (filters.comm.as_deref().is_some_and(|c| !c.is_empty()), bit::COMM),
        (
            filters.process.as_deref().is_some_and(|p| !p.is_empty()),
            bit::PROCESS,
        ),
        (filters.cgroup_id != 0, bit::CGROUP),
        (filters.type_mask & every_type != every_type, bit::TYPES),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(0, |bits, (_, b)| bits | b)
}

/// A comm filter as the kernel compares it: NUL-padded, at most 15 bytes (`TASK_COMM_LEN` 16).
fn comm_bytes(name: Option<&str>) -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Some(c) = name {
        let n = c.len().min(15);
        b[..n].copy_from_slice(&c.as_bytes()[..n]);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each filter set has its bit; none set, no bit (the kernel then skips every filter).
    #[test]
    fn filters_in_use_are_flagged() {
        use rmap_common::filters as bit;
        let all = Filters {
            type_mask: u32::MAX,
            ..Filters::default()
        };
        assert_eq!(filters_in_use(&all), 0);
        assert_eq!(
            filters_in_use(&Filters {
                type_mask: 0b1111,
                ..all.clone()
            }),
            0
        );
        assert_eq!(
            filters_in_use(&Filters {
                type_mask: 0b0010,
                ..all.clone()
            }),
            bit::TYPES
        );
        let every = Filters {
            tgid: 7,
            comm: Some("java".into()),
            process: Some("java".into()),
            cgroup_id: 9,
            ..all.clone()
        };
        assert_eq!(
            filters_in_use(&every),
            bit::TGID | bit::COMM | bit::PROCESS | bit::CGROUP
        );
        assert_eq!(
            filters_in_use(&Filters {
                comm: Some(String::new()),
                ..all
            }),
            0
        );
    }

    /// A record in 64 looks at a large ring's fill; a one-page ring (8 records to its wakeup
    /// threshold) is looked at every other record, before it can fill.
    #[test]
    fn small_rings_are_looked_at_more_often() {
        assert_eq!(wake_check_mask(Filters::default().ring_bytes()), 63);
        assert_eq!(wake_check_mask(16 << 20), 63);
        assert_eq!(wake_check_mask(64 << 10), 31);
        assert_eq!(wake_check_mask(4096), 1);
    }

    /// Unset sizes are the defaults (the object's 1 MiB ring, 8,192 slots, 10 s); set ones are
    /// taken as given, the slots rounded up to a power of two and the age to 2^20 ns.
    #[test]
    fn unset_sizes_are_the_defaults() {
        let unset = Filters::default();
        assert_eq!(unset.ring_bytes(), 1 << 20);
        assert_eq!(unset.inflight_slots(), 8192);
        assert_eq!(unset.stale_ns(), 10_000_000_000u64.next_multiple_of(1 << 20));
        let set = Filters {
            ringbuf_bytes: Some(4096),
            inflight_entries: Some(3),
            inflight_stale_ns: Some(1_000_000),
            ..Filters::default()
        };
        assert_eq!(set.ring_bytes(), 4096);
        assert_eq!(set.inflight_slots(), 4);
        assert_eq!(set.stale_ns(), 1 << 20);
        assert_eq!(wakeup_bytes(set.ring_bytes()), 1024);
    }
}
