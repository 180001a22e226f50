//! Command line. Without a command `rmap-trace` runs the benchmark, and with `--attach-only`
//! it watches the host: each option belongs to one of them (or to both), and clap rejects the
//! other's, so that no option is silently ignored.
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rmap_common::PageType;

use crate::{
    attach::plan::{AttachChoice, TpFlavor},
    bounds,
    export::output,
};

/// Reverse-mapping walk latency (`rmap_walk`) per folio, through eBPF. Without a command it runs
/// the benchmark: KSM, anon and file pages behind many VMAs, walked by a trigger, measured in
/// the kernel for this process only.
#[derive(Debug, Parser)]
#[command(name = "rmap-trace", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Watch the walks of the whole system (or of --pid/--comm) without running a workload.
    #[arg(long, conflicts_with = "BenchArgs")]
    pub attach_only: bool,

    #[command(flatten)]
    pub types: Types,

    #[command(flatten)]
    pub trace: TraceArgs,

    #[command(flatten)]
    pub live: LiveArgs,

    #[command(flatten)]
    pub bench: BenchArgs,
}

/// `--types`, of the tracing runs and of `rmap-trace workload`.
#[derive(Debug, Clone, clap::Args)]
pub struct Types {
    /// Page types, comma-separated (the benchmark and `workload` run them in this order).
    #[arg(long, value_delimiter = ',', default_value = "ksm,anon,file", value_parser = page_type)]
    pub types: Vec<PageType>,
}

impl Types {
    /// The in-kernel filter of page types.
    pub fn mask(&self) -> u32 {
        // Unknown folios are always kept: hiding them would hide a classification problem.
        self.types
            .iter()
            .fold(PageType::Unknown.mask_bit(), |m, t| m | t.mask_bit())
    }
}

/// Options of every tracing run, the benchmark's and `--attach-only`'s.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Tracing (benchmark and --attach-only)")]
pub struct TraceArgs {
    /// Attach mode; auto tries tracepoint, tracepoint-v4, fentry, kprobe in that order.
    #[arg(long, value_enum, default_value_t = AttachChoice::Auto)]
    pub attach_mode: AttachChoice,
    /// For the tracepoint modes: `raw_tp`, the classic tracepoint, or auto (`raw_tp`, else classic).
    #[arg(long, value_enum, default_value_t = TpFlavor::Auto)]
    pub tracepoint_flavor: TpFlavor,
    /// Only walks by threads with this command name (the walking thread's own `comm`, filtered
    /// in the kernel; at most 15 bytes). Threads may rename themselves (a JVM's are `GC
    /// Thread#0`, `C2 CompilerThre`…): to mean a whole process, use --process.
    #[arg(long, value_parser = comm)]
    pub comm: Option<String>,
    /// Walks shorter than this many microseconds (up to 60,000,000) are counted in the kernel
    /// (in every count and percentile) but not sent as records, so they are missing from the
    /// per-process and owner tables. Default: 0 (every walk) for the benchmark, with --csv and
    /// with --prometheus-cgroups; otherwise --attach-only sends the walks of at least 1,000 µs
    /// (or of --threshold-ms, when lower): a record costs more than counting a walk.
    #[arg(long, value_parser = clap::value_parser!(u64).range(bounds::MIN_DURATION_US))]
    pub min_duration_us: Option<u64>,
    /// Write the final summary as JSON to this file (schema: docs/json.md). Output
    /// files are opened once tracing is attached, never through a symbolic link, and must be
    /// regular files; JSON and SVG replace the old file whole.
    #[arg(long, value_parser = output::parse)]
    pub json: Option<PathBuf>,
    /// Write every walk event as a CSV line (with a header) to this file, flushed every interval.
    #[arg(long, value_parser = output::parse)]
    pub csv: Option<PathBuf>,
    /// At the end, plot latency by percentile per page type to this SVG.
    #[arg(long, value_name = "SVG", value_parser = output::parse)]
    pub plot: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per interval and page type, in ns;
    /// the benchmark writes one interval per scenario).
    #[arg(long, value_parser = output::parse)]
    pub hlog: Option<PathBuf>,
    /// Size of the kernel's ring buffer of walk records, in KiB (a power of two, 4 to 1048576).
    /// Counts and percentiles per type and purpose never depend on it (in-kernel histograms);
    /// too small, and per-process tables, CSV and slow-walk lines miss the dropped walks.
    #[arg(long, default_value_t = 1024, value_parser = ringbuf_kib)]
    pub ringbuf_kib: u32,
    /// Slots of the in-flight table, rounded up to a power of two (tests shrink it to show a
    /// full table).
    #[arg(long, default_value_t = 8192, hide = true, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub inflight_entries: u32,
    /// Do not attach the `sched_switch` hook (tests: off-CPU time must then show "n/a").
    #[arg(long, hide = true)]
    pub no_offcpu: bool,
}

