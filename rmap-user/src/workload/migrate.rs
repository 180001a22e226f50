//! `move_pages(2)` without libnuma.
use std::io;

use anyhow::Context as _;

use super::region::Region;

/// include/uapi/linux/mempolicy.h: move pages even when mapped by several processes/VMAs; without
/// it shared pages (every KSM page) are silently skipped.
const MPOL_MF_MOVE_ALL: i32 = 1 << 2;

fn move_pages_raw(
    pages: &[*mut libc::c_void],
    nodes: Option<&[i32]>,
    status: &mut [i32],
    flags: i32,
) -> io::Result<()> {
    // SAFETY: arrays of `pages.len()` entries.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            pages.len(),
            pages.as_ptr(),
            nodes.map_or(std::ptr::null(), <[i32]>::as_ptr),
            status.as_mut_ptr(),
            flags,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The node a page is on (`move_pages` with no target nodes queries).
pub fn node_of(addr: *mut u8) -> anyhow::Result<i32> {
    let mut status = [0i32];
    move_pages_raw(&[addr.cast()], None, &mut status, 0).context("move_pages query")?;
    if status[0] < 0 {
        anyhow::bail!("page not present: {}", io::Error::from_raw_os_error(-status[0]));
    }
    Ok(status[0])
}

/// Moves the first `count` pages to `node`; returns how many are on `node` afterwards. A page
/// that could not be moved is an error (the seed benchmark ignored the status array).
///
/// `batch` pages per call. Where addresses may map the same page (KSM) it must be 1: within
/// one call a page is isolated once and its other addresses report EBUSY
/// (mm/migrate.c: `add_page_for_migration`); a later call finds it already on `node`.
///
/// `done` is told the pages handed to the kernel so far after each call.
pub fn move_pages(
    region: &Region,
    count: usize,
    node: i32,
    batch: usize,
    mut done: impl FnMut(usize),
) -> anyhow::Result<usize> {
    let count = count.min(region.pages());
    let pages: Vec<_> = (0..count).map(|p| region.addr(p).cast()).collect();
    let nodes = vec![node; count];
    let mut status = vec![0i32; count];
    let batch = batch.max(1);
    let mut handed = 0;
    for ((p, n), s) in pages
        .chunks(batch)
        .zip(nodes.chunks(batch))
        .zip(status.chunks_mut(batch))
    {
        // One call per KSM page, each up to seconds under emulation: stop soon after a signal.
        super::cancel::check()?;
        move_pages_raw(p, Some(n), s, MPOL_MF_MOVE_ALL).context("move_pages(MPOL_MF_MOVE_ALL)")?;
        handed += p.len();
        done(handed);
    }
    if let Some((i, s)) = status.iter().enumerate().find(|(_, s)| **s != node) {
        anyhow::bail!(
            "page {i} was not moved to node {node}: status {s} ({})",
            if *s < 0 {
                io::Error::from_raw_os_error(-s).to_string()
            } else {
                format!("on node {s}")
            }
        );
    }
    // Ask again where every address is now: a mapping the rmap walk missed would still point
    // at the old page (migration would have failed, but check what the process sees).
    let mut now = vec![0i32; count];
    move_pages_raw(&pages, None, &mut now, 0).context("move_pages query")?;
    if let Some((i, s)) = now.iter().enumerate().find(|(_, s)| **s != node) {
        anyhow::bail!("page {i} is on node {s} after moving it to node {node}");
    }
    Ok(count)
}
