//! The emulator the guests run on: QEMU from Debian 12's backports (10.0), unpacked with its
//! dependency closure into the cache (`debroot`) and run through that root's own dynamic
//! loader and libraries; nothing is installed on the host. Debian 12's own QEMU 7.2 races
//! under MTTCG with the guest kernel's text patching (`tcg.rs`), which QEMU 8.1 fixed.
//!
//! `RMAP_TRACE_QEMU=/path/to/qemu-system-x86_64` runs another QEMU instead (on a machine whose
//! apt cannot reach Debian's archive).
use std::{path::PathBuf, process::Command, sync::OnceLock};

use anyhow::Context as _;

use crate::{
    apt::{self, Archive},
    debroot,
};

/// The binary and, for the unpacked QEMU, its root.
#[derive(Debug, Clone)]
enum Qemu {
    Root(PathBuf),
    Path(PathBuf),
}

/// The QEMU to run, found (and unpacked) once per process.
fn qemu() -> anyhow::Result<&'static Qemu> {
    static Q: OnceLock<Result<Qemu, String>> = OnceLock::new();
    Q.get_or_init(|| {
        if let Some(path) = std::env::var_os("RMAP_TRACE_QEMU") {
            return Ok(Qemu::Path(PathBuf::from(path)));
        }
        debroot::root_from(Archive::Private(&apt::BOOKWORM_BACKPORTS), &["qemu-system-x86"])
            .map(Qemu::Root)
            .map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("QEMU from Debian 12's backports: {e} (or set RMAP_TRACE_QEMU)"))
}

/// A command running `qemu-system-x86_64` with `args` to follow.
pub fn command() -> anyhow::Result<Command> {
    Ok(match qemu()? {
        Qemu::Path(p) => Command::new(p),
        Qemu::Root(root) => {
            let libs = [
                "lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu/pulseaudio",
            ]
            .map(|d| root.join(d).display().to_string())
            .join(":");
            let mut c = Command::new(root.join("lib64/ld-linux-x86-64.so.2"));
            c.arg("--library-path")
                .arg(libs)
                .arg(root.join("usr/bin/qemu-system-x86_64"))
                // The firmware (SeaBIOS, the option ROMs that boot `-kernel`) of that root.
                .arg("-L")
                .arg(root.join("usr/share/qemu"))
                .arg("-L")
                .arg(root.join("usr/share/seabios"))
                .env("QEMU_MODULE_DIR", root.join("usr/lib/x86_64-linux-gnu/qemu"));
            c
        }
    })
}

/// `qemu-system-x86_64 --version`'s first line.
pub fn version() -> anyhow::Result<String> {
    static V: OnceLock<Result<String, String>> = OnceLock::new();
    V.get_or_init(|| {
        let out = command()
            .and_then(|mut c| c.arg("--version").output().context("running QEMU"))
            .map_err(|e| format!("{e:#}"))?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "QEMU printed no version: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
    })
    .clone()
    .map_err(anyhow::Error::msg)
}
