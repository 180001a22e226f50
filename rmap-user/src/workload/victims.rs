//! `--victims N`: the ground truth for `--stalls`. N processes, forked once the region is laid
//! out, each change one page of their copy of it in a loop while the trigger runs and time
//! every change with their own clock (`CLOCK_MONOTONIC`).
//!
//! Why processes, not threads: a child's VMAs are linked into the parent's `anon_vma` tree and
//! share its root (mm/rmap.c: `anon_vma_fork`), so splitting or unmapping one of them takes the
//! very rwsem the walks of the region hold for reading (`anon_vma_lock_write` on the root);
//! yet each child has its own `mmap_lock`, so victims never queue behind each other's
//! `mmap_lock` while one of them waits for a walk (threads would, and that wait is not a
//! walk's).
//!
//! Each victim first runs its change until the trigger begins, keeping the last
//! [`BASELINE_CALLS`] durations: their median is the uncontended cost of one change. During
//! the trigger a change is slow when it takes more than twice that plus [`SLOW_MARGIN_NS`]; the
//! time a slow change took beyond the median is time spent waiting, which is what `--stalls`
//! must attribute to the walks.
use std::{
    io,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use anyhow::Context as _;
use serde::Serialize;

use super::{cancel, region::PAGE};

/// Changes timed before the trigger for the uncontended median.
pub const BASELINE_CALLS: usize = 64;
/// A change is slow beyond twice the median plus this much (emulated clocks are noisy).
pub const SLOW_MARGIN_NS: u64 = 20_000;

/// What a victim does to its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VictimOp {
    /// `mprotect` the page read-only and back: a VMA merge, then a split (`__vma_adjust`
    /// takes the `anon_vma` lock for writing, mm/mmap.c).
    Mprotect,
    /// `munmap` the page and map it again, touched (`unlink_anon_vmas` and
    /// `__anon_vma_prepare` take the lock for writing).
    Munmap,
}

/// Phases, written by the parent, read by the victims.
const WARMUP: u32 = 0;
const MEASURE: u32 = 1;
const STOP: u32 = 2;

/// One victim's figures, in memory shared with the parent (`MAP_SHARED`).
#[repr(C)]
#[derive(Default)]
struct Slot {
    phase: AtomicU32,
    /// 1 once the baseline is taken.
    ready: AtomicU32,
    calls: AtomicU64,
    total_ns: AtomicU64,
    baseline_ns: AtomicU64,
    slow_calls: AtomicU64,
    slow_ns: AtomicU64,
    excess_ns: AtomicU64,
    /// errno of a failed change, 0 when none failed.
    error: AtomicU64,
}

/// What one victim measured during the trigger.
#[derive(Clone, Debug, Serialize)]
pub struct VictimRun {
    pub pid: i32,
    pub op: VictimOp,
    /// Changes made during the trigger.
    pub calls: u64,
    pub total_ns: u64,
    /// Median of one change before the trigger.
    pub baseline_ns: u64,
    pub slow_calls: u64,
    /// Wall time of the slow changes…
    pub slow_ns: u64,
    /// …and of it, the time beyond the baseline: the victim's own measure of its waiting.
    pub excess_ns: u64,
}

pub struct Victims {
    children: Vec<libc::pid_t>,
    slots: *mut Slot,
    len: usize,
    op: VictimOp,
}

