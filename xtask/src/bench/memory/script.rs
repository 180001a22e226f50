//! The guest side of the memory bench: `rmap-trace --attach-only --prometheus --hlog` under
//! loops of walk-producing workloads, and every 10 s one sample of the tracer's memory.
//!
//! A sample is a block of lines: `sample <seconds> <VmRSS kB> <RssAnon kB> <RssFile kB>
//! <scrape status> <rmap_walks_total lines>` then one
//! `map <name> <Size kB> <Rss kB>` per resident mapping of the tracer (from /proc/PID/smaps;
//! `[anon]` for one without a name). A BPF map's mmap shows as `anon_inode:bpf-map`: the ring
//! buffer's consumer page and its producer pages plus data, mapped twice (kernel/bpf/ringbuf.c,
//! `bpf_ringbuf_area_alloc`, maps the data pages twice in a row so that a record that wraps is
//! contiguous; aya maps the producer part whole).
//!
//! The tracer runs with its memory reports on (`RUST_LOG=…,rmap_user::memory=debug`): the heap
//! at each step of the start and at each interval's end, with its long-lived tables' sizes;
//! those lines are sent as `memory`.

/// The tracer's port on the guest's loopback.
pub const PORT: u16 = 9500;

/// Seconds between two samples.
pub const PERIOD_S: u32 = 10;

pub fn script(minutes: u32, ringbuf_kib: u32) -> String {
    let samples = minutes * 60 / PERIOD_S;
    format!(
        r#"ifconfig lo 127.0.0.1 up
RUST_LOG=warn,rmap_user::memory=debug rmap-trace --attach-only --prometheus 127.0.0.1:{PORT} --hlog /tmp/m.hlog --interval {PERIOD_S} --min-duration-us 0 --ringbuf-kib {ringbuf_kib} > /tmp/t.txt 2>&1 &
T=$!
for i in $(seq 300); do grep -q '^prometheus: serving' /tmp/t.txt && break; sleep 0.2; done
grep -q '^prometheus: serving' /tmp/t.txt || {{ cat /tmp/t.txt; echo "tracer did not start"; exit 1; }}
# Each workload run is a new process (a new tgid, comm rmap-trace); anon with sharers forks
# 8 more. Two anon loops at once and one ksm loop (KSM is host-wide: one at a time).
anon() {{ while [ ! -f /tmp/stop ]; do rmap-trace workload --types anon --layouts split,sharers --sharers 8 --pages 300 > /dev/null 2>&1 || echo "anon workload exit $?" >> /tmp/w.txt; done; }}
ksm() {{ while [ ! -f /tmp/stop ]; do rmap-trace workload --types ksm --pages 200 > /dev/null 2>&1 || echo "ksm workload exit $?" >> /tmp/w.txt; done; }}
anon & A1=$!
anon & A2=$!
ksm & K=$!
: > /tmp/series
echo "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)" >> /tmp/w.txt
s=0
while [ $s -le {samples} ]; do
  wget -qO /tmp/metrics http://127.0.0.1:{PORT}/metrics; W=$?
  echo "sample $((s * {PERIOD_S})) $(awk '/^(VmRSS|RssAnon|RssFile):/ {{printf "%s ", $2}}' /proc/$T/status)$W $(grep -c '^rmap_walks_total' /tmp/metrics)" >> /tmp/series
  echo "$((s * {PERIOD_S})) $(awk '/^AnonHugePages:/ {{ n += $2 }} END {{ print n + 0 }}' /proc/$T/smaps) kB" >> /tmp/thp
  awk '/^[0-9a-f]+-[0-9a-f]+ / {{ name = ($6 == "" ? "[anon]" : $6) }} /^Size:/ {{ size = $2 }} /^Rss:/ {{ if ($2 > 0) print "map", name, size, $2 }}' /proc/$T/smaps >> /tmp/series
  s=$((s + 1))
  [ $s -le {samples} ] && sleep {PERIOD_S}
done
awk '/^[0-9a-f]+-[0-9a-f]+ / {{ name = $6 }} /^Rss:/ {{ print $2, name }}' /proc/$T/smaps | sort -rn | head -n 12 > /tmp/top
touch /tmp/stop
wait $A1 $A2 $K
kill -TERM $T; wait $T; echo "tracer exit $?" >> /tmp/w.txt
ls -l /tmp/m.hlog >> /tmp/w.txt
echo "hlog histogram lines: $(grep -vc '^#' /tmp/m.hlog)" >> /tmp/w.txt
grep 'rmap_user::memory' /tmp/t.txt > /tmp/mem.txt
grep -v 'rmap_user::memory' /tmp/t.txt | tail -n 30 > /tmp/t.tail
emit series /tmp/series
emit w.txt /tmp/w.txt
emit tracer.tail /tmp/t.tail
emit metrics /tmp/metrics
emit top /tmp/top
emit memory /tmp/mem.txt
emit thp /tmp/thp
"#
    )
}

#[cfg(test)]
mod tests {
    /// The tracer runs with its memory reports on, and they are sent.
    #[test]
    fn the_tracer_reports_its_memory() {
        let s = super::script(10, 16_384);
        let tracer = s
            .lines()
            .find(|l| l.contains("rmap-trace --attach-only"))
            .expect("the tracer's line");
        assert!(
            tracer.starts_with("RUST_LOG=warn,rmap_user::memory=debug rmap-trace "),
            "{tracer}"
        );
        assert!(s.contains("grep 'rmap_user::memory' /tmp/t.txt > /tmp/mem.txt"));
        assert!(s.contains("emit memory /tmp/mem.txt"));
    }
}
