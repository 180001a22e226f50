//! Attaching the first mode of the plan that works to a loaded object (`load`), or trying every
//! mode (`probe`). Programs of a mode that failed half-way are unloaded again, which detaches
//! whatever they had attached.
use aya::{
    Ebpf,
    maps::Array,
    programs::{FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint},
};
use rmap_common::{TpLayout, maps};

use super::{
    errors::describe,
    load::{self, Filters, KernelFacts, LoadError},
    plan::{self, AttachChoice, Chosen, Mode, ModeSpec, Outcome, Skipped, TpFlavor},
    targets::{self, Target},
};
use crate::kernel::tracefs;

/// An attached mode.
pub struct Attached {
    pub outcome: Outcome,
    /// Why off-CPU time is not measured, if it is not.
    pub offcpu_unavailable: Option<String>,
}

/// Tries the plan's modes for `choice`; on success the programs stay attached in `ebpf` (and
/// detach when it is dropped). On failure every mode's reason is in the outcome.
pub fn attach(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    choice: AttachChoice,
    flavor: TpFlavor,
    offcpu: bool,
) -> Result<Attached, Outcome> {
    let mut outcome = Outcome::default();
    for spec in plan::modes(choice) {
        if outcome.chosen.is_some() {
            outcome.not_tried.push(spec.name);
            continue;
        }
        match try_mode(ebpf, facts, spec, flavor) {
            Ok(points) => {
                outcome.chosen = Some(Chosen {
                    mode: spec.mode,
                    points,
                });
            }
            Err(reason) => outcome.skipped.push(Skipped {
                mode: spec.name,
                reason,
            }),
        }
    }
    let selected: Vec<Mode> = plan::modes(choice).map(|s| s.mode).collect();
    for spec in plan::PLAN.iter().filter(|s| !selected.contains(&s.mode)) {
        outcome.not_tried.push(spec.name);
    }
    let Some(mode) = outcome.chosen.as_ref().map(|c| c.mode) else {
        return Err(outcome);
    };
    if mode == Mode::Kprobe {
        outcome.notes = kprobe_targets(facts).map_or_else(|_| Vec::new(), |t| targets::clone_notes(&t));
    }
    let offcpu_unavailable = if !offcpu {
        Some("disabled (--no-offcpu)".into())
    } else if plan::spec(mode).has_start {
        attach_sched(ebpf, facts).err()
    } else {
        Some("the v4 tracepoint reports whole walks only".into())
    };
    Ok(Attached {
        outcome,
        offcpu_unavailable,
    })
}

/// A mode's name and its attach points, or why it is unavailable.
pub type ModeProbe = (&'static str, Result<Vec<String>, String>);

/// Every mode's availability, each tried and detached again (for `rmap-trace probe`).
pub fn probe_all(facts: &KernelFacts, filters: &Filters) -> Result<Vec<ModeProbe>, LoadError> {
    let mut results = Vec::new();
    for spec in &plan::PLAN {
        // A fresh object per mode, so that each is tried from scratch; dropped = detached.
        let mut ebpf = load::load_object(filters, facts)?;
        results.push((spec.name, try_mode(&mut ebpf, facts, spec, TpFlavor::Auto)));
    }
    Ok(results)
}

fn try_mode(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    spec: &ModeSpec,
    flavor: TpFlavor,
) -> Result<Vec<String>, String> {
    match spec.mode {
        Mode::TracepointPair => tracepoints(
            ebpf,
            facts,
            &[
                ("raw_rmap_walk_start", "tp_rmap_walk_start", "rmap_walk_start"),
                ("raw_rmap_walk_end", "tp_rmap_walk_end", "rmap_walk_end"),
            ],
            (
                facts.layouts.layout.pair_folio,
                facts.layouts.pair_error.as_deref(),
            ),
            flavor,
        ),
        Mode::TracepointV4 => tracepoints(
            ebpf,
            facts,
            &[("raw_rmap_walk_v4", "tp_rmap_walk_v4", "rmap_walk")],
            (facts.layouts.layout.v4_folio, facts.layouts.v4_error.as_deref()),
            flavor,
        ),
        Mode::Fentry => fentry(ebpf, facts),
        Mode::Kprobe => kprobe(ebpf, facts),
    }
}

/// Unloads programs (detaching their links) after a mode failed half-way.
fn unload_all(ebpf: &mut Ebpf, names: &[String]) {
    for name in names {
        if let Some(prog) = ebpf.program_mut(name)
            && let Err(e) = unload(prog)
        {
            log::debug!("unloading {name}: {e}");
        }
    }
}

fn unload(prog: &mut aya::programs::Program) -> Result<(), ProgramError> {
    use aya::programs::Program as P;
    match prog {
        P::RawTracePoint(p) => p.unload(),
        P::TracePoint(p) => p.unload(),
        P::FEntry(p) => p.unload(),
        P::FExit(p) => p.unload(),
        P::KProbe(p) => p.unload(),
        _ => Ok(()),
    }
}

pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?;
    prog.try_into().map_err(|e: ProgramError| format!("{name}: {e}"))
}

