//! `cargo xtask vm-test`: the integration suite in the guest. The guest runs the scenarios and
//! sends back JSON summaries between markers; the checks run here, on the host.
use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::guest::{GuestArgs, qemu::GuestRun};

mod burst;
mod debbin;
mod debian;
mod drops;
mod export;
mod faults;
mod icount;
mod jvm;
mod kernels;
pub mod kubernetes;
mod owners;
mod patched;
mod ring;
mod stalls;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Pages (and VMAs) of the KSM/anon/file layouts.
    #[arg(long, default_value_t = 20_000)]
    pub pages: u32,
    /// Which suites: debian (Debian's 6.1 kernel: fentry, kprobe, filters, cleanup, one node),
    /// export (Prometheus and the interval log, on Debian's kernel), patched (our kernel with
    /// the rmap tracepoints and ksm-rmap-pgoff), faults (SIGKILL at each phase, then the
    /// host state restored; about a minute in the guest), drops (Debian's kernel: a tiny ring
    /// buffer, a shrunk in-flight table, the off-CPU hook disabled), owners (Debian's kernel:
    /// memory owners, --cgroup, --process against renamed threads), stalls (Debian's kernel:
    /// --stalls against victims that time their own calls; in all with 2,000 VMAs, the
    /// `--pages` given when alone), jvm (Debian's kernel: `OpenJDK` 17 under reclaim and KSM,
    /// its walks' attribution; on demand, not in all), jvm-smoke (the same, shorter), icount
    /// (the overhead bench's guest: `--accel icount`, one CPU, fentry counting), kubernetes
    /// (Debian's kernel: the image run by runc as the DaemonSet would run it on a pod-shaped
    /// node, a real Prometheus with the rules and the dashboard's queries), kernels
    /// (Debian's 5.10, 6.1, 6.12, 7.2 and ours: every attach mode's walk counts against tracefs
    /// kretprobes, purposes, owners, --stalls, off-CPU, Prometheus, restore; writes the
    /// README's tested-kernels table; on demand), kernels-smoke (each of them: probe, the mode
    /// auto chooses, the count check; in all), or all.
    #[arg(long, value_enum, default_value_t = Suite::All)]
    pub suite: Suite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    Debian,
    Export,
    Patched,
    Faults,
    Drops,
    Owners,
    Stalls,
    Jvm,
    JvmSmoke,
    Icount,
    Kubernetes,
    Kernels,
    KernelsSmoke,
    All,
}

impl Suite {
    fn has(self, s: Suite) -> bool {
        self == s || (self == Suite::All && !matches!(s, Suite::Jvm | Suite::Kernels))
    }
}

pub(super) fn json(run: &GuestRun, name: &str) -> anyhow::Result<Value> {
    let text = run
        .outputs
        .get(name)
        .with_context(|| format!("the guest sent no {name} output"))?;
    serde_json::from_str(text).with_context(|| format!("parsing {name} JSON from the guest"))
}

pub(super) fn row<'a>(rows: &'a Value, key: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|r| r["key"] == key)
}

/// A kernel counter of a run's JSON (`kernel_counts.counters.<name>`); `u64::MAX` when absent.
pub(super) fn counter(doc: &Value, name: &str) -> u64 {
    doc["kernel_counts"]["counters"][name]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Walks of one page type counted in the kernel (`kernel_counts.per_type[].walks`).
pub(super) fn kernel_walks(doc: &Value, ty: &str) -> u64 {
    doc["kernel_counts"]["per_type"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["type"] == ty))
        .and_then(|t| t["walks"].as_u64())
        .unwrap_or(0)
}

/// A named check; failures are collected so one run reports all of them.
pub(super) struct Checks {
    failed: Vec<String>,
    passed: usize,
}

impl Checks {
    pub(super) fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("ok   {name}: {detail}");
        } else {
            println!("FAIL {name}: {detail}");
            self.failed.push(name.to_string());
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    let mut c = Checks {
        failed: Vec::new(),
        passed: 0,
    };
    if args.suite.has(Suite::Debian) {
        debian::run(&args.guest, args.pages, &mut c)?;
    }
    if args.suite.has(Suite::Icount) {
        icount::run(&args.guest, &mut c)?;
    }
    if args.suite.has(Suite::Export) {
        export::run(&args.guest, 2000, &mut c)?;
    }
    if args.suite.has(Suite::Faults) {
        faults::run(&args.guest, args.pages.min(2000), &mut c)?;
    }
    if args.suite.has(Suite::Drops) {
        drops::run(&args.guest, 2000, &mut c)?;
    }
    if args.suite.has(Suite::Kubernetes) {
        kubernetes::run(&args.guest, 2000, &mut c)?;
    }
    if args.suite.has(Suite::Owners) {
        owners::run(&args.guest, 300, &mut c)?;
    }
    if args.suite.has(Suite::Stalls) {
        // The whole run (5,000-20,000 VMAs: `--suite stalls --pages N`) on demand; a short one in
        // `all`, which CI runs.
        let pages = if args.suite == Suite::Stalls {
            args.pages
        } else {
            2000
        };
        stalls::run(&args.guest, pages, &mut c)?;
    }
    if args.suite.has(Suite::Jvm) {
        jvm::run(&args.guest, jvm::Depth::Full, &mut c)?;
    }
    if args.suite.has(Suite::JvmSmoke) {
        jvm::run(&args.guest, jvm::Depth::Smoke, &mut c)?;
    }
    if args.suite.has(Suite::Patched) {
        patched::run(&args.guest, args.pages.min(patched::PAGES), &mut c)?;
    }
    if args.suite.has(Suite::Kernels) {
        kernels::run(&args.guest, kernels::Depth::Full, &mut c)?;
    }
    if args.suite.has(Suite::KernelsSmoke) {
        kernels::run(&args.guest, kernels::Depth::Smoke, &mut c)?;
    }
    println!("vm-test: {} passed, {} failed", c.passed, c.failed.len());
    if !c.failed.is_empty() {
        bail!("vm-test failed: {}", c.failed.join(", "));
    }
    Ok(())
}
