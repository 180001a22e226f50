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
}

/// Picks the targets given `lookup(function) -> Some(symbol)` for the functions that exist.
pub fn resolve(lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<Target>, String> {
    let find = |w: Walker| lookup(w.function()).map(|symbol| Target { walker: w, symbol });
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

    #[test]
    fn prefers_per_type_walkers() {
        let t = resolve(have(&[
            "rmap_walk",
            "rmap_walk_ksm",
            "rmap_walk_anon.isra.0",
            "rmap_walk_file",
        ]))
        .unwrap();
        let got: Vec<_> = t.iter().map(|t| (t.walker, t.symbol.as_str())).collect();
        assert_eq!(
            got,
            [
                (Walker::Ksm, "rmap_walk_ksm"),
                (Walker::Anon, "rmap_walk_anon.isra.0"),
                (Walker::File, "rmap_walk_file")
            ]
        );
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