/// Runs the steps of one attempt, which record every program they touch; when a step fails
/// those programs are unloaded again (detaching what they attached), so that a failed attempt
/// leaves nothing attached.
fn all_or_nothing(
    ebpf: &mut Ebpf,
    steps: impl FnOnce(&mut Ebpf, &mut Vec<String>) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    let mut touched = Vec::new();
    steps(ebpf, &mut touched).inspect_err(|_| unload_all(ebpf, &touched))
}

/// The rmap tracepoints: `raw_tp` first (arguments directly), else the classic tracepoint, or
/// only one of them (`--tracepoint-flavor`).
fn tracepoints(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    events: &[(&str, &str, &str)],
    (layout_first, layout_error): (u32, Option<&str>),
    flavor: TpFlavor,
) -> Result<Vec<String>, String> {
    let exists = |ev: &str| {
        facts.tracefs.as_ref().is_some_and(|t| t.has_event("rmap", ev))
            || facts.kernel_btf.has_typedef(&format!("btf_trace_{ev}"))
    };
    let missing: Vec<_> = events
        .iter()
        .filter(|(_, _, ev)| !exists(ev))
        .map(|(_, _, ev)| format!("rmap:{ev}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no {} tracepoint in this kernel (it lacks the rmap tracepoint patch)",
            missing.join("/")
        ));
    }
    let raw_err = if flavor == TpFlavor::Classic {
        "not tried (--tracepoint-flavor classic)".to_string()
    } else {
        match all_or_nothing(ebpf, |ebpf, touched| {
            let mut points = Vec::new();
            for (raw, _, ev) in events {
                touched.push(raw.to_string());
                let p: &mut RawTracePoint = program(ebpf, raw)?;
                p.load().map_err(|e| describe(&e))?;
                p.attach(ev).map_err(|e| describe(&e))?;
                points.push(format!("raw_tp:{ev}"));
            }
            Ok(points)
        }) {
            Ok(points) => return Ok(points),
            Err(e) => e,
        }
    };
    if flavor == TpFlavor::Raw {
        return Err(format!(
            "raw_tp: {raw_err}; tp: not tried (--tracepoint-flavor raw)"
        ));
    }
    if layout_first == TpLayout::ABSENT {
        let why = layout_error.unwrap_or("no format file in tracefs");
        return Err(format!("raw_tp: {raw_err}; tp: {why}"));
    }
    all_or_nothing(ebpf, |ebpf, touched| {
        let mut points = Vec::new();
        for (_, tp, ev) in events {
            touched.push(tp.to_string());
            let p: &mut TracePoint = program(ebpf, tp)?;
            p.load().map_err(|e| describe(&e))?;
            p.attach("rmap", ev).map_err(|e| describe(&e))?;
            points.push(format!("tp:rmap/{ev}"));
        }
        Ok(points)
    })
    .map_err(|e| format!("raw_tp: {raw_err}; tp: {e}"))
}

