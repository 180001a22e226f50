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

use crate::{
    host_state::{self, Change, Token, allowed::KSM_KNOBS},
    printable::printable,
};

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

/// Pages of this process merged by KSM: mm/ksm.c counts them per mm (`ksm_merging_pages`,
/// in `/proc/<pid>/ksm_merging_pages` where the kernel has it). Elsewhere, KSM's host-wide
/// counts of the pages it merged (`pages_shared` KSM pages mapped by `pages_sharing` more):
/// the same number while no other process uses KSM, which a run without `--force-ksm` has made
/// sure of.
pub fn own_merged() -> anyhow::Result<u64> {
    let own = Path::new("/proc/self/ksm_merging_pages");
    if own.exists() {
        return read_file(own);
    }
    Ok(read("pages_shared")? + read("pages_sharing")?)
}

/// A process other than this one that KSM works for: it has merged pages, or areas KSM may
/// merge (`MADV_MERGEABLE`, or all of it with `PR_SET_MEMORY_MERGE`), which a ksmd at full
/// speed merges whatever the host's settings were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KsmUser {
    pub pid: u32,
    /// Its name, printable.
    pub name: String,
    pub merged: u64,
}

impl std::fmt::Display for KsmUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.merged > 0 {
            write!(f, "pid {} {}: {} pages merged", self.pid, self.name, self.merged)
        } else {
            write!(f, "pid {} {}: mergeable, none merged yet", self.pid, self.name)
        }
    }
}

/// Other processes that KSM works for now.
pub fn other_users() -> anyhow::Result<Vec<KsmUser>> {
    users_in(Path::new("/proc"), std::process::id())
}

/// Processes under `proc_root` other than `me` with KSM-merged pages or mergeable areas.
fn users_in(proc_root: &Path, me: u32) -> anyhow::Result<Vec<KsmUser>> {
    let mut out = Vec::new();
    let dir = fs::read_dir(proc_root).with_context(|| format!("reading {}", proc_root.display()))?;
    for e in dir.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Kernels without the per-process count show mergeable areas all the same (`smaps`):
        // such a process counts as a user, its merged pages unknown (0). A process that exits
        // meanwhile has no files any more: not a user.
        let merged = read_file(&e.path().join("ksm_merging_pages")).unwrap_or(0);
        if pid == me || (merged == 0 && !mergeable(&e.path())) {
            continue;
        }
        let name = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        out.push(KsmUser {
            pid,
            name: printable(name.trim_end()).into_owned(),
            merged,
        });
    }
    out.sort_unstable_by_key(|u| u.pid);
    Ok(out)
}

/// Whether the process at `dir` has areas KSM may merge: `ksm_stat` says so (Linux 6.10 on),
/// or else an area of its `smaps` has the `mg` flag (`VM_MERGEABLE`).
fn mergeable(dir: &Path) -> bool {
    let stat = fs::read_to_string(dir.join("ksm_stat")).unwrap_or_default();
    let flag = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim() == "yes")
    };
    match (flag("ksm_mergeable"), flag("ksm_merge_any")) {
        (Some(m), any) => m || any == Some(true),
        (None, _) => smaps_mergeable(&dir.join("smaps")),
    }
}

fn smaps_mergeable(smaps: &Path) -> bool {
    let Ok(f) = fs::File::open(smaps) else {
        return false;
    };
    std::io::BufRead::lines(std::io::BufReader::new(f))
        .map_while(Result::ok)
        .any(|l| {
            l.strip_prefix("VmFlags:")
                .is_some_and(|flags| flags.split_whitespace().any(|f| f == "mg"))
        })
}

/// What a run does to other KSM users, in words.
fn effect(max_page_sharing: bool) -> &'static str {
    if max_page_sharing {
        "--max-page-sharing first unmerges every KSM page on the host, then ksmd at full speed merges their mergeable pages too, which stay merged after the run"
    } else {
        "ksmd at full speed merges their mergeable pages too, which stay merged after the run, and pauses for them while the trigger runs"
    }
}

/// Refuses the run while other processes use KSM, unless `force`; says what a forced run
/// does to them.
fn check_users(max_page_sharing: bool, force: bool) -> anyhow::Result<()> {
    let others = other_users()?;
    if others.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = others.iter().take(5).map(ToString::to_string).collect();
    let users = format!(
        "{} other process(es) use KSM ({}{})",
        others.len(),
        list.join("; "),
        if others.len() > 5 { "; …" } else { "" }
    );
    let effect = effect(max_page_sharing);
    if force {
        eprintln!("rmap-trace: warning: --force-ksm: {users}: {effect}");
        return Ok(());
    }
    anyhow::bail!(
        "{users}; the ksm scenario changes KSM's settings for the whole host ({effect}): pass --force-ksm to run anyway"
    )
}