/// `--attach-only`'s default `--min-duration-us`: a host's walks are counted and timed in the
/// kernel whatever their length, but only the slow ones (here: a millisecond, against the
/// microseconds of a walk of a lightly mapped page) are worth a record each, which costs
/// more than counting the walk (docs/benchmarks.md, "Overhead").
pub const LIVE_RECORD_MIN_US: u64 = 1000;

/// Options of `--attach-only` alone.
#[derive(Debug, clap::Args)]
#[group(requires = "attach_only", conflicts_with = "BenchArgs", multiple = true)]
#[command(next_help_heading = "Live (with --attach-only)")]
pub struct LiveArgs {
    /// Seconds between live table refreshes (0.01 to 86,400).
    #[arg(long, default_value_t = 1.0, value_parser = bounds::number(bounds::INTERVAL_S, "seconds"))]
    pub interval: f64,
    /// Stop after this many seconds (0.001 to a year; default: until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = bounds::number(bounds::DURATION_S, "seconds"))]
    pub duration: Option<f64>,
    /// Only walks by this process (filtered in the kernel). A pid of this pid namespace: in a
    /// child pid namespace, where it is not the kernel's, -p is refused.
    #[arg(short, long, value_parser = bounds::pid)]
    pub pid: Option<u32>,
    /// Print one line per walk that took at least this many milliseconds (0 to 3,600,000).
    #[arg(long, value_parser = bounds::number(bounds::THRESHOLD_MS, "milliseconds"))]
    pub threshold_ms: Option<f64>,
    /// Serve Prometheus metrics at <http://ADDR/metrics> (PORT alone binds 127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR", value_parser = crate::export::endpoint::parse_addr)]
    pub prometheus: Option<std::net::SocketAddr>,
    /// Also export walks per owner (`rmap_owner_walks_total{cgroup}`,
    /// `rmap_owner_walk_seconds_total{cgroup}`, from ring records) for the N owner cgroups with
    /// the most walks, the rest as cgroup="other", so the series stay bounded (1 to 64); a pod's
    /// cgroup also has `namespace`, `pod` and `container` labels. With --stalls, waits per
    /// victim cgroup too (`rmap_stall_victim_waits_total`, `rmap_stall_victim_wait_seconds_total`).
    #[arg(long, value_name = "N", requires = "prometheus", value_parser = clap::value_parser!(u32).range(1..=crate::top::TOP as i64))]
    pub prometheus_cgroups: Option<u32>,
    /// Only walks by threads of processes with this name (the thread-group leader's `comm`,
    /// filtered in the kernel): `--process java` keeps every thread of a JVM.
    #[arg(long, value_parser = comm)]
    pub process: Option<String>,
    /// Only walks of memory owned by this cgroup or below it (the memory cgroup each folio is
    /// charged to, filtered in the kernel): /sys/fs/cgroup/PATH, or PATH as /proc/PID/cgroup
    /// shows it (e.g. /system.slice/app.service).
    #[arg(long, value_name = "PATH", value_parser = crate::owners::filter::parse)]
    pub cgroup: Option<crate::owners::filter::CgroupFilter>,
    /// Only walks of memory owned by this Kubernetes pod (its containers' cgroups and its
    /// own): NAME, or NAMESPACE/NAME, as the node's pod logs (--pod-logs) name it. Filtered in
    /// the kernel; the pod's cgroups are looked for again every interval (a restarted pod is a
    /// new one).
    #[arg(long, value_name = "[NAMESPACE/]NAME", conflicts_with = "cgroup", value_parser = crate::owners::pod_filter::parse_pod)]
    pub pod: Option<crate::owners::pod_filter::PodArg>,
    /// Only walks of memory owned by the pods of this Kubernetes namespace (with --pod: the
    /// pod's namespace). Filtered in the kernel, the namespace's pods looked for every interval.
    #[arg(long, value_name = "NAMESPACE", conflicts_with = "cgroup", value_parser = crate::owners::pod_filter::parse_namespace)]
    pub namespace: Option<String>,
    /// The kubelet's pod log directory, which names pods (`<namespace>_<pod>_<uid>/`); its
    /// sibling `containers` names containers by id. In a container, mount the node's
    /// /var/log/pods and /var/log/containers side by side (read-only).
    #[arg(long, value_name = "DIR", default_value = crate::owners::podlogs::POD_LOGS)]
    pub pod_logs: PathBuf,
    /// Show the thread names under each process of the per-process table.
    #[arg(long)]
    pub threads: bool,
    /// Also show who waited for walks: threads blocked on an rwsem (`anon_vma`, `i_mmap`) held by
    /// a walk in flight, from `lock:contention_begin`/`end`, which fire on every contended
    /// lock of the host (their cost: docs/benchmarks.md). A table per victim process and per
    /// walk, `stalls` in --json, `rmap_walk_stall_seconds` in Prometheus.
    #[arg(long)]
    pub stalls: bool,
}

