//! Who waited for a walk (`--stalls`), from `lock:contention_begin`/`contention_end` as raw
//! tracepoints (`TP_PROTO(void *lock, unsigned int flags)` and `(void *lock, int ret)`,
//! include/trace/events/lock.h). Both fire for every contended lock of the system, so what
//! is not a plain rwsem is left at once, by its flags.
//!
//! A wait counts as a stall by a walk when the rwsem is reader-owned and its recorded owner
//! (`sem->owner`, the last reader: kernel/locking/rwsem.c `__rwsem_set_reader_owned`) is a
//! thread with a walk in flight (`inflight.rs`). What this cannot see: a second reader holding
//! the lock beside the walker (only the last reader is recorded), and the optimistic spinning
//! a writer does before it sleeps (`rwsem_down_write_slowpath` spins, then traces the wait).
//!
//! A wait on a writer-owned rwsem whose writer is itself waiting for a walk (`WAITING`) is
//! that walk's too, marked `STALL_CHAINED`: `mmap_lock` held by a thread in `mprotect` that
//! waits for the walk's `anon_vma` lock stalls every thread of the process that maps memory
//! or faults meanwhile.
use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use rmap_common::{
    HIST_BUCKETS, Inflight, hist_bucket,
    stall::{
        LCB_F_READ, LCB_F_WRITE, LCB_NOT_RWSEM, RWSEM_OWNER_FLAGS_MASK, RWSEM_READER_OWNED, STALL_CHAINED,
        StallCounter, StallEvent, Waiting,
    },
};

use crate::{
    config::STALL_LAYOUT,
    inflight::{Slots, Table},
    maps::{STALL_HIST, STALLS, WAITING, add_one, bump_stall, waits_open, waits_open_add},
    owner,
};

#[inline(always)]
fn read<T>(addr: u64) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

#[raw_tracepoint(tracepoint = "contention_begin")]
pub fn contention_begin(ctx: RawTracePointContext) -> i32 {
    let lock: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    let flags = flags as u32;
    if flags & (LCB_F_READ | LCB_F_WRITE) == 0 || flags & LCB_NOT_RWSEM != 0 {
        return 0;
    }
    let l = STALL_LAYOUT.load();
    let Some(sem_owner) = read::<u64>(lock + l.rwsem_owner as u64) else {
        return 0;
    };
    let task = sem_owner & !RWSEM_OWNER_FLAGS_MASK;
    let Some(holder) = read::<u32>(task + l.task_pid as u64) else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = pid_tgid as u32;
    if holder == pid {
        // The walker waits to read again behind a queued writer: it is the one stalled, by
        // that writer; not a stall the walk causes.
        return 0;
    }
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let waiting = if sem_owner & RWSEM_READER_OWNED != 0 {
        // Reader-owned: its last reader may be a walk in flight.
        let Some(walk) = Slots::find(holder) else {
            bump_stall(StallCounter::Others);
            return 0;
        };
        // SAFETY: a valid map value; the counter is added to atomically (the walker's CPU
        // may be reading the entry at its end).
        let (walk_start_ns, page_type) = unsafe {
            add_one_u32(&raw mut (*walk).stall_waits);
            ((*walk).start_ns, Inflight::page_type_of((*walk).kind))
        };
        Waiting {
            start_ns: now,
            walk_start_ns,
            lock,
            walker_pid: holder,
            walker_tgid: read::<u32>(task + l.task_tgid as u64).unwrap_or(0),
            lock_flags: flags,
            page_type,
            flags: 0,
            _pad: 0,
            walker_comm: read::<[u8; 16]>(task + l.task_comm as u64).unwrap_or([0; 16]),
        }
    } else {
        // Writer-owned: walks only read, but the writer may itself be waiting for one.
        let Some(ahead) = WAITING.get_ptr(&holder) else {
            bump_stall(StallCounter::Others);
            return 0;
        };
        // SAFETY: a valid map value, copied.
        let ahead = unsafe { *ahead };
        if ahead.walker_pid == pid {
            // The walker itself, behind a victim that has just taken the lock (its wait's
            // end not yet traced): as above, not a stall the walk causes.
            return 0;
        }
        if let Some(walk) = Slots::find(ahead.walker_pid) {
            // Only if it is still that walk: the walker may have begun its next one.
            // SAFETY: as above.
            unsafe {
                if (*walk).start_ns == ahead.walk_start_ns {
                    add_one_u32(&raw mut (*walk).stall_waits);
                }
            }
        }
        Waiting {
            start_ns: now,
            lock,
            lock_flags: flags,
            flags: STALL_CHAINED,
            ..ahead
        }
    };
    // A new entry opens the gate of `contention_end`; one left by a wait whose end was missed
    // (rare) is overwritten without counting it twice. Either insert may evict another wait's
    // entry (kernel/bpf/hashtab.c `htab_lru_map_update_elem` takes a free element first): the
    // count then stays too high, which costs lookups, never a wait.
    if WAITING.insert(&pid, &waiting, u64::from(BPF_NOEXIST)).is_ok() {
        waits_open_add(1);
    } else if WAITING.insert(&pid, &waiting, u64::from(BPF_ANY)).is_err() {
        bump_stall(StallCounter::Unpaired);
        return 0;
    }
    bump_stall(StallCounter::Waits);
    0
}

