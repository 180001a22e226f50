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

/// What a table's off-CPU columns can show in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offcpu {
    /// Off-CPU time is not measured in this run (no `sched_switch` hook, or a mode without
    /// the split): every cell says "n/a".
    NotMeasured,
    /// Measured on the walks sent as ring records: a row none of whose walks was sent says
    /// "-", a row whose walks were never switched out "0ns".
    Measured,
}

impl Offcpu {
    /// The state of a run, from the attach outcome's reason for not measuring (if any).
    pub fn of(unavailable: Option<&str>) -> Self {
        if unavailable.is_some() {
            Self::NotMeasured
        } else {
            Self::Measured
        }
    }
}

/// The off-CPU columns' header: the time switched out summed over the row's walks, and the
/// longest of one walk.
const OFFCPU_HEADER: [&str; 2] = ["offcpu-sum", "offcpu-max"];

/// A latency table with a title, then its off-CPU columns (`offcpu`: what they can show).
pub fn table(title: &str, rows: &[Row], offcpu: Offcpu) -> String {
    let mut out = String::new();
    // Keys hold process and thread names: shown with their control characters escaped.
    let keys: Vec<_> = rows.iter().map(|r| printable(&r.key)).collect();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(4).max(title.len());
    out.push_str(&format!(
        "{title:<width$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean", OFFCPU_HEADER[0], OFFCPU_HEADER[1]
    ));
    for (r, key) in rows.iter().zip(&keys) {
        let (sum, max) = match offcpu {
            Offcpu::NotMeasured => ("n/a".to_string(), "n/a".to_string()),
            Offcpu::Measured if r.offcpu_measured == 0 => ("-".to_string(), "-".to_string()),
            Offcpu::Measured => (fmt_ns(r.offcpu_total_ns), fmt_ns(r.offcpu_max_ns)),
        };
        out.push_str(&format!(
            "{:<width$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {sum:>10} {max:>10}\n",
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
    }
    out
}

/// What the off-CPU cells mean, for a run that sends records of walks of at least `min_us`
/// only (`--attach-only`'s default): their "-" is then no walk of the row long enough, not a
/// walk that was never switched out ("0ns"). None where every cell is a measure or "n/a".
pub fn offcpu_legend(offcpu: Offcpu, min_us: u64) -> Option<String> {
    (offcpu == Offcpu::Measured && min_us > 0).then(|| {
        format!(
            "offcpu-sum, offcpu-max: time switched out, summed and longest, of the walks sent as records \
             (those of {min_us} µs or more: --min-duration-us); \"-\": no such walk in the row; \"0ns\": none was switched out"
        )
    })
}

/// A table whose rows are each followed by their parts (`label`: "threads", "walkers"):
/// "  walkers: [kswapd0] 120, java 3".
pub fn table_with_parts(title: &str, rows: &[Row], offcpu: Offcpu, label: &str) -> String {
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

    fn row(key: &str, offcpu_measured: u64, offcpu_total_ns: u64) -> Row {
        Row {
            key: key.into(),
            count: 4,
            min_ns: 1,
            p50_ns: 2,
            p90_ns: 3,
            p99_ns: 4,
            p999_ns: 5,
            max_ns: 6,
            mean_ns: 3,
            offcpu_total_ns,
            offcpu_max_ns: offcpu_total_ns,
            offcpu_measured,
            locked: 0,
            parts: Vec::new(),
            pod: None,
        }
    }

    /// The off-CPU cells tell "not measured in this run" (n/a), "no walk of the row sent as a
    /// record" (-) and "measured, never switched out" (0ns) apart, under a header that says the
    /// first column is a sum.
    #[test]
    fn offcpu_cells_tell_unmeasured_unsent_and_zero_apart() {
        let rows = [row("ksm", 0, 0), row("anon", 3, 0), row("file", 2, 1_500)];
        let measured = table("type", &rows, Offcpu::Measured);
        let lines: Vec<_> = measured.lines().collect();
        assert!(
            lines[0].starts_with("type") && lines[0].ends_with("offcpu-sum offcpu-max"),
            "{measured}"
        );
        let cells = |line: &str| -> Vec<String> {
            let words: Vec<_> = line.split_whitespace().map(String::from).collect();
            words[words.len().saturating_sub(2)..].to_vec()
        };
        assert_eq!(cells(lines[1]), ["-", "-"], "{measured}");
        assert_eq!(cells(lines[2]), ["0ns", "0ns"], "{measured}");
        assert_eq!(cells(lines[3]), ["1.5us", "1.5us"], "{measured}");
        let off = table("type", &rows, Offcpu::NotMeasured);
        assert!(off.lines().skip(1).all(|l| cells(l) == ["n/a", "n/a"]), "{off}");
        assert_eq!(Offcpu::of(Some("--no-offcpu")), Offcpu::NotMeasured);
        assert_eq!(Offcpu::of(None), Offcpu::Measured);
        let legend = offcpu_legend(Offcpu::Measured, 1000).unwrap_or_default();
        assert!(
            legend.contains("1000 µs") && legend.contains("\"-\": no such walk"),
            "{legend}"
        );
        assert_eq!(offcpu_legend(Offcpu::Measured, 0), None);
        assert_eq!(offcpu_legend(Offcpu::NotMeasured, 1000), None);
        let r = row("ksm", 0, 0);
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
        let t = table_with_parts("process", &[evil], Offcpu::Measured, "threads");
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("x\\u{1b}]0;owned\\u{7}/42"), "{t}");
        assert!(t.contains("threads: t\\u{1b}[2J 1"), "{t}");
    }
}
