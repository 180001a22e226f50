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

use crate::walk;

#[inline(always)]
fn flag(v: u64) -> u32 {
    (v & 1) as u32
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
    walk::end(&ctx, ctx.arg(0), ctx.arg(1), true, Source::Fentry);
    0
}

#[fexit]
pub fn fexit_anon(ctx: FExitContext) -> i32 {
    walk::end(&ctx, ctx.arg(0), ctx.arg(1), true, Source::Fentry);
    0
}

#[fexit]
pub fn fexit_file(ctx: FExitContext) -> i32 {
    walk::end(&ctx, ctx.arg(0), ctx.arg(1), true, Source::Fentry);
    0
}

#[fexit]
pub fn fexit_file_inner(ctx: FExitContext) -> i32 {
    walk::end(&ctx, ctx.arg(0), ctx.arg(4), true, Source::Fentry);
    0
}

#[fexit]
pub fn fexit_walk(ctx: FExitContext) -> i32 {
    walk::end(&ctx, ctx.arg(0), ctx.arg(1), true, Source::Fentry);
    0
}

#[fexit]
pub fn fexit_walk_locked(ctx: FExitContext) -> i32 {
    walk::end(&ctx, ctx.arg(0), ctx.arg(1), true, Source::Fentry);
    0
}
