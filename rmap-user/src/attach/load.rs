//! Loading the eBPF object with its load-time options and attaching the first mode of the
//! plan that works. Programs of a mode that failed half-way are unloaded again, which
//! detaches whatever they had attached.
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::Array,
    programs::{FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint},
};
use rmap_common::{OwnerLayout, TpLayout, WALK_EVENT_SIZE, globals, maps, stall::StallLayout};

use super::{
    errors::describe,
    plan::{self, AttachChoice, Chosen, Mode, ModeSpec, Outcome, Skipped, TpFlavor},
    targets::{self, Target},
};
use crate::kernel::{
    btf::Offsets,
    features::Features,
    kallsyms::Kallsyms,
    layouts::EventLayouts,
    tracefs::{self, Tracefs},
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
    /// (0: the object's 1 MiB).
    pub ringbuf_bytes: u32,
    /// Slots of the in-flight table (0: 8,192); small only to test a full table.
    pub inflight_entries: u32,
    /// Age past which a start may take over another thread's in-flight slot (0: 10 s); short
    /// only to test eviction.
    pub inflight_stale_ns: u64,
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
    if filters.ringbuf_bytes != 0 {
        loader.map_max_entries(maps::EVENTS, filters.ringbuf_bytes);
    }
    let slots = rmap_common::inflight_slots(if filters.inflight_entries == 0 {
        DEFAULT_INFLIGHT_SLOTS
    } else {
        filters.inflight_entries
    });
    // One in-flight table is used (`Features::program_suffix`), the other shrunk to one entry.
    let (array, hash) = if facts.features.cmpxchg {
        (slots, 1)
    } else {
        (1, slots)
    };
    loader.map_max_entries(maps::INFLIGHT, array);
    loader.map_max_entries(maps::INFLIGHT_TIDS, hash);
    // Rounded up to the owner word's time unit (2^20 ns), which the kernel side counts in.
    let stale_ns = if filters.inflight_stale_ns == 0 {
        INFLIGHT_STALE_NS
    } else {
        filters.inflight_stale_ns
    }
    .next_multiple_of(1 << rmap_common::INFLIGHT_TIME_SHIFT);
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
        .override_global(globals::WAKEUP_BYTES, &wakeup_bytes(filters.ringbuf_bytes), true)
        .override_global(
            globals::WAKE_CHECK_MASK,
            &wake_check_mask(filters.ringbuf_bytes),
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

/// Slots of the in-flight table when `Filters::inflight_entries` does not say: 8,192 of 64
/// bytes (512 KiB). With k walks in flight, a start finds its 4 slots taken with a probability
/// of about (k/8192)^4 (rmap-ebpf inflight.rs).
const DEFAULT_INFLIGHT_SLOTS: u32 = 8192;

/// A slot held this long by a walk is taken for one whose end was missed: over ten times the
/// slowest walks seen (a KSM page behind 20,000 VMAs, under emulation: about 0.6 s).
const INFLIGHT_STALE_NS: u64 = 10_000_000_000;

/// Waiting bytes at which a record wakes the reader: a quarter of the ring, so that a burst
/// is read long before the ring is full while the reader otherwise drains on its timer
/// (`session::DRAIN_PERIOD`).
fn wakeup_bytes(ringbuf_bytes: u32) -> u64 {
    let size = if ringbuf_bytes == 0 {
        DEFAULT_RINGBUF_BYTES
    } else {
        ringbuf_bytes
    };
    u64::from(size / 4)
}

/// Records between two looks at the ring's fill, less one (a mask): a quarter of the records
/// that fill the wakeup threshold, a power of two, at most 64 (8 KiB of 128-byte records) and at
/// least 1, so that even a one-page ring is looked at before it fills.
fn wake_check_mask(ringbuf_bytes: u32) -> u64 {
    let threshold_records = wakeup_bytes(ringbuf_bytes) / (WALK_EVENT_SIZE as u64 + 8);
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

/// An attached mode.
pub struct Attached {
    pub outcome: Outcome,
    /// Why off-CPU time is not measured, if it is not.
    pub offcpu_unavailable: Option<String>,
}

/// Tries the plan's modes for `choice`; on success the programs stay attached in `ebpf` (and
/// detach when it is dropped). On failure every mode's reason is in the outcome.
pub fn attach(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    choice: AttachChoice,
    flavor: TpFlavor,
    offcpu: bool,
) -> Result<Attached, Outcome> {
    let mut outcome = Outcome::default();
    for spec in plan::modes(choice) {
        if outcome.chosen.is_some() {
            outcome.not_tried.push(spec.name);
            continue;
        }
        match try_mode(ebpf, facts, spec, flavor) {
            Ok(points) => {
                outcome.chosen = Some(Chosen {
                    mode: spec.mode,
                    points,
                });
            }
            Err(reason) => outcome.skipped.push(Skipped {
                mode: spec.name,
                reason,
            }),
        }
    }
    let selected: Vec<Mode> = plan::modes(choice).map(|s| s.mode).collect();
    for spec in plan::PLAN.iter().filter(|s| !selected.contains(&s.mode)) {
        outcome.not_tried.push(spec.name);
    }
    let Some(mode) = outcome.chosen.as_ref().map(|c| c.mode) else {
        return Err(outcome);
    };
    if mode == Mode::Kprobe {
        outcome.notes = kprobe_targets(facts).map_or_else(|_| Vec::new(), |t| targets::clone_notes(&t));
    }
    let offcpu_unavailable = if !offcpu {
        Some("disabled (--no-offcpu)".into())
    } else if plan::spec(mode).has_start {
        attach_sched(ebpf, facts).err()
    } else {
        Some("the v4 tracepoint reports whole walks only".into())
    };
    Ok(Attached {
        outcome,
        offcpu_unavailable,
    })
}

/// A mode's name and its attach points, or why it is unavailable.
pub type ModeProbe = (&'static str, Result<Vec<String>, String>);

/// Every mode's availability, each tried and detached again (for `rmap-trace probe`).
pub fn probe_all(facts: &KernelFacts, filters: &Filters) -> Result<Vec<ModeProbe>, LoadError> {
    let mut results = Vec::new();
    for spec in &plan::PLAN {
        // A fresh object per mode, so that each is tried from scratch; dropped = detached.
        let mut ebpf = load_object(filters, facts)?;
        results.push((spec.name, try_mode(&mut ebpf, facts, spec, TpFlavor::Auto)));
    }
    Ok(results)
}

fn try_mode(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    spec: &ModeSpec,
    flavor: TpFlavor,
) -> Result<Vec<String>, String> {
    match spec.mode {
        Mode::TracepointPair => tracepoints(
            ebpf,
            facts,
            &[
                ("raw_rmap_walk_start", "tp_rmap_walk_start", "rmap_walk_start"),
                ("raw_rmap_walk_end", "tp_rmap_walk_end", "rmap_walk_end"),
            ],
            (
                facts.layouts.layout.pair_folio,
                facts.layouts.pair_error.as_deref(),
            ),
            flavor,
        ),
        Mode::TracepointV4 => tracepoints(
            ebpf,
            facts,
            &[("raw_rmap_walk_v4", "tp_rmap_walk_v4", "rmap_walk")],
            (facts.layouts.layout.v4_folio, facts.layouts.v4_error.as_deref()),
            flavor,
        ),
        Mode::Fentry => fentry(ebpf, facts),
        Mode::Kprobe => kprobe(ebpf, facts),
    }
}

/// Unloads programs (detaching their links) after a mode failed half-way.
fn unload_all(ebpf: &mut Ebpf, names: &[String]) {
    for name in names {
        if let Some(prog) = ebpf.program_mut(name)
            && let Err(e) = unload(prog)
        {
            log::debug!("unloading {name}: {e}");
        }
    }
}

fn unload(prog: &mut aya::programs::Program) -> Result<(), ProgramError> {
    use aya::programs::Program as P;
    match prog {
        P::RawTracePoint(p) => p.unload(),
        P::TracePoint(p) => p.unload(),
        P::FEntry(p) => p.unload(),
        P::FExit(p) => p.unload(),
        P::KProbe(p) => p.unload(),
        _ => Ok(()),
    }
}

pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?;
    prog.try_into().map_err(|e: ProgramError| format!("{name}: {e}"))
}

/// Runs the steps of one attempt, which record every program they touch; when a step fails
/// those programs are unloaded again (detaching what they attached), so that a failed attempt
/// leaves nothing attached.
fn all_or_nothing(
    ebpf: &mut Ebpf,
    steps: impl FnOnce(&mut Ebpf, &mut Vec<String>) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    let mut touched = Vec::new();
    steps(ebpf, &mut touched).inspect_err(|_| unload_all(ebpf, &touched))
}

/// The rmap tracepoints: `raw_tp` first (arguments directly), else the classic tracepoint, or
/// only one of them (`--tracepoint-flavor`).
fn tracepoints(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    events: &[(&str, &str, &str)],
    (layout_first, layout_error): (u32, Option<&str>),
    flavor: TpFlavor,
) -> Result<Vec<String>, String> {
    let exists = |ev: &str| {
        facts.tracefs.as_ref().is_some_and(|t| t.has_event("rmap", ev))
            || facts.kernel_btf.has_typedef(&format!("btf_trace_{ev}"))
    };
    let missing: Vec<_> = events
        .iter()
        .filter(|(_, _, ev)| !exists(ev))
        .map(|(_, _, ev)| format!("rmap:{ev}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no {} tracepoint in this kernel (it lacks the rmap tracepoint patch)",
            missing.join("/")
        ));
    }
    let raw_err = if flavor == TpFlavor::Classic {
        "not tried (--tracepoint-flavor classic)".to_string()
    } else {
        match all_or_nothing(ebpf, |ebpf, touched| {
            let mut points = Vec::new();
            for (raw, _, ev) in events {
                touched.push(raw.to_string());
                let p: &mut RawTracePoint = program(ebpf, raw)?;
                p.load().map_err(|e| describe(&e))?;
                p.attach(ev).map_err(|e| describe(&e))?;
                points.push(format!("raw_tp:{ev}"));
            }
            Ok(points)
        }) {
            Ok(points) => return Ok(points),
            Err(e) => e,
        }
    };
    if flavor == TpFlavor::Raw {
        return Err(format!(
            "raw_tp: {raw_err}; tp: not tried (--tracepoint-flavor raw)"
        ));
    }
    if layout_first == TpLayout::ABSENT {
        let why = layout_error.unwrap_or("no format file in tracefs");
        return Err(format!("raw_tp: {raw_err}; tp: {why}"));
    }
    all_or_nothing(ebpf, |ebpf, touched| {
        let mut points = Vec::new();
        for (_, tp, ev) in events {
            touched.push(tp.to_string());
            let p: &mut TracePoint = program(ebpf, tp)?;
            p.load().map_err(|e| describe(&e))?;
            p.attach("rmap", ev).map_err(|e| describe(&e))?;
            points.push(format!("tp:rmap/{ev}"));
        }
        Ok(points)
    })
    .map_err(|e| format!("raw_tp: {raw_err}; tp: {e}"))
}

fn fentry(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<Vec<String>, String> {
    let btf = facts
        .btf
        .as_ref()
        .ok_or("no kernel BTF (/sys/kernel/btf/vmlinux)")?;
    let kbtf = &facts.kernel_btf;
    let targets = targets::resolve(|f| kbtf.has_function(f).then(|| f.to_string()))?;
    all_or_nothing(ebpf, |ebpf, touched| {
        let mut points = Vec::new();
        let table = facts.features.program_suffix();
        for Target { walker, symbol, .. } in &targets {
            let entry = format!("fentry_{}{table}", walker.suffix());
            touched.push(entry.clone());
            let p: &mut FEntry = program(ebpf, &entry)?;
            p.load(symbol, btf)
                .map_err(|e| format!("{entry}: {}", describe(&e)))?;
            p.attach().map_err(|e| format!("{entry}: {}", describe(&e)))?;
            let exit = format!("fexit_{}{table}", walker.suffix());
            touched.push(exit.clone());
            let p: &mut FExit = program(ebpf, &exit)?;
            p.load(symbol, btf)
                .map_err(|e| format!("{exit}: {}", describe(&e)))?;
            p.attach().map_err(|e| format!("{exit}: {}", describe(&e)))?;
            points.push(format!("fentry+fexit:{symbol}"));
        }
        Ok(points)
    })
}

fn kprobe(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<Vec<String>, String> {
    if !tracefs::has_kprobes(facts.tracefs.as_ref()) {
        return Err(
            "this kernel has no kprobes (no kprobe PMU, no kprobe_events: CONFIG_KPROBES unset?)".into(),
        );
    }
    let targets = kprobe_targets(facts)?;
    let table = facts.features.program_suffix();
    let ret_name = format!("kretprobe_walk{table}");
    all_or_nothing(ebpf, |ebpf, touched| {
        touched.push(ret_name.clone());
        let ret: &mut KProbe = program(ebpf, &ret_name)?;
        ret.load().map_err(|e| format!("{ret_name}: {}", describe(&e)))?;
        let mut points = Vec::new();
        for Target {
            walker,
            symbol,
            reads_args,
        } in &targets
        {
            // A clone gets the entry program that reads no argument (`targets::clone_notes`).
            let kind = if *reads_args { "kprobe" } else { "kprobe_clone" };
            let entry = format!("{kind}_{}{table}", walker.suffix());
            touched.push(entry.clone());
            let p: &mut KProbe = program(ebpf, &entry)?;
            p.load().map_err(|e| format!("{entry}: {}", describe(&e)))?;
            p.attach(symbol, 0)
                .map_err(|e| format!("kprobe {symbol}: {}", describe(&e)))?;
            let ret: &mut KProbe = program(ebpf, &ret_name)?;
            ret.attach(symbol, 0)
                .map_err(|e| format!("kretprobe {symbol}: {}", describe(&e)))?;
            points.push(format!("kprobe+kretprobe:{symbol}"));
        }
        Ok(points)
    })
}

/// The kprobe targets: the walkers, or their compiler clones, as kallsyms names them.
fn kprobe_targets(facts: &KernelFacts) -> Result<Vec<Target>, String> {
    let kallsyms = facts.kallsyms.as_ref().ok_or("/proc/kallsyms unreadable")?;
    targets::resolve(|f| kallsyms.clone_of(f).map(String::from))
}

/// `CLOCK_MONOTONIC` now, in ns: the clock `bpf_ktime_get_ns` reads.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `sched:sched_switch` for off-CPU accounting; optional.
fn attach_sched(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), String> {
    if let Err(why) = &facts.layouts.sched_next_pid {
        return Err(format!("sched/sched_switch format unusable: {why}"));
    }
    let name = format!("sched_switch{}", facts.features.program_suffix());
    let p: &mut TracePoint = program(ebpf, &name)?;
    p.load().map_err(|e| describe(&e))?;
    p.attach("sched", "sched_switch").map_err(|e| describe(&e))?;
    // Only now may walks claim a measured off-CPU time (FLAG_OFFCPU_VALID, rmap-ebpf walk.rs):
    // a walk that begins from here on has every switch seen by the hook.
    let map = ebpf
        .map_mut(maps::OFFCPU_ON)
        .ok_or("map OFFCPU_ON missing from the object")?;
    let mut on = Array::<_, u64>::try_from(map).map_err(|e| format!("OFFCPU_ON: {e}"))?;
    on.set(0, monotonic_ns(), 0)
        .map_err(|e| format!("setting OFFCPU_ON: {e}"))?;
    Ok(())
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
        assert_eq!(wake_check_mask(0), 63);
        assert_eq!(wake_check_mask(16 << 20), 63);
        assert_eq!(wake_check_mask(64 << 10), 31);
        assert_eq!(wake_check_mask(4096), 1);
    }
}
