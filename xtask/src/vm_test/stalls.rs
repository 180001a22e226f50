//! The suite "stalls", on Debian's 6.1 kernel (fentry): who waited for walks (`--stalls`),
//! checked against victims that time their own calls. The workload starts a victim thread
//! (`--victims`) that mprotects a page of the split region in a loop while its pages are
//! migrated; a tracer with `--stalls` attributes their waits on the region's `anon_vma` lock
//! to the walks. Per victim, the attributed total must agree with the time the victim itself
//! measured beyond its uncontended median (within 10 % from 5,000 VMAs, KSM); anon walks make
//! fewer and shorter waits.
use serde_json::Value;

use super::{Checks, json};
use crate::guest::{self, GuestArgs, qemu::GuestRun};

/// Victim threads per workload. One: a second victim spins on the first one's `mmap_lock`
/// while the first works (`rwsem_optimistic_spin`, before any wait is traced), time that is
/// the other victim's and no walk's, yet in the second's own measure.
const VICTIMS: u32 = 1;
/// Largest relative difference between attributed and measured waiting (KSM rows), from
/// 5,000 VMAs (`--suite stalls --pages 5000`, the size attribution is held to)…
const AGREEMENT: f64 = 0.10;
/// …and in the short run of `all` (2,000 VMAs), whose waits are shorter, so that what each
/// slow change costs beyond its wait (the change itself under contention, wakeups) weighs more.
const AGREEMENT_SHORT: f64 = 0.25;
/// Pages from which [`AGREEMENT`] applies.
const FULL_PAGES: u32 = 5000;

fn script(pages: u32) -> String {
    format!(
        r#"attached() {{ for i in $(seq 300); do grep -q '^attach:' $1 && return 0; sleep 0.2; done; return 1; }}
for ty in ksm anon; do
  rmap-trace --attach-only --attach-mode fentry --stalls --interval 600 --json /tmp/$ty.json --csv /tmp/$ty.csv > /tmp/$ty.txt 2>&1 &
  T=$!
  attached /tmp/$ty.txt || echo "$ty tracer did not attach"
  extra=""; [ $ty = anon ] && extra="--move-batch 512"
  rmap-trace workload --types $ty --layouts split --pages {pages} --victims {VICTIMS} $extra > /tmp/w-$ty.txt 2>&1 &
  W=$!
  echo $W > /tmp/w-$ty.pid
  wait $W; echo "workload exit $?" >> /tmp/w-$ty.txt
  kill -INT $T; wait $T
  # The CSV's stall_waits column (the last: a comm quoted with a comma in it cannot shift it),
  # summed, as its lines are too many for the console: waits, and walks with at least one.
  awk -F, 'NR > 1 {{ w += $NF; if ($NF > 0) n++ }} END {{ print w + 0, n + 0 }}' /tmp/$ty.csv > /tmp/$ty.csvsum
  rm -f /tmp/$ty.csv
  for f in $ty.txt w-$ty.txt w-$ty.pid $ty.csvsum; do emit $f /tmp/$f; done
  emit $ty /tmp/$ty.json
done
"#
    )
}

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    let agreement = if pages >= FULL_PAGES {
        AGREEMENT
    } else {
        AGREEMENT_SHORT
    };
    let out = guest::boot(args, &script(pages), false)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    for line in &out.console {
        println!("guest: {line}");
    }
    for name in ["ksm.txt", "w-ksm.txt", "anon.txt", "w-anon.txt"] {
        if let Some(t) = out.outputs.get(name) {
            println!("--- guest output, {name} ---\n{}", t.trim_end());
        }
    }
    verify(&out, agreement, c)
}

fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}

/// What a victim measured (its `victim:` line of the workload's output).
#[derive(Debug)]
struct Measured {
    pid: u64,
    calls: u64,
    slow_calls: u64,
    excess_ns: u64,
}

fn measured(workload: &str) -> Vec<Measured> {
    workload
        .lines()
        .filter(|l| l.starts_with("victim:"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let field = |name: &str| crate::workload_out::after::<u64>(&words, name);
            Some(Measured {
                pid: field("pid")?,
                calls: field("calls")?,
                slow_calls: field("slow_calls")?,
                excess_ns: field("excess_ns")?,
            })
        })
        .collect()
}

/// Attributed waits of one victim thread: (waits, total ns).
fn attributed(doc: &Value, pid: u64) -> (u64, u64) {
    let threads = doc["stalls"]["victims"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["threads"].as_array().into_iter().flatten());
    let mut out = (0, 0);
    for t in threads.filter(|t| t["pid"].as_u64() == Some(pid)) {
        out.0 += t["waits"].as_u64().unwrap_or(0);
        out.1 += (t["total_wait_s"].as_f64().unwrap_or(0.0) * 1e9) as u64;
    }
    out
}

