//! KSM sysfs knobs: set aggressively for a run and put back when the guard drops (also on
//! error and signals, which end the run through normal unwinding of the async main), or by the
//! next run after a SIGKILL (the originals are in the host-state journal before the first
//! write). The knobs are host-wide: every other KSM user on the host sees them too.
use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::host_state::{self, Change, Token};

const KSM: &str = "/sys/kernel/mm/ksm";

fn read(knob: &str) -> anyhow::Result<u64> {
    read_file(&Path::new(KSM).join(knob))
}

fn read_file(p: &Path) -> anyhow::Result<u64> {
    let s = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    s.trim()
        .parse()
        .with_context(|| format!("parsing {}", p.display()))
}

fn write(knob: &str, v: u64) -> anyhow::Result<()> {
    let p = Path::new(KSM).join(knob);
    fs::write(&p, v.to_string()).with_context(|| format!("writing {v} to {}", p.display()))
}

/// The knobs we change, with their values before.
const KNOBS: [&str; 4] = ["max_page_sharing", "sleep_millisecs", "pages_to_scan", "run"];

/// Pages of this process merged by KSM: mm/ksm.c counts them per mm (`ksm_merging_pages`,
/// in `/proc/<pid>/ksm_merging_pages` where the kernel has it). Elsewhere, KSM's host-wide
/// counts of the pages it merged (`pages_shared` KSM pages mapped by `pages_sharing` more):
/// the same number while no other process merges, which a run without `--force-ksm` has made
/// sure of.
pub fn own_merged() -> anyhow::Result<u64> {
    let own = Path::new("/proc/self/ksm_merging_pages");
    if own.exists() {
        return read_file(own);
    }
    Ok(read("pages_shared")? + read("pages_sharing")?)
}

/// Other processes with KSM-merged pages now: (pid, pages).
pub fn other_users() -> anyhow::Result<Vec<(u32, u64)>> {
    if !Path::new("/proc/self/ksm_merging_pages").exists() {
        anyhow::bail!(
            "this kernel has no /proc/<pid>/ksm_merging_pages (Linux < 5.19), so other KSM users cannot be seen: pass --force-ksm to change KSM's settings anyway"
        );
    }
    users_in(Path::new("/proc"), std::process::id())
}

/// Processes under `proc_root` other than `me` with KSM-merged pages.
fn users_in(proc_root: &Path, me: u32) -> anyhow::Result<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    let dir = fs::read_dir(proc_root).with_context(|| format!("reading {}", proc_root.display()))?;
    for e in dir.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // A process that exits meanwhile has no file any more: not a user.
        if let Ok(pages) = read_file(&e.path().join("ksm_merging_pages"))
            && pid != me
            && pages > 0
        {
            out.push((pid, pages));
        }
    }
    out.sort_unstable();
    Ok(out)
}

pub struct KsmGuard {
    token: Token,
    scans_at_start: std::cell::Cell<u64>,
}

