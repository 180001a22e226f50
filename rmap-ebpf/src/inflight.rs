//! Walks in flight, by thread. A walk starts and ends on one thread and walks do not nest, so
//! the table only has to find the state a thread stored. Two tables, each program built for
//! one of them ([`Table`]); userspace loads the programs of the table the kernel supports:
//!
//! - **[`Slots`]**, the array `INFLIGHT`, where the kernel's BPF has compare-and-swap: an
//!   open-addressed table in a plain `Array`, whose lookups the verifier inlines
//!   (kernel/bpf/arraymap.c `array_map_gen_lookup`): a start and an end cost no map helper call
//!   and take no lock, where an LRU hash update takes the LRU and bucket locks
//!   (kernel/bpf/hashtab.c `htab_lru_map_update_elem`) and a delete the bucket lock again.
//!   A thread's slots are `tid % slots` and the [`PROBES`] − 1 after it (slots: a power of two).
//!   A slot's `owner` word holds the thread id and the start time in units of 2^20 ns
//!   (`rmap_common::inflight_owner`; 0: free), and every change of owner is a compare-and-swap
//!   of that word, so a slot has one owner at a time: a start claims a free slot, the end frees
//!   its own, and a start takes over a slot whose word says it is older than
//!   `INFLIGHT_STALE_NS` (a walk whose end was never seen: a return hook attached after the walk
//!   began, a kretprobe miss; `InflightEvicted`). A start whose slots are all held by live walks
//!   is not measured (`InflightFull`), and its end finds no slot (`Unpaired`).
//! - **[`Hashed`]**, the LRU hash `INFLIGHT_TIDS` keyed by thread id, where it has none
//!   (`BPF_CMPXCHG` came after the ring buffer, and a kernel without it rejects a program that
//!   merely contains the instruction): helper calls instead of inlined lookups, the hash's locks
//!   instead of compare-and-swap; a start whose end was never seen is evicted by the LRU.
//!
//! Thread 0 (the idle tasks) never walks and owns no state, so that a lookup for it
//! (`sched_switch` into idle) cannot match a free slot.
use aya_ebpf::bindings::{BPF_ANY, BPF_NOEXIST};
use rmap_common::{INFLIGHT_TIME_SHIFT, Inflight};

use crate::{
    config::{INFLIGHT_MASK, INFLIGHT_STALE_NS},
    maps::{INFLIGHT, INFLIGHT_TIDS, compare_swap},
};

/// An in-flight table.
pub trait Table {
    /// Stores the state of a walk starting on this thread: its owner word `owner`
    /// (`inflight_owner(tid, start)`, `tid` not 0), the other fields written by `fill`.
    fn store(owner: u64, fill: impl FnOnce(*mut Inflight)) -> Stored;
    /// The state of the walk in flight on thread `tid` (not 0), if it has one.
    fn find_nonzero(tid: u32) -> Option<*mut Inflight>;
    /// Frees the state `s` of a walk of thread `tid` that ended, after its fields were read.
    fn release(s: *mut Inflight, tid: u32);

    /// [`Table::find_nonzero`], and nothing for thread 0.
    #[inline(always)]
    fn find(tid: u32) -> Option<*mut Inflight> {
        if tid == 0 { None } else { Self::find_nonzero(tid) }
    }
}

/// The array claimed by compare-and-swap.
pub struct Slots;

/// The LRU hash by thread id.
pub struct Hashed;

impl Table for Hashed {
    #[inline(always)]
    fn store(owner: u64, fill: impl FnOnce(*mut Inflight)) -> Stored {
        let tid = owner as u32;
        let mut state = core::mem::MaybeUninit::<Inflight>::zeroed();
        fill(state.as_mut_ptr());
        // SAFETY: zeroed, then filled: every field of this plain struct is initialized.
        let mut state = unsafe { state.assume_init() };
        state.owner = owner;
        if INFLIGHT_TIDS.insert(&tid, &state, u64::from(BPF_NOEXIST)).is_ok() {
            return Stored::Free;
        }
        // The thread's earlier start is still there (its end was never seen): replaced.
        match INFLIGHT_TIDS.insert(&tid, &state, u64::from(BPF_ANY)) {
            Ok(()) => Stored::Own,
            Err(_) => Stored::Full,
        }
    }

    #[inline(always)]
    fn find_nonzero(tid: u32) -> Option<*mut Inflight> {
        INFLIGHT_TIDS.get_ptr_mut(&tid)
    }

