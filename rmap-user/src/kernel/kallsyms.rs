//! Symbolization of `rwc->rmap_one` through /proc/kallsyms, which names why a walk ran.
use std::{fs, path::Path};

// Looked up for every walk record: see `top`.
use foldhash::HashMap;

/// Errors reading kallsyms.
#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// All addresses are zero: `kptr_restrict` hides them (run as root or set `kernel.kptr_restrict=0`).
    #[error("{0} shows no addresses (kernel.kptr_restrict hides them; run as root)")]
    Hidden(String),
}

/// Text symbols, sorted by address. Kept for the whole run (purposes of new callbacks), so
/// compact: the names in one string and 16 bytes per symbol, a few MiB for a distribution
/// kernel's 100,000 symbols, where a `String` per name and a by-name map would take over
/// 20 MiB of the tracer's memory bound.
pub struct Kallsyms {
    names: String,
    /// Address, and the name's start and length in `names`.
    syms: Vec<(u64, u32, u32)>,
}

impl Kallsyms {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KallsymsError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| KallsymsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let k = Self::parse(&text);
        if k.syms.iter().all(|(a, _, _)| *a == 0) {
            return Err(KallsymsError::Hidden(path.display().to_string()));
        }
        Ok(k)
    }

    /// Parses `address type name [module]` lines, keeping text (t/T) symbols.
    pub fn parse(text: &str) -> Self {
        let mut names = String::new();
        let mut syms = Vec::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            // Offsets fit in u32: /proc/kallsyms is tens of MiB at most.
            syms.push((addr, names.len() as u32, name.len() as u32));
            names.push_str(name);
        }
        // By address, then name: of aliases at one address, `symbolize` names the last.
        let name = |&(_, start, len): &(u64, u32, u32)| &names[start as usize..(start + len) as usize];
        syms.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| name(x).cmp(name(y))));
        names.shrink_to_fit();
        syms.shrink_to_fit();
        Self { names, syms }
    }

    fn name(&self, (_, start, len): (u64, u32, u32)) -> &str {
        &self.names[start as usize..(start + len) as usize]
    }

    /// Bytes the table holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.names.capacity() + self.syms.capacity() * size_of::<(u64, u32, u32)>()
    }

    /// The function containing `addr` (nearest symbol at or below it).
    pub fn symbolize(&self, addr: u64) -> Option<&str> {
        let i = self.syms.partition_point(|(a, _, _)| *a <= addr);
        i.checked_sub(1).map(|i| self.name(self.syms[i]))
    }

    /// The address of text symbol `name` (a scan: called once, when loading).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| self.name(**s) == name).map(|s| s.0)
    }

    /// The probe-able symbol for `name`: itself, or its first compiler clone that is an entry
    /// point (a `.cold` part is a block split out of the function: probing it counts nothing).
    /// A scan: called a few times, when attaching.
    pub fn clone_of(&self, name: &str) -> Option<&str> {
        let names = || self.syms.iter().map(|s| self.name(*s));
        if let Some(n) = names().find(|n| *n == name) {
            return Some(n);
        }
        let prefix = format!("{name}.");
        names().find(|n| n.starts_with(&prefix) && !n.split('.').any(|s| s == "cold"))
    }
}

/// Why a walk ran, from its `rmap_one` callback (mm/rmap.c, mm/migrate.c).
pub fn purpose_of(symbol: &str) -> &str {
    // Strip compiler clone suffixes such as ".isra.0".
    let base = symbol.split('.').next().unwrap_or(symbol);
    match base {
        "try_to_migrate_one" => "migrate",
        "remove_migration_pte" => "remove-migration",
        "try_to_unmap_one" => "unmap",
        "folio_referenced_one" | "page_referenced_one" => "referenced",
        "page_mkclean_one" => "mkclean",
        "page_idle_clear_pte_refs_one" => "idle",
        "folio_lock_anon_vma_read" => "lock",
        _ => symbol,
    }
}

/// Caches purposes by callback address (a walk rate of thousands per second hits few callbacks).
/// Bounded: the kernel has a few dozen `rmap_one` callbacks; past [`PURPOSES_CAP`] distinct
/// addresses (garbage read from a freed `rwc`) the rest are "other", uncached.
pub const PURPOSES_CAP: usize = 1024;

pub struct Purposes {
    kallsyms: Option<Kallsyms>,
    cache: HashMap<u64, String>,
}

impl Purposes {
    pub fn new(kallsyms: Option<Kallsyms>) -> Self {
        Self {
            kallsyms,
            cache: HashMap::default(),
        }
    }

    /// Bytes the symbols and the cached purposes hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        let cached: usize = self.cache.values().map(String::capacity).sum();
        self.kallsyms.as_ref().map_or(0, Kallsyms::heap_bytes)
            + self.cache.capacity() * size_of::<(u64, String)>()
            + cached
    }

    pub fn of(&mut self, rmap_one: u64) -> &str {
        if self.cache.len() >= PURPOSES_CAP && !self.cache.contains_key(&rmap_one) {
            return "other";
        }
        let kallsyms = &self.kallsyms;
        self.cache
            .entry(rmap_one)
            .or_insert_with(|| match (rmap_one, kallsyms) {
                (0, _) => "unknown".to_string(),
                (addr, Some(k)) => k
                    .symbolize(addr)
                    .map_or_else(|| format!("{addr:#x}"), |s| purpose_of(s).to_string()),
                (addr, None) => format!("{addr:#x}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_nearest() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t foo.isra.0\nffffffff81000200 D data\nffffffff81000300 T bar [mod]\n",
        );
        assert_eq!(k.symbolize(0xffff_ffff_8100_0150), Some("foo.isra.0"));
        assert_eq!(k.symbolize(0xffff_ffff_8100_0350), Some("bar"));
        assert_eq!(k.symbolize(0x10), None);
        assert_eq!(k.clone_of("foo"), Some("foo.isra.0"));
        assert_eq!(k.clone_of("bar"), Some("bar"));
        assert_eq!(k.clone_of("data"), None);
        assert_eq!(purpose_of("try_to_migrate_one.isra.0"), "migrate");
        assert_eq!(k.address_of("_stext"), Some(0xffff_ffff_8100_0000));
        assert_eq!(k.address_of("data"), None);
    }

    #[test]
    fn hidden_addresses_are_an_error() {
        let dir = std::env::temp_dir().join(format!("rmap-kallsyms-{}", std::process::id()));
        fs::write(&dir, "0000000000000000 T _stext\n0000000000000000 t foo\n").unwrap();
        let err = Kallsyms::load(&dir).err().expect("hidden addresses rejected");
        fs::remove_file(&dir).unwrap();
        assert!(matches!(err, KallsymsError::Hidden(_)));
    }
}
