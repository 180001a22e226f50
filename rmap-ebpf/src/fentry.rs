//! fentry/fexit on the walkers. One program per target function: a BPF trampoline program is
//! verified against one function's BTF prototype (userspace picks which ones exist).
//!
//! Prototypes (mm/rmap.c, mm/ksm.c): `rmap_walk_ksm(folio, rwc)`,
//! `rmap_walk_anon(folio, rwc, bool locked)`, `rmap_walk_file(folio, rwc, bool locked)`,
//! `__rmap_walk_file(folio, mapping, pgoff_start, nr_pages, rwc, bool locked)` (≥ 6.16),
//! `rmap_walk(folio, rwc)`, `rmap_walk_locked(folio, rwc)`.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use rmap_common::{PageType, Source};

use crate::{
    config::RWC_RMAP_ONE_OFF,
    walk::{self, Purpose},
};

#[inline(always)]
fn flag(v: u64) -> u32 {
    (v & 1) as u32
}

/// `rwc->rmap_one`, the walk's purpose, by a plain load: a trampoline program's pointer
/// arguments are typed by the function's BTF, so the verifier checks the load against
/// `struct rmap_walk_control` (kernel/bpf/btf.c `btf_struct_walk`: a function pointer reads as
/// a number) and the JIT guards it with an exception-table entry (`BPF_PROBE_MEM`), where a
/// `bpf_probe_read_kernel` call would cost a helper call per walk. The offset is a load-time
/// global, a constant to the verifier (`.rodata` is frozen).
#[inline(always)]
fn purpose(rwc: u64) -> Purpose {
    let at = rwc + u64::from(RWC_RMAP_ONE_OFF.load());
    // SAFETY: the verifier allows the load only at a pointer field of the BTF type of `rwc`,
    // and a fault reads 0.
    Purpose::Read(unsafe { core::ptr::read_volatile(at as *const u64) })
}

/// The end of a walk seen by fexit: `rwc` is argument `rwc_arg`.
#[inline(always)]
fn end(ctx: &FExitContext, rwc_arg: usize) {
    let rwc: u64 = ctx.arg(rwc_arg);
    walk::end(ctx, ctx.arg(0), rwc, purpose(rwc), true, Source::Fentry);
}

#[fentry]
pub fn fentry_ksm(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(1), PageType::Ksm, 0);
    0
}

#[fentry]
pub fn fentry_anon(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(1), PageType::Anon, flag(ctx.arg(2)));
    0
}

#[fentry]
pub fn fentry_file(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(1), PageType::File, flag(ctx.arg(2)));
    0
}

#[fentry]
pub fn fentry_file_inner(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(4), PageType::File, flag(ctx.arg(5)));
    0
}

#[fentry]
pub fn fentry_walk(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(1), PageType::Unknown, 0);
    0
}

#[fentry]
pub fn fentry_walk_locked(ctx: FEntryContext) -> i32 {
    walk::begin(ctx.arg(0), ctx.arg(1), PageType::Unknown, 1);
    0
}

#[fexit]
pub fn fexit_ksm(ctx: FExitContext) -> i32 {
    end(&ctx, 1);
    0
}

#[fexit]
pub fn fexit_anon(ctx: FExitContext) -> i32 {
    end(&ctx, 1);
    0
}

#[fexit]
pub fn fexit_file(ctx: FExitContext) -> i32 {
    end(&ctx, 1);
    0
}

#[fexit]
pub fn fexit_file_inner(ctx: FExitContext) -> i32 {
    end(&ctx, 4);
    0
}

#[fexit]
pub fn fexit_walk(ctx: FExitContext) -> i32 {
    end(&ctx, 1);
    0
}

#[fexit]
pub fn fexit_walk_locked(ctx: FExitContext) -> i32 {
    end(&ctx, 1);
    0
}