#[raw_tracepoint(tracepoint = "contention_end")]
pub fn contention_end(ctx: RawTracePointContext) -> i32 {
    // No wait of a walk in progress anywhere (nearly always): no lookup.
    if !waits_open() {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = pid_tgid as u32;
    // Most ends are of waits that were no stall: nothing to find, nothing to do.
    let Some(w) = WAITING.get_ptr(&pid) else {
        return 0;
    };
    // SAFETY: a valid map value, copied before the entry is removed.
    let w = unsafe { *w };
    let lock: u64 = ctx.arg(0);
    if lock != w.lock {
        // The end of another lock's wait inside this one: the rwsem slow paths take the
        // rwsem's `wait_lock` spinlock while waiting, and its contention is traced too.
        return 0;
    }
    if WAITING.remove(&pid).is_err() {
        bump_stall(StallCounter::Unpaired);
        return 0;
    }
    waits_open_add(u64::MAX);
    let ret: u64 = ctx.arg(1);
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let wait_ns = now.saturating_sub(w.start_ns);
    count_wait(wait_ns);
    let Some(mut entry) = STALLS.reserve::<StallEvent>(0) else {
        bump_stall(StallCounter::Drops);
        return 0;
    };
    let task = owner::task();
    entry.write(StallEvent {
        start_ns: w.start_ns,
        wait_ns,
        walk_start_ns: w.walk_start_ns,
        lock,
        pid,
        tgid: (pid_tgid >> 32) as u32,
        walker_pid: w.walker_pid,
        walker_tgid: w.walker_tgid,
        lock_flags: w.lock_flags,
        page_type: w.page_type,
        ret: ret as i32,
        flags: owner::kthread_flag(task) | w.flags,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        process: owner::process_comm(task),
        walker_comm: w.walker_comm,
        // SAFETY: a helper call without arguments: the current task's cgroup v2 id.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    });
    // The reader drains this ring on its timer: a wakeup per wait would add a switch to it.
    entry.submit(BPF_RB_NO_WAKEUP as u64);
    0
}

/// Adds a wait to the stall histogram (the source of `rmap_walk_stall_seconds`).
#[inline(always)]
fn count_wait(wait_ns: u64) {
    let Some(hist) = STALL_HIST.get_ptr_mut(0) else {
        return;
    };
    let b = hist_bucket(wait_ns) as usize;
    // An explicit bound the verifier sees.
    if b >= HIST_BUCKETS {
        return;
    }
    // SAFETY: this CPU's histogram; `b` is in bounds (checked above).
    add_one(unsafe { (*hist).buckets.as_mut_ptr().add(b) });
}

/// Adds one to a u32 atomically (`lock *(u32 *)(r + off) += r`).
#[inline(always)]
fn add_one_u32(slot: *mut u32) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: callers pass an aligned u32 of a map value, valid while the map lives.
    unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(slot, 1) };
}
