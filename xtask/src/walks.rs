//! What a guest's `rmap-trace workload` says it did: the walks its triggers caused, per page
//! type, read from its `workload: …` lines.
use std::collections::BTreeMap;

/// Walks the workload makes per page type: two per page it migrated (the migration's unmap
/// and the removal of its migration entries), from its `workload: TYPE LAYOUT vmas V
/// mappings/page M triggered N by move-pages` lines. N addresses of KSM pages mapped M times
/// each are N / M pages (the other addresses find their page moved already). Other triggers
/// (reclaim) make a number of walks no line tells, and are left out.
pub fn expected(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.strip_prefix("workload: ")?.split_whitespace().collect();
            let after = |key: &str| {
                words
                    .iter()
                    .position(|w| *w == key)
                    .and_then(|at| words.get(at + 1))
            };
            let n: u64 = after("triggered")?.parse().ok()?;
            let mappings: u64 = after("mappings/page")?.parse().ok()?;
            let ty = *words.first()?;
            let pages = if ty == "ksm" {
                n.div_ceil(mappings.max(1))
            } else {
                n
            };
            (after("by") == Some(&"move-pages")).then_some((ty, 2 * pages))
        })
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
}
