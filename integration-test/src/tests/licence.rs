//! The embedded eBPF object's `license` section is one the kernel accepts as GPL-compatible
//! (else the verifier refuses `bpf_probe_read_kernel`), and rmap-ebpf's crate metadata says
//! the same licence in SPDX. Reads the object only: no privileges needed.
use object::{Object as _, ObjectSection as _};
use rmap_user::attach::load::OBJECT;

/// The strings of the kernel's `license_is_gpl_compatible()` (include/linux/license.h).
const GPL_COMPATIBLE: [&str; 6] = [
    "GPL",
    "GPL v2",
    "GPL and additional rights",
    "Dual BSD/GPL",
    "Dual MIT/GPL",
    "Dual MPL/GPL",
];

/// The SPDX expression our Cargo.toml gives for each object licence we use: the kernel's "GPL"
/// is GPL v2 (Documentation/process/license-rules.rst).
const SPDX: [(&str, &str); 1] = [("Dual MIT/GPL", "MIT OR GPL-2.0-only")];

#[test]
fn object_licence_matches_crate_metadata() {
    let elf = object::File::parse(OBJECT).expect("the embedded eBPF object is ELF");
    let section = elf.section_by_name("license").expect("a license section");
    let bytes = section.data().expect("license section data");
    let licence = std::ffi::CStr::from_bytes_with_nul(bytes)
        .expect("NUL-terminated licence")
        .to_str()
        .expect("UTF-8 licence");
    assert!(
        GPL_COMPATIBLE.contains(&licence),
        "{licence:?} is not GPL-compatible"
    );
    let spdx = SPDX
        .iter()
        .find(|(object, _)| *object == licence)
        .unwrap_or_else(|| panic!("no SPDX expression known for {licence:?}"))
        .1;
    let manifest = include_str!("../../../rmap-ebpf/Cargo.toml");
    let declared = format!("license = \"{spdx}\"");
    assert!(
        manifest.lines().any(|l| l == declared),
        "rmap-ebpf/Cargo.toml lacks `{declared}` for an object licensed {licence:?}"
    );
}
