//! `cargo xtask compare-kernels [-- rmap-trace args]`: the benchmark on our kernel without and
//! with `ksm-rmap-pgoff`, one guest each, then `rmap-trace compare` and `plot` of their interval
//! logs.
//! The second kernel rebuilds incrementally from the first's tree (only mm/ksm.c differs).
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    build::workspace_root,
    guest::{self, GuestArgs, RmapRun},
    kbuild::patches,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Patches of the baseline kernel (A).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "rmap-tracepoints,rmap-tracepoint-v4"
    )]
    pub before: String,
    /// Patches of the kernel compared with it (B).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "rmap-tracepoints,rmap-tracepoint-v4,ksm-rmap-pgoff"
    )]
    pub after: String,
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
    // Both lists checked before anything is built.
    patches::select(&args.before)?;
    patches::select(&args.after)?;
    let out = workspace_root().join(&args.out);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let line = args.run.line();
    let script = format!(
        "{line} --hlog /tmp/r.hlog --json /tmp/r.json > /tmp/r.txt 2>&1\necho \"exit $?\" >> /tmp/r.txt\n\
         emit txt /tmp/r.txt\nemit hlog /tmp/r.hlog\nemit json /tmp/r.json\n"
    );
    let mut logs = Vec::new();
    for (label, list) in [("before", &args.before), ("after", &args.after)] {
        let g = GuestArgs {
            patches: Some(list.clone()),
            ..args.run.guest.clone()
        };
        eprintln!("xtask: {label}: [{list}]");
        let run = guest::boot(&g, &script, false)?;
        eprintln!(
            "xtask: {label}: guest finished in {:.1} s",
            run.elapsed.as_secs_f64()
        );
        let get = |name: &str| run.outputs.get(name).map(|s| s.trim_end().to_string());
        let txt = get("txt").unwrap_or_default();
        println!("--- {label} [{list}] ---\n{txt}");
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
