//! Per-run results aggregated per (row, workload) and printed: walks/s, added ns per walk
//! against the run's own untraced baseline (else no tracer of the same repetition; median,
//! min–max over repetitions), and whether the
//! tracer saw every walk (its count at least the reference of that run). Pure, unit-tested.
use std::collections::BTreeMap;

use super::{Row, Workload};

/// One run: a tracer row on a workload in a repetition.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub trigger_ns: u64,
    /// The same workload's trigger time untraced, just before this run.
    pub baseline_ns: Option<u64>,
    /// Walks the tracer saw (None: no tracer, or its output was missing).
    pub seen: Option<u64>,
    /// Walks the workload says its trigger made (None: its trigger does not tell).
    pub expected: Option<u64>,
    /// Every loaded BPF program's run count and time at the end of the run.
    pub stats: Vec<super::parse::ProgStat>,
}

/// Results by (repetition, row, workload).
pub type Runs = BTreeMap<(u32, Row, Workload), Run>;

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    })
}

/// The walks of a workload: those it says its trigger made, else the count most runs of it saw
/// in this boot (ties: the larger). A tracer that lost walks saw fewer; one that saw more also
/// caught walks outside the workload (the tracers watch the whole system, where a kernel's own
/// walkers, DAMON's on 7.x, add a few that differ from run to run).
pub fn reference(runs: &Runs, w: Workload) -> Option<u64> {
    if let Some(n) = runs
        .iter()
        .find_map(|((_, _, wl), run)| run.expected.filter(|_| *wl == w))
    {
        return Some(n);
    }
    let mut freq: BTreeMap<u64, usize> = BTreeMap::new();
    for ((_, _, wl), run) in runs {
        if let (true, Some(n)) = (*wl == w, run.seen) {
            *freq.entry(n).or_default() += 1;
        }
    }
    freq.into_iter().max_by_key(|&(n, f)| (f, n)).map(|(n, _)| n)
}

/// One row of the table.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub walks_per_s: Option<f64>,
    /// Added ns per walk over the repetitions (None for the no-tracer row).
    pub added: Vec<f64>,
    /// (tracer count, reference) per repetition.
    pub seen: Vec<(Option<u64>, Option<u64>)>,
}

impl Line {
    pub fn added_median(&self) -> Option<f64> {
        median(&self.added)
    }

    /// "yes" when every repetition saw at least the reference count, else "NO" with the
    /// counts of the first repetition that saw fewer.
    pub fn saw_every_walk(&self, row: Row) -> String {
        if row == Row::None {
            return "-".into();
        }
        if self.seen.is_empty() {
            return "no runs".into();
        }
        match self.seen.iter().find(|(s, r)| s.is_none() || s < r) {
            None => {
                let n = self.seen.first().and_then(|s| s.1).unwrap_or(0);
                format!("yes ({n} walks)")
            }
            Some((s, r)) => format!(
                "NO ({} of {})",
                s.map_or("?".into(), |v| v.to_string()),
                r.map_or("?".into(), |v| v.to_string())
            ),
        }
    }
}

pub fn line(runs: &Runs, reps: u32, row: Row, w: Workload) -> Line {
    let mut l = Line::default();
    let mut rates = Vec::new();
    for rep in 1..=reps {
        let (Some(run), Some(none)) = (runs.get(&(rep, row, w)), runs.get(&(rep, Row::None, w))) else {
            continue;
        };
        let refc = reference(runs, w);
        if let Some(walks) = refc.filter(|&n| n > 0) {
            rates.push(walks as f64 / (run.trigger_ns.max(1) as f64 / 1e9));
            if row != Row::None {
                let base = run.baseline_ns.unwrap_or(none.trigger_ns);
                l.added.push((run.trigger_ns as f64 - base as f64) / walks as f64);
            }
        }
        if row != Row::None {
            l.seen.push((run.seen, refc));
        }
    }
    l.walks_per_s = median(&rates);
    l
}

fn fmt_added(l: &Line) -> String {
    let (Some(m), Some(lo), Some(hi)) = (
        l.added_median(),
        l.added.iter().copied().reduce(f64::min),
        l.added.iter().copied().reduce(f64::max),
    ) else {
        return "-".into();
    };
    format!("{m:.0} [{lo:.0} .. {hi:.0}]")
}

