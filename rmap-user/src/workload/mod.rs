//! Workloads that make the kernel walk reverse mappings, rebuilt from the KSM rmap series'
//! benchmark: a region split into one VMA per page (mprotect on every other page), made of
//! KSM-merged, private anonymous or shared file pages, or one page shared by forked children;
//! then a trigger (migration, cgroup reclaim, compaction). Every change to the host is held by
//! a guard (KSM knobs, cgroup, children, mappings, temp file) and undone on return, error or
//! cancellation (`cancel`).
pub mod cancel;
pub mod cgroup;
pub mod ksm;
pub mod mempolicy;
pub mod migrate;
pub mod plan;
pub mod region;
pub mod sharers;
pub mod swap;
pub mod trigger;
pub mod victims;

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
    /// `pages` pages, one VMA each, all under one `anon_vma` (or one file mapping).
    Split,
    /// One page mapped by `sharers` forked children (and the parent).
    Sharers,
    /// Anon only: one transparent huge page, split before the trigger (`MADV_COLD` on part of
    /// it): the split walks it under the `anon_vma` lock it holds (`rmap_walk_locked`).
    Thp,
}

impl Layout {
    pub const fn name(self) -> &'static str {
        match self {
            Layout::Split => "split",
            Layout::Sharers => "sharers",
            Layout::Thp => "thp",
        }
    }

    /// Pages of the region in this layout, `split_pages` being --pages.
    pub const fn pages(self, split_pages: usize) -> usize {
        match self {
            Layout::Split => split_pages,
            Layout::Sharers => 1,
            Layout::Thp => region::HUGE / region::PAGE,
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
    /// Mappings per KSM page (None: leave KSM's `max_page_sharing` as it is, 256 by default).
    pub max_page_sharing: Option<u64>,
    pub merge_timeout: Duration,
    pub trigger: Trigger,
    /// Move the region with mremap before the trigger (KSM: and wait for KSM to merge again).
    pub mremap: bool,
    /// Change KSM's settings even while other processes have KSM-merged pages.
    pub force_ksm: bool,
    /// The name the walking thread gives itself (`--thread-name`).
    pub thread_name: Option<String>,
    /// move-pages, anon/file: move every page, this many per call (None: the first 64 pages
    /// in one call).
    pub move_batch: Option<usize>,
    /// Victim threads changing pages of the region during the trigger (`--victims`).
    pub victims: usize,
    pub victim_op: victims::VictimOp,
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
    /// With --mremap: pages moved to a new address before the trigger.
    pub mremapped: usize,
    /// Pages of this process merged by KSM when the trigger ran (its own
    /// `/proc/self/ksm_merging_pages`, not the host-wide counters other KSM users move).
    pub ksm_merged: u64,
    /// Wall time of the trigger phase alone, in ns (what a benchmark divides by walks).
    pub trigger_ns: u64,
    /// With --victims: what each victim measured during the trigger.
    pub victims: Vec<victims::VictimRun>,
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    // Not a terminal (a file, a pipe, a log): one plain line, no frames of escape sequences.
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{msg}: {len}");
        return ProgressBar::hidden();
    }
    // Redrawn twice a second at most: serial consoles (the QEMU guest) get every frame.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(2));
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg);
    pb
}

