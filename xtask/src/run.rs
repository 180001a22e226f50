//! `cargo xtask run [-- args]`: `rmap-trace [args]` (the benchmark with its embedded defaults
//! when no args are given), on this host when it can attach to rmap walks, else in the guest,
//! whose output files (`--json`, `--csv`, `--hlog`, `--plot`) are then brought home.
use std::process::Command;

use anyhow::bail;

use crate::guest::{self, RmapRun};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run on this host even if it cannot attach.
    #[arg(long, conflicts_with = "vm")]
    pub host: bool,
    /// Run in the guest even if this host could attach.
    #[arg(long)]
    pub vm: bool,
    #[command(flatten)]
    pub run: RmapRun,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    crate::build::host()?;
    let binary = crate::build::host_binary();
    let host_can = !args.vm
        && Command::new(&binary).arg("probe").output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("mode ") && l.contains(" available:"))
        });
    if args.host || host_can {
        if !crate::cmd::status(Command::new(&binary).args(&args.run.rmap_args))? {
            bail!("rmap-trace failed");
        }
        return Ok(());
    }
    println!(
        "xtask: this host cannot attach to rmap walks (see `rmap-trace probe`); running in the QEMU guest"
    );
    let (line, files) = args.run.line_home();
    guest::run_echoed_home(&args.run.guest, &line, &files)
}
