//! Rendering results: durations, the text tables, the kernel counters line.
use rmap_common::Counter;

use crate::{counters::KernelCounts, printable::printable, stats::Row};

/// Human duration: ns, µs, ms or s with 3 significant-ish digits.
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.3}s", f / 1e9)
    }
}

/// A latency table with a title; off-CPU columns when `offcpu`.
pub fn table(title: &str, rows: &[Row], offcpu: bool) -> String {
    let mut out = String::new();
    // Keys hold process and thread names: shown with their control characters escaped.
    let keys: Vec<_> = rows.iter().map(|r| printable(&r.key)).collect();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(4).max(title.len());
    out.push_str(&format!(
        "{title:<width$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"
    ));
    if offcpu {
        out.push_str(&format!(" {:>10} {:>10}", "offcpu", "offcpu-max"));
    }
    out.push('\n');
    for (r, key) in rows.iter().zip(&keys) {
        out.push_str(&format!(
            "{:<width$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            key,
            r.count,
            fmt_ns(r.min_ns),
            fmt_ns(r.p50_ns),
            fmt_ns(r.p90_ns),
            fmt_ns(r.p99_ns),
            fmt_ns(r.p999_ns),
            fmt_ns(r.max_ns),
            fmt_ns(r.mean_ns)
        ));
        if offcpu {
            if r.offcpu_measured > 0 {
                out.push_str(&format!(
                    " {:>10} {:>10}",
                    fmt_ns(r.offcpu_total_ns),
                    fmt_ns(r.offcpu_max_ns)
                ));
            } else {
                out.push_str(&format!(" {:>10} {:>10}", "n/a", "n/a"));
            }
        }
        out.push('\n');
    }
    out
}

/// A table whose rows are each followed by their parts (`label`: "threads", "walkers"):
/// "  walkers: [kswapd0] 120, java 3".
pub fn table_with_parts(title: &str, rows: &[Row], offcpu: bool, label: &str) -> String {
    let text = table(title, rows, offcpu);
    let mut lines = text.lines();
    let mut out = String::new();
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (line, row) in lines.zip(rows) {
        out.push_str(line);
        out.push('\n');
        if !row.parts.is_empty() {
            let parts: Vec<String> = row
                .parts
                .iter()
                .map(|p| format!("{} {}", printable(&p.name), p.walks))
                .collect();
            out.push_str(&format!("  {label}: {}\n", parts.join(", ")));
        }
    }
    out
}

/// The kernel-side counters line; drops and unpaired ends are always printed.
pub fn counters_line(k: &KernelCounts) -> String {
    let mut s = format!(
        "kernel: walks {} (ksm {}, anon {}, file {}), events {}, ringbuf drops {}, unpaired {}, overlapping {}, filtered {}",
        k.get(Counter::WalksSeen),
        k.walks_of(rmap_common::PageType::Ksm),
        k.walks_of(rmap_common::PageType::Anon),
        k.walks_of(rmap_common::PageType::File),
        k.get(Counter::EventsSent),
        k.get(Counter::RingbufDrops),
        k.get(Counter::Unpaired),
        k.get(Counter::Overlapping),
        k.get(Counter::Filtered),
    );
    if k.get(Counter::InflightFull) > 0 {
        s.push_str(&format!(
            ", in-flight table full {}",
            k.get(Counter::InflightFull)
        ));
    }
    s.push_str(&format!(
        ", in-flight evicted {}",
        k.get(Counter::InflightEvicted)
    ));
    if k.get(Counter::HistFull) > 0 {
        s.push_str(&format!(
            ", not in histograms (map full) {}",
            k.get(Counter::HistFull)
        ));
    }
    s
}

/// "N of M walks; D dropped" for what comes from ring records (per-process tables, CSV,
/// slow-walk lines), when they do not cover every walk the kernel counted; the rest of the
/// gap is walks shorter than `min_us` (`--min-duration-us`), never sent.
pub fn coverage_note(records: u64, k: &KernelCounts, min_us: u64) -> Option<String> {
    let walks = k.get(Counter::WalksSeen);
    if records >= walks {
        return None;
    }
    let dropped = k.get(Counter::RingbufDrops);
    let short = walks.saturating_sub(records).saturating_sub(dropped);
    let mut s = format!("{records} of {walks} walks; {dropped} dropped");
    if short > 0 && min_us > 0 {
        s.push_str(&format!(
            ", {short} under {min_us} µs (--min-duration-us: only longer walks are sent)"
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_ns(999), "999ns");
        assert_eq!(fmt_ns(69_329), "69.3us");
        assert_eq!(fmt_ns(705_119_858), "705.12ms");
        assert_eq!(fmt_ns(1_500_000_000), "1.500s");
    }

    #[test]
    fn table_has_offcpu_na() {
        let r = Row {
            key: "ksm".into(),
            count: 4,
            min_ns: 1,
            p50_ns: 2,
            p90_ns: 3,
            p99_ns: 4,
            p999_ns: 5,
            max_ns: 6,
            mean_ns: 3,
            offcpu_total_ns: 0,
            offcpu_max_ns: 0,
            offcpu_measured: 0,
            locked: 0,
            parts: Vec::new(),
            pod: None,
        };
        let t = table("type", std::slice::from_ref(&r), true);
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("type") && lines[0].ends_with("offcpu-max"));
        assert!(lines[1].starts_with("ksm") && lines[1].ends_with("n/a"));
        // Process and thread names come from the processes: their control characters are
        // shown escaped, never sent to the terminal.
        let evil = Row {
            key: "x\x1b]0;owned\x07/42".into(),
            parts: vec![crate::stats::Part {
                name: "t\x1b[2J".into(),
                walks: 1,
            }],
            ..r
        };
        let t = table_with_parts("process", &[evil], false, "threads");
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("x\\u{1b}]0;owned\\u{7}/42"), "{t}");
        assert!(t.contains("threads: t\\u{1b}[2J 1"), "{t}");
    }
}