/// The workload of the benchmark (and of `rmap-trace workload`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Workload (benchmark and `workload`)")]
pub struct BenchArgs {
    /// Pages (and VMAs) of the split layout.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub pages: u64,
    /// Layouts for anon and file pages (KSM is always split): the same split layout as KSM,
    /// and one page shared by --sharers forked children.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "split,sharers")]
    pub layouts: Vec<crate::workload::Layout>,
    /// Children sharing the page in the sharers layout (default: as many mappings as one KSM
    /// page gets with KSM's default `max_page_sharing`).
    #[arg(long, default_value_t = 255, value_parser = clap::value_parser!(u64).range(1..=32_768))]
    pub sharers: u64,
    /// Mappings per KSM page (KSM's `max_page_sharing`; default: leave it as it is, 256 unless
    /// changed). One KSM page for the whole region makes each walk quadratic in VMAs.
    /// Host-wide: changing it writes run=2, which unmerges every KSM page on the host.
    #[arg(long, value_parser = clap::value_parser!(u64).range(bounds::MAX_PAGE_SHARING))]
    pub max_page_sharing: Option<u64>,
    /// The ksm scenario changes KSM's settings for the whole host (ksmd at full speed, then
    /// paused for the trigger; see --max-page-sharing), so it is refused while other processes
    /// have KSM-merged pages or mergeable areas (`/proc/<pid>/ksm_stat`, `smaps`): a ksmd at
    /// full speed merges theirs too. This runs it anyway.
    #[arg(long)]
    pub force_ksm: bool,
    /// What makes the kernel walk.
    #[arg(long, value_enum, default_value_t = crate::workload::trigger::TriggerChoice::Auto)]
    pub trigger: crate::workload::trigger::TriggerChoice,
    /// Create a temporary zram swap device for --trigger reclaim (removed afterwards).
    #[arg(long)]
    pub setup_swap: bool,
    /// Seconds to wait for KSM to merge (1 to 86,400).
    #[arg(long, default_value_t = 600.0, value_parser = bounds::number(bounds::MERGE_TIMEOUT_S, "seconds"))]
    pub merge_timeout: f64,
    /// Before the trigger, move every page of the region to a new address with mremap (KSM
    /// pages are unmerged by the move and merged again before the trigger): the pages keep
    /// their page offsets while their addresses change, which a KSM rmap walk must still find.
    #[arg(long)]
    pub mremap: bool,
    /// Name the threads that make the kernel walk (at most 15 bytes), as an application's
    /// threads rename themselves (a JVM's `GC Thread#0`): for tests of --comm and --process.
    #[arg(long, hide = true, value_parser = comm)]
    pub thread_name: Option<String>,
    /// move-pages trigger, anon and file pages: move ALL pages of the region, N per
    /// `move_pages` call (default: a sample of the first 64 pages in one call). KSM pages are
    /// always moved one call per address.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(bounds::MOVE_BATCH))]
    pub move_batch: Option<u64>,
    /// Start N victim threads that change a page of the split region in a loop while the
    /// trigger runs, each timing its own changes: the ground truth `--stalls` is checked
    /// against (0 to 64; split layout only).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub victims: u64,
    /// What the victims do to their page.
    #[arg(long, value_enum, default_value_t = crate::workload::victims::VictimOp::Mprotect)]
    pub victim_op: crate::workload::victims::VictimOp,
}

