//! Building rmap-trace: for this host, and statically linked for the guest initramfs.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::cmd::run_ok;

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
    target_dir().join("release/rmap-trace")
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` (relative to the workspace) or `target`.
fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// A static rmap-trace, for the guest (the initramfs has no libc) and for the tarball of
/// `dist` (it runs on any glibc, or none). aya-build's nested eBPF
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
    .context("building the static rmap-trace")?;
    Ok(target_dir().join("x86_64-unknown-linux-gnu/release/rmap-trace"))
}
