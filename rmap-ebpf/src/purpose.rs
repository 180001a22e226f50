//! A walk's purpose (`rwc->rmap_one`: `try_to_unmap_one`, `try_to_migrate_one`, …) as a small
//! slot number, so that its histograms are array entries (`maps.rs` `LATENCY`).
//!
//! Slots live in `PURPOSES`, a plain array shared by every CPU (lookups inlined, no helper, no
//! lock). A purpose's slots are `h(rmap_one)` and the ones after it, in turn. The first walk of
//! a purpose claims a free one by inserting it into `PURPOSE_CLAIMS` with `BPF_NOEXIST` (one
//! insert wins), then publishes it in `PURPOSES`; a CPU that lost the insert reads the winner's
//! purpose there, so two CPUs meeting a new purpose at once end up in the same slot. Slots are
//! never freed: purposes are functions of the kernel, a handful, and `PURPOSE_SLOTS` leaves
//! room.
use aya_ebpf::bindings::BPF_NOEXIST;
use rmap_common::{PURPOSE_SLOTS, PURPOSE_UNREADABLE};

use crate::{
    config::TEXT_START,
    maps::{PURPOSE_CLAIMS, PURPOSES},
};

/// The slot counting walks of purpose `rmap_one`, claimed if it has none yet; `None` when
/// every slot belongs to another purpose.
#[inline(always)]
pub fn slot(rmap_one: u64) -> Option<u32> {
    // Below the kernel's text (stack, direct-map and vmalloc addresses, small numbers on
    // x86-64), `rmap_one` is no callback but a stale read: it would hold a slot for good.
    let purpose = if rmap_one == 0 || rmap_one < TEXT_START.load() {
        PURPOSE_UNREADABLE
    } else {
        rmap_one
    };
    // Functions are 16-byte aligned (x86 `-falign-functions`): their low bits say nothing.
    let first = (purpose >> 4) as u32 ^ (purpose >> 12) as u32;
    for probe in 0..PURPOSE_SLOTS {
        let index = first.wrapping_add(probe) & (PURPOSE_SLOTS - 1);
        let at = PURPOSES.get_ptr_mut(index)?;
        // SAFETY: a value of `PURPOSES`; an aligned u64 load is not torn.
        let held = unsafe { core::ptr::read_volatile(at) };
        if held == purpose || (held == 0 && claim(index, at, purpose)) {
            return Some(index);
        }
    }
    None
}

/// Claims the free slot `index` (its `PURPOSES` entry at `at`) for `purpose`: true when this
/// purpose holds it now, whether this CPU's insert won or another CPU's insert of the same
/// purpose did.
#[inline(always)]
fn claim(index: u32, at: *mut u64, purpose: u64) -> bool {
    if PURPOSE_CLAIMS
        .insert(&index, &purpose, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        // SAFETY: a value of `PURPOSES`; an aligned u64 store is not torn.
        unsafe { core::ptr::write_volatile(at, purpose) };
        return true;
    }
    PURPOSE_CLAIMS.get_ptr(&index).is_some_and(|p| {
        // SAFETY: the claim's value; claims are never removed.
        unsafe { *p == purpose }
    })
}
