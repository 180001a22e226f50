//! The `--json` documents against the table of docs/json.md, both ways: every
//! field the writers produce is documented with its type, and every documented field is
//! produced. The documents are made by the commands' own types from a real aggregator, real
//! kernel counter sums and a real attach outcome, then serialized as `--json` writes them.
use std::{collections::BTreeMap, os::unix::fs::MetadataExt as _, path::PathBuf, time::Duration};

use rmap_common::{
    COUNTERS, FLAG_OFFCPU_VALID, FLAG_OWNER_VALID, LOG2_BUCKETS, PAGE_TYPES, PageType, WalkEvent,
    stall::{StallCounter, StallEvent},
};
use rmap_user::{
    agg::Aggregator,
    attach::plan::{Chosen, Mode, Outcome, Skipped},
    cmd::{
        bench::{BenchJson, ScenarioResult},
        live::LiveJson,
    },
    counters::KernelCounts,
    owners::names::OwnerNames,
    procs::Process,
    stalls::{agg::StallAgg, kernel::StallCounts, render::StallsJson},
    trace_loop::summary::RunJson,
    workload::{
        Ran,
        victims::{VictimOp, VictimRun},
    },
};
use serde_json::Value;

/// A documented field: its type and which documents have it.
struct Field {
    ty: String,
    runs: String,
}

/// The table of docs/json.md: path → field, and the row arrays of "Every row (...)".
fn documented() -> (BTreeMap<String, Field>, Vec<String>) {
    let section = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/json.md"))
        .expect("docs/json.md documents the JSON output");
    let mut fields = BTreeMap::new();
    let mut rows = Vec::new();
    for line in section.lines() {
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(|n| n.trim_end_matches("[]").to_string())
                .collect()
        };
        if line.starts_with("Every row (") {
            rows = names(line.split(')').next().unwrap_or(""));
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        for name in cells[1].split(", ") {
            let name = name.trim_matches('`').to_string();
            fields.insert(
                name,
                Field {
                    ty: cells[2].to_string(),
                    runs: cells[3].to_string(),
                },
            );
        }
    }
    (fields, rows)
}