impl KsmGuard {
    /// Scanning as fast as KSM can, with `max_page_sharing` mappings per KSM page if given.
    /// Refused while other processes have KSM-merged pages (unless `force`) or another
    /// rmap-trace has KSM's settings changed.
    pub fn aggressive(max_page_sharing: Option<u64>, force: bool) -> anyhow::Result<Self> {
        if let Some(pid) = host_state::live_ksm_owner(Path::new(host_state::DIR), Path::new("/proc"))? {
            anyhow::bail!(
                "another rmap-trace (pid {pid}) has changed KSM's settings; run again when it has ended"
            );
        }
        if !force {
            let others = other_users()?;
            if !others.is_empty() {
                let list: Vec<String> = others
                    .iter()
                    .take(5)
                    .map(|(p, n)| format!("pid {p}: {n} pages"))
                    .collect();
                anyhow::bail!(
                    "KSM is in use by {} other process(es) ({}{}); the benchmark changes KSM's settings for the whole host (pausing ksmd, and with --max-page-sharing unmerging every KSM page): pass --force-ksm to run anyway",
                    others.len(),
                    list.join(", "),
                    if others.len() > 5 { ", …" } else { "" }
                );
            }
        }
        let saved = KNOBS
            .iter()
            .map(|k| Ok(((*k).to_string(), read(k)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let token = host_state::record(Change::Ksm {
            dir: KSM.into(),
            knobs: saved.clone(),
        })
        .context("writing the host-state journal before changing KSM")?;
        let guard = Self {
            token,
            scans_at_start: std::cell::Cell::new(0),
        };
        let was = |k: &str| saved.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
        let mut changed = Vec::new();
        // max_page_sharing can only change while no KSM pages exist: unmerge first (only when
        // it must change: unmerging drops every other process's KSM sharing too).
        if let Some(want) = max_page_sharing.filter(|&w| w != was("max_page_sharing")) {
            write("run", 2)?;
            write("max_page_sharing", want)?;
            changed.push(format!(
                "run=2 (every KSM page on the host unmerged), max_page_sharing {}→{want}",
                was("max_page_sharing")
            ));
        }
        write("sleep_millisecs", 0)?;
        write("pages_to_scan", 10_000)?;
        changed.push(format!(
            "sleep_millisecs {}→0, pages_to_scan {}→10000, run {}→1",
            was("sleep_millisecs"),
            was("pages_to_scan"),
            was("run")
        ));
        eprintln!(
            "rmap-trace: KSM settings changed (host-wide): {}",
            changed.join(", ")
        );
        guard.resume()?;
        Ok(guard)
    }

    /// (Re)starts ksmd; `wait_merged` then waits for two full scans from now.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.scans_at_start.set(read("full_scans")?);
        write("run", 1)
    }

    /// Waits until KSM has completed two full scans since the start and merged pages of this
    /// process; `progress` gets its pages merged so far. Cancellable.
    pub fn wait_merged(&self, timeout: Duration, mut progress: impl FnMut(u64)) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let scans = read("full_scans")?;
            let merged = own_merged()?;
            progress(merged);
            if scans >= self.scans_at_start.get() + 2 && merged > 0 {
                return Ok(());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "KSM did not merge within {timeout:?} (full_scans {scans}, pages of this process merged {merged})"
                );
            }
            super::cancel::sleep(Duration::from_millis(100))?;
        }
    }

    /// Mappings per KSM page of this process's `merged` identical pages: KSM makes
    /// ceil(merged / `max_page_sharing`) KSM pages of them (mm/ksm.c, `stable_node` chains).
    pub fn mappings_per_page(&self) -> anyhow::Result<usize> {
        let merged = own_merged()?.max(1);
        Ok(mappings_per_page(merged, read("max_page_sharing")?))
    }

    /// Stops ksmd (run=0 keeps merged pages): a scanning ksmd holds page locks, and migrating
    /// a KSM page it is scanning fails with EBUSY.
    pub fn pause(&self) -> anyhow::Result<()> {
        write("run", 0)
    }
}

/// Mean mappings per KSM page of `merged` identical pages.
fn mappings_per_page(merged: u64, max_page_sharing: u64) -> usize {
    let ksm_pages = merged.div_ceil(max_page_sharing.max(1)).max(1);
    (merged / ksm_pages) as usize
}

impl Drop for KsmGuard {
    fn drop(&mut self) {
        match host_state::undo(&self.token) {
            Ok(done) if done.is_empty() => {
                eprintln!("rmap-trace: KSM settings restored (nothing had changed)");
            }
            Ok(done) => eprintln!("rmap-trace: KSM settings restored: {done}"),
            Err(errors) => eprintln!(
                "rmap-trace: error: restoring KSM settings: {} (run `rmap-trace restore`)",
                errors.join("; ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Only other processes with merged pages count: not this one (its previous scenario's
    /// pages), not processes with none, not /proc entries that are not processes.
    #[test]
    fn other_users_are_other_processes_with_merged_pages() {
        let root = std::env::temp_dir().join(format!("rmap-ksm-users-{}", std::process::id()));
        for (name, pages) in [("10", "0"), ("11", "5"), ("12", "7"), ("self", "9")] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("ksm_merging_pages"), format!("{pages}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("13")).unwrap();
        let users = super::users_in(&root, 12).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(users, vec![(11, 5)]);
    }

    #[test]
    fn mappings_per_page() {
        assert_eq!(super::mappings_per_page(2000, 256), 250);
        assert_eq!(super::mappings_per_page(2000, 2), 2);
        assert_eq!(super::mappings_per_page(100, 256), 100);
        assert_eq!(super::mappings_per_page(1, 0), 1);
    }
}
