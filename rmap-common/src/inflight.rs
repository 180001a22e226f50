//! The in-flight table: one slot per walk between its start and its end, owned by its thread.

/// State of one walk in flight: a slot of the in-flight table (rmap-ebpf `inflight.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Inflight {
    /// Who holds the slot: [`inflight_owner`] of the walker's thread id and the walk's start;
    /// 0 when the slot is free.
    pub owner: u64,
    /// `bpf_ktime_get_ns()` at the start of the walk.
    pub start_ns: u64,
    /// Kernel address of the folio (matched at the walk's end).
    pub folio: u64,
    /// Kernel address of the `struct rmap_walk_control` (matched at the walk's end).
    pub rwc: u64,
    /// `bpf_ktime_get_ns()` when the thread was switched out, 0 while it runs.
    pub switched_out_ns: u64,
    /// Time switched out so far, in ns.
    pub offcpu_ns: u64,
    /// The walk's purpose (`rwc->rmap_one`), read when it starts; 0 when unreadable.
    pub rmap_one: u64,
    /// [`crate::PageType`] known from the hook (`Unknown`: classify from the folio) and whether the
    /// caller already held the rmap lock, in one word ([`Inflight::kind`]).
    pub kind: u32,
    /// Waits of other threads on a lock this walk holds, so far (`--stalls`; added to
    /// atomically by the contention hook on another CPU).
    pub stall_waits: u32,
}

const _: () = assert!(core::mem::size_of::<Inflight>() == 64);

impl Inflight {
    /// The bit of [`Inflight::kind`] set when the caller held the rmap lock.
    pub const LOCKED: u32 = 1 << 8;

    /// [`Inflight::kind`] of a walk of `page_type` with `locked` (0 or 1).
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk start: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn kind(page_type: u32, locked: u32) -> u32 {
        page_type | (locked << 8)
    }

    /// The page type of a [`Inflight::kind`].
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn page_type_of(kind: u32) -> u32 {
        kind & 0xff
    }

    /// Whether a [`Inflight::kind`] says the caller held the rmap lock (0 or 1).
    #[expect(
        clippy::inline_always,
        reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
    )]
    #[inline(always)]
    pub const fn locked_of(kind: u32) -> u32 {
        (kind >> 8) & 1
    }
}

/// The owner word of an in-flight slot: the thread id in the low 32 bits, the start time in
/// units of 2^20 ns (about a millisecond; `bpf_ktime_get_ns() >> 20`, wrapping every 52 days)
/// in the high 32, so that a start can judge a slot stale and take it over with one
/// compare-and-swap of the word it judged. A shift, not a division by 10^6: BPF has no
/// multiply-high, so LLVM emits a real division for that, on every walk start.
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk start: inlined rather than a BPF-to-BPF call"
)]
#[inline(always)]
pub const fn inflight_owner(tid: u32, start_ns: u64) -> u64 {
    ((start_ns >> INFLIGHT_TIME_SHIFT) << 32) | tid as u64
}

/// The unit of an owner word's start time: 2^20 ns.
pub const INFLIGHT_TIME_SHIFT: u32 = 20;

/// The in-flight table's size for `wanted` slots: the next power of two (1 for 0), so that a
/// slot index is a mask, not a division (`INFLIGHT_MASK` is this minus one).
pub const fn inflight_slots(wanted: u32) -> u32 {
    if wanted <= 1 {
        1
    } else {
        wanted.next_power_of_two()
    }
}

#[cfg(test)]
mod tests {
    use super::{inflight_owner, inflight_slots};

    #[test]
    fn inflight_table_sizes_are_powers_of_two() {
        let sizes = [0, 1, 2, 3, 5, 8192, 8193].map(inflight_slots);
        assert_eq!(sizes, [1, 1, 2, 4, 8, 8192, 16384]);
    }

    #[test]
    fn inflight_owner_words() {
        assert_eq!(inflight_owner(7, 0), 7);
        // 3 units of 2^20 ns (about 3 ms) in the high word, whatever the rest.
        assert_eq!(inflight_owner(7, (3 << 20) + 12_345), (3 << 32) | 7);
    }
}
