//! The export suite, in the guest on Debian's kernel (ours has no IP stack): a real Prometheus
//! (Debian's `prometheus` package, its binary and libraries copied into the initramfs) scrapes
//! `rmap-trace --attach-only --prometheus` on the guest's loopback while a workload walks;
//! its HTTP API's `histogram_quantile(0.99, …)` for ksm must fall in the same bucket as
//! rmap-trace's own p99. The interval log and the CSV written in the same run are compared with
//! the kernel's own counters and log2 histogram (counted apart from the latency histograms the
//! log is made of): the log decoded on the host by the Python `hdrhistogram` package.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Checks, counter, json, kernel_walks, row};
use crate::{
    build::workspace_root,
    cmd::status,
    guest::{self, GuestArgs, qemu::GuestRun},
};

const QUERY: &str =
    r#"histogram_quantile(0.99, sum by (le) (rmap_walk_duration_seconds_bucket{page_type="ksm"}))"#;
/// The endpoint's bucket bounds are powers of two in ns from 2^10 ns (rmap-user
/// `export::prom_hist`): 1.024 µs · 2^k.
const FIRST_BOUND_S: f64 = 1.024e-6;

pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Index of the bucket holding a quantile Prometheus interpolated (bucket k:
/// (2^(k-1), 2^k] · 1.024 µs, its upper bound included).
fn bucket(seconds: f64) -> i32 {
    (seconds / FIRST_BOUND_S).log2().ceil().max(0.0) as i32
}

/// Index of the bucket counting a walk of `seconds` (bucket k: [2^(k-1), 2^k) · 1.024 µs: the
/// kernel's buckets include their lower bound).
fn walk_bucket(seconds: f64) -> i32 {
    ((seconds / FIRST_BOUND_S).log2().floor() + 1.0).max(0.0) as i32
}

/// Debian's prometheus binary and the libraries it links, as initramfs entries.
pub(super) fn prometheus_files() -> anyhow::Result<Vec<(String, PathBuf)>> {
    super::debbin::files("prometheus", "usr/bin/prometheus")
}

/// The Python reader, installed from `PyPI` when missing.
fn python_hdrh() -> anyhow::Result<()> {
    let have = || {
        Command::new("python3")
            .args(["-c", "import hdrh.log"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have() {
        eprintln!("xtask: pip install hdrhistogram (the Python reader of interval logs)");
        let ok = status(Command::new("python3").args(["-m", "pip", "install", "-q", "hdrhistogram"]))?;
        if !ok || !have() {
            bail!("the Python hdrhistogram package is missing; run: python3 -m pip install hdrhistogram");
        }
    }
    Ok(())
}

fn script(pages: u32) -> String {
    let url = format!(
        "http://127.0.0.1:9090/api/v1/query?query={}",
        percent_encode(QUERY)
    );
    format!(
        r#"ifconfig lo 127.0.0.1 up
printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rmap\n    static_configs:\n      - targets: [127.0.0.1:9500]\n' > /tmp/prom.yml
rmap-trace --attach-only --comm rmap-trace --prometheus 9500 --hlog /tmp/live.hlog --csv /tmp/live.csv --json /tmp/live.json --interval 2 > /tmp/live.txt 2>&1 &
T=$!
for i in $(seq 300); do grep -q '^prometheus: serving' /tmp/live.txt && break; sleep 0.2; done
prometheus --config.file=/tmp/prom.yml --storage.tsdb.path=/tmp/prom --web.listen-address=127.0.0.1:9090 > /tmp/prom.log 2>&1 &
P=$!
for i in $(seq 600); do wget -qO- 'http://127.0.0.1:9090/api/v1/query?query=up' 2>/dev/null | grep -q '"1"\]' && break; sleep 0.5; done
echo "prometheus answered after $i polls" > /tmp/w.txt
rmap-trace workload --types ksm,anon --layouts split --pages {pages} >> /tmp/w.txt 2>&1
echo "workload exit $?" >> /tmp/w.txt
sleep 5
wget -qO /tmp/q.json '{url}'
echo "query exit $?" >> /tmp/w.txt
kill -TERM $T; wait $T; echo "tracer exit $?" >> /tmp/live.txt
kill $P; wait $P
ls -a /tmp | grep -e rmap-trace -e '[.]tmp$' > /tmp/tmp.ls
emit tmp.ls /tmp/tmp.ls
emit live.txt /tmp/live.txt
emit w.txt /tmp/w.txt
emit q /tmp/q.json
emit live /tmp/live.json
emit live.hlog /tmp/live.hlog
emit live.csv /tmp/live.csv
tail -5 /tmp/prom.log > /tmp/prom.tail; emit prom.tail /tmp/prom.tail
"#
    )
}

fn python_decode(hlog: &Path) -> anyhow::Result<Value> {
    let out = Command::new("python3")
        .arg(workspace_root().join("xtask/scripts/decode_hlog.py"))
        .arg(hlog)
        .output()
        .context("running python3")?;
    if !out.status.success() {
        bail!("decode_hlog.py: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    python_hdrh()?;
    let extra = prometheus_files()?;
    let debian = GuestArgs {
        patches: None,
        ..args.clone()
    };
    let run = guest::boot_with(&debian, &script(pages), false, &extra)?;
    eprintln!(
        "xtask: guest (export) finished in {:.1} s",
        run.elapsed.as_secs_f64()
    );
    for name in ["live.txt", "w.txt", "prom.tail"] {
        if let Some(t) = run.outputs.get(name) {
            println!("--- guest {name} ---\n{}", t.trim_end());
        }
    }
    let live = json(&run, "live")?;
    check_prometheus(&run, &live, c);
    check_csv(&run, &live, c);
    check_temp(&run, c);
    check_hlog(&run, &live, c)
}

/// Prometheus's p99 of ksm walks falls in the bucket of rmap-trace's own p99.
fn check_prometheus(run: &GuestRun, live: &Value, c: &mut Checks) {
    let own_p99 = row(&live["types"], "ksm")
        .and_then(|r| r["p99_ns"].as_u64())
        .unwrap_or(0);
    let q = json(run, "q").unwrap_or(Value::Null);
    let prom: f64 = q["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let own_s = own_p99 as f64 / 1e9;
    c.check(
        "prometheus: histogram_quantile(0.99) for ksm in rmap-trace's p99 bucket",
        q["status"] == "success" && own_p99 > 0 && prom.is_finite() && bucket(prom) == walk_bucket(own_s),
        format!(
            "prometheus {prom:.6} s (bucket {}), rmap-trace p99 {own_s:.6} s (bucket {})",
            bucket(prom),
            walk_bucket(own_s)
        ),
    );
}

/// The kernel's own log2 histogram of one page type (`kernel_counts.per_type[].log2_buckets`,
/// counted by the eBPF program beside the latency histograms), trailing zeros cut.
fn kernel_log2(doc: &Value, ty: &str) -> Vec<u64> {
    let mut b: Vec<u64> = doc["kernel_counts"]["per_type"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["type"] == ty))
        .and_then(|t| t["log2_buckets"].as_array())
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    while b.last() == Some(&0) {
        b.pop();
    }
    b
}

/// Counts per power of two of nanoseconds, trailing zeros cut.
fn log2_of(durations: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut b = Vec::new();
    for d in durations {
        let i = d.max(1).ilog2() as usize;
        if b.len() <= i {
            b.resize(i + 1, 0);
        }
        b[i] += 1;
    }
    b
}

/// The CSV has a header and one line per walk the kernel counted, each walk's duration in the
/// power of two where the kernel's log2 histogram counted it.
fn check_csv(run: &GuestRun, live: &Value, c: &mut Checks) {
    let csv = run
        .outputs
        .get("live.csv")
        .map(|t| t.trim_end().to_string())
        .unwrap_or_default();
    let header = csv.lines().next().unwrap_or("");
    let walks: u64 = ["ksm", "anon", "file", "unknown"]
        .iter()
        .map(|t| kernel_walks(live, t))
        .sum();
    let lines = csv.lines().skip(1).count() as u64;
    let drops = counter(live, "ringbuf_drops");
    c.check(
        "csv: a header and one line per walk the kernel counted",
        header.starts_with("start_ns,duration_ns,") && walks > 0 && lines == walks && drops == 0,
        format!("{lines} lines for {walks} walks in the kernel's counters, {drops} ring-buffer drops"),
    );
    for ty in ["ksm", "anon"] {
        let records = log2_of(csv.lines().skip(1).filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(3) == Some(&ty)).then(|| f.get(1)?.parse().ok())?
        }));
        let kernel = kernel_log2(live, ty);
        c.check(
            &format!("csv: {ty} durations per power of two = the kernel's log2 histogram"),
            !kernel.is_empty() && records == kernel,
            format!("csv {records:?}, kernel {kernel:?}"),
        );
    }
}

/// The Python hdrhistogram package decodes the interval log to the kernel's own counts: the
/// walks of each type and their durations per power of two (the log holds the latency
/// histograms' values; the log2 histogram is counted apart in the kernel); its max is the
/// summary's.
fn check_hlog(run: &GuestRun, live: &Value, c: &mut Checks) -> anyhow::Result<()> {
    let hlog = workspace_root().join("target/xtask/live.hlog");
    fs::create_dir_all(hlog.parent().context("target dir")?)?;
    let text = run
        .outputs
        .get("live.hlog")
        .context("the guest sent no interval log")?;
    fs::write(&hlog, format!("{}\n", text.trim_end()))?;
    let py = python_decode(&hlog)?;
    for ty in ["ksm", "anon"] {
        let max = row(&live["types"], ty)
            .and_then(|r| r["max_ns"].as_u64())
            .unwrap_or(0);
        let kernel = kernel_walks(live, ty);
        let (pc, pm) = (
            py["tags"][ty]["count"].as_u64().unwrap_or(u64::MAX),
            py["tags"][ty]["max"].as_u64().unwrap_or(u64::MAX),
        );
        let py_log2: Vec<u64> = py["tags"][ty]["log2"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let kernel_log2 = kernel_log2(live, ty);
        c.check(
            &format!("python hdrhistogram decodes the guest's log to the kernel's counts: {ty}"),
            kernel > 0 && pc == kernel && py_log2 == kernel_log2,
            format!(
                "python: {pc} walks, per power of two {py_log2:?}; kernel: {kernel} walks, {kernel_log2:?}"
            ),
        );
        // Equal up to the histogram's resolution (3 significant digits: 0.1%).
        c.check(
            &format!("python hdrhistogram: {ty} max = the summary's"),
            max > 0 && pm.abs_diff(max) as f64 <= max as f64 * 0.001,
            format!("python {pm} ns, rmap-trace {max} ns"),
        );
    }
    Ok(())
}

/// Nothing of rmap-trace is left in the guest's /tmp but the outputs: the JSON went through a
/// temporary file renamed over it.
fn check_temp(run: &GuestRun, c: &mut Checks) {
    let left = run.outputs.get("tmp.ls").map_or("<none>", |s| s.trim());
    c.check(
        "no temporary file left beside the outputs",
        run.outputs.contains_key("live") && left.is_empty(),
        format!("left: [{}]", left.replace('\n', " ")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_encoding() {
        assert_eq!(bucket(1e-6), 0);
        assert_eq!(bucket(1.5e-6), 1);
        assert_eq!(bucket(0.003), 12); // (2.097 ms, 4.194 ms]
        assert_eq!(bucket(0.004_194_304), 12);
        assert_eq!(walk_bucket(0.004_194_304), 13);
        assert_eq!(walk_bucket(0.003), 12);
        assert_eq!(walk_bucket(1e-6), 0);
        assert_eq!(percent_encode("a b{\"}"), "a%20b%7B%22%7D");
    }
}
