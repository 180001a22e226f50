//! What a guest's `rmap-trace workload` printed: its `workload: …` lines (each trigger's pages,
//! time and the walks it made) and the fields of its other `key value` lines.
use std::{collections::BTreeMap, str::FromStr};

/// The word after `key` among `words`, parsed (`… pid 42 calls 7 …`).
pub fn after<T: FromStr>(words: &[&str], key: &str) -> Option<T> {
    let at = words.iter().position(|w| *w == key)?;
    words.get(at + 1)?.parse().ok()
}

/// One `workload: TYPE LAYOUT vmas V mappings/page M triggered N by TRIGGER in X ns` line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub page_type: &'a str,
    pub mappings: Option<u64>,
    pub triggered: u64,
    pub trigger: Option<&'a str>,
    pub ns: u64,
}

impl Line<'_> {
    /// Walks the trigger made: two per page it migrated (the migration's unmap and the removal
    /// of its migration entries). N addresses of KSM pages mapped M times each are N / M pages
    /// (the other addresses find their page moved already). Other triggers (reclaim) make a
    /// number of walks no line tells.
    pub fn walks(&self) -> Option<u64> {
        if self.trigger != Some("move-pages") {
            return None;
        }
        let pages = if self.page_type == "ksm" {
            self.triggered.div_ceil(self.mappings?.max(1))
        } else {
            self.triggered
        };
        Some(2 * pages)
    }
}

/// The `workload:` lines of `text`, in order (a line missing its count or time is left out).
pub fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().filter_map(|l| {
        let words: Vec<&str> = l.strip_prefix("workload: ")?.split_whitespace().collect();
        let ns_at = words.iter().position(|w| *w == "ns")?;
        Some(Line {
            page_type: words.first()?,
            mappings: after(&words, "mappings/page"),
            triggered: after(&words, "triggered")?,
            trigger: words
                .iter()
                .position(|w| *w == "by")
                .and_then(|at| words.get(at + 1).copied()),
            ns: words.get(ns_at.checked_sub(1)?)?.parse().ok()?,
        })
    })
}

/// Walks the workload made per page type, from its lines whose trigger tells ([`Line::walks`]).
pub fn expected(text: &str) -> BTreeMap<&str, u64> {
    lines(text)
        .filter_map(|l| Some((l.page_type, l.walks()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_walks_a_migrated_page() {
        let w = "workload: ksm split vmas 300 mappings/page 150 triggered 300 by move-pages in 1 ns\n\
                 workload: anon split vmas 300 mappings/page 1 triggered 64 by move-pages in 1 ns\n\
                 workload: file split vmas 300 mappings/page 1 triggered 64 by reclaim in 1 ns\n";
        let e = super::expected(w);
        assert_eq!((e["ksm"], e["anon"]), (4, 128));
        assert!(
            !e.contains_key("file"),
            "only move-pages triggers make two walks a page"
        );
    }

    #[test]
    fn a_line_s_fields() {
        let l = super::lines("x\nworkload: anon split vmas 8 triggered 8 by reclaim in 99 ns\n")
            .next()
            .expect("a line");
        assert_eq!(
            (l.triggered, l.ns, l.mappings, l.trigger),
            (8, 99, None, Some("reclaim"))
        );
        assert_eq!(super::lines("workload: anon triggered 8\n").count(), 0);
        let words = ["pid", "42", "calls", "x"];
        assert_eq!(super::after::<u64>(&words, "pid"), Some(42));
        assert_eq!(super::after::<u64>(&words, "calls"), None);
    }
}
