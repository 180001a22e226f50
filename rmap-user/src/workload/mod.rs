//! Workloads that make the kernel walk reverse mappings: a region of pages split into one VMA
//! per two pages (mprotect on every other page, as the KSM rmap series' benchmark does), made of
//! KSM-merged, private anonymous or shared file pages, then migrated to another NUMA node.
pub mod ksm;
pub mod migrate;
pub mod region;

use std::time::Duration;

use anyhow::Context as _;
use rmap_common::PageType;

/// What a workload run did.
#[derive(Debug, serde::Serialize)]
pub struct Ran {
    pub page_type: &'static str,
    pub pages: usize,
    pub vmas: usize,
    pub migrated: usize,
    pub target_node: i32,
}

/// Runs one scenario: build the region, (merge,) migrate; everything is undone on return.
/// `max_page_sharing`: mappings per KSM page (None: the kernel's current setting, 256 by
/// default). One KSM page for 20,000 VMAs makes each walk quadratic (every rmap_item scans every
/// VMA of the anon_vma): minutes under TCG.
pub fn run(
    ty: PageType,
    pages: usize,
    max_page_sharing: Option<u64>,
    merge_timeout: Duration,
) -> anyhow::Result<Ran> {
    let nodes = crate::kernel::host::numa_nodes();
    if nodes.len() < 2 {
        anyhow::bail!("move_pages needs two NUMA nodes; this host has {}", nodes.len());
    }
    let mut region = match ty {
        PageType::Ksm | PageType::Anon => region::Region::anon(pages, ty == PageType::Ksm)?,
        PageType::File => region::Region::file(pages)?,
        PageType::Unknown => anyhow::bail!("no workload for unknown pages"),
    };
    let vmas = region.split()?;
    let _ksm = if ty == PageType::Ksm {
        let guard = ksm::KsmGuard::aggressive(max_page_sharing)?;
        region.madvise_mergeable()?;
        guard.wait_merged(merge_timeout)?;
        guard.pause()?;
        Some(guard)
    } else {
        None
    };
    let here = migrate::node_of(region.addr(0))?;
    let target = *nodes
        .iter()
        .find(|&&n| n as i32 != here)
        .context("no other NUMA node")? as i32;
    // KSM: each KSM page is migrated once, through its first address; the others find it
    // already moved. Anon/file: a sample of pages, each walked once.
    let count = if ty == PageType::Ksm { pages } else { pages.min(64) };
    let migrated = migrate::move_pages(&region, count, target, ty == PageType::Ksm)?;
    Ok(Ran {
        page_type: ty.name(),
        pages,
        vmas,
        migrated,
        target_node: target,
    })
}
