//! Which walker functions to hook in this kernel.
//!
//! `rmap_walk()` (mm/rmap.c) dispatches to `rmap_walk_ksm` (mm/ksm.c), `rmap_walk_anon` and
//! `rmap_walk_file` (≥ 6.16 a wrapper of `__rmap_walk_file`). The per-type walkers are preferred:
//! in Debian's 6.1 `rmap_walk` itself is inlined into `try_to_migrate`, so a probe on it misses
//! every migration walk, while the static walkers stay out of line.

/// A walker prototype family; it names the programs (`fentry_<suffix>`, `kprobe_<suffix>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walker {
    /// `rmap_walk_ksm(folio, rwc)`.
    Ksm,
    /// `rmap_walk_anon(folio, rwc, locked)`.
    Anon,
    /// `rmap_walk_file(folio, rwc, locked)`.
    File,
    /// `__rmap_walk_file(folio, mapping, pgoff, nr_pages, rwc, locked)`.
    FileInner,
    /// `rmap_walk(folio, rwc)`.
    Walk,
    /// `rmap_walk_locked(folio, rwc)`.
    WalkLocked,
}

impl Walker {
    pub const fn suffix(self) -> &'static str {
        match self {
            Walker::Ksm => "ksm",
            Walker::Anon => "anon",
            Walker::File => "file",
            Walker::FileInner => "file_inner",
            Walker::Walk => "walk",
            Walker::WalkLocked => "walk_locked",
        }
    }

    pub const fn function(self) -> &'static str {
        match self {
            Walker::Ksm => "rmap_walk_ksm",
            Walker::Anon => "rmap_walk_anon",
            Walker::File => "rmap_walk_file",
            Walker::FileInner => "__rmap_walk_file",
            Walker::Walk => "rmap_walk",
            Walker::WalkLocked => "rmap_walk_locked",
        }
    }

    pub const ALL: [Walker; 6] = [
        Walker::Ksm,
        Walker::Anon,
        Walker::File,
        Walker::FileInner,
        Walker::Walk,
        Walker::WalkLocked,
    ];
}

/// A function to hook: the walker family and the symbol to attach to (a compiler clone such as
/// `rmap_walk_anon.isra.0` for kprobes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub walker: Walker,
    pub symbol: String,
    /// Whether the registers at entry are the prototype's arguments: false for a clone whose
    /// layout may differ ([`layout_may_differ`]), whose walks are then counted and timed only.
    pub reads_args: bool,
}

/// gcc clone suffixes after which the argument registers may not be the prototype's:
/// `isra` (IPA-SRA removes, splits or passes by value), `constprop` (a constant argument is
/// dropped), `part` (partial inlining: the split-off body takes what the inlined head passes),
/// `cold` (a split-off cold block, not an entry). `.llvm.N` (a renamed local) keeps the layout.
const LAYOUT_CHANGING: [&str; 4] = ["isra", "constprop", "part", "cold"];

/// Whether `symbol` is a compiler clone whose argument layout may differ from its function's.
pub fn layout_may_differ(symbol: &str) -> bool {
    symbol.split('.').skip(1).any(|s| LAYOUT_CHANGING.contains(&s))
}

/// One line per target whose arguments are not read, for the attach report.
pub fn clone_notes(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| !t.reads_args)
        .map(|t| {
            format!(
                "note: {} is a compiler clone of {} whose arguments may differ: its walks are \
                 counted and timed only (no folio, purpose or lock state)",
                t.symbol,
                t.walker.function()
            )
        })
        .collect()
}

