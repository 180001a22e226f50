//! Latency buckets: the log-linear buckets the kernel counts walks in, their bounds and
//! midpoints, the log2 buckets userspace folds them into, and the keys of the histograms.

use crate::event::PAGE_TYPES;

/// Buckets per page type of the log2 histograms (derived in userspace from the latency
/// histograms): bucket `i` counts durations `d` (ns) with `floor(log2(d)) == i` (bucket 0 also
/// holds `d == 0`).
pub const LOG2_BUCKETS: usize = 64;

/// Index of a duration in the log2 histogram (userspace folds the latency buckets into these).
pub const fn log2_bucket(ns: u64) -> u32 {
    // checked_ilog2 is None only for 0, which shares bucket 0 with 1.
    match ns.checked_ilog2() {
        Some(b) => b,
        None => 0,
    }
}

/// Sub-buckets per power of two of the latency histograms, as a power of two: 2^4 = 16 linear
/// sub-buckets, so a bucket spans at most 1/16 of its lower bound.
pub const HIST_SUB_BITS: u32 = 4;
/// Linear sub-buckets per power of two.
pub const HIST_SUB: u64 = 1 << HIST_SUB_BITS;
/// Highest power of two with its own buckets: 2^37 ns ≈ 137 s; longer walks share the last bucket.
pub const HIST_MAX_EXP: u32 = 37;
/// Buckets of one latency histogram: values below `2 * HIST_SUB` have one bucket each (exact),
/// then `HIST_SUB` per power of two up to `HIST_MAX_EXP`.
pub const HIST_BUCKETS: usize = ((HIST_MAX_EXP - HIST_SUB_BITS + 2) as usize) * HIST_SUB as usize;
/// Largest relative error of a value reported as its bucket's midpoint: half a bucket's width
/// over its lower bound, 1/32 = 3.125%.
pub const HIST_RELATIVE_ERROR: f64 = 0.5 / HIST_SUB as f64;

/// Log-linear bucket of a duration in ns (HDR-like): exact below 32 ns, then 16 linear
/// sub-buckets per power of two; monotonic, and at most `HIST_BUCKETS - 1`.
#[expect(
    clippy::inline_always,
    reason = "runs in the walk and stall hooks: inlined rather than a BPF-to-BPF call for a few instructions"
)]
#[inline(always)]
pub const fn hist_bucket(ns: u64) -> u64 {
    // All in u64: with u32 arithmetic LLVM bounds-checks a zero-extended copy and indexes with
    // the original register, which the verifier then sees as unbounded.
    if ns < HIST_SUB {
        return ns;
    }
    let e = ilog2(ns);
    if e > HIST_MAX_EXP as u64 {
        return HIST_BUCKETS as u64 - 1;
    }
    let sub = (ns >> (e - HIST_SUB_BITS as u64)) - HIST_SUB;
    (e - HIST_SUB_BITS as u64 + 1) * HIST_SUB + sub
}

/// `floor(log2(x))` for `x > 0`, without a branch: BPF has no count-leading-zeros
/// instruction, and LLVM's expansion of `ilog2` (the bits smeared, then counted with three
/// masks and a multiply) or a halving search both cost about sixty instructions per walk. Here
/// the smeared value, `2^(e+1) - 1`, is multiplied by a de Bruijn sequence, whose top six bits
/// are then distinct for every `e`: an index into [`LOG2_BY_DEBRUIJN`].
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call"
)]
#[inline(always)]
const fn ilog2(mut x: u64) -> u64 {
    x |= x >> 1;
    x |= x >> 2;
    x |= x >> 4;
    x |= x >> 8;
    x |= x >> 16;
    x |= x >> 32;
    LOG2_BY_DEBRUIJN[(x.wrapping_mul(DEBRUIJN) >> 58) as usize] as u64
}

/// A de Bruijn sequence B(2, 6): each of its 64 six-bit windows is distinct.
const DEBRUIJN: u64 = 0x03f7_9d71_b4cb_0a89;

/// `e` at the index `((2^(e+1) - 1) * DEBRUIJN) >> 58`, for `e` in 0..64.
const LOG2_BY_DEBRUIJN: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut e = 0;
    while e < 64 {
        let smeared = if e == 63 { u64::MAX } else { (1u64 << (e + 1)) - 1 };
        table[(smeared.wrapping_mul(DEBRUIJN) >> 58) as usize] = e as u8;
        e += 1;
    }
    table
};

/// Lowest duration (ns) of bucket `i` (the inverse of [`hist_bucket`] on bucket bounds).
pub const fn hist_bucket_low(i: u32) -> u64 {
    if (i as u64) < HIST_SUB {
        return i as u64;
    }
    let e = i / HIST_SUB as u32 + HIST_SUB_BITS - 1;
    let sub = (i as u64) % HIST_SUB;
    (HIST_SUB + sub) << (e - HIST_SUB_BITS)
}

/// Width (ns) of bucket `i`: 1 for the exact buckets.
pub const fn hist_bucket_width(i: u32) -> u64 {
    if (i as u64) < HIST_SUB {
        return 1;
    }
    1 << (i / HIST_SUB as u32 - 1)
}

