//! The suite on our kernel (`cargo xtask kernel`): both rmap tracepoint ABIs through `raw_tp` and
//! the classic tracepoint, auto mode choosing the tracepoint, `page_type` and locked as the
//! kernel reports them, and KSM migration after mremap with ksm-rmap-pgoff.
use serde_json::Value;

use super::{Checks, counter, json, kernel_walks};
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// The kernel the suite boots unless `--patches` names another.
pub const PATCHES: &str = "rmap-tracepoints,rmap-tracepoint-v4,ksm-rmap-pgoff";
/// Enough VMAs for slow KSM walks without the optimization, few enough for a quick suite.
pub const PAGES: u32 = 2000;

/// Each run: name, rmap-trace's attach options, the mode and attach-point prefix expected.
const RUNS: [(&str, &str, &str, &str); 5] = [
    ("auto", "", "tracepoint", "raw_tp:rmap_walk_start"),
    (
        "pair-raw",
        "--attach-mode tracepoint --tracepoint-flavor raw",
        "tracepoint",
        "raw_tp:rmap_walk_start",
    ),
    (
        "pair-classic",
        "--attach-mode tracepoint --tracepoint-flavor classic",
        "tracepoint",
        "tp:rmap/rmap_walk_start",
    ),
    (
        "v4-raw",
        "--attach-mode tracepoint-v4 --tracepoint-flavor raw",
        "tracepoint-v4",
        "raw_tp:rmap_walk",
    ),
    (
        "v4-classic",
        "--attach-mode tracepoint-v4 --tracepoint-flavor classic",
        "tracepoint-v4",
        "tp:rmap/rmap_walk",
    ),
];

/// The scenarios of each run (`--types ksm,anon,file --layouts split,thp`; thp is anon only).
const SCENARIOS: [(&str, &str); 4] = [
    ("ksm", "split"),
    ("anon", "split"),
    ("file", "split"),
    ("anon", "thp"),
];

fn script(pages: u32) -> String {
    let mut s = String::from(
        "run() { n=$1; shift; rmap-trace \"$@\" --json /tmp/$n.json > /tmp/$n.txt 2>&1; \
         echo \"exit $?\" >> /tmp/$n.txt; emit $n /tmp/$n.json; emit $n.txt /tmp/$n.txt; rm -f /tmp/$n.json; }\n\
         rmap-trace probe > /tmp/probe.txt 2>&1; emit probe.txt /tmp/probe.txt\n",
    );
    for (name, opts, _, _) in RUNS {
        s.push_str(&format!(
            "run {name} {opts} --types ksm,anon,file --layouts split,thp --pages {pages}\n"
        ));
    }
    s.push_str(&format!("run mremap --types ksm --pages {pages} --mremap\n"));
    s.push_str(&super::ring::script(pages));
    s.push_str(
        "cat /sys/devices/system/clocksource/clocksource0/current_clocksource > /tmp/clock.txt\n\
         emit clock /tmp/clock.txt\n",
    );
    s
}

fn scenario<'a>(doc: &'a Value, ty: &str, layout: &str) -> Option<&'a Value> {
    doc["scenarios"]
        .as_array()?
        .iter()
        .find(|s| s["scenario"]["page_type"] == ty && s["scenario"]["layout"] == layout)
}

/// Sum of a field over a scenario's per-type rows.
fn sum(s: Option<&Value>, field: &str) -> u64 {
    s.and_then(|s| s["rows"].as_array())
        .map_or(0, |rows| rows.iter().filter_map(|r| r[field].as_u64()).sum())
}

fn exit_line(run: &GuestRun, name: &str) -> String {
    run.outputs
        .get(&format!("{name}.txt"))
        .and_then(|t| t.lines().rev().find(|l| l.starts_with("exit ")))
        .unwrap_or("exit <none>")
        .to_string()
}

fn verify(run: &GuestRun, pages: u32, c: &mut Checks) {
    if let Some(t) = run.outputs.get("probe.txt") {
        println!("--- guest probe, our kernel ---\n{}", t.trim_end());
    }
    // At the end of the run: the TSC must not have been given up for jiffies on the way.
    let clock = run.outputs.get("clock").map_or("<none>", |s| s.trim());
    c.check(
        "clocksource stays tsc (walks timed in ns, not ticks)",
        clock == "tsc",
        clock.to_string(),
    );
    for (name, _, mode, point) in RUNS {
        if let Some(t) = run.outputs.get(&format!("{name}.txt")) {
            println!("--- guest output, {name} ---\n{}", t.trim_end());
        }
        let exit = exit_line(run, name);
        c.check(&format!("{name}: exit 0"), exit == "exit 0", exit);
        match json(run, name) {
            Ok(doc) => verify_run(name, mode, point, &doc, c),
            Err(_) => c.check(&format!("{name}: JSON summary"), false, "none"),
        }
    }
    verify_mremap(run, pages, c);
    super::ring::verify(run, c);
}

