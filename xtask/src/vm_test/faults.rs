//! The "faults" suite, on Debian's 6.1 kernel: the host state a run changes (KSM knobs, its
//! cgroup and `+memory`, zram swap and the zram module, a tracefs mount) is read before any
//! run; the run is then killed with SIGKILL at each phase while those are changed, and the next
//! start (or `rmap-trace restore` by hand) must put every value back exactly.
use super::Checks;
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// What a run can change, one item a line, in a fixed order (compared as text).
const STATE: &str = r#"state() {
  for k in run pages_to_scan sleep_millisecs max_page_sharing; do echo "ksm $k=$(cat /sys/kernel/mm/ksm/$k)"; done
  echo "subtree $(cat /sys/fs/cgroup/cgroup.subtree_control)"
  for g in $(ls /sys/fs/cgroup | grep rmap-trace); do echo "cgroup $g"; done
  grep -v '^Filename' /proc/swaps | awk '{print "swap " $1}'
  for z in $(ls /sys/block | grep zram); do echo "zram $z disksize=$(cat /sys/block/$z/disksize)"; done
  [ -d /sys/module/zram ] && echo "module zram"
  grep tracefs /proc/mounts | awk '{print "tracefs " $2}'
  for j in $(ls /run/rmap-trace 2>/dev/null | grep '[.]json$'); do echo "journal $j"; done
  ls -a /tmp | grep rmap-trace | sed 's/^/tmp /'
}
wait_for() { for i in $(seq 3000); do eval "$1" && return 0; sleep 0.02; done; echo "timed out waiting for: $1"; return 1; }
"#;

/// One kill: `start` runs a command in the background as $P; `ready` is a shell condition for
/// the phase to kill in; `next` is what runs next and must restore.
struct Kill {
    name: &'static str,
    start: String,
    ready: &'static str,
    next: &'static str,
}

fn kills(pages: u32) -> Vec<Kill> {
    vec![
        Kill {
            name: "merge",
            // KSM at full speed, its cgroup entered, zram swap on, tracefs mounted by the run.
            start: format!(
                "rmap-trace --types ksm --pages {pages} --trigger reclaim --setup-swap --max-page-sharing 64"
            ),
            ready: r#"[ "$(cat /sys/kernel/mm/ksm/run)" = 1 ] && grep -q zram /proc/swaps && ls /sys/fs/cgroup | grep -q rmap-trace && grep -q tracefs /proc/mounts"#,
            next: "rmap-trace probe",
        },
        Kill {
            name: "paused",
            // After the merge: ksmd paused (run=0) with the aggressive knobs, trigger running.
            start: format!("rmap-trace workload --types ksm --pages {pages} --trigger move-pages --mremap"),
            ready: r#"[ "$(cat /sys/kernel/mm/ksm/run)" = 0 ] && [ "$(cat /sys/kernel/mm/ksm/pages_to_scan)" = 10000 ]"#,
            next: "rmap-trace workload --types anon --layouts split --pages 200 --trigger compact",
        },
        Kill {
            name: "file",
            // The file scenario in its cgroup with zram swap: its temporary file must be gone.
            start: format!(
                "rmap-trace workload --types file --layouts split --pages {pages} --trigger reclaim --setup-swap"
            ),
            // Killed once the file is mapped (its name shows in the maps, unlinked or not).
            ready: r"grep -q 'rmap-trace-.*[.]data' /proc/$P/maps && ls /sys/fs/cgroup | grep -q rmap-trace && grep -q zram /proc/swaps",
            next: "rmap-trace probe",
        },
        Kill {
            name: "live",
            // --attach-only mounted tracefs; restored by hand.
            start: "rmap-trace --attach-only --interval 30".into(),
            ready: r"grep -q tracefs /proc/mounts && grep -q '^attach:' /tmp/run.out",
            next: "rmap-trace restore",
        },
    ]
}

fn script(pages: u32) -> String {
    let mut s = String::from(STATE);
    // The guest's init mounts tracefs; a run mounts it only when none is there.
    s.push_str("umount /sys/kernel/tracing 2>/dev/null\nstate > /tmp/before\nemit before /tmp/before\n");
    for k in kills(pages) {
        s.push_str(&format!(
            r#"{start} > /tmp/run.out 2>&1 &
P=$!
wait_for '{ready}'
state > /tmp/mid
kill -KILL $P; wait $P; echo "killed status $?" >> /tmp/run.out
{next} > /tmp/next.out 2>&1; echo "exit $?" >> /tmp/next.out
umount /sys/kernel/tracing 2>/dev/null
state > /tmp/after
emit {name}.run /tmp/run.out
emit {name}.mid /tmp/mid
emit {name}.next /tmp/next.out
emit {name}.after /tmp/after
"#,
            start = k.start,
            ready = k.ready,
            next = k.next,
            name = k.name,
        ));
    }
    s.push_str(CTRL_C);
    s
}

