//! What the cancellation tests share: a thread that raises the workload's cancellation when
//! told and says when it has, and views of this process's mappings.
//!
//! The cancellation flag is process-wide and never cleared, so each test binary raises it
//! once: one binary per loop.

use std::{
    sync::{Arc, Barrier},
    thread::JoinHandle,
};

use rmap_user::workload::cancel;

/// Raises the cancellation from its own thread. Synchronized by a barrier, which allocates
/// nothing: a first allocation in the thread would map a malloc arena in the middle of a
/// test that compares mappings.
pub struct Canceller {
    barrier: Arc<Barrier>,
    thread: Option<JoinHandle<()>>,
}

impl Canceller {
    /// Starts the thread (before the test maps anything, so that its stack is there already).
    pub fn spawn() -> Self {
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let thread = std::thread::spawn(move || {
            // The thread's first allocation maps its malloc arena: now, not mid-test.
            drop(std::hint::black_box(vec![0u8; 64]));
            b.wait();
            b.wait();
            cancel::request();
            b.wait();
        });
        // Started, arena mapped.
        barrier.wait();
        Self {
            barrier,
            thread: Some(thread),
        }
    }

    /// Has the other thread raise the cancellation; returns once it has.
    pub fn cancel_and_wait(&self) {
        self.barrier.wait();
        self.barrier.wait();
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("the canceller thread panicked");
        }
    }
}

/// (start, end, has a pathname) of each mapping of this process.
pub fn maps() -> Vec<(usize, usize, bool)> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("reading /proc/self/maps")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next()?.split_once('-')?;
            let named = f.nth(4).is_some();
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
                named,
            ))
        })
        .collect()
}

/// Mappings (VMAs) that overlap `[start, start + len)`.
pub fn vmas_in(start: usize, len: usize) -> usize {
    maps()
        .iter()
        .filter(|(a, b, _)| *a < start + len && start < *b)
        .count()
}

/// Ranges of anonymous mappings without a name (where a workload region lives).
pub fn nameless() -> Vec<(usize, usize)> {
    maps()
        .into_iter()
        .filter(|m| !m.2)
        .map(|(a, b, _)| (a, b))
        .collect()
}
