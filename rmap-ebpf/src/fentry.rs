//! fentry/fexit on the walkers. One program per target function: a BPF trampoline program is
//! verified against one function's BTF prototype (userspace picks which ones exist).
//!
//! Prototypes (mm/rmap.c, mm/ksm.c): `rmap_walk_ksm(folio, rwc)`,
//! `rmap_walk_anon(folio, rwc, bool locked)`, `rmap_walk_file(folio, rwc, bool locked)`,
//! `__rmap_walk_file(folio, mapping, pgoff_start, nr_pages, rwc, bool locked)` (≥ 6.16),
//! `rmap_walk(folio, rwc)`, `rmap_walk_locked(folio, rwc)`; before folios, the same with a
//! `struct page *` first.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use rmap_common::{PageType, Source};

use crate::{
    config::RWC_RMAP_ONE_OFF,
    inflight::{Hashed, Slots, Table},
    walk::{self, Purpose},
};

#[inline(always)]
fn flag(v: u64) -> u32 {
    (v & 1) as u32
}

/// `rwc->rmap_one`, the walk's purpose, by a plain load: a trampoline program's pointer
/// arguments are typed by the function's BTF, so the verifier checks the load against
/// `struct rmap_walk_control` (kernel/bpf/btf.c `btf_struct_walk`) and the JIT guards it with
/// an exception-table entry (`BPF_PROBE_MEM`), where a `bpf_probe_read_kernel` call would cost a
/// helper call per walk. The offset is a load-time global, a constant to the verifier
/// (`.rodata` is frozen). Older kernels type the value read as a number, newer ones as
/// untrusted memory: it is only stored (`walk::begin`), never computed with, here.
#[inline(always)]
fn purpose(rwc: u64) -> Purpose {
    let at = rwc + u64::from(RWC_RMAP_ONE_OFF.load());
    // SAFETY: the verifier allows the load only at a pointer field of the BTF type of `rwc`,
    // and a fault reads 0.
    Purpose::Read(unsafe { core::ptr::read_volatile(at as *const u64) })
}

/// The start of a walk seen by fentry: `folio` is argument 0, `rwc` argument `rwc_arg`.
#[inline(always)]
fn begin<T: Table>(ctx: &FEntryContext, rwc_arg: usize, page_type: PageType, locked: u32) {
    let rwc: u64 = ctx.arg(rwc_arg);
    walk::begin::<T>(ctx.arg(0), rwc, purpose(rwc), page_type, locked);
}

/// The end of a walk seen by fexit: `rwc` is argument `rwc_arg`.
#[inline(always)]
fn end<T: Table>(ctx: &FExitContext, rwc_arg: usize) {
    walk::end::<T, _>(ctx, ctx.arg(0), ctx.arg(rwc_arg), true, Source::Fentry);
}

/// The fentry and fexit programs of one walker, for each in-flight table: `$rwc` is the
/// argument holding `rwc`, `$ty` the page type, `$locked` the lock state (an expression of
/// `ctx`). The `_lru` programs use the LRU hash (inflight.rs).
macro_rules! walker {
    ($entry:ident, $entry_lru:ident, $exit:ident, $exit_lru:ident, $rwc:literal, $ty:expr,
     |$ctx:ident| $locked:expr) => {
        #[fentry]
        pub fn $entry($ctx: FEntryContext) -> i32 {
            begin::<Slots>(&$ctx, $rwc, $ty, $locked);
            0
        }

        #[fentry]
        pub fn $entry_lru($ctx: FEntryContext) -> i32 {
            begin::<Hashed>(&$ctx, $rwc, $ty, $locked);
            0
        }

        #[fexit]
        pub fn $exit(ctx: FExitContext) -> i32 {
            end::<Slots>(&ctx, $rwc);
            0
        }

        #[fexit]
        pub fn $exit_lru(ctx: FExitContext) -> i32 {
            end::<Hashed>(&ctx, $rwc);
            0
        }
    };
}

walker!(
    fentry_ksm,
    fentry_ksm_lru,
    fexit_ksm,
    fexit_ksm_lru,
    1,
    PageType::Ksm,
    |_ctx| 0
);
walker!(
    fentry_anon,
    fentry_anon_lru,
    fexit_anon,
    fexit_anon_lru,
    1,
    PageType::Anon,
    |ctx| flag(ctx.arg(2))
);
walker!(
    fentry_file,
    fentry_file_lru,
    fexit_file,
    fexit_file_lru,
    1,
    PageType::File,
    |ctx| flag(ctx.arg(2))
);
walker!(
    fentry_file_inner,
    fentry_file_inner_lru,
    fexit_file_inner,
    fexit_file_inner_lru,
    4,
    PageType::File,
    |ctx| flag(ctx.arg(5))
);
walker!(
    fentry_walk,
    fentry_walk_lru,
    fexit_walk,
    fexit_walk_lru,
    1,
    PageType::Unknown,
    |_ctx| 0
);
walker!(
    fentry_walk_locked,
    fentry_walk_locked_lru,
    fexit_walk_locked,
    fexit_walk_locked_lru,
    1,
    PageType::Unknown,
    |_ctx| 1
);
