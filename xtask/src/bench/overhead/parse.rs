//! What each run left: the workload's trigger time, and the walks each tracer saw (rmap-trace's
//! JSON, the tracefs text, bpftrace's histogram). Pure functions, unit-tested.
use std::collections::HashMap;

/// `workload: ... triggered N by T in X ns` → (pages triggered, trigger ns), of the first line.
pub fn workload_line(text: &str) -> Option<(u64, u64)> {
    crate::workload_out::lines(text)
        .next()
        .map(|l| (l.triggered, l.ns))
}

/// Walks rmap-trace saw: the sum of `types[].count` in its JSON.
pub fn rmap_trace_count(json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let rows = v["types"].as_array()?;
    Some(rows.iter().filter_map(|r| r["count"].as_u64()).sum())
}

/// tracefs text (`trace_pipe`): entry events `e_<fn>` and return events `r_<fn>` paired per
/// pid; returns (complete pairs, lost-event lines' total). A return without an entry of the
/// same pid (its entry lost) does not count.
pub fn tracefs_pairs(text: &str) -> (u64, u64) {
    let mut open: HashMap<&str, u64> = HashMap::new();
    let (mut pairs, mut lost) = (0, 0);
    for line in text.lines() {
        // "CPU:1 [LOST 123 EVENTS]"
        if let Some(i) = line.find("[LOST ") {
            lost += line[i + 6..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            continue;
        }
        // "   rmap-trace-123     [001] d..1.   12.345678: e_rmap_walk_anon: (...)"
        let Some(cpu) = line.find(" [") else { continue };
        let task = line[..cpu].trim();
        let Some(pid) = task.rsplit_once('-').map(|(_, p)| p) else {
            continue;
        };
        let Some(event) = line[cpu..]
            .split_whitespace()
            .find(|w| w.ends_with(':') && (w.starts_with("e_") || w.starts_with("r_")))
        else {
            continue;
        };
        if event.starts_with("e_") {
            *open.entry(pid).or_default() += 1;
        } else if let Some(n) = open.get_mut(pid).filter(|n| **n > 0) {
            *n -= 1;
            pairs += 1;
        }
    }
    (pairs, lost)
}

/// bpftrace's printed histograms (at SIGINT): the sum of the bucket counts.
/// `[1K, 2K)   12 |@@@@   |`.
pub fn bpftrace_hist_total(text: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines().map(str::trim_start) {
        if !line.starts_with('[') {
            continue;
        }
        let Some(close) = line.find([')', ']']) else {
            continue;
        };
        let count = line[close + 1..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(c) = count {
            total = Some(total.unwrap_or(0) + c);
        }
    }
    total
}

/// One loaded BPF program's run count and total run time, as `rmap-trace bpf-stats` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgStat {
    pub name: String,
    pub runs: u64,
    pub ns: u64,
}

/// `bpf-stats: id 12 name fentry_anon runs 8192 ns 1234567 ns/run 151` lines.
pub fn bpf_stats(text: &str) -> Vec<ProgStat> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.strip_prefix("bpf-stats: ")?.split_whitespace().collect();
            let after = |key: &str| w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1));
            Some(ProgStat {
                name: (*after("name")?).to_string(),
                runs: after("runs")?.parse().ok()?,
                ns: after("ns")?.parse().ok()?,
            })
        })
        .collect()
}

/// The gzip+base64 the guest sends the tracefs text as, decoded by the host's tools.
pub fn gunzip_base64(text: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("bash")
        .args(["-o", "pipefail", "-c", "base64 -d -i | gzip -dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    if !out.status.success() {
        anyhow::bail!("decoding the tracefs text failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_time_and_pages() {
        let t = "waiting\nworkload: anon split vmas 4096 mappings/page 1 triggered 4096 by move-pages in 123456 ns\nexit 0\n";
        assert_eq!(workload_line(t), Some((4096, 123_456)));
        assert_eq!(workload_line("workload: anon split triggered 3 by x\n"), None);
    }

    #[test]
    fn rmap_trace_json_counts() {
        let j = r#"{"types":[{"key":"ksm","count":5},{"key":"anon","count":7}]}"#;
        assert_eq!(rmap_trace_count(j), Some(12));
        assert_eq!(rmap_trace_count("{}"), None);
    }

    const TRACE: &str = "\
      rmap-trace-120     [000] d..1.    10.000001: e_rmap_walk_anon: (rmap_walk_anon+0x0/0x1a0)
   kworker/0:1-9       [001] d..1.    10.000002: e_rmap_walk_file: (rmap_walk_file+0x0/0x1a0)
      rmap-trace-120     [000] d..1.    10.000003: r_rmap_walk_anon: (try_to_migrate+0x5/0x9 <- rmap_walk_anon)
   kworker/0:1-9       [001] d..1.    10.000004: r_rmap_walk_file: (folio_referenced+0x5/0x9 <- rmap_walk_file)
      rmap-trace-121     [000] d..1.    10.000005: r_rmap_walk_anon: (x <- rmap_walk_anon)
CPU:1 [LOST 17 EVENTS]
      rmap-trace-120     [000] d..1.    10.000006: e_rmap_walk_anon_isra_0: (rmap_walk_anon.isra.0+0x0/0x1a0)
";

    #[test]
    fn tracefs_entries_and_returns_pair_per_pid() {
        // Two pairs; 121's return has no entry; 120's last entry has no return.
        assert_eq!(tracefs_pairs(TRACE), (2, 17));
    }

    const HIST: &str = "Attaching 4 probes...


@ns:
[512, 1K)              3 |@@                                                  |
[1K, 2K)              70 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[2K, 4K)               1 |                                                    |
[4M, 8M)               2 |@                                                   |

@start[121]: 1234
";

    #[test]
    fn bpf_stats_lines() {
        let t = "bpf-stats: id 7 name fentry_anon runs 10 ns 2000 ns/run 200\nnoise\nbpf-stats: id 8 name x runs y\n";
        assert_eq!(
            bpf_stats(t),
            [ProgStat {
                name: "fentry_anon".into(),
                runs: 10,
                ns: 2000
            }]
        );
    }

    #[test]
    fn bpftrace_hist_is_summed() {
        assert_eq!(bpftrace_hist_total(HIST), Some(76));
        assert_eq!(bpftrace_hist_total("Attaching 4 probes...\n"), None);
    }
}
