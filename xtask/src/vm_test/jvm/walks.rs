//! The unfiltered tracer's records, as the guest's `tally` counted them from rmap-trace's CSV
//! (its columns found by name): one line per distinct (`page_type`, tgid, comm, process,
//! kthread, `cgroup_id`, cgroup), its count first.
use std::collections::BTreeMap;

/// Records alike in everything the checks compare.
pub struct Walks<'a> {
    pub n: u64,
    pub ty: &'a str,
    pub tgid: &'a str,
    pub comm: &'a str,
    pub process: &'a str,
    pub kthread: bool,
    pub cgroup_id: &'a str,
    pub cgroup: &'a str,
}

/// The tally's lines; a malformed line is an error (the guest's awk and this must agree).
pub fn parse(tally: &str) -> anyhow::Result<Vec<Walks<'_>>> {
    tally
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // JVM thread names have no comma, so no field here is quoted.
            let f: Vec<&str> = l.split(',').collect();
            let [n, ty, tgid, comm, process, kthread, cgroup_id, cgroup] = f[..] else {
                anyhow::bail!("tally line {l:?}: not 8 fields");
            };
            Ok(Walks {
                n: n.parse().map_err(|e| anyhow::anyhow!("tally line {l:?}: {e}"))?,
                ty,
                tgid,
                comm,
                process,
                kthread: kthread == "1",
                cgroup_id,
                cgroup,
            })
        })
        .collect()
}

/// Records of `walks` passing `keep`.
pub fn count<'a, 'b: 'a>(
    walks: impl IntoIterator<Item = &'a Walks<'b>>,
    keep: impl Fn(&Walks) -> bool,
) -> u64 {
    walks.into_iter().filter(|w| keep(w)).map(|w| w.n).sum()
}

/// Records per key, most first, as `key: n` (printed with the checks).
pub fn tally<'a, 'b: 'a>(
    walks: impl IntoIterator<Item = &'a Walks<'b>>,
    key: impl Fn(&Walks) -> String,
) -> String {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for w in walks {
        *m.entry(key(w)).or_default() += w.n;
    }
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join("; ")
}
