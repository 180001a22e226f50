//! The guest side of the JVM suite: Debian's `OpenJDK` 17 chrooted into its root, each JVM in a
//! cgroup of its own, watched by rmap-trace tracers; what the guest's own files say (pids,
//! cgroup inodes, thread names, memory.stat, KSM counters, smaps) is sent back beside the
//! tracers' outputs.

/// The JVM's options: a small fixed heap (committed once), the serial GC, C1 only, no perf
/// data file: fast under emulation.
const JAVA: &str = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xms64m -Xmx64m -XX:+UseSerialGC \
                    -XX:TieredStopAtLevel=1 -XX:-UsePerfData -cp /app RmapLoad";

/// How long each phase lasts.
pub struct Sizes {
    /// Live heap of each JVM, MiB.
    pub heap_mib: u32,
    /// Pause between the JVM's passes over its heap under reclaim, ms.
    pub pause_ms: u32,
    /// Seconds of the JVM's own reclaim under memory.high.
    pub high_s: u32,
    /// Seconds of kswapd reclaim (0: no kswapd phase).
    pub kswapd_s: u32,
    /// Run the JVM without the shim beside the two with it.
    pub plain_jvm: bool,
}

fn common(s: &Sizes) -> String {
    format!(
        r#"R=/opt/jvm
for d in proc sys dev; do mkdir -p $R/$d; done
mount -o bind /proc $R/proc; mount -o rbind /sys $R/sys; mount -o bind /dev $R/dev
waitfor() {{ end=$(( $(date +%s) + $3 )); while [ $(date +%s) -lt $end ]; do grep -q "$2" $1 2>/dev/null && return 0; sleep 0.5; done; echo "timed out waiting for $2 in $1"; return 1; }}
attached() {{ waitfor $1 '^attach:' 120; }}
T=""
# tracer NAME ARGS...: an rmap-trace tracer, its summary in /tmp/NAME.txt, its JSON in /tmp/NAME.json.
tracer() {{ n=$1; shift; rmap-trace --attach-only --attach-mode fentry --min-duration-us 0 --interval 600 --json /tmp/$n.json "$@" > /tmp/$n.txt 2>&1 & T="$T $!"; attached /tmp/$n.txt; }}
# jvm NAME CGROUP PAUSE_MS [VAR=VALUE...]: a JVM in /sys/fs/cgroup/CGROUP, its pid in /tmp/NAME.pid.
jvm() {{
  n=$1; cg=$2; pause=$3; shift 3
  sh -c 'echo $$ > /sys/fs/cgroup/'$cg'/cgroup.procs; exec env "$@" chroot /opt/jvm {JAVA} {mib} '$pause sh "$@" > /tmp/$n.out 2>&1 &
  echo $! > /tmp/$n.pid
  waitfor /tmp/$n.out '^filled' 300
}}
# names PID: the thread names of PID, sampled until it ends.
names() {{ while kill -0 $1 2>/dev/null; do cat /proc/$1/task/*/comm >> /tmp/names.$1 2>/dev/null; sleep 0.5; done; }}
ksm() {{ echo "full_scans=$(cat /sys/kernel/mm/ksm/full_scans) pages_shared=$(cat /sys/kernel/mm/ksm/pages_shared) pages_sharing=$(cat /sys/kernel/mm/ksm/pages_sharing)"; }}
# settle: KSM scanned everything three more times.
settle() {{ f=$(( $(cat /sys/kernel/mm/ksm/full_scans) + 3 )); for i in $(seq 600); do [ $(cat /sys/kernel/mm/ksm/full_scans) -ge $f ] && return 0; sleep 0.5; done; echo "KSM did not settle"; }}
# heap PID: the JVM's 64 MiB heap mapping of /proc/PID/smaps (its size, RSS, KSM and flags).
heap() {{ awk '/^[0-9a-f]+-[0-9a-f]+ / {{ r = $1 }} /^Size:/ {{ s = $2 }} /^Rss:/ {{ rss = $2 }} /^KSM:/ {{ k = $2 }} /^VmFlags:/ {{ if (s == 65536) print r, "rss=" rss, "ksm=" k, $0 }}' /proc/$1/smaps; }}
# tally CSV: the records counted by what the checks compare (rmap-trace's CSV columns by
# name), a line "count,page_type,tgid,comm,process,kthread,cgroup_id,cgroup" each: the whole
# CSV is too long for the serial console under emulation.
tally() {{ awk -F, 'NR == 1 {{ for (i = 1; i <= NF; i++) c[$i] = i; next }}
  {{ n[$c["page_type"] "," $c["tgid"] "," $c["comm"] "," $c["process"] "," $c["kthread"] "," $c["cgroup_id"] "," $c["cgroup"]]++ }}
  END {{ for (k in n) print n[k] "," k }}' $1; }}
# pfns PID: the physical pages of PID's heap mapping (/proc/PID/pagemap, bits 0-54 of each
# present entry, as 13 hex digits), one a line.
pfns() {{ start=$(heap $1 | cut -d- -f1); dd if=/proc/$1/pagemap bs=8 skip=$(( 0x$start / 4096 )) count=16384 2>/dev/null | od -An -v -tx8 | tr -s ' ' '\n' | grep '^[89]' | cut -c4- | sort -u; }}
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
"#,
        mib = s.heap_mib
    )
}

/// Reclaim: the JVM in a cgroup whose memory.high is below its live heap, zram swap; then
/// kswapd, woken by a free-memory target above what the guest has free. `min_free_kbytes` is
/// shared out over the zones by their size, and each zone's low watermark is 5/4 of its min
/// (`mm/page_alloc.c`, `__setup_per_zone_wmarks`): at 85% of the freest big zone's free share, every
/// zone's free pages are below its low watermark (allocations wake kswapd) and the freest
/// zone's still above its min (allocations succeed there without direct reclaim). The JVM's
/// memory.high goes back to max before it is stopped, so that the threads it starts to shut
/// down (`SIGTERM handler`) do not reclaim unseen.
fn reclaim(s: &Sizes) -> String {
    let high = s.heap_mib * 3 / 4;
    let kswapd = if s.kswapd_s == 0 {
        String::new()
    } else {
        format!(
            r#"min=$(cat /proc/sys/vm/min_free_kbytes)
target=$(awk '/pages free/ {{ f = $3 }} /managed/ {{ t += $2; if ($2 > 100000 && f / $2 > r) r = f / $2 }} END {{ print int(0.85 * r * t * 4) }}' /proc/zoneinfo)
echo $target > /proc/sys/vm/min_free_kbytes
echo "min_free_kbytes $min -> $target"
sleep {}
echo $min > /proc/sys/vm/min_free_kbytes
grep -E '^(pgscan|pgsteal)_kswapd' /proc/vmstat
"#,
            s.kswapd_s
        )
    };
    format!(
        r#"echo 1G > /sys/block/zram0/disksize; mkswap /dev/zram0 > /dev/null; swapon /dev/zram0
mkdir /sys/fs/cgroup/jvm /sys/fs/cgroup/idle
stat -c %i /sys/fs/cgroup/jvm > /tmp/r.ino
T=""
tracer r-all --csv /tmp/r-all.csv --threads --ringbuf-kib 65536
tracer r-cg --cgroup /jvm
tracer r-idle --cgroup /sys/fs/cgroup/idle
tracer r-proc --process java
tracer r-comm --comm java
phase reclaim
jvm r jvm {pause}
phase filled
P=$(cat /tmp/r.pid)
cat /proc/$P/comm > /tmp/r.comm
names $P &
echo {high}M > /sys/fs/cgroup/jvm/memory.high
sleep {high_s}
phase kswapd
{kswapd}phase stop
echo max > /sys/fs/cgroup/jvm/memory.high
sleep 1
cat /sys/fs/cgroup/jvm/memory.stat > /tmp/r.stat
cat /sys/fs/cgroup/jvm/memory.swap.current > /tmp/r.swap
kill -TERM $P; wait $P
sleep 2
kill -TERM $T; wait $T
phase stopped
sort -u /tmp/names.$P > /tmp/r.names
tally /tmp/r-all.csv > /tmp/r-all.tally
phase tallied
for f in r.ino r.pid r.comm r.names r.stat r.swap r.out r-all.tally; do emit $f /tmp/$f; done
for n in r-all r-cg r-idle r-proc r-comm; do emit $n /tmp/$n.json; emit $n.txt /tmp/$n.txt; done
rm -f /tmp/r-all.csv
"#,
        high_s = s.high_s,
        pause = s.pause_ms,
    )
}

/// KSM: two JVMs with the shim (the second after the first merged alone), one without; then
/// their pages migrated to the other node (`migratepages`, by each JVM), the first JVM's cgroup
/// reclaimed (`memory.reclaim`, into the zram swap of the reclaim scenario: its KSM pages are
/// walked for references; the write fails with EAGAIN when less than asked was reclaimed, so
/// its status is printed, not required) and compaction (which may find nothing to move).
fn ksm(s: &Sizes) -> String {
    let plain = if s.plain_jvm {
        "jvm k-plain jvm-plain 1000\nsettle\nC=$(cat /tmp/k-plain.pid)\ncat /proc/$C/ksm_merging_pages > /tmp/k-plain.merged\nheap $C > /tmp/k-plain.heap\n"
    } else {
        ""
    };
    format!(
        r#"mkdir /sys/fs/cgroup/jvm-a /sys/fs/cgroup/jvm-b /sys/fs/cgroup/jvm-plain
for c in a b; do stat -c %i /sys/fs/cgroup/jvm-$c > /tmp/k-$c.ino; done
echo 1000 > /sys/kernel/mm/ksm/pages_to_scan; echo 20 > /sys/kernel/mm/ksm/sleep_millisecs; echo 1 > /sys/kernel/mm/ksm/run
T=""
phase ksm
tracer k-all --csv /tmp/k-all.csv --threads --ringbuf-kib 65536
jvm k-a jvm-a 1000 LD_PRELOAD=/app/ksm_shim.so
A=$(cat /tmp/k-a.pid)
settle
ksm > /tmp/k-alone
cat /proc/$A/ksm_merging_pages >> /tmp/k-alone
jvm k-b jvm-b 1000 LD_PRELOAD=/app/ksm_shim.so
B=$(cat /tmp/k-b.pid)
settle
{plain}ksm > /tmp/k-both
cat /proc/$A/ksm_merging_pages /proc/$B/ksm_merging_pages >> /tmp/k-both
heap $A > /tmp/k-a.heap; heap $B > /tmp/k-b.heap
cat /proc/$A/comm /proc/$B/comm > /tmp/k.comm
pfns $A > /tmp/k-a.pfns; pfns $B > /tmp/k-b.pfns
cat /tmp/k-a.pfns /tmp/k-b.pfns | sort | uniq -d | wc -l > /tmp/k.common
wc -l < /tmp/k-b.pfns > /tmp/k-b.present
echo 0 > /sys/kernel/mm/ksm/run
phase migrate
chroot $R /usr/bin/migratepages $B 0 1; echo "migratepages B exit $?" > /tmp/k.trig
chroot $R /usr/bin/migratepages $A 1 0; echo "migratepages A exit $?" >> /tmp/k.trig
echo 8M > /sys/fs/cgroup/jvm-a/memory.reclaim; echo "memory.reclaim exit $?" >> /tmp/k.trig
echo 1 > /proc/sys/vm/compact_memory; echo "compact_memory exit $?" >> /tmp/k.trig
ksm >> /tmp/k.trig
kill -TERM $A $B $C; wait $A $B $C
sleep 2
kill -TERM $T; wait $T
tally /tmp/k-all.csv > /tmp/k-all.tally
phase done
for f in k-a.ino k-b.ino k-a.pid k-b.pid k.comm k-alone k-both k.common k-b.present k-a.heap k-b.heap k-plain.heap k-plain.merged k.trig k-a.out k-all.tally; do emit $f /tmp/$f; done
emit k-all /tmp/k-all.json; emit k-all.txt /tmp/k-all.txt
"#
    )
}

pub fn script(s: &Sizes) -> String {
    format!("{}{}{}", common(s), reclaim(s), ksm(s))
}
