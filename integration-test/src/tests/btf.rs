//! Struct offsets from the host's BTF (/sys/kernel/btf/vmlinux: a kernel with BTF, as the
//! eBPF object needs). No root needed: the file is world-readable.
use rmap_user::kernel::btf::{BtfError, KernelBtf, VMLINUX_BTF};

fn host() -> KernelBtf {
    KernelBtf::open(VMLINUX_BTF).expect("host BTF at /sys/kernel/btf/vmlinux")
}

#[test]
fn folio_mapping_matches_page_mapping() {
    let btf = host();
    let folio = btf.member_offset("folio", "mapping").unwrap();
    // struct folio overlays struct page: the kernel asserts FOLIO_MATCH(mapping, mapping).
    let page = btf.member_offset("page", "mapping").unwrap();
    assert_eq!(folio, page);
    assert_eq!(folio % 8, 0);
    assert!(folio > 0 && folio < 64, "folio.mapping at {folio}");
}

#[test]
fn rwc_rmap_one_is_a_pointer_slot() {
    let off = host().offsets().unwrap().rwc_rmap_one;
    // `void *arg` comes first; rmap_one is a function pointer, so 8-aligned and after it.
    assert!(off >= 8 && off.is_multiple_of(8) && off < 64, "rmap_one at {off}");
}

#[test]
fn missing_things_are_errors() {
    let btf = host();
    assert!(matches!(
        btf.member_offset("folio", "no_such_member"),
        Err(BtfError::NoMember { .. })
    ));
    assert!(matches!(
        btf.member_offset("no_such_struct_xyz", "x"),
        Err(BtfError::NoStruct(_))
    ));
    assert!(btf.has_function("folio_referenced"));
    assert!(!btf.has_function("no_such_function_xyz"));
}
