//! The benchmark (`rmap-trace` with no command): each scenario runs in a blocking task while
//! the ring buffer is read; walks are filtered in the kernel to this process, so nothing else
//! on the host is mixed in. Ctrl-C/SIGTERM cancel the scenario, whose guards undo its changes.
use crate::export::{csv::CsvWriter, hlog::HlogWriter};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, anyhow};
use rmap_common::PageType;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    agg::{Aggregator, Row, Stats},
    cli::{BenchArgs, TraceArgs},
    live,
    report::{self, fmt_ns},
    session::Session,
    workload::{
        self, Layout, Ran, Spec, cancel,
        swap::ZramSwap,
        trigger::{self, HostCaps, Trigger},
    },
};

/// The scenarios to run, in order: KSM split; anon and file in each asked layout.
pub fn specs(types: &[PageType], b: &BenchArgs, trigger: Trigger) -> Vec<Spec> {
    let mut out = Vec::new();
    for &ty in types {
        let layouts: Vec<Layout> = match ty {
            PageType::Ksm => vec![Layout::Split],
            // A transparent huge page is anonymous: files here are on tmpfs without huge=.
            PageType::File => b.layouts.iter().copied().filter(|&l| l != Layout::Thp).collect(),
            _ => b.layouts.clone(),
        };
        for layout in layouts {
            out.push(Spec {
                ty,
                layout,
                pages: b.pages as usize,
                sharers: b.sharers as usize,
                max_page_sharing: b.max_page_sharing,
                merge_timeout: Duration::from_secs_f64(b.merge_timeout),
                trigger,
                mremap: b.mremap,
            });
        }
    }
    out
}

/// Checks made before anything on the host is changed.
pub fn preflight(types: &[PageType], b: &BenchArgs) -> anyhow::Result<(Trigger, HostCaps)> {
    let caps = HostCaps::read();
    let trigger = trigger::choose(b.trigger, &caps, b.setup_swap).map_err(|e| anyhow!(e))?;
    if types.contains(&PageType::Ksm) && !std::path::Path::new("/sys/kernel/mm/ksm/run").exists() {
        anyhow::bail!("this kernel has no KSM (/sys/kernel/mm/ksm); drop ksm from --types");
    }
    Ok((trigger, caps))
}

/// One scenario's results.
#[derive(Serialize)]
pub struct ScenarioResult {
    pub scenario: Ran,
    pub rows: Vec<Row>,
    pub purposes: Vec<Row>,
}

#[derive(Serialize)]
struct BenchJson<'a> {
    kernel: String,
    attach: &'a crate::attach::plan::Outcome,
    trigger: &'static str,
    duration_s: f64,
    scenarios: &'a [ScenarioResult],
    kernel_counts: &'a crate::counters::KernelCounts,
}

/// SIGINT and SIGTERM, listened to for the whole run (a signal with no listener is lost once
/// tokio has installed its handler).
pub struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Stop {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }
}

/// Runs one scenario in a blocking task, feeding walks to `agg` (when tracing) and
/// cancelling it on SIGINT/SIGTERM.
async fn scenario(
    spec: Spec,
    mut session: Option<&mut Session>,
    agg: &mut Aggregator,
    mut csv: Option<&mut CsvWriter>,
    stop: &mut Stop,
) -> anyhow::Result<Ran> {
    let mut task = tokio::task::spawn_blocking(move || workload::run(&spec));
    let mut record = |ev: &rmap_common::WalkEvent, purpose: &str, process: &str| {
        agg.record(ev, purpose, process);
        if let Some(c) = csv.as_deref_mut() {
            c.write(ev, purpose, process);
        }
    };
    let ran = loop {
        tokio::select! {
            r = &mut task => break r.context("the workload task failed")?,
            r = async { match session.as_deref_mut() { Some(s) => s.next_batch(&mut record).await, None => std::future::pending().await } } => r?,
            _ = stop.int.recv() => cancel::request(),
            _ = stop.term.recv() => cancel::request(),
        }
    };
    if let Some(s) = session {
        s.drain(&mut record);
    }
    ran
}

fn swap_for(
    trigger: Trigger,
    caps: &HostCaps,
    b: &BenchArgs,
    specs: &[Spec],
) -> anyhow::Result<Option<ZramSwap>> {
    if trigger != Trigger::Reclaim || caps.swap || !b.setup_swap {
        return Ok(None);
    }
    let biggest = specs.iter().map(|s| s.pages as u64).max().unwrap_or(1) * 4096;
    Ok(Some(ZramSwap::create((biggest * 2).max(256 << 20))?))
}

