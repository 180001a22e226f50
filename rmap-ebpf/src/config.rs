//! Load-time options, set by userspace with `EbpfLoader::override_global` (names in
//! `rmap_common::globals`). Read-only in the kernel, so the verifier can prune on them.
use aya_ebpf::Global;
use rmap_common::{OwnerLayout, TpLayout, stall::StallLayout};

/// `rmap_common::filters` bits of the filters in use.
#[unsafe(no_mangle)]
pub static FILTERS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static FILTER_TGID: Global<u32> = Global::new(0);
/// The comm filter's 16 bytes (userspace writes a `[u8; 16]`), read as two aligned words: a
/// byte array is read byte by byte (`Global::load` is a volatile read), 32 loads per walk
/// start for the two name filters even when both are off.
#[unsafe(no_mangle)]
pub static FILTER_COMM: Global<[u64; 2]> = Global::new([0; 2]);
#[unsafe(no_mangle)]
pub static TYPE_MASK: Global<u32> = Global::new(u32::MAX);
#[unsafe(no_mangle)]
pub static MIN_DURATION_NS: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub static FOLIO_MAPPING_OFF: Global<u32> = Global::new(24);
#[unsafe(no_mangle)]
pub static RWC_RMAP_ONE_OFF: Global<u32> = Global::new(8);
#[unsafe(no_mangle)]
pub static TP_LAYOUT: Global<TpLayout> = Global::new(TpLayout::EMPTY);
#[unsafe(no_mangle)]
pub static SCHED_NEXT_PID_OFF: Global<u32> = Global::new(56);
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: Global<u64> = Global::new(1 << 18);
#[unsafe(no_mangle)]
pub static WAKE_CHECK_MASK: Global<u64> = Global::new(63);
#[unsafe(no_mangle)]
pub static INFLIGHT_MASK: Global<u32> = Global::new(8191);
#[unsafe(no_mangle)]
pub static INFLIGHT_STALE_NS: Global<u64> = Global::new(10_000_000_000);
#[unsafe(no_mangle)]
pub static OWNER_LAYOUT: Global<OwnerLayout> = Global::new(OwnerLayout::EMPTY);
#[unsafe(no_mangle)]
pub static FILTER_CGROUP: Global<u64> = Global::new(0);
/// As `FILTER_COMM`, for the process (thread-group leader's) name.
#[unsafe(no_mangle)]
pub static FILTER_PROCESS: Global<[u64; 2]> = Global::new([0; 2]);
#[unsafe(no_mangle)]
pub static TEXT_START: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub static STALL_LAYOUT: Global<StallLayout> = Global::new(StallLayout::EMPTY);
