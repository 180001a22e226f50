//! Prerequisites, checked on every build and installed on Debian when missing (as root), or
//! one line saying what to run.
use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

/// Debian packages: LLVM 22 for bpf-linker, QEMU and cpio-free initramfs needs only qemu.
const APT_PACKAGES: [&str; 4] = ["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "qemu-system-x86"];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn status(cmd: &mut Command) -> anyhow::Result<bool> {
    Ok(cmd
        .status()
        .with_context(|| format!("running {cmd:?}"))?
        .success())
}

pub fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    if !status(cmd)? {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn have(bin: &str) -> bool {
    quiet_ok(Command::new("sh").args(["-c", &format!("command -v {bin}")]))
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Ensures everything the build and the guest need.
pub fn ensure() -> anyhow::Result<()> {
    let src_ok = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
        });
    if !src_ok {
        eprintln!("xtask: installing the nightly toolchain with rust-src (builds the eBPF object)");
        run_ok(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .context("run: rustup toolchain install nightly --component rust-src")?;
    }
    apt_install(&APT_PACKAGES)?;
    if !have("bpf-linker") {
        eprintln!("xtask: installing bpf-linker against LLVM 22 (a few minutes, once)");
        run_ok(Command::new("cargo").args(["install", "--locked", "bpf-linker", "--no-default-features", "--features", "llvm-22"]).env("LLVM_PREFIX", LLVM_PREFIX))
            .with_context(|| format!("run: LLVM_PREFIX={LLVM_PREFIX} cargo install bpf-linker --no-default-features --features llvm-22"))?;
    }
    Ok(())
}

/// Installs the Debian packages of `packages` that are missing, or says what to run.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if !missing.is_empty() {
        if !is_root() || !have("apt-get") {
            bail!(
                "missing packages; run: sudo apt-get install -y {}",
                missing.join(" ")
            );
        }
        eprintln!("xtask: installing {}", missing.join(" "));
        let fresh_lists = Path::new("/var/lib/apt/lists")
            .read_dir()
            .map_or(0, |d| d.count())
            > 2;
        if !fresh_lists
            || !status(
                Command::new("apt-get")
                    .args(["install", "-y", "-q"])
                    .args(&missing)
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?
        {
            run_ok(Command::new("apt-get").args(["update", "-q"]))?;
            run_ok(
                Command::new("apt-get")
                    .args(["install", "-y", "-q"])
                    .args(&missing)
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
            .with_context(|| format!("run: apt-get install -y {}", missing.join(" ")))?;
        }
    }
    Ok(())
}
