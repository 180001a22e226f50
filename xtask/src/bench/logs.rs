//! `cargo xtask bench logs`: reading interval logs back. Builds the release `rmap-trace` and
//! `integration-test`'s `logs` binary beside it, which writes a day-long log of `--mib` MiB and
//! two crafted ones into `target/bench-logs` and times `rmap-trace report` on each (no root
//! needed). The figures are those of docs/benchmarks.md, *Capacity and memory*.
use std::process::Command;

use anyhow::Context as _;

use crate::{build::workspace_root, cmd::run_ok};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the day-long log, in MiB (1 to 16384).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=16_384))]
    pub mib: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_ok(Command::new(&cargo).current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        "rmap-user",
        "--bin",
        "rmap-trace",
    ]))
    .context("building rmap-trace")?;
    let mut cmd = super::integration_bin("logs");
    cmd.args(["--", "--mib", &args.mib.to_string(), "--dir", "target/bench-logs"]);
    run_ok(&mut cmd).context("the logs bench")
}
