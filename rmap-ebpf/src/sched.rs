//! Off-CPU time of walks in flight, from `sched:sched_switch`: a walker switched out (rwsem
//! wait in `anon_vma_lock_read`, `cond_resched` between VMAs) stops its on-CPU clock until it is
//! switched back in. Only threads with a walk in flight (`inflight.rs`) are touched.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    config::SCHED_NEXT_PID_OFF,
    inflight::{Hashed, Slots, Table},
};

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    switched::<Slots>(&ctx)
}

/// `sched_switch` for the programs of the LRU hash in-flight table (inflight.rs).
#[tracepoint(category = "sched", name = "sched_switch")]
pub fn sched_switch_lru(ctx: TracePointContext) -> u32 {
    switched::<Hashed>(&ctx)
}

/// Stops the on-CPU clock of a walk switched out, restarts that of a walk switched in.
#[inline(always)]
fn switched<T: Table>(ctx: &TracePointContext) -> u32 {
    // SAFETY: a helper call without arguments; it only reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // The program runs in the context of `prev`, the task being switched out.
    let prev = bpf_get_current_pid_tgid() as u32;
    if let Some(state) = T::find(prev) {
        // SAFETY: the slot of a walk in flight on that thread (not running meanwhile).
        unsafe { (*state).switched_out_ns = now };
    }
    // SAFETY: read_at uses bpf_probe_read on the record.
    let Ok(next) = (unsafe { ctx.read_at::<i32>(SCHED_NEXT_PID_OFF.load() as usize) }) else {
        return 0;
    };
    if let Some(state) = T::find(next as u32) {
        // SAFETY: the slot of a walk in flight on that thread (not running meanwhile).
        unsafe {
            let out = (*state).switched_out_ns;
            if out != 0 {
                (*state).offcpu_ns += now.saturating_sub(out);
                (*state).switched_out_ns = 0;
            }
        }
    }
    0
}
