//! The guest script: each repetition runs every tracer row over every workload, interleaved,
//! and emits per run the workload's output (`<rep>-<row>-<workload>.w`), what the tracer saw
//! (`.t`), the same workload run untraced just before (`.b`, the run's baseline) and the run
//! time of every BPF program loaded, read before the tracer stops (`.s`, `rmap-trace bpf-stats`).
use super::{Row, Sizes, Workload};

/// Shell functions shared by all rows.
const COMMON: &str = r#"waitfor() { end=$(( $(date +%s) + $3 )); while [ $(date +%s) -lt $end ]; do grep -q "$2" $1 && return 0; sleep 0.5; done; return 1; }
# Signals process $1 with $2 and waits up to $3 s for it to end; false if it has not.
finish_soft() { kill -$2 $1 2>/dev/null; end=$(( $(date +%s) + $3 )); while kill -0 $1 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 0.5; done; ! kill -0 $1 2>/dev/null; }
# Ends process $1: signal $2, then KILL after $3 s.
finish() { kill -$2 $1 2>/dev/null; end=$(( $(date +%s) + $3 )); while kill -0 $1 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 0.5; done; kill -KILL $1 2>/dev/null; wait $1; }
SYMS=""
# The file walker is __rmap_walk_file where rmap_walk_file became its inline wrapper.
for f in rmap_walk_ksm rmap_walk_anon rmap_walk_file:__rmap_walk_file; do
  for g in $(echo $f | tr : ' '); do
    s=$(awk -v f=$g '$3 == f || (index($3, f ".") == 1 && $3 !~ /\.cold$/) { print $3; exit }' /proc/kallsyms)
    [ -n "$s" ] && { SYMS="$SYMS $s"; break; }
  done
