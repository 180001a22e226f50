//! Part of the patched suite: percentiles that no ring-buffer drop changes. Two tracers watch
//! the same walks through the v4 `rmap:rmap_walk` event, one with a 4 KiB ring buffer (drops)
//! and one with 4 MiB (none). The v4 event carries the duration the kernel measured once per
//! walk (`duration_ns`), so both tracers see identical durations, and their counts and
//! percentiles — all from the in-kernel histograms — must be equal, drops or not. (On Debian's
//! kernel two fentry tracers time each walk differently: the drops suite compares counts only.)
use serde_json::Value;

use super::{Checks, counter, json, kernel_walks, row};
use crate::guest::qemu::GuestRun;

/// The guest script's part: both tracers, one anon workload, their summaries emitted.
pub fn script(pages: u32) -> String {
    format!(
        r#"attached() {{ for i in $(seq 300); do grep -q '^attach:' $1 && return 0; sleep 0.2; done; return 1; }}
RINGS=""
for size in 4 4096; do
  rmap-trace --attach-only --attach-mode tracepoint-v4 --comm rmap-trace --ringbuf-kib $size --min-duration-us 0 --interval 600 --json /tmp/ring$size.json > /tmp/ring$size.txt 2>&1 &
  RINGS="$RINGS $!"
  attached /tmp/ring$size.txt || echo "ring $size tracer did not attach"
done
rmap-trace workload --types anon --pages {pages} > /dev/null 2>&1
echo "workload exit $?"
kill -TERM $RINGS; wait $RINGS
emit ring4 /tmp/ring4.json
emit ring4.txt /tmp/ring4.txt
emit ring4096 /tmp/ring4096.json
"#
    )
}

fn stat(doc: &Value, field: &str) -> u64 {
    row(&doc["types"], "anon")
        .and_then(|r| r[field].as_u64())
        .unwrap_or(0)
}

pub fn verify(run: &GuestRun, c: &mut Checks) {
    if let Some(t) = run.outputs.get("ring4.txt") {
        println!("--- guest output, 4 KiB ring ---\n{}", t.trim_end());
    }
    let (Ok(tiny), Ok(large)) = (json(run, "ring4"), json(run, "ring4096")) else {
        c.check("v4 ring sizes: both summaries", false, "missing");
        return;
    };
    compare(&tiny, &large, c);
}

/// The tiny ring dropped and the large one did not; counts equal each other's and the
/// kernel's; every percentile equal.
fn compare(tiny: &Value, large: &Value, c: &mut Checks) {
    let (dt, dl) = (counter(tiny, "ringbuf_drops"), counter(large, "ringbuf_drops"));
    c.check(
        "v4 ring sizes: the 4 KiB ring drops, the 4 MiB one does not",
        dt > 0 && dt != u64::MAX && dl == 0,
        format!("4 KiB: {dt} dropped, 4 MiB: {dl} dropped"),
    );
    let counts = [
        stat(tiny, "count"),
        stat(large, "count"),
        kernel_walks(tiny, "anon"),
    ];
    c.check(
        "v4 ring sizes: anon counts equal (tiny, large, kernel)",
        counts[0] > 0 && counts.iter().all(|&n| n == counts[0]),
        format!("tiny {}, large {}, kernel {}", counts[0], counts[1], counts[2]),
    );
    for field in ["p50_ns", "p90_ns", "p99_ns", "max_ns"] {
        let (a, b) = (stat(tiny, field), stat(large, field));
        c.check(
            &format!("v4 ring sizes: anon {field} equal"),
            a > 0 && a == b,
            format!("4 KiB ring {a} ns, 4 MiB ring {b} ns"),
        );
    }
}
