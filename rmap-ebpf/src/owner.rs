//! Whose memory a walk touched (the folio's memory cgroup) and which process walked, read by
//! following kernel pointers at offsets from BTF (`OWNER_LAYOUT`; Rust eBPF has no CO-RE).
//! Every read goes through `bpf_probe_read_kernel`, so a stale or unexpected pointer costs a
//! failed read (the owner is then unknown), never a fault.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel, generated};
use rmap_common::{
    CGROUP_MAX_DEPTH, FLAG_KTHREAD, MEMCG_DATA_FLAGS, OWNER_FILTER_SET, OwnerLayout, PF_KTHREAD,
};

use crate::{
    config::{FILTER_CGROUP, OWNER_LAYOUT},
    maps::OWNER_FILTER,
};

#[inline(always)]
fn read_u64(addr: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

/// The `struct cgroup_subsys_state` of the memory cgroup `folio` is charged to
/// (`folio_memcg()`, include/linux/memcontrol.h: `memcg_data` without its flag bits).
#[inline(always)]
fn memcg_css(l: &OwnerLayout, folio: u64) -> Option<u64> {
    let data = read_u64(folio + l.folio_memcg_data as u64)?;
    if data == 0 || data & MEMCG_DATA_FLAGS != 0 {
        return None;
    }
    Some((data & !MEMCG_DATA_FLAGS) + l.memcg_css as u64)
}

/// The cgroup id of a css: `css->cgroup->kn->id` (what `cgroup_id()` returns).
#[inline(always)]
fn css_id(l: &OwnerLayout, css: u64) -> Option<u64> {
    let cgroup = read_u64(css + l.css_cgroup as u64)?;
    let kn = read_u64(cgroup + l.cgroup_kn as u64)?;
    read_u64(kn + l.kn_id as u64)
}

/// The id of the memory cgroup `folio` is charged to, if any.
#[inline(always)]
pub fn owner(folio: u64) -> Option<u64> {
    let l = OWNER_LAYOUT.load();
    if !l.has_owner() {
        return None;
    }
    css_id(&l, memcg_css(&l, folio)?)
}

/// Whether `folio`'s cgroup is the `--cgroup` filter's or below it (or, with `--pod` and
/// `--namespace`, one in the `OWNER_FILTER` set or below it): its memory cgroup's ancestors
/// (`css->parent`) are climbed up to `CGROUP_MAX_DEPTH` levels.
#[inline(always)]
pub fn passes(folio: u64) -> bool {
    let want = FILTER_CGROUP.load();
    if want == 0 {
        return true;
    }
    let l = OWNER_LAYOUT.load();
    let Some(mut css) = memcg_css(&l, folio) else {
        return false;
    };
    let set = want == OWNER_FILTER_SET;
    for _ in 0..CGROUP_MAX_DEPTH {
        match css_id(&l, css) {
            Some(id) if id == want => return true,
            Some(id) if set && OWNER_FILTER.get_ptr(id).is_some() => return true,
            _ => {}
        }
        match read_u64(css + l.css_parent as u64) {
            Some(parent) if parent != 0 => css = parent,
            _ => return false,
        }
    }
    false
}

/// The current task, as an address to read from (one helper call: callers that need several
/// of its fields pass it on).
#[inline(always)]
pub fn task() -> u64 {
    // SAFETY: a helper call without arguments.
    unsafe { bpf_get_current_task() }
}

/// The process name of `task` (`task->group_leader->comm`); zero when unreadable.
#[inline(always)]
pub fn process_comm(task: u64) -> [u8; 16] {
    let l = OWNER_LAYOUT.load();
    if !l.has_process() {
        return [0; 16];
    }
    let Some(leader) = read_u64(task + l.task_group_leader as u64) else {
        return [0; 16];
    };
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel((leader + l.task_comm as u64) as *const [u8; 16]) }.unwrap_or([0; 16])
}

/// Writes the process name of `task` (`task->group_leader->comm`) at `dst`; zeros when
/// unreadable. Read straight into `dst` (a ring buffer record's field): a name returned by
/// value is zeroed first with a call to `memset`.
///
/// # Safety
/// `dst` must be writable for 16 bytes.
#[inline(always)]
pub unsafe fn process_comm_into(task: u64, dst: *mut [u8; 16]) {
    let l = OWNER_LAYOUT.load();
    let leader = if l.has_process() {
        read_u64(task + l.task_group_leader as u64)
    } else {
        None
    };
    let Some(leader) = leader else {
        // SAFETY: the caller's `dst`, two aligned words.
        unsafe {
            core::ptr::write_volatile(dst.cast::<u64>(), 0);
            core::ptr::write_volatile(dst.cast::<u64>().add(1), 0);
        }
        return;
    };
    // SAFETY: the helper checks the source address and zeroes `dst` when the read fails.
    unsafe {
        generated::bpf_probe_read_kernel(dst.cast(), 16, (leader + l.task_comm as u64) as *const _);
    }
}

/// `FLAG_KTHREAD` when `task` is a kernel thread.
#[inline(always)]
pub fn kthread_flag(task: u64) -> u32 {
    let l = OWNER_LAYOUT.load();
    if l.task_flags == OwnerLayout::ABSENT {
        return 0;
    }
    // SAFETY: bpf_probe_read_kernel checks the address.
    match unsafe { bpf_probe_read_kernel((task + l.task_flags as u64) as *const u32) } {
        Ok(f) if f & PF_KTHREAD != 0 => FLAG_KTHREAD,
        _ => 0,
    }
}