fn verify(run: &GuestRun, agreement: f64, c: &mut Checks) -> anyhow::Result<()> {
    for ty in ["ksm", "anon"] {
        let doc = json(run, ty)?;
        let workload = text(run, &format!("w-{ty}.txt"));
        let walker = text(run, &format!("w-{ty}.pid"));
        let victims = measured(workload);
        c.check(
            &format!("stalls {ty}: the workload ran with its victims"),
            workload.contains("workload exit 0") && victims.len() == VICTIMS as usize,
            format!("{} victim lines", victims.len()),
        );
        let walks = doc["stalls"]["walks"].as_array().cloned().unwrap_or_default();
        let foreign: Vec<&Value> = walks
            .iter()
            .filter(|w| w["walker_tgid"].as_u64().map(|t| t.to_string()) != Some(walker.to_string()))
            .collect();
        println!(
            "stalls {ty}: {} walks made victims wait; kernel {}",
            walks.len(),
            doc["stalls"]["kernel_counts"]
        );
        for v in &victims {
            let (waits, total) = attributed(&doc, v.pid);
            let diff = (total as f64 - v.excess_ns as f64).abs() / (v.excess_ns.max(1) as f64);
            println!(
                "stalls {ty}: victim {}: attributed {waits} waits, {:.3} ms; measured {} slow of {} calls, {:.3} ms beyond the median; difference {:.1} %",
                v.pid,
                total as f64 / 1e6,
                v.slow_calls,
                v.calls,
                v.excess_ns as f64 / 1e6,
                diff * 100.0
            );
            if ty == "ksm" {
                c.check(
                    &format!(
                        "stalls ksm: victim {}'s attributed wait agrees with its own measure within {:.0} %",
                        v.pid,
                        agreement * 100.0
                    ),
                    waits > 0 && diff <= agreement,
                    format!(
                        "{:.3} ms attributed, {:.3} ms measured, {:.1} %",
                        total as f64 / 1e6,
                        v.excess_ns as f64 / 1e6,
                        diff * 100.0
                    ),
                );
            }
        }
        csv_column(ty, &walks, text(run, &format!("{ty}.csvsum")), c);
        c.check(
            &format!("stalls {ty}: every attributed wait is for a walk of the workload"),
            foreign.is_empty(),
            format!(
                "{} walks by others: {:?}",
                foreign.len(),
                foreign.iter().take(3).collect::<Vec<_>>()
            ),
        );
    }
    shorter(&json(run, "ksm")?, &json(run, "anon")?, c);
    Ok(())
}

/// The CSV's `stall_waits` (counted on the walk in the kernel as each wait begins) against the
/// per-walk table (built from the waits' records as they end): the same waits and walks. Off
/// by a wait or two at most: a wait that begins as its walk ends may miss the walk's count.
/// (The table keeps 4,096 walks: these runs make at most a few hundred wait.)
fn csv_column(ty: &str, walks: &[Value], csvsum: &str, c: &mut Checks) {
    let mut f = csvsum.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
    let (csv_waits, csv_walks) = (f.next(), f.next());
    let table_waits: u64 = walks.iter().filter_map(|w| w["waits"].as_u64()).sum();
    let slack = (table_waits / 100).max(2);
    c.check(
        &format!("stalls {ty}: the CSV's stall_waits column adds up to the per-walk table"),
        table_waits > 0
            && csv_waits.is_some_and(|w| w.abs_diff(table_waits) <= slack)
            && csv_walks.is_some_and(|n| n.abs_diff(walks.len() as u64) <= slack),
        format!(
            "csv {csv_waits:?} waits on {csv_walks:?} walks; table {table_waits} waits on {} walks",
            walks.len()
        ),
    );
}

/// Anon walks make few and short waits: fewer waits, and less waiting, per walk waited for
/// than KSM walks over the same VMAs (per walk, not per wait: one anon wait may outlast its
/// walk behind the next ones of the same `move_pages` call: docs/usage.md, "--stalls").
fn shorter(ksm: &Value, anon: &Value, c: &mut Checks) {
    let per_walk = |d: &Value| {
        let walks = d["stalls"]["walks"].as_array().cloned().unwrap_or_default();
        let n = walks.len().max(1) as f64;
        let waits: u64 = walks.iter().filter_map(|w| w["waits"].as_u64()).sum();
        let waited: f64 = walks.iter().filter_map(|w| w["total_wait_s"].as_f64()).sum();
        (waits as f64 / n, waited / n)
    };
    let (k, a) = (per_walk(ksm), per_walk(anon));
    c.check(
        "stalls: anon walks make fewer and shorter waits than KSM walks",
        a.0 < k.0 && a.1 < k.1,
        format!(
            "per walk waited for: anon {:.1} waits, {:.3} ms; ksm {:.1} waits, {:.3} ms",
            a.0,
            a.1 * 1e3,
            k.0,
            k.1 * 1e3
        ),
    );
}
