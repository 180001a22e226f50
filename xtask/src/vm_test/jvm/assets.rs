//! What the JVM suite puts into the guest: a root of Debian's `OpenJDK` 17 runtime (and `numactl`,
//! for `migratepages`) with its dependency closure (`debroot`), and the repository's load
//! (`xtask/assets/jvm/RmapLoad.java`, compiled by the host's JDK with `--release 17`) and
//! `LD_PRELOAD` shim (`ksm_shim.c`, compiled by the host's C compiler against the same Debian
//! release's glibc as the root's), both cached by a hash of their sources and compilers.
//!
//! The shim is C, not a Rust cdylib: it replaces one libc symbol (`mmap`) by the C ABI and
//! needs nothing but libc; a Rust cdylib would carry std's runtime into every mapping call of
//! the JVM and need its own no-std, panic-free build to be safe there.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::{build::workspace_root, cache, cmd, debroot};

/// Debian packages of the guest's root: the JVM and `migratepages`.
const ROOT_PACKAGES: [&str; 2] = ["openjdk-17-jre-headless", "numactl"];
/// Host packages that build the load and the shim.
const HOST_PACKAGES: [&str; 2] = ["openjdk-17-jdk-headless", "gcc"];
/// Where the root goes in the guest.
pub const ROOT: &str = "opt/jvm";
/// The load and the shim, inside the root.
pub const APP: &str = "app";

/// The trees and files of the guest's initramfs.
pub struct Assets {
    pub trees: Vec<(String, PathBuf)>,
    pub extra: Vec<(String, PathBuf)>,
}

pub fn build() -> anyhow::Result<Assets> {
    crate::apt::install(&HOST_PACKAGES)?;
    let root = debroot::root(&ROOT_PACKAGES)?;
    let app = app()?;
    let extra = ["RmapLoad.class", "ksm_shim.so"]
        .into_iter()
        .map(|f| (format!("{ROOT}/{APP}/{f}"), app.join(f)))
        .collect();
    Ok(Assets {
        trees: vec![(ROOT.to_string(), root)],
        extra,
    })
}

/// The compiled load and shim, as `cache/jvm-app-<hash>`.
fn app() -> anyhow::Result<PathBuf> {
    let src = workspace_root().join("xtask/assets/jvm");
    let (java, shim) = (src.join("RmapLoad.java"), src.join("ksm_shim.c"));
    let mut h = Sha256::new();
    for f in [&java, &shim] {
        h.update(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    h.update(cmd::stdout(Command::new("javac").arg("-version"))?);
    h.update(cmd::stdout(Command::new("cc").arg("--version"))?);
    let key = h.finalize()[..8].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let target = cache::dir()?.join(format!("jvm-app-{key}"));
    if !target.is_dir() {
        eprintln!("xtask: compiling {} and {}", java.display(), shim.display());
        cache::atomic_dir(&target, |tmp| compile(&java, &shim, tmp))?;
    }
    Ok(target)
}

fn compile(java: &Path, shim: &Path, out: &Path) -> anyhow::Result<()> {
    if !cmd::status(
        Command::new("javac")
            .args(["--release", "17", "-Xlint:all", "-Werror", "-d"])
            .arg(out)
            .arg(java),
    )? {
        bail!("javac {} failed", java.display());
    }
    if !cmd::status(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(out.join("ksm_shim.so"))
            .arg(shim),
    )? {
        bail!("cc {} failed", shim.display());
    }
    Ok(())
}
