//! The samples the guest sent, parsed, and the verdict: the ring buffer's mappings apart from
//! the rest of the tracer's resident memory, which must stay flat and under [`REST_LIMIT_KIB`].
/// The bound on what is not the ring buffer: 20 MiB.
pub const REST_LIMIT_KIB: u64 = 20 * 1024;
/// "Flat": the rest's level over the last quarter of the run (its median) is at most this much
/// above its level over the second quarter. Allocator arenas and the bounded tables fill up in
/// the first quarter; a leak keeps growing (a steady one of 2 MiB over the run shows as 1 MiB);
/// a transient (a burst's buffers, handed back within seconds) moves neither median, and its
/// peak is held to [`REST_LIMIT_KIB`] like every sample.
pub const FLAT_KIB: u64 = 1024;

/// One resident mapping of the tracer (`[anon]`: one without a name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub name: String,
    pub size_kib: u64,
    pub rss_kib: u64,
}

/// One sample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub seconds: u64,
    pub vm_rss_kib: u64,
    /// Anonymous and file-backed parts of `VmRSS` (/proc/PID/status). The `anon_inode:bpf-map`
    /// mappings count as file-backed (an anonymous inode is a file); the binary, in the
    /// initramfs (shmem), counts in neither.
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    /// busybox wget's exit status for the /metrics scrape taken just before.
    pub scrape_status: i32,
    /// `rmap_walks_total` lines in that scrape (page types that have walked).
    pub walk_series: u64,
    pub maps: Vec<Mapping>,
}

impl Sample {
    /// Resident kB of the BPF map mappings (the ring buffers: EVENTS and aya-log's).
    pub fn ring_kib(&self) -> u64 {
        self.maps
            .iter()
            .filter(|m| m.name.contains("bpf-map"))
            .map(|m| m.rss_kib)
            .sum()
    }

    pub fn rest_kib(&self) -> u64 {
        self.vm_rss_kib.saturating_sub(self.ring_kib())
    }
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut samples: Vec<Sample> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let bad = || anyhow::anyhow!("guest series, line {}: cannot parse {l:?}", i + 1);
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            ["sample", s, rss, anon, file, status, series] => samples.push(Sample {
                seconds: s.parse().map_err(|_| bad())?,
                vm_rss_kib: rss.parse().map_err(|_| bad())?,
                rss_anon_kib: anon.parse().map_err(|_| bad())?,
                rss_file_kib: file.parse().map_err(|_| bad())?,
                scrape_status: status.parse().map_err(|_| bad())?,
                walk_series: series.parse().map_err(|_| bad())?,
                maps: Vec::new(),
            }),
            ["map", name, size, rss] => samples.last_mut().ok_or_else(bad)?.maps.push(Mapping {
                name: (*name).to_string(),
                size_kib: size.parse().map_err(|_| bad())?,
                rss_kib: rss.parse().map_err(|_| bad())?,
            }),
            _ => return Err(bad()),
        }
    }
    Ok(samples)
}

/// What the run shows.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub rest_min_kib: u64,
    pub rest_max_kib: u64,
    /// The rest's median over the last quarter minus its median over the second quarter
    /// (0 when it fell).
    pub late_growth_kib: u64,
    pub flat: bool,
    pub under_limit: bool,
    pub scrapes_failed: usize,
}

pub fn verdict(samples: &[Sample]) -> Option<Verdict> {
    let rest: Vec<u64> = samples.iter().map(Sample::rest_kib).collect();
    let n = rest.len();
    if n == 0 {
        return None;
    }
    let early = median(&rest[n / 4..(n / 2).max(n / 4 + 1)])?;
    let late = median(&rest[n - (n / 4).max(1)..])?;
    let late_growth_kib = late.saturating_sub(early);
    let rest_max_kib = *rest.iter().max()?;
    Some(Verdict {
        rest_min_kib: *rest.iter().min()?,
        rest_max_kib,
        late_growth_kib,
        flat: late_growth_kib <= FLAT_KIB,
        under_limit: rest_max_kib < REST_LIMIT_KIB,
        scrapes_failed: samples.iter().filter(|s| s.scrape_status != 0).count(),
    })
}

/// The middle value (the upper one of an even count).
fn median(values: &[u64]) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Where a sample's resident memory is, by kind of mapping: (kind, kB), largest first.
pub fn breakdown(s: &Sample) -> Vec<(&'static str, u64)> {
    let mut kinds: Vec<(&'static str, u64)> = Vec::new();
    for m in &s.maps {
        let kind = match m.name.as_str() {
            n if n.contains("bpf-map") => "ring buffers (anon_inode:bpf-map)",
            n if n.ends_with("/rmap-trace") => "binary (text, rodata, data of rmap-trace)",
            "[heap]" => "heap ([heap]: glibc's main arena)",
            "[anon]" => "anonymous (other arenas, thread stacks, large allocations)",
            "[stack]" => "main thread's stack",
            _ => "other mappings",
        };
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some(k) => k.1 += m.rss_kib,
            None => kinds.push((kind, m.rss_kib)),
        }
    }
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    kinds
}

