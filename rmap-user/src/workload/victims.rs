//! `--victims N`: the ground truth for `--stalls`. N threads of the workload change one page
//! of the split region each, in a loop while the trigger runs, and time every change with
//! their own clock (`CLOCK_MONOTONIC`).
//!
//! A change of the split region takes its `anon_vma` lock for writing (mm/mmap.c:
//! `__vma_adjust` on the merge and split of `mprotect`; `unlink_anon_vmas` on `munmap`), the
//! lock the region's walks hold for reading, and the process's `mmap_lock` for writing first:
//! while one victim waits for a walk, the others wait behind it for `mmap_lock` (as every
//! thread of an application does that maps memory or faults then): `--stalls` follows that
//! chain. Between changes a victim sleeps [`PAUSE`], so that victims do not take the CPUs
//! from the walks (a change preempted by another thread would look slow without waiting).
//!
//! Each victim first runs its change until the trigger begins, keeping the last
//! [`BASELINE_CALLS`] durations: their median is the uncontended cost of one change. During
//! the trigger a change is slow when it takes more than twice that plus [`SLOW_MARGIN_NS`]; the
//! time a slow change took beyond the median is time spent waiting, which is what `--stalls`
//! must attribute to the walks.
use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;

use super::{cancel, region::PAGE};

/// Changes timed before the trigger for the uncontended median.
pub const BASELINE_CALLS: usize = 64;
/// A change is slow beyond twice the median plus this much (emulated clocks are noisy).
pub const SLOW_MARGIN_NS: u64 = 20_000;
/// Sleep between two changes of a victim.
pub const PAUSE: Duration = Duration::from_micros(200);

/// What a victim does to its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VictimOp {
    /// `mprotect` the page read-only and back: its VMA merges with its read-only neighbours,
    /// then is split out again.
    Mprotect,
    /// `munmap` the page and map it again, touched.
    Munmap,
}

/// Phases, written by the workload, read by the victims.
const WARMUP: u32 = 0;
const MEASURE: u32 = 1;
const STOP: u32 = 2;

/// One victim's figures, shared with the workload's thread.
#[derive(Default)]
struct Slot {
    phase: AtomicU32,
    /// The victim's thread id, once it runs.
    tid: AtomicU32,
    /// 1 once the baseline is taken.
    ready: AtomicU32,
    calls: AtomicU64,
    total_ns: AtomicU64,
    baseline_ns: AtomicU64,
    slow_calls: AtomicU64,
    slow_ns: AtomicU64,
    excess_ns: AtomicU64,
}

/// What one victim measured during the trigger.
#[derive(Clone, Debug, Serialize)]
pub struct VictimRun {
    /// Thread id.
    pub pid: u32,
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

/// The address of a page, sendable to the victim's thread.
#[derive(Clone, Copy)]
struct Page(usize);

/// A victim's figures and its thread.
type Victim = (Arc<Slot>, JoinHandle<Result<(), io::Error>>);

pub struct Victims {
    threads: Vec<Victim>,
    op: VictimOp,
}

impl Victims {
    /// Starts `pages.len()` victims, victim i changing page `pages[i]` of the region at `base`
    /// (the pages must exist in the region and be writable; the region must outlive them:
    /// `finish` or drop joins them).
    pub fn spawn(base: *mut u8, pages: &[usize], op: VictimOp) -> anyhow::Result<Self> {
        let mut v = Self {
            threads: Vec::with_capacity(pages.len()),
            op,
        };
        for (i, &page) in pages.iter().enumerate() {
            let slot = Arc::new(Slot::default());
            let addr = Page(base as usize + page * PAGE);
            let s = slot.clone();
            let handle = std::thread::Builder::new()
                .name(format!("victim-{i}"))
                .spawn(move || victim(addr, &s, op))
                .context("starting a victim thread")?;
            v.threads.push((slot, handle));
        }
        Ok(v)
    }

