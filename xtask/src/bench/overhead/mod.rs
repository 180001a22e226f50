//! `cargo xtask bench overhead`: rmap-trace's own added time per walk beside bpftrace's and the
//! tracefs text method's, in the QEMU guest. Walk-heavy workloads (anon pages all moved in
//! batches, KSM pages of thousands of VMAs moved, anon reclaim) run interleaved, each
//! repetition under every tracer, all in one boot per kernel: Debian's (6.1 by default; no
//! tracer, rmap-trace fentry and kprobe, tracefs `kprobe_events` text, bpftrace on kprobes and
//! on kfuncs, empty kfunc programs) and ours (no
//! tracer, tracepoint, fentry). Ratios are only compared within a boot. Under TCG the costs are
//! emulated, and the tables say so.
mod components;
mod parse;
mod script;
mod table;

use std::path::PathBuf;

use crate::guest::{self, GuestArgs, kernel::KernelChoice, qemu::GuestRun};

/// A tracer row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    None,
    Tracepoint,
    Fentry,
    /// fentry with every walk sent as a record (`--min-duration-us 0`; by default
    /// `--attach-only` sends those of a millisecond or more): what per-walk records and their
    /// reader cost is the difference to `Fentry`.
    FentryAll,
    /// fentry without the `sched_switch` hook (`--no-offcpu`): what off-CPU time costs.
    FentryNoOffcpu,
    /// fentry with `--stalls` (the `lock:contention_*` hooks): what stall attribution costs;
    /// they run per contended lock, so the `victims` workload gives them waits to attribute.
    FentryStalls,
    Kprobe,
    Tracefs,
    /// bpftrace's histogram one-liner on kprobes/kretprobes.
    Bpftrace,
    /// The same one-liner on `kfunc`/`kretfunc` (fentry/fexit): bpftrace's cheapest mechanism
    /// on a kernel with BTF, the peer of rmap-trace's fentry mode.
    BpftraceKfunc,
    /// bpftrace with empty `kfunc`/`kretfunc` programs on the walkers: what the fentry/fexit
    /// attach mechanism alone adds (BPF trampolines, program entry and exit), the floor of any
    /// fentry tool, rmap-trace's included.
    FentryEmpty,
    /// bpftrace with empty `kprobe`/`kretprobe` programs on the walkers: what the kprobe
    /// mechanism alone adds (the ftrace call, the kprobe and rethook handlers, program entry
    /// and exit), the floor of any kprobe tool, rmap-trace's kprobe mode and bpftrace's
    /// one-liner included.
    KprobeEmpty,
}

impl Row {
    pub const fn name(self) -> &'static str {
        match self {
            Row::None => "none",
            Row::Tracepoint => "tracepoint",
            Row::Fentry => "fentry",
            Row::FentryAll => "fentry_all",
            Row::FentryNoOffcpu => "fentry_nooff",
            Row::FentryStalls => "fentry_stalls",
            Row::Kprobe => "kprobe",
            Row::Tracefs => "tracefs",
            Row::Bpftrace => "bpftrace",
            Row::BpftraceKfunc => "bpftrace_kfunc",
            Row::FentryEmpty => "fentry_empty",
            Row::KprobeEmpty => "kprobe_empty",
        }
    }
}

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    Anon,
    Ksm,
    Reclaim,
    /// The anon workload with a victim thread mprotecting a page of the region meanwhile
    /// (`rmap-trace workload --victims 1`): contended `anon_vma` and `mmap_lock` waits.
    Victims,
}

impl Workload {
    pub const fn name(self) -> &'static str {
        match self {
            Workload::Anon => "anon",
            Workload::Ksm => "ksm",
            Workload::Reclaim => "reclaim",
            Workload::Victims => "victims",
        }
    }
}

pub struct Sizes {
    pub anon_pages: u32,
    pub move_batch: u32,
    pub ksm_vmas: u32,
    pub reclaim_pages: u32,
}

/// The kernels booted, one boot each, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernels(pub Vec<KernelChoice>);

/// Our kernel's patches in the bench: the tracepoint row needs rmap-tracepoints.
const BENCH_PATCHES: &str = "rmap-tracepoints,rmap-tracepoint-v4";