/// Picks the targets given `lookup(function) -> Some(symbol)` for the functions that exist.
pub fn resolve(lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<Target>, String> {
    let find = |w: Walker| {
        lookup(w.function()).map(|symbol| Target {
            walker: w,
            reads_args: !layout_may_differ(&symbol),
            symbol,
        })
    };
    let anon = find(Walker::Anon);
    let file = find(Walker::File).or_else(|| find(Walker::FileInner));
    if let (Some(anon), Some(file)) = (anon, file) {
        // KSM is optional (CONFIG_KSM=n kernels have no rmap_walk_ksm).
        return Ok(find(Walker::Ksm).into_iter().chain([anon, file]).collect());
    }
    match find(Walker::Walk) {
        Some(walk) => Ok([walk].into_iter().chain(find(Walker::WalkLocked)).collect()),
        None => Err("neither rmap_walk_anon/rmap_walk_file nor rmap_walk is a traceable function".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(names: &'static [&'static str]) -> impl Fn(&str) -> Option<String> {
        move |f| {
            names
                .iter()
                .find(|n| n.split('.').next() == Some(f))
                .map(std::string::ToString::to_string)
        }
    }

    /// Each target as (walker, symbol, whether its arguments are read).
    fn brief(t: &[Target]) -> Vec<(Walker, &str, bool)> {
        t.iter()
            .map(|t| (t.walker, t.symbol.as_str(), t.reads_args))
            .collect()
    }

    #[test]
    fn prefers_per_type_walkers() {
        let t = resolve(have(&[
            "rmap_walk",
            "rmap_walk_ksm",
            "rmap_walk_anon.isra.0",
            "rmap_walk_file",
        ]))
        .unwrap();
        assert_eq!(
            brief(&t),
            [
                (Walker::Ksm, "rmap_walk_ksm", true),
                (Walker::Anon, "rmap_walk_anon.isra.0", false),
                (Walker::File, "rmap_walk_file", true)
            ]
        );
    }

    /// A synthetic /proc/kallsyms: the anon walker exists only as an IPA-SRA clone (and a cold
    /// fragment), the file walker as a constprop clone, KSM's under its own name beside an
    /// `.llvm.` rename of something else.
    const KALLSYMS: &str = "ffffffff81200000 t rmap_walk_anon.cold
ffffffff81300000 t rmap_walk_anon.isra.0
ffffffff81300400 t rmap_walk_file.constprop.0
ffffffff81300800 t rmap_walk_ksm
ffffffff81300c00 t folio_referenced_one.llvm.1234
ffffffff81301000 T rmap_walk
";

    #[test]
    fn clones_in_kallsyms_are_counted_and_timed_only() {
        let k = crate::kernel::kallsyms::Kallsyms::parse(KALLSYMS);
        let t = resolve(|f| k.clone_of(f).map(String::from)).unwrap();
        assert_eq!(
            brief(&t),
            [
                (Walker::Ksm, "rmap_walk_ksm", true),
                (Walker::Anon, "rmap_walk_anon.isra.0", false),
                (Walker::File, "rmap_walk_file.constprop.0", false)
            ]
        );
        let notes = clone_notes(&t);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("note: rmap_walk_anon.isra.0 is a compiler clone of rmap_walk_anon"));
        assert!(!notes[0].contains('\n'));
        for (sym, differs) in [
            ("rmap_walk_anon.part.3", true),
            ("rmap_walk_anon.cold", true),
            ("rmap_walk_anon.llvm.99", false),
            ("rmap_walk_anon", false),
        ] {
            assert_eq!(layout_may_differ(sym), differs, "{sym}");
        }
    }

    #[test]
    fn newer_kernels_use_inner_file_walker() {
        let t = resolve(have(&["rmap_walk_anon", "__rmap_walk_file"])).unwrap();
        assert_eq!(
            t.iter().map(|t| t.walker).collect::<Vec<_>>(),
            [Walker::Anon, Walker::FileInner]
        );
    }

    #[test]
    fn falls_back_to_rmap_walk() {
        let t = resolve(have(&["rmap_walk", "rmap_walk_locked", "rmap_walk_ksm"])).unwrap();
        assert_eq!(
            t.iter().map(|t| t.walker).collect::<Vec<_>>(),
            [Walker::Walk, Walker::WalkLocked]
        );
        assert!(resolve(have(&["rmap_walk_ksm"])).is_err());
    }
}
