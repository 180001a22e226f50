//! `cargo xtask test`: formatting and lints first (cheap, and what a reviewer would flag), then
//! the unit tests exactly as a developer runs them (`cargo test`), then the privileged tests of
//! `integration-test` against this host's kernel, then the guest suite.
use std::process::Command;

use anyhow::Context as _;

use crate::{build::workspace_root, cmd::run_ok, guest::GuestArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the guest suite (fmt, clippy, unit and privileged host tests only).
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
    step("fmt", &["fmt", "--all", "--check"])?;
    // rmap-ebpf is included: for the host it is an empty `main` (its programs are behind
    // cfg(target_arch = "bpf")), so this lints its build script only; the pinned eBPF nightly
    // has no clippy component.
    step(
        "clippy",
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    )?;
    // The default members: what plain `cargo test` runs, which must pass as a normal user.
    step("unit", &["test"])?;
    privileged()?;
    // The production install: the tarball's unit verifies, its man page renders, its binary runs.
    eprintln!("xtask: test: dist: cargo xtask dist");
    crate::dist::check(&crate::dist::build(std::path::Path::new("target/dist"))?)?;
    // The Kubernetes and Prometheus files: schema, rules' unit tests, dashboard queries.
    eprintln!("xtask: test: deploy: cargo xtask deploy-check");
    crate::deploy_check::run()?;
    if args.no_vm {
        return Ok(());
    }
    crate::vm_test::run(&crate::vm_test::Args {
        guest: args.guest,
        pages: args.pages,
        suite: crate::vm_test::Suite::All,
    })
}

/// The tests that load the eBPF object, mount tracefs and read kallsyms addresses. They run the
/// `rmap-trace` binary, which cargo builds only for rmap-user's own tests, so it is built first.
/// When xtask is not root, cargo runs the test executable through `sudo -E` (its runner).
fn privileged() -> anyhow::Result<()> {
    step(
        "privileged",
        &["build", "--package", "rmap-user", "--bin", "rmap-trace"],
    )?;
    let mut args = vec!["test", "--package", "integration-test"];
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        args.extend(["--config", "target.'cfg(all())'.runner = ['sudo', '-E']"]);
    }
    step("privileged", &args)
}

/// Runs `cargo <args>` in the workspace, announced on one line so that the log shows each step.
fn step(name: &str, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: test: {name}: cargo {}", args.join(" "));
    run_ok(Command::new(cargo).current_dir(workspace_root()).args(args))
        .with_context(|| format!("test step {name}"))
}
