//! Privileged tests of rmap-trace against this host's kernel, with the real eBPF object (the
//! one `rmap-user` embeds). They load BPF programs, may mount tracefs and read kallsyms
//! addresses, so they live apart from `cargo test`: `cargo xtask test` builds the `rmap-trace`
//! binary, then runs them as root (through `sudo` when it is not root itself).
use std::path::PathBuf;

pub mod capacity;
pub mod prog_run;
#[cfg(test)]
mod tests;

/// A directory removed with everything in it when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

/// Stops a test run by a normal user before it reaches the kernel (a failed `mount` or `bpf`
/// call would only give a less clear error).
///
/// # Panics
/// When the effective user is not root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "privileged test: run it with `cargo xtask test` (needs root)"
    );
}

/// The `rmap-trace` binary of the same build: cargo puts test executables in
/// `target/<profile>/deps/` and binaries in `target/<profile>/`. `cargo xtask test` builds it
/// before these tests (cargo builds a package's binary only for that package's own tests).
///
/// # Panics
/// When the binary has not been built.
#[must_use]
pub fn rmap_trace_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("rmap-trace"))
        .expect("test executable inside target/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} missing: build it with `cargo build -p rmap-user --bin rmap-trace`",
        bin.display()
    );
    bin
}
