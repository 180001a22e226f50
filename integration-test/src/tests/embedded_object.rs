//! The eBPF object as the tracer embeds it: its BTF kept (the loader needs it), its DWARF left
//! out by the build (nothing reads it at run time; aya would parse all its relocations). Reads
//! the object only: no privileges needed.
use object::{Object as _, ObjectSection as _};
use rmap_user::attach::load::OBJECT;

#[test]
fn btf_without_dwarf() {
    let elf = object::File::parse(OBJECT).expect("the embedded eBPF object is ELF");
    let names: Vec<&str> = elf.sections().filter_map(|s| s.name().ok()).collect();
    for needed in [".BTF", ".BTF.ext", "license", "maps"] {
        assert!(names.contains(&needed), "no {needed} in {names:?}");
    }
    let dwarf: Vec<&&str> = names.iter().filter(|n| n.contains(".debug_")).collect();
    assert!(dwarf.is_empty(), "DWARF sections left: {dwarf:?}");
    assert!(names.iter().any(|n| n.starts_with("fentry")), "{names:?}");
}