/// Runs one scenario to the end; everything it set up is undone when it returns (the guards
/// are dropped in reverse order: sharers, region, KSM knobs, cgroup). The region goes before
/// KSM's settings are put back: its pages are unmerged by the unmap, not by a scan at the
/// host's own (slower) settings, and nothing of ours is left merged under them.
pub fn run(spec: &Spec) -> anyhow::Result<Ran> {
    if let Some(name) = &spec.thread_name {
        name_thread(name)?;
    }
    // Reclaim works on a cgroup: enter it before faulting pages, so they are charged there.
    let cgroup = match spec.trigger {
        Trigger::Reclaim => Some(cgroup::TempCgroup::enter()?),
        _ => None,
    };
    let ksm = if spec.ty == PageType::Ksm {
        Some(ksm::KsmGuard::aggressive(spec.max_page_sharing, spec.force_ksm)?)
    } else {
        None
    };
    cancel::check()?;
    let mut mapped = map(spec)?;
    if let Some(guard) = &ksm {
        merge_ksm(spec, guard, &mut mapped)?;
    }
    let mremapped = if spec.mremap {
        mremap(spec, &mut mapped, ksm.as_ref())?
    } else {
        0
    };
    let ksm_merged = match &ksm {
        Some(_) => ksm::own_merged()?,
        None => 0,
    };
    cancel::check()?;
    let victims = start_victims(spec, &mapped)?;
    let started = std::time::Instant::now();
    let (pages_triggered, target_node) = trigger(spec, &mapped.region, cgroup.as_ref())?;
    let trigger_ns = started.elapsed().as_nanos() as u64;
    let victims = victims
        .map(victims::Victims::finish)
        .transpose()?
        .unwrap_or_default();
    Ok(Ran {
        page_type: spec.ty.name(),
        layout: spec.layout.name(),
        vmas: mapped.vmas,
        mappings_per_page: mapped.mappings,
        pages_triggered,
        trigger: spec.trigger.name(),
        target_node,
        mremapped,
        ksm_merged,
        trigger_ns,
        victims,
    })
}

/// `--victims`: started once the region is ready, measuring from just before the trigger.
/// Victim i changes page 2(i+1): a writable page between two read-only ones of the split.
fn start_victims(spec: &Spec, mapped: &Mapped) -> anyhow::Result<Option<victims::Victims>> {
    if spec.victims == 0 {
        return Ok(None);
    }
    let pages: Vec<usize> = (1..=spec.victims).map(|i| 2 * i).collect();
    if spec.layout != Layout::Split || pages.last().is_some_and(|&p| p >= mapped.region.pages()) {
        anyhow::bail!(
            "--victims {} needs the split layout with more than {} pages",
            spec.victims,
            2 * spec.victims
        );
    }
    let v = victims::Victims::spawn(mapped.region.addr(0), &pages, spec.victim_op)?;
    v.start()?;
    Ok(Some(v))
}

/// The region of a scenario, mapped in its layout.
struct Mapped {
    /// The forked children of the sharers layout, killed when dropped (before the region
    /// goes: fields drop in order).
    _sharers: Option<sharers::Sharers>,
    region: Region,
    vmas: usize,
    /// Mappings of one page.
    mappings: usize,
}

/// Maps the region and lays it out: split into one VMA per page, shared by forked children,
/// or one huge page split in two.
fn map(spec: &Spec) -> anyhow::Result<Mapped> {
    let pages = spec.layout.pages(spec.pages);
    // Faulted in on one node: every run then moves (and walks) the same pages.
    let policy = mempolicy::OneNode::new()?;
    let mut region = match (spec.ty, spec.layout) {
        (PageType::Anon, Layout::Thp) => Region::thp()?,
        (_, Layout::Thp) => anyhow::bail!("the thp layout is for anon pages only"),
        (PageType::Ksm | PageType::Anon, _) => Region::anon(pages, spec.ty == PageType::Ksm)?,
        (PageType::File, _) => Region::file(pages)?,
        (PageType::Unknown, _) => anyhow::bail!("no workload for unknown pages"),
    };
    drop(policy);
    let vmas = match spec.layout {
        Layout::Split => {
            let pb = bar((pages / 2) as u64, "splitting into VMAs");
            let vmas = region.split(|n| pb.set_position(n as u64))?;
            pb.finish_and_clear();
            vmas
        }
        Layout::Sharers => 1,
        Layout::Thp => {
            region.split_huge_page()?;
            2
        }
    };
    let (mappings, sharers) = match spec.layout {
        Layout::Sharers => {
            let pb = bar(spec.sharers as u64, "forking sharers");
            let s = sharers::Sharers::fork(spec.sharers, || pb.inc(1))?;
            pb.finish_and_clear();
            (s.count() + 1, Some(s))
        }
        Layout::Split | Layout::Thp => (1, None),
    };
    Ok(Mapped {
        _sharers: sharers,
        region,
        vmas,
        mappings,
    })
}