pub fn table(samples: &[Sample]) -> String {
    let mut s = format!(
        "{:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>6}\n",
        "t (s)", "VmRSS kB", "ring kB", "rest kB", "anon kB", "file kB", "scrape"
    );
    for x in samples {
        let scrape = if x.scrape_status == 0 { "ok" } else { "FAILED" };
        s += &format!(
            "{:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>6}\n",
            x.seconds,
            x.vm_rss_kib,
            x.ring_kib(),
            x.rest_kib(),
            x.rss_anon_kib,
            x.rss_file_kib,
            scrape
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "sample 0 20000 1 2 0 0
map anon_inode:bpf-map 4 4
map anon_inode:bpf-map 32772 32772
map anon_inode:[eventfd] 4 0
sample 10 19000 1 2 0 2
map anon_inode:bpf-map 4 4
map anon_inode:bpf-map 32772 32772
sample 20 19500 1 2 1 2
sample 30 19200 1 2 0 2
";

    #[test]
    fn parses_and_judges() {
        let s = parse(TEXT).expect("parses");
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].ring_kib(), 32_776);
        assert_eq!(s[0].rest_kib(), 0);
        assert_eq!(s[1].rest_kib(), 0);
        assert_eq!(s[2].rest_kib(), 19_500);
        let v = verdict(&s).expect("samples");
        assert_eq!(v.rest_max_kib, 19_500);
        assert_eq!(v.rest_min_kib, 0);
        // Second quarter: sample 1 (rest 0); last quarter: sample 3 (rest 19200).
        assert_eq!(v.late_growth_kib, 19_200);
        assert!(!v.flat);
        assert!(v.under_limit);
        assert_eq!(v.scrapes_failed, 1);
        assert!(table(&s).contains("FAILED"));
    }

    #[test]
    fn resident_memory_by_kind_of_mapping() {
        let text = "sample 0 30000 1 2 0 1
map anon_inode:bpf-map 32772 32772
map anon_inode:bpf-map 260 260
map /bin/rmap-trace 4000 3900
map /bin/rmap-trace 2600 2500
map [heap] 30000 12000
map [anon] 1000 700
map [anon] 800 600
map [stack] 132 60
map [vdso] 8 4
";
        let s = parse(text).expect("parses");
        assert_eq!(
            breakdown(&s[0]),
            [
                ("ring buffers (anon_inode:bpf-map)", 33_032),
                ("heap ([heap]: glibc's main arena)", 12_000),
                ("binary (text, rodata, data of rmap-trace)", 6_400),
                (
                    "anonymous (other arenas, thread stacks, large allocations)",
                    1_300
                ),
                ("main thread's stack", 60),
                ("other mappings", 4),
            ]
        );
    }

    /// 20 MiB is the bound: 20480 kB fails, one kB under passes.
    #[test]
    fn flat_and_over_limit() {
        let under = verdict(&parse("sample 0 20479 1 2 0 1\n").expect("parses")).expect("samples");
        assert!(under.under_limit);
        let at = verdict(&parse("sample 0 20480 1 2 0 1\n").expect("parses")).expect("samples");
        assert!(!at.under_limit);
        let text = "sample 0 40000 1 2 0 1\nsample 10 40100 1 2 0 1\nsample 20 40200 1 2 0 1\n";
        let v = verdict(&parse(text).expect("parses")).expect("samples");
        assert_eq!(v.late_growth_kib, 200);
        assert!(v.flat);
        assert!(!v.under_limit);
    }

    /// Ten minutes of samples every 10 s, the rest at `rest(i)` kB for sample `i`.
    fn run(rest: impl Fn(u64) -> u64) -> Verdict {
        let mut text = String::new();
        for i in 0..61 {
            text += &format!("sample {} {} 1 2 0 1\n", i * 10, rest(i));
        }
        verdict(&parse(&text).expect("parses")).expect("samples")
    }

    /// A transient of 1.5 MiB late in the run is no growth; a steady leak of 2.4 MiB over the
    /// run is, though each step is small.
    #[test]
    fn transients_are_flat_and_leaks_are_not() {
        let spike = run(|i| {
            if i == 52 || i == 53 {
                14_700
            } else {
                13_200 + i % 5 * 60
            }
        });
        assert!(spike.flat, "{spike:?}");
        assert!(spike.under_limit);
        let leak = run(|i| 13_000 + 40 * i);
        assert!(!leak.flat, "{leak:?}");
        assert!(leak.under_limit);
        assert!(run(|i| 14_000 - 10 * i).flat);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse("map x 1 2\n").is_err());
        assert!(parse("sample 0 x 1 2 0 0\n").is_err());
        assert!(verdict(&[]).is_none());
    }
}
