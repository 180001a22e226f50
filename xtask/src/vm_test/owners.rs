//! The suite "owners", on Debian's 6.1 kernel (fentry): whose memory each walk touched and
//! which process walked, checked against what the guest's own files say. A workload runs in
//! a cgroup of its own with its walking thread renamed (as a JVM's threads rename themselves:
//! `--thread-name`), watched by tracers with and without --cgroup, --process and --comm
//! filters; what the thread was called is read from the guest's /proc while it runs.
use serde_json::Value;

use super::{Checks, json, kernel_walks, row};
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// What the renamed threads are called (a JVM's garbage collector thread).
const THREAD: &str = "GC Thread#0";

fn script(pages: u32) -> String {
    format!(
        r#"attached() {{ for i in $(seq 300); do grep -q '^attach:' $1 && return 0; sleep 0.2; done; return 1; }}
names() {{ while kill -0 $1 2>/dev/null; do cat /proc/$1/task/*/comm >> /tmp/names.txt 2>/dev/null; sleep 0.05; done; }}
mkdir /sys/fs/cgroup/rt-owner /sys/fs/cgroup/rt-empty
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
stat -c %i /sys/fs/cgroup/rt-owner > /tmp/owner.ino
T=""
start() {{ n=$1; shift; rmap-trace --attach-only --attach-mode fentry --min-duration-us 0 --interval 600 --json /tmp/$n.json "$@" > /tmp/$n.txt 2>&1 & T="$T $!"; attached /tmp/$n.txt || echo "$n did not attach"; }}
start all --csv /tmp/all.csv --threads
start cg --cgroup /rt-owner
start empty --cgroup /sys/fs/cgroup/rt-empty
start proc --process rmap-trace
start comm --comm rmap-trace
start gc --comm "{THREAD}"
sh -c 'echo $$ > /sys/fs/cgroup/rt-owner/cgroup.procs; exec rmap-trace workload --types anon --layouts split --pages {pages} --thread-name "{THREAD}"' > /tmp/w.txt 2>&1 &
W=$!
echo $W > /tmp/w.pid
names $W &
wait $W; echo "workload exit $?" >> /tmp/w.txt
kill -TERM $T; wait $T
rmap-trace --attach-only --cgroup /no-such-cgroup > /tmp/bad.txt 2>&1; echo "exit $?" >> /tmp/bad.txt
sort -u /tmp/names.txt > /tmp/names.u
for f in owner.ino w.pid w.txt bad.txt all.csv all.txt names.u; do emit $f /tmp/$f; done
for n in all cg empty proc comm gc; do emit $n /tmp/$n.json; done
"#
    )
}

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    let out = guest::boot(args, &script(pages), false)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    for line in &out.console {
        println!("guest: {line}");
    }
    for name in ["w.txt", "all.txt", "bad.txt"] {
        if let Some(t) = out.outputs.get(name) {
            println!("--- guest output, {name} ---\n{}", t.trim_end());
        }
    }
    verify(&out, c)
}

fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}

/// The workload's walks in the CSV of the unfiltered tracer: (comm, process, cgroup id, path).
/// Lines with as many fields as the header (a comm with a comma in it is quoted, and splits).
fn workload_lines<'a>(csv: &'a str, tgid: &str) -> Vec<Vec<&'a str>> {
    let mut lines = csv.lines();
    let columns = lines.next().map_or(0, |h| h.split(',').count());
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() == columns && f.len() > 16 && f[7] == tgid && f[3] == "anon")
        .collect()
}

fn verify(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let (ino, tgid) = (text(run, "owner.ino"), text(run, "w.pid"));
    let all = json(run, "all")?;
    let lines = workload_lines(text(run, "all.csv"), tgid);
    let walks = lines.len() as u64;
    c.check(
        "owners: the workload walked (unfiltered CSV)",
        walks > 0 && text(run, "w.txt").contains("workload exit 0"),
        format!("{walks} anon walks by tgid {tgid}"),
    );
    // Ground truth from the guest: the cgroup directory's inode, the path it was made at.
    let owned = lines
        .iter()
        .filter(|f| f[15] == ino && f[16] == "/rt-owner")
        .count() as u64;
    c.check(
        "owners: every walk of the workload is owned by its cgroup (id = inode of /sys/fs/cgroup/rt-owner)",
        owned == walks && !ino.is_empty(),
        format!("{owned} of {walks} CSV lines with cgroup_id {ino} and /rt-owner"),
    );
    let owner_row = row(&all["owners"], "/rt-owner");
    let count = owner_row.and_then(|r| r["count"].as_u64()).unwrap_or(0);
    let walkers: Vec<&str> = owner_row
        .and_then(|r| r["parts"].as_array())
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    c.check(
        "owners: the owner table has /rt-owner with its walks, walked by rmap-trace",
        count == walks && walkers.contains(&"rmap-trace"),
        format!("count {count}, walkers {walkers:?}"),
    );
    filters(run, walks, &lines, c)?;
    let all_txt = text(run, "all.txt");
    let threads = all_txt.lines().find(|l| l.trim_start().starts_with("threads:"));
    c.check(
        "owners: --threads lists the renamed thread under its process",
        threads.is_some_and(|l| l.contains(THREAD)),
        threads.unwrap_or("<no threads line>").to_string(),
    );
    let bad = text(run, "bad.txt");
    c.check(
        "owners: --cgroup of no cgroup is one error line before attaching",
        bad.lines()
            .next()
            .is_some_and(|l| l.starts_with("error:") && l.contains("no such cgroup"))
            && !bad.contains("attach:")
            && bad.ends_with("exit 2"),
        bad.replace('\n', " | "),
    );
    Ok(())
}

/// Each filtered tracer counted in the kernel exactly what the unfiltered one's records say.
fn filters(run: &GuestRun, walks: u64, lines: &[Vec<&str>], c: &mut Checks) -> anyhow::Result<()> {
    let by_comm = |name: &str| lines.iter().filter(|f| f[8] == name).count() as u64;
    let (renamed, plain) = (by_comm(THREAD), by_comm("rmap-trace"));
    let cases: [(&str, &str, u64); 5] = [
        ("cg", "--cgroup /rt-owner: every walk of its memory", walks),
        ("empty", "--cgroup of an empty cgroup: none", 0),
        (
            "proc",
            "--process rmap-trace: every walk, renamed threads too",
            walks,
        ),
        ("gc", "--comm 'GC Thread#0': the renamed thread's walks", renamed),
        (
            "comm",
            "--comm rmap-trace: none (the process's name, no walking thread's)",
            plain,
        ),
    ];
    for (name, what, want) in cases {
        let doc: Value = json(run, name)?;
        let got = kernel_walks(&doc, "anon");
        c.check(
            &format!("owners: {what}"),
            got == want,
            format!("kernel counted {got}, expected {want}"),
        );
    }
    // What the guest's /proc showed, sampled every 50 ms (a short-lived thread can be missed):
    // printed, not required.
    let seen = text(run, "names.u");
    c.check(
        "owners: every walk was made by the thread named --thread-name",
        renamed == walks && walks > 0,
        format!(
            "{renamed} by {THREAD}, {plain} by rmap-trace; /proc showed {:?}",
            seen.lines().collect::<Vec<_>>()
        ),
    );
    Ok(())
}
