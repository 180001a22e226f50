//! kprobe/kretprobe on the walkers (same prototypes as in `fentry.rs`). The kretprobe cannot
//! read arguments, so the entry saves them in the in-flight table and one kretprobe serves every target.
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use rmap_common::{PageType, Source};

use crate::walk::{self, Purpose};

#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

#[kprobe]
pub fn kprobe_ksm(ctx: ProbeContext) -> u32 {
    walk::begin(arg(&ctx, 0), arg(&ctx, 1), PageType::Ksm, 0);
    0
}

#[kprobe]
pub fn kprobe_anon(ctx: ProbeContext) -> u32 {
    walk::begin(
        arg(&ctx, 0),
        arg(&ctx, 1),
        PageType::Anon,
        (arg(&ctx, 2) & 1) as u32,
    );
    0
}

#[kprobe]
pub fn kprobe_file(ctx: ProbeContext) -> u32 {
    walk::begin(
        arg(&ctx, 0),
        arg(&ctx, 1),
        PageType::File,
        (arg(&ctx, 2) & 1) as u32,
    );
    0
}

#[kprobe]
pub fn kprobe_file_inner(ctx: ProbeContext) -> u32 {
    walk::begin(
        arg(&ctx, 0),
        arg(&ctx, 4),
        PageType::File,
        (arg(&ctx, 5) & 1) as u32,
    );
    0
}

#[kprobe]
pub fn kprobe_walk(ctx: ProbeContext) -> u32 {
    walk::begin(arg(&ctx, 0), arg(&ctx, 1), PageType::Unknown, 0);
    0
}

#[kprobe]
pub fn kprobe_walk_locked(ctx: ProbeContext) -> u32 {
    walk::begin(arg(&ctx, 0), arg(&ctx, 1), PageType::Unknown, 1);
    0
}

#[kretprobe]
pub fn kretprobe_walk(ctx: RetProbeContext) -> u32 {
    walk::end(&ctx, 0, 0, Purpose::Probe, false, Source::Kprobe);
    0
}

// Entries for compiler clones (`rmap_walk_anon.isra.0`, `.constprop.N`, `.part.N`): gcc may
// have dropped, reordered or specialised the arguments (IPA-SRA, constant propagation), so the
// registers are not the prototype's. These read no argument: the walk is counted and timed,
// its type is the walker's (or classified as unknown), folio, rwc and purpose are unknown.
// userspace attaches them instead of the ones above when kallsyms has only a clone
// (rmap-user/src/attach/targets.rs).

#[kprobe]
pub fn kprobe_clone_ksm(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::Ksm, 0);
    0
}

#[kprobe]
pub fn kprobe_clone_anon(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::Anon, 0);
    0
}

#[kprobe]
pub fn kprobe_clone_file(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::File, 0);
    0
}

#[kprobe]
pub fn kprobe_clone_file_inner(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::File, 0);
    0
}

#[kprobe]
pub fn kprobe_clone_walk(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::Unknown, 0);
    0
}

#[kprobe]
pub fn kprobe_clone_walk_locked(_ctx: ProbeContext) -> u32 {
    walk::begin(0, 0, PageType::Unknown, 1);
    0
}
