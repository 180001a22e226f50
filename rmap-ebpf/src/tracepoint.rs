//! The rmap tracepoints of the KSM rmap series: the v5–v7 `rmap_walk_start`/`rmap_walk_end`
//! pair, `TP_PROTO(struct folio *folio, struct rmap_walk_control *rwc, bool locked)`, and the
//! v4 single `rmap_walk`, `TP_PROTO(folio, rwc, u64 duration_ns, bool locked)`; each as a raw_tp
//! (arguments directly) and as a classic tracepoint (record fields at offsets from the event's
//! `format` file, passed in `TP_LAYOUT`). They use the in-flight array only (inflight.rs):
//! kernels with these tracepoints have BPF compare-and-swap.
use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use rmap_common::{PageType, Source, TpLayout, page_type_from_str};

use crate::{
    config::TP_LAYOUT,
    inflight::Slots,
    walk::{self, Purpose},
};

#[raw_tracepoint(tracepoint = "rmap_walk_start")]
pub fn raw_rmap_walk_start(ctx: RawTracePointContext) -> i32 {
    let folio: u64 = ctx.arg(0);
    let rwc: u64 = ctx.arg(1);
    let locked: u64 = ctx.arg(2);
    // The string page_type is derived by the kernel from the folio; raw_tp has only the folio,
    // so classify it the same way (folio->mapping bits) at the end.
    walk::begin::<Slots>(folio, rwc, Purpose::Probe, PageType::Unknown, (locked & 1) as u32);
    0
}

#[raw_tracepoint(tracepoint = "rmap_walk_end")]
pub fn raw_rmap_walk_end(ctx: RawTracePointContext) -> i32 {
    walk::end::<Slots, _>(&ctx, ctx.arg(0), ctx.arg(1), true, Source::RawTpPair);
    0
}

#[raw_tracepoint(tracepoint = "rmap_walk")]
pub fn raw_rmap_walk_v4(ctx: RawTracePointContext) -> i32 {
    let locked: u64 = ctx.arg(3);
    walk::whole(
        ctx.arg(0),
        ctx.arg(1),
        ctx.arg(2),
        PageType::Unknown,
        (locked & 1) as u32,
        Source::RawTpV4,
    );
    0
}

/// Reads a `__data_loc char[]` field: a u32 whose low half is the string's offset in the record.
#[inline(always)]
fn page_type_at(ctx: &TracePointContext, loc_off: u32) -> PageType {
    if loc_off == TpLayout::ABSENT {
        return PageType::Unknown;
    }
    // SAFETY: read_at uses bpf_probe_read on the record.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(loc_off as usize) }) else {
        return PageType::Unknown;
    };
    // SAFETY: as above; a wrong offset fails the read rather than faulting.
    match unsafe { ctx.read_at::<[u8; 4]>((loc & 0xffff) as usize) } {
        Ok(s) => page_type_from_str(&s),
        Err(_) => PageType::Unknown,
    }
}

#[inline(always)]
fn read_u64(ctx: &TracePointContext, off: u32) -> u64 {
    if off == TpLayout::ABSENT {
        return 0;
    }
    // SAFETY: read_at uses bpf_probe_read on the record; a bad offset fails the read.
    unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(0)
}

#[inline(always)]
fn read_bool(ctx: &TracePointContext, off: u32) -> u32 {
    if off == TpLayout::ABSENT {
        return 0;
    }
    // SAFETY: read_at uses bpf_probe_read on the record; a bad offset fails the read.
    unsafe { ctx.read_at::<u8>(off as usize) }.map_or(0, |b| (b != 0) as u32)
}

#[tracepoint(category = "rmap", name = "rmap_walk_start")]
pub fn tp_rmap_walk_start(ctx: TracePointContext) -> u32 {
    let l = TP_LAYOUT.load();
    let folio = read_u64(&ctx, l.pair_folio);
    let rwc = read_u64(&ctx, l.pair_rwc);
    walk::begin::<Slots>(
        folio,
        rwc,
        Purpose::Probe,
        page_type_at(&ctx, l.pair_page_type),
        read_bool(&ctx, l.pair_locked),
    );
    0
}

#[tracepoint(category = "rmap", name = "rmap_walk_end")]
pub fn tp_rmap_walk_end(ctx: TracePointContext) -> u32 {
    let l = TP_LAYOUT.load();
    walk::end::<Slots, _>(
        &ctx,
        read_u64(&ctx, l.pair_folio),
        read_u64(&ctx, l.pair_rwc),
        true,
        Source::TpPair,
    );
    0
}

#[tracepoint(category = "rmap", name = "rmap_walk")]
pub fn tp_rmap_walk_v4(ctx: TracePointContext) -> u32 {
    let l = TP_LAYOUT.load();
    // One path into `walk::whole`, with every field an unknown value: a failed read defaulting
    // to 0, or each page_type string becoming its own constant, gives the verifier a path per
    // combination, and 6.1's verifier then explores the record path (owner reads, ring buffer)
    // that many times, past its 1M-instruction limit (BPF_PROG_LOAD: E2BIG). The record's
    // fields are in the event's own buffer, so these reads do not fail in practice; the page
    // type is classified from `folio->mapping` at the end, as the raw_tp program does (the
    // tracepoint patch's `rmap_walk_page_type`, include/trace/events/rmap.h, tests the same
    // bits).
    let (Some(folio), Some(rwc), Some(duration), Some(locked)) = (
        field::<u64>(&ctx, l.v4_folio),
        field::<u64>(&ctx, l.v4_rwc),
        field::<u64>(&ctx, l.v4_duration),
        field::<u8>(&ctx, l.v4_locked),
    ) else {
        return 0;
    };
    walk::whole(
        folio,
        rwc,
        duration,
        PageType::Unknown,
        u32::from(locked & 1),
        Source::TpV4,
    );
    0
}

/// A record field at `off`, if the layout has it and it can be read.
#[inline(always)]
fn field<T>(ctx: &TracePointContext, off: u32) -> Option<T> {
    if off == TpLayout::ABSENT {
        return None;
    }
    // SAFETY: read_at uses bpf_probe_read on the record; a bad offset fails the read.
    unsafe { ctx.read_at::<T>(off as usize) }.ok()
}