fn fentry(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<Vec<String>, String> {
    let btf = facts
        .btf
        .as_ref()
        .ok_or("no kernel BTF (/sys/kernel/btf/vmlinux)")?;
    let kbtf = &facts.kernel_btf;
    let targets = targets::resolve(|f| kbtf.has_function(f).then(|| f.to_string()))?;
    all_or_nothing(ebpf, |ebpf, touched| {
        let mut points = Vec::new();
        let table = facts.features.program_suffix();
        for Target { walker, symbol, .. } in &targets {
            let entry = format!("fentry_{}{table}", walker.suffix());
            touched.push(entry.clone());
            let p: &mut FEntry = program(ebpf, &entry)?;
            p.load(symbol, btf)
                .map_err(|e| format!("{entry}: {}", describe(&e)))?;
            p.attach().map_err(|e| format!("{entry}: {}", describe(&e)))?;
            let exit = format!("fexit_{}{table}", walker.suffix());
            touched.push(exit.clone());
            let p: &mut FExit = program(ebpf, &exit)?;
            p.load(symbol, btf)
                .map_err(|e| format!("{exit}: {}", describe(&e)))?;
            p.attach().map_err(|e| format!("{exit}: {}", describe(&e)))?;
            points.push(format!("fentry+fexit:{symbol}"));
        }
        Ok(points)
    })
}

fn kprobe(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<Vec<String>, String> {
    if !tracefs::has_kprobes(facts.tracefs.as_ref()) {
        return Err(
            "this kernel has no kprobes (no kprobe PMU, no kprobe_events: CONFIG_KPROBES unset?)".into(),
        );
    }
    let targets = kprobe_targets(facts)?;
    let table = facts.features.program_suffix();
    let ret_name = format!("kretprobe_walk{table}");
    all_or_nothing(ebpf, |ebpf, touched| {
        touched.push(ret_name.clone());
        let ret: &mut KProbe = program(ebpf, &ret_name)?;
        ret.load().map_err(|e| format!("{ret_name}: {}", describe(&e)))?;
        let mut points = Vec::new();
        for Target {
            walker,
            symbol,
            reads_args,
        } in &targets
        {
            // A clone gets the entry program that reads no argument (`targets::clone_notes`).
            let kind = if *reads_args { "kprobe" } else { "kprobe_clone" };
            let entry = format!("{kind}_{}{table}", walker.suffix());
            touched.push(entry.clone());
            let p: &mut KProbe = program(ebpf, &entry)?;
            p.load().map_err(|e| format!("{entry}: {}", describe(&e)))?;
            p.attach(symbol, 0)
                .map_err(|e| format!("kprobe {symbol}: {}", describe(&e)))?;
            let ret: &mut KProbe = program(ebpf, &ret_name)?;
            ret.attach(symbol, 0)
                .map_err(|e| format!("kretprobe {symbol}: {}", describe(&e)))?;
            points.push(format!("kprobe+kretprobe:{symbol}"));
        }
        Ok(points)
    })
}

/// The kprobe targets: the walkers, or their compiler clones, as kallsyms names them.
fn kprobe_targets(facts: &KernelFacts) -> Result<Vec<Target>, String> {
    let kallsyms = facts.kallsyms.as_ref().ok_or("/proc/kallsyms unreadable")?;
    targets::resolve(|f| kallsyms.clone_of(f).map(String::from))
}

/// `sched:sched_switch` for off-CPU accounting; optional.
fn attach_sched(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), String> {
    if let Err(why) = &facts.layouts.sched_next_pid {
        return Err(format!("sched/sched_switch format unusable: {why}"));
    }
    let name = format!("sched_switch{}", facts.features.program_suffix());
    let p: &mut TracePoint = program(ebpf, &name)?;
    p.load().map_err(|e| describe(&e))?;
    p.attach("sched", "sched_switch").map_err(|e| describe(&e))?;
    // Only now may walks claim a measured off-CPU time (FLAG_OFFCPU_VALID, rmap-ebpf walk.rs):
    // a walk that begins from here on has every switch seen by the hook.
    let map = ebpf
        .map_mut(maps::OFFCPU_ON)
        .ok_or("map OFFCPU_ON missing from the object")?;
    let mut on = Array::<_, u64>::try_from(map).map_err(|e| format!("OFFCPU_ON: {e}"))?;
    on.set(0, crate::kernel::clock::monotonic_ns(), 0)
        .map_err(|e| format!("setting OFFCPU_ON: {e}"))?;
    Ok(())
}
