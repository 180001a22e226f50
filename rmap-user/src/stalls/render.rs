//! The summary's "stalled by walks" tables and the `stalls` object of the JSON document.
use rmap_common::stall::StallCounter;
use serde::Serialize;

use super::{
    agg::{StallAgg, VictimRow, WalkRow},
    kernel::StallCounts,
};
use crate::{owners::names::OwnerNames, printable::printable, render::fmt_ns};

/// Walks listed in the summary.
const WALK_LINES: usize = 10;

/// The `stalls` object of `--json` (docs/json.md).
#[derive(Serialize)]
pub struct StallsJson {
    /// The kernel's exact counters: waits attributed, other rwsem waits, drops, unpaired.
    pub kernel_counts: StallCounts,
    /// Every attributed wait, from the kernel's histogram.
    pub waits: u64,
    pub p50_wait_s: f64,
    pub p99_wait_s: f64,
    pub max_wait_s: f64,
    /// Stall records read (fewer than `waits` when records were dropped).
    pub records: u64,
    /// Of the records, waits behind another victim (on a lock held by a thread that was
    /// waiting for the walk: `mmap_lock` behind `anon_vma`).
    pub chained_records: u64,
    /// Per victim process, with its threads: from records.
    pub victims: Vec<VictimRow>,
    /// Per walk that made others wait, the most waiting first: from records.
    pub walks: Vec<WalkRow>,
}

impl StallsJson {
    /// The document; `names` names the victims' cgroups and pods.
    pub fn new(agg: &StallAgg, counts: StallCounts, records: u64, names: &mut OwnerNames) -> Self {
        Self {
            waits: counts.waits(),
            p50_wait_s: counts.quantile_ns(0.5) as f64 / 1e9,
            p99_wait_s: counts.quantile_ns(0.99) as f64 / 1e9,
            max_wait_s: counts.quantile_ns(1.0) as f64 / 1e9,
            kernel_counts: counts,
            records,
            chained_records: agg.chained.count,
            victims: named_victims(agg, names),
            walks: agg.walk_rows(usize::MAX),
        }
    }
}

/// The victim rows, their cgroups and pods named.
fn named_victims(agg: &StallAgg, names: &mut OwnerNames) -> Vec<VictimRow> {
    let mut rows = agg.victim_rows();
    for r in &mut rows {
        r.name(names);
    }
    rows
}

/// The summary's stall section; `names` names the victims' cgroups.
pub fn summary(agg: &StallAgg, counts: &StallCounts, records: u64, names: &mut OwnerNames) -> String {
    let mut out = String::new();
    let waits = counts.waits();
    line(
        &mut out,
        &format!(
            "stalled by walks: {waits} waits on locks held by walks in flight or by their waiters \
             ({} behind a waiter; p50 {}, p99 {}, max {}); other rwsem waits {}",
            agg.chained.count,
            fmt_ns(counts.quantile_ns(0.5)),
            fmt_ns(counts.quantile_ns(0.99)),
            fmt_ns(counts.quantile_ns(1.0)),
            counts.get(StallCounter::Others),
        ),
    );
    if records < waits {
        line(
            &mut out,
            &format!(
                "  tables below: {records} of {waits} waits; {} dropped",
                counts.get(StallCounter::Drops)
            ),
        );
    }
    if !agg.is_empty() {
        victims(&mut out, &named_victims(agg, names));
        walks(&mut out, agg);
    }
    out
}

/// Per victim process, its cgroup (a pod's: namespace/pod/container) and threads under it.
fn victims(out: &mut String, rows: &[VictimRow]) {
    line(
        out,
        &format!(
            "{:<24} {:>8} {:>8} {:>12} {:>12}",
            "victim process/thread", "pid", "waits", "total wait", "max wait"
        ),
    );
    for v in rows {
        let pid = v.tgid.map_or_else(|| "-".to_string(), |p| p.to_string());
        line(
            out,
            &format!(
                "{:<24} {pid:>8} {:>8} {:>12} {:>12}",
                printable(&v.process),
                v.waits.waits,
                fmt_ns(v.waits.total_ns),
                fmt_ns(v.waits.max_ns)
            ),
        );
        match (&v.pod, &v.cgroup) {
            (Some(p), _) => line(out, &format!("  pod: {} ({})", p.display(), p.qos)),
            (None, Some(c)) => line(out, &format!("  cgroup: {c}")),
            (None, None) => {}
        }
        for t in &v.threads {
            let pid = t.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
            line(
                out,
                &format!(
                    "  {:<22} {pid:>8} {:>8} {:>12} {:>12}",
                    printable(&t.comm),
                    t.waits.waits,
                    fmt_ns(t.waits.total_ns),
                    fmt_ns(t.waits.max_ns)
                ),
            );
        }
    }
}

/// The walks that made others wait most.
fn walks(out: &mut String, agg: &StallAgg) {
    let (kept, lost) = agg.walks();
    let lost = if lost.count > 0 {
        format!(" (and {} waits of walks not kept)", lost.count)
    } else {
        String::new()
    };
    line(out, &format!("walks that made others wait: {kept}{lost}"));
    line(
        out,
        &format!(
            "{:<20} {:>8} {:>6} {:>8} {:>8} {:>12} {:>12}  victim processes",
            "walker", "pid", "type", "victims", "waits", "total wait", "max wait"
        ),
    );
    for w in agg.walk_rows(WALK_LINES) {
        line(
            out,
            &format!(
                "{:<20} {:>8} {:>6} {:>8} {:>8} {:>12} {:>12}  {}",
                w.walker,
                w.walker_pid,
                w.page_type,
                w.victims,
                w.waits.waits,
                fmt_ns(w.waits.total_ns),
                fmt_ns(w.waits.max_ns),
                w.victim_processes.join(",")
            ),
        );
    }
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}