/// The table of one boot.
pub fn render(title: &str, runs: &Runs, reps: u32, rows: &[Row], workloads: &[Workload]) -> String {
    let mut s = format!("{title}\n");
    s += &format!(
        "{:<8} {:<14} {:>10}  {:<32} {}\n",
        "workload", "tracer", "walks/s", "added ns/walk median [min .. max]", "saw every walk"
    );
    for &w in workloads {
        for &r in rows {
            let l = line(runs, reps, r, w);
            s += &format!(
                "{:<8} {:<14} {:>10}  {:<32} {}\n",
                w.name(),
                r.name(),
                l.walks_per_s.map_or("-".into(), |v| format!("{v:.0}")),
                fmt_added(&l),
                l.saw_every_walk(r)
            );
        }
    }
    s
}

/// The goals: `row`'s median added time per walk at most `limit` times `of`'s, each compared
/// within one boot. Against bpftrace's same one-liner on the same mechanism (kfunc for fentry,
/// kprobe for kprobe), against the empty-program floor, and against tracefs's text.
pub const GOALS: [(Row, Row, f64); 6] = [
    (Row::Fentry, Row::BpftraceKfunc, 0.5),
    (Row::Kprobe, Row::Bpftrace, 0.5),
    (Row::Fentry, Row::FentryEmpty, 2.0),
    (Row::FentryAll, Row::BpftraceKfunc, 2.0),
    (Row::Fentry, Row::Bpftrace, 0.5),
    (Row::Fentry, Row::Tracefs, 0.25),
];

/// The goals on what a tool's own programs add: (`row` − `floor`) at most `limit` × (`other` −
/// `floor`), where `floor` is empty programs on the same attach points. The mechanism (for
/// kprobes: the ftrace call, the kprobe and rethook handlers, two program runs) costs every
/// tool the same and is most of what a kprobe tool adds; this ratio compares the work each
/// tool's programs do on top of it.
pub const OVER_FLOOR_GOALS: [(Row, Row, Row, f64); 2] = [
    (Row::Kprobe, Row::Bpftrace, Row::KprobeEmpty, 0.5),
    (Row::Fentry, Row::BpftraceKfunc, Row::FentryEmpty, 0.5),
];

/// The floors: empty programs of a mechanism, and the rows their share of is printed.
const FLOORS: [(Row, &str, [Row; 3]); 2] = [
    (
        Row::FentryEmpty,
        "empty fentry/fexit programs",
        [Row::BpftraceKfunc, Row::Bpftrace, Row::Tracefs],
    ),
    (
        Row::KprobeEmpty,
        "empty kprobe/kretprobe programs",
        [Row::Kprobe, Row::Bpftrace, Row::Tracefs],
    ),
];

/// Whether `r` ≤ `limit` × `o`, medians of `row` and `other` (None: missing runs).
fn verdict(row: Row, other: Row, limit: f64, r: Option<f64>, o: Option<f64>) -> String {
    match (r, o) {
        (Some(r), Some(o)) if o > 0.0 && r <= 0.0 => format!(
            "n/a: {}'s median added time is {r:.0} ns (within the noise), {}'s {o:.0} ns",
            row.name(),
            other.name()
        ),
        (Some(r), Some(o)) if o > 0.0 => {
            let ratio = r / o;
            format!("{ratio:.2} -> {}", if ratio <= limit { "met" } else { "NOT met" })
        }
        (Some(_), Some(_)) => format!("n/a ({} added no time)", other.name()),
        _ => "n/a (missing runs)".into(),
    }
}

