//! `cargo xtask test`: unit tests, the real eBPF object against this host's kernel, the
//! harness's failure handling, and the guest suite.
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{build::workspace_root, cmd::status, guest::GuestArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the guest suite (unit and host tests only).
    #[arg(long)]
    pub no_vm: bool,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Pages of the guest workloads.
    #[arg(long, default_value_t = 20_000)]
    pub pages: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = status(Command::new(&cargo).current_dir(workspace_root()).args([
        "test",
        "--workspace",
        "--exclude",
        "rmap-ebpf",
    ]))
    .context("running cargo test")?;
    if !ok {
        bail!("cargo test failed");
    }
    if args.no_vm {
        return Ok(());
    }
    crate::vm_test::run(crate::vm_test::Args {
        guest: args.guest,
        pages: args.pages,
        suite: crate::vm_test::Suite::All,
    })
}