/// Ctrl-C under full load (item 9): a live tracer of every process, `--interval 1`, while
/// anon workloads and a compaction loop walk without pause; SIGINT after the load has run a
/// few seconds. The shell reads /proc/uptime (the guest's clock runs on the TSC) just before
/// the signal and when `wait` returns; the interval lines carry the tracer's own elapsed time.
const CTRL_C: &str = r#"state > /tmp/int.before
rmap-trace --attach-only --interval 1 --min-duration-us 0 > /tmp/int.out 2>&1 &
T=$!
wait_for "grep -q '^attach:' /tmp/int.out"
load() { while [ ! -f /tmp/int.stop ]; do rmap-trace workload --types anon --pages 500 > /dev/null 2>&1; done; }
compact() { while [ ! -f /tmp/int.stop ]; do echo 1 > /proc/sys/vm/compact_memory; done; }
load & L1=$!
load & L2=$!
compact & L3=$!
sleep 6
(while ! grep -q '^=== summary' /tmp/int.out; do sleep 0.01; done; read ts rest < /proc/uptime; echo $ts > /tmp/int.summary) &
S=$!
read t0 rest < /proc/uptime
kill -INT $T
# A tracer deaf to SIGINT is ended 5 s later, so that the check fails instead of hanging.
(sleep 5; kill -TERM $T 2>/dev/null) &
W=$!
wait $T; echo "exit $?" >> /tmp/int.out
read t1 rest < /proc/uptime
# At once: the load's next rmap-trace would put back what a dead tracer left (journal).
{ grep tracefs /proc/mounts; ls /run/rmap-trace 2>/dev/null | grep '[.]json$'; } > /tmp/int.left
kill $W 2>/dev/null
wait $S
touch /tmp/int.stop; wait $L1 $L2 $L3; rm -f /tmp/int.stop
state > /tmp/int.after
echo "$t0 $(cat /tmp/int.summary) $t1" > /tmp/int.times
emit int.out /tmp/int.out
emit int.times /tmp/int.times
emit int.left /tmp/int.left
emit int.before /tmp/int.before
emit int.after /tmp/int.after
"#;

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    let out = guest::boot(args, &script(pages), false)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    verify(&out, pages, c);
    ctrl_c(&out, c);
    Ok(())
}

fn verify(run: &GuestRun, pages: u32, c: &mut Checks) {
    let out = |n: &str| {
        run.outputs
            .get(n)
            .map_or_else(|| format!("<no {n}>"), |s| s.trim().to_string())
    };
    let before = out("before");
    println!("--- guest state before the runs ---\n{before}");
    c.check(
        "faults: state read before the runs",
        before.contains("ksm run=") && !before.contains("tracefs") && !before.contains("journal"),
        before.replace('\n', " | "),
    );
    for k in kills(pages) {
        let (mid, after, next) = (
            out(&format!("{}.mid", k.name)),
            out(&format!("{}.after", k.name)),
            out(&format!("{}.next", k.name)),
        );
        println!(
            "--- kill at {}: state when killed ---\n{mid}\n--- {} ---\n{next}",
            k.name, k.next
        );
        // The kill happened while the host was changed, or the check below proves nothing.
        let changed: Vec<&str> = mid.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
        c.check(
            &format!("faults {}: killed while the host was changed", k.name),
            !changed.is_empty() && out(&format!("{}.run", k.name)).contains("killed status 137"),
            changed.join(" | "),
        );
        c.check(
            &format!("faults {}: `{}` restores every value", k.name, k.next),
            after == before,
            format!("after: {}", after.replace('\n', " | ")),
        );
        c.check(
            &format!("faults {}: one line says what was restored", k.name),
            next.lines()
                .filter(|l| l.contains("restored the host state left by pid"))
                .count()
                == 1
                && next.contains("exit 0"),
            next.lines()
                .find(|l| l.contains("restored"))
                .unwrap_or("")
                .to_string(),
        );
    }
}

/// The tracer's interval stamps (`[    1.0s]`) in its output, in order.
fn stamps(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("s]")?.0.trim().parse().ok())
        .collect()
}

/// Under the load, interval lines came about every second, SIGINT ended the tracer within
/// about a second with its summary, and the host was left as before.
fn ctrl_c(run: &GuestRun, c: &mut Checks) {
    let text = run.outputs.get("int.out").map_or("", String::as_str);
    println!("--- Ctrl-C under load: tracer output ---\n{}", text.trim_end());
    let stamps = stamps(text);
    let busy = text.lines().filter(|l| l.starts_with("anon ")).count();
    // Tick k is due k seconds after the start (tokio's interval catches up on a missed tick
    // at once): how late each line came is what a starved loop shows.
    let late = stamps
        .iter()
        .zip(1u32..)
        .map(|(t, k)| t - f64::from(k))
        .fold(0.0, f64::max);
    c.check(
        "ctrl-c under load: each interval line within a second of its tick",
        stamps.len() >= 5 && late <= 1.0 && busy >= 3,
        format!(
            "{} interval lines, {busy} with anon walks, latest {late:.2} s after its tick: {stamps:?}",
            stamps.len()
        ),
    );
    let times: Vec<f64> = run
        .outputs
        .get("int.times")
        .map(|t| t.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let (summary_s, exit_s) = match times[..] {
        [t0, ts, t1] => (ts - t0, t1 - t0),
        _ => (f64::NAN, f64::NAN),
    };
    c.check(
        "ctrl-c under load: the summary within ~1 s of SIGINT",
        summary_s <= 1.2 && text.contains("=== summary") && text.contains("exit 0"),
        format!(
            "SIGINT to summary {summary_s:.2} s, to exit {exit_s:.2} s, {}",
            text.lines()
                .rev()
                .find(|l| l.starts_with("exit"))
                .unwrap_or("no exit line")
        ),
    );
    let left = run.outputs.get("int.left").map_or("<none>", |s| s.trim());
    c.check(
        "ctrl-c under load: the tracer's own exit unmounted its tracefs and removed its journal",
        left.is_empty(),
        format!("left when it exited: [{}]", left.replace('\n', " | ")),
    );
    let (before, after) = (
        run.outputs.get("int.before").map(|s| s.trim()),
        run.outputs.get("int.after").map(|s| s.trim()),
    );
    c.check(
        "ctrl-c under load: host state as before",
        before.is_some() && before == after,
        after.unwrap_or("<none>").replace('\n', " | "),
    );
}