impl Victims {
    /// Forks `n` victims, victim i changing page `pages[i]` of the region at `base` (the pages
    /// must exist in the region, and be writable).
    pub fn fork(base: *mut u8, pages: &[usize], op: VictimOp) -> anyhow::Result<Self> {
        let len = std::mem::size_of::<Slot>() * pages.len().max(1);
        // SAFETY: a fresh shared anonymous mapping, zeroed (all phases WARMUP, all counts 0).
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap of the victims' shared page");
        }
        let mut v = Self {
            children: Vec::with_capacity(pages.len()),
            slots: raw.cast(),
            len,
            op,
        };
        for (i, &page) in pages.iter().enumerate() {
            cancel::check()?;
            // SAFETY: inside the region (the caller's contract) and our shared mapping.
            let (addr, slot) = unsafe { (base.add(page * PAGE), &*v.slots.add(i)) };
            // SAFETY: the child only makes system calls and atomic stores, then _exit.
            match unsafe { libc::fork() } {
                -1 => return Err(io::Error::last_os_error()).context("fork of a victim"),
                0 => victim(addr, slot, op),
                pid => v.children.push(pid),
            }
        }
        Ok(v)
    }

    fn slots(&self) -> &[Slot] {
        // SAFETY: `children.len()` slots, initialised (zeroed) and alive while self is.
        unsafe { std::slice::from_raw_parts(self.slots, self.children.len()) }
    }

    /// Waits until every victim has its baseline, then lets them measure.
    pub fn start(&self) -> anyhow::Result<()> {
        for s in self.slots() {
            while s.ready.load(Ordering::Acquire) == 0 {
                cancel::sleep(std::time::Duration::from_millis(5))?;
            }
        }
        for s in self.slots() {
            s.phase.store(MEASURE, Ordering::Release);
        }
        Ok(())
    }

    /// Stops the victims, reaps them and returns what each measured.
    pub fn finish(mut self) -> anyhow::Result<Vec<VictimRun>> {
        self.stop_and_reap();
        let runs: Vec<VictimRun> = self
            .slots()
            .iter()
            .zip(&self.children)
            .map(|(s, &pid)| VictimRun {
                pid,
                op: self.op,
                calls: s.calls.load(Ordering::Acquire),
                total_ns: s.total_ns.load(Ordering::Acquire),
                baseline_ns: s.baseline_ns.load(Ordering::Acquire),
                slow_calls: s.slow_calls.load(Ordering::Acquire),
                slow_ns: s.slow_ns.load(Ordering::Acquire),
                excess_ns: s.excess_ns.load(Ordering::Acquire),
            })
            .collect();
        for (s, pid) in self.slots().iter().zip(&self.children) {
            let errno = s.error.load(Ordering::Acquire);
            if errno != 0 {
                anyhow::bail!(
                    "victim {pid}: its {:?} failed: {}",
                    self.op,
                    io::Error::from_raw_os_error(errno as i32)
                );
            }
        }
        self.children.clear();
        Ok(runs)
    }

    fn stop_and_reap(&mut self) {
        for s in self.slots() {
            s.phase.store(STOP, Ordering::Release);
        }
        for &pid in &self.children {
            let mut status = 0;
            // SAFETY: our child.
            while unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
}

impl Drop for Victims {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.stop_and_reap();
            self.children.clear();
        }
        // SAFETY: our mapping, no longer used.
        if unsafe { libc::munmap(self.slots.cast(), self.len) } != 0 {
            log::warn!("munmap of the victims' page: {}", io::Error::last_os_error());
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One change of the page; an errno when it failed.
fn change(addr: *mut u8, op: VictimOp) -> Result<(), i32> {
    let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    // SAFETY: one page of our copy of the region, ours to change.
    unsafe {
        match op {
            VictimOp::Mprotect => {
                if libc::mprotect(addr.cast(), PAGE, libc::PROT_READ) != 0
                    || libc::mprotect(addr.cast(), PAGE, libc::PROT_READ | libc::PROT_WRITE) != 0
                {
                    return Err(errno());
                }
            }
            VictimOp::Munmap => {
                if libc::munmap(addr.cast(), PAGE) != 0 {
                    return Err(errno());
                }
                let p = libc::mmap(
                    addr.cast(),
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return Err(errno());
                }
                addr.write_volatile(1);
            }
        }
    }
    Ok(())
}

/// The victim's loop, in the forked child: no allocation, only system calls and atomics.
fn victim(addr: *mut u8, slot: &Slot, op: VictimOp) -> ! {
    let mut recent = [0u64; BASELINE_CALLS];
    let mut n = 0usize;
    let mut baseline = 0u64;
    loop {
        let phase = slot.phase.load(Ordering::Acquire);
        if phase == STOP {
            break;
        }
        let t0 = now_ns();
        if let Err(e) = change(addr, op) {
            slot.error.store(e as u64, Ordering::Release);
            break;
        }
        let d = now_ns().saturating_sub(t0);
        if phase == WARMUP {
            recent[n % BASELINE_CALLS] = d;
            n += 1;
            if n >= BASELINE_CALLS {
                let mut sorted = recent;
                sorted.sort_unstable();
                baseline = sorted[BASELINE_CALLS / 2];
                slot.baseline_ns.store(baseline, Ordering::Release);
                slot.ready.store(1, Ordering::Release);
            }
            continue;
        }
        slot.calls.fetch_add(1, Ordering::AcqRel);
        slot.total_ns.fetch_add(d, Ordering::AcqRel);
        if d > 2 * baseline + SLOW_MARGIN_NS {
            slot.slow_calls.fetch_add(1, Ordering::AcqRel);
            slot.slow_ns.fetch_add(d, Ordering::AcqRel);
            slot.excess_ns.fetch_add(d - baseline, Ordering::AcqRel);
        }
    }
    // SAFETY: ends the child without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}
