//! The suite "jvm" (Debian's 6.1 kernel only: its modules give zram, and it has KSM, fentry
//! and two NUMA nodes): Debian's `OpenJDK` 17 in the guest, under reclaim and under KSM, and
//! rmap-trace's attribution of the walks (owner cgroup, walking thread and process) checked
//! against the guest's own files. `--suite jvm` runs it in full (on demand, not in `all`);
//! `jvm-smoke` (in `all`, so in `cargo xtask test`) runs the same scenarios shorter, without the
//! kswapd phase and the JVM without the shim.
mod assets;
mod ksm;
mod reclaim;
mod script;
mod walks;

use super::Checks;
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// The full suite, or its smoke.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Full,
    Smoke,
}

pub fn run(args: &GuestArgs, depth: Depth, c: &mut Checks) -> anyhow::Result<()> {
    if args.patches.is_some() || args.kernel.is_some() {
        anyhow::bail!(
            "the jvm suite runs on Debian's kernel only (zram is one of its modules): drop --patches/--kernel"
        );
    }
    let full = depth == Depth::Full;
    let sizes = script::Sizes {
        heap_mib: 32,
        pause_ms: 2000,
        high_s: if full { 8 } else { 5 },
        kswapd_s: if full { 8 } else { 0 },
        plain_jvm: full,
    };
    let a = assets::build()?;
    let out = guest::boot_with_trees(args, &script::script(&sizes), false, &a.extra, &a.trees)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    for line in &out.console {
        println!("guest: {line}");
    }
    for name in ["r-all.txt", "k-all.txt"] {
        println!("--- rmap-trace's summary, {name} ---\n{}", text(&out, name));
    }
    reclaim::verify(&out, full, c)?;
    ksm::verify(&out, full, c)
}

fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}
