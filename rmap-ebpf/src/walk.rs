//! Walk accounting shared by every attach mode: a walk starts (`begin`), ends (`end`), or is
//! reported whole by the v4 tracepoint (`whole`); `end` and `whole` both go through `record`.
//! Filters, counters, histograms and the ring buffer event all happen here, once.
use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated,
    },
};
use aya_log_ebpf::warn;
use rmap_common::{
    Counter, FLAG_OFFCPU_VALID, FLAG_OWNER_VALID, HIST_BUCKETS, Inflight, PageType, RECORDS_SENT,
    RECORDS_WAKE_SEQ, Source, WalkEvent, filters, hist_bucket, hist_index, inflight_owner,
};

use crate::{
    config::{
        FILTER_COMM, FILTER_PROCESS, FILTER_TGID, FILTERS, FOLIO_MAPPING_OFF, MIN_DURATION_NS,
        RWC_RMAP_ONE_OFF, TYPE_MASK, WAKE_CHECK_MASK, WAKEUP_BYTES,
    },
    inflight::{self, Table},
    maps::{EVENTS, LATENCY, OFFCPU_ON, RECORDS, add_one, bump, next},
    owner, purpose,
};

/// The task filters among `FILTERS`.
const TASK_FILTERS: u32 = filters::TGID | filters::COMM | filters::PROCESS;

/// Whether the current task passes the tgid, comm (the thread's) and process (the thread-group
/// leader's comm: JVM threads rename themselves, their process stays `java`) filters: one test
/// when none is set.
#[inline(always)]
fn task_passes(pid_tgid: u64) -> bool {
    FILTERS.load() & TASK_FILTERS == 0 || task_filters_pass(pid_tgid)
}

#[inline(always)]
fn task_filters_pass(pid_tgid: u64) -> bool {
    let want = FILTER_TGID.load();
    if want != 0 && (pid_tgid >> 32) as u32 != want {
        return false;
    }
    let [a, b] = FILTER_PROCESS.load();
    if (a, b) != (0, 0) && words(&owner::process_comm(owner::task())) != (a, b) {
        return false;
    }
    let [a, b] = FILTER_COMM.load();
    if (a, b) == (0, 0) {
        return true;
    }
    // Read into two words zeroed by two stores, not a zeroed byte array (LLVM zeroes one with a
    // `memset` call), and compared as words: a byte-array `==` may lower to a memcmp call BPF
    // cannot make. Zeroed first: the helper pads the name with zeros on some kernels only (6.1
    // copies up to the NUL and leaves the rest).
    let mut comm = [0u64; 2];
    // SAFETY: 16 writable bytes, which the helper fills up to the name's NUL.
    unsafe {
        core::ptr::write_volatile(&raw mut comm[0], 0);
        core::ptr::write_volatile(&raw mut comm[1], 0);
        generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), 16);
    }
    (comm[0], comm[1]) == (a, b)
}

#[inline(always)]
fn words(b: &[u8; 16]) -> (u64, u64) {
    let p = b.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes; unaligned reads are fine.
    unsafe { (p.read_unaligned(), p.add(1).read_unaligned()) }
}

/// How a walk's start learns its purpose (`rwc->rmap_one`).
#[derive(Clone, Copy)]
pub enum Purpose {
    /// Read by the hook itself (fentry: a plain load through its BTF-typed `rwc` argument; 0
    /// for a hook that cannot read it).
    Read(u64),
    /// Read here, from the walk's `rwc`, with `bpf_probe_read_kernel` (kprobe, tracepoints:
    /// their arguments are plain numbers to the verifier).
    Probe,
}

/// `rwc->rmap_one` read with `bpf_probe_read_kernel`; 0 when unreadable.
#[inline(always)]
fn probe_purpose(rwc: u64) -> u64 {
    let at = rwc + u64::from(RWC_RMAP_ONE_OFF.load());
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel(at as *const u64) }.unwrap_or(0)
}