impl TraceArgs {
    /// The in-kernel filters of a run: only `tgid` (0: every process), walks sent as records
    /// from `record_min_us` on (`--min-duration-us` as the command resolves it) and these
    /// options.
    pub fn filters(&self, types: &Types, tgid: u32, record_min_us: u64) -> crate::attach::load::Filters {
        crate::attach::load::Filters {
            tgid,
            comm: self.comm.clone(),
            type_mask: types.mask(),
            min_duration_ns: record_min_us * 1000,
            ringbuf_bytes: Some(self.ringbuf_kib * 1024),
            inflight_entries: Some(self.inflight_entries),
            no_offcpu: self.no_offcpu,
            ..crate::attach::load::Filters::default()
        }
    }
}

impl BenchArgs {
    /// The workload's options, as the scenarios take them.
    pub fn plan_options(&self) -> crate::workload::plan::Options {
        crate::workload::plan::Options {
            pages: self.pages as usize,
            layouts: self.layouts.clone(),
            sharers: self.sharers as usize,
            max_page_sharing: self.max_page_sharing,
            force_ksm: self.force_ksm,
            trigger: self.trigger,
            setup_swap: self.setup_swap,
            merge_timeout: std::time::Duration::from_secs_f64(self.merge_timeout),
            mremap: self.mremap,
            thread_name: self.thread_name.clone(),
            move_batch: self.move_batch.map(|n| n as usize),
            victims: self.victims as usize,
            victim_op: self.victim_op,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this host can do: kernel, BTF, tracefs, each attach mode, KSM, NUMA, swap.
    Probe {
        /// Write the report as JSON to this file too.
        #[arg(long, value_parser = output::parse)]
        json: Option<PathBuf>,
    },
    /// The percentile table of interval logs written with --hlog.
    Report {
        /// HdrHistogram interval logs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Two interval logs side by side per page type (count, p50, p90, p99, p99.9, max) with
    /// the B/A ratio: before/after a kernel patch or a setting.
    Compare {
        /// The baseline log.
        a: PathBuf,
        /// The log compared with it.
        b: PathBuf,
    },
    /// Latency by percentile of interval logs as an SVG: one line per file and page type.
    Plot {
        /// HdrHistogram interval logs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The SVG to write.
        #[arg(short, long, value_parser = output::parse)]
        output: PathBuf,
    },
    /// Run only the workload (no tracing): a region split into one VMA per page, migrated to
    /// another NUMA node with `move_pages`. Trace it from another shell with --attach-only.
    Workload {
        #[command(flatten)]
        types: Types,
        #[command(flatten)]
        bench: BenchArgs,
    },
    /// Put back what runs that were killed (SIGKILL, OOM) left changed on the host: KSM
    /// settings, the cgroup, zram swap, a tracefs mount (from their journals in
    /// /run/rmap-trace). Every state-changing command also does this when it starts.
    Restore,
    /// Shell completions for bash, zsh or fish, on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), on stdout.
    #[command(hide = true)]
    Manpage,
    /// Run count and time of every loaded BPF program (needs `kernel.bpf_stats_enabled=1`), for
    /// the overhead bench.
    #[command(hide = true)]
    BpfStats,
}

fn ringbuf_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v.is_power_of_two() && (4..=1 << 20).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a power of two from 4 to 1048576 (KiB)")),
    }
}

fn comm(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 {
        return Err("a command name has 1 to 15 bytes (TASK_COMM_LEN - 1)".into());
    }
    Ok(s.to_string())
}

fn page_type(s: &str) -> Result<PageType, String> {
    match s {
        "ksm" => Ok(PageType::Ksm),
        "anon" => Ok(PageType::Anon),
        "file" => Ok(PageType::File),
        _ => Err(format!("`{s}` is not a page type (ksm, anon, file)")),
    }
}

impl LiveArgs {
    /// The `--min-duration-us` of this run: as given; else every walk when an output asks for
    /// each one (--csv, --prometheus-cgroups); else `LIVE_RECORD_MIN_US`, or --threshold-ms
    /// when that is lower (its lines are records).
    pub fn record_min_us(&self, trace: &TraceArgs) -> u64 {
        if let Some(us) = trace.min_duration_us {
            return us;
        }
        if trace.csv.is_some() || self.prometheus_cgroups.is_some() {
            return 0;
        }
        // In ns first, as the slow-walk lines compare (trace_loop/slow.rs), then truncated: a
        // walk of exactly the threshold is still sent.
        let threshold_us = self.threshold_ms.map_or(u64::MAX, |ms| (ms * 1e6) as u64 / 1000);
        LIVE_RECORD_MIN_US.min(threshold_us)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rmap-trace").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn attach_only_records_slow_walks_unless_asked_for_each() {
        let min = |args: &[&str]| {
            let c = parse(args).unwrap();
            c.live.record_min_us(&c.trace)
        };
        assert_eq!(min(&["--attach-only"]), LIVE_RECORD_MIN_US);
        assert_eq!(min(&["--attach-only", "--min-duration-us", "0"]), 0);
        assert_eq!(min(&["--attach-only", "--min-duration-us", "5000"]), 5000);
        assert_eq!(min(&["--attach-only", "--csv", "/tmp/w.csv"]), 0);
        assert_eq!(
            min(&["--attach-only", "--csv", "/tmp/w.csv", "--min-duration-us", "7"]),
            7
        );
        assert_eq!(
            min(&[
                "--attach-only",
                "--prometheus",
                "9100",
                "--prometheus-cgroups",
                "8"
            ]),
            0
        );
        assert_eq!(min(&["--attach-only", "--threshold-ms", "0.25"]), 250);
        assert_eq!(
            min(&["--attach-only", "--threshold-ms", "20"]),
            LIVE_RECORD_MIN_US
        );
    }

