//! The tables of `rmap-trace report` (one log) and `rmap-trace compare` (two logs side by side).
use std::collections::BTreeSet;

use hdrhistogram::Histogram;

use super::read::{self, Log};
use crate::{printable::printable, render::fmt_ns};

/// The statistics of a histogram, in the order of the tables.
pub const STATS: [&str; 6] = ["count", "p50", "p90", "p99", "p99.9", "max"];

fn stat(h: &Histogram<u64>, name: &str) -> u64 {
    match name {
        "count" => h.len(),
        "p50" => h.value_at_quantile(0.50),
        "p90" => h.value_at_quantile(0.90),
        "p99" => h.value_at_quantile(0.99),
        "p99.9" => h.value_at_quantile(0.999),
        _ => h.max(),
    }
}

fn shown(name: &str, v: u64) -> String {
    if name == "count" { v.to_string() } else { fmt_ns(v) }
}

/// Tags in the usual page type order, then any others.
fn ordered<'a>(tags: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let rank = |t: &str| {
        ["ksm", "anon", "file", "unknown"]
            .iter()
            .position(|k| *k == t)
            .unwrap_or(9)
    };
    let mut v: Vec<&String> = tags.collect::<BTreeSet<_>>().into_iter().collect();
    v.sort_by_key(|t| (rank(t), (*t).clone()));
    v
}

/// One table per log: count and percentiles per tag.
pub fn report_table(log: &Log) -> String {
    let mut out = format!("{} ({} intervals)\n", log.path, log.intervals);
    out.push_str(&format!(
        "{:<8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "type", "count", "p50", "p90", "p99", "p99.9", "max"
    ));
    for tag in ordered(log.tags.keys()) {
        let h = &log.tags[tag];
        out.push_str(&format!(
            "{:<8}",
            if tag.is_empty() {
                "-".into()
            } else {
                printable(tag)
            }
        ));
        for s in STATS {
            let w = if s == "count" { 8 } else { 10 };
            out.push_str(&format!(" {:>w$}", shown(s, stat(h, s))));
        }
        out.push('\n');
    }
    out
}

/// Why two logs cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file is unreadable or not a log.
    #[error(transparent)]
    Log(#[from] read::LogError),
    /// The logs have no page type in common (e.g. a ksm-only log against a file-only one).
    #[error("{a} and {b} have no page type in common ({a}: {ta}; {b}: {tb}): nothing to compare")]
    Disjoint {
        a: String,
        b: String,
        ta: String,
        tb: String,
    },
}

/// Side by side per tag and statistic, with B/A.
pub fn compare_table(a: &Log, b: &Log) -> Result<String, CompareError> {
    let common: Vec<&String> = a.tags.keys().filter(|t| b.tags.contains_key(*t)).collect();
    if common.is_empty() {
        let names = |l: &Log| {
            let tags: Vec<_> = l.tags.keys().map(|t| printable(t)).collect();
            tags.join(",")
        };
        return Err(CompareError::Disjoint {
            a: a.path.clone(),
            b: b.path.clone(),
            ta: names(a),
            tb: names(b),
        });
    }
    let mut out = format!("A = {}\nB = {}\n", a.path, b.path);
    out.push_str(&format!(
        "{:<8} {:<6} {:>12} {:>12} {:>10}\n",
        "type", "stat", "A", "B", "B/A"
    ));
    for tag in ordered(a.tags.keys().chain(b.tags.keys())) {
        let (ha, hb) = (a.tags.get(tag), b.tags.get(tag));
        for s in STATS {
            let va = ha.map(|h| stat(h, s));
            let vb = hb.map(|h| stat(h, s));
            let ratio = match (va, vb) {
                (Some(x), Some(y)) if x > 0 => format!("{:.3}", y as f64 / x as f64),
                _ => "-".to_string(),
            };
            out.push_str(&format!(
                "{:<8} {:<6} {:>12} {:>12} {:>10}\n",
                if s == "count" { printable(tag) } else { "".into() },
                s,
                va.map_or("-".into(), |v| shown(s, v)),
                vb.map_or("-".into(), |v| shown(s, v)),
                ratio
            ));
        }
    }
    Ok(out)
}