/// A walk of `folio` under `rwc` starts on this thread. `page_type` is `Unknown` when the hook
/// does not know it (then it is read from `folio->mapping` at the end).
#[inline(always)]
pub fn begin<T: Table>(folio: u64, rwc: u64, purpose: Purpose, page_type: PageType, locked: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !task_passes(pid_tgid) {
        return;
    }
    // Thread 0 (the idle tasks) owns no in-flight state (inflight.rs).
    if pid_tgid as u32 == 0 {
        bump(Counter::InflightFull as u32);
        return;
    }
    // SAFETY: a helper call without arguments; it only reads the clock.
    let start_ns = unsafe { bpf_ktime_get_ns() };
    // The purpose is kept in the in-flight state: a value read back from a map is a number to
    // the verifier, whatever the hook's load was typed as (newer kernels type a function
    // pointer read through BTF as untrusted memory, on which no arithmetic is allowed).
    let rmap_one = match purpose {
        Purpose::Read(v) => v,
        Purpose::Probe => probe_purpose(rwc),
    };
    let owner = inflight_owner(pid_tgid as u32, start_ns);
    let fill = |st: *mut Inflight| {
        // SAFETY: `st` is the state this start stores (`Table::store`): writable, this thread's.
        // The zeros are volatile stores: adjacent zero stores are merged by LLVM into a call to
        // `memset`, a BPF-to-BPF call to a byte loop (about a hundred instructions per walk).
        unsafe {
            (*st).start_ns = start_ns;
            (*st).folio = folio;
            (*st).rwc = rwc;
            core::ptr::write_volatile(&raw mut (*st).switched_out_ns, 0);
            core::ptr::write_volatile(&raw mut (*st).offcpu_ns, 0);
            (*st).kind = Inflight::kind(page_type as u32, locked);
            core::ptr::write_volatile(&raw mut (*st).stall_waits, 0);
            (*st).rmap_one = rmap_one;
        }
    };
    match T::store(owner, fill) {
        inflight::Stored::Free => {}
        inflight::Stored::Own => bump(Counter::Overlapping as u32),
        inflight::Stored::Evicted => bump(Counter::InflightEvicted as u32),
        inflight::Stored::Full => bump(Counter::InflightFull as u32),
    }
}

/// The walk in flight on this thread ends. With `check`, its folio and rwc must be those of
/// the start (the tracepoint pair and fexit pass them; a kretprobe cannot).
#[inline(always)]
pub fn end<T: Table, C: EbpfContext>(ctx: &C, folio: u64, rwc: u64, check: bool, source: Source) {
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let Some(slot) = T::find(tid) else {
        if task_passes(pid_tgid) {
            bump(Counter::Unpaired as u32);
        }
        return;
    };
    // Fields are read as they are needed, before the state is freed: a walk that sends no
    // record reads five of them.
    // SAFETY: this thread's state, read before it is freed.
    let (start_ns, started_folio, started_rwc) = unsafe { ((*slot).start_ns, (*slot).folio, (*slot).rwc) };
    if check && (started_folio != folio || started_rwc != rwc) {
        T::release(slot, tid);
        // Rare by construction (walks do not nest); say which walk so it can be chased. Only
        // the saved (scalar) addresses: fexit arguments are typed BTF pointers, and the log
        // encoder's shifts on them are rejected by the verifier.
        warn!(
            ctx,
            "unpaired walk end: started folio {:x} rwc {:x}", started_folio, started_rwc
        );
        bump(Counter::Unpaired as u32);
        return;
    }
    let mut walk = Walk {
        start_ns,
        duration_ns: now.saturating_sub(start_ns),
        folio: started_folio,
        rwc: started_rwc,
        // SAFETY: as above.
        rmap_one: unsafe { (*slot).rmap_one },
        // SAFETY: as above.
        page_type: PageType::from_u32(Inflight::page_type_of(unsafe { (*slot).kind })),
        locked: 0,
        offcpu_ns: 0,
        flags: 0,
        stall_waits: 0,
        source,
    };
    if !account(&mut walk) {
        T::release(slot, tid);
        return;
    }
    // SAFETY: as above.
    unsafe {
        walk.locked = Inflight::locked_of((*slot).kind);
        walk.offcpu_ns = (*slot).offcpu_ns;
        walk.stall_waits = (*slot).stall_waits;
    }
    walk.flags = offcpu_flag(start_ns);
    T::release(slot, tid);
    send(pid_tgid, &walk);
}

/// `FLAG_OFFCPU_VALID` when the `sched_switch` hook was attached before the walk began at
/// `start_ns` (then it saw its every switch).
#[inline(always)]
fn offcpu_flag(start_ns: u64) -> u32 {
    match OFFCPU_ON.get(0) {
        Some(&on) if on != 0 && start_ns >= on => FLAG_OFFCPU_VALID,
        _ => 0,
    }
}

/// A walk that ended, as its record needs it.
struct Walk {
    start_ns: u64,
    duration_ns: u64,
    folio: u64,
    rwc: u64,
    rmap_one: u64,
    page_type: PageType,
    locked: u32,
    offcpu_ns: u64,
    flags: u32,
    stall_waits: u32,
    source: Source,
}

/// A whole walk reported by the v4 tracepoint, which carries its own duration.
#[inline(always)]
pub fn whole(folio: u64, rwc: u64, duration_ns: u64, page_type: PageType, locked: u32, source: Source) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !task_passes(pid_tgid) {
        return;
    }
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut walk = Walk {
        start_ns: now.saturating_sub(duration_ns),
        duration_ns,
        folio,
        rwc,
        rmap_one: probe_purpose(rwc),
        page_type,
        locked,
        offcpu_ns: 0,
        flags: 0,
        stall_waits: 0,
        source,
    };
    if account(&mut walk) {
        send(pid_tgid, &walk);
    }
}

#[inline(always)]
fn classify(folio: u64) -> PageType {
    let at = folio + FOLIO_MAPPING_OFF.load() as u64;
    // SAFETY: bpf_probe_read_kernel checks the address.
    match unsafe { bpf_probe_read_kernel(at as *const u64) } {
        Ok(mapping) => PageType::from_mapping(mapping),
        Err(_) => PageType::Unknown,
    }
}

