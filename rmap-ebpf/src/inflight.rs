//! Walks in flight, by thread: an open-addressed table in a plain `Array` (`INFLIGHT`), not a
//! hash map. A walk starts and ends on one thread and walks do not nest, so the table only has to
//! find the slot a thread claimed. An `Array` lookup is inlined by the verifier
//! (kernel/bpf/arraymap.c `array_map_gen_lookup`): a start and an end cost no map helper call
//! and take no lock, where an LRU hash update takes the LRU and bucket locks
//! (kernel/bpf/hashtab.c `htab_lru_map_update_elem`) and a delete the bucket lock again.
//!
//! A thread's slots are `tid % slots` and the [`PROBES`] − 1 after it (slots: a power of two).
//! A slot's `owner` word holds the thread id and the start time in units of 2^20 ns
//! (`rmap_common::inflight_owner`; 0: free), and
//! every change of owner is a compare-and-swap of that word, so a slot has one owner at a time:
//! a start claims a free slot, the end frees its own, and a start takes over a slot whose word
//! says it is older than `INFLIGHT_STALE_NS` (a walk whose end was never seen: a return hook
//! attached after the walk began, a kretprobe miss; `InflightEvicted`). A start whose slots are
//! all held by live walks is not measured (`InflightFull`), and its end finds no slot
//! (`Unpaired`). Thread 0 (the idle tasks) never walks and owns no slot, so that a lookup for
//! it (`sched_switch` into idle) cannot match a free slot.
use rmap_common::{INFLIGHT_TIME_SHIFT, Inflight};

use crate::{
    config::{INFLIGHT_MASK, INFLIGHT_STALE_NS},
    maps::{INFLIGHT, compare_swap},
};

/// Slots a thread may use, from `tid % slots` on: with k walks in flight in a table of n
/// slots, a start finds all of its slots taken with a probability of about (k/n)^PROBES.
const PROBES: u32 = 4;

/// Where a start was stored.
pub enum Claim {
    /// A free slot.
    Free(*mut Inflight),
    /// This thread's own slot, still held by a start whose end was never seen.
    Own(*mut Inflight),
    /// Another thread's slot, older than the stale age: that start's end was never seen.
    Evicted(*mut Inflight),
    /// Every slot of the thread is held by a live walk (or the thread is 0).
    Full,
}

#[inline(always)]
fn slot(tid: u32, probe: u32) -> Option<*mut Inflight> {
    // The table has a power of two of slots: a mask, where `%` was two divisions per slot
    // looked at (up to twelve per walk start).
    INFLIGHT.get_ptr_mut(tid.wrapping_add(probe) & INFLIGHT_MASK.load())
}

/// Compare-and-swap of a slot's owner word; true when it held `old` and now holds `new`.
#[inline(always)]
fn swap_owner(s: *mut Inflight, old: u64, new: u64) -> bool {
    // SAFETY: `s` is a value of `INFLIGHT`, valid while the map lives.
    compare_swap(unsafe { &raw mut (*s).owner }, old, new)
}

/// The owner word of `s` now.
#[inline(always)]
fn owner_of(s: *mut Inflight) -> u64 {
    // SAFETY: a value of `INFLIGHT`; an aligned u64 load is not torn.
    unsafe { core::ptr::read_volatile(&raw const (*s).owner) }
}

/// Claims a slot for the walk whose owner word is `me` (`inflight_owner(tid, start)`). The
/// slot's owner word is then `me`; the caller fills the other fields.
#[inline(always)]
pub fn claim(me: u64) -> Claim {
    let tid = me as u32;
    if tid == 0 {
        return Claim::Full;
    }
    // A thread's own stale slot comes first: its end was missed, and this start replaces it
    // (unless it was taken over meanwhile: then a free slot is looked for).
    if let Some((s, word)) = find_word(tid)
        && swap_owner(s, word, me)
    {
        return Claim::Own(s);
    }
    for probe in 0..PROBES {
        let Some(s) = slot(tid, probe) else {
            return Claim::Full;
        };
        if swap_owner(s, 0, me) {
            return Claim::Free(s);
        }
    }
    let stale = INFLIGHT_STALE_NS.load() >> INFLIGHT_TIME_SHIFT;
    let now = (me >> 32) as u32;
    for probe in 0..PROBES {
        let Some(s) = slot(tid, probe) else {
            return Claim::Full;
        };
        let word = owner_of(s);
        // The age is read from the same word the swap compares: a slot claimed again
        // meanwhile has another word, and the swap fails.
        let age = now.wrapping_sub((word >> 32) as u32);
        if word != 0 && u64::from(age) > stale && swap_owner(s, word, me) {
            return Claim::Evicted(s);
        }
    }
    Claim::Full
}

/// The slot of the walk in flight on thread `tid` and its owner word, if it has one.
#[inline(always)]
fn find_word(tid: u32) -> Option<(*mut Inflight, u64)> {
    if tid == 0 {
        return None;
    }
    for probe in 0..PROBES {
        let s = slot(tid, probe)?;
        let word = owner_of(s);
        if word != 0 && word as u32 == tid {
            return Some((s, word));
        }
    }
    None
}

/// The slot of the walk in flight on thread `tid`, if it has one.
#[inline(always)]
pub fn find(tid: u32) -> Option<*mut Inflight> {
    find_word(tid).map(|(s, _)| s)
}

/// Frees a slot whose walk ended, after its fields were read: only if this thread still owns it
/// (a walk older than the stale age may have been taken over meanwhile; that slot is then its
/// new owner's). The swap orders the reads before the slot is seen free.
#[inline(always)]
pub fn release(s: *mut Inflight, tid: u32) {
    let word = owner_of(s);
    if word != 0 && word as u32 == tid {
        swap_owner(s, word, 0);
    }
}
