//! Workloads that make the kernel walk reverse mappings, rebuilt from the KSM rmap series'
//! benchmark: a region split into one VMA per page (mprotect on every other page), made of
//! KSM-merged, private anonymous or shared file pages, or one page shared by forked children;
//! then a trigger (migration, cgroup reclaim, compaction). Every change to the host is held by
//! a guard (KSM knobs, cgroup, children, mappings, temp file) and undone on return, error or
//! cancellation (`cancel`).
pub mod cancel;
pub mod cgroup;
pub mod ksm;
pub mod migrate;
pub mod region;
pub mod sharers;
pub mod swap;
pub mod trigger;

use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rmap_common::PageType;
use serde::Serialize;

use self::{region::Region, trigger::Trigger};

/// How the pages are mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `pages` pages, one VMA each, all under one anon_vma (or one file mapping).
    Split,
    /// One page mapped by `sharers` forked children (and the parent).
    Sharers,
}

impl Layout {
    pub const fn name(self) -> &'static str {
        match self {
            Layout::Split => "split",
            Layout::Sharers => "sharers",
        }
    }
}

/// One scenario.
#[derive(Clone, Debug)]
pub struct Spec {
    pub ty: PageType,
    pub layout: Layout,
    pub pages: usize,
    pub sharers: usize,
    /// Mappings per KSM page (None: leave KSM's max_page_sharing as it is, 256 by default).
    pub max_page_sharing: Option<u64>,
    pub merge_timeout: Duration,
    pub trigger: Trigger,
}

/// What a scenario did.
#[derive(Clone, Debug, Serialize)]
pub struct Ran {
    pub page_type: &'static str,
    pub layout: &'static str,
    pub vmas: usize,
    /// Mappings of one walked folio.
    pub mappings_per_page: usize,
    /// Pages handed to the trigger.
    pub pages_triggered: usize,
    pub trigger: &'static str,
    pub target_node: Option<i32>,
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    // Redrawn twice a second at most: serial consoles (the QEMU guest) get every frame.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(2));
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg);
    pb
}

/// Runs one scenario to the end; everything it set up is undone when it returns.
pub fn run(spec: &Spec) -> anyhow::Result<Ran> {
    // Reclaim works on a cgroup: enter it before faulting pages, so they are charged there.
    let cgroup = match spec.trigger {
        Trigger::Reclaim => Some(cgroup::TempCgroup::enter()?),
        _ => None,
    };
    let ksm = spec.ty == PageType::Ksm;
    let pages = if spec.layout == Layout::Sharers {
        1
    } else {
        spec.pages
    };
    let mut region = match spec.ty {
        PageType::Ksm | PageType::Anon => Region::anon(pages, ksm)?,
        PageType::File => Region::file(pages)?,
        PageType::Unknown => anyhow::bail!("no workload for unknown pages"),
    };
    let (vmas, mut mappings) = match spec.layout {
        Layout::Split => (region.split()?, 1),
        Layout::Sharers => (1, 1),
    };
    let _sharers = match spec.layout {
        Layout::Sharers => {
            let pb = bar(spec.sharers as u64, "forking sharers");
            let s = sharers::Sharers::fork(spec.sharers, || pb.inc(1))?;
            pb.finish_and_clear();
            mappings = s.count() + 1;
            Some(s)
        }
        Layout::Split => None,
    };
    let _ksm = if ksm {
        let guard = ksm::KsmGuard::aggressive(spec.max_page_sharing)?;
        region.madvise_mergeable()?;
        let pb = bar(pages as u64, "waiting for KSM to merge");
        guard.wait_merged(spec.merge_timeout, |merged| pb.set_position(merged))?;
        pb.finish_and_clear();
        mappings = guard.mappings_per_page()?;
        guard.pause()?;
        Some(guard)
    } else {
        None
    };
    cancel::check()?;
    let (pages_triggered, target_node) = match spec.trigger {
        Trigger::MovePages => {
            let nodes = crate::kernel::host::numa_nodes();
            let here = migrate::node_of(region.addr(0))?;
            let target = *nodes
                .iter()
                .find(|&&n| n as i32 != here)
                .context("no other NUMA node")? as i32;
            // KSM: each KSM page is migrated once, through its first address; the others find
            // it already moved. Anon/file: a sample of pages, each walked once.
            let count = if ksm { pages } else { pages.min(64) };
            (migrate::move_pages(&region, count, target, ksm)?, Some(target))
        }
        Trigger::Reclaim => {
            let cg = cgroup.as_ref().context("reclaim without its cgroup")?;
            cg.reclaim((region.pages() * region::PAGE * 2) as u64)?;
            (region.pages(), None)
        }
        Trigger::Compact => {
            std::fs::write("/proc/sys/vm/compact_memory", "1")
                .context("writing /proc/sys/vm/compact_memory")?;
            (region.pages(), None)
        }
    };
    Ok(Ran {
        page_type: spec.ty.name(),
        layout: spec.layout.name(),
        vmas,
        mappings_per_page: mappings,
        pages_triggered,
        trigger: spec.trigger.name(),
        target_node,
    })
}
