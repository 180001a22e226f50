use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

/// Builds the eBPF object (rmap-ebpf) with aya-build, which adds the BTF link flags itself.
/// With AYA_BUILD_SKIP=1 (e.g. `cargo check` where bpf-linker is absent) an empty stub object is
/// written instead, and loading it at run time fails with a clear error.
fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("rmap-trace");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        fs::write(&object, b"").with_context(|| format!("writing stub {}", object.display()))?;
        return Ok(());
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let ebpf_dir = manifest_dir.join("../rmap-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("rmap-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rmap-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
