//! Running processes: the few ways xtask waits on a command, each with the command in its error;
//! whether xtask runs as root.
use std::process::Command;

use anyhow::{Context as _, bail};

/// Runs `cmd` with inherited output; `Ok(false)` when it ran and failed.
pub fn status(cmd: &mut Command) -> anyhow::Result<bool> {
    Ok(cmd
        .status()
        .with_context(|| format!("running {cmd:?}"))?
        .success())
}

/// Runs `cmd` with inherited output; its failure is an error.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    if !status(cmd)? {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

/// Runs `cmd` with its output captured; true when it started and succeeded.
pub fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// Whether `bin` is on PATH.
pub fn have(bin: &str) -> bool {
    quiet_ok(Command::new("sh").args(["-c", &format!("command -v {bin}")]))
}

/// Runs `cmd` with its output captured; its stdout, or an error with its stderr.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether xtask runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