done
echo "bench: walker symbols:$SYMS"
# Per-program run counts and run time (kernel/bpf/syscall.c: bpf_stats_enabled_key), read by
# `rmap-trace bpf-stats`. Every row runs with it, the no-tracer row included.
echo 1 > /proc/sys/kernel/bpf_stats_enabled || echo "bench: no kernel.bpf_stats_enabled"
TR=/sys/kernel/tracing
BT=/opt/bpftrace
start_none() { :; }
stop_none() { echo none > /tmp/t.txt; }
start_rmap() {
  # The last run's output goes first: `waitfor` must not find its attach line before this
  # tracer's shell has truncated the file.
  rm -f /tmp/t.json /tmp/tl.txt
  rmap-trace --attach-only --attach-mode "$@" --interval 600 --json /tmp/t.json > /tmp/tl.txt 2>&1 &
  T=$!
  waitfor /tmp/tl.txt '^attach:' 300 || { echo "bench: rmap-trace $1 did not attach"; cat /tmp/tl.txt; }
}
stop_rmap() { finish $T TERM 120; cp /tmp/t.json /tmp/t.txt 2>/dev/null || echo '{}' > /tmp/t.txt; }
start_fentry() { start_rmap fentry; }
start_fentry_all() { start_rmap fentry --min-duration-us 0; }
start_fentry_nooff() { start_rmap fentry --no-offcpu; }
start_fentry_stalls() { start_rmap fentry --stalls; }
stop_fentry_stalls() { stop_rmap; }
stop_fentry_all() { stop_rmap; }
stop_fentry_nooff() { stop_rmap; }
start_kprobe() { start_rmap kprobe; }
start_tracepoint() { start_rmap tracepoint; }
stop_fentry() { stop_rmap; }
stop_kprobe() { stop_rmap; }
stop_tracepoint() { stop_rmap; }
start_tracefs() {
  echo 0 > $TR/tracing_on; echo > $TR/trace; echo 4096 > $TR/buffer_size_kb
  for s in $SYMS; do
    ev=$(echo $s | tr . _)
    echo "p:rbench/e_$ev $s" >> $TR/kprobe_events
    echo "r:rbench/r_$ev $s" >> $TR/kprobe_events
  done
  echo 1 > $TR/events/rbench/enable; echo 1 > $TR/tracing_on
  cat $TR/trace_pipe > /tmp/tf.txt &
  T=$!
}
stop_tracefs() {
  echo 0 > $TR/events/rbench/enable; sleep 1; finish $T TERM 10
  for s in $SYMS; do ev=$(echo $s | tr . _); echo "-:rbench/e_$ev" >> $TR/kprobe_events; echo "-:rbench/r_$ev" >> $TR/kprobe_events; done
  gzip -c /tmp/tf.txt | base64 > /tmp/t.txt; rm -f /tmp/tf.txt
}
BTPROG=""
for s in $SYMS; do BTE="${BTE:+$BTE,}kprobe:$s"; BTR="${BTR:+$BTR,}kretprobe:$s"; done
BTPROG="BEGIN { printf(\"bpftrace-ready\\n\"); } $BTE { @start[tid] = nsecs; } $BTR /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); } tracepoint:syscalls:sys_enter_sync /comm == \"sync\"/ { exit(); }"
for s in $SYMS; do BTK="${BTK:+$BTK,}kfunc:$s"; BTKR="${BTKR:+$BTKR,}kretfunc:$s"; done
# The same one-liner on fentry/fexit (bpftrace's kfunc/kretfunc): its best mechanism here.
BTKPROG="BEGIN { printf(\"bpftrace-ready\\n\"); } $BTK { @start[tid] = nsecs; } $BTKR /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); } tracepoint:syscalls:sys_enter_sync /comm == \"sync\"/ { exit(); }"
# The fentry floor: empty fentry/fexit programs on the same functions.
BTEMPTY="BEGIN { printf(\"bpftrace-ready\\n\"); } $BTK { } $BTKR { } tracepoint:syscalls:sys_enter_sync /comm == \"sync\"/ { exit(); }"
# The kprobe floor: empty kprobe/kretprobe programs on the same functions.
BTEMPTYK="BEGIN { printf(\"bpftrace-ready\\n\"); } $BTE { } $BTR { } tracepoint:syscalls:sys_enter_sync /comm == \"sync\"/ { exit(); }"
if [ -d $BT ]; then
  mount -t debugfs none /sys/kernel/debug 2>/dev/null
  mkdir -p $BT/proc $BT/sys $BT/dev $BT/tmp
  mount -o bind /proc $BT/proc; mount -o rbind /sys $BT/sys; mount -o bind /dev $BT/dev
  echo "bench: bpftrace program: $BTPROG"
  echo "bench: bpftrace kfunc program: $BTKPROG"
fi
start_bpftrace() { start_bt "$BTPROG"; }
start_bpftrace_kfunc() { start_bt "$BTKPROG"; }
stop_bpftrace_kfunc() { stop_bpftrace; }
start_fentry_empty() { start_bt "$BTEMPTY"; }
stop_fentry_empty() { stop_bpftrace; }
start_kprobe_empty() { start_bt "$BTEMPTYK"; }
stop_kprobe_empty() { stop_bpftrace; }
start_bt() {
  chroot $BT /usr/bin/bpftrace -B line -e "$1" > /tmp/bt.txt 2>&1 &
  T=$!
  # BEGIN runs once every probe is attached.
  waitfor /tmp/bt.txt '^bpftrace-ready' 240 || { echo "bench: bpftrace did not attach"; cat /tmp/bt.txt; ps; }
  sleep 1
}
# bpftrace 0.17 now and then ignores a SIGINT (2 runs in 15): then `sync` makes it exit() (its
# maps are printed the same way).
stop_bpftrace() {
  finish_soft $T INT 30 || { echo "bench: bpftrace ignored SIGINT, exit() by sync"; sync; }
  finish $T INT 90; cp /tmp/bt.txt /tmp/t.txt
}
"#;

