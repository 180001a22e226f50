//! The kernels suite's guest script: every attach mode the kernel offers traces one workload
//! while tracefs kretprobes on the same walkers count the same walks; then (`Full`)
//! `--attach-only --stalls` over a workload with a victim thread, a Prometheus scrape of
//! `--attach-only`, and a SIGKILL of a KSM run followed by `rmap-trace restore`.
use super::Depth;

/// Pages (and VMAs) of the workloads: a KSM page of 256 mappings, and enough anon and file
/// pages for a sample of migrations.
pub const PAGES: u32 = 300;

/// The script: `probe`, then one tracer per available mode (`Smoke`: the one auto chooses).
pub fn script(depth: Depth) -> String {
    let modes = match depth {
        Depth::Full => "$(grep ' available:' /tmp/probe.txt | awk '{print $2}')",
        Depth::Smoke => "auto",
    };
    let mut s = format!(
        r#"T=/sys/kernel/tracing
PAGES={PAGES}
knobs() {{ for k in run pages_to_scan sleep_millisecs max_page_sharing; do echo "$k=$(cat /sys/kernel/mm/ksm/$k)"; done; }}
attached() {{ for i in $(seq 300); do grep -q '^attach:' $1 && return 0; sleep 0.2; done; return 1; }}
uname -v > /tmp/build.txt; emit build /tmp/build.txt
rmap-trace probe --json /tmp/probe.json > /tmp/probe.txt 2>&1
emit probe /tmp/probe.json; emit probe.txt /tmp/probe.txt
{KPROBES}
for m in {modes}; do
  phase mode-$m
  A="--attach-mode $m"; [ $m = auto ] && A=""
  rmap-trace --attach-only $A --comm rmap-trace --min-duration-us 0 --json /tmp/$m.json > /tmp/$m.txt 2>&1 &
  P=$!
  attached /tmp/$m.txt || echo "tracer $m did not attach" >> /tmp/$m.txt
  echo > $T/trace; echo 1 > $T/events/rmapk/enable
  rmap-trace workload --types ksm,anon,file --layouts split --pages $PAGES > /tmp/w-$m.txt 2>&1
  echo "workload exit $?" >> /tmp/w-$m.txt
  echo 0 > $T/events/rmapk/enable
  for t in ksm anon file; do echo "count $t $(grep -c "rmap-trace-[0-9]* .* $t: (" $T/trace)"; done > /tmp/count-$m
  sed 's/^ */profile /' $T/kprobe_profile >> /tmp/count-$m
  kill -TERM $P; wait $P; echo "tracer exit $?" >> /tmp/$m.txt
  emit $m /tmp/$m.json; emit $m.txt /tmp/$m.txt; emit w-$m /tmp/w-$m.txt; emit count-$m /tmp/count-$m
done
echo "$(echo {modes})" > /tmp/modes.txt; emit modes /tmp/modes.txt
"#
    );
    if depth == Depth::Full {
        s.push_str(FULL);
    }
    s
}

/// A kretprobe per walker that kprobe mode resolves (its line of `probe`: `kprobe+kretprobe:SYM`),
/// named after its page type, in the `rmapk` group; the trace buffer large enough for every
/// walk of the workloads.
const KPROBES: &str = r#"echo 8192 > $T/buffer_size_kb
for s in $(grep '^mode kprobe ' /tmp/probe.txt | sed 's/.*available: //; s/kprobe+kretprobe://g; s/,/ /g'); do
  case $s in *ksm*) t=ksm;; *anon*) t=anon;; *file*) t=file;; *) continue;; esac
  echo "r:rmapk/$t $s" >> $T/kprobe_events
done
cat $T/kprobe_events > /tmp/kprobes.txt; emit kprobes /tmp/kprobes.txt"#;

/// The benchmark with `--stalls`, a scrape of `--attach-only --prometheus`, a SIGKILL of a KSM
/// run and `restore`.
const FULL: &str = r#"phase stalls
rmap-trace --attach-only --stalls --json /tmp/stalls.json > /tmp/stalls.txt 2>&1 &
P=$!
attached /tmp/stalls.txt
rmap-trace workload --types anon --layouts split --pages $PAGES --victims 1 > /tmp/stalls-w.txt 2>&1
kill -TERM $P; wait $P; echo "exit $?" >> /tmp/stalls.txt
emit stalls /tmp/stalls.json; emit stalls.txt /tmp/stalls.txt; emit stalls-w /tmp/stalls-w.txt
phase prometheus
ifconfig lo 127.0.0.1 up
rmap-trace --attach-only --prometheus 9500 --interval 0.5 > /tmp/prom.txt 2>&1 &
P=$!
for i in $(seq 300); do grep -q '^prometheus: serving' /tmp/prom.txt && break; sleep 0.2; done
rmap-trace workload --types anon --layouts split --pages $PAGES > /dev/null 2>&1
# The walk series are set at each interval's end.
sleep 2
wget -qO /tmp/metrics http://127.0.0.1:9500/metrics; echo "wget exit $?" >> /tmp/prom.txt
kill -TERM $P; wait $P
emit metrics /tmp/metrics; emit prom.txt /tmp/prom.txt
phase restore
knobs > /tmp/k.before
rmap-trace --types ksm --pages $PAGES > /tmp/kill.txt 2>&1 &
P=$!
# Killed once it changed KSM's settings (they stay changed until its scenario ends).
for i in $(seq 3000); do [ "$(cat /sys/kernel/mm/ksm/pages_to_scan)" != 100 ] && break; sleep 0.02; done
kill -KILL $P; wait $P
knobs > /tmp/k.killed
rmap-trace restore > /tmp/restore.txt 2>&1; echo "exit $?" >> /tmp/restore.txt
knobs > /tmp/k.after
for f in k.before k.killed k.after restore.txt kill.txt; do emit $f /tmp/$f; done
"#;
