//! `cargo xtask compare-kernels [-- rmap-trace args]`: the benchmark on two kernels, one guest
//! each, then `rmap-trace compare` and `plot` of their interval logs. By default our kernel
//! without and with `ksm-rmap-pgoff` (the second rebuilds incrementally from the first's tree:
//! only mm/ksm.c differs); any two kernels `--kernel` takes, e.g. `--before debian:6.1 --after
//! debian:7.2`.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    build::workspace_root,
    guest::{self, RmapRun, kernel::KernelChoice},
    kbuild::patches,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The baseline kernel (A), as `--kernel` takes it, or a patch list of our kernel.
    #[arg(
        long,
        value_name = "KERNEL",
        value_parser = side,
        default_value = "ours:rmap-tracepoints,rmap-tracepoint-v4"
    )]
    pub before: KernelChoice,
    /// The kernel compared with it (B), likewise.
    #[arg(
        long,
        value_name = "KERNEL",
        value_parser = side,
        default_value = "ours:rmap-tracepoints,rmap-tracepoint-v4,ksm-rmap-pgoff"
    )]
    pub after: KernelChoice,
    /// Where the logs, summaries and outputs go.
    #[arg(long, default_value = "target/compare-kernels")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RmapRun,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    if args.run.guest.kernel.is_some() || args.run.guest.patches.is_some() {
        bail!("compare-kernels boots the --before and --after kernels; drop --kernel/--patches");
    }
    // Both patch lists checked before anything is built.
    for side in [&args.before, &args.after] {
        if let KernelChoice::Ours(list) = side {
            patches::select(list)?;
        }
    }
    let out = workspace_root().join(&args.out);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let line = args.run.line();
    let script = format!(
        "{line} --hlog /tmp/r.hlog --json /tmp/r.json > /tmp/r.txt 2>&1\necho \"exit $?\" >> /tmp/r.txt\n\
         emit txt /tmp/r.txt\nemit hlog /tmp/r.hlog\nemit json /tmp/r.json\n"
    );
    let mut logs = Vec::new();
    for (label, kernel) in [("before", &args.before), ("after", &args.after)] {
        let g = args.run.guest.with_kernel(kernel.clone());
        eprintln!("xtask: {label}: {kernel}");
        let run = guest::boot(&g, &script, false)?;
        eprintln!(
            "xtask: {label}: guest finished in {:.1} s",
            run.elapsed.as_secs_f64()
        );
        let get = |name: &str| run.outputs.get(name).map(|s| s.trim_end().to_string());
        let txt = get("txt").unwrap_or_default();
        println!("--- {label}: {kernel} ---\n{txt}");
        fs::write(out.join(format!("{label}.txt")), format!("{txt}\n"))?;
        if !txt.ends_with("exit 0") {
            bail!("rmap-trace failed in the {label} guest (output above)");
        }
        let hlog = out.join(format!("{label}.hlog"));
        fs::write(
            &hlog,
            format!("{}\n", get("hlog").context("the guest sent no interval log")?),
        )?;
        if let Some(j) = get("json") {
            fs::write(out.join(format!("{label}.json")), format!("{j}\n"))?;
        }
        logs.push(hlog);
    }
    let binary = crate::build::static_binary()?;
    let ok = crate::cmd::status(Command::new(&binary).arg("compare").args(&logs))?;
    if !ok {
        bail!("rmap-trace compare failed");
    }
    let svg = out.join("compare.svg");
    let ok = crate::cmd::status(Command::new(&binary).arg("plot").args(&logs).arg("-o").arg(&svg))?;
    if !ok {
        bail!("rmap-trace plot failed");
    }
    eprintln!("xtask: logs and summaries in {}", out.display());
    Ok(())
}

/// A side of the comparison: a kernel as `--kernel` takes it, or (no `:` nor `/`) a patch list
/// of our kernel.
fn side(s: &str) -> Result<KernelChoice, String> {
    if s.contains([':', '/']) {
        s.parse()
    } else {
        Ok(KernelChoice::Ours(s.to_string()))
    }
}