    #[test]
    fn parses_attach_only() {
        let c = parse(&[
            "--attach-only",
            "--duration",
            "3",
            "-p",
            "42",
            "--types",
            "ksm,file",
            "--attach-mode",
            "kprobe",
        ])
        .unwrap();
        assert!(c.attach_only);
        assert_eq!(c.live.duration, Some(3.0));
        assert_eq!(c.live.pid, Some(42));
        assert_eq!(c.trace.attach_mode, AttachChoice::Kprobe);
        assert_eq!(c.types.mask(), 0b1101);
    }

    #[test]
    fn parses_the_command_lines_of_the_suites() {
        for args in [
            &[][..],
            &[
                "--types",
                "ksm",
                "--pages",
                "200",
                "--trigger",
                "reclaim",
                "--setup-swap",
            ],
            &[
                "--attach-mode",
                "tracepoint",
                "--layouts",
                "split,thp",
                "--json",
                "x.json",
            ],
            &[
                "--attach-only",
                "--comm",
                "rmap-trace",
                "--prometheus",
                "9500",
                "--hlog",
                "h",
            ],
            &[
                "--attach-only",
                "--interval",
                "30",
                "--json",
                "x.json",
                "--csv",
                "c",
            ],
            &[
                "--attach-only",
                "--namespace",
                "shop",
                "--pod",
                "shop/web-0",
                "--pod-logs",
                "/host/var/log/pods",
            ],
            &[
                "workload",
                "--types",
                "ksm,anon",
                "--layouts",
                "split",
                "--pages",
                "200",
            ],
            &["probe", "--json", "p.json"],
            &["completions", "bash"],
            &["manpage"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}: {}", parse(args).unwrap_err());
        }
    }

    #[test]
    fn rejects_bad_input() {
        for args in [
            &["--attach-only", "--duration", "-1"][..],
            &["--attach-only", "--types", "huge"],
            &["--attach-only", "--comm", "a-name-longer-than-15"],
            &["--attach-mode", "uprobe"],
            &["workload", "--move-batch", "0"],
            &["workload", "--move-batch", "65537"],
            &["--attach-only", "--pod", "Web_0"],
            &["--attach-only", "--namespace", "kube_system"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    /// Each option outside its command is a clap error, never ignored.
    #[test]
    fn rejects_options_of_another_command() {
        for args in [
            // Live-only options in the benchmark.
            &["--interval", "2"][..],
            &["--duration", "3"],
            &["-p", "1"],
            &["--threshold-ms", "5"],
            &["--prometheus", "9500"],
            &["--pod", "shop/web-0"],
            &["--namespace", "shop"],
            // …also beside a benchmark option (which makes --attach-only itself conflict).
            &["--stalls", "--pages", "100"],
            &["--interval", "2", "--types", "anon", "--pages", "100"],
            // Benchmark options with --attach-only.
            &["--attach-only", "--pages", "100"],
            &["--attach-only", "--trigger", "compact"],
            &["--attach-only", "--setup-swap"],
            &["--attach-only", "--mremap"],
            &["--attach-only", "--move-batch", "512"],
            // Options of the runs given to a command.
            &["probe", "--pages", "100"],
            &["--pages", "100", "probe"],
            &["workload", "--json", "x.json"],
            &["workload", "--attach-only"],
        ] {
            let err = parse(args).err();
            assert!(
                err.as_ref().is_some_and(|e| e.use_stderr() && e.exit_code() == 2),
                "{args:?} accepted"
            );
        }
    }
}
