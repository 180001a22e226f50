//! Purposes resolved from the host's real /proc/kallsyms (addresses are shown only to root).
use rmap_user::kernel::kallsyms::{Kallsyms, Purposes};

use crate::require_root;

const KALLSYMS: &str = "/proc/kallsyms";

/// Address of the first text symbol `name`, read here rather than through `Kallsyms`, so that
/// the test does not check the parser against itself.
fn address(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        let (addr, kind, sym) = (it.next()?, it.next()?, it.next()?);
        (matches!(kind, "t" | "T") && sym == name)
            .then(|| u64::from_str_radix(addr, 16).ok())
            .flatten()
    })
}

#[test]
fn purposes_from_real_kallsyms() {
    require_root();
    let text = std::fs::read_to_string(KALLSYMS).expect("kallsyms readable");
    let k = Kallsyms::parse(&text);
    let mut p = Purposes::new(Some(Kallsyms::load(KALLSYMS).expect("kallsyms readable as root")));
    let cases = [
        ("try_to_migrate_one", "migrate"),
        ("remove_migration_pte", "remove-migration"),
        ("try_to_unmap_one", "unmap"),
        ("folio_referenced_one", "referenced"),
        ("page_mkclean_one", "mkclean"),
    ];
    let addrs: Vec<(u64, &str)> = cases
        .iter()
        .map(|(sym, want)| {
            (
                k.clone_of(sym)
                    .and_then(|s| address(&text, s))
                    .unwrap_or_else(|| panic!("{sym} in kallsyms")),
                *want,
            )
        })
        .collect();
    for (addr, want) in addrs {
        assert_eq!(p.of(addr), want);
        // An address inside the function (not only its entry) resolves the same.
        assert_eq!(p.of(addr + 4), want);
    }
    // A callback with no special meaning is reported by its name.
    let other = address(&text, "schedule").expect("schedule in kallsyms");
    assert_eq!(p.of(other), "schedule");
    assert_eq!(p.of(0), "unknown");
}
