//! `--stalls`: the `lock:contention_begin`/`contention_end` hooks (rmap-ebpf stall.rs), as raw
//! tracepoints: they fire on every contended lock of the system, and a raw tracepoint costs no
//! record copy where the program leaves at once.
use aya::{Ebpf, programs::RawTracePoint};

use super::{errors::describe, load::KernelFacts, modes::program};

/// The tracepoints, in attach order: the end first, so that no wait is begun that could not
/// be ended.
const HOOKS: [&str; 2] = ["contention_end", "contention_begin"];

/// Attaches the contention hooks; the attach points, or why they cannot be attached (the
/// programs already attached are detached again when `ebpf` is dropped).
pub fn attach(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<Vec<String>, String> {
    let missing: Vec<&str> = HOOKS
        .into_iter()
        .filter(|hook| {
            !facts.tracefs.as_ref().is_some_and(|t| t.has_event("lock", hook))
                && !facts.kernel_btf.has_typedef(&format!("btf_trace_{hook}"))
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no lock:{} tracepoint in this kernel (the lock contention tracepoints came in 5.19)",
            missing.join("/lock:")
        ));
    }
    if let Err(why) = &facts.stall {
        return Err(format!("lock owners cannot be read: {why}"));
    }
    let mut points = Vec::new();
    for name in HOOKS {
        let p: &mut RawTracePoint = program(ebpf, name)?;
        p.load().map_err(|e| format!("{name}: {}", describe(&e)))?;
        p.attach(name)
            .map_err(|e| format!("raw_tp lock:{name}: {}", describe(&e)))?;
        points.push(format!("raw_tp:lock/{name}"));
    }
    Ok(points)
}