/// The [`GOALS`] and [`OVER_FLOOR_GOALS`] whose rows ran in this boot, then the floor lines,
/// per workload.
pub fn goals(runs: &Runs, reps: u32, rows: &[Row], workloads: &[Workload]) -> String {
    let mut s = String::new();
    for &w in workloads {
        let m = |r| line(runs, reps, r, w).added_median();
        for (row, other, limit) in GOALS {
            if !rows.contains(&row) || !rows.contains(&other) {
                continue;
            }
            let ratio = format!("{}/{}", row.name(), other.name());
            s += &format!(
                "goal {:<8} {ratio:<29} <= {limit}: {}\n",
                w.name(),
                verdict(row, other, limit, m(row), m(other))
            );
        }
        for (row, other, floor, limit) in OVER_FLOOR_GOALS {
            if ![row, other, floor].iter().all(|r| rows.contains(r)) {
                continue;
            }
            let over = |r| Some(m(r)? - m(floor)?);
            let ratio = format!("{}/{} over {}", row.name(), other.name(), floor.name());
            s += &format!(
                "goal {:<8} {ratio:<29} <= {limit}: {}\n",
                w.name(),
                verdict(row, other, limit, over(row), over(other))
            );
        }
        // What an attach mechanism alone adds, against the same references: no tool on that
        // mechanism can add less.
        for (floor_row, what, refs) in FLOORS {
            let Some(floor) = m(floor_row) else { continue };
            let of = |r: Row| match m(r) {
                Some(o) if o > 0.0 => format!("{:.2} of {}'s", floor / o, r.name()),
                _ => format!("n/a of {}'s", r.name()),
            };
            s += &format!(
                "floor {:<7} {what} add {floor:.0} ns/walk: {}\n",
                w.name(),
                refs.map(of).join(", ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs() -> Runs {
        let mut r = Runs::new();
        for (rep, none, fentry, bpf, tf) in [
            (1, 1000, 1100, 1300, 2000),
            (2, 1000, 1200, 1400, 2200),
            (3, 1100, 1150, 1500, 2100),
        ] {
            r.insert(
                (rep, Row::None, Workload::Anon),
                Run {
                    trigger_ns: none,
                    ..Run::default()
                },
            );
            r.insert(
                (rep, Row::Fentry, Workload::Anon),
                Run {
                    trigger_ns: fentry,
                    seen: Some(10),
                    ..Run::default()
                },
            );
            r.insert(
                (rep, Row::Bpftrace, Workload::Anon),
                Run {
                    trigger_ns: bpf,
                    seen: Some(10),
                    ..Run::default()
                },
            );
            r.insert(
                (rep, Row::Tracefs, Workload::Anon),
                Run {
                    trigger_ns: tf,
                    seen: Some(if rep == 2 { 9 } else { 10 }),
                    ..Run::default()
                },
            );
        }
        r
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn added_time_is_against_the_same_repetitions_no_tracer() {
        let r = runs();
        let l = line(&r, 3, Row::Fentry, Workload::Anon);
        // (1100-1000)/10, (1200-1000)/10, (1150-1100)/10
        assert_eq!(l.added, [10.0, 20.0, 5.0]);
        assert_eq!(l.added_median(), Some(10.0));
        assert_eq!(l.saw_every_walk(Row::Fentry), "yes (10 walks)");
        let t = line(&r, 3, Row::Tracefs, Workload::Anon);
        assert_eq!(t.saw_every_walk(Row::Tracefs), "NO (9 of 10)");
        let n = line(&r, 3, Row::None, Workload::Anon);
        assert!(n.added.is_empty());
        assert_eq!(n.walks_per_s, Some(10.0 / 1000e-9));
    }

    #[test]
    fn a_run_s_own_baseline_wins_over_the_repetition_s() {
        let mut r = runs();
        r.get_mut(&(2, Row::Fentry, Workload::Anon)).unwrap().baseline_ns = Some(1190);
        let l = line(&r, 3, Row::Fentry, Workload::Anon);
        assert_eq!(l.added, [10.0, 1.0, 5.0]);
    }

    #[test]
    fn the_reference_is_the_most_frequent_count() {
        let r = runs();
        // 10 seen 8 times, 9 and 11 once each.
        assert_eq!(reference(&r, Workload::Anon), Some(10));
        assert_eq!(reference(&r, Workload::Ksm), None);
    }

    /// Where the workload tells its walks, they are the reference: runs that also caught a
    /// few other walks, each a different number, saw every walk.
    #[test]
    fn the_workload_s_count_is_the_reference() {
        let mut r = runs();
        for (i, run) in r.values_mut().enumerate() {
            run.expected = Some(10);
            run.seen = run.seen.map(|_| 10 + i as u64);
        }
        assert_eq!(reference(&r, Workload::Anon), Some(10));
        let l = line(&r, 3, Row::Tracefs, Workload::Anon);
        assert!(l.saw_every_walk(Row::Tracefs).starts_with("yes"), "{l:?}");
    }

    const ROWS: [Row; 4] = [Row::None, Row::Fentry, Row::Bpftrace, Row::Tracefs];

    #[test]
    fn a_negative_fentry_median_meets_no_goal() {
        let mut r = runs();
        for rep in 1..=3 {
            r.get_mut(&(rep, Row::Fentry, Workload::Anon)).unwrap().trigger_ns = 900;
        }
        let g = goals(&r, 3, &ROWS, &[Workload::Anon]);
        assert!(
            g.contains("fentry/bpftrace               <= 0.5: n/a: fentry's median added time is -10 ns"),
            "{g}"
        );
    }

    #[test]
    fn goals_on_medians() {
        let g = goals(&runs(), 3, &ROWS, &[Workload::Anon]);
        // fentry 10, bpftrace 40 → 0.25 met; tracefs 100 → 0.10 met.
        assert!(
            g.contains("fentry/bpftrace               <= 0.5: 0.25 -> met"),
            "{g}"
        );
        assert!(
            g.contains("fentry/tracefs                <= 0.25: 0.10 -> met"),
            "{g}"
        );
        // Goals of rows that did not run in this boot are left out.
        assert_eq!(g.lines().count(), 2, "{g}");
    }

    /// The goals against bpftrace's kfunc one-liner, its kprobe one and the empty-program floor.
    #[test]
    fn goals_against_the_peers_and_the_floor() {
        let mut r = runs();
        // Added ns per walk (10 walks): kfunc 30, kprobe 24, empty 4, fentry_all 70.
        for rep in 1..=3 {
            let none = r[&(rep, Row::None, Workload::Anon)].trigger_ns;
            for (row, added) in [
                (Row::BpftraceKfunc, 30),
                (Row::Kprobe, 24),
                (Row::FentryEmpty, 4),
                (Row::KprobeEmpty, 16),
                (Row::FentryAll, 70),
            ] {
                r.insert(
                    (rep, row, Workload::Anon),
                    Run {
                        trigger_ns: none + added * 10,
                        seen: Some(10),
                        ..Run::default()
                    },
                );
            }
        }
        let rows = [
            Row::None,
            Row::Fentry,
            Row::FentryAll,
            Row::Kprobe,
            Row::Bpftrace,
            Row::BpftraceKfunc,
            Row::Tracefs,
            Row::FentryEmpty,
            Row::KprobeEmpty,
        ];
        let g = goals(&r, 3, &rows, &[Workload::Anon]);
        // fentry 10 / kfunc 30; kprobe 24 / bpftrace 40; fentry 10 / empty 4; all 70 / kfunc 30.
        for want in [
            "goal anon     fentry/bpftrace_kfunc         <= 0.5: 0.33 -> met",
            "goal anon     kprobe/bpftrace               <= 0.5: 0.60 -> NOT met",
            "goal anon     fentry/fentry_empty           <= 2: 2.50 -> NOT met",
            "goal anon     fentry_all/bpftrace_kfunc     <= 2: 2.33 -> NOT met",
            "floor anon    empty fentry/fexit programs add 4 ns/walk: 0.13 of bpftrace_kfunc's",
            // (24 − 16) / (40 − 16); (10 − 4) / (30 − 4).
            "goal anon     kprobe/bpftrace over kprobe_empty <= 0.5: 0.33 -> met",
            "goal anon     fentry/bpftrace_kfunc over fentry_empty <= 0.5: 0.23 -> met",
            "floor anon    empty kprobe/kretprobe programs add 16 ns/walk: 0.67 of kprobe's, 0.40 of bpftrace's",
        ] {
            assert!(g.contains(want), "{want:?} not in\n{g}");
        }
    }
}
