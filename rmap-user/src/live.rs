//! `rmap-trace --attach-only`: live table every interval, slow-walk lines, final summary.
use crate::export::{
    csv::CsvWriter,
    hlog::HlogWriter,
    prometheus::{self, Metrics},
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rmap_common::{FLAG_OFFCPU_VALID, PageType, WalkEvent};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    agg::Aggregator,
    attach::load::Filters,
    cli::TraceArgs,
    events,
    report::{self, fmt_ns},
    session::Session,
};

/// Converts `bpf_ktime_get_ns` (CLOCK_MONOTONIC) to wall-clock time of day.
struct Clock {
    offset_ns: i128,
}

impl Clock {
    fn new() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            offset_ns: wall - mono,
        }
    }

    /// `HH:MM:SS.mmm` (UTC).
    fn time_of_day(&self, ktime_ns: u64) -> String {
        let ns = (ktime_ns as i128 + self.offset_ns).max(0) as u128;
        let ms = (ns / 1_000_000) % 86_400_000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

pub fn filters(args: &TraceArgs, tgid: u32) -> Filters {
    Filters {
        tgid,
        comm: args.comm.clone(),
        type_mask: args.type_mask(),
        min_duration_ns: args.min_duration_us * 1000,
    }
}

/// One line for a slow walk.
fn slow_line(clock: &Clock, ev: &WalkEvent, purpose: &str) -> String {
    let offcpu = if ev.flags & FLAG_OFFCPU_VALID != 0 {
        fmt_ns(ev.offcpu_ns)
    } else {
        "n/a".into()
    };
    format!(
        "{} {}/{} {} {} {} offcpu {} folio {:#x}",
        clock.time_of_day(ev.start_ns),
        events::comm(ev),
        ev.pid,
        PageType::from_u32(ev.page_type).name(),
        purpose,
        fmt_ns(ev.duration_ns),
        offcpu,
        ev.folio
    )
}

pub async fn run(args: &TraceArgs) -> anyhow::Result<()> {
    // Output files first: a bad path is an error before anything is attached.
    let mut hlog = args.hlog.as_deref().map(HlogWriter::create).transpose()?;
    let mut csv = args.csv.as_deref().map(CsvWriter::create).transpose()?;
    let mut session = Session::start(
        &filters(args, args.pid.unwrap_or(0)),
        args.attach_mode,
        args.tracepoint_flavor,
    )?;
    let metrics = match args.prometheus {
        Some(addr) => {
            let mode = session
                .attached
                .outcome
                .chosen
                .as_ref()
                .map_or("none", |(m, _)| crate::attach::plan::spec(*m).name);
            let m = Arc::new(Mutex::new(Metrics::new(
                mode,
                &crate::kernel::host::kernel_release(),
            )));
            let bound = prometheus::serve(addr, m.clone()).await?;
            println!("prometheus: serving http://{bound}/metrics");
            Some(m)
        }
        None => None,
    };
    let clock = Clock::new();
    let threshold_ns = args.threshold_ms.map(|ms| (ms * 1e6) as u64);
    let mut total = Aggregator::default();
    let mut interval = Aggregator::default();
    let mut interval_from = SystemTime::now();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.interval));
    tick.tick().await;
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut record =
        |ev: &WalkEvent, purpose: &str, process: &str, total: &mut Aggregator, interval: &mut Aggregator| {
            total.record(ev, purpose, process);
            interval.record(ev, purpose, process);
            if let Some(c) = csv.as_mut() {
                c.write(ev, purpose, process);
            }
            if let Some(m) = &metrics {
                match m.lock() {
                    Ok(m) => m.observe(ev, purpose),
                    Err(_) => log::warn!("metrics lock poisoned"),
                }
            }
            if threshold_ns.is_some_and(|t| ev.duration_ns >= t) {
                println!("{}", slow_line(&clock, ev, purpose));
            }
        };
    loop {
        tokio::select! {
            r = session.next_batch(|ev, p, n| record(ev, p, n, &mut total, &mut interval)) => r?,
            _ = tick.tick() => {
                print_interval(&interval, started.elapsed());
                if let Some(m) = &metrics {
                    let counts = session.counts()?;
                    m.lock().map_err(|_| anyhow::anyhow!("metrics lock poisoned"))?.update(&counts);
                }
                let now = SystemTime::now();
                if let Some(h) = hlog.as_mut() {
                    h.interval(interval_from, now, &interval.types);
                }
                interval = Aggregator::default();
                interval_from = now;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sleep_until(deadline) => break,
        }
    }
    session.drain(|ev, p, n| record(ev, p, n, &mut total, &mut interval));
    if let Some(mut h) = hlog {
        h.interval(interval_from, SystemTime::now(), &interval.types);
        h.finish()?;
    }
    if let Some(c) = csv {
        c.finish()?;
    }
    if let Some(svg) = &args.plot {
        crate::export::plot::plot_types(&total.types, svg)?;
    }
    finish(&session, &total, started.elapsed(), args.json.as_deref())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn print_interval(agg: &Aggregator, elapsed: Duration) {
    if agg.is_empty() {
        println!("[{:>7.1}s] no walks", elapsed.as_secs_f64());
    } else {
        print!(
            "[{:>7.1}s]\n{}",
            elapsed.as_secs_f64(),
            report::table("type", &agg.type_rows(), true)
        );
    }
}

/// Final summary on stdout, and the JSON file when asked.
pub fn finish(
    session: &Session,
    total: &Aggregator,
    elapsed: Duration,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let counts = session.counts()?;
    println!(
        "=== summary: {:.1}s, kernel {} ===",
        elapsed.as_secs_f64(),
        crate::kernel::host::kernel_release()
    );
    if total.is_empty() {
        println!("no walk events received");
    } else {
        print!("{}", report::table("type", &total.type_rows(), true));
        print!("{}", report::table("type/purpose", &total.purpose_rows(), true));
        print!("{}", report::table("process", &total.process_rows(10), true));
    }
    println!("{}", report::counters_line(&counts));
    if session.decode_errors > 0 {
        println!("decode errors: {}", session.decode_errors);
    }
    if let Some(path) = json {
        let doc = report::JsonSummary {
            kernel: crate::kernel::host::kernel_release(),
            attach: &session.attached.outcome,
            offcpu_unavailable: session.attached.offcpu_unavailable.as_deref(),
            duration_s: elapsed.as_secs_f64(),
            types: total.type_rows(),
            purposes: total.purpose_rows(),
            processes: total.process_rows(usize::MAX),
            kernel_counts: &counts,
            decode_errors: session.decode_errors,
        };
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
