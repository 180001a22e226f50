//! Walk accounting shared by every attach mode: a walk starts (`begin`), ends (`end`), or is
//! reported whole by the v4 tracepoint (`whole`); `end` and `whole` both go through `record`.
//! Filters, counters, histograms and the ring buffer event all happen here, once.
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
};
use aya_log_ebpf::warn;
use rmap_common::{
    Counter, FLAG_OFFCPU_VALID, Inflight, LOG2_BUCKETS, PageType, Source, WalkEvent, log2_bucket,
};

use crate::{
    config::{FILTER_COMM, FILTER_TGID, FOLIO_MAPPING_OFF, MIN_DURATION_NS, RWC_RMAP_ONE_OFF, TYPE_MASK},
    maps::{EVENTS, HIST, INFLIGHT, bump},
};

/// Whether the current task passes the tgid and comm filters.
#[inline(always)]
fn task_passes(pid_tgid: u64) -> bool {
    let want = FILTER_TGID.load();
    if want != 0 && (pid_tgid >> 32) as u32 != want {
        return false;
    }
    let want = FILTER_COMM.load();
    if want[0] == 0 {
        return true;
    }
    match bpf_get_current_comm() {
        // Compare as two words: a byte-array `==` may lower to a memcmp call BPF cannot make.
        Ok(comm) => words(&comm) == words(&want),
        Err(_) => false,
    }
}

#[inline(always)]
fn words(b: &[u8; 16]) -> (u64, u64) {
    let p = b.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes; unaligned reads are fine.
    unsafe { (p.read_unaligned(), p.add(1).read_unaligned()) }
}

/// A walk of `folio` under `rwc` starts on this thread. `page_type` is `Unknown` when the hook
/// does not know it (then it is read from `folio->mapping` at the end).
#[inline(always)]
pub fn begin(folio: u64, rwc: u64, page_type: PageType, locked: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !task_passes(pid_tgid) {
        return;
    }
    let tid = pid_tgid as u32;
    let state = Inflight {
        // SAFETY: a helper call without arguments; it only reads the clock.
        start_ns: unsafe { bpf_ktime_get_ns() },
        folio,
        rwc,
        switched_out_ns: 0,
        offcpu_ns: 0,
        page_type: page_type as u32,
        locked,
    };
    if INFLIGHT.get_ptr(&tid).is_some() {
        bump(Counter::Overlapping as u32);
    }
    if INFLIGHT.insert(&tid, &state, 0).is_err() {
        bump(Counter::InflightFull as u32);
    }
}

/// The walk in flight on this thread ends. With `check`, its folio and rwc must be those of
/// the start (the tracepoint pair and fexit pass them; a kretprobe cannot).
#[inline(always)]
pub fn end<C: EbpfContext>(ctx: &C, folio: u64, rwc: u64, check: bool, source: Source) {
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let Some(state) = INFLIGHT.get_ptr(&tid) else {
        if task_passes(pid_tgid) {
            bump(Counter::Unpaired as u32);
        }
        return;
    };
    // SAFETY: a valid map value; copied before the entry is removed.
    let state = unsafe { *state };
    if INFLIGHT.remove(&tid).is_err() {
        // Raced with nothing (per-thread key), but keep the error visible as unpaired.
        bump(Counter::Unpaired as u32);
    }
    if check && (state.folio != folio || state.rwc != rwc) {
        // Rare by construction (walks do not nest); say which walk so it can be chased. Only
        // the saved (scalar) addresses: fexit arguments are typed BTF pointers, and the log
        // encoder's shifts on them are rejected by the verifier.
        warn!(
            ctx,
            "unpaired walk end: started folio {:x} rwc {:x}", state.folio, state.rwc
        );
        bump(Counter::Unpaired as u32);
        return;
    }
    record(
        pid_tgid,
        state.start_ns,
        now.saturating_sub(state.start_ns),
        state.offcpu_ns,
        FLAG_OFFCPU_VALID,
        state.folio,
        state.rwc,
        PageType::from_u32(state.page_type),
        state.locked,
        source,
    );
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
    record(
        pid_tgid,
        now.saturating_sub(duration_ns),
        duration_ns,
        0,
        0,
        folio,
        rwc,
        page_type,
        locked,
        source,
    );
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

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn record(
    pid_tgid: u64,
    start_ns: u64,
    duration_ns: u64,
    offcpu_ns: u64,
    flags: u32,
    folio: u64,
    rwc: u64,
    page_type: PageType,
    locked: u32,
    source: Source,
) {
    let page_type = match page_type {
        PageType::Unknown => classify(folio),
        known => known,
    };
    if TYPE_MASK.load() & page_type.mask_bit() == 0 {
        bump(Counter::Filtered as u32);
        return;
    }
    bump(Counter::WalksSeen as u32);
    let slot = page_type as u32 * LOG2_BUCKETS as u32 + log2_bucket(duration_ns);
    if let Some(bucket) = HIST.get_ptr_mut(slot) {
        // SAFETY: this CPU's aligned u64 value of HIST (the same caveat as `bump`).
        unsafe { *bucket += 1 };
    }
    if duration_ns < MIN_DURATION_NS.load() {
        return;
    }
    let at = rwc + RWC_RMAP_ONE_OFF.load() as u64;
    // SAFETY: bpf_probe_read_kernel checks the address.
    let rmap_one = unsafe { bpf_probe_read_kernel(at as *const u64) }.unwrap_or(0);
    let Some(mut entry) = EVENTS.reserve::<WalkEvent>(0) else {
        bump(Counter::RingbufDrops as u32);
        return;
    };
    entry.write(WalkEvent {
        start_ns,
        duration_ns,
        offcpu_ns,
        folio,
        rwc,
        rmap_one,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        // SAFETY: a helper call without arguments.
        cpu: unsafe { bpf_get_smp_processor_id() },
        page_type: page_type as u32,
        locked,
        source: source as u32,
        flags,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(0);
    bump(Counter::EventsSent as u32);
}