/// `rmap-trace workload`: the scenarios without tracing.
pub async fn workload_only(types: &[PageType], b: &BenchArgs) -> anyhow::Result<()> {
    let mut stop = Stop::new()?;
    let (trigger, caps) = preflight(types, b)?;
    let specs = specs(types, b, trigger);
    let _swap = swap_for(trigger, &caps, b, &specs)?;
    for spec in specs {
        let ran = scenario(spec, None, &mut Aggregator::default(), None, &mut stop).await?;
        let moved = if ran.mremapped > 0 {
            format!(
                " after mremap of {} pages (KSM merged: {})",
                ran.mremapped, ran.ksm_merged
            )
        } else {
            String::new()
        };
        println!(
            "workload: {} {} vmas {} mappings/page {} triggered {} by {}{moved}",
            ran.page_type, ran.layout, ran.vmas, ran.mappings_per_page, ran.pages_triggered, ran.trigger
        );
    }
    Ok(())
}

/// The benchmark.
pub async fn run(trace: &TraceArgs, b: &BenchArgs) -> anyhow::Result<()> {
    let mut stop = Stop::new()?;
    if trace.prometheus.is_some() {
        anyhow::bail!("--prometheus serves live metrics: use it with --attach-only");
    }
    let (trigger, caps) = preflight(&trace.types, b)?;
    let specs = specs(&trace.types, b, trigger);
    let started = Instant::now();
    let mut session = Session::start(
        &live::filters(trace, std::process::id()),
        trace.attach_mode,
        trace.tracepoint_flavor,
    )?;
    println!(
        "trigger: {} ({} NUMA node(s), swap {})",
        trigger.name(),
        caps.numa_nodes,
        if caps.swap {
            "yes"
        } else if b.setup_swap {
            "zram (temporary)"
        } else {
            "no"
        }
    );
    let _swap = swap_for(trigger, &caps, b, &specs)?;
    let mut hlog = trace.hlog.as_deref().map(HlogWriter::create).transpose()?;
    let mut csv = trace.csv.as_deref().map(CsvWriter::create).transpose()?;
    let mut results = Vec::new();
    let mut all_types: BTreeMap<PageType, Stats> = BTreeMap::new();
    for spec in specs {
        let name = format!("{}/{}", spec.ty.name(), spec.layout.name());
        println!("scenario {name}: {} pages", spec.layout.pages(spec.pages));
        let mut agg = Aggregator::default();
        let from = SystemTime::now();
        let ran = scenario(
            spec.clone(),
            Some(&mut session),
            &mut agg,
            csv.as_mut(),
            &mut stop,
        )
        .await
        .with_context(|| format!("scenario {name}"))?;
        // One interval per scenario in the log.
        if let Some(h) = hlog.as_mut() {
            h.interval(from, SystemTime::now(), &agg.types);
        }
        for (ty, st) in &agg.types {
            all_types.entry(*ty).or_default().merge(st);
        }
        let rows: Vec<Row> = agg.type_rows();
        let purposes = agg.purpose_rows();
        results.push(ScenarioResult {
            scenario: ran,
            rows,
            purposes,
        });
    }
    let counts = session.counts()?;
    print!("{}", table(&results));
    let purposes: Vec<Row> = results
        .iter()
        .flat_map(|r| {
            // "ksm/split anon/referenced": walks of the ksm/split scenario on anon folios.
            let scenario = format!("{}/{}", r.scenario.page_type, r.scenario.layout);
            r.purposes.iter().map(move |p| Row {
                key: format!("{scenario} {}", p.key),
                ..p.clone()
            })
        })
        .collect();
    print!("{}", report::table("scenario type/purpose", &purposes, true));
    println!("{}", report::counters_line(&counts));
    println!(
        "kernel {}, attach {}, trigger {}",
        crate::kernel::host::kernel_release(),
        session
            .attached
            .outcome
            .chosen
            .as_ref()
            .map_or("none", |(m, _)| crate::attach::plan::spec(*m).name),
        trigger.name()
    );
    if let Some(path) = &trace.json {
        let doc = BenchJson {
            kernel: crate::kernel::host::kernel_release(),
            attach: &session.attached.outcome,
            trigger: trigger.name(),
            duration_s: started.elapsed().as_secs_f64(),
            scenarios: &results,
            kernel_counts: &counts,
        };
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(h) = hlog {
        h.finish()?;
    }
    if let Some(c) = csv {
        c.finish()?;
    }
    if let Some(svg) = &trace.plot {
        crate::export::plot::plot_types(&all_types, svg)?;
    }
    Ok(())
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
