//! The unfiltered tracer's CSV records, read by column name (rmap-user's `export::csv::HEADER`).
use std::collections::BTreeMap;

/// One walk record.
pub struct Walk<'a> {
    pub ty: &'a str,
    pub tgid: &'a str,
    pub comm: &'a str,
    pub process: &'a str,
    pub kthread: bool,
    pub cgroup_id: &'a str,
    pub cgroup: &'a str,
}

/// The records of a CSV with rmap-trace's header; none when the header lacks a column.
pub fn parse(csv: &str) -> Vec<Walk<'_>> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let col: BTreeMap<&str, usize> = header.split(',').enumerate().map(|(i, n)| (n, i)).collect();
    let names = ["page_type", "tgid", "comm", "process", "kthread", "cgroup_id", "cgroup"];
    let Some(idx) = names.iter().map(|n| col.get(n).copied()).collect::<Option<Vec<usize>>>() else {
        return Vec::new();
    };
    // JVM thread names have no comma, so no field here is quoted.
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() == col.len())
        .map(|f| Walk {
            ty: f[idx[0]],
            tgid: f[idx[1]],
            comm: f[idx[2]],
            process: f[idx[3]],
            kthread: f[idx[4]] == "1",
            cgroup_id: f[idx[5]],
            cgroup: f[idx[6]],
        })
        .collect()
}

/// How many records of `walks` pass `keep`.
pub fn count(walks: &[Walk], keep: impl Fn(&Walk) -> bool) -> u64 {
    walks.iter().filter(|w| keep(w)).count() as u64
}

/// Records per key, most first, as `key: n` lines (printed with the checks).
pub fn tally<'a, 'b: 'a>(walks: impl IntoIterator<Item = &'a Walk<'b>>, key: impl Fn(&Walk) -> String) -> String {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for w in walks {
        *m.entry(key(w)).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join("; ")
}
