//! Walks in flight, by thread: an open-addressed table in a plain `Array` (`INFLIGHT`), not a
//! hash map. A walk starts and ends on one thread and walks do not nest, so the table only has to
//! find the slot a thread claimed. An `Array` lookup is inlined by the verifier
//! (kernel/bpf/arraymap.c `array_map_gen_lookup`): a start and an end cost no map helper call
//! and take no lock, where an LRU hash update takes the LRU and bucket locks
//! (kernel/bpf/hashtab.c `htab_lru_map_update_elem`) and a delete the bucket lock again.
//!
//! A thread's slots are `tid % slots` and the [`PROBES`] − 1 after it. A start claims the first
//! free one by compare-and-swap of its `owner` word (0: free), so two CPUs never share a slot;
//! the end finds it by its owner and frees it. What a full table means: a start whose slots
//! are all held by live walks is not measured (`InflightFull`), and its end finds no slot
//! (`Unpaired`). A slot whose end was never seen (a return hook attached after the walk began,
//! a kretprobe miss) is taken over once it is older than `INFLIGHT_STALE_NS` (`InflightEvicted`).
use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xchg};

use rmap_common::Inflight;

use crate::{
    config::{INFLIGHT_SLOTS, INFLIGHT_STALE_NS},
    maps::INFLIGHT,
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
    /// Every slot of the thread is held by a live walk.
    Full,
}

#[inline(always)]
fn slot(tid: u32, probe: u32) -> Option<*mut Inflight> {
    let n = INFLIGHT_SLOTS.load();
    if n == 0 {
        return None;
    }
    INFLIGHT.get_ptr_mut((tid % n + probe) % n)
}

/// Compare-and-swap of a slot's owner word; true when it held `old` and now holds `new`.
#[inline(always)]
fn swap_owner(s: *mut Inflight, old: u64, new: u64) -> bool {
    // SAFETY: `s` is a value of `INFLIGHT`, valid while the map lives; the owner word is an
    // aligned u64 (BPF_ATOMIC BPF_CMPXCHG).
    unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
            &raw mut (*s).owner,
            old,
            new,
        )
        .1
    }
}

/// Claims a slot for a walk of `tid` starting at `now`. The caller fills the slot; its
/// `start_ns` is 0 until then, which no stale check takes for old.
#[inline(always)]
pub fn claim(tid: u32, now: u64) -> Claim {
    let me = u64::from(tid);
    // A thread's own stale slot comes first: its end was missed, and this start replaces it.
    if let Some(s) = find(tid) {
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
    let stale = INFLIGHT_STALE_NS.load();
    for probe in 0..PROBES {
        let Some(s) = slot(tid, probe) else {
            return Claim::Full;
        };
        // SAFETY: a value of `INFLIGHT`; a racing writer at worst makes this start refuse it.
        let (owner, start) = unsafe { ((*s).owner, (*s).start_ns) };
        if owner != 0 && start != 0 && now.saturating_sub(start) > stale && swap_owner(s, owner, me) {
            return Claim::Evicted(s);
        }
    }
    Claim::Full
}

/// The slot of the walk in flight on thread `tid`, if it has one.
#[inline(always)]
pub fn find(tid: u32) -> Option<*mut Inflight> {
    for probe in 0..PROBES {
        let s = slot(tid, probe)?;
        // SAFETY: a value of `INFLIGHT`.
        if unsafe { (*s).owner } == u64::from(tid) {
            return Some(s);
        }
    }
    None
}

/// Frees a slot whose walk ended (after its fields were read): `start_ns` first, so that a
/// start claiming it meanwhile is not taken for stale.
#[inline(always)]
pub fn release(s: *mut Inflight) {
    // SAFETY: a value of `INFLIGHT` owned by this thread. The exchange orders the reads of
    // the walk's fields before the slot is seen free (BPF_ATOMIC BPF_XCHG is fully ordered).
    unsafe {
        (*s).start_ns = 0;
        atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*s).owner, 0);
    }
}
