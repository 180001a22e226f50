//! Cancellation of a running workload: the async side sets the flag on SIGINT/SIGTERM; the
//! workload's waiting loops check it and return, so every guard runs its Drop.
use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// The workload was interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn check() -> Result<(), Cancelled> {
    if CANCELLED.load(Ordering::SeqCst) {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// Sleeps up to `d`, waking early when cancelled.
pub fn sleep(d: std::time::Duration) -> Result<(), Cancelled> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        check()?;
        std::thread::sleep(d.min(std::time::Duration::from_millis(50)));
    }
    check()
}
