//! Where a tracer's time goes, from the kernel's own accounting rather than wall-clock
//! differences: each BPF program's run count and run time (`kernel.bpf_stats_enabled`), per
//! walk of the workload, median over the repetitions. It covers the program bodies only: the
//! attach mechanism around them (the kprobe handlers, the fentry trampoline) and the reader in user
//! space are not in it; the wall-clock rows are. Pure, unit-tested.
use std::collections::BTreeMap;

use super::{
    Row, Workload,
    table::{Runs, median, reference},
};

/// Per program name (programs of the same truncated name summed): (runs, ns) of one run.
fn by_name(run: &super::table::Run) -> BTreeMap<&str, (u64, u64)> {
    let mut m: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for p in &run.stats {
        let e = m.entry(p.name.as_str()).or_default();
        e.0 += p.runs;
        e.1 += p.ns;
    }
    m
}

/// One table line: a program's (or all programs') medians over the repetitions.
#[derive(Debug, Default, PartialEq)]
pub struct Cost {
    pub runs_per_walk: f64,
    pub ns_per_run: f64,
    pub ns_per_walk: f64,
}

/// Costs of `row` on `w` by program name, with the total of all programs under `"(all)"`.
pub fn costs(runs: &Runs, reps: u32, row: Row, w: Workload) -> BTreeMap<String, Cost> {
    let Some(walks) = reference(runs, w).filter(|&n| n > 0) else {
        return BTreeMap::new();
    };
    let walks = walks as f64;
    let mut per: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for rep in 1..=reps {
        let Some(run) = runs.get(&(rep, row, w)) else {
            continue;
        };
        let (mut all_runs, mut all_ns) = (0, 0);
        for (name, (n, ns)) in by_name(run) {
            all_runs += n;
            all_ns += ns;
            per.entry(name.to_string()).or_default().push((
                n as f64 / walks,
                ns as f64 / n.max(1) as f64,
                ns as f64 / walks,
            ));
        }
        if all_runs > 0 {
            per.entry("(all)".into()).or_default().push((
                all_runs as f64 / walks,
                all_ns as f64 / all_runs as f64,
                all_ns as f64 / walks,
            ));
        }
    }
    per.into_iter()
        .map(|(name, v)| {
            let m =
                |f: fn(&(f64, f64, f64)) -> f64| median(&v.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
            (
                name,
                Cost {
                    runs_per_walk: m(|x| x.0),
                    ns_per_run: m(|x| x.1),
                    ns_per_walk: m(|x| x.2),
                },
            )
        })
        .collect()
}

/// The component table of one boot.
pub fn render(runs: &Runs, reps: u32, rows: &[Row], workloads: &[Workload]) -> String {
    let mut s = "BPF program time per walk (kernel.bpf_stats_enabled; program bodies only, median over repetitions)\n"
        .to_string();
    s += &format!(
        "{:<8} {:<14} {:<16} {:>9} {:>9} {:>9}\n",
        "workload", "tracer", "program", "runs/walk", "ns/run", "ns/walk"
    );
    for &w in workloads {
        for &r in rows {
            for (name, c) in costs(runs, reps, r, w) {
                s += &format!(
                    "{:<8} {:<14} {:<16} {:>9.2} {:>9.0} {:>9.0}\n",
                    w.name(),
                    r.name(),
                    name,
                    c.runs_per_walk,
                    c.ns_per_run,
                    c.ns_per_walk
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::overhead::{parse::ProgStat, table::Run};

    fn stat(name: &str, runs: u64, ns: u64) -> ProgStat {
        ProgStat {
            name: name.into(),
            runs,
            ns,
        }
    }

    #[test]
    fn per_walk_costs_are_medians_and_same_names_add_up() {
        let mut r = Runs::new();
        for (rep, enter_ns) in [(1, 1000), (2, 3000), (3, 2000)] {
            r.insert(
                (rep, Row::Fentry, Workload::Anon),
                Run {
                    seen: Some(10),
                    stats: vec![
                        stat("fentry_anon", 10, enter_ns),
                        stat("sched_switch", 5, 100),
                        stat("sched_switch", 15, 300),
                    ],
                    ..Run::default()
                },
            );
        }
        let c = costs(&r, 3, Row::Fentry, Workload::Anon);
        assert_eq!(
            c["fentry_anon"],
            Cost {
                runs_per_walk: 1.0,
                ns_per_run: 200.0,
                ns_per_walk: 200.0
            }
        );
        assert_eq!(
            c["sched_switch"],
            Cost {
                runs_per_walk: 2.0,
                ns_per_run: 20.0,
                ns_per_walk: 40.0
            }
        );
        assert!((c["(all)"].ns_per_walk - 240.0).abs() < 1e-9);
        assert!(costs(&r, 3, Row::Kprobe, Workload::Anon).is_empty());
        let t = render(&r, 3, &[Row::Fentry], &[Workload::Anon]);
        assert!(
            t.contains("anon     fentry         fentry_anon           1.00       200       200"),
            "{t}"
        );
    }
}
