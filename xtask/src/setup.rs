//! Prerequisites, checked by every command that builds rmap-trace or boots the guest and
//! installed when missing, or one line saying what to run: the eBPF toolchain and bpf-linker
//! of `ebpf-toolchain.toml` (their LLVM majors checked to agree), and QEMU (Debian 12's
//! backported one, unpacked into the cache: `guest/emulator.rs`).
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{
    cmd::run_ok,
    toolchain::{self, Pin},
};

/// Ensures everything the build and the guest need, then prints the versions in use.
pub fn ensure() -> anyhow::Result<()> {
    let pin = Pin::load()?;
    let nightly = ensure_ebpf_toolchain(&pin)?;
    let linker = ensure_linker(&pin)?;
    let stable = toolchain::rustc_vv(None)?;
    let qemu = crate::guest::emulator::version()?;
    eprintln!("xtask: stable     {}", toolchain::describe_rustc(&stable));
    eprintln!(
        "xtask: eBPF       {}: {}",
        pin.toolchain.channel,
        toolchain::describe_rustc(&nightly)
    );
    eprintln!("xtask: linker     {linker}");
    eprintln!("xtask: qemu       {qemu}");
    Ok(())
}

/// Installs the pinned nightly with rust-src (the eBPF build compiles `core` from source) and
/// checks that its LLVM is the one the pin names. Returns its `rustc -vV`.
fn ensure_ebpf_toolchain(pin: &Pin) -> anyhow::Result<String> {
    let channel = &pin.toolchain.channel;
    let has_src = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", channel])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("rust-src"))
        });
    if !has_src {
        eprintln!("xtask: installing the eBPF toolchain {channel} with rust-src (ebpf-toolchain.toml)");
        run_ok(Command::new("rustup").args([
            "toolchain",
            "install",
            channel,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .with_context(|| {
            format!("run: rustup toolchain install {channel} --profile minimal --component rust-src")
        })?;
    }
    let vv = toolchain::rustc_vv(Some(channel))?;
    let major = toolchain::llvm_major_from_rustc(&vv);
    if major != Some(pin.toolchain.llvm_major) {
        bail!(
            "the eBPF toolchain {channel} reports LLVM {}, ebpf-toolchain.toml says {}: fix the pin",
            major.map_or_else(|| "?".to_string(), |m| m.to_string()),
            pin.toolchain.llvm_major
        );
    }
    Ok(vv)
}

/// Installs the pinned bpf-linker when it is missing, or when the one on PATH is built against
/// another LLVM (or nothing says which, or it is another version): such a linker would fail on
/// the object's bitcode deep inside the build.
fn ensure_linker(pin: &Pin) -> anyhow::Result<toolchain::Linker> {
    let args = pin.linker_install_args();
    let fix = format!("cargo {}", args.join(" "));
    match toolchain::find_linker() {
        Some(linker) => match toolchain::linker_mismatch(pin, &linker) {
            None => return Ok(linker),
            Some(why) => eprintln!("xtask: {why}: reinstalling it ({fix})"),
        },
        None => eprintln!(
            "xtask: installing bpf-linker {} with {} (about 2 minutes, once)",
            pin.bpf_linker.version,
            pin.bpf_linker.features.join(",")
        ),
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Outside the workspace, so that its rust-toolchain.toml does not apply: bpf-linker
    // builds with whatever stable cargo is running us.
    // Nor in a CARGO_TARGET_DIR shared with other builds: cargo install then builds in a
    // private temporary directory.
    run_ok(
        Command::new(cargo)
            .current_dir(std::env::temp_dir())
            .env_remove("CARGO_TARGET_DIR")
            .args(&args),
    )
    .with_context(|| format!("run: {fix}"))?;
    let linker = toolchain::find_linker()
        .with_context(|| format!("bpf-linker is not on PATH after `{fix}`: add ~/.cargo/bin to PATH"))?;
    if let Some(why) = toolchain::linker_mismatch(pin, &linker) {
        bail!("{why} (a bpf-linker earlier on PATH than the one just installed?)");
    }
    Ok(linker)
}