fn workload_line(w: Workload, s: &Sizes) -> String {
    match w {
        Workload::Anon => format!(
            "rmap-trace workload --types anon --layouts split --pages {} --trigger move-pages --move-batch {}",
            s.anon_pages, s.move_batch
        ),
        Workload::Ksm => format!(
            "rmap-trace workload --types ksm --pages {} --trigger move-pages",
            s.ksm_vmas
        ),
        Workload::Victims => format!(
            "rmap-trace workload --types anon --layouts split --pages {} --trigger move-pages --move-batch {} --victims 1",
            s.anon_pages, s.move_batch
        ),
        Workload::Reclaim => format!(
            "rmap-trace workload --types anon --layouts split --pages {} --trigger reclaim --setup-swap",
            s.reclaim_pages
        ),
    }
}

/// The whole script for one boot.
pub fn script(rows: &[Row], workloads: &[Workload], sizes: &Sizes, reps: u32) -> String {
    let mut s = COMMON.to_string();
    s += "wl() { case $1 in\n";
    for &w in workloads {
        s += &format!("  {}) timeout 900 {} ;;\n", w.name(), workload_line(w, sizes));
    }
    s += "esac > /tmp/w.txt 2>&1; echo \"exit $?\" >> /tmp/w.txt; }\n";
    s += r#"run() {
  run_name=$1-$2-$3; echo "bench: $run_name at $(cut -d' ' -f1 /proc/uptime) s"
  if [ $2 != none ]; then wl $3; cp /tmp/w.txt /tmp/b.txt; fi
  start_$2; wl $3
  if [ $2 != none ]; then rmap-trace bpf-stats > /tmp/s.txt 2>&1; fi
  stop_$2; emit $run_name.w /tmp/w.txt; emit $run_name.t /tmp/t.txt
  if [ $2 != none ]; then emit $run_name.b /tmp/b.txt; emit $run_name.s /tmp/s.txt; fi
}
"#;
    // One unmeasured warm-up of each workload: page cache, first faults, zram module.
    for &w in workloads {
        s += &format!("run 0 none {}\n", w.name());
    }
    s += &format!("for rep in $(seq {reps}); do\n");
    for r in rows {
        for &w in workloads {
            s += &format!("  run $rep {} {}\n", r.name(), w.name());
        }
    }
    s += "done\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_runs() {
        let sizes = Sizes {
            anon_pages: 100,
            move_batch: 512,
            ksm_vmas: 2000,
            reclaim_pages: 50,
        };
        let s = script(
            &[Row::None, Row::Fentry],
            &[Workload::Anon, Workload::Ksm],
            &sizes,
            3,
        );
        let loop_body: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.starts_with("for rep"))
            .filter(|l| l.trim_start().starts_with("run "))
            .collect();
        assert_eq!(
            loop_body,
            [
                "  run $rep none anon",
                "  run $rep none ksm",
                "  run $rep fentry anon",
                "  run $rep fentry ksm"
            ]
        );
        assert!(s.contains("--move-batch 512"));
        assert!(s.contains("seq 3"));
    }

    /// Every row of Debian's boots has its start and stop functions; bpftrace's kfunc row runs
    /// the kprobe row's one-liner, on kfunc/kretfunc probes.
    #[test]
    fn every_row_starts_and_stops() {
        let sizes = Sizes {
            anon_pages: 100,
            move_batch: 512,
            ksm_vmas: 2000,
            reclaim_pages: 50,
        };
        let s = script(&super::super::DEBIAN_ROWS, &[Workload::Anon], &sizes, 1);
        for r in super::super::DEBIAN_ROWS {
            for f in ["start", "stop"] {
                assert!(
                    s.contains(&format!("\n{f}_{}() {{", r.name())),
                    "no {f}_{}",
                    r.name()
                );
            }
        }
        let prog = |var: &str| {
            let l = s
                .lines()
                .find(|l| l.starts_with(&format!("{var}=\"BEGIN")))
                .expect("program line");
            l.replace("$BTE", "ENTRY")
                .replace("$BTR", "RETURN")
                .replace("$BTKR", "RETURN")
                .replace("$BTK", "ENTRY")
                .replacen(var, "P", 1)
        };
        assert_eq!(prog("BTKPROG"), prog("BTPROG"));
        assert!(s.contains("BTK=\"${BTK:+$BTK,}kfunc:$s\""), "{s}");
    }
}