/// Lets KSM merge the region, then pauses it so that the trigger walks stable KSM pages.
fn merge_ksm(spec: &Spec, guard: &ksm::KsmGuard, mapped: &mut Mapped) -> anyhow::Result<()> {
    mapped.region.madvise_mergeable()?;
    // Two full scans from now, when the region is there to be merged.
    guard.resume()?;
    let pages = spec.layout.pages(spec.pages);
    merge(guard, pages, spec.merge_timeout, "waiting for KSM to merge")?;
    mapped.mappings = guard.mappings_per_page()?;
    guard.pause()?;
    Ok(())
}

/// `--mremap`: moves every page to a new address; KSM pages are merged again there.
fn mremap(spec: &Spec, mapped: &mut Mapped, ksm: Option<&ksm::KsmGuard>) -> anyhow::Result<usize> {
    cancel::check()?;
    let pb = bar(mapped.region.pages() as u64, "moving pages with mremap");
    let moved = mapped.region.mremap_away(|n| pb.set_position(n as u64))?;
    pb.finish_and_clear();
    if let Some(guard) = ksm {
        // mm/mremap.c move_vma() unmerged the moved KSM pages: let ksmd merge them again
        // at their new addresses, so that the trigger walks KSM pages whose rmap_items
        // were made after the move.
        guard.resume()?;
        merge(
            guard,
            spec.layout.pages(spec.pages),
            spec.merge_timeout,
            "waiting for KSM to merge after mremap",
        )?;
        mapped.mappings = guard.mappings_per_page()?;
        guard.pause()?;
    }
    Ok(moved)
}

/// Makes the kernel walk the region; returns the pages handed to the trigger and the node
/// they were migrated to.
fn trigger(
    spec: &Spec,
    region: &Region,
    cgroup: Option<&cgroup::TempCgroup>,
) -> anyhow::Result<(usize, Option<i32>)> {
    Ok(match spec.trigger {
        Trigger::MovePages => {
            let nodes = crate::kernel::host::numa_nodes();
            let here = migrate::node_of(region.addr(0))?;
            let target = *nodes
                .iter()
                .find(|&&n| n as i32 != here)
                .context("no other NUMA node")? as i32;
            // KSM: each KSM page is migrated once, through its first address; the others find
            // it already moved. Anon/file: a sample of pages, each walked once, or with
            // --move-batch every page, N per call.
            let pages = spec.layout.pages(spec.pages);
            let (count, batch) = match (spec.ty, spec.move_batch) {
                (PageType::Ksm, _) => (pages, 1),
                (_, Some(n)) => (pages, n),
                (_, None) => (pages.min(64), pages.min(64)),
            };
            let pb = bar(count as u64, "migrating with move_pages");
            let moved = migrate::move_pages(region, count, target, batch, |n| pb.set_position(n as u64))?;
            pb.finish_and_clear();
            (moved, Some(target))
        }
        Trigger::Reclaim => {
            let cg = cgroup.context("reclaim without its cgroup")?;
            cg.reclaim((region.pages() * region::PAGE * 2) as u64)?;
            (region.pages(), None)
        }
        Trigger::Compact => {
            std::fs::write("/proc/sys/vm/compact_memory", "1")
                .context("writing /proc/sys/vm/compact_memory")?;
            (region.pages(), None)
        }
    })
}

/// Waits for KSM to merge, with a progress bar.
fn merge(guard: &ksm::KsmGuard, pages: usize, timeout: Duration, msg: &'static str) -> anyhow::Result<()> {
    let pb = bar(pages as u64, msg);
    guard.wait_merged(timeout, |merged| pb.set_position(merged))?;
    pb.finish_and_clear();
    Ok(())
}

/// Names the calling thread (`prctl(PR_SET_NAME)`, what a JVM does for each of its threads):
/// the kernel's `comm` of the walks it makes.
fn name_thread(name: &str) -> anyhow::Result<()> {
    let c = std::ffi::CString::new(name).context("a thread name without NUL bytes")?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes (longer is cut).
    if unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_NAME)");
    }
    Ok(())
}
