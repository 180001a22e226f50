//! The suite on Debian's 6.1 kernel: probe, fentry and kprobe each tracing the three
//! workloads, the tgid filter, the host left as it was (KSM knobs, SIGTERM mid-merge, tracefs),
//! one NUMA node with reclaim, and the harness's own failures.
use anyhow::Context as _;
use serde_json::Value;

use super::{Checks, counter, json, row};
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// The guest side: every forced attach mode traces the three workloads; the tgid filter sees
/// only its process while another process walks too; KSM knobs are dumped before and after.
fn script(pages: u32) -> String {
    let small = (pages / 10).max(200);
    format!(
        r#"knobs() {{ for k in run pages_to_scan sleep_millisecs max_page_sharing merge_across_nodes use_zero_pages; do [ -f /sys/kernel/mm/ksm/$k ] && echo "$k=$(cat /sys/kernel/mm/ksm/$k)"; done; }}
attached() {{ for i in $(seq 300); do grep -q '^attach:' $1 && return 0; sleep 0.2; done; return 1; }}
knobs > /tmp/ksm.before
rmap-trace probe --json /tmp/probe.json > /tmp/probe.txt 2>&1
emit probe /tmp/probe.json
for m in fentry kprobe; do
  phase $m
  rmap-trace --attach-only --attach-mode $m --comm rmap-trace --min-duration-us 0 --interval 30 --json /tmp/$m.json > /tmp/$m.txt 2>&1 &
  T=$!
  attached /tmp/$m.txt || echo "tracer $m did not attach"
  rmap-trace workload --types ksm,anon,file --pages {pages} > /tmp/w-$m.txt 2>&1 &
  W=$!
  echo "tracer $m pid $T, workload pid $W"
  wait $W; echo "workload $m exit $?"
  phase $m-stop
  kill -TERM $T; wait $T; echo "tracer $m exit $?"
  emit $m /tmp/$m.json
  emit $m.txt /tmp/$m.txt
  emit $m.workload /tmp/w-$m.txt
done
phase filter
(sleep 5; exec rmap-trace workload --types ksm --pages {small}) > /tmp/w1.txt 2>&1 &
W1=$!
(sleep 5; exec rmap-trace workload --types anon --pages {small}) > /tmp/w2.txt 2>&1 &
W2=$!
rmap-trace --attach-only -p $W1 --min-duration-us 0 --json /tmp/filter.json > /tmp/filter.txt 2>&1 &
T=$!
wait $W1; echo "w1 exit $?"; wait $W2; echo "w2 exit $?"
kill -TERM $T; wait $T; echo "tracer filter exit $?"
echo $W1 > /tmp/w1.pid
emit filter /tmp/filter.json
emit filter.pid /tmp/w1.pid
emit filter.w2 /tmp/w2.txt
knobs > /tmp/ksm.after
emit ksm.before /tmp/ksm.before
emit ksm.after /tmp/ksm.after
rm -f /tmp/*.json
phase sigterm
knobs > /tmp/sig.k1
rmap-trace --types ksm --pages {pages} --trigger reclaim --setup-swap --max-page-sharing 512 > /tmp/sig.txt 2>&1 &
P=$!
for i in $(seq 1200); do [ "$(cat /sys/kernel/mm/ksm/run)" = 1 ] && break; sleep 0.05; done
kill -TERM $P; wait $P; echo $? > /tmp/sig.rc
knobs > /tmp/sig.k2
grep -v '^Filename' /proc/swaps > /tmp/sig.swaps
ls /sys/fs/cgroup | grep rmap-trace > /tmp/sig.cg
for f in rc txt k1 k2 swaps cg; do emit sig.$f /tmp/sig.$f; done
phase tracefs
umount /sys/kernel/tracing
rmap-trace probe > /tmp/tfs.txt 2>&1
rmap-trace --attach-only --duration 2 >> /tmp/tfs.txt 2>&1
grep tracefs /proc/mounts > /tmp/tfs.mounts
emit tracefs.txt /tmp/tfs.txt
emit tracefs.mounts /tmp/tfs.mounts
"#
    )
}

/// Runs the suite on Debian's kernel: the harness, the script's runs, one NUMA node.
pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    harness_checks(args, c);
    let out = guest::boot(args, &script(pages), false)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    for line in &out.console {
        println!("guest: {line}");
    }
    verify(&out, c)?;
    one_node(args, 2000, c)
}

fn verify(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let probe = json(run, "probe")?;
    for mode in ["fentry", "kprobe"] {
        let m = probe["modes"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["mode"] == mode))
            .cloned()
            .unwrap_or(Value::Null);
        c.check(
            &format!("probe {mode}"),
            m["available"] == true,
            m["detail"].to_string(),
        );
    }
    for mode in ["fentry", "kprobe"] {
        if let Some(t) = run.outputs.get(&format!("{mode}.txt")) {
            println!("--- guest output, --attach-mode {mode} ---\n{}", t.trim_end());
        }
        verify_mode(mode, &json(run, mode)?, c);
    }
    verify_filter(run, &json(run, "filter")?, c)?;
    verify_cleanup(run, c);
    Ok(())
}

/// One forced attach mode traced the three workloads.
fn verify_mode(mode: &str, doc: &Value, c: &mut Checks) {
    let chosen = &doc["attach"]["chosen"];
    c.check(
        &format!("{mode} attached"),
        chosen["mode"] == mode,
        chosen.to_string(),
    );
    let walks = |rows: &Value, key: &str| row(rows, key).and_then(|r| r["count"].as_u64()).unwrap_or(0);
    for ty in ["ksm", "anon", "file"] {
        let n = walks(&doc["types"], ty);
        c.check(&format!("{mode} sees {ty} walks"), n > 0, format!("{n} walks"));
    }
    for p in ["ksm/migrate", "ksm/remove-migration"] {
        let n = walks(&doc["purposes"], p);
        c.check(&format!("{mode} purpose {p}"), n > 0, format!("{n} walks"));
    }
    let max = |ty: &str, absent: u64| {
        row(&doc["types"], ty)
            .and_then(|r| r["max_ns"].as_u64())
            .unwrap_or(absent)
    };
    let (ksm, anon) = (max("ksm", 0), max("anon", u64::MAX));
    c.check(
        &format!("{mode} ksm max >= 100x anon max"),
        ksm >= anon.saturating_mul(100),
        format!(
            "ksm {ksm} ns, anon {anon} ns, ratio {:.0}",
            ksm as f64 / anon.max(1) as f64
        ),
    );
    let offcpu = row(&doc["types"], "ksm")
        .and_then(|r| r["offcpu_measured"].as_u64())
        .unwrap_or(0);
    c.check(
        &format!("{mode} measures off-CPU time"),
        offcpu > 0,
        format!("{offcpu} ksm walks with off-CPU measured"),
    );
    for k in ["ringbuf_drops", "unpaired"] {
        let v = counter(doc, k);
        c.check(
            &format!("{mode} {k} reported and zero"),
            v == 0,
            format!("{k} = {v}"),
        );
    }
}

/// `-p` kept the walks of its process only, while another process walked too.
fn verify_filter(run: &GuestRun, filter: &Value, c: &mut Checks) -> anyhow::Result<()> {
    let w1: u64 = run
        .outputs
        .get("filter.pid")
        .and_then(|s| s.trim().parse().ok())
        .context("no workload pid from the guest")?;
    let w2 = run.outputs.get("filter.w2").map_or("", |s| s.trim());
    c.check(
        "other process walked too",
        w2.contains("workload: anon"),
        w2.to_string(),
    );
    let procs: Vec<&str> = filter["processes"]
        .as_array()
        .map(|a| a.iter().map(|r| r["key"].as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    let only_w1 = !procs.is_empty() && procs.iter().all(|k| k.ends_with(&format!("/{w1}")));
    c.check(
        "tgid filter keeps only its process",
        only_w1,
        format!("processes {procs:?}, workload tgid {w1}"),
    );
    let anon = row(&filter["types"], "anon")
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0);
    c.check(
        "tgid filter drops the other process's anon walks",
        anon == 0,
        format!("{anon} anon walks"),
    );
    Ok(())
}

/// The host is left as it was: KSM knobs after the runs, and after a SIGTERM mid-merge.
fn verify_cleanup(run: &GuestRun, c: &mut Checks) {
    let (before, after) = (run.outputs.get("ksm.before"), run.outputs.get("ksm.after"));
    c.check(
        "KSM settings restored",
        before.is_some() && before == after,
        format!(
            "before {:?} after {:?}",
            before.map(|s| s.trim()),
            after.map(|s| s.trim())
        ),
    );
    let out = |n: &str| {
        run.outputs
            .get(n)
            .map_or_else(|| format!("<no {n}>"), |s| s.trim().to_string())
    };
    c.check(
        "SIGTERM mid-merge exits non-zero, interrupted",
        out("sig.rc") != "0" && out("sig.txt").contains("interrupted"),
        format!(
            "status {}, output: {}",
            out("sig.rc"),
            out("sig.txt").lines().last().unwrap_or("")
        ),
    );
    c.check(
        "SIGTERM: KSM knobs as before",
        out("sig.k1") == out("sig.k2") && !out("sig.k1").starts_with('<'),
        out("sig.k2").replace('\n', " "),
    );
    for (name, what) in [
        ("SIGTERM: zram swap removed", "sig.swaps"),
        ("SIGTERM: cgroup removed", "sig.cg"),
        (
            "probe and --attach-only leave no tracefs mount behind",
            "tracefs.mounts",
        ),
    ] {
        c.check(name, out(what).is_empty(), out(what));
    }
    let tfs = out("tracefs.txt");
    c.check(
        "--attach-only without tracefs mounted attaches",
        tfs.lines().any(|l| l.starts_with("attach: ")) && tfs.contains("=== summary"),
        tfs.lines()
            .find(|l| l.starts_with("attach"))
            .unwrap_or("")
            .to_string(),
    );
}

/// One NUMA node: reclaim with a temporary zram swap walks KSM pages for `referenced`; without
/// swap the run stops before touching KSM.
fn one_node(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    let script = format!(
        r#"rmap-trace --trigger reclaim --types ksm --pages {pages} > /tmp/noswap.txt 2>&1; echo $? >> /tmp/noswap.txt
cat /sys/kernel/mm/ksm/full_scans >> /tmp/noswap.txt
rmap-trace --trigger reclaim --setup-swap --types ksm,anon --layouts split --pages {pages} --json /tmp/reclaim.json > /tmp/reclaim.txt 2>&1
echo "reclaim exit $?"
emit noswap /tmp/noswap.txt
emit reclaim /tmp/reclaim.json
emit reclaim.txt /tmp/reclaim.txt
"#
    );
    let one = GuestArgs {
        numa_nodes: 1,
        ..args.clone()
    };
    let run = guest::boot(&one, &script, false)?;
    let noswap = run.outputs.get("noswap").cloned().unwrap_or_default();
    let lines: Vec<&str> = noswap.trim().lines().collect();
    c.check(
        "one node, no swap: one clear line, non-zero, KSM untouched",
        lines.len() == 3 && lines[0].contains("add --setup-swap") && lines[1] == "1" && lines[2] == "0",
        noswap.replace('\n', " | "),
    );
    if let Some(t) = run.outputs.get("reclaim.txt") {
        println!(
            "--- guest output, one node, --trigger reclaim --setup-swap ---\n{}",
            t.trim_end()
        );
    }
    let doc = json(&run, "reclaim")?;
    let ksm = doc["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["scenario"]["page_type"] == "ksm"))
        .cloned()
        .unwrap_or(Value::Null);
    let referenced = row(&ksm["purposes"], "ksm/referenced")
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0);
    c.check(
        "one node reclaim: ksm walks for referenced",
        referenced > 0,
        format!("{referenced} walks"),
    );
    c.check(
        "one node reclaim: trigger",
        doc["trigger"] == "reclaim",
        doc["trigger"].to_string(),
    );
    Ok(())
}

/// The harness itself: a wrong kernel path, a guest that never finishes and a panicking guest
/// each end in one error line within the timeout.
fn harness_checks(args: &GuestArgs, c: &mut Checks) {
    let err = crate::guest::kernel::image_file(std::path::Path::new("/nonexistent/bzImage"), None).err();
    c.check(
        "broken kernel path is an error",
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("/nonexistent/bzImage")),
        err.as_ref()
            .map_or_else(|| "no error".to_string(), |e| format!("{e:#}")),
    );
    // Build and fetch first, so that the timings below are the guest's alone.
    if let Err(e) = crate::build::static_binary().and_then(|_| crate::guest::kernel::for_guest(args)) {
        c.check("guest prerequisites", false, format!("{e:#}"));
        return;
    }
    let short = GuestArgs {
        timeout: 60,
        ..args.clone()
    };
    // At the timeout, the harness sends an NMI and the guest panics with every CPU's
    // backtrace: what a hang that no watchdog catches (the CI lockup) needs to be found.
    let (msg, took) = failing_boot(&short, "sleep 100000\n");
    // Distinct CPUs: one CPU's backtrace is printed twice (live, then in the replayed log).
    let cpus: std::collections::BTreeSet<&str> = msg
        .lines()
        .filter_map(|l| l.split("NMI backtrace for cpu ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    c.check(
        "hung guest times out, reported with every CPU's backtrace",
        msg.contains("timed out after 60 s") && cpus.len() >= 2 && took < 120.0,
        format!(
            "{} ({took:.0} s); backtraces of CPUs {cpus:?}",
            msg.lines().next().unwrap_or("")
        ),
    );
    // A line logged below the console's loglevel just before the crash: only the log the panic
    // replays shows it (an oops's text, a soft lockup's backtraces are printed that low too).
    let (msg, took) = failing_boot(
        &short,
        &format!("echo '<6>{REPLAY_MARK}' > /dev/kmsg\necho c > /proc/sysrq-trigger\nsleep 100000\n"),
    );
    let stack = msg.lines().find(|l| l.contains("sysrq_handle_crash"));
    let replayed = msg.contains(REPLAY_MARK);
    c.check(
        "panicking guest is reported with the kernel's log",
        msg.starts_with("guest kernel panicked") && stack.is_some() && replayed && took < 60.0,
        format!(
            "{} ({took:.0} s); {}; quiet line replayed: {replayed}",
            msg.lines().next().unwrap_or(""),
            stack.map_or("no sysrq_handle_crash in the report", str::trim)
        ),
    );
}

/// Logged at `KERN_INFO` before the crash of the panicking guest.
const REPLAY_MARK: &str = "rmap-trace-test: a line below the console loglevel";

/// Boots a guest that must fail: its error message (empty if it did not fail) and the seconds
/// until the harness gave up.
fn failing_boot(args: &GuestArgs, script: &str) -> (String, f64) {
    let started = std::time::Instant::now();
    let result = guest::boot(args, script, false);
    let msg = result.err().map(|e| e.to_string()).unwrap_or_default();
    (msg, started.elapsed().as_secs_f64())
}
