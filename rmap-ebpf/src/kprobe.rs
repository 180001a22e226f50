//! kprobe/kretprobe on the walkers (same prototypes as in `fentry.rs`). The kretprobe cannot
//! read arguments, so the entry saves them in the in-flight table and one kretprobe serves every
//! target. Each program exists for both in-flight tables (inflight.rs; `_lru`: the LRU hash).
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use rmap_common::{PageType, Source};

use crate::{
    inflight::{Hashed, Slots},
    walk::{self, Purpose},
};

#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

/// The kprobe programs of one walker, for each in-flight table: `$rwc` is the argument holding
/// `rwc`, `$ty` the page type, `$locked` the lock state (an expression of `ctx`). The `clone`
/// programs are for compiler clones (`rmap_walk_anon.isra.0`, `.constprop.N`, `.part.N`): gcc
/// may have dropped, reordered or specialised the arguments (IPA-SRA, constant propagation), so
/// the registers are not the prototype's. Those read no argument: the walk is counted and
/// timed, its type is the walker's (or classified as unknown), folio, rwc and purpose are
/// unknown; userspace attaches them instead when kallsyms has only a clone
/// (rmap-user/src/attach/targets.rs).
macro_rules! walker {
    ($entry:ident, $entry_lru:ident, $clone:ident, $clone_lru:ident, $rwc:literal, $ty:expr,
     |$ctx:ident| $locked:expr, $clone_locked:literal) => {
        #[kprobe]
        pub fn $entry($ctx: ProbeContext) -> u32 {
            walk::begin::<Slots>(
                arg(&$ctx, 0),
                arg(&$ctx, $rwc),
                Purpose::Probe,
                $ty,
                $locked,
            );
            0
        }

        #[kprobe]
        pub fn $entry_lru($ctx: ProbeContext) -> u32 {
            walk::begin::<Hashed>(
                arg(&$ctx, 0),
                arg(&$ctx, $rwc),
                Purpose::Probe,
                $ty,
                $locked,
            );
            0
        }

        #[kprobe]
        pub fn $clone(_ctx: ProbeContext) -> u32 {
            walk::begin::<Slots>(0, 0, Purpose::Read(0), $ty, $clone_locked);
            0
        }

        #[kprobe]
        pub fn $clone_lru(_ctx: ProbeContext) -> u32 {
            walk::begin::<Hashed>(0, 0, Purpose::Read(0), $ty, $clone_locked);
            0
        }
    };
}

walker!(
    kprobe_ksm,
    kprobe_ksm_lru,
    kprobe_clone_ksm,
    kprobe_clone_ksm_lru,
    1,
    PageType::Ksm,
    |_ctx| 0,
    0
);
walker!(
    kprobe_anon,
    kprobe_anon_lru,
    kprobe_clone_anon,
    kprobe_clone_anon_lru,
    1,
    PageType::Anon,
    |ctx| (arg(&ctx, 2) & 1) as u32,
    0
);
walker!(
    kprobe_file,
    kprobe_file_lru,
    kprobe_clone_file,
    kprobe_clone_file_lru,
    1,
    PageType::File,
    |ctx| (arg(&ctx, 2) & 1) as u32,
    0
);
walker!(
    kprobe_file_inner,
    kprobe_file_inner_lru,
    kprobe_clone_file_inner,
    kprobe_clone_file_inner_lru,
    4,
    PageType::File,
    |ctx| (arg(&ctx, 5) & 1) as u32,
    0
);
walker!(
    kprobe_walk,
    kprobe_walk_lru,
    kprobe_clone_walk,
    kprobe_clone_walk_lru,
    1,
    PageType::Unknown,
    |_ctx| 0,
    0
);
walker!(
    kprobe_walk_locked,
    kprobe_walk_locked_lru,
    kprobe_clone_walk_locked,
    kprobe_clone_walk_locked_lru,
    1,
    PageType::Unknown,
    |_ctx| 1,
    1
);

#[kretprobe]
pub fn kretprobe_walk(ctx: RetProbeContext) -> u32 {
    walk::end::<Slots, _>(&ctx, 0, 0, false, Source::Kprobe);
    0
}

#[kretprobe]
pub fn kretprobe_walk_lru(ctx: RetProbeContext) -> u32 {
    walk::end::<Hashed, _>(&ctx, 0, 0, false, Source::Kprobe);
    0
}
