//! The benchmark (`rmap-trace` with no command): each scenario runs in a blocking task while
//! the ring buffer is read; walks are filtered in the kernel to this process, so nothing else
//! on the host is mixed in. Ctrl-C/SIGTERM cancel the scenario, whose guards undo its changes.
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    cli::{BenchArgs, TraceArgs, Types},
    counters::KernelCounts,
    render::{self, fmt_ns},
    session::Session,
    stats::Row,
    trace_loop::{
        self,
        signals::Stop,
        sink::Sink,
        summary::{self, RunJson},
    },
    workload::{
        Ran, Spec, plan,
        trigger::{HostCaps, Trigger},
    },
};

/// One scenario's results.
#[derive(Serialize)]
pub struct ScenarioResult {
    pub scenario: Ran,
    /// Walks of the scenario per page type.
    pub rows: Vec<Row>,
    /// Walks of the scenario per page type and purpose.
    pub purposes: Vec<Row>,
}

/// The benchmark's `--json` document (docs/json.md).
#[derive(Serialize)]
pub struct BenchJson<'a> {
    #[serde(flatten)]
    pub run: RunJson<'a>,
    pub trigger: &'static str,
    pub scenarios: &'a [ScenarioResult],
}

pub async fn run(types: &Types, trace: &TraceArgs, b: &BenchArgs) -> anyhow::Result<()> {
    crate::kernel::pidns::check_own()?;
    let mut stop = Stop::new()?;
    let options = b.plan_options();
    let (trigger, caps) = plan::preflight(&types.types, &options)?;
    let specs = plan::specs(&types.types, &options, trigger);
    let started = Instant::now();
    // The benchmark's own workload: every walk is a record unless --min-duration-us says
    // otherwise.
    let record_min_us = trace.min_duration_us.unwrap_or(0);
    let filters = trace.filters(types, std::process::id(), record_min_us);
    let mut session = Session::start(&filters, trace.attach_mode, trace.tracepoint_flavor)?;
    let mut sink = Sink::with_files(trace.hlog.as_deref(), trace.csv.as_deref(), false)?;
    print_setup(trigger, &caps, b);
    let _swap = plan::swap_for(trigger, &caps, &options, &specs)?;
    let results = scenarios(specs, &mut session, &mut sink, &mut stop).await?;
    let counts = session.counts()?;
    print_results(&results, &session, &counts, trigger);
    if let Some(note) = render::coverage_note(sink.total.records, &counts, record_min_us) {
        println!("CSV lines: {note}");
    }
    if let Some(path) = &trace.json {
        let doc = BenchJson {
            run: RunJson::new(&session, &counts, started.elapsed()),
            trigger: trigger.name(),
            scenarios: &results,
        };
        crate::export::output::write_json(path, &doc)?;
    }
    sink.finish(trace.plot.as_deref())?;
    Ok(())
}

fn print_setup(trigger: Trigger, caps: &HostCaps, b: &BenchArgs) {
    let swap = if caps.swap {
        "yes"
    } else if b.setup_swap {
        "zram (temporary)"
    } else {
        "no"
    };
    println!(
        "trigger: {} ({} NUMA node(s), swap {swap})",
        trigger.name(),
        caps.numa_nodes
    );
}

/// Runs the scenarios in order, one interval of the interval log each.
async fn scenarios(
    specs: Vec<Spec>,
    session: &mut Session,
    sink: &mut Sink,
    stop: &mut Stop,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    for spec in specs {
        let name = format!("{}/{}", spec.ty.name(), spec.layout.name());
        println!("scenario {name}: {} pages", spec.layout.pages(spec.pages));
        let ran = trace_loop::scenario(spec, Some(&mut *session), sink, stop)
            .await
            .with_context(|| format!("scenario {name}"))?;
        trace_loop::kernel_latency(session, sink)?;
        let walks = sink.end_interval();
        results.push(ScenarioResult {
            scenario: ran,
            rows: walks.type_rows(),
            purposes: walks.purpose_rows(),
        });
    }
    Ok(results)
}

fn print_results(results: &[ScenarioResult], session: &Session, counts: &KernelCounts, trigger: Trigger) {
    print!("{}", table(results));
    print!(
        "{}",
        render::table(
            "scenario type/purpose",
            &purpose_rows(results),
            render::Offcpu::of(session.attached.offcpu_unavailable.as_deref())
        )
    );
    summary::footer(session, counts);
    println!(
        "kernel {}, attach {}, trigger {}",
        crate::kernel::host::kernel_release(),
        summary::attach_name(&session.attached.outcome),
        trigger.name()
    );
}

/// "ksm/split anon/referenced": walks of the ksm/split scenario on anon folios.
fn purpose_rows(results: &[ScenarioResult]) -> Vec<Row> {
    results
        .iter()
        .flat_map(|r| {
            let scenario = format!("{}/{}", r.scenario.page_type, r.scenario.layout);
            r.purposes.iter().map(move |p| Row {
                key: format!("{scenario} {}", p.key),
                ..p.clone()
            })
        })
        .collect()
}

/// The per-scenario table: layout, VMAs, mappings, then the latency of the walked type.
fn table(results: &[ScenarioResult]) -> String {
    let mut out = format!(
        "{:<14} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "scenario", "vmas", "mappings", "walks", "min", "p50", "p99", "max", "mean"
    );
    for r in results {
        let s = &r.scenario;
        let key = format!("{}/{}", s.page_type, s.layout);
        match r.rows.iter().find(|row| row.key == s.page_type) {
            Some(row) => out.push_str(&format!(
                "{key:<14} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                s.vmas,
                s.mappings_per_page,
                row.count,
                fmt_ns(row.min_ns),
                fmt_ns(row.p50_ns),
                fmt_ns(row.p99_ns),
                fmt_ns(row.max_ns),
                fmt_ns(row.mean_ns)
            )),
            None => out.push_str(&format!(
                "{key:<14} {:>6} {:>8} {:>7} (no {} walks seen)\n",
                s.vmas, s.mappings_per_page, 0, s.page_type
            )),
        }
    }
    out
}
