//! `rmap-trace workload`: the benchmark's scenarios without tracing, for a tracer started
//! from another shell with `--attach-only`.
use crate::{
    cli::{BenchArgs, Types},
    trace_loop::{self, signals::Stop, sink::Sink},
    workload::{Ran, plan, victims::VictimRun},
};

pub async fn run(types: &Types, b: &BenchArgs) -> anyhow::Result<()> {
    let mut stop = Stop::new()?;
    let options = b.plan_options();
    let (trigger, caps) = plan::preflight(&types.types, &options)?;
    let specs = plan::specs(&types.types, &options, trigger);
    let _swap = plan::swap_for(trigger, &caps, &options, &specs)?;
    for spec in specs {
        let ran = trace_loop::scenario(spec, None, &mut Sink::default(), &mut stop).await?;
        println!("{}", line(&ran));
        for v in &ran.victims {
            println!("{}", victim_line(v));
        }
    }
    Ok(())
}

/// What one scenario did, in one line (the guest suites read it).
fn line(ran: &Ran) -> String {
    let moved = if ran.mremapped > 0 {
        format!(
            " after mremap of {} pages (KSM merged: {})",
            ran.mremapped, ran.ksm_merged
        )
    } else {
        String::new()
    };
    format!(
        "workload: {} {} vmas {} mappings/page {} triggered {} by {} in {} ns{moved}",
        ran.page_type,
        ran.layout,
        ran.vmas,
        ran.mappings_per_page,
        ran.pages_triggered,
        ran.trigger,
        ran.trigger_ns
    )
}

/// What one victim measured, in one line (the guest suites read it).
fn victim_line(v: &VictimRun) -> String {
    format!(
        "victim: pid {} op {:?} calls {} total_ns {} baseline_ns {} slow_calls {} slow_ns {} excess_ns {}",
        v.pid, v.op, v.calls, v.total_ns, v.baseline_ns, v.slow_calls, v.slow_ns, v.excess_ns
    )
}
