//! The samples the guest sent, parsed, and the verdict: the ring buffer's mappings apart from
//! the rest of the tracer's resident memory, which must stay flat and under [`REST_LIMIT_KIB`].
/// The bound on what is not the ring buffer: 32 MiB.
pub const REST_LIMIT_KIB: u64 = 32 * 1024;
/// "Flat": the rest grows by at most this much over the second half of the run (allocator
/// arenas and the bounded tables fill up early; a leak keeps growing).
pub const FLAT_KIB: u64 = 1024;

/// One `anon_inode:` mapping of the tracer.
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
    /// Max of the rest over the second half minus the rest at its start.
    pub late_growth_kib: u64,
    pub flat: bool,
    pub under_limit: bool,
    pub scrapes_failed: usize,
}

pub fn verdict(samples: &[Sample]) -> Option<Verdict> {
    let rest: Vec<u64> = samples.iter().map(Sample::rest_kib).collect();
    let half = &rest[rest.len().checked_sub(1)? / 2..];
    let late_growth_kib = half.iter().max()?.saturating_sub(half[0]);
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
sample 10 21000 1 2 0 2
map anon_inode:bpf-map 4 4
map anon_inode:bpf-map 32772 32772
sample 20 21500 1 2 1 2
sample 30 21200 1 2 0 2
";

    #[test]
    fn parses_and_judges() {
        let s = parse(TEXT).expect("parses");
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].ring_kib(), 32_776);
        assert_eq!(s[0].rest_kib(), 0);
        assert_eq!(s[1].rest_kib(), 0);
        assert_eq!(s[2].rest_kib(), 21_500);
        let v = verdict(&s).expect("samples");
        assert_eq!(v.rest_max_kib, 21_500);
        assert_eq!(v.rest_min_kib, 0);
        // Second half: samples 1.. (rest 0, 21500, 21200): grew by 21500.
        assert_eq!(v.late_growth_kib, 21_500);
        assert!(!v.flat);
        assert!(v.under_limit);
        assert_eq!(v.scrapes_failed, 1);
        assert!(table(&s).contains("FAILED"));
    }

    #[test]
    fn flat_and_over_limit() {
        let text = "sample 0 40000 1 2 0 1\nsample 10 40100 1 2 0 1\nsample 20 40200 1 2 0 1\n";
        let v = verdict(&parse(text).expect("parses")).expect("samples");
        assert_eq!(v.late_growth_kib, 100);
        assert!(v.flat);
        assert!(!v.under_limit);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse("map x 1 2\n").is_err());
        assert!(parse("sample 0 x 1 2 0 0\n").is_err());
        assert!(verdict(&[]).is_none());
    }
}