    #[inline(always)]
    fn release(_s: *mut Inflight, tid: u32) {
        // Removing an entry the LRU already evicted fails harmlessly.
        let _ = INFLIGHT_TIDS.remove(&tid);
    }
}

impl Table for Slots {
    /// The other fields are written in the slot itself once it is claimed (its owner word is
    /// already `owner`, and no one takes a slot this young). The contention hook may have found
    /// the slot's previous walk just before it ended and add to `stall_waits` now: such a late
    /// add lands on this walk or is overwritten here (rare; a stall then counts in the
    /// histograms, not per walk).
    #[inline(always)]
    fn store(owner: u64, fill: impl FnOnce(*mut Inflight)) -> Stored {
        let (stored, slot) = claim(owner);
        if let Some(s) = slot {
            fill(s);
        }
        stored
    }

    #[inline(always)]
    fn find_nonzero(tid: u32) -> Option<*mut Inflight> {
        find_word(tid).map(|(s, _)| s)
    }

    /// Only if this thread still owns the slot (a walk older than the stale age may have been
    /// taken over meanwhile; that slot is then its new owner's). The swap orders the reads
    /// before the slot is seen free.
    #[inline(always)]
    fn release(s: *mut Inflight, tid: u32) {
        let word = owner_of(s);
        if word != 0 && word as u32 == tid {
            swap_owner(s, word, 0);
        }
    }
}

/// Slots a thread may use, from `tid % slots` on: with k walks in flight in a table of n
/// slots, a start finds all of its slots taken with a probability of about (k/n)^PROBES.
const PROBES: u32 = 4;

/// Where a start was stored.
pub enum Stored {
    /// A free slot (or a new hash entry).
    Free,
    /// This thread's own slot, still held by a start whose end was never seen.
    Own,
    /// Another thread's slot, older than the stale age: that start's end was never seen.
    Evicted,
    /// Not stored: every slot of the thread is held by a live walk (or the thread is 0).
    Full,
}

/// Slot `probe` of thread `tid`'s slots; `mask` is `INFLIGHT_MASK`, read once by the caller
/// (a global's load is volatile: LLVM would read it again for every slot).
#[inline(always)]
fn slot(tid: u32, probe: u32, mask: u32) -> Option<*mut Inflight> {
    // The table has a power of two of slots: a mask, where `%` was two divisions per slot
    // looked at (up to twelve per walk start).
    INFLIGHT.get_ptr_mut(tid.wrapping_add(probe) & mask)
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

/// Claims a slot of the array for the walk whose owner word is `me` (its thread not 0), in one
/// pass over the thread's slots: the first that is free, or that its own thread holds (a start
/// whose end was never seen: replaced). Failing that, one held past the stale age. The slot's
/// owner word is then `me`; the caller fills the other fields. (A thread's stale slot after a
/// free one stays until it is taken over as stale: its walk ends were missed anyway.)
#[inline(always)]
fn claim(me: u64) -> (Stored, Option<*mut Inflight>) {
    let tid = me as u32;
    let mask = INFLIGHT_MASK.load();
    for probe in 0..PROBES {
        let Some(s) = slot(tid, probe, mask) else {
            return (Stored::Full, None);
        };
        let word = owner_of(s);
        if word == 0 && swap_owner(s, 0, me) {
            return (Stored::Free, Some(s));
        }
        if word != 0 && word as u32 == tid && swap_owner(s, word, me) {
            return (Stored::Own, Some(s));
        }
    }
    let stale = INFLIGHT_STALE_NS.load() >> INFLIGHT_TIME_SHIFT;
    let now = (me >> 32) as u32;
    for probe in 0..PROBES {
        let Some(s) = slot(tid, probe, mask) else {
            return (Stored::Full, None);
        };
        let word = owner_of(s);
        // The age is read from the same word the swap compares: a slot claimed again
        // meanwhile has another word, and the swap fails.
        let age = now.wrapping_sub((word >> 32) as u32);
        if word != 0 && u64::from(age) > stale && swap_owner(s, word, me) {
            return (Stored::Evicted, Some(s));
        }
    }
    (Stored::Full, None)
}

/// The array slot of the walk in flight on thread `tid` and its owner word, if it has one.
#[inline(always)]
fn find_word(tid: u32) -> Option<(*mut Inflight, u64)> {
    let mask = INFLIGHT_MASK.load();
    for probe in 0..PROBES {
        let s = slot(tid, probe, mask)?;
        let word = owner_of(s);
        if word != 0 && word as u32 == tid {
            return Some((s, word));
        }
    }
    None
}