/// Counts a walk that ended: its page type classified if the hook did not know it, the
/// filters, its latency histogram. Whether a record of it is wanted (`--min-duration-us`).
#[inline(always)]
fn account(walk: &mut Walk) -> bool {
    if walk.page_type == PageType::Unknown {
        walk.page_type = classify(walk.folio);
    }
    if FILTERS.load() & (filters::TYPES | filters::CGROUP) != 0
        && (TYPE_MASK.load() & walk.page_type.mask_bit() == 0 || !owner::passes(walk.folio))
    {
        bump(Counter::Filtered as u32);
        return false;
    }
    // The walks seen and the log2 histograms are userspace's, derived from the latency
    // histograms (their buckets split each power of two evenly) plus `HistFull`
    // (rmap-user/src/counters.rs): nothing else is counted per walk for them.
    // Every walk that passed the filters is counted here, before `--min-duration-us` and the
    // ring buffer: the summary's percentiles come from these histograms.
    count_latency(walk.rmap_one, walk.page_type, walk.duration_ns);
    walk.duration_ns >= MIN_DURATION_NS.load()
}

/// Sends the record of a walk through the ring buffer (or counts it dropped).
#[inline(always)]
fn send(pid_tgid: u64, walk: &Walk) {
    let Some(mut entry) = EVENTS.reserve::<WalkEvent>(0) else {
        bump(Counter::RingbufDrops as u32);
        return;
    };
    // Only for walks sent as records: counting a walk needs none of this.
    let (cgroup_id, owner_flag) = match owner::owner(walk.folio) {
        Some(id) => (id, FLAG_OWNER_VALID),
        None => (0, 0),
    };
    let task = owner::task();
    let e = entry.as_mut_ptr();
    // Field by field, the names read by the helpers straight into the record: a record built
    // on the stack and copied, or a zeroed name buffer, makes LLVM call `memset`/`memcpy`, BPF
    // subprograms looping over bytes.
    // SAFETY: `e` is the reserved record, writable until it is submitted.
    unsafe {
        (*e).start_ns = walk.start_ns;
        (*e).duration_ns = walk.duration_ns;
        (*e).offcpu_ns = walk.offcpu_ns;
        (*e).folio = walk.folio;
        (*e).rwc = walk.rwc;
        (*e).rmap_one = walk.rmap_one;
        (*e).pid = pid_tgid as u32;
        (*e).tgid = (pid_tgid >> 32) as u32;
        (*e).cpu = bpf_get_smp_processor_id();
        (*e).page_type = walk.page_type as u32;
        (*e).locked = walk.locked;
        (*e).source = walk.source as u32;
        (*e).flags = walk.flags | owner_flag | owner::kthread_flag(task);
        (*e).stall_waits = walk.stall_waits;
        (*e).cgroup_id = cgroup_id;
        // The helper zeroes the name when it fails.
        generated::bpf_get_current_comm((&raw mut (*e).comm).cast(), 16);
        owner::process_comm_into(task, &raw mut (*e).process);
    }
    // A wakeup per record costs an irq_work and a switch to the reader per walk
    // (kernel/bpf/ringbuf.c: `bpf_ringbuf_commit`); the reader drains on a timer instead, and
    // is woken once a quarter of the ring is waiting. One record in `WAKE_CHECK_MASK + 1` looks
    // (`bpf_ringbuf_query`, a helper call), picked by a sequence on a plain array (inlined, no
    // helper): while the reader lags, every such record wakes it.
    let wake = match RECORDS.get_ptr_mut(RECORDS_WAKE_SEQ).map(next) {
        Some(seq)
            if seq & WAKE_CHECK_MASK.load() == 0
                && EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES.load() =>
        {
            BPF_RB_FORCE_WAKEUP
        }
        _ => BPF_RB_NO_WAKEUP,
    };
    entry.submit(wake as u64);
    if let Some(sent) = RECORDS.get_ptr_mut(RECORDS_SENT) {
        add_one(sent);
    }
}

/// Adds a walk to the log-linear histogram of its (purpose, page type); `HistFull` counts walks
/// whose purpose found no slot (so that walks seen = the histograms' total + `HistFull`).
#[inline(always)]
fn count_latency(rmap_one: u64, page_type: PageType, duration_ns: u64) {
    let Some(slot) = purpose::slot(rmap_one) else {
        bump(Counter::HistFull as u32);
        return;
    };
    let Some(hist) = LATENCY.get_ptr_mut(hist_index(slot, page_type as u32)) else {
        bump(Counter::HistFull as u32);
        return;
    };
    let b = hist_bucket(duration_ns) as usize;
    // An explicit bound the verifier sees, whatever LLVM does with `hist_bucket`'s own clamp.
    if b >= HIST_BUCKETS {
        return;
    }
    // SAFETY: `hist` points to a LatencyHist value; `b` is in bounds (checked above).
    add_one(unsafe { (*hist).buckets.as_mut_ptr().add(b) });
}