/// Midpoint (ns) of bucket `i`: where a walk known only by its bucket is counted, within
/// [`HIST_RELATIVE_ERROR`] of its duration (the exact buckets: their one duration).
pub const fn hist_bucket_mid(i: u32) -> u64 {
    hist_bucket_low(i) + (hist_bucket_width(i) - 1) / 2
}

/// Which latency histogram: a page type and a purpose (`rwc->rmap_one`; 0 when unreadable).
/// The kernel keeps them in `LATENCY` at [`hist_index`] of the purpose's slot in `PURPOSES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistKey {
    /// `rwc->rmap_one`, the per-VMA callback: which names the purpose.
    pub rmap_one: u64,
    /// [`crate::PageType`] as u32.
    pub page_type: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<HistKey>() == 16);

/// One latency histogram: walk counts by [`hist_bucket`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LatencyHist {
    /// Walks per bucket.
    pub buckets: [u64; HIST_BUCKETS],
}

const _: () = assert!(core::mem::size_of::<LatencyHist>() == HIST_BUCKETS * 8);
const _: () = assert!(HIST_BUCKETS == 560);

/// Purposes (`rwc->rmap_one`) the kernel keeps histograms for: a handful exist
/// (`try_to_unmap_one`, `try_to_migrate_one`, `folio_referenced_one`, `page_mkclean_one`,
/// `remove_migration_pte`, …). A power of two (slots are found by masking).
pub const PURPOSE_SLOTS: u32 = 8;

/// `PURPOSES` holds this for a purpose of 0 (`rmap_one` unreadable): 0 marks a free slot, and
/// no function lives at address 1.
pub const PURPOSE_UNREADABLE: u64 = 1;

/// Histograms (purpose slot × page type) the kernel keeps, preallocated: 32 × 4.4 KiB =
/// 140 KiB.
pub const HIST_KEYS: u32 = PURPOSE_SLOTS * PAGE_TYPES as u32;

/// Index in `LATENCY` of the histogram of purpose slot `slot` and page type `page_type`.
#[expect(
    clippy::inline_always,
    reason = "runs in every eBPF walk end: inlined rather than a BPF-to-BPF call for two instructions"
)]
#[inline(always)]
pub const fn hist_index(slot: u32, page_type: u32) -> u32 {
    slot * PAGE_TYPES as u32 + page_type
}

#[cfg(test)]
mod tests {
    use super::{
        HIST_BUCKETS, HIST_RELATIVE_ERROR, hist_bucket, hist_bucket_low, hist_bucket_width, ilog2,
        log2_bucket,
    };

    /// The de Bruijn `ilog2` agrees with the standard one at every power of two, either side of
    /// it, and at the extremes.
    #[test]
    fn ilog2_by_debruijn() {
        for e in 0..64 {
            let p = 1u64 << e;
            for v in [p, p | (p >> 1), p.saturating_add(p - 1), p + 1] {
                assert_eq!(ilog2(v), u64::from(v.ilog2()), "{v}");
            }
        }
        assert_eq!(ilog2(u64::MAX), 63);
    }

    /// Every value from 0 to past the range maps to a bucket no lower than the previous one, its
    /// bucket's bounds contain it, and the bucket's midpoint is within the stated precision.
    #[test]
    fn hist_buckets_monotonic_and_precise() {
        let mut prev = 0;
        let mut v = 0u64;
        while v < 1 << 39 {
            let b = hist_bucket(v);
            assert!(b >= prev, "{v} ns: bucket {b} < {prev}");
            assert!((b as usize) < HIST_BUCKETS, "{v} ns: bucket {b}");
            prev = b;
            let b = b as u32;
            let (low, width) = (hist_bucket_low(b), hist_bucket_width(b));
            if v < 1 << 38 {
                assert!(low <= v && v < low + width, "{v} ns not in [{low}, +{width})");
                let mid = low as f64 + (width - 1) as f64 / 2.0;
                let err = (mid - v as f64).abs() / v.max(1) as f64;
                assert!(err <= HIST_RELATIVE_ERROR, "{v} ns: midpoint {mid} off by {err}");
            }
            // Dense at first, then a few points per bucket.
            v += 1 + v / 97;
        }
        assert_eq!(hist_bucket(u64::MAX) as usize, HIST_BUCKETS - 1);
        // Every bucket is reachable and the bounds tile the range without gaps.
        for i in 1..HIST_BUCKETS as u32 {
            assert_eq!(
                hist_bucket_low(i - 1) + hist_bucket_width(i - 1),
                hist_bucket_low(i)
            );
            assert_eq!(hist_bucket(hist_bucket_low(i)), u64::from(i));
        }
        // 100 ns … 100 s are inside the range, not in the clamped last bucket.
        assert!((hist_bucket(100_000_000_000) as usize) < HIST_BUCKETS - 1);
    }

    #[test]
    fn log2_buckets() {
        let cases = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 1),
            (1023, 9),
            (1024, 10),
            (u64::MAX, 63),
        ];
        for (ns, bucket) in cases {
            assert_eq!(log2_bucket(ns), bucket, "{ns} ns");
        }
    }
}
