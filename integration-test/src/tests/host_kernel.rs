//! Tests against this host's kernel with the real eBPF object that rmap-user embeds (root
//! required, as in CI).
use std::{
    process::Command,
    time::{Duration, Instant},
};

use aya::programs::{FEntry, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint};
use rmap_user::attach::{
    load::{self, Filters, KernelFacts},
    modes,
    plan::{AttachChoice, Mode, TpFlavor},
    targets::Walker,
};

use crate::{require_root, rmap_trace_bin};

fn filters() -> Filters {
    Filters {
        type_mask: u32::MAX,
        ..Default::default()
    }
}

/// Every filter set: with frozen read-only globals the verifier prunes the branches a default
/// value makes dead (tgid 0, no comm, every type, no minimum duration), so only a load with
/// each one set checks the code behind it.
fn every_filter() -> Filters {
    Filters {
        tgid: 1,
        comm: Some("kswapd0".into()),
        // ksm and anon only (`PageType::mask_bit`: 1 << type), so the type filter is live.
        type_mask: 0b011,
        min_duration_ns: 1_000,
        ringbuf_bytes: Some(4096),
        inflight_entries: Some(1),
        inflight_stale_ns: Some(1_000_000),
        no_offcpu: false,
        // Any id: the filter's ancestor climb is then live code the verifier must accept.
        cgroup_id: 1,
        process: Some("java".into()),
        stalls: true,
    }
}

/// Every program of the object, by name: a program renamed or dropped fails here.
fn expected_programs() -> Vec<String> {
    // Each walker's programs, and the hooks that use the in-flight table, exist for both tables
    // (rmap-ebpf inflight.rs: `_lru` for the LRU hash).
    let mut names: Vec<String> = Walker::ALL
        .iter()
        .flat_map(|w| ["fentry_", "fexit_", "kprobe_", "kprobe_clone_"].map(|p| format!("{p}{}", w.suffix())))
        .chain(["kretprobe_walk".to_string(), "sched_switch".to_string()])
        .flat_map(|n| [format!("{n}_lru"), n])
        .collect();
    names.extend(
        [
            "raw_rmap_walk_start",
            "raw_rmap_walk_end",
            "raw_rmap_walk_v4",
            "tp_rmap_walk_start",
            "tp_rmap_walk_end",
            "tp_rmap_walk_v4",
            "contention_begin",
            "contention_end",
        ]
        .map(String::from),
    );
    names.sort();
    names
}

/// The verifier accepts every program this kernel can load, with the default load-time
/// globals and again with every filter set. fentry/fexit may be refused as a whole (EPERM on
/// our sandboxed hosts) but never by the verifier; every other program must load, by name.
#[test]
fn verifier_accepts_every_program() {
    require_root();
    let facts = KernelFacts::read().expect("kernel facts");
    for (what, filters) in [
        ("default globals", filters()),
        ("every filter set", every_filter()),
    ] {
        let loaded = load_every_program(&facts, &filters, what);
        for name in expected_programs() {
            if matches!(prog_kind(&name), Kind::Other) {
                assert!(loaded.contains(&name), "{what}: {name} did not load ({loaded:?})");
            }
        }
    }
}

/// Loads each program of a fresh object with `filters`; returns the names that loaded.
fn load_every_program(facts: &KernelFacts, filters: &Filters, what: &str) -> Vec<String> {
    let mut ebpf = load::load_object(filters, facts).expect("object loads");
    let btf = aya::Btf::from_sys_fs().expect("kernel BTF");
    let kbtf = &facts.kernel_btf;
    let mut names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(names, expected_programs());
    let mut loaded = Vec::new();
    for name in &names {
        let prog = ebpf.program_mut(name).expect("listed program");
        let result: Result<(), ProgramError> = match prog {
            Program::RawTracePoint(p) => RawTracePoint::load(p),
            Program::TracePoint(p) => TracePoint::load(p),
            Program::KProbe(p) => KProbe::load(p),
            Program::FEntry(_) | Program::FExit(_) => {
                let suffix = name
                    .trim_start_matches("fentry_")
                    .trim_start_matches("fexit_")
                    .trim_end_matches("_lru");
                let walker = Walker::ALL
                    .iter()
                    .find(|w| w.suffix() == suffix)
                    .expect("fentry program named after a walker");
                if !kbtf.has_function(walker.function()) {
                    continue; // e.g. __rmap_walk_file before 6.16
                }
                match prog {
                    Program::FEntry(p) => FEntry::load(p, walker.function(), &btf),
                    Program::FExit(p) => FExit::load(p, walker.function(), &btf),
                    _ => unreachable!(),
                }
            }
            other => panic!("unexpected program type for {name}: {:?}", other.prog_type()),
        };
        match result {
            Ok(()) => loaded.push(name.clone()),
            Err(ProgramError::LoadError {
                io_error,
                verifier_log,
            }) if io_error.raw_os_error() == Some(libc::EPERM)
                && matches!(prog_kind(name), Kind::Trampoline) =>
            {
                // Refused before verification: the log is empty or only statistics.
                let log = verifier_log.to_string();
                assert!(
                    !log.contains("invalid") && !log.contains("prohibited"),
                    "{name}: {log}"
                );
            }
            Err(e) => panic!("{what}: {name}: {e}"),
        }
    }
    loaded
}