/// One benchmark run with forced attach options: the mode and point, page types, locked.
fn verify_run(name: &str, mode: &str, point: &str, doc: &Value, c: &mut Checks) {
    let chosen = &doc["attach"]["chosen"];
    let points: Vec<&str> = chosen["points"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    c.check(
        &format!("{name}: attached {mode} via {point}"),
        chosen["mode"] == mode && points.first() == Some(&point),
        chosen.to_string(),
    );
    // Per scenario (its rows cover the walks between its start and its end): walks of its own
    // type only. Counts over the whole run would not see one type reported as another.
    for (ty, layout) in SCENARIOS {
        let rows = scenario(doc, ty, layout).and_then(|s| s["rows"].as_array());
        let count = |t: &str| {
            rows.and_then(|r| r.iter().find(|r| r["key"] == t))
                .and_then(|r| r["count"].as_u64())
                .unwrap_or(0)
        };
        let own = count(ty);
        let others: Vec<String> = ["ksm", "anon", "file", "unknown"]
            .iter()
            .filter(|t| **t != ty && count(t) > 0)
            .map(|t| format!("{t} {}", count(t)))
            .collect();
        c.check(
            &format!("{name}: {ty}/{layout} scenario walks reported as {ty} only"),
            rows.is_some() && own > 0 && others.is_empty(),
            format!("{ty} {own}, others: [{}]", others.join(", ")),
        );
    }
    let unknown = kernel_walks(doc, "unknown");
    c.check(
        &format!("{name}: no walk of unknown page type"),
        unknown == 0,
        format!("{unknown} walks"),
    );
    // Splitting a THP walks it under the anon_vma lock the splitter holds; migration
    // walks take the lock themselves.
    let thp = scenario(doc, "anon", "thp");
    let (thp_locked, thp_walks) = (sum(thp, "locked"), sum(thp, "count"));
    c.check(
        &format!("{name}: THP split walks have locked=true"),
        thp_locked > 0 && thp_locked < thp_walks,
        format!("{thp_locked} of {thp_walks} anon/thp walks locked"),
    );
    let unlocked: u64 = [("ksm", "split"), ("anon", "split"), ("file", "split")]
        .iter()
        .map(|(t, l)| sum(scenario(doc, t, l), "locked"))
        .sum();
    c.check(
        &format!("{name}: migration walks have locked=false"),
        unlocked == 0,
        format!("{unlocked} locked walks in the split scenarios"),
    );
    for k in ["ringbuf_drops", "unpaired"] {
        let v = counter(doc, k);
        c.check(&format!("{name}: {k} zero"), v == 0, format!("{k} = {v}"));
    }
}

/// `--mremap`: every KSM page moved, merged again at its new address and migrated.
fn verify_mremap(run: &GuestRun, pages: u32, c: &mut Checks) {
    if let Some(t) = run.outputs.get("mremap.txt") {
        println!("--- guest output, mremap ---\n{}", t.trim_end());
    }
    let exit = exit_line(run, "mremap");
    c.check("mremap: exit 0 (every page migrated)", exit == "exit 0", exit);
    let doc = json(run, "mremap").unwrap_or(Value::Null);
    let ksm = scenario(&doc, "ksm", "split").map(|s| &s["scenario"]);
    let (moved, merged, triggered) = ksm.map_or((0, 0, 0), |s| {
        (
            s["mremapped"].as_u64().unwrap_or(0),
            s["ksm_merged"].as_u64().unwrap_or(0),
            s["pages_triggered"].as_u64().unwrap_or(0),
        )
    });
    c.check(
        "mremap: every page moved, merged again and migrated",
        moved == u64::from(pages) && merged > 0 && triggered == u64::from(pages),
        format!("mremapped {moved}, KSM merged {merged}, migrated {triggered} of {pages}"),
    );
    let walks = kernel_walks(&doc, "ksm");
    c.check("mremap: ksm walks traced", walks > 0, format!("{walks} walks"));
}

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    let ours = GuestArgs {
        patches: Some(args.patches.clone().unwrap_or_else(|| PATCHES.to_string())),
        kernel: None,
        modules: None,
        ..args.clone()
    };
    let out = guest::boot(&ours, &script(pages), false)?;
    eprintln!(
        "xtask: guest (our kernel) finished in {:.1} s",
        out.elapsed.as_secs_f64()
    );
    verify(&out, pages, c);
    Ok(())
}
