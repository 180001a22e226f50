//! The checks of one kernel's run of the kernels suite, each recorded twice: as a named check
//! (`ok` / `FAIL` lines) and as a cell of the kernel × feature table.
use std::collections::BTreeMap;

use serde_json::Value;

use super::{Cell, Depth};
use crate::{
    guest::qemu::GuestRun,
    vm_test::{Checks, kernel_walks, row},
};

/// The page types the workload walks.
const TYPES: [&str; 3] = ["ksm", "anon", "file"];

/// The modes of the attach plan, in its order: the table's mode columns.
pub const MODES: [&str; 4] = ["tracepoint", "tracepoint-v4", "fentry", "kprobe"];

/// A guest output as text ("" when the guest sent none).
fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}

fn json(run: &GuestRun, name: &str) -> Value {
    serde_json::from_str(text(run, name)).unwrap_or(Value::Null)
}

/// Checks one kernel's run; the table's cells by column.
pub fn kernel(run: &GuestRun, label: &str, depth: Depth, c: &mut Checks) -> BTreeMap<String, Cell> {
    let mut cells = BTreeMap::new();
    let probe = json(run, "probe");
    let ran: Vec<String> = text(run, "modes").split_whitespace().map(String::from).collect();
    for mode in MODES {
        let detail = probe["modes"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["mode"] == mode))
            .cloned()
            .unwrap_or(Value::Null);
        let cell = if detail["available"] != true {
            Cell::not_here(detail["detail"].as_str().unwrap_or("not probed"))
        } else if ran.iter().any(|m| m == mode) {
            mode_run(run, label, mode, mode, c)
        } else {
            Cell::ok("available (not run in the smoke)")
        };
        cells.insert(mode.to_string(), cell);
    }
    if depth == Depth::Smoke {
        let cell = mode_run(run, label, "auto", "auto", c);
        cells.insert("auto".to_string(), cell);
        return cells;
    }
    let docs: Vec<Value> = ran.iter().map(|m| json(run, m)).collect();
    cells.insert("purposes".into(), purposes(&docs, label, c));
    cells.insert("owners".into(), owners(&docs, label, c));
    cells.insert("off-CPU".into(), offcpu(&docs, label, c));
    cells.insert("stalls".into(), stalls(run, label, c));
    cells.insert("prometheus".into(), prometheus(run, label, c));
    cells.insert("restore".into(), restore(run, label, c));
    cells
}

/// One mode's run (`name`: its outputs' name): it attached with that mode, and per page type
/// its walk count equals the kretprobes' count and the workload's expected count.
fn mode_run(run: &GuestRun, label: &str, name: &str, mode: &str, c: &mut Checks) -> Cell {
    let doc = json(run, name);
    let chosen = doc["attach"]["chosen"]["mode"].as_str().unwrap_or("none");
    let attached = mode == "auto" || chosen == mode;
    c.check(
        &format!("kernels {label} {name}: attached"),
        attached && !doc.is_null(),
        format!(
            "chosen {chosen}; {}",
            text(run, &format!("{name}.txt")).lines().next().unwrap_or("")
        ),
    );
    let probes = kretprobe_counts(text(run, &format!("count-{name}")));
    let workload = text(run, &format!("w-{name}"));
    let expected = crate::workload_out::expected(workload);
    c.check(
        &format!("kernels {label} {name}: the workload's progress to a file is plain lines"),
        !workload.contains('\u{1b}'),
        workload
            .lines()
            .find(|l| l.contains('\u{1b}'))
            .unwrap_or("no escape sequences"),
    );
    let mut parts = Vec::new();
    let mut all_equal = attached;
    for ty in TYPES {
        let ours = kernel_walks(&doc, ty);
        let (kp, want) = (probes.get(ty).copied(), expected.get(ty).copied());
        let equal = Some(ours) == kp && Some(ours) == want && ours > 0;
        all_equal &= equal;
        c.check(
            &format!("kernels {label} {name}: {ty} walks = kretprobes' = the workload's"),
            equal,
            format!("rmap-trace {ours}, kretprobes {kp:?}, workload {want:?}"),
        );
        parts.push(format!("{ty} {ours}"));
    }
    let misses = kretprobe_misses(text(run, &format!("count-{name}")));
    c.check(
        &format!("kernels {label} {name}: the kretprobes missed nothing"),
        misses == Some(0),
        format!("{misses:?} missed"),
    );
    let mode_shown = if mode == "auto" {
        format!("{chosen}: ")
    } else {
        String::new()
    };
    if all_equal && misses == Some(0) {
        Cell::ok(&format!("✓ {mode_shown}{}", parts.join(", ")))
    } else {
        Cell::fail(&format!("counts differ: {}", parts.join(", ")))
    }
}

/// `count TYPE N` lines of the guest's kretprobe count.
fn kretprobe_counts(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("count ")?.split_whitespace();
            Some((w.next()?, w.next()?.parse().ok()?))
        })
        .filter(|(ty, _)| TYPES.contains(ty))
        .collect()
}

/// Misses summed over the probes of `kprobe_profile` (`profile NAME HITS MISSES` lines).
fn kretprobe_misses(text: &str) -> Option<u64> {
    let rows: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("profile ")?
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()
        })
        .collect();
    (!rows.is_empty()).then(|| rows.iter().sum())
}

