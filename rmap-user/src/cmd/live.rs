//! `rmap-trace --attach-only`: the walks of the whole host (or of --pid/--comm), a table every
//! interval, slow-walk lines, Prometheus metrics, and a summary at the end.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    agg::Aggregator,
    attach::load::Filters,
    cli::{LiveArgs, TraceArgs, Types},
    export::{endpoint, prometheus::Metrics},
    owners::{
        names::OwnerNames,
        pod_filter::{PodFilter, Tracked},
    },
    render,
    session::Session,
    stalls::{self, render::StallsJson},
    stats::Row,
    trace_loop::{
        self, Woke,
        signals::Stop,
        sink::Sink,
        summary::{self, RunJson},
    },
};

/// The `--json` document of `--attach-only` (docs/json.md).
#[derive(Serialize)]
pub struct LiveJson<'a> {
    #[serde(flatten)]
    pub run: RunJson<'a>,
    /// Walks per page type.
    pub types: Vec<Row>,
    /// Walks per page type and purpose.
    pub purposes: Vec<Row>,
    /// Walks at least this long were sent as records (`--min-duration-us` as resolved): the
    /// `processes` and `owners` rows, and every row's off-CPU and `locked` figures, cover those.
    pub record_min_us: u64,
    /// Walks per process (`comm/tgid`), with their thread names (`parts`).
    pub processes: Vec<Row>,
    /// Walks per owner: the memory cgroup of the walked folio (its path under the cgroup v2
    /// mount), with the walkers (`parts`: process names, kernel threads in brackets).
    pub owners: Vec<Row>,
    /// With `--stalls`: who waited for walks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalls: Option<StallsJson>,
}

pub async fn run(types: &Types, trace: &TraceArgs, live: &LiveArgs) -> anyhow::Result<()> {
    // A watcher that runs no workload: its heap need not be in huge pages.
    crate::memory::small_pages();
    let mut stop = Stop::new()?;
    if let Some(pid) = live.pid {
        crate::kernel::pidns::check(pid)?;
    }
    let record_min_us = live.record_min_us(trace);
    let mut pods = PodFilter::of(live.pod.as_ref(), live.namespace.as_deref())?
        .map(|f| Tracked::start(f, &live.pod_logs))
        .transpose()?;
    let cgroup_id = match (&pods, &live.cgroup) {
        (Some(_), _) => rmap_common::OWNER_FILTER_SET,
        (None, Some(c)) => c.id,
        (None, None) => 0,
    };
    let filters = Filters {
        cgroup_id,
        process: live.process.clone(),
        stalls: live.stalls,
        ..trace.filters(types, live.pid.unwrap_or(0), record_min_us)
    };
    let mut session = Session::start(&filters, trace.attach_mode, trace.tracepoint_flavor)?;
    if let Some(p) = pods.as_mut() {
        p.refresh(&mut session.ebpf)?;
        println!("  pods: {} ({} pod cgroups)", p.filter.describe(), p.ids.len());
    }
    let offcpu = render::Offcpu::of(session.attached.offcpu_unavailable.as_deref());
    if let Some(legend) = render::offcpu_legend(offcpu, record_min_us) {
        println!("  {legend}");
    }
    let metrics = serve_metrics(live, &session).await?;
    // Last of the steps that can fail to start: a taken port leaves old outputs as they were.
    let mut sink = Sink::with_files(trace.hlog.as_deref(), trace.csv.as_deref(), live.stalls)?
        .with_pod_logs(&live.pod_logs)
        .with_metrics(metrics)
        .with_slow_walks(live.threshold_ms);
    let started = Instant::now();
    watch(live, &mut session, &mut sink, &mut stop, started, pods.as_mut()).await?;
    trace_loop::drain(&mut session, &mut sink);
    trace_loop::kernel_latency(&mut session, &mut sink)?;
    let total = sink.finish(trace.plot.as_deref())?;
    let counts = session.counts()?;
    let stall_counts = session.stall_counts()?;
    let mut paths = OwnerNames::new(&live.pod_logs);
    print_summary(
        &session,
        &total,
        &counts,
        started.elapsed(),
        live.threads,
        &mut paths,
        record_min_us,
    );
    if let (Some(reader), Some(c)) = (&session.stalls, &stall_counts) {
        print!(
            "{}",
            stalls::render::summary(&reader.agg, c, reader.records, &mut paths)
        );
    }
    if let Some(path) = &trace.json {
        let doc = LiveJson {
            run: RunJson::new(&session, &counts, started.elapsed()),
            types: total.type_rows(),
            purposes: total.purpose_rows(),
            record_min_us,
            processes: total.process_rows(usize::MAX),
            owners: total.owner_rows(usize::MAX, &mut paths),
            stalls: session
                .stalls
                .as_ref()
                .zip(stall_counts)
                .map(|(r, c)| StallsJson::new(&r.agg, c, r.records, &mut paths)),
        };
        crate::export::output::write_json(path, &doc)?;
    }
    Ok(())
}

