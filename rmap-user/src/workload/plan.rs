//! The scenarios of a run, from the command line: which page types and layouts, the trigger
//! (chosen before anything on the host is changed) and the temporary swap it may need.
use std::time::Duration;

use anyhow::anyhow;
use rmap_common::PageType;

use super::{
    Layout, Spec,
    swap::ZramSwap,
    trigger::{self, HostCaps, Trigger, TriggerChoice},
    victims::VictimOp,
};

/// What the scenarios are made of: the workload's options (`cli::BenchArgs` gives them).
#[derive(Clone, Debug)]
pub struct Options {
    /// Pages (and VMAs) of the split layout.
    pub pages: usize,
    /// Layouts for anon and file pages (KSM is always split).
    pub layouts: Vec<Layout>,
    /// Children sharing the page in the sharers layout.
    pub sharers: usize,
    /// KSM's `max_page_sharing` to set, if any.
    pub max_page_sharing: Option<u64>,
    /// Run the ksm scenario even while other processes use KSM.
    pub force_ksm: bool,
    pub trigger: TriggerChoice,
    /// Create a temporary zram swap for the reclaim trigger on a host without swap.
    pub setup_swap: bool,
    pub merge_timeout: Duration,
    /// Move the region with mremap before the trigger.
    pub mremap: bool,
    /// The name of the threads that make the kernel walk.
    pub thread_name: Option<String>,
    /// Pages per `move_pages` call when the whole region is moved.
    pub move_batch: Option<usize>,
    pub victims: usize,
    pub victim_op: VictimOp,
}

/// The scenarios to run, in order: KSM split; anon and file in each asked layout.
pub fn specs(types: &[PageType], b: &Options, trigger: Trigger) -> Vec<Spec> {
    let mut out = Vec::new();
    for &ty in types {
        let layouts: Vec<Layout> = match ty {
            PageType::Ksm => vec![Layout::Split],
            // A transparent huge page is anonymous: files here are on tmpfs without huge=.
            PageType::File => b.layouts.iter().copied().filter(|&l| l != Layout::Thp).collect(),
            _ => b.layouts.clone(),
        };
        for layout in layouts {
            out.push(Spec {
                ty,
                layout,
                pages: b.pages,
                sharers: b.sharers,
                max_page_sharing: b.max_page_sharing,
                merge_timeout: b.merge_timeout,
                trigger,
                mremap: b.mremap,
                force_ksm: b.force_ksm,
                thread_name: b.thread_name.clone(),
                move_batch: b.move_batch,
                victims: b.victims,
                victim_op: b.victim_op,
            });
        }
    }
    out
}

/// Checks made before anything on the host is changed.
pub fn preflight(types: &[PageType], b: &Options) -> anyhow::Result<(Trigger, HostCaps)> {
    let caps = HostCaps::read();
    let trigger = trigger::choose(b.trigger, &caps, b.setup_swap).map_err(|e| anyhow!(e))?;
    if types.contains(&PageType::Ksm) && !std::path::Path::new("/sys/kernel/mm/ksm/run").exists() {
        anyhow::bail!("this kernel has no KSM (/sys/kernel/mm/ksm); drop ksm from --types");
    }
    Ok((trigger, caps))
}

/// The temporary zram swap of `--trigger reclaim --setup-swap` on a host without swap, sized
/// for the largest scenario; removed when dropped.
pub fn swap_for(
    trigger: Trigger,
    caps: &HostCaps,
    b: &Options,
    specs: &[Spec],
) -> anyhow::Result<Option<ZramSwap>> {
    if trigger != Trigger::Reclaim || caps.swap || !b.setup_swap {
        return Ok(None);
    }
    let biggest = specs.iter().map(|s| s.pages as u64).max().unwrap_or(1) * 4096;
    Ok(Some(ZramSwap::create((biggest * 2).max(256 << 20))?))
}
