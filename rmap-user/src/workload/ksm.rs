//! KSM sysfs knobs: set aggressively for a run, restored on drop (also on error and signals,
//! which end the run through normal unwinding of the async main).
use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;

const KSM: &str = "/sys/kernel/mm/ksm";

fn read(knob: &str) -> anyhow::Result<u64> {
    let p = Path::new(KSM).join(knob);
    let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
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

pub struct KsmGuard {
    saved: Vec<(&'static str, u64)>,
    scans_at_start: std::cell::Cell<u64>,
}

impl KsmGuard {
    /// Scanning as fast as KSM can, with `max_page_sharing` mappings per KSM page if given.
    pub fn aggressive(max_page_sharing: Option<u64>) -> anyhow::Result<Self> {
        let saved = KNOBS
            .iter()
            .map(|k| Ok((*k, read(k)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let guard = Self {
            saved,
            scans_at_start: std::cell::Cell::new(0),
        };
        // max_page_sharing can only change while no KSM pages exist: unmerge first (only when
        // it must change: unmerging drops every other process's KSM sharing too).
        if let Some(want) = max_page_sharing.filter(|&w| read("max_page_sharing").is_ok_and(|cur| cur != w)) {
            write("run", 2)?;
            write("max_page_sharing", want)?;
        }
        write("sleep_millisecs", 0)?;
        write("pages_to_scan", 10_000)?;
        guard.resume()?;
        Ok(guard)
    }

    /// (Re)starts ksmd; `wait_merged` then waits for two full scans from now.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.scans_at_start.set(read("full_scans")?);
        write("run", 1)
    }

    /// Pages KSM shares now: `pages_shared` + `pages_sharing`.
    pub fn merged(&self) -> anyhow::Result<u64> {
        Ok(read("pages_shared")? + read("pages_sharing")?)
    }

    /// Waits until KSM has completed two full scans since the start and shares pages;
    /// `progress` gets the pages merged so far. Cancellable.
    pub fn wait_merged(&self, timeout: Duration, mut progress: impl FnMut(u64)) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let scans = read("full_scans")?;
            let sharing = read("pages_sharing")?;
            progress(sharing + read("pages_shared")?);
            if scans >= self.scans_at_start.get() + 2 && sharing > 0 {
                return Ok(());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "KSM did not merge within {timeout:?} (full_scans {scans}, pages_sharing {sharing})"
                );
            }
            super::cancel::sleep(Duration::from_millis(100))?;
        }
    }

    /// Mappings per KSM page: (`pages_sharing` + `pages_shared`) / `pages_shared`.
    pub fn mappings_per_page(&self) -> anyhow::Result<usize> {
        let shared = read("pages_shared")?.max(1);
        Ok(((read("pages_sharing")? + shared) / shared) as usize)
    }

    /// Stops ksmd (run=0 keeps merged pages): a scanning ksmd holds page locks, and migrating
    /// a KSM page it is scanning fails with EBUSY.
    pub fn pause(&self) -> anyhow::Result<()> {
        write("run", 0)
    }

    fn restore(&self) -> anyhow::Result<()> {
        // Unmerge only if max_page_sharing must change back, then restore (run last).
        for (k, v) in self.saved.iter().filter(|(k, _)| *k != "run") {
            if read(k)? != *v {
                if *k == "max_page_sharing" {
                    write("run", 2)?;
                }
                write(k, *v)?;
            }
        }
        let run = self
            .saved
            .iter()
            .find(|(k, _)| *k == "run")
            .map_or(0, |(_, v)| *v);
        write("run", run)
    }
}

impl Drop for KsmGuard {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("rmap-trace: error: restoring KSM settings: {e:#}");
        }
    }
}
