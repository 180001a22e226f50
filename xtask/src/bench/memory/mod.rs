//! `cargo xtask bench memory`: the tracer's memory bound, in the Debian guest.
//! `rmap-trace --attach-only --prometheus --hlog` runs for `--minutes` under continuous walks
//! of many short-lived processes, /metrics is scraped and `VmRSS` and every mapping's Rss (from
//! /proc/PID/smaps) are sampled every 10 s. The ring buffer's mappings are reported apart from
//! the rest, which must stay flat and under 20 MiB; the rest is shown by kind of mapping
//! (binary, heap, other anonymous memory) and the heap by the tracer's own reports (each step
//! of its start, its long-lived tables), so that what a change adds is seen.
mod report;
mod script;
mod series;

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::guest::{self, GuestArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the tracer runs under walks, in minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub minutes: u32,
    /// The tracer's `--ringbuf-kib` (16 MiB, mapped twice: 32 MiB of the tracer's memory).
    #[arg(long, default_value_t = 16_384)]
    pub ringbuf_kib: u32,
    #[command(flatten)]
    pub guest: GuestArgs,
}

/// Boot and workload teardown beyond the sampled minutes (TCG boots in about a minute).
const SLACK: Duration = Duration::from_mins(10);

/// A sample's resident memory by kind of mapping, and its larger mappings.
fn print_mappings(what: &str, s: &series::Sample) {
    println!(
        "resident memory of the tracer at {} s ({what}; rest {} kB), by kind of mapping:",
        s.seconds,
        s.rest_kib()
    );
    for (kind, kib) in series::breakdown(s) {
        println!("  {kind:<60} {kib:>8} kB");
    }
    println!("  each mapping of 64 kB or more resident:");
    for m in s.maps.iter().filter(|m| m.rss_kib >= 64) {
        println!(
            "  {:<24} Size {:>8} kB  Rss {:>8} kB",
            m.name, m.size_kib, m.rss_kib
        );
    }
}

/// The guest's outputs (samples, the tracer's memory reports, …) under target/xtask.
fn keep_outputs(run: &guest::qemu::GuestRun) -> anyhow::Result<()> {
    let dir = crate::build::workspace_root().join("target/xtask/bench-memory.outputs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &run.outputs {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    eprintln!("xtask: the guest's outputs are in {}", dir.display());
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let debian = GuestArgs {
        patches: None,
        timeout: args
            .guest
            .timeout
            .max(u64::from(args.minutes) * 60 + SLACK.as_secs()),
        ..args.guest.clone()
    };
    let run = guest::boot(&debian, &script::script(args.minutes, args.ringbuf_kib), false)?;
    eprintln!(
        "xtask: guest (memory) finished in {:.1} s",
        run.elapsed.as_secs_f64()
    );
    for line in &run.console {
        println!("guest: {line}");
    }
    for name in ["w.txt", "tracer.tail"] {
        if let Some(t) = run.outputs.get(name) {
            println!("--- guest {name} ---\n{}", t.trim_end());
        }
    }
    if run.status != 0 {
        bail!("the guest script exited with status {}", run.status);
    }
    keep_outputs(&run)?;
    let text = run.outputs.get("series").context("the guest sent no samples")?;
    let samples = series::parse(text)?;
    let v = series::verdict(&samples).context("no samples")?;
    let largest = samples.iter().max_by_key(|s| (s.rest_kib(), s.seconds));
    for (what, s) in [("the largest rest", largest), ("the end", samples.last())] {
        let Some(s) = s else { continue };
        print_mappings(what, s);
    }
    match run.outputs.get("memory") {
        Some(log) => print!("{}", report::render(&report::parse(log))),
        None => println!("the tracer's memory reports: none sent"),
    }
    println!(
        "ring buffer: --ringbuf-kib {} (aya maps a consumer page, and the producer page with the data twice: {} kB)",
        args.ringbuf_kib,
        4 + 4 + 2 * u64::from(args.ringbuf_kib)
    );
    print!("{}", series::table(&samples));
    println!(
        "rest (VmRSS - bpf-map Rss): min {} kB, max {} kB; growth from the second quarter to the last (medians) {} kB ({}); \
         under {} kB: {}; failed scrapes {}",
        v.rest_min_kib,
        v.rest_max_kib,
        v.late_growth_kib,
        if v.flat { "flat" } else { "GROWING" },
        series::REST_LIMIT_KIB,
        if v.under_limit { "pass" } else { "FAIL" },
        v.scrapes_failed
    );
    if !v.flat || !v.under_limit || v.scrapes_failed > 0 {
        bail!("memory bound not met");
    }
    Ok(())
}
