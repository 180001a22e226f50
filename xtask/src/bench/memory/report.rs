//! The tracer's own memory reports (rmap-user's `memory` module, logged at debug level): the
//! heap after each step of its start and at each interval's end, with the long-lived tables'
//! sizes. Parsed, and rendered as the start's steps and the first and last intervals.

/// One report: `<what>: name=bytes …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub what: String,
    pub values: Vec<(String, u64)>,
}

impl Report {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// The heap statistics of a report; the rest of its values are tables' sizes.
const HEAP: [&str; 4] = ["heap_in_use", "heap_free", "heap_arena", "heap_mapped"];

/// The reports in the tracer's log (lines of other targets are skipped).
pub fn parse(log: &str) -> Vec<Report> {
    log.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("rmap_user::memory] ")?;
            let (what, values) = rest.split_once(':')?;
            let values = values
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            Some(Report {
                what: what.to_string(),
                values,
            })
        })
        .collect()
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// The start's steps (heap in use and its change), then the first and last interval's heap and
/// tables, what of the heap in use the tables do not account for, and what is free in it.
pub fn render(reports: &[Report]) -> String {
    let mut s = format!(
        "tracer's heap (glibc mallinfo2), from its memory reports:\n  {:<36} {:>10} {:>9} {:>10} {:>10}\n",
        "step", "in use kB", "change", "free kB", "arena kB"
    );
    let intervals: Vec<&Report> = reports.iter().filter(|r| r.what == "interval").collect();
    let largest = intervals
        .iter()
        .copied()
        .max_by_key(|r| r.get("heap_in_use").unwrap_or(0));
    let steps = reports
        .iter()
        .filter(|r| r.what != "interval")
        .map(|r| (r.what.as_str(), r));
    let ends = [
        ("first interval", intervals.first().copied()),
        ("largest interval", largest),
        ("last interval", intervals.last().copied()),
    ];
    let shown = steps.chain(ends.into_iter().filter_map(|(w, r)| Some((w, r?))));
    let mut last = None;
    for (what, r) in shown {
        let in_use = r.get("heap_in_use").unwrap_or(0);
        let change = last.map_or(String::new(), |l: u64| {
            format!("{:+}", kib(in_use) as i64 - kib(l) as i64)
        });
        s += &format!(
            "  {what:<36} {:>10} {change:>9} {:>10} {:>10}\n",
            kib(in_use),
            kib(r.get("heap_free").unwrap_or(0)),
            kib(r.get("heap_arena").unwrap_or(0) + r.get("heap_mapped").unwrap_or(0)),
        );
        last = Some(in_use);
    }
    if let Some(r) = intervals.last() {
        let tables: Vec<&(String, u64)> = r
            .values
            .iter()
            .filter(|(n, _)| !HEAP.contains(&n.as_str()))
            .collect();
        let sum: u64 = tables.iter().map(|(_, v)| v).sum();
        s += "  heap in use at the last interval, by table:";
        for (name, v) in &tables {
            s += &format!(" {name} {} kB,", kib(*v));
        }
        s += &format!(
            " the rest {} kB (runtime, Prometheus registry, hlog writer, buffers)\n",
            kib(r.get("heap_in_use").unwrap_or(0).saturating_sub(sum))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[2026-12-07T05:00:00Z DEBUG rmap_user::memory] start: heap_in_use=102400 heap_free=0 heap_arena=135168 heap_mapped=0
prometheus: serving http://127.0.0.1:9500/metrics
[2026-12-07T05:00:01Z DEBUG rmap_user::memory] kernel BTF read (btf-rs): heap_in_use=10342400 heap_free=1024 heap_arena=10485760 heap_mapped=0
[2026-12-07T05:00:02Z DEBUG rmap_user::memory] kernel facts dropped, heap trimmed: heap_in_use=4194304 heap_free=2048 heap_arena=10485760 heap_mapped=0
[2026-12-07T05:00:12Z DEBUG rmap_user::memory] interval: heap_in_use=5242880 heap_free=0 heap_arena=10485760 heap_mapped=0 aggregate=1048576 purposes=2097152
[2026-12-07T05:00:22Z DEBUG rmap_user::memory] interval: heap_in_use=6291456 heap_free=0 heap_arena=10485760 heap_mapped=0 aggregate=2097152 purposes=2097152
";

    #[test]
    fn steps_and_intervals() {
        let r = parse(LOG);
        assert_eq!(r.len(), 5);
        assert_eq!(r[1].what, "kernel BTF read (btf-rs)");
        assert_eq!(r[4].get("aggregate"), Some(2_097_152));
        let t = render(&r);
        for want in [
            "  kernel BTF read (btf-rs)                  10100    +10000          1      10240\n",
            "  kernel facts dropped, heap trimmed         4096     -6004          2      10240\n",
            "  first interval                             5120     +1024          0      10240\n",
            "  largest interval                           6144     +1024          0      10240\n",
            "  last interval                              6144        +0          0      10240\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
        assert!(
            t.contains("by table: aggregate 2048 kB, purposes 2048 kB, the rest 2048 kB"),
            "{t}"
        );
    }
}
