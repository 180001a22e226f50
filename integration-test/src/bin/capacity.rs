//! The capacity bench's host part (`cargo xtask bench capacity` runs it in release mode, as
//! root): rounds of fill-then-drain through each stage of the pipeline, timed; prints the
//! table. `capacity [--ringbuf-kib N] [--rounds N]`.
use std::{path::Path, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use integration_test::capacity::{self, Fill, Rig, Stage};
use rmap_common::Counter;

struct Opts {
    ringbuf_kib: u32,
    rounds: usize,
}

fn parse() -> anyhow::Result<Opts> {
    let mut o = Opts {
        ringbuf_kib: 16_384,
        rounds: 7,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--ringbuf-kib" => {
                o.ringbuf_kib = value.parse().with_context(|| format!("--ringbuf-kib {value}"))?;
                // The kernel's rule for a ring buffer: a power of two number of pages.
                if o.ringbuf_kib < 4 || !o.ringbuf_kib.is_power_of_two() || o.ringbuf_kib > 1 << 20 {
                    bail!("--ringbuf-kib {value}: a power of two from 4 to 1048576");
                }
            }
            "--rounds" => {
                o.rounds = value.parse().with_context(|| format!("--rounds {value}"))?;
                if !(1..=100).contains(&o.rounds) {
                    bail!("--rounds {value}: 1 to 100");
                }
            }
            other => bail!("unknown argument {other} (usage: capacity [--ringbuf-kib N] [--rounds N])"),
        }
    }
    Ok(o)
}

/// Pins this thread (the filler and the drain) to the CPU it is on: "one core".
fn pin() -> anyhow::Result<usize> {
    // SAFETY: no arguments; returns the CPU or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        bail!("sched_getcpu: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is a valid CPU index (from the kernel), below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) } != 0 {
        bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
    }
    Ok(cpu as usize)
}

/// The whole drain's goal on one core, events per second.
const GOAL_EVENTS_PER_S: f64 = 2e6;

/// The fastest round: what the pipeline costs, with the least of the other load on this
/// shared machine (which only ever adds time).
fn best(v: Vec<Duration>) -> Duration {
    v.into_iter().min().unwrap_or_default()
}

fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// What the rounds measured.
struct Measured {
    /// Fastest drain time per stage, in `Stage::ALL`'s order.
    best: Vec<Duration>,
    /// The first fill (all fills are alike: checked).
    fill: Fill,
    /// Walks per second of the fills, averaged.
    fill_rate: f64,
    /// Fills whose drops were checked exact.
    checked: usize,
}

/// `rounds` rounds of each stage: fill (drops checked exact against the kernel's drop
/// counter), drain (every reserved record read), timed.
fn measure(rig: &mut Rig, rounds: usize, runs: u64, dir: &Path) -> anyhow::Result<Measured> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); Stage::ALL.len()];
    let mut fills: Vec<Fill> = Vec::new();
    for _ in 0..rounds {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            let before = rig.counts()?.get(Counter::RingbufDrops);
            let fill = rig.fill(runs)?;
            let counts = rig.counts()?;
            let kernel_drops = counts.get(Counter::RingbufDrops) - before;
            if fill.attempted != runs
                || fill.drops != fill.attempted - fill.reserved
                || kernel_drops != fill.drops
            {
                bail!("drops not exact: {fill:?}, kernel drop counter +{kernel_drops}");
            }
            let out = capacity::drain(rig, *stage, dir, &counts)?;
            if out.records != fill.reserved {
                bail!(
                    "{}: {} records read of {} reserved",
                    stage.name(),
                    out.records,
                    fill.reserved
                );
            }
            times[i].push(out.elapsed);
            fills.push(fill);
        }
    }
    let fill_rate = fills
        .iter()
        .map(|f| f.attempted as f64 / f.elapsed.as_secs_f64())
        .sum::<f64>()
        / fills.len() as f64;
    Ok(Measured {
        best: times.into_iter().map(best).collect(),
        fill: fills[0],
        fill_rate,
        checked: fills.len(),
    })
}

fn print_table(o: &Opts, cpu: usize, runs: u64, m: &Measured) {
    let f = m.fill;
    let records = f.reserved;
    println!(
        "capacity: ring buffer {} KiB, records of {} bytes: {} fit",
        o.ringbuf_kib,
        capacity::RECORD_BYTES,
        capacity::capacity(o.ringbuf_kib * 1024)
    );
    println!(
        "fill: {runs} walks per fill (raw_tp start + end by BPF_PROG_TEST_RUN, {:.0} walks/s), \
         {records} records reserved, {} dropped",
        m.fill_rate, f.drops
    );
    println!(
        "drops exact in all {} fills: attempted - reserved-ok = kernel RingbufDrops (summed over CPUs)",
        m.checked
    );
    println!(
        "drain on CPU {cpu}, best of {} rounds, {records} records each:",
        o.rounds
    );
    let at = |s: Stage| m.best[Stage::ALL.iter().position(|x| *x == s).unwrap_or(0)];
    let ns = |s: Stage| ns_per(at(s), records);
    println!(
        "  {:<34} {:>10}   (each stage: its drain minus the one it adds to, timed apart)",
        "stage", "ns/event"
    );
    let stage_ns = [
        ("decode (ring read, decode, names)", ns(Stage::Decode)),
        (
            "aggregate (run, interval)",
            ns(Stage::Aggregate) - ns(Stage::Decode),
        ),
        (
            "hlog (interval log, at its end)",
            ns(Stage::Hlog) - ns(Stage::Aggregate),
        ),
        ("csv", ns(Stage::Csv) - ns(Stage::Aggregate)),
        (
            "prometheus (set per interval)",
            ns(Stage::Prometheus) - ns(Stage::Aggregate),
        ),
    ];
    for (name, v) in stage_ns {
        println!("  {name:<34} {v:>10.1}");
    }
    let rate = records as f64 / at(Stage::All).as_secs_f64();
    println!(
        "  {:<34} {:>10.1}   {rate:.0} events/s ({})",
        "whole drain (all outputs)",
        ns(Stage::All),
        if rate >= GOAL_EVENTS_PER_S {
            ">= 2,000,000: pass"
        } else {
            "< 2,000,000: FAIL"
        }
    );
}

fn run(o: &Opts) -> anyhow::Result<()> {
    let cpu = pin()?;
    let bytes = o.ringbuf_kib * 1024;
    let cap = capacity::capacity(bytes);
    // A tenth more than fits: the rest must be dropped, and counted.
    let runs = cap + cap / 10;
    let dir = std::env::temp_dir().join(format!("rmap-capacity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rig = Rig::new(bytes)?;
    let measured = measure(&mut rig, o.rounds, runs, &dir);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    print_table(o, cpu, runs, &measured?);
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("capacity: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capacity: {e:#}");
            ExitCode::FAILURE
        }
    }
}