enum Kind {
    Trampoline,
    Other,
}

fn prog_kind(name: &str) -> Kind {
    if name.starts_with("fentry_") || name.starts_with("fexit_") {
        Kind::Trampoline
    } else {
        Kind::Other
    }
}

/// The plan tries every mode and reports a reason for each one that failed; tracepoint
/// reasons follow tracefs.
#[test]
fn attach_plan_reports_every_mode() {
    require_root();
    let facts = KernelFacts::read().expect("kernel facts");
    let mut ebpf = load::load_object(&filters(), &facts).expect("object loads");
    let has_tp = facts
        .tracefs
        .as_ref()
        .is_some_and(|t| t.has_event("rmap", "rmap_walk_start"));
    let outcome = match modes::attach(&mut ebpf, &facts, AttachChoice::Auto, TpFlavor::Auto, true) {
        Ok(a) => a.outcome,
        Err(o) => o,
    };
    let report = outcome.report();
    let tried = outcome.skipped.len() + usize::from(outcome.chosen.is_some()) + outcome.not_tried.len();
    assert_eq!(tried, 4, "{report:?}");
    for s in &outcome.skipped {
        assert!(!s.reason.is_empty(), "{} skipped without a reason", s.mode);
    }
    if !has_tp {
        let why = &outcome
            .skipped
            .iter()
            .find(|s| s.mode == "tracepoint")
            .expect("tracepoint skipped")
            .reason;
        assert!(why.contains("no rmap:rmap_walk_start"), "{why}");
    }
    if let Some(chosen) = &outcome.chosen {
        assert!(!chosen.points.is_empty());
        assert!(report[0].starts_with("attach: "), "{report:?}");
        assert_ne!(chosen.mode, Mode::TracepointPair, "chosen without the event");
    }
}

/// `--attach-only --duration 3`: where no mode can attach (our hosts), a non-zero exit within
/// 10 s with the report; elsewhere a summary after about 3 s.
#[test]
fn attach_only_exits_in_time() {
    require_root();
    let bin = rmap_trace_bin();
    let probe = Command::new(&bin).arg("probe").output().expect("probe runs");
    assert!(probe.status.success());
    let probe = String::from_utf8_lossy(&probe.stdout);
    for mode in ["tracepoint", "tracepoint-v4", "fentry", "kprobe"] {
        assert!(
            probe.lines().any(|l| l.starts_with(&format!("mode {mode} "))),
            "probe lacks {mode}:\n{probe}"
        );
    }
    let can_attach = probe
        .lines()
        .any(|l| l.starts_with("mode ") && l.contains(" available:"));
    let start = Instant::now();
    let out = Command::new(&bin)
        .args(["--attach-only", "--duration", "3"])
        .output()
        .expect("runs");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if can_attach {
        assert!(out.status.success(), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("=== summary"));
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(stderr.contains("attach: no mode could attach"), "{stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("  skipped ")).count(),
            4,
            "{stderr}"
        );
        assert!(
            stderr
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("rmap-trace: error: no attach mode works")),
            "{stderr}"
        );
    }
}

/// Without `--stalls` its maps are created small (nothing writes them); with it, full size.
#[test]
fn stall_maps_are_small_without_stalls() {
    require_root();
    let facts = KernelFacts::read().expect("kernel facts");
    let sizes = |stalls: bool| {
        let ebpf = load::load_object(&Filters { stalls, ..filters() }, &facts).expect("object loads");
        let entries = |name: &str| match ebpf.map(name).expect("map in the object") {
            aya::maps::Map::LruHashMap(m) | aya::maps::Map::RingBuf(m) => {
                m.info().expect("map info").max_entries()
            }
            other => panic!("{name}: unexpected map type {other:?}"),
        };
        (
            entries(rmap_common::maps::WAITING),
            entries(rmap_common::maps::STALLS),
        )
    };
    assert_eq!(sizes(false), (16, 4096), "without --stalls");
    assert_eq!(sizes(true), (4096, 256 << 10), "with --stalls");
}