    /// Waits until every victim has its baseline, then lets them measure.
    pub fn start(&self) -> anyhow::Result<()> {
        for (s, h) in &self.threads {
            while s.ready.load(Ordering::Acquire) == 0 {
                if h.is_finished() {
                    anyhow::bail!("a victim stopped before the trigger");
                }
                cancel::sleep(Duration::from_millis(5))?;
            }
        }
        for (s, _) in &self.threads {
            s.phase.store(MEASURE, Ordering::Release);
        }
        Ok(())
    }

    /// Stops the victims, joins them and returns what each measured.
    pub fn finish(mut self) -> anyhow::Result<Vec<VictimRun>> {
        let mut runs = Vec::new();
        for (s, h) in self.stop_and_join() {
            h.with_context(|| format!("victim {}: its {:?}", s.tid.load(Ordering::Acquire), self.op))?;
            runs.push(VictimRun {
                pid: s.tid.load(Ordering::Acquire),
                op: self.op,
                calls: s.calls.load(Ordering::Acquire),
                total_ns: s.total_ns.load(Ordering::Acquire),
                baseline_ns: s.baseline_ns.load(Ordering::Acquire),
                slow_calls: s.slow_calls.load(Ordering::Acquire),
                slow_ns: s.slow_ns.load(Ordering::Acquire),
                excess_ns: s.excess_ns.load(Ordering::Acquire),
            });
        }
        Ok(runs)
    }

    fn stop_and_join(&mut self) -> Vec<(Arc<Slot>, Result<(), io::Error>)> {
        for (s, _) in &self.threads {
            s.phase.store(STOP, Ordering::Release);
        }
        self.threads
            .drain(..)
            .map(|(s, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the victim thread panicked")));
                (s, r)
            })
            .collect()
    }
}

impl Drop for Victims {
    fn drop(&mut self) {
        for (s, r) in self.stop_and_join() {
            if let Err(e) = r {
                log::warn!("victim {}: {e}", s.tid.load(Ordering::Acquire));
            }
        }
    }
}

/// One change of the page.
fn change(addr: Page, op: VictimOp) -> Result<(), io::Error> {
    let addr = addr.0 as *mut libc::c_void;
    let fail = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    // SAFETY: one page of the region, which outlives the victims; nothing else uses it.
    unsafe {
        match op {
            VictimOp::Mprotect => {
                if libc::mprotect(addr, PAGE, libc::PROT_READ) != 0 {
                    return Err(fail("mprotect(PROT_READ)"));
                }
                if libc::mprotect(addr, PAGE, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                    return Err(fail("mprotect(PROT_READ | PROT_WRITE)"));
                }
            }
            VictimOp::Munmap => {
                if libc::munmap(addr, PAGE) != 0 {
                    return Err(fail("munmap"));
                }
                let p = libc::mmap(
                    addr,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return Err(fail("mmap(MAP_FIXED)"));
                }
                addr.cast::<u8>().write_volatile(1);
            }
        }
    }
    Ok(())
}

/// A victim's loop.
fn victim(addr: Page, slot: &Slot, op: VictimOp) -> Result<(), io::Error> {
    // SAFETY: gettid has no arguments and cannot fail.
    slot.tid
        .store(unsafe { libc::gettid() } as u32, Ordering::Release);
    let mut recent = [0u64; BASELINE_CALLS];
    let mut n = 0usize;
    let mut baseline = 0u64;
    loop {
        let phase = slot.phase.load(Ordering::Acquire);
        if phase == STOP {
            return Ok(());
        }
        let t0 = crate::kernel::clock::monotonic_ns();
        change(addr, op)?;
        let d = crate::kernel::clock::monotonic_ns().saturating_sub(t0);
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
        } else {
            slot.calls.fetch_add(1, Ordering::AcqRel);
            slot.total_ns.fetch_add(d, Ordering::AcqRel);
            if d > 2 * baseline + SLOW_MARGIN_NS {
                slot.slow_calls.fetch_add(1, Ordering::AcqRel);
                slot.slow_ns.fetch_add(d, Ordering::AcqRel);
                slot.excess_ns.fetch_add(d - baseline, Ordering::AcqRel);
            }
        }
        std::thread::sleep(PAUSE);
    }
}
