//! Checks of the reclaim scenario: the JVM's cgroup over memory.high (its own threads
//! reclaim) and, in the full suite, kswapd reclaiming it too; rmap-trace's attribution
//! compared with the guest's files (the JVM's pid and /proc/PID/comm, the cgroup's inode,
//! /proc/PID/task/*/comm, memory.stat).
use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    text,
    walks::{self, Walks},
};
use crate::{
    guest::qemu::GuestRun,
    vm_test::{Checks, counter, json, row},
};

/// A `memory.stat` counter; 0 when absent.
fn stat(run: &GuestRun, name: &str) -> u64 {
    text(run, "r.stat")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

pub fn verify(run: &GuestRun, kswapd: bool, c: &mut Checks) -> anyhow::Result<()> {
    let (ino, pid) = (text(run, "r.ino"), text(run, "r.pid"));
    let all = json(run, "r-all")?;
    let recs = walks::parse(text(run, "r-all.tally"))?;
    let total = walks::count(&recs, |_| true);
    let drops = counter(&all, "ringbuf_drops");
    c.check(
        "jvm reclaim: the JVM filled its heap; the unfiltered tracer kept every record",
        text(run, "r.out").contains("filled") && drops == 0 && counter(&all, "walks") == total,
        format!(
            "{total} records, kernel counted {} walks, {drops} dropped; JVM said {:?}",
            counter(&all, "walks"),
            text(run, "r.out").lines().next().unwrap_or("")
        ),
    );
    c.check(
        "jvm reclaim: the JVM's leader is named java (/proc/PID/comm)",
        text(run, "r.comm") == "java",
        format!("pid {pid}: {:?}", text(run, "r.comm")),
    );
    let owned: Vec<&Walks> = recs.iter().filter(|w| w.cgroup_id == ino).collect();
    let n_owned = walks::count(owned.iter().copied(), |_| true);
    println!(
        "jvm reclaim: walks of the JVM's cgroup by walker: {}",
        walks::tally(owned.iter().copied(), |w| format!(
            "{}/{}{}",
            w.process,
            w.comm,
            if w.kthread { " (kthread)" } else { "" }
        ))
    );
    c.check(
        "jvm reclaim: walks owned by the JVM's cgroup (id = inode of /sys/fs/cgroup/jvm) are shown at /jvm",
        n_owned > 0 && !ino.is_empty() && owned.iter().all(|w| w.cgroup == "/jvm"),
        format!("{n_owned} walks with cgroup_id {ino}"),
    );
    jvm_threads(run, &recs, &owned, pid, c);
    let (scan_direct, steal_direct) = (stat(run, "pgscan_direct"), stat(run, "pgsteal_direct"));
    let by_jvm = walks::count(owned.iter().copied(), |w| w.tgid == pid);
    c.check(
        "jvm reclaim: the JVM's threads reclaimed its memory, and memory.stat agrees (pgscan_direct, pgsteal_direct > 0)",
        by_jvm > 0 && scan_direct > 0 && steal_direct > 0,
        format!(
            "{by_jvm} walks by tgid {pid}; memory.stat pgscan_direct {scan_direct} pgsteal_direct {steal_direct}, memory.swap.current {}",
            text(run, "r.swap")
        ),
    );
    if kswapd {
        let (scan_k, steal_k) = (stat(run, "pgscan_kswapd"), stat(run, "pgsteal_kswapd"));
        let by_kswapd = walks::count(owned.iter().copied(), |w| {
            w.kthread && w.comm.starts_with("kswapd") && w.process == w.comm
        });
        c.check(
            "jvm reclaim: kswapd walked the JVM's memory (kthread, owner /jvm), and memory.stat agrees (pgscan_kswapd, pgsteal_kswapd > 0)",
            by_kswapd > 0 && scan_k > 0 && steal_k > 0,
            format!("{by_kswapd} walks by kswapd; memory.stat pgscan_kswapd {scan_k} pgsteal_kswapd {steal_k}"),
        );
    }
    owner_row(&all, kswapd, c);
    filters(run, &recs, ino, c)
}

/// Walks by the JVM's threads: the process is java, each thread's name one /proc showed.
fn jvm_threads(run: &GuestRun, recs: &[Walks], owned: &[&Walks], pid: &str, c: &mut Checks) {
    let names: BTreeSet<&str> = text(run, "r.names").lines().collect();
    let by_jvm: Vec<&Walks> = recs.iter().filter(|w| w.tgid == pid).collect();
    let comms: BTreeSet<&str> = by_jvm.iter().map(|w| w.comm).collect();
    let unknown: Vec<&&str> = comms.iter().filter(|n| !names.contains(**n)).collect();
    c.check(
        "jvm reclaim: every walk by the JVM's tgid has process java and a thread name of /proc/PID/task/*/comm",
        !by_jvm.is_empty() && by_jvm.iter().all(|w| w.process == "java" && !w.kthread) && unknown.is_empty(),
        format!("walker threads {comms:?}; not in /proc: {unknown:?}; /proc showed {names:?}"),
    );
    let renamed = walks::count(owned.iter().copied(), |w| w.tgid == pid && w.comm != "java");
    c.check(
        "jvm reclaim: JVM threads not named java walked (the heap thread rmap-heap among them)",
        renamed > 0 && comms.contains("rmap-heap"),
        format!("{renamed} walks by JVM threads other than java"),
    );
    let threads = text(run, "r-all.txt")
        .lines()
        .find(|l| l.trim_start().starts_with("threads:") && l.contains("rmap-heap"));
    c.check(
        "jvm reclaim: --threads lists rmap-heap under its process",
        threads.is_some(),
        threads.unwrap_or("<no threads line naming rmap-heap>").trim(),
    );
}

/// The JSON owner row of /jvm names its walkers: java, and kswapd in brackets.
fn owner_row(all: &Value, kswapd: bool, c: &mut Checks) {
    let r = row(&all["owners"], "/jvm");
    let parts: Vec<&str> = r
        .and_then(|r| r["parts"].as_array())
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    let has_kswapd = parts.iter().any(|p| p.starts_with("[kswapd"));
    c.check(
        "jvm reclaim: the owner table's /jvm row has the walkers java (and [kswapdN] with kswapd)",
        parts.contains(&"java") && (has_kswapd || !kswapd),
        format!("walkers {parts:?}"),
    );
}

/// Each filtered tracer counted in the kernel what the unfiltered one's records say.
fn filters(run: &GuestRun, recs: &[Walks], ino: &str, c: &mut Checks) -> anyhow::Result<()> {
    let cases: [(&str, &str, u64); 4] = [
        (
            "r-cg",
            "--cgroup /jvm: every walk of the JVM's memory, whoever walked",
            walks::count(recs.iter(), |w| w.cgroup_id == ino),
        ),
        ("r-idle", "--cgroup of an idle cgroup: none", 0),
        (
            "r-proc",
            "--process java: every walk by the JVM's threads",
            walks::count(recs.iter(), |w| w.process == "java"),
        ),
        (
            "r-comm",
            "--comm java: only the walks of threads named java",
            walks::count(recs.iter(), |w| w.comm == "java"),
        ),
    ];
    let mut got = std::collections::BTreeMap::new();
    for (name, what, want) in cases {
        let doc: Value = json(run, name)?;
        let n = counter(&doc, "walks");
        got.insert(name, n);
        c.check(
            &format!("jvm reclaim: {what}"),
            n == want,
            format!("kernel counted {n}, the unfiltered records say {want}"),
        );
    }
    let (proc, comm) = (got["r-proc"], got["r-comm"]);
    c.check(
        "jvm reclaim: --process java sees walks that --comm java misses",
        proc > comm,
        format!("--process java {proc}, --comm java {comm}"),
    );
    Ok(())
}
