//! Building rmap-trace: for this host, and statically linked for the guest initramfs.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::setup::run_ok;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// `target/release/rmap-trace` for this host.
pub fn host() -> anyhow::Result<()> {
    run_ok(cargo().args(["build", "--release", "--package", "rmap-user"])).context("building rmap-trace")
}

pub fn host_binary() -> PathBuf {
    workspace_root().join("target/release/rmap-trace")
}

/// A static rmap-trace for the guest (the initramfs has no libc). aya-build's nested eBPF
/// build ignores RUSTFLAGS, so crt-static only reaches the userspace binary.
pub fn static_binary() -> anyhow::Result<PathBuf> {
    run_ok(
        cargo()
            .args([
                "build",
                "--release",
                "--package",
                "rmap-user",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )
    .context("building the static rmap-trace for the guest")?;
    Ok(workspace_root().join("target/x86_64-unknown-linux-gnu/release/rmap-trace"))
}
