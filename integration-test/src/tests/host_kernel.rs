//! Tests against this host's kernel with the real eBPF object that rmap-user embeds (root
//! required, as in CI).
use std::{
    process::Command,
    time::{Duration, Instant},
};

use aya::programs::{FEntry, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint};
use rmap_user::attach::{
    load::{self, Filters, KernelFacts},
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

/// The verifier accepts every program this kernel can load. fentry/fexit may be refused as a
/// whole (EPERM on our sandboxed hosts) but never by the verifier.
#[test]
fn verifier_accepts_every_program() {
    require_root();
    let facts = KernelFacts::read().expect("kernel facts");
    let mut ebpf = load::load_object(&filters(), &facts).expect("object loads");
    let btf = aya::Btf::from_sys_fs().expect("kernel BTF");
    let kbtf = &facts.kernel_btf;
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    assert!(names.len() >= 20, "{names:?}");
    let mut loaded = 0;
    for name in &names {
        let prog = ebpf.program_mut(name).expect("listed program");
        let result: Result<(), ProgramError> = match prog {
            Program::RawTracePoint(p) => RawTracePoint::load(p),
            Program::TracePoint(p) => TracePoint::load(p),
            Program::KProbe(p) => KProbe::load(p),
            Program::FEntry(_) | Program::FExit(_) => {
                let suffix = name.trim_start_matches("fentry_").trim_start_matches("fexit_");
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
            Ok(()) => loaded += 1,
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
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(loaded >= 11, "only {loaded} programs loaded");
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
    let outcome = match load::attach(&mut ebpf, &facts, AttachChoice::Auto, TpFlavor::Auto, true) {
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