/// The fields a document of `run` (`bench` or `live`) must have, with their types.
fn expected(run: &str) -> BTreeMap<String, String> {
    let (fields, rows) = documented();
    let mut out: BTreeMap<String, String> = fields
        .iter()
        .filter(|(_, f)| f.runs == "both" || f.runs == run)
        .map(|(p, f)| (p.clone(), f.ty.clone()))
        .collect();
    let row_arrays: Vec<&String> = rows.iter().filter(|r| out.contains_key(*r)).collect();
    for prefix in row_arrays {
        for (suffix, f) in fields.iter().filter(|(_, f)| f.runs == "row") {
            out.insert(format!("{prefix}{suffix}"), f.ty.clone());
        }
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path of `v` with the kinds of value seen there (`[]` for array elements; an element
/// that is an object is described by its fields alone).
fn flatten(v: &Value, path: &str, out: &mut BTreeMap<String, Vec<&'static str>>) {
    let object_element = path.ends_with("[]") && v.is_object();
    if !path.is_empty() && !object_element {
        out.entry(path.to_string()).or_default().push(kind(v));
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                flatten(v, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn check(run: &str, doc: &Value) {
    let want = expected(run);
    let mut have = BTreeMap::new();
    flatten(doc, "", &mut have);
    for (path, kinds) in &have {
        let ty = want
            .get(path)
            .unwrap_or_else(|| panic!("{run}: `{path}` is not in the JSON table of docs/json.md"));
        for k in kinds {
            let ok = ty == k
                || ty
                    .strip_suffix(" or null")
                    .is_some_and(|t| t == *k || *k == "null");
            assert!(ok, "{run}: `{path}` is {k}, docs/json.md says {ty}");
        }
    }
    for path in want.keys() {
        assert!(
            have.contains_key(path),
            "{run}: `{path}` of docs/json.md is not written"
        );
    }
}

fn walk(ty: PageType, ns: u64, locked: u32) -> WalkEvent {
    WalkEvent {
        page_type: ty as u32,
        duration_ns: ns,
        offcpu_ns: ns / 4,
        flags: FLAG_OFFCPU_VALID,
        locked,
        pid: 42,
        ..Default::default()
    }
}

/// A node in a temporary directory: a burstable containerd pod's cgroup (systemd driver) and
/// the kubelet's log tree naming it. Returns the root and the container cgroup's id.
fn node(tag: &str) -> (PathBuf, u64) {
    let root = std::env::temp_dir().join(format!("rmap-json-{tag}-{}", std::process::id()));
    let uid = "1b4e3b8a-5c5e-4a6e-9f0e-2d3c4b5a6978";
    let id = "8f2d4c6b1a3e5f7d9c0b2a4e6f8d1c3b5a7e9f0d2c4b6a8e1f3d5c7b9a0e2f4d";
    let container = root.join(format!(
        "cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
        uid.replace('-', "_")
    ));
    std::fs::create_dir_all(&container).unwrap();
    std::fs::create_dir_all(root.join(format!("log/pods/shop_web-0_{uid}/app"))).unwrap();
    std::fs::create_dir_all(root.join("log/containers")).unwrap();
    std::fs::write(root.join(format!("log/containers/web-0_shop_app-{id}.log")), "").unwrap();
    let ino = std::fs::metadata(&container).unwrap().ino();
    (root, ino)
}

fn names(root: &std::path::Path) -> OwnerNames {
    OwnerNames::at(root.join("cgroup"), root.join("log/pods"))
}

fn aggregator(pod_cgroup: u64) -> Aggregator {
    let mut agg = Aggregator::default();
    agg.record(
        &WalkEvent {
            cgroup_id: pod_cgroup,
            flags: FLAG_OWNER_VALID,
            ..walk(PageType::Ksm, 3_000_000, 0)
        },
        "migrate",
        Process::named("java"),
    );
    for i in 1..=50 {
        agg.record(
            &walk(PageType::Ksm, i * 1_000_000, 0),
            "migrate",
            Process::named("rmap-trace"),
        );
        agg.record(
            &walk(PageType::Anon, i * 1_000, i as u32 % 2),
            "referenced",
            Process::named("kswapd0"),
        );
    }
    agg
}

fn counts() -> KernelCounts {
    let counters: Vec<u64> = (0..COUNTERS as u64).collect();
    let hist: Vec<u64> = (0..(PAGE_TYPES * LOG2_BUCKETS) as u64).map(|i| i % 3).collect();
    KernelCounts::from_sums(&counters, &hist)
}

fn outcome() -> Outcome {
    Outcome {
        chosen: Some(Chosen {
            mode: Mode::Kprobe,
            points: vec!["kprobe:rmap_walk_ksm".into()],
        }),
        skipped: vec![Skipped {
            mode: "fentry",
            reason: "BPF_PROG_LOAD: EPERM".into(),
        }],
        not_tried: vec!["tracepoint"],
        notes: vec![],
    }
}

/// A `stalls` object with every array non-empty: a victim process with a named thread and
/// one beyond the bound ("other", null pid), and a walk.
fn stalls(names: &mut OwnerNames, pod_cgroup: u64) -> StallsJson {
    let mut agg = StallAgg::default();
    let name = |s: &str| {
        let mut b = [0u8; 16];
        b[..s.len()].copy_from_slice(s.as_bytes());
        b
    };
    for pid in 0..=rmap_user::stalls::agg::THREADS as u32 {
        agg.record(&StallEvent {
            wait_ns: 1_000_000,
            walk_start_ns: 5,
            pid: 100 + pid,
            tgid: 100,
            walker_pid: 7,
            walker_tgid: 7,
            page_type: PageType::Ksm as u32,
            comm: name("VM Thread"),
            process: name("java"),
            walker_comm: name("kcompactd0"),
            cgroup_id: pod_cgroup,
            ..StallEvent::default()
        });
    }
    let mut counters: Vec<(&'static str, u64)> = StallCounter::ALL.iter().map(|c| (c.name(), 1)).collect();
    counters[0].1 = 17;
    let mut buckets = vec![0u64; rmap_common::HIST_BUCKETS];
    buckets[rmap_common::hist_bucket(1_000_000) as usize] = 17;
    StallsJson::new(&agg, StallCounts { counters, buckets }, 17, names)
}

fn run_json<'a>(outcome: &'a Outcome, counts: &'a KernelCounts) -> RunJson<'a> {
    RunJson {
        kernel: "6.1.0-test".into(),
        kernel_build: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-03-05)".into(),
        attach: outcome,
        offcpu_unavailable: None,
        stalls_unavailable: Some("no lock:contention_end tracepoint in this kernel"),
        duration_s: Duration::from_millis(2500).as_secs_f64(),
        kernel_counts: counts,
        decode_errors: 0,
    }
}

#[test]
fn live_document_matches_docs_json() {
    let (root, pod_cgroup) = node("live");
    let mut names = names(&root);
    let (outcome, counts, agg) = (outcome(), counts(), aggregator(pod_cgroup));
    let doc = LiveJson {
        run: run_json(&outcome, &counts),
        types: agg.type_rows(),
        purposes: agg.purpose_rows(),
        record_min_us: 1000,
        processes: agg.process_rows(usize::MAX),
        owners: agg.owner_rows(usize::MAX, &mut names),
        stalls: Some(stalls(&mut names, pod_cgroup)),
    };
    let doc = serde_json::to_value(&doc).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(doc["stalls"]["victims"][0]["pod"]["pod"], "web-0");
    check("live", &doc);
}

#[test]
fn bench_document_matches_docs_json() {
    let (outcome, counts, agg) = (outcome(), counts(), aggregator(0));
    let scenarios = [ScenarioResult {
        scenario: Ran {
            page_type: "ksm",
            layout: "split",
            vmas: 2000,
            mappings_per_page: 256,
            pages_triggered: 2000,
            trigger: "move-pages",
            target_node: Some(1),
            mremapped: 0,
            ksm_merged: 2000,
            trigger_ns: 1_000_000,
            victims: vec![VictimRun {
                pid: 77,
                op: VictimOp::Mprotect,
                calls: 100,
                total_ns: 9_000_000,
                baseline_ns: 30_000,
                slow_calls: 10,
                slow_ns: 6_000_000,
                excess_ns: 5_700_000,
            }],
        },
        rows: agg.type_rows(),
        purposes: agg.purpose_rows(),
    }];
    let doc = BenchJson {
        run: run_json(&outcome, &counts),
        trigger: "move-pages",
        scenarios: &scenarios,
    };
    check("bench", &serde_json::to_value(&doc).unwrap());
}

/// The names the guest suites read are the ones documented.
#[test]
fn named_fields_not_tuples() {
    let (outcome, counts) = (outcome(), counts());
    let v = serde_json::to_value(run_json(&outcome, &counts)).unwrap();
    assert_eq!(v["attach"]["chosen"]["mode"], "kprobe");
    assert_eq!(v["attach"]["skipped"][0]["reason"], "BPF_PROG_LOAD: EPERM");
    assert_eq!(v["kernel_counts"]["counters"]["unpaired"], 3);
    assert_eq!(v["kernel_counts"]["per_type"][0]["type"], "ksm");
    let ksm: u64 = (0..LOG2_BUCKETS as u64).map(|i| i % 3).sum();
    assert_eq!(v["kernel_counts"]["per_type"][0]["walks"], ksm);
}