/// `--kernels`: kernels as `--kernel` takes them, comma-separated within each (`debian:6.1,
/// debian:7.2`; a patch list of ours goes alone: `ours:a,b`), and the short names `debian`
/// (Debian's 6.1), `ours` (with the tracepoints) and `both` (the two).
fn kernels(s: &str) -> Result<Kernels, String> {
    let ours = || KernelChoice::Ours(BENCH_PATCHES.to_string());
    if s.starts_with("ours:") {
        return s.parse().map(|k| Kernels(vec![k]));
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part {
            "debian" => out.push(KernelChoice::default_debian()),
            "ours" => out.push(ours()),
            "both" => out.extend([KernelChoice::default_debian(), ours()]),
            other => out.push(other.parse()?),
        }
    }
    Ok(Kernels(out))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repetitions of each (tracer, workload), interleaved.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub reps: u32,
    /// Workloads. ksm (16 walks of ~256 mappings each) is not in the defaults: its added time
    /// per walk is within the noise of its trigger time.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "anon,reclaim")]
    pub workloads: Vec<Workload>,
    /// Anon pages (one VMA each) all moved to the other node.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(16..=200_000))]
    pub anon_pages: u32,
    /// Pages per `move_pages` call of the anon workload (rmap-trace workload --move-batch).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub move_batch: u32,
    /// VMAs (one page each) of the KSM workload.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub ksm_vmas: u32,
    /// Anon pages reclaimed (memory.reclaim, temporary zram swap) by the reclaim workload.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=200_000))]
    pub reclaim_pages: u32,
    /// Which boots: `debian:SERIES` and `ours[:PATCHES]` kernels (as `--kernel` takes them,
    /// comma-separated), `debian` (Debian's 6.1), `ours` (with the rmap tracepoints) or `both`.
    /// Debian's kernels get every row; ours the tracepoint and fentry rows.
    #[arg(long, value_parser = kernels, default_value = "both")]
    pub kernels: Kernels,
    /// Timeout of each boot, seconds.
    #[arg(long, default_value_t = 5400)]
    pub timeout: u64,
    /// Echo the guest's console (outputs included) as it comes.
    #[arg(long)]
    pub echo: bool,
    /// QEMU accelerator. icount (the default): the guest's clock counts guest instructions, so
    /// a tracer's added time is the instructions it adds, whatever the host does meanwhile;
    /// tcg: the emulator's wall-clock time (its spread is of the order of the tracers' costs);
    /// kvm: real costs, where /dev/kvm works.
    #[arg(long, value_enum, default_value_t = guest::qemu::Accel::Icount)]
    pub accel: guest::qemu::Accel,
}

const DEBIAN_ROWS: [Row; 11] = [
    Row::None,
    Row::Fentry,
    Row::FentryAll,
    Row::FentryNoOffcpu,
    Row::FentryStalls,
    Row::Kprobe,
    Row::Bpftrace,
    Row::BpftraceKfunc,
    Row::Tracefs,
    Row::FentryEmpty,
    Row::KprobeEmpty,
];
const OUR_ROWS: [Row; 3] = [Row::None, Row::Tracepoint, Row::Fentry];