/// `--prometheus`: serves the metrics, labelled with the attach mode.
async fn serve_metrics(live: &LiveArgs, session: &Session) -> anyhow::Result<Option<Arc<Mutex<Metrics>>>> {
    let Some(addr) = live.prometheus else {
        return Ok(None);
    };
    let mode = summary::attach_name(&session.attached.outcome);
    let kernel = crate::kernel::host::kernel_release();
    let mut metrics = Metrics::new(mode, &kernel);
    if let Some(top) = live.prometheus_cgroups {
        metrics = metrics.with_owners(top as usize);
        if live.stalls {
            metrics = metrics.with_stall_victims(top as usize);
        }
    }
    if live.stalls {
        metrics = metrics.with_stalls();
    }
    let metrics = Arc::new(Mutex::new(metrics));
    let bound = endpoint::serve(addr, metrics.clone()).await?;
    println!("prometheus: serving http://{bound}/metrics");
    Ok(Some(metrics))
}

/// Prints a table every interval until --duration, SIGINT or SIGTERM; a pod filter's pods are
/// looked for again at each.
async fn watch(
    live: &LiveArgs,
    session: &mut Session,
    sink: &mut Sink,
    stop: &mut Stop,
    started: Instant,
    mut pods: Option<&mut Tracked>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(live.interval));
    tick.tick().await;
    let mut deadline = std::pin::pin!(sleep_for(live.duration));
    loop {
        match trace_loop::run_until(Some(session), sink, stop, &mut deadline, Some(&mut tick)).await? {
            Woke::Tick => {
                sink.publish(&session.counts()?)?;
                if let Some(stalls) = session.stall_counts()? {
                    sink.publish_stalls(&stalls)?;
                }
                if let Some(reader) = &session.stalls {
                    sink.publish_victims(&reader.agg)?;
                }
                if let Some(p) = pods.as_deref_mut() {
                    let (added, removed) = p.refresh(&mut session.ebpf)?;
                    if added + removed > 0 {
                        println!(
                            "pods: {} now {} pod cgroups (+{added} -{removed})",
                            p.filter.describe(),
                            p.ids.len()
                        );
                    }
                }
                trace_loop::kernel_latency(session, sink)?;
                let offcpu = render::Offcpu::of(session.attached.offcpu_unavailable.as_deref());
                print_interval(&sink.end_interval(), started.elapsed(), offcpu);
                trace_loop::interval_memory(session, sink);
            }
            Woke::Done(()) | Woke::Signal => return Ok(()),
        }
    }
}

async fn sleep_for(secs: Option<f64>) {
    match secs {
        Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
        None => std::future::pending().await,
    }
}

fn print_interval(agg: &Aggregator, elapsed: Duration, offcpu: render::Offcpu) {
    if agg.is_empty() {
        println!("[{:>7.1}s] no walks", elapsed.as_secs_f64());
    } else {
        print!(
            "[{:>7.1}s]\n{}",
            elapsed.as_secs_f64(),
            render::table("type", &agg.type_rows(), offcpu)
        );
    }
}

/// Owner rows as the table shows them: a pod's by its names, the others by path.
fn owners_shown(mut rows: Vec<Row>) -> Vec<Row> {
    for r in &mut rows {
        if let Some(p) = &r.pod {
            r.key = format!("{} ({})", p.display(), p.qos);
        }
    }
    rows
}

fn print_summary(
    session: &Session,
    total: &Aggregator,
    counts: &crate::counters::KernelCounts,
    elapsed: Duration,
    threads: bool,
    paths: &mut OwnerNames,
    record_min_us: u64,
) {
    println!(
        "=== summary: {:.1}s, kernel {} ===",
        elapsed.as_secs_f64(),
        crate::kernel::host::kernel_release()
    );
    let offcpu = render::Offcpu::of(session.attached.offcpu_unavailable.as_deref());
    if total.is_empty() {
        println!("no walk events received");
    } else {
        print!("{}", render::table("type", &total.type_rows(), offcpu));
        print!("{}", render::table("type/purpose", &total.purpose_rows(), offcpu));
        let processes = total.process_rows(10);
        if threads {
            print!(
                "{}",
                render::table_with_parts("process", &processes, offcpu, "threads")
            );
        } else {
            print!("{}", render::table("process", &processes, offcpu));
        }
        print!(
            "{}",
            render::table_with_parts(
                "owner (memory cgroup, or pod: namespace/pod/container)",
                &owners_shown(total.owner_rows(10, paths)),
                offcpu,
                "walkers"
            )
        );
    }
    if let Some(legend) = render::offcpu_legend(offcpu, record_min_us).filter(|_| !total.is_empty()) {
        println!("{legend}");
    }
    if let Some(note) = render::coverage_note(total.records, counts, record_min_us) {
        println!("process and owner tables, off-CPU and locked columns, CSV and slow-walk lines: {note}");
    }
    summary::footer(session, counts);
}
