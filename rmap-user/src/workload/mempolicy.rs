//! Keeps the workload's pages on one NUMA node while they are faulted in, so that every run
//! moves exactly the same pages: without it the thread can change nodes while it faults a
//! region in, some pages land on the node they would later be moved to, and `move_pages` does
//! not move (nor walk) a page already there (mm/migrate.c: `add_page_for_migration`).
use std::io;

use anyhow::Context as _;

/// include/uapi/linux/mempolicy.h: `MPOL_DEFAULT`, `MPOL_PREFERRED`.
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;

fn set_mempolicy(mode: i32, mask: Option<u64>) -> io::Result<()> {
    let bits = mask.unwrap_or(0);
    let (ptr, maxnode) = match mask {
        Some(_) => (std::ptr::from_ref(&bits), 64_u64),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: a one-word node mask of `maxnode` bits, or none.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The NUMA node of the CPU this thread runs on (`getcpu(2)`).
fn current_node() -> io::Result<u32> {
    let (mut cpu, mut node) = (0_u32, 0_u32);
    // SAFETY: two u32 out-parameters; the cache argument is unused since 2.6.24.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            std::ptr::from_mut(&mut cpu),
            std::ptr::from_mut(&mut node),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(node)
    }
}

/// This thread's allocations prefer one node (the one it runs on now) until dropped.
/// Preferred rather than bound: the pages still go elsewhere when that node is full, instead of
/// the workload being OOM-killed on a host with a small node.
pub struct OneNode;

impl OneNode {
    pub fn new() -> anyhow::Result<Self> {
        let node = current_node().context("getcpu")?;
        if node >= 64 {
            // Beyond a one-word mask: leave the default policy (the counts may then vary).
            return Ok(Self);
        }
        set_mempolicy(MPOL_PREFERRED, Some(1 << node))
            .with_context(|| format!("set_mempolicy(MPOL_PREFERRED, node {node})"))?;
        Ok(Self)
    }
}

impl Drop for OneNode {
    fn drop(&mut self) {
        if let Err(e) = set_mempolicy(MPOL_DEFAULT, None) {
            eprintln!("rmap-trace: warning: set_mempolicy(MPOL_DEFAULT): {e}");
        }
    }
}