pub fn run(args: &Args) -> anyhow::Result<()> {
    let sizes = Sizes {
        anon_pages: args.anon_pages,
        move_batch: args.move_batch,
        ksm_vmas: args.ksm_vmas,
        reclaim_pages: args.reclaim_pages,
    };
    let guest = |kernel: &KernelChoice| GuestArgs {
        kernel: Some(kernel.clone()),
        patches: None,
        modules: None,
        numa_nodes: 2,
        memory_mib: 4096,
        timeout: args.timeout,
        accel: args.accel,
    };
    let emulated = match args.accel {
        guest::qemu::Accel::Kvm => "KVM",
        guest::qemu::Accel::Icount => "TCG icount: guest instructions, 1 ns each, one CPU; not native costs",
        guest::qemu::Accel::Tcg | guest::qemu::Accel::Auto => "TCG: emulated costs, not native ones",
    };
    let mut out = header(args);
    let mut failed = Vec::new();
    for kernel in &args.kernels.0 {
        let (rows, trees): (&[Row], _) = match kernel {
            KernelChoice::Ours(_) => (&OUR_ROWS, Vec::new()),
            KernelChoice::Debian(_) | KernelChoice::Image(_) => {
                let root = crate::debroot::root(&["bpftrace"])?;
                (&DEBIAN_ROWS, vec![("opt/bpftrace".to_string(), root)])
            }
        };
        match boot(&guest(kernel), rows, &sizes, args, &trees) {
            Ok(runs) => {
                let title = format!("{kernel} kernel, one boot ({emulated})");
                out += &table::render(&title, &runs, args.reps, rows, &args.workloads);
                if rows.contains(&Row::Bpftrace) {
                    out += &table::goals(&runs, args.reps, rows, &args.workloads);
                }
                out += "\n";
                out += &components::render(&runs, args.reps, rows, &args.workloads);
                out += "\n";
            }
            Err(e) => failed.push(format!("{kernel}'s boot: {e:#}")),
        }
    }
    println!("{out}");
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// The command line and what the workloads do, above the tables.
fn header(args: &Args) -> String {
    format!(
        "cargo xtask bench overhead --kernels {} --accel {} --reps {} --workloads {} --anon-pages {} --move-batch {} --ksm-vmas {} --reclaim-pages {}\n\
         workloads: anon = {} anon pages moved, {} per move_pages call; ksm = {} VMAs of KSM pages moved; \
         reclaim = {} anon pages reclaimed to zram\n\n",
        args.kernels
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        clap::ValueEnum::to_possible_value(&args.accel)
            .map_or_else(String::new, |v| v.get_name().to_string()),
        args.reps,
        args.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(","),
        args.anon_pages,
        args.move_batch,
        args.ksm_vmas,
        args.reclaim_pages,
        args.anon_pages,
        args.move_batch,
        args.ksm_vmas,
        args.reclaim_pages
    )
}

/// One boot: every repetition of every row on every workload; the runs parsed.
fn boot(
    g: &GuestArgs,
    rows: &[Row],
    sizes: &Sizes,
    args: &Args,
    trees: &[(String, PathBuf)],
) -> anyhow::Result<table::Runs> {
    let reps = args.reps;
    let cmd = script::script(rows, &args.workloads, sizes, reps);
    let out = guest::boot_with_trees(g, &cmd, args.echo, &[], trees)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    let log = crate::build::workspace_root().join(format!(
        "target/xtask/bench-overhead-{}.console",
        g.choice().short()
    ));
    std::fs::write(&log, out.console.join("\n"))?;
    let dir = log.with_extension("outputs");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in &out.outputs {
        std::fs::write(dir.join(name), text)?;
    }
    eprintln!(
        "xtask: the guest's console is in {}, each run's outputs in {}",
        log.display(),
        dir.display()
    );
    for line in out.console.iter().filter(|l| l.starts_with("bench:")) {
        eprintln!("guest: {line}");
    }
    Ok(collect(&out, rows, &args.workloads, reps))
}

fn collect(out: &GuestRun, rows: &[Row], workloads: &[Workload], reps: u32) -> table::Runs {
    let mut runs = table::Runs::new();
    for rep in 1..=reps {
        for &r in rows {
            for &w in workloads {
                let n = format!("{rep}-{}-{}", r.name(), w.name());
                let Some(wtext) = out.outputs.get(&format!("{n}.w")) else {
                    eprintln!("xtask: no output of run {n}");
                    continue;
                };
                let Some((_, trigger_ns)) = parse::workload_line(wtext) else {
                    eprintln!("xtask: run {n}: no workload line:\n{}", wtext.trim_end());
                    continue;
                };
                let t = out.outputs.get(&format!("{n}.t")).map_or("", String::as_str);
                let stats = out
                    .outputs
                    .get(&format!("{n}.s"))
                    .map(|s| parse::bpf_stats(s))
                    .unwrap_or_default();
                let seen = match r {
                    Row::None => None,
                    Row::Tracepoint
                    | Row::Fentry
                    | Row::FentryAll
                    | Row::FentryNoOffcpu
                    | Row::FentryStalls
                    | Row::Kprobe => parse::rmap_trace_count(t),
                    Row::Bpftrace | Row::BpftraceKfunc => parse::bpftrace_hist_total(t),
                    // Empty programs count nothing: the walks are their runs (an entry and an
                    // exit each), from the kernel's run counts.
                    Row::FentryEmpty | Row::KprobeEmpty => {
                        Some(stats.iter().map(|p| p.runs).sum::<u64>() / 2)
                    }
                    Row::Tracefs => match parse::gunzip_base64(t) {
                        Ok(text) => {
                            let (pairs, lost) = parse::tracefs_pairs(&text);
                            if lost > 0 {
                                eprintln!("xtask: run {n}: tracefs lost {lost} events");
                            }
                            Some(pairs)
                        }
                        Err(e) => {
                            eprintln!("xtask: run {n}: {e:#}");
                            None
                        }
                    },
                };
                if r != Row::None && seen.is_none() {
                    eprintln!(
                        "xtask: run {n}: no count from the tracer:\n{}",
                        t.chars().take(2000).collect::<String>()
                    );
                }
                // The same workload untraced just before this run: the added time is against it,
                // so that the other guests' load, which drifts over minutes, mostly cancels.
                let baseline_ns = out
                    .outputs
                    .get(&format!("{n}.b"))
                    .and_then(|b| parse::workload_line(b))
                    .map(|(_, ns)| ns);
                runs.insert(
                    (rep, r, w),
                    table::Run {
                        trigger_ns,
                        baseline_ns,
                        seen,
                        expected: Some(crate::workload_out::expected(wtext).values().sum())
                            .filter(|&n| n > 0),
                        stats,
                    },
                );
            }
        }
    }
    runs
}
