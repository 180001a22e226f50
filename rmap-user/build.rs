use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

/// Builds the eBPF object (rmap-ebpf) with aya-build, which adds the BTF link flags itself,
/// using the toolchain pinned in `ebpf-toolchain.toml` (never whatever `nightly` is today).
/// With `AYA_BUILD_SKIP=1` (e.g. `cargo check` where bpf-linker is absent) an empty stub object is
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
    let pin_path = manifest_dir.join("../ebpf-toolchain.toml");
    println!("cargo:rerun-if-changed={}", pin_path.display());
    let channel = pinned_channel(&pin_path)?;
    let ebpf_dir = manifest_dir.join("../rmap-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("rmap-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rmap-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&channel),
    )?;
    strip_debug(&object)
}

/// Rewrites the object without its DWARF (`.debug_*` and their relocations): the linker needs
/// it to write the BTF, which stays, but nothing reads it at run time, and aya parses every
/// section's relocations when it loads the object: two thirds of the object, kept resident in
/// the tracer and parsed into its heap at each start.
fn strip_debug(path: &std::path::Path) -> anyhow::Result<()> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut elf = object::build::elf::Builder::read(data.as_slice())
        .with_context(|| format!("parsing {}", path.display()))?;
    for section in &mut elf.sections {
        let name = section.name.as_slice();
        section.delete = name.starts_with(b".debug_") || name.starts_with(b".rel.debug_");
    }
    elf.delete_orphans();
    // The linker names the sections from the symbols' string table; the writer wants a table
    // of its own for them.
    if !elf
        .sections
        .iter()
        .any(|s| matches!(s.data, object::build::elf::SectionData::SectionString))
    {
        let names = elf.sections.add();
        names.name = b".shstrtab".to_vec().into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = object::build::elf::SectionData::SectionString;
    }
    let mut out = Vec::new();
    elf.write(&mut out)
        .with_context(|| format!("rewriting {}", path.display()))?;
    fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// `[toolchain] channel` of ebpf-toolchain.toml.
fn pinned_channel(path: &std::path::Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pin: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    pin.get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .map(str::to_owned)
        .with_context(|| format!("{}: no [toolchain] channel", path.display()))
}