pub struct KsmGuard {
    token: Token,
    scans_at_start: std::cell::Cell<u64>,
    /// KSM's lock, released after the settings are put back (fields drop after `drop`).
    _owner: host_state::lock::Held,
}

impl KsmGuard {
    /// Scanning as fast as KSM can, with `max_page_sharing` mappings per KSM page if given.
    /// Refused while another rmap-trace owns KSM's settings, and while other processes use
    /// KSM (unless `force`).
    pub fn aggressive(max_page_sharing: Option<u64>, force: bool) -> anyhow::Result<Self> {
        // Held from before the originals are read until they are back.
        let owner = host_state::own_ksm()?;
        check_users(max_page_sharing.is_some(), force)?;
        let saved = KSM_KNOBS
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
            _owner: owner,
        };
        Self::set(&saved, max_page_sharing)?;
        guard.resume()?;
        Ok(guard)
    }

    /// Writes the aggressive settings (`saved`: the values before) and says what changed.
    fn set(saved: &[(String, u64)], max_page_sharing: Option<u64>) -> anyhow::Result<()> {
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
        Ok(())
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
    /// Other processes with merged pages count, and so do those with only mergeable areas
    /// (what `ksm_stat` says, or the `mg` flag in smaps where it says nothing); not this one
    /// (its previous scenario's pages), not processes with neither, not /proc entries that
    /// are not processes.
    #[test]
    fn other_users_are_other_processes_with_merged_or_mergeable_pages() {
        let root = std::env::temp_dir().join(format!("rmap-ksm-users-{}", std::process::id()));
        let stat =
            |mergeable: &str| format!("ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: {mergeable}\n");
        let files: &[(&str, &str, String)] = &[
            ("10", "ksm_merging_pages", "0".into()),
            ("10", "ksm_stat", stat("no")),
            ("11", "ksm_merging_pages", "5".into()),
            ("12", "ksm_merging_pages", "7".into()),
            ("self", "ksm_merging_pages", "9".into()),
            // QEMU with KSM off: guest RAM mergeable, nothing merged.
            ("14", "ksm_merging_pages", "0".into()),
            ("14", "ksm_stat", stat("yes")),
            ("14", "comm", "qemu-system-x86\n".into()),
            // An older kernel: ksm_stat without the flag, smaps says `mg`.
            ("15", "ksm_merging_pages", "0".into()),
            ("15", "ksm_stat", "ksm_rmap_items 0\n".into()),
            (
                "15",
                "smaps",
                "7f00-7f01 rw-p 0 0:0 0\nVmFlags: rd wr mr mw me ac mg \n".into(),
            ),
            ("16", "ksm_merging_pages", "0".into()),
            ("16", "ksm_stat", "ksm_rmap_items 0\n".into()),
            ("16", "smaps", "VmFlags: rd wr mr mw me ac \n".into()),
            // A kernel without the per-process count (before 5.19): smaps alone.
            ("17", "smaps", "VmFlags: rd wr mr mw me ac mg \n".into()),
            ("18", "smaps", "VmFlags: rd wr mr mw me ac \n".into()),
        ];
        for (pid, name, text) in files {
            std::fs::create_dir_all(root.join(pid)).unwrap();
            std::fs::write(root.join(pid).join(name), text).unwrap();
        }
        std::fs::create_dir_all(root.join("13")).unwrap();
        let users = super::users_in(&root, 12).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let shown: Vec<(u32, u64)> = users.iter().map(|u| (u.pid, u.merged)).collect();
        assert_eq!(shown, vec![(11, 5), (14, 0), (15, 0), (17, 0)]);
        assert_eq!(
            users[1].to_string(),
            "pid 14 qemu-system-x86: mergeable, none merged yet"
        );
    }

    #[test]
    fn mappings_per_page() {
        assert_eq!(super::mappings_per_page(2000, 256), 250);
        assert_eq!(super::mappings_per_page(2000, 2), 2);
        assert_eq!(super::mappings_per_page(100, 256), 100);
        assert_eq!(super::mappings_per_page(1, 0), 1);
    }
}
