//! Types shared by the eBPF programs and the userspace loader.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that the byte layout written by the
//! kernel side is exactly the layout read by userspace; sizes are asserted at compile time.
//!
//! One module per part of that contract, re-exported here: `event` (page types, hooks, the
//! walk event), `counter` (drop and error counters), `hist` (latency buckets and the histogram
//! keys), `inflight` (the in-flight table), `tracepoint` (the classic tracepoints' layout),
//! `owner` (the folio's cgroup and the walker's process), `stall` (lock waits behind a walk);
//! `globals`, `filters` and `maps` name what userspace sets and reads in the object.
#![no_std]
// The public items are the contract between the eBPF object and userspace: each says what it
// holds and in which unit. (Set here, not in Cargo.toml: a member that inherits the workspace's
// lints cannot add its own there.)
#![deny(missing_docs)]

mod counter;
mod event;
pub mod filters;
pub mod globals;
mod hist;
mod inflight;
pub mod maps;
mod owner;
pub mod stall;
mod tracepoint;

pub use counter::{COUNTERS, Counter, RECORDS_SENT, RECORDS_SLOTS, RECORDS_WAKE_SEQ};
pub use event::{FLAG_OFFCPU_VALID, PAGE_TYPES, PageType, Source, WALK_EVENT_SIZE, WalkEvent};
pub use hist::{
    HIST_BUCKETS, HIST_KEYS, HIST_MAX_EXP, HIST_RELATIVE_ERROR, HIST_SUB, HIST_SUB_BITS, HistKey,
    LOG2_BUCKETS, LatencyHist, PURPOSE_SLOTS, PURPOSE_UNREADABLE, hist_bucket, hist_bucket_low,
    hist_bucket_mid, hist_bucket_width, hist_index, log2_bucket,
};
pub use inflight::{INFLIGHT_TIME_SHIFT, Inflight, inflight_owner, inflight_slots};
pub use owner::{
    CGROUP_MAX_DEPTH, FLAG_KTHREAD, FLAG_OWNER_VALID, MEMCG_DATA_FLAGS, OWNER_FILTER_ENTRIES,
    OWNER_FILTER_SET, OwnerLayout, PF_KTHREAD,
};
pub use tracepoint::{TpLayout, page_type_from_str};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: (each) plain #[repr(C)] integers with explicit padding fields, so no implicit
    // padding and no invalid bit patterns; the sizes are asserted where each is defined.
    unsafe impl aya::Pod for super::WalkEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TpLayout {}
    // SAFETY: as above (an array of u64).
    unsafe impl aya::Pod for super::LatencyHist {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Inflight {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OwnerLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::StallLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::StallEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::stall::Waiting {}
}
