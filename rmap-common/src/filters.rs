//! Bits of `globals::FILTERS`: which filters a run uses.

/// `FILTER_TGID`.
pub const TGID: u32 = 1;
/// `FILTER_COMM`.
pub const COMM: u32 = 1 << 1;
/// `FILTER_PROCESS`.
pub const PROCESS: u32 = 1 << 2;
/// `FILTER_CGROUP`.
pub const CGROUP: u32 = 1 << 3;
/// `TYPE_MASK` other than every type.
pub const TYPES: u32 = 1 << 4;