/// Every purpose named by its callback (no raw address, none unknown) in every mode that reads
/// them.
fn purposes(docs: &[Value], label: &str, c: &mut Checks) -> Cell {
    let mut names = std::collections::BTreeSet::new();
    let mut bad = Vec::new();
    for doc in docs {
        for r in doc["purposes"].as_array().into_iter().flatten() {
            let key = r["key"].as_str().unwrap_or("");
            let purpose = key.split_once('/').map_or(key, |(_, p)| p);
            if purpose.starts_with("0x") || purpose == "unknown" || purpose.is_empty() {
                bad.push(key.to_string());
            } else {
                names.insert(purpose.to_string());
            }
        }
    }
    let ok = bad.is_empty() && !names.is_empty();
    let names: Vec<String> = names.into_iter().collect();
    c.check(
        &format!("kernels {label}: purposes named"),
        ok,
        format!("named {names:?}, not named {bad:?}"),
    );
    if ok {
        Cell::ok(&format!("✓ {}", names.join(", ")))
    } else {
        Cell::fail(&format!("not named: {}", bad.join(", ")))
    }
}

/// Walks name the memory cgroup of their folio (or the probe says why not).
fn owners(docs: &[Value], label: &str, c: &mut Checks) -> Cell {
    let rows: usize = docs
        .iter()
        .map(|d| {
            d["owners"].as_array().map_or(0, |a| {
                a.iter()
                    .filter(|r| r["key"].as_str().is_some_and(|k| !k.is_empty()))
                    .count()
            })
        })
        .sum();
    let ok = rows > 0;
    c.check(
        &format!("kernels {label}: owners named"),
        ok,
        format!("{rows} owner rows"),
    );
    if ok {
        Cell::ok("✓")
    } else {
        Cell::fail("no owner rows")
    }
}

/// Off-CPU time measured for KSM walks by some mode that sees walk starts.
fn offcpu(docs: &[Value], label: &str, c: &mut Checks) -> Cell {
    let measured: u64 = docs
        .iter()
        .filter_map(|d| row(&d["types"], "ksm")?["offcpu_measured"].as_u64())
        .sum();
    c.check(
        &format!("kernels {label}: off-CPU time measured"),
        measured > 0,
        format!("{measured} ksm walks with off-CPU measured"),
    );
    if measured > 0 {
        Cell::ok("✓")
    } else {
        Cell::fail("not measured")
    }
}

/// `--attach-only --stalls` ran; waits attributed, or the reason said.
fn stalls(run: &GuestRun, label: &str, c: &mut Checks) -> Cell {
    let out = text(run, "stalls.txt");
    let doc = json(run, "stalls");
    let reason = doc["stalls_unavailable"].as_str();
    let attached = out
        .lines()
        .any(|l| l.trim_start().starts_with("stalls: raw_tp:lock/"));
    let ok = out.ends_with("exit 0") && (attached || reason.is_some());
    c.check(
        &format!("kernels {label}: --stalls attributes waits or says why not"),
        ok,
        reason.map_or_else(|| format!("attached: {attached}"), ToString::to_string),
    );
    match (ok, reason) {
        (true, Some(why)) => Cell::not_here(why),
        (true, None) => Cell::ok("✓"),
        (false, _) => Cell::fail(out.lines().last().unwrap_or("no output")),
    }
}

/// `--attach-only --prometheus` answered a scrape with the walk histograms.
fn prometheus(run: &GuestRun, label: &str, c: &mut Checks) -> Cell {
    let metrics = text(run, "metrics");
    let count = metrics
        .lines()
        .find(|l| l.starts_with("rmap_walk_duration_seconds_count{") && l.contains("anon"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let ok = count > 0.0;
    c.check(
        &format!("kernels {label}: --attach-only --prometheus scraped"),
        ok,
        format!(
            "anon walks counted {count}; {}",
            text(run, "prom.txt").lines().last().unwrap_or("")
        ),
    );
    if ok {
        Cell::ok("✓")
    } else {
        Cell::fail("no walk histogram scraped")
    }
}

/// After a SIGKILL of a KSM run, `restore` put KSM's knobs back.
fn restore(run: &GuestRun, label: &str, c: &mut Checks) -> Cell {
    let (before, killed, after) = (text(run, "k.before"), text(run, "k.killed"), text(run, "k.after"));
    let changed = before != killed;
    let ok = changed && before == after && text(run, "restore.txt").ends_with("exit 0");
    c.check(
        &format!("kernels {label}: SIGKILL, then restore puts KSM's knobs back"),
        ok,
        format!(
            "before [{}], killed [{}], after [{}]",
            before.replace('\n', " "),
            killed.replace('\n', " "),
            after.replace('\n', " ")
        ),
    );
    if ok {
        Cell::ok("✓")
    } else {
        Cell::fail("knobs not restored")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_references_are_read() {
        let k = "count ksm 4\ncount anon 128\ncount file 128\nprofile ksm 4 0\nprofile anon 130 0\n";
        assert_eq!(kretprobe_counts(k)["anon"], 128);
        assert_eq!(kretprobe_misses(k), Some(0));
        assert_eq!(kretprobe_misses("count ksm 1\n"), None);
        assert_eq!(kretprobe_misses("profile ksm 4 2\nprofile anon 1 1\n"), Some(3));
    }
}
