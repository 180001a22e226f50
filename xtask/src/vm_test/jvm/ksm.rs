//! Checks of the KSM scenario: two JVMs whose anonymous mappings the `LD_PRELOAD` shim marked
//! mergeable (a third without it), their identical heaps merged, then their pages migrated
//! (`migratepages`) and compacted; rmap-trace's KSM walks and owners compared with the guest's
//! files (the JVMs' pids and cgroup inodes, `/proc/PID/ksm_merging_pages`, smaps,
//! /sys/kernel/mm/ksm).
use serde_json::Value;

use super::{text, walks};
use crate::{
    guest::qemu::GuestRun,
    vm_test::{Checks, counter, json, row},
};

/// `key=value` of a `ksm` line of the guest script.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

/// The counters after a `settle`: the `ksm` line, then each JVM's `ksm_merging_pages`.
fn counters(run: &GuestRun, name: &str) -> (u64, Vec<u64>) {
    let t = text(run, name);
    let mut lines = t.lines();
    let shared = lines.next().map_or(0, |l| field(l, "pages_shared"));
    (shared, lines.filter_map(|l| l.trim().parse().ok()).collect())
}

pub fn verify(run: &GuestRun, plain: bool, c: &mut Checks) -> anyhow::Result<()> {
    // The load's arrays: 16 KiB each, so at least 3 whole pages of one value.
    let arrays: u64 = text(run, "k-a.out")
        .lines()
        .find_map(|l| l.strip_prefix("filled ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let heap_pages = arrays * 3;
    for (jvm, name) in [("a", "k-a.heap"), ("b", "k-b.heap")] {
        let heap = text(run, name);
        c.check(
            &format!("jvm ksm: the shim left JVM {jvm}'s committed 64 MiB heap mergeable (smaps VmFlags mg)"),
            heap.contains(" mg"),
            if heap.is_empty() {
                "<no 64 MiB mapping>"
            } else {
                heap
            },
        );
    }
    let (alone_shared, alone) = counters(run, "k-alone");
    let merged_a = alone.first().copied().unwrap_or(0);
    c.check(
        "jvm ksm: JVM a's heap merged alone (its ksm_merging_pages >= 3 pages per array)",
        arrays > 0 && merged_a >= heap_pages,
        format!("{arrays} arrays, ksm_merging_pages {merged_a}, pages_shared {alone_shared}"),
    );
    let (both_shared, both) = counters(run, "k-both");
    let merged_b = both.get(1).copied().unwrap_or(0);
    // Ground truth from the page tables: two processes' private pages are never the same
    // physical page, unless KSM merged them.
    let common: u64 = text(run, "k.common").parse().unwrap_or(0);
    c.check(
        "jvm ksm: JVM b's identical heap merged with JVM a's (physical pages both heaps map, /proc/PID/pagemap: at least one per array)",
        merged_b >= heap_pages && common >= arrays,
        format!(
            "{common} of the {} physical pages b's heap maps are mapped by a's heap too (>= one per array); b's ksm_merging_pages {merged_b}; \
             pages_shared {alone_shared} with a alone, {both_shared} with both ({})",
            text(run, "k-b.present"),
            text(run, "k-both").lines().next().unwrap_or("")
        ),
    );
    if plain {
        let merged_c = text(run, "k-plain.merged");
        let heap = text(run, "k-plain.heap");
        c.check(
            "jvm ksm: the JVM without the shim merged nothing, its heap not mergeable",
            merged_c == "0" && !heap.is_empty() && !heap.contains(" mg"),
            format!("ksm_merging_pages {merged_c:?}; heap {heap:?}"),
        );
    }
    walks_checks(run, c)
}

/// The KSM walks of the migrations and the compaction: whose pages, who walked.
fn walks_checks(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let all: Value = json(run, "k-all")?;
    let recs = walks::parse(text(run, "k-all.tally"))?;
    let total = walks::count(&recs, |_| true);
    let (ino_a, ino_b) = (text(run, "k-a.ino"), text(run, "k-b.ino"));
    let trig = text(run, "k.trig");
    c.check(
        "jvm ksm: the triggers ran (migratepages of each JVM, compact_memory); the tracer kept every record",
        trig.contains("migratepages B exit 0")
            && trig.contains("migratepages A exit 0")
            && trig.contains("compact_memory exit 0")
            && counter(&all, "ringbuf_drops") == 0
            && counter(&all, "walks") == total,
        format!(
            "{}; {total} records of {} walks",
            trig.replace('\n', "; "),
            counter(&all, "walks")
        ),
    );
    let ksm: Vec<&walks::Walks> = recs.iter().filter(|w| w.ty == "ksm").collect();
    let n_ksm = walks::count(ksm.iter().copied(), |_| true);
    println!(
        "jvm ksm: KSM walks by owner and walker: {}",
        walks::tally(ksm.iter().copied(), |w| format!(
            "{} by {}/{}",
            w.cgroup, w.process, w.comm
        ))
    );
    let jvm_owned = walks::count(ksm.iter().copied(), |w| {
        (w.cgroup_id == ino_a && w.cgroup == "/jvm-a") || (w.cgroup_id == ino_b && w.cgroup == "/jvm-b")
    });
    c.check(
        "jvm ksm: every KSM walk is of a page owned by a JVM's cgroup (inodes of /sys/fs/cgroup/jvm-a, jvm-b)",
        n_ksm > 0 && jvm_owned == n_ksm,
        format!("{jvm_owned} of {n_ksm} KSM walks owned by {ino_a} or {ino_b}"),
    );
    let by = |name: &str| {
        walks::count(ksm.iter().copied(), |w| {
            w.process == name && w.comm == name && !w.kthread
        })
    };
    let (migrate, compact) = (by("migratepages"), by("sh"));
    c.check(
        "jvm ksm: migratepages and the shell writing memory.reclaim and compact_memory walked KSM pages",
        migrate > 0 && compact > 0,
        format!("{migrate} KSM walks by migratepages, {compact} by sh"),
    );
    let parts = |key: &str| -> Vec<String> {
        row(&all["owners"], key)
            .and_then(|r| r["parts"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some(p["name"].as_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (pa, pb) = (parts("/jvm-a"), parts("/jvm-b"));
    c.check(
        "jvm ksm: the owner table shows the JVMs' cgroups walked by migratepages",
        pa.iter().chain(&pb).any(|p| p == "migratepages"),
        format!("/jvm-a walkers {pa:?}, /jvm-b walkers {pb:?}"),
    );
    Ok(())
}
